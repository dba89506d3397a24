-- update_post: change a live post (of a live author); updated_at moves.
-- @returns one
-- @optional-params title, content, published
-- @not-null author
-- Returns: the updated row shaped like Post, or no row if the post is not visible.
-- :post_id    the post's id
-- :title      new title, or NULL to keep it
-- :content    new content, or NULL to keep it
-- :published  new flag, or NULL to keep it
UPDATE posts AS p
SET title = COALESCE(:title::text, p.title),
    content = COALESCE(:content::text, p.content),
    published = COALESCE(:published::boolean, p.published),
    updated_at = now()
FROM users AS u
WHERE p.id = :post_id
  AND p.deleted_at IS NULL
  AND u.id = p.author_id
  AND u.deleted_at IS NULL
RETURNING p.id, p.author_id, p.title, p.content, p.published, p.created_at, p.updated_at,
          json_build_object('id', u.id, 'name', u.name) AS author

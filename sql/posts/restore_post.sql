-- restore_post: bring back a soft-deleted post of a live author (a live post is
-- returned unchanged).
-- @returns one
-- @not-null author
-- Returns: the row shaped like Post, or no row if no such post exists or its
-- author is deleted (restore the user first).
-- :post_id  the post's id
UPDATE posts AS p
SET deleted_at = NULL,
    updated_at = CASE WHEN p.deleted_at IS NULL THEN p.updated_at ELSE now() END
FROM users AS u
WHERE p.id = :post_id
  AND u.id = p.author_id
  AND u.deleted_at IS NULL
RETURNING p.id, p.author_id, p.title, p.content, p.published, p.created_at, p.updated_at,
          json_build_object('id', u.id, 'name', u.name) AS author

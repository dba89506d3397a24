-- update_post: change a live post (of a live author) when the caller is its author or
-- an admin; updated_at moves.
-- @returns one
-- @optional-params title, content, published, if_match
-- @not-null allowed, visible, matched
-- Returns: no row when the post is missing, deleted or its author deleted. Otherwise
-- one row: `allowed` (the caller may change it), `visible` (the caller may see it: a
-- published post, or allowed), `matched` (If-Match held when the statement began) and,
-- when allowed and If-Match still held on the locked row, the updated post shaped like
-- Post. updated_at always moves forward (it is the ETag's version).
-- :post_id    the post's id
-- :caller_id  the signed-in caller's id
-- :is_admin   whether the caller is an admin
-- :title      new title, or NULL to keep it
-- :content    new content, or NULL to keep it
-- :published  new flag, or NULL to keep it
-- :if_match   If-Match: the updated_at values the caller read (NULL: any)
WITH target AS (
    SELECT p.id, (p.author_id = :caller_id::uuid OR :is_admin::boolean) AS allowed, p.published,
           (:if_match::timestamptz[] IS NULL OR p.updated_at = ANY(:if_match::timestamptz[])) AS matched
    FROM posts AS p
    JOIN users AS u ON u.id = p.author_id
    WHERE p.id = :post_id
      AND p.deleted_at IS NULL
      AND u.deleted_at IS NULL
), changed AS (
    UPDATE posts AS p
    SET title = COALESCE(:title::text, p.title),
        content = COALESCE(:content::text, p.content),
        published = COALESCE(:published::boolean, p.published),
        updated_at = GREATEST(now(), p.updated_at + interval '1 microsecond')
    FROM target AS t, users AS u
    WHERE p.id = t.id
      AND t.allowed
      AND p.deleted_at IS NULL
      AND (:if_match::timestamptz[] IS NULL OR p.updated_at = ANY(:if_match::timestamptz[]))
      AND u.id = p.author_id
      AND u.deleted_at IS NULL
    RETURNING p.id, p.author_id, p.title, p.content, p.published, p.created_at, p.updated_at,
              json_build_object('id', u.id, 'name', u.name) AS author
)
SELECT t.allowed, t.published OR t.allowed AS visible, t.matched,
       c.id, c.author_id, c.title, c.content, c.published, c.created_at, c.updated_at, c.author
FROM target AS t
LEFT JOIN changed AS c ON c.id = t.id

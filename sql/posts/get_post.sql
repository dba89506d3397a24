-- get_post: one live post of a live author, with the author; a draft only for its
-- author and admins.
-- @returns one
-- @optional-params caller_id
-- @not-null author
-- Returns: at most one row shaped like Post (author as a JSON object {id, name}).
-- :post_id    the post's id
-- :caller_id  the signed-in caller's id; NULL for anonymous
-- :is_admin   whether the caller is an admin
SELECT p.id, p.author_id, p.title, p.content, p.published, p.created_at, p.updated_at,
       json_build_object('id', u.id, 'name', u.name) AS author
FROM posts AS p
JOIN users AS u ON u.id = p.author_id
WHERE p.id = :post_id
  AND p.deleted_at IS NULL
  AND u.deleted_at IS NULL
  AND (p.published OR p.author_id = :caller_id::uuid OR :is_admin::boolean)

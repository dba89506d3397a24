-- delete_post: soft-delete a visible post (live, by a live author).
-- @returns scalar
-- Returns: the id of the deleted row, or no row if the post was not visible.
-- :post_id  the post's id
UPDATE posts AS p
SET deleted_at = now()
FROM users AS u
WHERE p.id = :post_id
  AND p.deleted_at IS NULL
  AND u.id = p.author_id
  AND u.deleted_at IS NULL
RETURNING p.id

-- delete_user: soft-delete a live user (their posts vanish from reads with them).
-- @returns scalar
-- Returns: the id of the deleted row, or no row if it was missing or already deleted.
-- :user_id  the user's id
UPDATE users AS u
SET deleted_at = now()
WHERE u.id = :user_id
  AND u.deleted_at IS NULL
RETURNING u.id

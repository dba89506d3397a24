-- restore_user: bring back a soft-deleted user (a live one is returned unchanged).
-- @returns one
-- Returns: the row shaped like User, or no row if no user has this id. Raises
-- unique_violation (23505) when a live user now holds the same email.
-- :user_id  the user's id
UPDATE users AS u
SET deleted_at = NULL,
    updated_at = CASE WHEN u.deleted_at IS NULL THEN u.updated_at ELSE now() END
WHERE u.id = :user_id
RETURNING u.id, u.email, u.name, u.created_at, u.updated_at

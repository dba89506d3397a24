-- get_user: one live user.
-- @returns one
-- Returns: at most one row shaped like User.
-- :user_id  the user's id
SELECT u.id, u.email, u.name, u.created_at, u.updated_at
FROM users AS u
WHERE u.id = :user_id
  AND u.deleted_at IS NULL

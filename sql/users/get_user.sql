-- get_user: one live user; its email only for the user itself and admins.
-- @returns one
-- @optional-params caller_id
-- Returns: at most one row shaped like User; `email` is NULL (left out of the
-- response) unless the caller is that user or an admin.
-- :user_id    the user's id
-- :caller_id  the signed-in caller's id; NULL for anonymous
-- :is_admin   whether the caller is an admin
SELECT u.id,
       CASE WHEN u.id = :caller_id::uuid OR :is_admin::boolean THEN u.email END AS email,
       u.name, u.created_at, u.updated_at
FROM users AS u
WHERE u.id = :user_id
  AND u.deleted_at IS NULL

-- get_credentials: the password hash of a live user, by email (any case) or by id.
-- @returns one
-- @optional-params email, user_id
-- Returns: at most one row; `password_hash` is NULL for a user without a password
-- (created before accounts existed), who cannot sign in until an operator sets one.
-- :email    the address signed in with, any case; NULL to look up by id
-- :user_id  the user's id; NULL to look up by email
SELECT u.id, u.password_hash
FROM users AS u
WHERE u.deleted_at IS NULL
  AND (lower(u.email) = lower(:email::text) OR u.id = :user_id::uuid)

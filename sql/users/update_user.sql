-- update_user: change a live user's email, name and/or password; updated_at moves.
-- A new password revokes every login of the user except the caller's own.
-- @returns one
-- @optional-params email, name, password_hash, keep_family
-- Returns: the updated row shaped like User, or no row if the user is missing or deleted.
-- :user_id        the user's id
-- :email          new email, or NULL to keep it
-- :name           new name (trimmed), or NULL to keep it
-- :password_hash  hash of the new password, or NULL to keep it
-- :keep_family    the caller's login (its refresh tokens survive a password change)
WITH revoked AS (
    UPDATE refresh_families AS f
    SET revoked_at = now()
    WHERE f.user_id = :user_id
      AND :password_hash::text IS NOT NULL
      AND f.revoked_at IS NULL
      AND f.id IS DISTINCT FROM :keep_family::uuid
)
UPDATE users AS u
SET email = COALESCE(:email::text, u.email),
    name = COALESCE(:name::text, u.name),
    password_hash = COALESCE(:password_hash::text, u.password_hash),
    updated_at = now()
WHERE u.id = :user_id
  AND u.deleted_at IS NULL
RETURNING u.id, u.email, u.name, u.created_at, u.updated_at

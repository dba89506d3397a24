-- update_user_password: an operator sets a live user's password (`rawpost users
-- set-password EMAIL`); every login (refresh token) of the user is revoked.
-- @returns scalar
-- Returns: the user's id, or no row when no live user has this email.
-- :email          the user's address, any case
-- :password_hash  the Argon2id hash of the new password
WITH target AS (
    SELECT u.id
    FROM users AS u
    WHERE lower(u.email) = lower(:email::text)
      AND u.deleted_at IS NULL
), revoked AS (
    UPDATE refresh_families AS f
    SET revoked_at = now()
    FROM target AS t
    WHERE f.user_id = t.id
      AND f.revoked_at IS NULL
)
UPDATE users AS u
SET password_hash = :password_hash::text,
    updated_at = GREATEST(now(), u.updated_at + interval '1 microsecond')
FROM target AS t
WHERE u.id = t.id
RETURNING u.id

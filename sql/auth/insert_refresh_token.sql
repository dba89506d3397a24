-- insert_refresh_token: start a login (a new token family) after a successful sign-in,
-- storing a re-made password hash when the hashing parameters changed.
-- @returns scalar
-- @optional-params password_hash
-- Returns: the family id, or no row when the user was deleted meanwhile.
-- :user_id        the user who signed in
-- :token_hash     sha256 of the new opaque refresh token
-- :family_id      the new login's id (the access tokens' `sid` claim)
-- :ttl_seconds    the refresh token's lifetime
-- :password_hash  a new hash of the same password, or NULL to keep the stored one
WITH rehashed AS (
    UPDATE users AS u
    SET password_hash = :password_hash::text
    WHERE u.id = :user_id
      AND :password_hash::text IS NOT NULL
      AND u.deleted_at IS NULL
    RETURNING u.id
)
INSERT INTO refresh_tokens (token_hash, user_id, family_id, expires_at)
SELECT :token_hash::bytea, u.id, :family_id::uuid, now() + make_interval(secs => :ttl_seconds)
FROM users AS u
WHERE u.id = :user_id
  AND u.deleted_at IS NULL
RETURNING family_id

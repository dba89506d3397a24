-- insert_refresh_token: start a login (a new token family) after a successful sign-in,
-- storing a re-made password hash when the hashing parameters changed.
-- @returns scalar
-- @optional-params password_hash
-- Returns: the family id, or no row when the user was deleted meanwhile. The user's row
-- is locked (FOR SHARE) until the login commits, so a concurrent delete either waits and
-- then revokes this login, or wins first and this inserts nothing.
-- :user_id        the user who signed in
-- :token_hash     sha256 of the new opaque refresh token
-- :family_id      the new login's id (the access tokens' `sid` claim)
-- :ttl_seconds    the refresh token's lifetime
-- :password_hash  a new hash of the same password, or NULL to keep the stored one
-- :verified_hash  the stored hash the password was verified against: the new one is
--                 written only if that is still the stored one (no undoing a password
--                 change made meanwhile)
WITH member AS (
    SELECT u.id
    FROM users AS u
    WHERE u.id = :user_id
      AND u.deleted_at IS NULL
    FOR SHARE
), rehashed AS (
    UPDATE users AS u
    SET password_hash = :password_hash::text
    FROM member AS m
    WHERE u.id = m.id
      AND :password_hash::text IS NOT NULL
      AND u.password_hash = :verified_hash::text
    RETURNING u.id
), family AS (
    INSERT INTO refresh_families (id, user_id)
    SELECT :family_id::uuid, m.id
    FROM member AS m
    RETURNING id
)
INSERT INTO refresh_tokens (token_hash, family_id, expires_at)
SELECT :token_hash::bytea, f.id, now() + make_interval(secs => :ttl_seconds)
FROM family AS f
RETURNING family_id

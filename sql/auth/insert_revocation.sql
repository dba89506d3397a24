-- insert_revocation: log out one login. The login (its refresh tokens) is revoked and the
-- access token presented is recorded as revoked until it expires (every worker polls this).
-- @returns none
-- @optional-params family_id
-- :user_id     the caller
-- :jti         the access token's `jti`
-- :expires_at  the access token's `exp`
-- :family_id   the login the token belongs to (its `sid` claim); NULL for a minted token
WITH family AS (
    UPDATE refresh_families AS f
    SET revoked_at = now()
    WHERE f.id = :family_id::uuid
      AND f.user_id = :user_id
      AND f.revoked_at IS NULL
    RETURNING f.id
)
INSERT INTO auth_events (user_id, jti, expires_at)
VALUES (:user_id, :jti, :expires_at)
ON CONFLICT (jti) WHERE jti IS NOT NULL DO NOTHING

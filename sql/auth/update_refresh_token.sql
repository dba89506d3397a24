-- update_refresh_token: rotate a refresh token. The presented token is retired and a
-- new one of the same login (family) issued, if the token is unused and unexpired, its
-- login not revoked and its user live.
-- @returns one
-- @not-null known
-- Returns: one row. `user_id` and `family_id` are set when the rotation happened.
-- `known` tells that the token belongs to a live login whose rotation did not happen
-- (used before, or expired): the caller then runs revoke_refresh_family, whose fresh
-- snapshot sees a concurrent rotation of the same token. The login's row is locked
-- first, so a rotation and a revocation of the same login are serialised.
-- :token_hash      sha256 of the presented token
-- :new_token_hash  sha256 of its successor
-- :ttl_seconds     the successor's lifetime
WITH family AS (
    UPDATE refresh_families AS f
    SET last_used_at = now()
    FROM refresh_tokens AS r, users AS u
    WHERE r.token_hash = :token_hash
      AND f.id = r.family_id
      AND f.revoked_at IS NULL
      AND u.id = f.user_id
      AND u.deleted_at IS NULL
    RETURNING f.id, f.user_id
), retired AS (
    UPDATE refresh_tokens AS r
    SET used_at = now()
    FROM family AS f
    WHERE r.token_hash = :token_hash
      AND r.family_id = f.id
      AND r.used_at IS NULL
      AND r.expires_at > now()
    RETURNING r.family_id
), issued AS (
    INSERT INTO refresh_tokens (token_hash, family_id, expires_at)
    SELECT :new_token_hash::bytea, t.family_id, now() + make_interval(secs => :ttl_seconds)
    FROM retired AS t
    RETURNING family_id
)
SELECT f.user_id, i.family_id, f.id IS NOT NULL AND i.family_id IS NULL AS known
FROM (SELECT) AS one
LEFT JOIN family AS f ON true
LEFT JOIN issued AS i ON true

-- update_refresh_token: rotate a refresh token. The presented token is retired and a
-- new one of the same family issued; presenting a retired token again revokes its whole
-- family (every token descended from that sign-in).
-- @returns one
-- @not-null reused
-- Returns: one row. `user_id` and `family_id` are set when the rotation happened (the
-- token was live, unexpired, and its user live); NULL otherwise. `reused` tells
-- that the token had been used before and its family is now revoked.
-- :token_hash      sha256 of the presented token
-- :new_token_hash  sha256 of its successor
-- :ttl_seconds     the successor's lifetime
WITH retired AS (
    UPDATE refresh_tokens AS r
    SET used_at = now()
    FROM users AS u
    WHERE r.token_hash = :token_hash
      AND r.used_at IS NULL
      AND r.revoked_at IS NULL
      AND r.expires_at > now()
      AND u.id = r.user_id
      AND u.deleted_at IS NULL
    RETURNING r.user_id, r.family_id
), issued AS (
    INSERT INTO refresh_tokens (token_hash, user_id, family_id, expires_at)
    SELECT :new_token_hash::bytea, t.user_id, t.family_id,
           now() + make_interval(secs => :ttl_seconds)
    FROM retired AS t
    RETURNING user_id, family_id
), reused AS (
    UPDATE refresh_tokens AS r
    SET revoked_at = now()
    FROM refresh_tokens AS presented
    WHERE presented.token_hash = :token_hash
      AND presented.used_at IS NOT NULL
      AND r.family_id = presented.family_id
      AND r.revoked_at IS NULL
    RETURNING r.family_id
)
SELECT i.user_id, i.family_id, EXISTS (SELECT FROM reused) AS reused
FROM (SELECT) AS one
LEFT JOIN issued AS i ON true

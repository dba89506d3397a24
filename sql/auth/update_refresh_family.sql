-- update_refresh_family: revoke the login of a refresh token that was presented again
-- after it had been used (a stolen token, or its owner, replaying it): every token
-- descended from that sign-in stops working.
-- @returns scalar
-- Returns: the login's id when it was revoked now; no row when the token is unused
-- (it had expired) or its login was already revoked.
-- :token_hash  sha256 of the presented token
UPDATE refresh_families AS f
SET revoked_at = now()
FROM refresh_tokens AS r
WHERE r.token_hash = :token_hash
  AND f.id = r.family_id
  AND r.used_at IS NOT NULL
  AND f.revoked_at IS NULL
RETURNING f.id

-- get_caller: who a verified access token speaks for, when no fresh cached answer exists.
-- @returns one
-- @not-null revoked
-- Returns: no row when the user is missing or deleted; otherwise its role, the time
-- before which its tokens are refused (NULL: none), and whether this jti is revoked.
-- :user_id  the token's `sub`
-- :jti      the token's `jti`
SELECT u.role,
       u.tokens_valid_after,
       EXISTS (SELECT FROM auth_events AS e WHERE e.jti = :jti::text) AS revoked
FROM users AS u
WHERE u.id = :user_id
  AND u.deleted_at IS NULL

-- delete_expired_auth_events: forget revocations of tokens that have expired anyway,
-- and user events older than any poller's look-back.
-- @returns none
DELETE FROM auth_events AS e
WHERE (e.jti IS NOT NULL AND e.expires_at < now())
   OR (e.jti IS NULL AND e.at < now() - interval '1 hour')

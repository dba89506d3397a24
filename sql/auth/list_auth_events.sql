-- list_auth_events: revocations and user changes recorded since a point in time, for
-- the per-worker caller cache (service/auth/callers.py).
-- @returns many
-- @not-null polled_at
-- Returns: one row per event at or after :since (a revoked access token when `jti` is
-- set, else "this user's role or liveness changed"), plus the server's clock, so the
-- next poll can ask from there.
-- :since  the database time of the previous poll minus a margin; -infinity at start
SELECT e.user_id, e.jti, e.expires_at, now() AS polled_at
FROM auth_events AS e
WHERE e.at >= :since::timestamptz
  AND (e.jti IS NULL OR e.expires_at > now())
UNION ALL
-- One row even when nothing happened, to carry the clock.
SELECT NULL, NULL, NULL, now()

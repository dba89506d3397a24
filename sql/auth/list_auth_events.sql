-- list_auth_events: revocations and user changes written by every transaction that was
-- still running at the previous poll or started since, for the per-worker caller cache
-- (service/auth/callers.py).
-- @returns many
-- @not-null watermark
-- Returns: one row per event (a revoked access token when `jti` is set, else "this
-- user's role or liveness changed"), plus one row whose `user_id` is NULL; every row
-- carries `watermark`, the oldest transaction still running now: the next poll asks
-- from there, so an event is read however late its transaction commits.
-- :since_xid  the previous poll's watermark; 0 at start (every unexpired event)
SELECT e.user_id, e.jti, e.expires_at,
       pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS watermark
FROM auth_events AS e
WHERE e.xid >= :since_xid::bigint
  AND (e.jti IS NULL OR e.expires_at > now())
UNION ALL
SELECT NULL, NULL, NULL, pg_snapshot_xmin(pg_current_snapshot())::text::bigint

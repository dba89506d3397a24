-- list_cache_events: the changes to users and posts committed since the previous poll,
-- for every worker's read cache (service/cache/channel.py).
-- @returns many
-- @not-null newest, running
-- Returns: one row per event (`id`, `payload`), or one row of NULLs when there is none;
-- every row carries `newest`, the highest event id visible now, and `running`, the
-- transactions running now: the next poll reads events after `newest` and those of
-- `running` (which may commit later with a lower id).
-- :baseline   true: only `newest` and `running` (the first poll after connecting)
-- :after_id   the previous poll's `newest`
-- :pending    the previous poll's `running`
SELECT e.id, e.payload, n.newest, n.running
FROM (
    SELECT COALESCE((SELECT max(id) FROM cache_events), 0) AS newest,
           ARRAY(SELECT x::text::bigint
                 FROM pg_snapshot_xip(pg_current_snapshot()) AS x) AS running
) AS n
LEFT JOIN cache_events AS e
       ON NOT :baseline::boolean
      AND (e.id > :after_id::bigint OR e.xid = ANY(:pending::bigint[]))
ORDER BY e.id

-- delete_old_cache_events: events older than any poller still needs (a poller that
-- lost its connection empties its cache and starts from the newest event).
-- @returns none
DELETE FROM cache_events AS e
WHERE e.at < now() - interval '1 minute'

-- Caches stop hearing of changes: run it with the service stopped, or with
-- RAWPOST_CACHE=off everywhere (docs/caching.md).
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';
DROP TRIGGER users_cache_truncate ON users;
DROP TRIGGER users_cache_delete ON users;
DROP TRIGGER users_cache_update ON users;
DROP TRIGGER posts_cache_truncate ON posts;
DROP TRIGGER posts_cache_delete ON posts;
DROP TRIGGER posts_cache_update ON posts;
DROP TRIGGER posts_cache_insert ON posts;
-- squawk-ignore ban-drop-function
DROP FUNCTION rawpost_cache_changed();
-- squawk-ignore ban-drop-table
DROP TABLE cache_events;

-- depends: 0009.users-role-check-validate
-- Every rawpost worker's cache of public reads (docs/caching.md) learns of every change
-- to users and posts, whoever makes it (the API, the CLI, an operator's psql): each
-- statement that changes rows adds one row to cache_events, in its own transaction, and
-- every worker reads the new rows about 20 times a second (sql/cache/list_cache_events.sql).
-- The payload names the rows, comma-separated: `p:<post id>:<author id>` or
-- `u:<user id>`; or it is `*` (drop everything) for more than 50 rows or a TRUNCATE.
-- Statement-level triggers: a bulk load pays one row, not one per row. Not NOTIFY:
-- PostgreSQL serialises the commits of every transaction that notifies, which cut the
-- insert of a post to 0.31x its throughput (docs/caching.md).
-- CREATE TRIGGER takes a brief SHARE ROW EXCLUSIVE lock on each table.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

CREATE TABLE cache_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The writing transaction, so that a poll also reads the events of transactions
    -- that were still running at the poll before (they may commit with a lower id).
    xid bigint NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    payload text NOT NULL
);
CREATE INDEX cache_events_xid_idx ON cache_events (xid);
CREATE INDEX cache_events_at_idx ON cache_events (at);

CREATE FUNCTION rawpost_cache_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    payload text;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        payload := '*';
    ELSIF TG_TABLE_NAME = 'posts' AND TG_OP = 'UPDATE' THEN
        -- Both sides: an author changed by hand must drop both authors' lists.
        SELECT CASE WHEN count(*) > 50 THEN '*'
                    ELSE string_agg('p:' || id || ':' || author_id, ',') END
        INTO payload
        FROM (SELECT id, author_id FROM changed UNION SELECT id, author_id FROM gone
              LIMIT 51) AS c;
    ELSIF TG_TABLE_NAME = 'posts' THEN
        SELECT CASE WHEN count(*) > 50 THEN '*'
                    ELSE string_agg('p:' || id || ':' || author_id, ',') END
        INTO payload
        FROM (SELECT id, author_id FROM changed LIMIT 51) AS c;
    ELSE
        SELECT CASE WHEN count(*) > 50 THEN '*' ELSE string_agg('u:' || id, ',') END
        INTO payload
        FROM (SELECT id FROM changed LIMIT 51) AS c;
    END IF;
    IF payload IS NOT NULL THEN  -- NULL: the statement changed no row
        INSERT INTO cache_events (payload) VALUES (payload);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER posts_cache_insert AFTER INSERT ON posts
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION rawpost_cache_changed();
CREATE TRIGGER posts_cache_update AFTER UPDATE ON posts
    REFERENCING OLD TABLE AS gone NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION rawpost_cache_changed();
CREATE TRIGGER posts_cache_delete AFTER DELETE ON posts
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION rawpost_cache_changed();
CREATE TRIGGER posts_cache_truncate AFTER TRUNCATE ON posts
    FOR EACH STATEMENT EXECUTE FUNCTION rawpost_cache_changed();
-- A new user is in no cached answer yet: no INSERT trigger on users.
CREATE TRIGGER users_cache_update AFTER UPDATE ON users
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION rawpost_cache_changed();
CREATE TRIGGER users_cache_delete AFTER DELETE ON users
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION rawpost_cache_changed();
CREATE TRIGGER users_cache_truncate AFTER TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION rawpost_cache_changed();

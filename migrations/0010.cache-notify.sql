-- depends: 0009.users-role-check-validate
-- Every rawpost worker's cache of public reads (docs/caching.md) hears of every change
-- to users and posts, whoever makes it (the API, the CLI, an operator's psql): one
-- NOTIFY on the channel `rawpost_cache` per statement that changed rows, delivered at
-- commit (never for a rollback). The payload names the rows, comma-separated:
-- `p:<post id>:<author id>` or `u:<user id>`; or it is `*` (drop everything) for more
-- than 50 rows or a TRUNCATE. Statement-level triggers: a bulk load pays one NOTIFY,
-- not one per row. CREATE TRIGGER takes a brief SHARE ROW EXCLUSIVE lock on each table.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';

CREATE FUNCTION rawpost_cache_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    payload text;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('rawpost_cache', '*');
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
        PERFORM pg_notify('rawpost_cache', payload);
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

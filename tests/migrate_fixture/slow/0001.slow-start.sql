-- Sleeps when the session sets rawpost.test_sleep (PGOPTIONS), so tests can catch it mid-run.
SELECT pg_sleep(coalesce(nullif(current_setting('rawpost.test_sleep', true), ''), '0')::float);
CREATE TABLE slow_things (id serial PRIMARY KEY);

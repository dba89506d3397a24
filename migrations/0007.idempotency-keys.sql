-- depends: 0006.create-posts
-- Idempotency-Key support for the POST routes: the first response to a (route, key)
-- is stored in the same transaction as the write it reports, so a client retrying
-- after a lost response gets that response again instead of a second row.
-- The table is new and empty, so its index is built in the same transaction.
-- Nothing else is locked; the timeouts are the ones every migration sets (docs/deploy.md).
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';
CREATE TABLE idempotency_keys (
    route text NOT NULL,
    key text NOT NULL,
    request_hash text NOT NULL,
    -- An HTTP status code (100-599), not an id or a counter: int is plenty.
    -- squawk-ignore prefer-bigint-over-int
    status integer,
    body bytea,
    location text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (route, key)
);
-- Lets operators expire old keys: DELETE FROM idempotency_keys WHERE created_at < ...
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

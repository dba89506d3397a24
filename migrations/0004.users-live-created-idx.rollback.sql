-- squawk-disable-assume-in-transaction
-- No timeouts: see 0003.
SET lock_timeout = 0;
SET statement_timeout = 0;
DROP INDEX CONCURRENTLY IF EXISTS users_live_created_idx;

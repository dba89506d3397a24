-- squawk-disable-assume-in-transaction
-- Runs after 0005's rollback has restored the case-sensitive UNIQUE (email), so email
-- stays unique throughout. No timeouts: see the migration.
SET lock_timeout = 0;
SET statement_timeout = 0;
DROP INDEX CONCURRENTLY IF EXISTS users_live_email_key;

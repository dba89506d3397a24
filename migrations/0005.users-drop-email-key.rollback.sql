-- Restores the case-sensitive UNIQUE (email). Fails, changing nothing, when two rows
-- have the same email, e.g. a soft-deleted user and the live one who reused it.
-- The unique index is built under an ACCESS EXCLUSIVE lock inside this transaction, not
-- CONCURRENTLY: rollbacks run with the service stopped (docs/operations.md), and one
-- transaction keeps a failed rollback from leaving an INVALID index behind.
-- No statement_timeout: the build takes as long as the table is big.
-- squawk-ignore-file require-statement-timeout
SET LOCAL lock_timeout = '5s';
-- squawk-ignore disallowed-unique-constraint, constraint-missing-not-valid
ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);

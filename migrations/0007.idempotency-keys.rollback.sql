-- Every stored response is lost: undoing the migration that created the table means
-- dropping it; rollbacks run with the service stopped (docs/operations.md).
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';
-- squawk-ignore ban-drop-table
DROP TABLE idempotency_keys;

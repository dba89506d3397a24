-- Undoing the baseline drops users with every row (docs/operations.md); rollbacks run
-- with the service stopped.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';
-- squawk-ignore ban-drop-table
DROP TABLE users;

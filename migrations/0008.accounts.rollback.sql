-- Every password hash, role, refresh token and revocation is lost: rollbacks run with
-- the service stopped (docs/operations.md), and every token stops working anyway.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';
DROP TRIGGER users_auth_changed ON users;
-- squawk-ignore ban-drop-function
DROP FUNCTION users_auth_changed();
-- squawk-ignore ban-drop-table
DROP TABLE auth_events;
-- squawk-ignore ban-drop-table
DROP TABLE refresh_tokens;
-- squawk-ignore ban-drop-table
DROP TABLE refresh_families;
-- squawk-ignore ban-drop-column
ALTER TABLE users DROP COLUMN tokens_valid_after;
-- squawk-ignore ban-drop-column
ALTER TABLE users DROP COLUMN role;
-- squawk-ignore ban-drop-column
ALTER TABLE users DROP COLUMN password_hash;

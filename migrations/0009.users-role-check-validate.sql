-- depends: 0008.accounts
-- Validate the role CHECK that 0008 added NOT VALID: a scan under SHARE UPDATE
-- EXCLUSIVE, which lets reads and writes on users go on meanwhile.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = 0;
ALTER TABLE users VALIDATE CONSTRAINT users_role_check;

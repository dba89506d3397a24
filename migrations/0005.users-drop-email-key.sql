-- depends: 0004.users-live-created-idx
-- The case-sensitive UNIQUE (email) of the original schema goes now that 0003's
-- users_live_email_key (unique lower(email) among live users) exists and is valid:
-- there is no moment without a uniqueness guarantee. It has to go before the new
-- release serves: it would reject a new user reusing the exact email of a deleted one.
-- Metadata only: the lock is brief, and lock_timeout keeps a busy table from queueing
-- behind it.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';
-- Live users keep a (case-insensitive, so stricter) uniqueness guarantee; only soft-
-- deleted users may now share an email, which is the soft-delete design.
-- squawk-ignore ban-drop-constraint
ALTER TABLE users DROP CONSTRAINT users_email_key;

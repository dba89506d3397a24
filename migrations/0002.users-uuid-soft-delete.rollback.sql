-- Back to the integer-keyed table. Rows created after the conversion get a fresh
-- integer from the original sequence; every other row gets its old id back.
-- Fails (and changes nothing) if a soft-deleted user shares an email with another.
DROP INDEX users_live_created_idx;
DROP INDEX users_live_email_key;
UPDATE users SET legacy_id = nextval('users_id_seq') WHERE legacy_id IS NULL;
ALTER TABLE users DROP COLUMN deleted_at;
ALTER TABLE users DROP COLUMN updated_at;
ALTER TABLE users DROP CONSTRAINT users_pkey;
ALTER TABLE users DROP COLUMN id;
ALTER TABLE users DROP CONSTRAINT users_legacy_id_key;
ALTER TABLE users RENAME COLUMN legacy_id TO id;
ALTER TABLE users ALTER COLUMN id SET NOT NULL;
ALTER TABLE users ALTER COLUMN id SET DEFAULT nextval('users_id_seq');
ALTER TABLE users ADD CONSTRAINT users_pkey PRIMARY KEY (id);
ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);

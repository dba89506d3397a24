-- depends: 0001.baseline-users
-- Convert users to UUID ids with soft delete, keeping every row and value.
-- The old integer id stays as legacy_id (unique), so anything that referenced a
-- user by its integer id can still find the same user; its sequence is kept for
-- the rollback.
ALTER TABLE users RENAME COLUMN id TO legacy_id;
ALTER TABLE users DROP CONSTRAINT users_pkey;
ALTER TABLE users ALTER COLUMN legacy_id DROP DEFAULT;
ALTER TABLE users ALTER COLUMN legacy_id DROP NOT NULL;
ALTER TABLE users ADD CONSTRAINT users_legacy_id_key UNIQUE (legacy_id);
ALTER TABLE users ADD COLUMN id uuid NOT NULL DEFAULT gen_random_uuid();
ALTER TABLE users ADD CONSTRAINT users_pkey PRIMARY KEY (id);

ALTER TABLE users ADD COLUMN updated_at timestamptz;
UPDATE users SET updated_at = created_at;
ALTER TABLE users ALTER COLUMN updated_at SET NOT NULL;
ALTER TABLE users ALTER COLUMN updated_at SET DEFAULT now();
ALTER TABLE users ADD COLUMN deleted_at timestamptz;

-- Email is unique among live users, case-insensitively; this index also serves
-- the `?email=` filter and the restore-conflict check.
ALTER TABLE users DROP CONSTRAINT users_email_key;
CREATE UNIQUE INDEX users_live_email_key ON users (lower(email)) WHERE deleted_at IS NULL;
-- Keyset pagination of live users, newest first.
CREATE INDEX users_live_created_idx ON users (created_at DESC, id DESC) WHERE deleted_at IS NULL;

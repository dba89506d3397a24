-- depends: 0007.idempotency-keys
-- Accounts (HTTP contract v2): a password hash and a role per user, logins and their
-- refresh tokens (stored hashed), and auth_events, the log every worker polls so that a
-- revocation (logout, user deleted, role changed) reaches every process and instance
-- within a second (docs/security.md).
--
-- users gets nullable columns and one with a constant default: catalog-only changes
-- since PostgreSQL 11, no table rewrite. Rows that exist now have no password and
-- cannot sign in until an operator sets one (`rawpost users set-password EMAIL`).
-- The CHECK is added NOT VALID (no scan under the lock); 0009 validates it.
-- The foreign key from refresh_families takes a SHARE ROW EXCLUSIVE lock on users,
-- briefly; lock_timeout keeps it from queueing traffic behind it.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';
ALTER TABLE users ADD COLUMN password_hash text;
ALTER TABLE users ADD COLUMN role text NOT NULL DEFAULT 'user';
ALTER TABLE users ADD CONSTRAINT users_role_check CHECK (role IN ('user', 'admin')) NOT VALID;
-- Access tokens issued at or before this second are refused (set when the user is deleted
-- or restored, so a restore does not bring its old tokens back).
ALTER TABLE users ADD COLUMN tokens_valid_after timestamptz;

-- A login: every refresh token descended from one sign-in belongs to it (the access
-- tokens' `sid` claim). Revoking a login is one row, which each rotation locks, so a
-- revocation and a concurrent rotation cannot both win.
CREATE TABLE refresh_families (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at timestamptz
);
CREATE INDEX refresh_families_user_idx ON refresh_families (user_id) WHERE revoked_at IS NULL;

CREATE TABLE refresh_tokens (
    -- sha256 of the opaque token: the token itself is never stored.
    token_hash bytea PRIMARY KEY,
    family_id uuid NOT NULL REFERENCES refresh_families (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);

CREATE TABLE auth_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The writing transaction's id. Each poll reads the events of every transaction that
    -- was still running at the poll before (xid >= that poll's oldest running xid), so an
    -- event is seen however long its transaction took to commit.
    xid bigint NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    user_id uuid NOT NULL,
    -- Set: this access token is revoked (logout) until it expires anyway.
    -- Unset: the user's role or liveness changed; cached callers are dropped.
    jti text,
    expires_at timestamptz
);
CREATE INDEX auth_events_xid_idx ON auth_events (xid);
CREATE INDEX auth_events_at_idx ON auth_events (at);
CREATE UNIQUE INDEX auth_events_jti_key ON auth_events (jti) WHERE jti IS NOT NULL;

-- Whoever changes a user's role or liveness (the API, the CLI, an operator's psql), the
-- workers hear of it, and a deleted user's tokens die with it.
CREATE FUNCTION users_auth_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.deleted_at IS DISTINCT FROM OLD.deleted_at THEN
        -- Deleted or restored: access tokens issued up to now are refused from now on
        -- (clock_timestamp(): the row is locked by now, so a sign-in that held it first
        -- has committed and its token's iat is not later than this).
        NEW.tokens_valid_after := clock_timestamp();
    END IF;
    IF NEW.deleted_at IS NOT NULL AND OLD.deleted_at IS NULL THEN
        UPDATE refresh_families SET revoked_at = now()
        WHERE user_id = NEW.id AND revoked_at IS NULL;
    END IF;
    INSERT INTO auth_events (user_id) VALUES (NEW.id);
    RETURN NEW;
END
$$;
CREATE TRIGGER users_auth_changed
    BEFORE UPDATE OF role, deleted_at ON users
    FOR EACH ROW
    WHEN (OLD.role IS DISTINCT FROM NEW.role OR OLD.deleted_at IS DISTINCT FROM NEW.deleted_at)
    EXECUTE FUNCTION users_auth_changed();

-- The original rawpost schema: integer ids, no soft delete.
-- Databases that already have this table mark it applied instead of running it
-- (see docs/operations.md, "Adopting an existing database").
CREATE TABLE users (
    -- The original column exactly as deployed (serial, not bigint or identity): 0002
    -- turns it into legacy_id and is written for precisely this shape.
    -- squawk-ignore prefer-bigint-over-int, prefer-identity
    id serial PRIMARY KEY,
    email text NOT NULL UNIQUE,
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

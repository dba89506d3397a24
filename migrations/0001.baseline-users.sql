-- The original rawpost schema: integer ids, no soft delete.
-- Databases that already have this table mark it applied instead of running it
-- (see docs/operations.md, "Adopting an existing database").
CREATE TABLE users (
    id serial PRIMARY KEY,
    email text NOT NULL UNIQUE,
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- insert_user: create a user.
-- @returns one
-- Returns: the new row shaped like User. A live user with the same email (any
-- case) raises unique_violation (23505).
-- :email          stored exactly as given
-- :name           already trimmed
-- :password_hash  the Argon2id hash of the password (the password is never stored)
INSERT INTO users (email, name, password_hash)
VALUES (:email, :name, :password_hash)
RETURNING id, email, name, created_at, updated_at

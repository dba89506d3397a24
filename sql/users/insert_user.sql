-- insert_user: create a user.
-- @returns one
-- Returns: the new row shaped like User. A live user with the same email (any
-- case) raises unique_violation (23505).
-- :email  stored exactly as given
-- :name   already trimmed
INSERT INTO users (email, name)
VALUES (:email, :name)
RETURNING id, email, name, created_at, updated_at

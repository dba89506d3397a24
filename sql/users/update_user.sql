-- update_user: change a live user's email and/or name; updated_at moves.
-- @returns one
-- @optional-params email, name
-- Returns: the updated row shaped like User, or no row if the user is missing or deleted.
-- :user_id  the user's id
-- :email    new email, or NULL to keep it
-- :name     new name (trimmed), or NULL to keep it
UPDATE users AS u
SET email = COALESCE(:email::text, u.email),
    name = COALESCE(:name::text, u.name),
    updated_at = now()
WHERE u.id = :user_id
  AND u.deleted_at IS NULL
RETURNING u.id, u.email, u.name, u.created_at, u.updated_at

-- update_user_role: grant or remove the admin role (operators only: `rawpost users
-- promote|demote EMAIL`; no HTTP route runs this).
-- @returns scalar
-- Returns: the user's id, or no row when no live user has this email.
-- :email  the user's address, any case
-- :role   'user' or 'admin'
UPDATE users AS u
SET role = :role::text
WHERE lower(u.email) = lower(:email::text)
  AND u.deleted_at IS NULL
RETURNING u.id

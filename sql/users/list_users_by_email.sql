-- list_users_by_email: the page of live users whose email equals :email, ignoring case
-- (at most one row: live emails are unique case-insensitively). Admins only: the
-- route's guard refuses everybody else, so the email is always shown.
-- @returns many
-- @optional-params before_created_at, before_id
-- Returns: rows shaped like User.
-- :email              the address to match, any case
-- :before_created_at  cursor, as in list_users; NULL = first page
-- :before_id          cursor id; NULL = first page
-- :limit              rows wanted (the page size + 1)
SELECT u.id, u.email, u.name, u.created_at, u.updated_at
FROM users AS u
WHERE lower(u.email) = lower(:email::text)
  AND u.deleted_at IS NULL
  AND (u.created_at, u.id) < (
      COALESCE(:before_created_at::timestamptz, 'infinity'),
      COALESCE(:before_id::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff')
  )
ORDER BY u.created_at DESC, u.id DESC
LIMIT :limit

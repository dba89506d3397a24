-- list_users: a page of live users, newest first (keyset on created_at, id).
-- @returns many
-- @optional-params caller_id, before_created_at, before_id
-- Returns: rows shaped like User; `email` is NULL except on the caller's own row (or
-- on every row for an admin).
-- :caller_id          the signed-in caller's id; NULL for anonymous
-- :is_admin           whether the caller is an admin
-- :before_created_at  cursor: only rows strictly older than (this, :before_id); NULL = first page
-- :before_id          cursor id; NULL = first page
-- :limit              rows wanted (the page size + 1, to tell whether a next page exists)
SELECT u.id,
       CASE WHEN u.id = :caller_id::uuid OR :is_admin::boolean THEN u.email END AS email,
       u.name, u.created_at, u.updated_at
FROM users AS u
WHERE u.deleted_at IS NULL
  AND (u.created_at, u.id) < (
      COALESCE(:before_created_at::timestamptz, 'infinity'),
      COALESCE(:before_id::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff')
  )
ORDER BY u.created_at DESC, u.id DESC
LIMIT :limit

-- list_user_posts: a page of one live author's live posts the caller may see (drafts
-- only for the author and admins), newest first.
-- @returns many
-- @optional-params caller_id, published, before_created_at, before_id
-- @not-null author
-- Returns: no row when the author is missing or deleted; otherwise rows shaped
-- like Post, or a single row whose post columns are all NULL when the page is empty
-- (so one statement tells "no such author" from "no posts").
-- :author_id          the author's id
-- :caller_id          the signed-in caller's id; NULL for anonymous
-- :is_admin           whether the caller is an admin
-- :published          only posts with this flag; NULL = all
-- :before_created_at  cursor, as in list_posts; NULL = first page
-- :before_id          cursor id; NULL = first page
-- :limit              rows wanted (the page size + 1)
SELECT p.id, p.author_id, p.title, p.content, p.published, p.created_at, p.updated_at,
       json_build_object('id', u.id, 'name', u.name) AS author
FROM users AS u
LEFT JOIN LATERAL (
    SELECT p.id, p.author_id, p.title, p.content, p.published, p.created_at, p.updated_at
    FROM posts AS p
    WHERE p.author_id = u.id
      AND p.deleted_at IS NULL
      AND (:published::boolean IS NULL OR p.published = :published)
      AND (p.published OR p.author_id = :caller_id::uuid OR :is_admin::boolean)
      AND (p.created_at, p.id) < (
          COALESCE(:before_created_at::timestamptz, 'infinity'),
          COALESCE(:before_id::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff')
      )
    ORDER BY p.created_at DESC, p.id DESC
    LIMIT :limit
) AS p ON true
WHERE u.id = :author_id
  AND u.deleted_at IS NULL
ORDER BY p.created_at DESC, p.id DESC

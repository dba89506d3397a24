-- delete_post: soft-delete a live post (of a live author) when the caller is its author
-- or an admin.
-- @returns one
-- @optional-params if_match
-- @not-null allowed, visible, matched
-- Returns: no row when the post is missing, deleted or its author deleted. Otherwise
-- one row: `allowed`, `visible`, `matched` (as in update_post) and `id`, set when it was
-- deleted.
-- :post_id    the post's id
-- :caller_id  the signed-in caller's id
-- :is_admin   whether the caller is an admin
-- :if_match   If-Match: the updated_at values the caller read (NULL: any)
WITH target AS (
    SELECT p.id, (p.author_id = :caller_id::uuid OR :is_admin::boolean) AS allowed, p.published,
           (:if_match::timestamptz[] IS NULL OR p.updated_at = ANY(:if_match::timestamptz[])) AS matched
    FROM posts AS p
    JOIN users AS u ON u.id = p.author_id
    WHERE p.id = :post_id
      AND p.deleted_at IS NULL
      AND u.deleted_at IS NULL
), deleted AS (
    UPDATE posts AS p
    SET deleted_at = now()
    FROM target AS t
    WHERE p.id = t.id
      AND t.allowed
      AND p.deleted_at IS NULL
      AND (:if_match::timestamptz[] IS NULL OR p.updated_at = ANY(:if_match::timestamptz[]))
    RETURNING p.id
)
SELECT t.allowed, t.published OR t.allowed AS visible, t.matched, d.id
FROM target AS t
LEFT JOIN deleted AS d ON d.id = t.id

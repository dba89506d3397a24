-- delete_user: soft-delete a live user (their posts vanish from reads with them).
-- @returns one
-- @optional-params if_match
-- @not-null matched
-- Returns: no row if the user is missing or already deleted. Otherwise one row:
-- `matched` (If-Match held when the statement began) and `id`, set when it was deleted.
-- :user_id   the user's id
-- :if_match  If-Match: the updated_at values the caller read (NULL: any)
WITH target AS (
    SELECT u.id,
           (:if_match::timestamptz[] IS NULL OR u.updated_at = ANY(:if_match::timestamptz[])) AS matched
    FROM users AS u
    WHERE u.id = :user_id
      AND u.deleted_at IS NULL
), deleted AS (
    UPDATE users AS u
    SET deleted_at = now()
    FROM target AS t
    WHERE u.id = t.id
      AND u.deleted_at IS NULL
      AND (:if_match::timestamptz[] IS NULL OR u.updated_at = ANY(:if_match::timestamptz[]))
    RETURNING u.id
)
SELECT t.matched, d.id
FROM target AS t
LEFT JOIN deleted AS d ON d.id = t.id

-- restore_user: bring back a soft-deleted user (a live one is returned unchanged).
-- @returns one
-- @optional-params if_match
-- @not-null matched
-- @includes-deleted
-- Returns: no row if no user has this id. Otherwise one row: `matched` (If-Match held
-- when the statement began) and, when it still held on the locked row, the user shaped
-- like User. Raises unique_violation (23505) when a live user now holds the same email.
-- :user_id   the user's id
-- :if_match  If-Match: the updated_at values the caller read (NULL: any)
WITH target AS (
    SELECT u.id,
           (:if_match::timestamptz[] IS NULL OR u.updated_at = ANY(:if_match::timestamptz[])) AS matched
    FROM users AS u
    WHERE u.id = :user_id
), restored AS (
    UPDATE users AS u
    SET deleted_at = NULL,
        updated_at = CASE WHEN u.deleted_at IS NULL THEN u.updated_at
                          ELSE GREATEST(now(), u.updated_at + interval '1 microsecond') END
    FROM target AS t
    WHERE u.id = t.id
      AND (:if_match::timestamptz[] IS NULL OR u.updated_at = ANY(:if_match::timestamptz[]))
    RETURNING u.id, u.email, u.name, u.created_at, u.updated_at
)
SELECT t.matched, r.id, r.email, r.name, r.created_at, r.updated_at
FROM target AS t
LEFT JOIN restored AS r ON r.id = t.id

-- update_user: change a live user's email, name and/or password; updated_at moves
-- forward (it is the ETag's version). A new password revokes every login of the user
-- except the caller's own.
-- @returns one
-- @optional-params email, name, password_hash, keep_family, if_match
-- @not-null matched
-- Returns: no row if the user is missing or deleted. Otherwise one row: `matched`
-- (If-Match held when the statement began) and, when If-Match still held on the locked
-- row, the updated user shaped like User.
-- :user_id        the user's id
-- :email          new email, or NULL to keep it
-- :name           new name (trimmed), or NULL to keep it
-- :password_hash  hash of the new password, or NULL to keep it
-- :keep_family    the caller's login (its refresh tokens survive a password change)
-- :if_match       If-Match: the updated_at values the caller read (NULL: any)
WITH target AS (
    SELECT u.id,
           (:if_match::timestamptz[] IS NULL OR u.updated_at = ANY(:if_match::timestamptz[])) AS matched
    FROM users AS u
    WHERE u.id = :user_id
      AND u.deleted_at IS NULL
), changed AS (
    UPDATE users AS u
    SET email = COALESCE(:email::text, u.email),
        name = COALESCE(:name::text, u.name),
        password_hash = COALESCE(:password_hash::text, u.password_hash),
        updated_at = GREATEST(now(), u.updated_at + interval '1 microsecond')
    FROM target AS t
    WHERE u.id = t.id
      AND u.deleted_at IS NULL
      AND (:if_match::timestamptz[] IS NULL OR u.updated_at = ANY(:if_match::timestamptz[]))
    RETURNING u.id, u.email, u.name, u.created_at, u.updated_at
), revoked AS (
    UPDATE refresh_families AS f
    SET revoked_at = now()
    FROM changed AS c
    WHERE f.user_id = c.id
      AND :password_hash::text IS NOT NULL
      AND f.revoked_at IS NULL
      AND f.id IS DISTINCT FROM :keep_family::uuid
)
SELECT t.matched, c.id, c.email, c.name, c.created_at, c.updated_at
FROM target AS t
LEFT JOIN changed AS c ON c.id = t.id

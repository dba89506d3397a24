-- restore_post: bring back a soft-deleted post of a live author when the caller is its
-- author or an admin (a live post is returned unchanged).
-- @returns one
-- @optional-params if_match
-- @not-null allowed, visible, matched
-- Returns: no row if no such post exists or its author is deleted (restore the user
-- first). Otherwise one row: `allowed`, `visible` (allowed, or a live published post:
-- a deleted post is visible to nobody else, so its existence is not told) and, when
-- allowed (and If-Match held: `matched`, as in update_post), the post shaped like Post.
-- :post_id    the post's id
-- :caller_id  the signed-in caller's id
-- :is_admin   whether the caller is an admin
-- :if_match   If-Match: the updated_at values the caller read (NULL: any)
-- @includes-deleted
WITH target AS (
    SELECT p.id, (p.author_id = :caller_id::uuid OR :is_admin::boolean) AS allowed,
           p.published AND p.deleted_at IS NULL AS published,
           (:if_match::timestamptz[] IS NULL OR p.updated_at = ANY(:if_match::timestamptz[])) AS matched
    FROM posts AS p
    JOIN users AS u ON u.id = p.author_id
    WHERE p.id = :post_id
      AND u.deleted_at IS NULL
), restored AS (
    UPDATE posts AS p
    SET deleted_at = NULL,
        updated_at = CASE WHEN p.deleted_at IS NULL THEN p.updated_at
                          ELSE GREATEST(now(), p.updated_at + interval '1 microsecond') END
    FROM target AS t, users AS u
    WHERE p.id = t.id
      AND t.allowed
      AND (:if_match::timestamptz[] IS NULL OR p.updated_at = ANY(:if_match::timestamptz[]))
      AND u.id = p.author_id
      AND u.deleted_at IS NULL
    RETURNING p.id, p.author_id, p.title, p.content, p.published, p.created_at, p.updated_at,
              json_build_object('id', u.id, 'name', u.name) AS author
)
SELECT t.allowed, t.published OR t.allowed AS visible, t.matched,
       r.id, r.author_id, r.title, r.content, r.published, r.created_at, r.updated_at, r.author
FROM target AS t
LEFT JOIN restored AS r ON r.id = t.id

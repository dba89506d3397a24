-- get_user_with_posts: one live user and the 20 newest of its live posts the caller may
-- see (drafts only for the author and admins), in one statement.
-- @returns one
-- @optional-params caller_id
-- @not-null posts
-- Returns: at most one row shaped like User plus `posts`, a JSON array of Post
-- objects (each with its author), newest first; [] when none is visible. `email` is
-- NULL unless the caller is that user or an admin.
-- :user_id    the user's id
-- :caller_id  the signed-in caller's id; NULL for anonymous
-- :is_admin   whether the caller is an admin
SELECT u.id,
       CASE WHEN u.id = :caller_id::uuid OR :is_admin::boolean THEN u.email END AS email,
       u.name, u.created_at, u.updated_at,
       COALESCE(recent.posts, '[]'::json) AS posts
FROM users AS u
LEFT JOIN LATERAL (
    SELECT json_agg(
               json_build_object(
                   'id', p.id,
                   'author_id', p.author_id,
                   'title', p.title,
                   'content', p.content,
                   'published', p.published,
                   'created_at', p.created_at,
                   'updated_at', p.updated_at,
                   'author', json_build_object('id', u.id, 'name', u.name)
               )
               ORDER BY p.created_at DESC, p.id DESC
           ) AS posts
    FROM (
        SELECT p.id, p.author_id, p.title, p.content, p.published, p.created_at, p.updated_at
        FROM posts AS p
        WHERE p.author_id = u.id
          AND p.deleted_at IS NULL
          AND (p.published OR p.author_id = :caller_id::uuid OR :is_admin::boolean)
        ORDER BY p.created_at DESC, p.id DESC
        LIMIT 20
    ) AS p
) AS recent ON true
WHERE u.id = :user_id
  AND u.deleted_at IS NULL

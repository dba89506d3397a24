-- get_user_with_posts: one live user and their 20 newest live posts, in one statement.
-- @returns one
-- @not-null posts
-- Returns: at most one row shaped like User plus `posts`, a JSON array of Post
-- objects (each with its author), newest first; [] when the user has none.
-- :user_id  the user's id
SELECT u.id, u.email, u.name, u.created_at, u.updated_at,
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
        ORDER BY p.created_at DESC, p.id DESC
        LIMIT 20
    ) AS p
) AS recent ON true
WHERE u.id = :user_id
  AND u.deleted_at IS NULL

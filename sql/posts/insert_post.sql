-- insert_post: create a post for a live author, returning it with its author.
-- @returns one
-- @not-null author
-- Returns: the new row shaped like Post, or no row (nothing inserted) when the
-- author is missing or deleted.
-- :author_id  the author's id
-- :title      1..200 characters
-- :content    0..100000 characters
-- :published  visibility flag
WITH author AS (
    SELECT u.id, u.name
    FROM users AS u
    WHERE u.id = :author_id
      AND u.deleted_at IS NULL
    -- A concurrent soft delete of the author waits for this insert (or wins first).
    FOR SHARE
), inserted AS (
    INSERT INTO posts (author_id, title, content, published)
    SELECT author.id, :title::text, :content::text, :published::boolean
    FROM author
    RETURNING id, author_id, title, content, published, created_at, updated_at
)
SELECT i.id, i.author_id, i.title, i.content, i.published, i.created_at, i.updated_at,
       json_build_object('id', a.id, 'name', a.name) AS author
FROM inserted AS i
JOIN author AS a ON a.id = i.author_id

-- insert_posts: create posts for live authors in one statement and one commit: the
-- create_post requests that arrived together (service/posts/writes.py), each one a row of
-- the arrays, which all have the same length.
-- @returns many
-- @not-null n, author
-- Returns: per post inserted, `n` (its position in the arrays, from 1) and the row shaped
-- like Post; no row for a position whose author is missing, deleted, or locked by a
-- change in progress (the caller writes those again one by one, with insert_post).
-- :author_ids  the authors' ids
-- :titles      1..200 characters each
-- :contents    0..100000 characters each
-- :published   visibility flags
WITH input AS MATERIALIZED (
    -- Ids made here, so the inserted rows can be matched to their positions.
    SELECT gen_random_uuid() AS id, i.author_id, i.title, i.content, i.published, i.n
    FROM unnest(
        :author_ids::uuid[], :titles::text[], :contents::text[], :published::boolean[]
    ) WITH ORDINALITY AS i (author_id, title, content, published, n)
), author AS (
    SELECT u.id, u.name
    FROM users AS u
    WHERE u.id IN (SELECT input.author_id FROM input)
      AND u.deleted_at IS NULL
    -- A concurrent soft delete of an author waits for these inserts (or wins first).
    -- An author being changed right now is skipped rather than waited for: one busy row
    -- must not hold up the batch's other posts (insert_post waits for it instead).
    FOR SHARE SKIP LOCKED
), inserted AS (
    INSERT INTO posts (id, author_id, title, content, published)
    SELECT i.id, i.author_id, i.title, i.content, i.published
    FROM input AS i
    JOIN author AS a ON a.id = i.author_id
    ORDER BY i.n
    RETURNING id, author_id, title, content, published, created_at, updated_at
)
SELECT i.n, p.id, p.author_id, p.title, p.content, p.published, p.created_at, p.updated_at,
       json_build_object('id', a.id, 'name', a.name) AS author
FROM inserted AS p
JOIN input AS i ON i.id = p.id
JOIN author AS a ON a.id = p.author_id
ORDER BY i.n

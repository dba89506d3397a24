-- list_posts: a page of live, published posts by live authors, newest first (keyset on
-- created_at, id). Drafts are never listed here, whoever asks.
-- @returns many
-- @optional-params published, before_created_at, before_id
-- @not-null author
-- Returns: rows shaped like Post (author as a JSON object {id, name}).
-- :published          false: an empty page (drafts are not listed); true or NULL: all
-- :before_created_at  cursor: only rows strictly older than (this, :before_id); NULL = first page
-- :before_id          cursor id; NULL = first page
-- :limit              rows wanted (the page size + 1, to tell whether a next page exists)
SELECT p.id, p.author_id, p.title, p.content, p.published, p.created_at, p.updated_at,
       json_build_object('id', u.id, 'name', u.name) AS author
FROM posts AS p
JOIN users AS u ON u.id = p.author_id
WHERE p.deleted_at IS NULL
  AND u.deleted_at IS NULL
  AND p.published
  AND COALESCE(:published::boolean, true)
  AND (p.created_at, p.id) < (
      COALESCE(:before_created_at::timestamptz, 'infinity'),
      COALESCE(:before_id::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff')
  )
ORDER BY p.created_at DESC, p.id DESC
LIMIT :limit

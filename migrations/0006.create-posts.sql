-- depends: 0005.users-drop-email-key
-- posts is created here, empty, so its indexes are built in the same transaction:
-- instant, and nobody can write to the table before it commits (CONCURRENTLY would
-- need separate non-transactional migrations and buy nothing).
-- The foreign key takes a SHARE ROW EXCLUSIVE lock on users: briefly, and lock_timeout
-- keeps it from queueing traffic on users behind it.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '1min';
CREATE TABLE posts (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    author_id uuid NOT NULL REFERENCES users (id),
    title text NOT NULL,
    content text NOT NULL DEFAULT '',
    published boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);
-- GET /api/posts (optionally ?published=): live posts newest first.
CREATE INDEX posts_live_created_idx ON posts (created_at DESC, id DESC)
    WHERE deleted_at IS NULL;
-- GET /api/users/{id}/posts, ?author_id=, ?include=posts: one author's posts newest
-- first.
CREATE INDEX posts_author_created_idx ON posts (author_id, created_at DESC, id DESC)
    WHERE deleted_at IS NULL;

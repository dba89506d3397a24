-- depends: 0002.users-uuid-soft-delete
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

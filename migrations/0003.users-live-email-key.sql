-- depends: 0002.users-uuid-soft-delete
-- transactional: false
-- squawk-disable-assume-in-transaction
-- Email is unique among live users, case-insensitively; this index also serves the
-- `?email=` filter and the restore-conflict check. Built CONCURRENTLY, so users stays
-- readable and writable meanwhile; the case-sensitive UNIQUE (email) still holds
-- until 0005 drops it, once this index exists and is valid.
--
-- yoyo runs each statement on its own (autocommit) and, when one fails, undoes the
-- statements before it through the rollback file, paired in reverse: the DROP INDEX
-- there is paired with the first SET here. So a failed build, which leaves an INVALID
-- index behind, is dropped again at once; keep the SETs first.
--
-- No lock or statement timeout: a concurrent build blocks neither reads nor writes but
-- legitimately runs as long as the table is big and waits for older transactions; a
-- timeout inherited from the role or server would abort it halfway.
SET lock_timeout = 0;
SET statement_timeout = 0;
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS users_live_email_key
    ON users (lower(email)) WHERE deleted_at IS NULL;
-- IF NOT EXISTS also accepts an INVALID index that an interrupted run left behind
-- (a killed process gets no cleanup): refuse it, so this run fails, drops it (see
-- above) and the next run builds it properly.
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT FROM pg_index
        WHERE indexrelid = to_regclass('users_live_email_key') AND indisvalid
    ) THEN
        RAISE EXCEPTION 'index users_live_email_key is not valid (an earlier build was '
            'interrupted); this run drops it: apply again';
    END IF;
END
$$;

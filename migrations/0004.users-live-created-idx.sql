-- depends: 0003.users-live-email-key
-- transactional: false
-- squawk-disable-assume-in-transaction
-- Keyset pagination of live users, newest first. Built CONCURRENTLY, so users stays
-- readable and writable meanwhile.
--
-- As in 0003: the SETs come first so that yoyo's undo of a failed run (the rollback
-- file, paired in reverse) drops the INVALID index a failed build leaves behind, and
-- there are no timeouts because a concurrent build blocks nobody but may run long.
SET lock_timeout = 0;
SET statement_timeout = 0;
CREATE INDEX CONCURRENTLY IF NOT EXISTS users_live_created_idx
    ON users (created_at DESC, id DESC) WHERE deleted_at IS NULL;
-- Refuse an INVALID index left by an interrupted run (see 0003).
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT FROM pg_index
        WHERE indexrelid = to_regclass('users_live_created_idx') AND indisvalid
    ) THEN
        RAISE EXCEPTION 'index users_live_created_idx is not valid (an earlier build was '
            'interrupted); this run drops it: apply again';
    END IF;
END
$$;

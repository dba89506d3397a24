-- transactional: false
-- depends: 0002.second
CREATE INDEX CONCURRENTLY IF NOT EXISTS slow_things_note_idx ON slow_things (note);

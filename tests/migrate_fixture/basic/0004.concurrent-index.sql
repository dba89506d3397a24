-- transactional: false
-- depends: 0003.widen-name
CREATE INDEX CONCURRENTLY IF NOT EXISTS things_id_name_idx ON things (id, name);

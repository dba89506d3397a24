-- list_applied_migrations: ids of the migrations yoyo has recorded as applied.
-- @returns many
-- Returns: one row per applied migration.
SELECT m.migration_id
FROM _yoyo_migration AS m

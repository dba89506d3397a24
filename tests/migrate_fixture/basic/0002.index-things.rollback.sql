DROP INDEX things_name_idx;

-- depends: 0001.create-things
CREATE INDEX things_name_idx ON things (name);

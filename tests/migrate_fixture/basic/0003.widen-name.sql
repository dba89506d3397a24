-- depends: 0002.index-things
ALTER TABLE things ALTER COLUMN name TYPE varchar(300);

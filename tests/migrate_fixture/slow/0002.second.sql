-- depends: 0001.slow-start
ALTER TABLE slow_things ADD COLUMN note text;

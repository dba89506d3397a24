ALTER TABLE slow_things DROP COLUMN note;

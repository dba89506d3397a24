DROP TABLE slow_things;

-- Nothing to undo: a validated constraint stays as 0008 made it.
SELECT 1;

DROP TABLE children; DROP TABLE parents; DROP TABLE everything; DROP DOMAIN short_text; DROP TYPE mood;

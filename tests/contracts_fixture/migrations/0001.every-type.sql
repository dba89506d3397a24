-- A schema that exercises every type mapping and nullability rule of the generator.
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN short_text AS varchar(20);

CREATE TABLE everything (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    small smallint NOT NULL,
    whole integer NOT NULL,
    big bigint NOT NULL,
    real_number real NOT NULL,
    double_number double precision NOT NULL,
    money numeric(12, 2) NOT NULL,
    label text NOT NULL,
    code varchar(10) NOT NULL,
    letter char(1) NOT NULL,
    nickname short_text NOT NULL,
    flag boolean NOT NULL,
    happened_at timestamptz NOT NULL,
    local_time timestamp NOT NULL,
    day date NOT NULL,
    clock time NOT NULL,
    span interval NOT NULL,
    blob bytea NOT NULL,
    doc jsonb NOT NULL,
    raw_doc json NOT NULL,
    tags text[] NOT NULL,
    scores integer[] NOT NULL,
    feeling mood NOT NULL,
    note text
);

CREATE TABLE parents (
    id integer PRIMARY KEY,
    name text NOT NULL
);

CREATE TABLE children (
    id integer PRIMARY KEY,
    parent_id integer REFERENCES parents (id),
    name text NOT NULL,
    deleted_at timestamptz
);

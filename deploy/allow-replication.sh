#!/bin/sh
# Mounted into the db service's /docker-entrypoint-initdb.d by docker-compose.yml: runs
# once, when db initialises its data volume. A role for streaming standbys and the
# pg_hba line that lets it connect, for the compose `replica` profile (docs/deploy.md).
# On a volume made before this script existed, run the two steps by hand.
set -e
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD '${REPLICATION_PASSWORD:-replicator}';
SQL
echo "host replication replicator all scram-sha-256" >> "$PGDATA/pg_hba.conf"

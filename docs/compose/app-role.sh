#!/bin/sh
# PostgreSQL image init script (runs once, on an empty data directory, as POSTGRES_USER):
# creates the application role the replicas connect as. Its privileges come from grants.sql,
# applied by the `grants` service after every `migrate`.
set -eu
psql -v ON_ERROR_STOP=1 -v app_password="$APP_DB_PASSWORD" --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE ROLE mcp_app LOGIN PASSWORD :'app_password';
SQL

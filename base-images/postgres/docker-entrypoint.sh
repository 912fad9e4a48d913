#!/usr/bin/env bash
# Entry point of the postgres stand-in: initialises PGDATA once, then execs postgres.
set -euo pipefail

# usage: database_exists
database_exists() { [ -s "$PGDATA/PG_VERSION" ]; }

# usage: init_database
init_database() {
	if [ -z "${POSTGRES_PASSWORD:-}" ]; then
		cat >&2 <<-'MSG'
			error: POSTGRES_PASSWORD is not set and the database is uninitialised.
			       Set POSTGRES_PASSWORD to a non-empty password (make init writes one to .env).
		MSG
		exit 1
	fi
	local user=${POSTGRES_USER:-postgres} db=${POSTGRES_DB:-${POSTGRES_USER:-postgres}}
	initdb --username="$user" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
		--auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 >/dev/null
	printf "listen_addresses = '*'\n" >> "$PGDATA/postgresql.conf"
	printf 'host all all all scram-sha-256\n' >> "$PGDATA/pg_hba.conf"
	if [ "$db" != postgres ]; then
		postgres --single -D "$PGDATA" -j postgres >/dev/null <<-SQL
			CREATE DATABASE "$db" OWNER "$user";
		SQL
	fi
	echo "docker-entrypoint: initialised $PGDATA (user $user, database $db)"
}

if [ "${1:-}" = postgres ]; then
	if database_exists; then
		echo "docker-entrypoint: $PGDATA contains a database; skipping initialisation"
	else
		init_database
	fi
fi
exec "$@"

#!/usr/bin/env bash
# start-postgres.sh starts the machine's PostgreSQL, makes sure a test role and
# database exist, and prints their connection string (for ISOL8_TEST_PG) on
# standard output; everything else goes to standard error. It is idempotent:
# run it as often as you like.
#
# Debian layout (pg_ctlcluster). PostgreSQL is installed with apt when missing.
# Override with ISOL8_PG_VERSION, ISOL8_PG_CLUSTER, ISOL8_PG_USER,
# ISOL8_PG_PASSWORD, ISOL8_PG_DB.
set -euo pipefail

user=${ISOL8_PG_USER:-isol8}
password=${ISOL8_PG_PASSWORD:-isol8}
db=${ISOL8_PG_DB:-isol8_test}
cluster=${ISOL8_PG_CLUSTER:-main}

log() { echo "start-postgres: $*" >&2; }

# Run as root directly, else through sudo.
as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi
}
as_postgres() {
	if [ "$(id -un)" = postgres ]; then "$@"
	elif [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"
	else sudo -n -u postgres "$@"; fi
}

# Serialise concurrent runs (parallel test packages). The lock's descriptor
# is closed for the server it starts, which would otherwise hold it forever.
exec 9>"${TMPDIR:-/tmp}/isol8-start-postgres.lock"
flock -w 300 9 || { log "timed out waiting for another run's lock"; exit 1; }

if ! command -v pg_lsclusters >/dev/null 2>&1; then
	log "PostgreSQL is not installed; installing it with apt"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2 9>&-
fi

version=${ISOL8_PG_VERSION:-$(pg_lsclusters -h | awk '{print $1}' | sort -V | tail -1)}
if [ -z "$version" ]; then
	version=$(ls /usr/lib/postgresql | sort -V | tail -1)
	log "creating cluster $version/$cluster"
	as_root pg_createcluster "$version" "$cluster" >&2
fi
if ! pg_lsclusters -h | awk -v v="$version" -v c="$cluster" '$1==v && $2==c {f=1} END {exit !f}'; then
	log "creating cluster $version/$cluster"
	as_root pg_createcluster "$version" "$cluster" >&2
fi

status=$(pg_lsclusters -h | awk -v v="$version" -v c="$cluster" '$1==v && $2==c {print $4}')
port=$(pg_lsclusters -h | awk -v v="$version" -v c="$cluster" '$1==v && $2==c {print $3}')
if [ "$status" != online ]; then
	log "starting cluster $version/$cluster on port $port"
	# --skip-systemctl-redirect: containers often have no running systemd.
	as_root pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start >&2 9>&- ||
		as_root pg_ctlcluster "$version" "$cluster" start >&2 9>&-
fi

for _ in $(seq 1 60); do
	if pg_isready -q -h 127.0.0.1 -p "$port"; then break; fi
	sleep 0.5
done
pg_isready -h 127.0.0.1 -p "$port" >&2 || { log "PostgreSQL did not become ready"; exit 1; }

psql_admin() { as_postgres psql -X -q -v ON_ERROR_STOP=1 -p "$port" -d postgres "$@"; }

if [ "$(psql_admin -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$user'")" != 1 ]; then
	log "creating role $user"
	psql_admin -c "CREATE ROLE \"$user\" LOGIN PASSWORD '$password'"
else
	psql_admin -c "ALTER ROLE \"$user\" LOGIN PASSWORD '$password'"
fi
if [ "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]; then
	log "creating database $db"
	psql_admin -c "CREATE DATABASE \"$db\" OWNER \"$user\""
fi

echo "postgres://$user:$password@127.0.0.1:$port/$db?sslmode=disable"

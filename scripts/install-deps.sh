#!/usr/bin/env bash
# Installs what isol8 needs on a Debian 12 or Ubuntu machine and starts the
# Docker engine. Safe to run again: it installs only what is missing and
# starts the engine only when it does not answer.
#
#   scripts/install-deps.sh [--with-postgres]
#
# --with-postgres  also install PostgreSQL (the test suite's auth store)
#
# Environment: ISOL8_DOCKER_WAIT  seconds to wait for the engine (default 60)
set -euo pipefail

with_postgres=false
for arg in "$@"; do
	case "$arg" in
	--with-postgres) with_postgres=true ;;
	-h | --help)
		sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "install-deps: unknown option $arg (try --help)" >&2
		exit 2
		;;
	esac
done

say() { echo "install-deps: $*"; }
die() {
	echo "install-deps: error: $*" >&2
	exit 1
}

if [[ $EUID -ne 0 ]]; then
	command -v sudo >/dev/null || die "run this as root (sudo is not installed)"
	say "not root: running again with sudo"
	exec sudo -E bash "$0" "$@"
fi

command -v apt-get >/dev/null || die "this script needs apt-get (Debian or Ubuntu)"
export DEBIAN_FRONTEND=noninteractive
# A non-login root shell may lack the sbin folders, where dockerd and
# debootstrap live.
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

# installed PKG: the package is installed (per dpkg).
installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# want PKG TEST…: queue PKG unless the command TEST… succeeds.
missing=()
want() {
	local pkg=$1
	shift
	if "$@"; then
		say "$pkg: present"
	else
		say "$pkg: missing, will install"
		missing+=("$pkg")
	fi
}

have() { command -v "$1" >/dev/null; }

have_postgres() {
	installed postgresql || compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
}

# Docker from Docker's own packages (docker-ce) counts: docker.io would
# conflict with it.
want docker.io have dockerd
want debootstrap have debootstrap
want ca-certificates installed ca-certificates
if $with_postgres; then
	want postgresql have_postgres
fi

if ((${#missing[@]} > 0)); then
	say "apt-get update"
	apt-get update -q
	say "apt-get install ${missing[*]}"
	apt-get install -y -q --no-install-recommends "${missing[@]}"
else
	say "all packages present"
fi

# Start the Docker engine unless it answers already.
wait_s=${ISOL8_DOCKER_WAIT:-60}
log=/var/log/isol8-dockerd.log
if docker info >/dev/null 2>&1; then
	say "Docker engine is running"
	exit 0
fi

started_by=""
dockerd_pid=""
if [[ -d /run/systemd/system ]]; then
	say "starting Docker with systemctl start docker"
	systemctl start docker || die "systemctl start docker failed; see journalctl -u docker"
	started_by="systemd (journalctl -u docker)"
elif pid=$(cat /var/run/docker.pid 2>/dev/null) && [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
	# Never start a second engine beside one that is still coming up.
	say "dockerd (pid $pid) is already running; waiting for it to answer"
	started_by="the running dockerd (pid $pid)"
else
	say "no systemd: starting dockerd in the background, log in $log"
	nohup setsid dockerd </dev/null >>"$log" 2>&1 &
	dockerd_pid=$!
	started_by="dockerd (log $log)"
fi

say "waiting up to ${wait_s}s for the Docker engine to answer"
for ((i = 0; i < wait_s; i++)); do
	if docker info >/dev/null 2>&1; then
		say "Docker engine is running"
		exit 0
	fi
	if [[ -n $dockerd_pid ]] && ! kill -0 "$dockerd_pid" 2>/dev/null; then
		echo "--- last lines of $log:" >&2
		tail -n 20 "$log" >&2
		die "dockerd exited at start; see $log"
	fi
	sleep 1
done
if [[ $started_by == dockerd* && -f $log ]]; then
	echo "--- last lines of $log:" >&2
	tail -n 20 "$log" >&2
fi
die "the Docker engine did not answer within ${wait_s}s (started by $started_by); check its log, or set ISOL8_DOCKER_WAIT to wait longer"

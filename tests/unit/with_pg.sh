#!/bin/sh
# Runs a command with a throwaway PostgreSQL server: its URL in
# APUBID_TEST_PG_URL, the server stopped and its files removed afterwards.
# The server is Debian's postgresql 15, run as the postgres account when
# started as root (initdb refuses root), on a free loopback port with a
# socket directory of its own. When no server can be started, the command
# runs without the URL and the tests that need it fail.
BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
D=$(mktemp -d /tmp/apubid-pg-XXXXXX) || exit 1
as=""
if [ "$(id -u)" = 0 ]; then
	chown postgres "$D" && chmod 700 "$D"
	as="runuser -u postgres --"
fi
pid=""
stop() {
	if [ -n "$pid" ]; then
		# The server itself, not runuser, which does not pass SIGINT on:
		# a fast shutdown.
		kill -INT "$(head -n 1 "$D/data/postmaster.pid" 2>/dev/null)" 2>/dev/null ||
			kill -INT "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	rm -rf "$D"
}
trap stop EXIT
trap 'exit 1' INT TERM
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
if [ -x "$BIN/initdb" ] &&
   $as "$BIN/initdb" -D "$D/data" -U postgres -A trust --no-sync >"$D/initdb.log" 2>&1; then
	# fsync off: a test server's data is thrown away; the tests are not
	# a measure of durability cost.
	$as "$BIN/postgres" -D "$D/data" -p "$port" -c listen_addresses=127.0.0.1 \
		-c unix_socket_directories="$D" -c fsync=off -c max_connections=200 \
		>"$D/server.log" 2>&1 &
	pid=$!
	i=0
	until "$BIN/pg_isready" -q -h 127.0.0.1 -p "$port"; do
		i=$((i + 1))
		if [ $i -gt 300 ] || ! kill -0 "$pid" 2>/dev/null; then # 30 s
			echo "with_pg.sh: PostgreSQL did not start:" >&2
			cat "$D/server.log" >&2
			break
		fi
		sleep 0.1
	done
	APUBID_TEST_PG_URL="postgresql://postgres@127.0.0.1:$port/postgres"
	export APUBID_TEST_PG_URL
else
	echo "with_pg.sh: cannot create a PostgreSQL cluster with $BIN/initdb:" >&2
	cat "$D/initdb.log" >&2 2>/dev/null
fi
"$@"

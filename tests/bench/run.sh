#!/bin/bash
# run.sh - runs apubid's benchmark (bench.py beside this file), as `make
# bench` does. Environment: APUBID (the binary to measure, default ./apubid
# of the repository), BENCH_OUT (the table, default build/bench.md),
# BENCH_QUICK=1 for a short check of the harness; bench.py lists the rest.
# Every server it starts is stopped when it ends, however it ends.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export PATH="$PATH:/usr/sbin"
for tool in wrk nginx; do
	command -v "$tool" >/dev/null || {
		echo "bench: $tool is missing: apt-get install $tool (or make deps)" >&2
		exit 2
	}
done
exec /usr/bin/python3 "$here/bench.py" "$@"

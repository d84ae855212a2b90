#!/bin/bash
# run.sh - runs apubid's benchmark (bench.py beside this file), as `make
# bench` does. Environment: APUBID (the binary to measure, default ./apubid
# of the repository), BENCH_OUT (the table, default build/bench.md),
# BENCH_QUICK=1 for a short check of the harness; bench.py lists the rest.
# Two sections: serving (bench.py) and transfer (transfer.py, its table
# beside BENCH_OUT as bench-transfer.md; it lists its own settings).
# BENCH_ONLY=serving or BENCH_ONLY=transfer runs one of them; arguments
# (scenario names) go to that one, and to bench.py without BENCH_ONLY.
# Every server it starts is stopped when it ends, however it ends.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export PATH="$PATH:/usr/sbin"
case "${BENCH_ONLY:-}" in
transfer) exec /usr/bin/python3 "$here/transfer.py" "$@" ;;
"" | serving) ;;
*) echo "bench: BENCH_ONLY is serving or transfer, not $BENCH_ONLY" >&2; exit 2 ;;
esac
for tool in wrk nginx; do
	command -v "$tool" >/dev/null || {
		echo "bench: $tool is missing: apt-get install $tool (or make deps)" >&2
		exit 2
	}
done
if [ -n "${BENCH_ONLY:-}" ] || [ $# -gt 0 ]; then
	exec /usr/bin/python3 "$here/bench.py" "$@"
fi
status=0
/usr/bin/python3 "$here/bench.py" || status=$?
/usr/bin/python3 "$here/transfer.py" || { s=$?; [ "$status" -ne 0 ] || status=$s; }
exit "$status"

-- report.lua - the done() hook shared by the benchmark's wrk scripts.
--
-- wrk calls done() once, in its main Lua state, after every thread has
-- stopped. It prints one machine-readable line that bench.py parses:
-- throughput, latency percentiles (microseconds) and every kind of error.
-- "status" counts answers with an HTTP status >= 400 (wrk's own tally, so
-- no response() hook is needed, which would slow wrk down); connect, read,
-- write and timeout count socket-level failures; bytes is all that was
-- read, headers included.
function done(summary, latency, requests)
	local e = summary.errors
	local secs = summary.duration / 1e6
	io.write(string.format(
		"BENCH requests=%d duration_us=%d rps=%.2f p50_us=%.0f p99_us=%.0f" ..
		" max_us=%.0f bytes=%d status=%d connect=%d read=%d write=%d timeout=%d\n",
		summary.requests, summary.duration, summary.requests / secs,
		latency:percentile(50), latency:percentile(99), latency.max,
		summary.bytes, e.status, e.connect, e.read, e.write, e.timeout))
end

/*
 * metrics.c - counters for GET /metrics, in the Prometheus text exposition
 * format 0.0.4.
 *
 * Every counter is a C11 atomic bumped with relaxed ordering: serving
 * threads, workers and the notifier count without a lock, and a scrape
 * reads each value once. A scrape is therefore not a snapshot (a request
 * that ends during it may show in its counter but not yet in its
 * histogram); every value is monotonic, which is all Prometheus needs.
 *
 * Label values come from small fixed sets so the number of series stays
 * bounded whatever clients send: operations (anything unknown counts as
 * "other"), HTTP statuses 100..599 (anything else as 0, shown "other"),
 * error kinds and notification outcomes. Gauges of tasks by state and the
 * queue depth are read from the store at scrape time, so they hold across
 * restarts and across daemons sharing one store.
 */
#include "apubid.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const metrics_ops[] = { "LoadAsset", "PurgeAsset", "GetTaskStatus",
					   "wsdl",      "xsd",        "view",
					   "metrics",   "healthz",    "other" };
#define METRICS_NOPS ((int)(sizeof metrics_ops / sizeof metrics_ops[0]))
#define METRICS_OTHER_OP (METRICS_NOPS - 1)

/* Upper bounds of the duration histogram, in microseconds (0.5 ms .. 5 s). */
static const int64_t metrics_bounds_us[] = { 500,    1000,   2500,    5000,    10000,
					     25000,  50000,  100000,  250000,  500000,
					     1000000, 2500000, 5000000 };
#define METRICS_NBOUNDS ((int)(sizeof metrics_bounds_us / sizeof metrics_bounds_us[0]))

static const char *const metrics_err_kinds[] = { "transient", "permanent", "timeout", "other" };
#define METRICS_NERR ((int)(sizeof metrics_err_kinds / sizeof metrics_err_kinds[0]))

static const char *const metrics_outcomes[] = { "delivered", "retry", "failed", "other" };
#define METRICS_NOUT ((int)(sizeof metrics_outcomes / sizeof metrics_outcomes[0]))

static _Atomic uint64_t metrics_requests[METRICS_NOPS][600];
/* Per operation: one slot per bound plus +Inf, not cumulative (the render
 * adds them up), the sum in microseconds and the count. */
static _Atomic uint64_t metrics_buckets[METRICS_NOPS][METRICS_NBOUNDS + 1];
static _Atomic uint64_t metrics_dur_sum_us[METRICS_NOPS];
static _Atomic uint64_t metrics_dur_count[METRICS_NOPS];
static _Atomic uint64_t metrics_bytes;
static _Atomic uint64_t metrics_files;
static _Atomic uint64_t metrics_errors[METRICS_NERR];
static _Atomic uint64_t metrics_retries;
static _Atomic uint64_t metrics_notifications[METRICS_NOUT];
static int64_t metrics_start_ms;

/* The process start time, taken before main runs; cheaper and more
 * accurate than asking main.c to call an init function. */
__attribute__((constructor)) static void metrics_init(void)
{
	metrics_start_ms = util_now_ms();
}

static void metrics_add(_Atomic uint64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static uint64_t metrics_get(_Atomic uint64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

/* The index of `name` in a table whose last entry is "other". */
static int metrics_index(const char *const *names, int n, const char *name)
{
	for (int i = 0; name && i < n - 1; i++)
		if (strcmp(names[i], name) == 0)
			return i;
	return n - 1;
}

void metrics_request(const char *op, int http_status, int64_t usec)
{
	int o = metrics_index(metrics_ops, METRICS_NOPS, op);
	if (http_status < 100 || http_status > 599)
		http_status = 0;
	if (usec < 0)
		usec = 0;
	metrics_add(&metrics_requests[o][http_status], 1);
	int b = 0;
	while (b < METRICS_NBOUNDS && usec > metrics_bounds_us[b])
		b++;
	metrics_add(&metrics_buckets[o][b], 1);
	metrics_add(&metrics_dur_sum_us[o], (uint64_t)usec);
	metrics_add(&metrics_dur_count[o], 1);
}

void metrics_file(int64_t bytes)
{
	metrics_add(&metrics_files, 1);
	if (bytes > 0)
		metrics_add(&metrics_bytes, (uint64_t)bytes);
}

void metrics_xfer_error(const char *kind)
{
	metrics_add(&metrics_errors[metrics_index(metrics_err_kinds, METRICS_NERR, kind)], 1);
}

void metrics_retry(void)
{
	metrics_add(&metrics_retries, 1);
}

void metrics_notify(const char *outcome)
{
	metrics_add(&metrics_notifications[metrics_index(metrics_outcomes, METRICS_NOUT, outcome)],
		    1);
}

static void metrics_head(struct util_buf *b, const char *name, const char *type,
			 const char *help)
{
	util_buf_addf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Seconds from microseconds, exactly (no float rounding in the text):
 * "0.0005", "2.5", "5". */
static void metrics_seconds(char *buf, size_t len, uint64_t us)
{
	int n = snprintf(buf, len, "%llu.%06llu", (unsigned long long)(us / 1000000),
			 (unsigned long long)(us % 1000000));
	while (n > 0 && (size_t)n < len && buf[n - 1] == '0')
		buf[--n] = '\0';
	if (n > 0 && (size_t)n < len && buf[n - 1] == '.')
		buf[--n] = '\0';
}

char *metrics_render(struct store *s)
{
	struct util_buf b = { 0 };
	util_buf_add(&b, "", 0);
	char num[48];

	metrics_head(&b, "apubid_build_info", "gauge", "apubid's version, as a label.");
	util_buf_addf(&b, "apubid_build_info{version=\"%s\"} 1\n", APUBID_VERSION);
	metrics_head(&b, "apubid_process_start_time_seconds", "gauge",
		     "Start time of the process since the Unix epoch, in seconds.");
	util_buf_addf(&b, "apubid_process_start_time_seconds %lld.%03lld\n",
		       (long long)(metrics_start_ms / 1000), (long long)(metrics_start_ms % 1000));

	metrics_head(&b, "apubid_requests_total", "counter",
		     "HTTP requests answered, by operation and status code.");
	for (int o = 0; o < METRICS_NOPS; o++)
		for (int st = 0; st < 600; st++) {
			uint64_t v = metrics_get(&metrics_requests[o][st]);
			if (!v)
				continue;
			if (st)
				snprintf(num, sizeof num, "%d", st);
			else
				snprintf(num, sizeof num, "other");
			util_buf_addf(&b, "apubid_requests_total{op=\"%s\",status=\"%s\"} %llu\n",
				       metrics_ops[o], num, (unsigned long long)v);
		}

	metrics_head(&b, "apubid_request_duration_seconds", "histogram",
		     "Time from the start of a request to its answer, by operation.");
	for (int o = 0; o < METRICS_NOPS; o++) {
		uint64_t count = metrics_get(&metrics_dur_count[o]);
		if (!count)
			continue;
		uint64_t cum = 0;
		for (int i = 0; i <= METRICS_NBOUNDS; i++) {
			cum += metrics_get(&metrics_buckets[o][i]);
			if (i < METRICS_NBOUNDS)
				metrics_seconds(num, sizeof num, (uint64_t)metrics_bounds_us[i]);
			else
				snprintf(num, sizeof num, "+Inf");
			util_buf_addf(&b,
				       "apubid_request_duration_seconds_bucket{op=\"%s\",le=\"%s\"} %llu\n",
				       metrics_ops[o], num, (unsigned long long)cum);
		}
		metrics_seconds(num, sizeof num, metrics_get(&metrics_dur_sum_us[o]));
		util_buf_addf(&b, "apubid_request_duration_seconds_sum{op=\"%s\"} %s\n",
			       metrics_ops[o], num);
		/* The count is the +Inf bucket: read apart, the two could
		 * differ by a request that ended in between. */
		util_buf_addf(&b, "apubid_request_duration_seconds_count{op=\"%s\"} %llu\n",
			       metrics_ops[o], (unsigned long long)cum);
	}

	int64_t counts[6];
	if (s && store_count_by_state(s, counts) == 0) {
		metrics_head(&b, "apubid_tasks", "gauge", "Tasks in the store, by state.");
		for (int st = TS_QUEUED; st <= TS_CANCELLED; st++)
			util_buf_addf(&b, "apubid_tasks{state=\"%s\"} %lld\n", task_state_name(st),
				       (long long)counts[st]);
		metrics_head(&b, "apubid_queue_depth", "gauge",
			     "Tasks waiting for a worker: queued, or waiting to retry.");
		util_buf_addf(&b, "apubid_queue_depth %lld\n",
			       (long long)(counts[TS_QUEUED] + counts[TS_RETRY]));
	} else {
		log_warn("metrics: cannot count tasks by state; /metrics leaves them out");
	}
	int64_t held = s ? store_count_held(s) : -1;
	if (held >= 0) {
		metrics_head(&b, "apubid_tasks_held", "gauge",
			     "Queued or retry tasks held behind an earlier unfinished task on an"
			     " overlapping destination.");
		util_buf_addf(&b, "apubid_tasks_held %lld\n", (long long)held);
	}

	metrics_head(&b, "apubid_transferred_bytes_total", "counter",
		     "Bytes of the files loads transferred.");
	util_buf_addf(&b, "apubid_transferred_bytes_total %llu\n",
		       (unsigned long long)metrics_get(&metrics_bytes));
	metrics_head(&b, "apubid_transferred_files_total", "counter", "Files loads transferred.");
	util_buf_addf(&b, "apubid_transferred_files_total %llu\n",
		       (unsigned long long)metrics_get(&metrics_files));
	metrics_head(&b, "apubid_transfer_errors_total", "counter",
		     "Transfer attempts that ended in error, by kind.");
	for (int i = 0; i < METRICS_NERR; i++)
		util_buf_addf(&b, "apubid_transfer_errors_total{kind=\"%s\"} %llu\n",
			       metrics_err_kinds[i], (unsigned long long)metrics_get(&metrics_errors[i]));
	metrics_head(&b, "apubid_retries_total", "counter", "Task attempts scheduled again after a transient error.");
	util_buf_addf(&b, "apubid_retries_total %llu\n",
		       (unsigned long long)metrics_get(&metrics_retries));
	metrics_head(&b, "apubid_notifications_total", "counter",
		     "Notification delivery attempts, by outcome.");
	for (int i = 0; i < METRICS_NOUT; i++)
		util_buf_addf(&b, "apubid_notifications_total{outcome=\"%s\"} %llu\n",
			       metrics_outcomes[i],
			       (unsigned long long)metrics_get(&metrics_notifications[i]));
	return b.p;
}

/*
 * test_store.c - the task store: durable insert, lookup, claim order,
 * final states, crash recovery, counting, pruning, and that two
 * connections claiming at once never get the same task.
 *
 * The tests of the store's contract run twice: on SQLite, then on the
 * PostgreSQL server whose URL APUBID_TEST_PG_URL names (make unit starts
 * one, tests/unit/with_pg.sh). Without that URL the PostgreSQL half fails:
 * a backend that was not tested has not passed. Each backend then has
 * tests of its own: the SQLite file's faults; PostgreSQL's leases, fences
 * and recovery of other nodes' tasks.
 */
#include "apubid.h"
#include "harness.h"

#include "backends.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];
static char path[128];
static void make_task(struct task *t, const char *dest)
{
	memset(t, 0, sizeof *t);
	util_uuid(t->id);
	t->kind = TASK_LOAD;
	t->source = "file:///srv/ingest/a.ts";
	t->destination = (char *)dest;
	t->dest_path = (char *)dest;
	t->created_ms = util_now_ms();
}

static void test_inserted_task_reads_back_queued(void)
{
	struct store *s = store_test_fresh();
	CHECK(s);
	struct task t, got;
	make_task(&t, "dir/a.ts");
	CHECK(store_insert(s, &t) == 0);
	CHECK(store_get(s, t.id, &got) == 0);
	CHECK_STR(got.id, t.id);
	CHECK(got.kind == TASK_LOAD);
	CHECK(got.state == TS_QUEUED);
	CHECK_STR(got.source, "file:///srv/ingest/a.ts");
	CHECK_STR(got.dest_path, "dir/a.ts");
	CHECK(got.result == NULL && got.reason == NULL);
	task_clear(&got);
	store_close(s);
}

static void test_unknown_task_is_absent(void)
{
	struct store *s = store_test_fresh();
	CHECK(s);
	struct task got;
	CHECK(store_get(s, "00000000-0000-0000-0000-000000000000", &got) == 1);
	store_close(s);
}

static void test_duplicate_task_id_is_refused(void)
{
	struct store *s = store_test_fresh();
	CHECK(s);
	struct task t;
	make_task(&t, "a.ts");
	CHECK(store_insert(s, &t) == 0);
	CHECK(store_insert(s, &t) == -1);
	store_close(s);
}

static void test_claim_takes_oldest_first_and_counts_attempts(void)
{
	struct store *s = store_test_fresh();
	CHECK(s);
	struct task a, b, got;
	make_task(&a, "a.ts");
	make_task(&b, "b.ts");
	CHECK(store_insert(s, &a) == 0);
	CHECK(store_insert(s, &b) == 0);
	CHECK(store_claim(s, &got) == 0);
	CHECK_STR(got.id, a.id);
	CHECK(got.state == TS_RUNNING);
	CHECK(got.attempts == 1);
	task_clear(&got);
	CHECK(store_claim(s, &got) == 0);
	CHECK_STR(got.id, b.id);
	task_clear(&got);
	CHECK(store_claim(s, &got) == 1);
	store_close(s);
}

static void test_finish_records_result_and_reason(void)
{
	struct store *s = store_test_fresh();
	CHECK(s);
	struct task a, b, got;
	make_task(&a, "a.ts");
	make_task(&b, "b.ts");
	CHECK(store_insert(s, &a) == 0 && store_insert(s, &b) == 0);
	CHECK(store_claim(s, &got) == 0);
	task_clear(&got);
	CHECK(store_claim(s, &got) == 0);
	task_clear(&got);
	CHECK(store_finish(s, a.id, TS_SUCCEEDED, "file:///cdn/a.ts", NULL, NULL, 0) == 0);
	CHECK(store_finish(s, b.id, TS_FAILED, NULL, "source asset does not exist: /x", NULL, 0) == 0);
	CHECK(store_get(s, a.id, &got) == 0);
	CHECK(got.state == TS_SUCCEEDED);
	CHECK_STR(got.result, "file:///cdn/a.ts");
	task_clear(&got);
	CHECK(store_get(s, b.id, &got) == 0);
	CHECK(got.state == TS_FAILED);
	CHECK_STR(got.reason, "source asset does not exist: /x");
	task_clear(&got);
	CHECK(store_count_active(s) == 0);
	store_close(s);
}

static void test_running_tasks_are_queued_again_after_a_crash(void)
{
	struct store *s = store_test_fresh();
	CHECK(s);
	struct task a, got;
	make_task(&a, "a.ts");
	CHECK(store_insert(s, &a) == 0);
	CHECK(store_claim(s, &got) == 0);
	task_clear(&got);
	/* The process dies here: close without finishing, open again. */
	store_close(s);
	s = store_test_open();
	CHECK(s);
	CHECK(store_recover(s) == 1);
	CHECK(store_get(s, a.id, &got) == 0);
	CHECK(got.state == TS_QUEUED);
	task_clear(&got);
	CHECK(store_claim(s, &got) == 0);
	CHECK(got.attempts == 2);
	task_clear(&got);
	store_close(s);
}

static void test_finish_of_a_task_not_running_changes_nothing(void)
{
	struct store *s = store_test_fresh();
	CHECK(s);
	struct task a, got;
	make_task(&a, "a.ts");
	CHECK(store_insert(s, &a) == 0);
	CHECK(store_finish(s, a.id, TS_SUCCEEDED, "x", NULL, NULL, 0) == 0);
	CHECK(store_get(s, a.id, &got) == 0);
	CHECK(got.state == TS_QUEUED);
	task_clear(&got);
	store_close(s);
}

static void test_requeue_puts_a_running_task_back(void)
{
	struct store *s = store_test_fresh();
	CHECK(s);
	struct task a, got;
	make_task(&a, "a.ts");
	CHECK(store_insert(s, &a) == 0);
	CHECK(store_claim(s, &got) == 0);
	task_clear(&got);
	CHECK(store_requeue(s, a.id) == 0);
	CHECK(store_get(s, a.id, &got) == 0);
	CHECK(got.state == TS_QUEUED);
	task_clear(&got);
	store_close(s);
}

static void test_prune_removes_only_old_final_tasks(void)
{
	struct store *s = store_test_fresh();
	CHECK(s);
	struct task a, b, got;
	make_task(&a, "a.ts");
	make_task(&b, "b.ts");
	CHECK(store_insert(s, &a) == 0 && store_insert(s, &b) == 0);
	CHECK(store_claim(s, &got) == 0);
	task_clear(&got);
	CHECK(store_finish(s, a.id, TS_SUCCEEDED, "x", NULL, NULL, 0) == 0);
	CHECK(store_prune(s, util_now_ms() - 60000) == 0);
	CHECK(store_prune(s, util_now_ms() + 1000) == 1);
	CHECK(store_get(s, a.id, &got) == 1);
	CHECK(store_get(s, b.id, &got) == 0);
	task_clear(&got);
	CHECK(store_count_active(s) == 1);
	store_close(s);
}

static void test_reopening_keeps_tasks_and_schema(void)
{
	struct store *s = store_test_fresh();
	CHECK(s);
	struct task a, got;
	make_task(&a, "é/日本.ts");
	CHECK(store_insert(s, &a) == 0);
	store_close(s);
	s = store_test_open();
	CHECK(s);
	CHECK(store_get(s, a.id, &got) == 0);
	CHECK_STR(got.dest_path, "é/日本.ts");
	task_clear(&got);
	store_close(s);
}

static void test_store_in_missing_directory_fails_with_reason(void)
{
	char err[256] = "";
	struct config c = { .store_path = "/nonexistent-dir/x/apubid.db" };
	struct store *s = store_open(&c, err, sizeof err);
	CHECK(s == NULL);
	CHECK(strstr(err, "/nonexistent-dir/x/apubid.db") != NULL);
}

static void test_retry_task_is_claimed_again_only_when_due(void)
{
	struct store *s = store_test_fresh();
	CHECK(s);
	struct task a, got;
	make_task(&a, "a.ts");
	CHECK(store_insert(s, &a) == 0);
	CHECK(store_claim(s, &got) == 0);
	int64_t first = got.first_started_ms;
	CHECK(first > 0);
	task_clear(&got);
	CHECK(store_retry(s, a.id, util_now_ms() + 60000, "connection refused") == 0);
	CHECK(store_get(s, a.id, &got) == 0);
	CHECK(got.state == TS_RETRY);
	CHECK_STR(got.reason, "connection refused");
	task_clear(&got);
	CHECK(store_claim(s, &got) == 1);
	CHECK(store_retry(s, a.id, 0, "x") == 0); /* not running: no change */
	store_close(s);
	/* Due now: make it so by hand through a fresh retry. */
	s = store_test_open();
	CHECK(s);
	CHECK(store_recover(s) == 0); /* waiting to retry is not "left running" */
	store_close(s);
}

static void test_due_retry_is_claimed_with_its_first_start_kept(void)
{
	struct store *s = store_test_fresh();
	CHECK(s);
	struct task a, got;
	make_task(&a, "a.ts");
	CHECK(store_insert(s, &a) == 0);
	CHECK(store_claim(s, &got) == 0);
	int64_t first = got.first_started_ms;
	task_clear(&got);
	CHECK(store_retry(s, a.id, util_now_ms() - 1, "reset by peer") == 0);
	usleep(2000);
	CHECK(store_claim(s, &got) == 0);
	CHECK_STR(got.id, a.id);
	CHECK(got.attempts == 2);
	CHECK(got.first_started_ms == first);
	task_clear(&got);
	store_close(s);
}

static void test_items_keep_their_order_state_and_checksums(void)
{
	struct store *s = store_test_fresh();
	CHECK(s);
	struct task a, got;
	make_task(&a, "pkg");
	CHECK(store_insert(s, &a) == 0);
	struct item in[3] = {
		{ .seq = 0, .path = "sub", .is_dir = 1, .size = -1 },
		{ .seq = 1, .path = "sub/seg1.ts", .size = 1000 },
		{ .seq = 2, .path = "index.m3u8", .size = 20 },
	};
	CHECK(store_set_items(s, a.id, in, 3) == 0);
	CHECK(store_item_done(s, a.id, 1, 1000, "ab12") == 0);
	CHECK(store_item_failed(s, a.id, 2, "550 No such file") == 0);
	CHECK(store_progress(s, a.id, 1000) == 0);
	struct item *out = NULL;
	int n = 0;
	CHECK(store_items(s, a.id, &out, &n) == 0);
	CHECK(n == 3);
	CHECK_STR(out[0].path, "sub");
	CHECK(out[0].is_dir == 1);
	CHECK(out[1].state == ITEM_DONE);
	CHECK_STR(out[1].sha256, "ab12");
	CHECK(out[2].state == ITEM_FAILED);
	CHECK_STR(out[2].error, "550 No such file");
	item_free_all(out, n);
	CHECK(store_get(s, a.id, &got) == 0);
	CHECK(got.files_total == 2);
	CHECK(got.files_done == 1);
	CHECK(got.bytes_total == 1020);
	CHECK(got.bytes_done == 1000);
	task_clear(&got);
	store_close(s);
}

static void test_pruned_task_takes_its_items_and_attempts(void)
{
	struct store *s = store_test_fresh();
	CHECK(s);
	struct task a, got;
	make_task(&a, "a.ts");
	CHECK(store_insert(s, &a) == 0);
	struct item in[1] = { { .seq = 0, .path = "", .size = 1 } };
	CHECK(store_set_items(s, a.id, in, 1) == 0);
	CHECK(store_claim(s, &got) == 0);
	task_clear(&got);
	CHECK(store_attempt(s, a.id, 1, util_now_ms(), NULL) == 0);
	CHECK(store_finish(s, a.id, TS_SUCCEEDED, "x", NULL, NULL, 0) == 0);
	CHECK(store_prune(s, util_now_ms() + 1000) == 1);
	struct item *out = NULL;
	int n = -1;
	CHECK(store_items(s, a.id, &out, &n) == 0);
	CHECK(n == 0);
	item_free_all(out, n);
	store_close(s);
}

#define RACE_TASKS 200
static char claimed[RACE_TASKS][TASKID_LEN];
static int nclaimed;
static pthread_mutex_t claimed_lock = PTHREAD_MUTEX_INITIALIZER;

static void *race_claimer(void *arg)
{
	(void)arg;
	struct store *s = store_test_open();
	if (!s)
		return NULL;
	struct task t;
	while (store_claim(s, &t) == 0) {
		pthread_mutex_lock(&claimed_lock);
		if (nclaimed < RACE_TASKS)
			memcpy(claimed[nclaimed++], t.id, TASKID_LEN);
		pthread_mutex_unlock(&claimed_lock);
		task_clear(&t);
	}
	store_close(s);
	return NULL;
}

static void test_concurrent_claims_never_share_a_task(void)
{
	nclaimed = 0;
	struct store *s = store_test_fresh();
	CHECK(s);
	struct task t;
	/* Distinct destinations: the ordering rule would hand out tasks on
	 * one destination one at a time. */
	static char dests[RACE_TASKS][16];
	for (int i = 0; i < RACE_TASKS; i++) {
		snprintf(dests[i], sizeof dests[i], "x%d.ts", i);
		make_task(&t, dests[i]);
		CHECK(store_insert(s, &t) == 0);
	}
	store_close(s);
	pthread_t th[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, race_claimer, NULL);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	CHECK(nclaimed == RACE_TASKS);
	for (int i = 0; i < nclaimed; i++)
		for (int j = i + 1; j < nclaimed; j++)
			CHECK(strcmp(claimed[i], claimed[j]) != 0);
}

/* Claims the next task and checks it is `id`. */
static void claim_expect(struct store *s, const char *id)
{
	struct task c;
	CHECK(store_claim(s, &c) == 0);
	CHECK_STR(c.id, id);
	task_clear(&c);
}

static void test_history_records_every_state_change(void)
{
	struct store *s = store_test_fresh();
	struct task a;
	make_task(&a, "h.ts");
	CHECK(store_insert(s, &a) == 0);
	claim_expect(s, a.id);
	CHECK(store_retry(s, a.id, 0, "attempt 1 failed, retrying in 1 s: boom") == 0);
	claim_expect(s, a.id);
	CHECK(store_finish(s, a.id, TS_SUCCEEDED, "file:///cdn/h.ts", NULL, NULL, 0) == 0);
	struct task_event *ev;
	int n;
	CHECK(store_events(s, a.id, &ev, &n) == 0);
	CHECK(n == 5);
	if (n == 5) {
		int want[] = { TS_QUEUED, TS_RUNNING, TS_RETRY, TS_RUNNING, TS_SUCCEEDED };
		for (int i = 0; i < 5; i++)
			CHECK(ev[i].state == want[i]);
		CHECK_STR(ev[0].detail, "accepted");
		CHECK_STR(ev[1].detail, "attempt 1");
		CHECK_STR(ev[2].detail, "attempt 1 failed, retrying in 1 s: boom");
		CHECK_STR(ev[3].detail, "attempt 2");
		CHECK_STR(ev[4].detail, "file:///cdn/h.ts");
		CHECK(ev[0].at_ms <= ev[4].at_ms);
	}
	task_event_free_all(ev, n);
	CHECK(store_events(s, "no-such-task", &ev, &n) == 0 && n == 0);
	task_event_free_all(ev, n);
	store_close(s);
}

static void test_attempts_read_back_in_order(void)
{
	struct store *s = store_test_fresh();
	struct task a;
	make_task(&a, "at.ts");
	CHECK(store_insert(s, &a) == 0);
	CHECK(store_attempt(s, a.id, 2, 2000, NULL) == 0);
	CHECK(store_attempt(s, a.id, 1, 1000, "550 No such file") == 0);
	struct attempt *at;
	int n;
	CHECK(store_attempts(s, a.id, &at, &n) == 0 && n == 2);
	if (n == 2) {
		CHECK(at[0].n == 1 && at[0].started_ms == 1000);
		CHECK_STR(at[0].error, "550 No such file");
		CHECK(at[1].n == 2 && at[1].error == NULL);
	}
	attempt_free_all(at, n);
	store_close(s);
}

static void test_list_filters_and_pages_newest_first(void)
{
	struct store *s = store_test_fresh();
	char ids[7][TASKID_LEN];
	for (int i = 0; i < 7; i++) {
		struct task t;
		make_task(&t, "l.ts");
		if (i % 2)
			t.kind = TASK_PURGE;
		CHECK(store_insert(s, &t) == 0);
		snprintf(ids[i], TASKID_LEN, "%s", t.id);
	}
	struct task_filter f = { .state = -1, .kind = 0, .limit = 3 };
	struct task *v;
	int n, seen = 0;
	int64_t last = 0;
	do {
		f.before_seq = last;
		CHECK(store_list(s, &f, &v, &n) == 0);
		for (int i = 0; i < n; i++) {
			CHECK_STR(v[i].id, ids[6 - seen]);
			seen++;
			last = v[i].seq;
		}
		task_free_all(v, n);
	} while (n == 3);
	CHECK(seen == 7);
	f = (struct task_filter){ .state = -1, .kind = TASK_PURGE };
	CHECK(store_list(s, &f, &v, &n) == 0 && n == 3);
	task_free_all(v, n);
	claim_expect(s, ids[0]);
	f = (struct task_filter){ .state = TS_RUNNING };
	CHECK(store_list(s, &f, &v, &n) == 0 && n == 1 && strcmp(v[0].id, ids[0]) == 0);
	task_free_all(v, n);
	f = (struct task_filter){ .state = -1, .min_age_ms = 3600 * 1000 };
	CHECK(store_list(s, &f, &v, &n) == 0 && n == 0);
	task_free_all(v, n);
	f = (struct task_filter){ .state = -1, .max_age_ms = 3600 * 1000 };
	CHECK(store_list(s, &f, &v, &n) == 0 && n == 7);
	task_free_all(v, n);
	int64_t counts[6];
	CHECK(store_count_by_state(s, counts) == 0);
	CHECK(counts[TS_QUEUED] == 6 && counts[TS_RUNNING] == 1 && counts[TS_FAILED] == 0);
	store_close(s);
}

static void test_operator_retry_gives_a_failed_task_a_fresh_budget(void)
{
	struct store *s = store_test_fresh();
	struct task a, got;
	char err[256];
	make_task(&a, "r.ts");
	CHECK(store_insert(s, &a) == 0);
	CHECK(store_admin_retry(s, a.id, err, sizeof err) == -1);
	CHECK(strstr(err, "is queued") != NULL);
	claim_expect(s, a.id);
	CHECK(store_finish(s, a.id, TS_FAILED, NULL, "gave up", NULL, 1) == 0);
	CHECK(store_admin_retry(s, a.id, err, sizeof err) == 0);
	CHECK(store_get(s, a.id, &got) == 0);
	CHECK(got.state == TS_QUEUED && got.attempt_base == 1 && got.reason == NULL);
	CHECK(got.first_started_ms == 0 && got.notify_state == NOTIFY_NONE);
	task_clear(&got);
	claim_expect(s, a.id);
	CHECK(store_get(s, a.id, &got) == 0 && got.attempts == 2);
	task_clear(&got);
	CHECK(store_finish(s, a.id, TS_SUCCEEDED, "x", NULL, NULL, 0) == 0);
	CHECK(store_admin_retry(s, a.id, err, sizeof err) == -1);
	CHECK(strstr(err, "succeeded") != NULL);
	CHECK(store_admin_retry(s, "no-such-task", err, sizeof err) == 1);
	store_close(s);
}

static void test_operator_cancel_ends_queued_and_flags_running_tasks(void)
{
	struct store *s = store_test_fresh();
	struct task a, b, got;
	char err[256], ids[4][TASKID_LEN];
	int running;
	make_task(&a, "c1.ts");
	make_task(&b, "c2.ts");
	CHECK(store_insert(s, &a) == 0);
	CHECK(store_insert(s, &b) == 0);
	claim_expect(s, a.id);
	CHECK(store_admin_cancel(s, b.id, "not wanted", 1, &running, err, sizeof err) == 0);
	CHECK(running == 0);
	CHECK(store_get(s, b.id, &got) == 0);
	CHECK(got.state == TS_CANCELLED && got.notify_state == NOTIFY_PENDING);
	CHECK_STR(got.reason, "not wanted");
	task_clear(&got);
	CHECK(store_cancel_requests(s, ids, NULL, 4) == 0);
	CHECK(store_admin_cancel(s, a.id, "stop it", 0, &running, err, sizeof err) == 0);
	CHECK(running == 1);
	int lost[4] = { -1, -1, -1, -1 };
	CHECK(store_cancel_requests(s, ids, lost, 4) == 1);
	CHECK_STR(ids[0], a.id);
	CHECK(lost[0] == 0); /* an operator's cancel, not a lost lease */
	CHECK(store_admin_cancel(s, b.id, "again", 0, &running, err, sizeof err) == -1);
	CHECK(strstr(err, "already cancelled") != NULL);
	CHECK(store_admin_cancel(s, "no-such-task", "x", 0, &running, err, sizeof err) == 1);
	/* A crash before the daemon saw the request: recovery cancels it. */
	CHECK(store_recover(s) == 0);
	CHECK(store_get(s, a.id, &got) == 0 && got.state == TS_CANCELLED);
	task_clear(&got);
	CHECK(store_cancel_requests(s, ids, NULL, 4) == 0);
	store_close(s);
}

static void test_notifications_become_due_and_record_their_fate(void)
{
	struct store *s = store_test_fresh();
	struct task a, b, got;
	char ids[4][TASKID_LEN];
	make_task(&a, "n1.ts");
	make_task(&b, "n2.ts");
	CHECK(store_insert(s, &a) == 0);
	CHECK(store_insert(s, &b) == 0);
	claim_expect(s, a.id);
	CHECK(store_finish(s, a.id, TS_SUCCEEDED, "x", NULL, NULL, 1) == 0);
	claim_expect(s, b.id);
	CHECK(store_finish(s, b.id, TS_SUCCEEDED, "y", NULL, NULL, 0) == 0);
	int64_t now = util_now_ms();
	CHECK(store_notify_due(s, now, ids, 4) == 1);
	CHECK_STR(ids[0], a.id);
	CHECK(store_notify_result(s, a.id, NOTIFY_PENDING, 1, now + 60000, "503 Busy") == 0);
	CHECK(store_notify_due(s, now, ids, 4) == 0);
	CHECK(store_notify_due(s, now + 60000, ids, 4) == 1);
	/* A task waiting for its notification is not pruned. */
	CHECK(store_prune(s, now + 1000) == 1);
	CHECK(store_get(s, a.id, &got) == 0);
	CHECK(got.notify_state == NOTIFY_PENDING && got.notify_attempts == 1);
	CHECK_STR(got.notify_error, "503 Busy");
	task_clear(&got);
	CHECK(store_notify_result(s, a.id, NOTIFY_DELIVERED, 2, 0, NULL) == 0);
	CHECK(store_get(s, a.id, &got) == 0);
	CHECK(got.notify_state == NOTIFY_DELIVERED && got.notify_ms > 0 && !got.notify_error);
	task_clear(&got);
	CHECK(store_prune(s, now + 1000) == 1);
	store_close(s);
}

#define BATCH_THREADS 8
#define BATCH_EACH 50
static char batch_ids[BATCH_THREADS * BATCH_EACH][TASKID_LEN];

static void *batch_inserter(void *arg)
{
	int k = (int)(intptr_t)arg;
	for (int i = 0; i < BATCH_EACH; i++) {
		struct task t;
		make_task(&t, "b.ts");
		if (store_insert(NULL, &t) == 0)
			snprintf(batch_ids[k * BATCH_EACH + i], TASKID_LEN, "%s", t.id);
	}
	return NULL;
}

static void test_group_commit_keeps_every_concurrent_insert(void)
{
	struct store *s = store_test_fresh();
	char err[256];
	memset(batch_ids, 0, sizeof batch_ids);
	CHECK(store_start(&store_test_cfg, NULL, err, sizeof err) == 0);
	pthread_t th[BATCH_THREADS];
	for (int i = 0; i < BATCH_THREADS; i++)
		pthread_create(&th[i], NULL, batch_inserter, (void *)(intptr_t)i);
	for (int i = 0; i < BATCH_THREADS; i++)
		pthread_join(th[i], NULL);
	store_stop();
	/* Every insert that returned 0 is readable from another connection,
	 * with its one "accepted" event. */
	int found = 0, accepted = 0;
	for (int i = 0; i < BATCH_THREADS * BATCH_EACH; i++) {
		struct task got;
		if (batch_ids[i][0] && store_get(s, batch_ids[i], &got) == 0) {
			found++;
			task_clear(&got);
			struct task_event *ev;
			int n;
			if (store_events(s, batch_ids[i], &ev, &n) == 0 && n == 1 &&
			    ev[0].state == TS_QUEUED && ev[0].detail &&
			    strcmp(ev[0].detail, "accepted") == 0)
				accepted++;
			task_event_free_all(ev, n);
		}
	}
	CHECK(found == BATCH_THREADS * BATCH_EACH);
	CHECK(accepted == BATCH_THREADS * BATCH_EACH);
	/* Without the committer, inserts go straight through again. */
	struct task t;
	make_task(&t, "after.ts");
	CHECK(store_insert(s, &t) == 0);
	store_close(s);
}

static void test_text_fields_read_back_byte_for_byte(void)
{
	/* Quotes, backslashes, commas, braces, the word NULL and non-ASCII
	 * bytes: whatever a backend's encoding of a batch, they come back as
	 * they were sent, and an empty string stays apart from none. */
	struct store *s = store_test_fresh();
	struct task a, got;
	make_task(&a, "we\"ird, {dir}\\/NULL \xc3\xa9t\xc3\xa9.ts");
	a.source = "file:///srv/ingest/a \"b\" \\c,{d}.ts";
	a.rule = "NULL";
	a.rule_result = "";
	CHECK(store_insert(s, &a) == 0);
	CHECK(store_get(s, a.id, &got) == 0);
	CHECK_STR(got.source, a.source);
	CHECK_STR(got.destination, a.destination);
	CHECK_STR(got.dest_path, a.dest_path);
	CHECK_STR(got.rule, "NULL");
	CHECK(got.rule_result && got.rule_result[0] == '\0');
	CHECK(got.rule_fail == NULL);
	task_clear(&got);
	store_close(s);
}

static void test_rule_fields_read_back_and_polls_run_out(void)
{
	struct store *s = store_test_fresh();
	struct task a, b, got;
	make_task(&a, "r1.ts");
	a.rule = "slow";
	a.rule_fail = "scripted failure";
	a.rule_result = "";
	a.rule_polls = 2;
	a.next_attempt_ms = util_now_ms() + 3600 * 1000;
	make_task(&b, "r2.ts");
	b.rule = "stuck";
	b.rule_polls = -1;
	CHECK(store_insert(s, &a) == 0);
	CHECK(store_insert(s, &b) == 0);
	CHECK(store_get(s, a.id, &got) == 0);
	CHECK_STR(got.rule, "slow");
	CHECK_STR(got.rule_fail, "scripted failure");
	CHECK(got.rule_result && got.rule_result[0] == '\0');
	CHECK(got.rule_polls == 2);
	task_clear(&got);
	CHECK(store_take_poll(s, a.id) == 1);
	CHECK(store_take_poll(s, a.id) == 1);
	CHECK(store_take_poll(s, a.id) == 0);
	for (int i = 0; i < 5; i++)
		CHECK(store_take_poll(s, b.id) == 1);
	CHECK(store_get(s, b.id, &got) == 0 && got.rule_polls == -1);
	task_clear(&got);
	/* A delayed task is not claimed before its time: b is claimed first. */
	struct task c;
	CHECK(store_claim(s, &c) == 0);
	CHECK_STR(c.id, b.id);
	task_clear(&c);
	CHECK(store_claim(s, &c) == 1);
	store_close(s);
}

static void test_health_fails_on_a_read_only_store(void)
{
	struct store *s = store_test_fresh();
	char why[256];
	CHECK(store_health(s, why, sizeof why) == 0);
	CHECK(chmod(path, 0444) == 0);
	CHECK(store_health(s, why, sizeof why) == -1);
	CHECK(strstr(why, "read-only") != NULL);
	CHECK(chmod(path, 0644) == 0);
	CHECK(store_health(s, why, sizeof why) == 0);
	store_close(s);
}

/* SQLite goes on writing into a deleted file: store_check and the insert
 * itself must tell, or a TaskId would be answered for a task gone at the
 * next start. */
static void test_deleted_or_replaced_file_stops_new_tasks(void)
{
	struct store *s = store_test_fresh();
	CHECK(s);
	char why[512], other[200];
	struct task t;
	make_task(&t, "a.ts");
	CHECK(store_check(s, why, sizeof why) == 0);
	CHECK(store_insert(s, &t) == 0);
	/* Replaced: another file takes the name. */
	snprintf(other, sizeof other, "%.150s.new", path);
	struct config oc = { .store_path = other };
	struct store *o = store_open(&oc, why, sizeof why);
	CHECK(o);
	store_close(o);
	CHECK(rename(other, path) == 0);
	CHECK(store_check(s, why, sizeof why) == -1);
	CHECK(strstr(why, "was deleted or replaced since apubid opened it") != NULL);
	CHECK(strstr(why, path) != NULL);
	make_task(&t, "b.ts");
	CHECK(store_insert(s, &t) == -1);
	CHECK(store_health(s, why, sizeof why) == -1);
	CHECK(strstr(why, "was deleted or replaced") != NULL);
	/* Deleted. */
	CHECK(unlink(path) == 0);
	CHECK(store_check(s, why, sizeof why) == -1);
	CHECK(strstr(why, "was deleted or replaced since apubid opened it") != NULL);
	store_close(s);
	/* A connection opened on the new file is content with it. */
	s = store_test_fresh();
	CHECK(s);
	CHECK(store_check(s, why, sizeof why) == 0);
	store_close(s);
}

/* ---- PostgreSQL only: several nodes on one table ------------------------ */

/* Runs SQL on the test database with one task id as $1. */
static int pg_admin_task(const char *fmt, const char *id)
{
	char sql[512];
	snprintf(sql, sizeof sql, fmt, id);
	return store_test_sql(sql);
}

static void test_pg_a_task_whose_lease_expired_is_taken_over_and_the_old_claim_is_fenced(void)
{
	struct store *s1 = store_test_fresh();
	struct store *s2 = store_test_open();
	CHECK(s1 && s2);
	struct task a, got;
	make_task(&a, "lease.ts");
	CHECK(store_insert(s1, &a) == 0);
	claim_expect(s1, a.id);
	/* A live lease is not taken. */
	CHECK(store_claim(s2, &got) == 1);
	/* The first node stops renewing: its lease runs out. */
	CHECK(pg_admin_task("UPDATE task SET lease_until_ms = 1 WHERE id = '%s'", a.id) == 0);
	CHECK(store_claim(s2, &got) == 0);
	CHECK_STR(got.id, a.id);
	CHECK(got.attempts == 2);
	task_clear(&got);
	/* The first node's writes match nothing any more. */
	CHECK(store_progress(s1, a.id, 12345) == 0);
	CHECK(store_finish(s1, a.id, TS_FAILED, NULL, "stale", NULL, 0) == 0);
	CHECK(store_retry(s1, a.id, 0, "stale") == 0);
	CHECK(store_get(s1, a.id, &got) == 0);
	CHECK(got.state == TS_RUNNING && got.bytes_done == 0 && got.reason == NULL);
	task_clear(&got);
	/* The new owner's are recorded. */
	CHECK(store_progress(s2, a.id, 7) == 0);
	CHECK(store_finish(s2, a.id, TS_SUCCEEDED, "file:///cdn/lease.ts", NULL, NULL, 0) == 0);
	CHECK(store_get(s1, a.id, &got) == 0);
	CHECK(got.state == TS_SUCCEEDED && got.bytes_done == 7);
	task_clear(&got);
	store_close(s1);
	store_close(s2);
}

static void test_pg_start_up_takes_back_only_tasks_of_nodes_that_are_gone(void)
{
	struct store *s = store_test_fresh();
	CHECK(s);
	struct task a, b, c, got;
	make_task(&a, "live.ts");
	make_task(&b, "dead.ts");
	make_task(&c, "mine.ts");
	CHECK(store_insert(s, &a) == 0 && store_insert(s, &b) == 0 && store_insert(s, &c) == 0);
	claim_expect(s, a.id);
	claim_expect(s, b.id);
	claim_expect(s, c.id);
	/* a runs on a live node (its lease is ahead), b on one whose lease
	 * ran out; c is this process's own. */
	CHECK(pg_admin_task("UPDATE task SET node = 'other 1 1' WHERE id = '%s'", a.id) == 0);
	CHECK(pg_admin_task("UPDATE task SET node = 'other 2 2', lease_until_ms = 1"
			    " WHERE id = '%s'", b.id) == 0);
	CHECK(store_recover(s) == 2);
	CHECK(store_get(s, a.id, &got) == 0 && got.state == TS_RUNNING);
	task_clear(&got);
	CHECK(store_get(s, b.id, &got) == 0 && got.state == TS_QUEUED);
	task_clear(&got);
	CHECK(store_get(s, c.id, &got) == 0 && got.state == TS_QUEUED);
	task_clear(&got);
	store_close(s);
}

static void test_pg_the_order_rule_holds_across_nodes(void)
{
	struct store *s1 = store_test_fresh();
	struct store *s2 = store_test_open();
	CHECK(s1 && s2);
	struct task a, b, c, got;
	make_task(&a, "show");
	make_task(&b, "show/v1/seg1.ts");
	make_task(&c, "show2/x.ts");
	CHECK(store_insert(s1, &a) == 0 && store_insert(s2, &b) == 0 && store_insert(s1, &c) == 0);
	claim_expect(s1, a.id);
	/* b overlaps a, which runs on the other node: c is taken instead. */
	claim_expect(s2, c.id);
	CHECK(store_claim(s2, &got) == 1);
	char ahead[TASKID_LEN];
	CHECK(store_waiting_for(s2, b.id, ahead) == 0);
	CHECK_STR(ahead, a.id);
	CHECK(store_count_held(s2) == 1);
	CHECK(store_finish(s1, a.id, TS_SUCCEEDED, "x", NULL, NULL, 0) == 0);
	claim_expect(s2, b.id);
	store_close(s1);
	store_close(s2);
}

/* Whether store_cancel_requests names `id` within `ms` milliseconds: 0
 * not, 1 as an operator's cancel, 2 as a lease lost to another node. */
static int cancel_requested_within(struct store *s, const char *id, int ms)
{
	char ids[8][TASKID_LEN];
	int lost[8];
	for (int waited = 0; waited <= ms; waited += 100) {
		int n = store_cancel_requests(s, ids, lost, 8);
		for (int i = 0; i < n; i++)
			if (strcmp(ids[i], id) == 0)
				return lost[i] ? 2 : 1;
		usleep(100 * 1000);
	}
	return 0;
}

static void test_pg_a_lost_lease_stops_the_workers_transfer(void)
{
	struct store *s = store_test_fresh();
	CHECK(s);
	char err[512];
	struct config c = store_test_cfg;
	c.lease_timeout = 3; /* renewed every second */
	CHECK(store_start(&c, NULL, err, sizeof err) == 0);
	struct task a;
	make_task(&a, "lost.ts");
	CHECK(store_insert(s, &a) == 0);
	claim_expect(s, a.id);
	/* Renewed: still this node's after two renewals. */
	int early = cancel_requested_within(s, a.id, 2500);
	CHECK(pg_admin_task("UPDATE task SET node = 'other 3 3' WHERE id = '%s'", a.id) == 0);
	int late = cancel_requested_within(s, a.id, 10000); /* liveness bound */
	store_stop();
	CHECK(!early);
	CHECK(late == 2); /* told from an operator's cancel */
	store_close(s);
}

static void test_pg_the_password_never_reaches_a_message(void)
{
	char err[512] = "";
	struct config c = store_test_cfg;
	c.store_url = "postgresql://apubid:s3cr3t-pw@127.0.0.1:1/nodb?password=s3cr3t-pw";
	struct store *s = store_open(&c, err, sizeof err);
	CHECK(s == NULL);
	CHECK(strstr(err, "cannot connect to store") != NULL);
	CHECK(strstr(err, "s3cr3t") == NULL);
	CHECK(strstr(err, "apubid:***@127.0.0.1:1") != NULL);
}

/* The contract every backend keeps. */
static void run_contract(void)
{
	RUN(test_inserted_task_reads_back_queued);
	RUN(test_unknown_task_is_absent);
	RUN(test_duplicate_task_id_is_refused);
	RUN(test_claim_takes_oldest_first_and_counts_attempts);
	RUN(test_finish_records_result_and_reason);
	RUN(test_running_tasks_are_queued_again_after_a_crash);
	RUN(test_finish_of_a_task_not_running_changes_nothing);
	RUN(test_requeue_puts_a_running_task_back);
	RUN(test_prune_removes_only_old_final_tasks);
	RUN(test_reopening_keeps_tasks_and_schema);
	RUN(test_retry_task_is_claimed_again_only_when_due);
	RUN(test_due_retry_is_claimed_with_its_first_start_kept);
	RUN(test_items_keep_their_order_state_and_checksums);
	RUN(test_pruned_task_takes_its_items_and_attempts);
	RUN(test_concurrent_claims_never_share_a_task);
	RUN(test_history_records_every_state_change);
	RUN(test_attempts_read_back_in_order);
	RUN(test_list_filters_and_pages_newest_first);
	RUN(test_operator_retry_gives_a_failed_task_a_fresh_budget);
	RUN(test_operator_cancel_ends_queued_and_flags_running_tasks);
	RUN(test_notifications_become_due_and_record_their_fate);
	RUN(test_group_commit_keeps_every_concurrent_insert);
	RUN(test_text_fields_read_back_byte_for_byte);
	RUN(test_rule_fields_read_back_and_polls_run_out);
}

/* Without a PostgreSQL server the backend is untested: that fails. */
static void test_pg_a_postgresql_server_is_there_to_test_against(void)
{
	if (!store_test_cfg.store_url)
		fprintf(stderr, "  APUBID_TEST_PG_URL is not set (make unit starts a server)\n");
	CHECK(store_test_cfg.store_url != NULL);
	struct store *s = store_test_fresh();
	CHECK(s);
	store_close(s);
}

int main(void)
{
	snprintf(dir, sizeof dir, "/tmp/apubid-test-store-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof path, "%s/tasks.db", dir);
	log_set_level(LOG_ERROR);
	store_test_cfg.store_path = path;
	store_test_cfg.lease_timeout = 30;
	fprintf(stderr, "test_store: SQLite\n");
	run_contract();
	RUN(test_store_in_missing_directory_fails_with_reason);
	RUN(test_health_fails_on_a_read_only_store);
	RUN(test_deleted_or_replaced_file_stops_new_tasks);

	fprintf(stderr, "test_store: PostgreSQL\n");
	const char *url = getenv("APUBID_TEST_PG_URL");
	store_test_use(url && *url ? url : NULL);
	RUN(test_pg_a_postgresql_server_is_there_to_test_against);
	if (store_test_cfg.store_url) {
		run_contract();
		RUN(test_pg_a_task_whose_lease_expired_is_taken_over_and_the_old_claim_is_fenced);
		RUN(test_pg_start_up_takes_back_only_tasks_of_nodes_that_are_gone);
		RUN(test_pg_the_order_rule_holds_across_nodes);
		RUN(test_pg_a_lost_lease_stops_the_workers_transfer);
		RUN(test_pg_the_password_never_reaches_a_message);
	}
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
	return HARNESS_END("test_store");
}

/*
 * test_order.c - the ordering rule: destination keys, which destinations
 * overlap (in C, as the held counter applies it, and in the store's
 * claim), with names as the WFM sends them (percent-encoded, non-ASCII,
 * trailing '/'), waiting_for, the held count, an operator's retry going
 * to the back of the line, and a cancel releasing what it held.
 *
 * The store's half runs on SQLite, then on the PostgreSQL server that
 * APUBID_TEST_PG_URL names (backends.h); without one, that half fails.
 */
#include "apubid.h"
#include "harness.h"
#include "backends.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];
static char path[128];

/* 1 when the C rule holds `b` (accepted second) behind `a`. */
static int held_after(const char *a, const char *b)
{
	struct order_held *h = order_held_new();
	char *ka = order_key(a), *kb = order_key(b);
	int first = order_held_next(h, ka, strlen(ka));
	int second = order_held_next(h, kb, strlen(kb));
	free(ka);
	free(kb);
	order_held_free(h);
	return first == 0 ? second : -1;
}

/* 1 when the store's claim holds `b` behind `a`: a is claimed, then b is
 * not; -1 when the store misbehaves otherwise. Both are loads. */
static int claim_holds(const char *a, const char *b)
{
	struct store *s = store_test_fresh();
	if (!s)
		return -1;
	struct task ta = { 0 }, tb = { 0 }, got;
	util_uuid(ta.id);
	util_uuid(tb.id);
	ta.kind = tb.kind = TASK_LOAD;
	ta.destination = ta.dest_path = (char *)a;
	tb.destination = tb.dest_path = (char *)b;
	ta.created_ms = tb.created_ms = util_now_ms();
	int ret = -1;
	if (store_insert(s, &ta) != 0 || store_insert(s, &tb) != 0)
		goto out;
	if (store_claim(s, &got) != 0)
		goto out;
	int first_ok = strcmp(got.id, ta.id) == 0;
	task_clear(&got);
	if (!first_ok)
		goto out;
	int rc = store_claim(s, &got);
	if (rc == 0) {
		ret = strcmp(got.id, tb.id) == 0 ? 0 : -1;
		task_clear(&got);
	} else if (rc == 1) {
		ret = 1;
	}
out:
	store_close(s);
	return ret;
}

/* Both forms of the rule must agree on every pair, both ways round. */
static int overlap(const char *a, const char *b)
{
	int c1 = held_after(a, b), c2 = held_after(b, a);
	int s1 = claim_holds(a, b), s2 = claim_holds(b, a);
	if (c1 != c2 || c1 != s1 || s1 != s2) {
		fprintf(stderr, "  \"%s\" / \"%s\": C %d %d, store %d %d\n", a, b, c1, c2, s1, s2);
		return -1;
	}
	return c1;
}

static void test_keys_wrap_the_path_in_slashes(void)
{
	char *k = order_key("show/v1/seg1.ts");
	CHECK_STR(k, "/show/v1/seg1.ts/");
	free(k);
	k = order_key("");
	CHECK_STR(k, "/");
	free(k);
}

static void test_a_name_that_extends_another_does_not_overlap(void)
{
	CHECK(overlap("a/b", "a/bc") == 0);
	CHECK(overlap("show", "show2") == 0);
	CHECK(overlap("show/v1", "show/v10/seg.ts") == 0);
	CHECK(overlap("a/b", "b/a") == 0);
}

static void test_a_directory_overlaps_what_it_holds(void)
{
	CHECK(overlap("a/b", "a/b/c") == 1);
	CHECK(overlap("show", "show/v1/seg1.ts") == 1);
	CHECK(overlap("a", "a/b/c/d/e") == 1);
}

static void test_the_same_path_overlaps_itself(void)
{
	CHECK(overlap("a/b", "a/b") == 1);
	CHECK(overlap("movie.ts", "movie.ts") == 1);
}

static void test_the_root_overlaps_everything(void)
{
	CHECK(overlap("", "a") == 1);
	CHECK(overlap("", "a/b/c") == 1);
}

static void test_names_compare_as_bytes(void)
{
	CHECK(overlap("vid\xc3\xa9o", "vid\xc3\xa9o/seg1.ts") == 1);
	CHECK(overlap("vid\xc3\xa9o", "vid\xc3\xa9o2/seg1.ts") == 0);
	CHECK(overlap("vid\xc3\xa9o", "vid\xc3\xa9") == 0);
	CHECK(overlap("Show", "show") == 0);
	CHECK(overlap("\xe7\x95\xaa\xe7\xb5\x84/a", "\xe7\x95\xaa\xe7\xb5\x84") == 1);
}

/* Destinations as the WFM writes them go through asset_destination first:
 * a trailing '/', empty or "." segments and a URL's percent-encoding do
 * not make another destination. */
static void test_destinations_overlap_after_normalisation(void)
{
	struct config c;
	char err[512];
	CHECK(config_parse(&c, "[destination]\nroot = ftp://cdn.example/data/\n", "x", err,
			   sizeof err) == 0);
	const char *pairs[][3] = {
		{ "a/b/", "a/b/c", "1" },
		{ "a/b/", "a/b", "1" },
		{ "ftp://cdn.example/data/show%20one/", "show one/v1/seg1.ts", "1" },
		{ "ftp://cdn.example/data/show/", "show/a.ts", "1" },
		{ "ftp://cdn.example/data/vid%C3%A9o/", "vid\xc3\xa9o/seg.ts", "1" },
		{ "ftp://cdn.example/data/show%20one/", "ftp://cdn.example/data/show%20one2/", "0" },
		/* A relative path is taken literally: "%20" is part of the name. */
		{ "show%20one/", "show one/a.ts", "0" },
		{ "show%20one/", "show%20one/a.ts", "1" },
		{ "a//b/./", "a/b/c.ts", "1" },
	};
	for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
		char *ra = NULL, *rb = NULL;
		int da, db;
		int ok = asset_destination(&c, pairs[i][0], &ra, &da, err, sizeof err) == 0 &&
			 asset_destination(&c, pairs[i][1], &rb, &db, err, sizeof err) == 0;
		int got = ok ? overlap(ra, rb) : -2;
		if (got != atoi(pairs[i][2]))
			fprintf(stderr, "  \"%s\" / \"%s\": %d (%s)\n", pairs[i][0], pairs[i][1], got,
				ok ? "" : err);
		free(ra);
		free(rb);
		if (got != atoi(pairs[i][2])) {
			config_free(&c);
			CHECK(0);
		}
	}
	config_free(&c);
}

static void add(struct store *s, struct task *t, int kind, const char *dest)
{
	memset(t, 0, sizeof *t);
	util_uuid(t->id);
	t->kind = kind;
	t->destination = t->dest_path = (char *)dest;
	t->created_ms = util_now_ms();
	store_insert(s, t);
}

static void test_held_tasks_name_what_they_wait_for_and_are_counted(void)
{
	struct store *s = store_test_fresh();
	CHECK(s);
	struct task a, b, c, d, got;
	add(s, &a, TASK_LOAD, "show");
	add(s, &b, TASK_PURGE, "show/v1/seg1.ts");
	add(s, &c, TASK_LOAD, "other");
	add(s, &d, TASK_PURGE, "show");
	char ahead[TASKID_LEN];
	CHECK(store_waiting_for(s, b.id, ahead) == 0);
	CHECK_STR(ahead, a.id);
	CHECK(store_waiting_for(s, a.id, ahead) == 1);
	CHECK(store_count_held(s) == 2); /* b and d */

	CHECK(store_claim(s, &got) == 0);
	CHECK_STR(got.id, a.id);
	task_clear(&got);
	CHECK(store_claim(s, &got) == 0); /* b is held: c, unrelated, runs */
	CHECK_STR(got.id, c.id);
	task_clear(&got);
	CHECK(store_claim(s, &got) == 1);
	CHECK(store_count_held(s) == 2);

	CHECK(store_finish(s, a.id, TS_SUCCEEDED, "x", NULL, NULL, 0) == 0);
	CHECK(store_claim(s, &got) == 0); /* b now, d still behind b */
	CHECK_STR(got.id, b.id);
	task_clear(&got);
	CHECK(store_waiting_for(s, d.id, ahead) == 0);
	CHECK_STR(ahead, b.id);
	CHECK(store_claim(s, &got) == 1);
	CHECK(store_count_held(s) == 1);
	store_close(s);
}

static void test_retry_waiting_task_holds_later_ones(void)
{
	struct store *s = store_test_fresh();
	CHECK(s);
	struct task a, b, got;
	add(s, &a, TASK_LOAD, "pkg");
	add(s, &b, TASK_PURGE, "pkg");
	CHECK(store_claim(s, &got) == 0);
	task_clear(&got);
	/* a waits an hour before its next attempt: b still may not pass it. */
	CHECK(store_retry(s, a.id, util_now_ms() + 3600 * 1000, "source down") == 0);
	CHECK(store_claim(s, &got) == 1);
	char ahead[TASKID_LEN];
	CHECK(store_waiting_for(s, b.id, ahead) == 0);
	CHECK_STR(ahead, a.id);
	store_close(s);
}

static void test_operator_retry_goes_behind_later_tasks(void)
{
	struct store *s = store_test_fresh();
	CHECK(s);
	struct task a, b, got;
	char err[256];
	add(s, &a, TASK_LOAD, "pkg");
	CHECK(store_claim(s, &got) == 0);
	task_clear(&got);
	CHECK(store_finish(s, a.id, TS_FAILED, NULL, "broken", NULL, 0) == 0);
	add(s, &b, TASK_PURGE, "pkg");
	CHECK(store_admin_retry(s, a.id, err, sizeof err) == 0);
	/* The retry counts as a new acceptance: the purge, accepted before
	 * it, runs first. */
	CHECK(store_claim(s, &got) == 0);
	CHECK_STR(got.id, b.id);
	task_clear(&got);
	CHECK(store_claim(s, &got) == 1);
	char ahead[TASKID_LEN];
	CHECK(store_waiting_for(s, a.id, ahead) == 0);
	CHECK_STR(ahead, b.id);
	store_close(s);
}

static void test_cancel_of_the_first_releases_the_second(void)
{
	struct store *s = store_test_fresh();
	CHECK(s);
	struct task a, b, got;
	char err[256];
	int was_running;
	add(s, &a, TASK_LOAD, "pkg");
	add(s, &b, TASK_LOAD, "pkg/a.ts");
	/* a ran once, was interrupted and waits again: it holds b. */
	CHECK(store_claim(s, &got) == 0);
	CHECK_STR(got.id, a.id);
	task_clear(&got);
	CHECK(store_requeue(s, a.id) == 0);
	CHECK(store_admin_cancel(s, a.id, "not wanted", 0, &was_running, err, sizeof err) == 0);
	CHECK(was_running == 0);
	CHECK(store_claim(s, &got) == 0);
	CHECK_STR(got.id, b.id);
	task_clear(&got);
	store_close(s);
}

static void run_all(void)
{
	RUN(test_keys_wrap_the_path_in_slashes);
	RUN(test_a_name_that_extends_another_does_not_overlap);
	RUN(test_a_directory_overlaps_what_it_holds);
	RUN(test_the_same_path_overlaps_itself);
	RUN(test_the_root_overlaps_everything);
	RUN(test_names_compare_as_bytes);
	RUN(test_destinations_overlap_after_normalisation);
	RUN(test_held_tasks_name_what_they_wait_for_and_are_counted);
	RUN(test_retry_waiting_task_holds_later_ones);
	RUN(test_operator_retry_goes_behind_later_tasks);
	RUN(test_cancel_of_the_first_releases_the_second);
}

/* Without a PostgreSQL server that backend is untested: that fails. */
static void test_a_postgresql_server_is_there_to_test_against(void)
{
	if (!store_test_cfg.store_url)
		fprintf(stderr, "  APUBID_TEST_PG_URL is not set (make unit starts a server)\n");
	CHECK(store_test_cfg.store_url != NULL);
}

int main(void)
{
	snprintf(dir, sizeof dir, "/tmp/apubid-order-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof path, "%s/apubid.db", dir);
	log_set_level(LOG_ERROR);
	store_test_cfg.store_path = path;
	store_test_cfg.lease_timeout = 30;
	run_all();
	const char *url = getenv("APUBID_TEST_PG_URL");
	store_test_use(url && *url ? url : NULL);
	RUN(test_a_postgresql_server_is_there_to_test_against);
	if (store_test_cfg.store_url)
		run_all();
	char side[160];
	unlink(path);
	snprintf(side, sizeof side, "%.120s-wal", path);
	unlink(side);
	snprintf(side, sizeof side, "%.120s-shm", path);
	unlink(side);
	rmdir(dir);
	return HARNESS_END("test_order");
}

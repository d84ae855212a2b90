/*
 * pool.c - the task worker threads.
 *
 * What: `workers` threads, separate from the threads that serve SOAP
 * requests, each with its own store connection. A worker claims the oldest
 * runnable queued task (store_claim is one atomic UPDATE, so no two workers ever get
 * the same task), runs it through xfer, and records the final state with
 * its result, reason or note.
 *
 * Why separate threads: a publish may take minutes; a SOAP request must be
 * answered in milliseconds. The store is the only channel between the two:
 * a request commits a task and calls pool_wake; the worker finds it in the
 * store. Nothing is handed over in memory, so a crash loses nothing that
 * was acknowledged.
 *
 * Locking: one mutex and condition variable guard only the wake-up
 * generation counter. A worker records the generation before it looks for
 * work and sleeps only if no wake-up came since, at most one second, so a
 * task committed by another process (or a missed signal) waits at most that
 * long.
 *
 * Retries: a transient failure (xfer says XFER_RETRY) puts the task in
 * the retry state with a time for the next attempt, exponential backoff
 * with jitter, within `retries` attempts, `retry_max_time` and the task
 * timeout; the task is then claimed again like a queued one and resumes.
 * Every attempt is recorded with its error. A source that changed during
 * the copy (XFER_CHANGED) is retried the same way; when the budget is
 * spent, the reason starts with the change rather than "gave up after".
 *
 * Order: store_claim never hands out a task while an earlier-accepted,
 * unfinished task overlaps its destination, so tasks on one destination
 * run one after another in acceptance order while unrelated ones run side
 * by side. A worker that ends a task wakes the idle ones, since the end may
 * release tasks held behind it.
 *
 * Store faults: a worker that cannot record what happened to its task (the
 * final state, a retry, an attempt, a cancel; its items, inside xfer) keeps
 * the task and tries again, pausing longer each time (persist.c), until the
 * store takes the write: a full disk freed, the task ends without a
 * restart. Only apubid stopping ends the wait; the task then stays running
 * in the store and is queued again at the next start. The monitor keeps the
 * store's health fresh for the submissions: while a write has failed, it
 * tries one small write a second (store_health), which tells when the store
 * takes writes again, and it logs once when new tasks start being refused
 * (store_check) and once when they are accepted again.
 *
 * Stopping: each worker has its own stop flag, which its transfers poll.
 * A monitor thread raises it when apubid stops (the task goes back to
 * queued, the next start resumes it), when the task's task_timeout has
 * passed (the task fails), when an operator cancelled the task
 * (apubictl cancel marks it in the store; the monitor looks every second;
 * the task ends cancelled), or, on a store shared by several nodes, when
 * another node took the task's lease over (that node runs the task now:
 * this one leaves its stage and its record alone). Workers never exit the process: a task's
 * failure is recorded on the task.
 *
 * Housekeeping: the monitor also prunes finished tasks older than
 * retention_days every prune_interval seconds, with its own store
 * connection, so a long transfer in a worker never holds pruning up.
 *
 * Health: every worker stamps a heartbeat each time it looks for work (at
 * least once a second when idle), and the monitor each time round its loop;
 * pool_health reports a thread that has stopped stamping.
 */
#include "apubid.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A thread that has not stamped its heartbeat for this long is reported
 * by pool_health. */
#define POOL_STUCK_MS 10000
#define POOL_MAX_CANCELS 64

/* One worker: its thread, the stop flag its transfers poll, and the task
 * it runs. The monitor thread raises `stop` when apubid stops, the
 * deadline passes, an operator cancels the task (then `cancelled` too), or
 * another node takes its lease over (then `lost` too). `task_id`,
 * `deadline_ms`, `cancelled` and `lost` are shared with the monitor under
 * pool_lock; `beat_ms` and `exited` are atomics. */
struct pool_worker {
	pthread_t thread;
	int index;
	volatile sig_atomic_t stop;
	int64_t deadline_ms; /* wall clock */
	char task_id[TASKID_LEN];
	int cancelled;
	int lost;
	int64_t beat_ms;     /* monotonic */
	int exited;
};

static const struct config *pool_cfg;
static struct pool_worker *pool_workers;
static int pool_nthreads;
static pthread_t pool_monitor_thread;
static int pool_monitor_started;
static volatile sig_atomic_t pool_stopping;
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cond;
static uint64_t pool_generation;
static int64_t pool_active_count;
static int64_t pool_monitor_beat_ms;

void pool_add_active(int64_t n)
{
	__atomic_add_fetch(&pool_active_count, n, __ATOMIC_SEQ_CST);
}

int64_t pool_active(void)
{
	return __atomic_load_n(&pool_active_count, __ATOMIC_SEQ_CST);
}

void pool_wake(void)
{
	pthread_mutex_lock(&pool_lock);
	pool_generation++;
	pthread_cond_signal(&pool_cond);
	pthread_mutex_unlock(&pool_lock);
}

/* Records a final state, trying again until the store takes it; only
 * apubid stopping ends the wait (-1), and then the task stays running in
 * the store and is redone at the next start, which is safe but slow. */
static int pool_record(struct store *s, const struct task *t, int state, const char *result,
			const char *reason, const char *note)
{
	char what[64];
	snprintf(what, sizeof what, "its final state (%s)", task_state_name(state));
	struct persist p = { .task = t->id, .what = what };
	while (store_finish(s, t->id, state, result, reason, note, pool_cfg->notify_url != NULL) <
	       0)
		if (persist_wait(&p, &pool_stopping) < 0) {
			log_warn("task %s: state %s not recorded; it will be redone at the next start",
				 t->id, task_state_name(state));
			return -1;
		}
	persist_done(&p);
	pool_add_active(-1);
	if (pool_cfg->notify_url)
		notify_wake();
	return 0;
}

/* Records the end of an attempt, trying again like pool_record; -1 when
 * apubid stops first. */
static int pool_attempt(struct store *s, const struct task *t, int64_t started_ms,
			const char *error)
{
	struct persist p = { .task = t->id, .what = "the end of its attempt" };
	while (store_attempt(s, t->id, t->attempts, started_ms, error) < 0)
		if (persist_wait(&p, &pool_stopping) < 0)
			return -1;
	persist_done(&p);
	return 0;
}

/* Seconds to wait before attempt n+1: doubling from retry_delay, capped,
 * with jitter (half fixed, half random) so that tasks failing together do
 * not retry together. */
static int64_t pool_backoff_ms(int attempts)
{
	int64_t d = (int64_t)pool_cfg->retry_delay * 1000;
	for (int i = 1; i < attempts && d < (int64_t)pool_cfg->retry_max_delay * 1000; i++)
		d *= 2;
	if (d > (int64_t)pool_cfg->retry_max_delay * 1000)
		d = (int64_t)pool_cfg->retry_max_delay * 1000;
	unsigned int seed = (unsigned int)util_mono_ms() ^ (unsigned int)attempts;
	return d / 2 + (d > 1 ? (int64_t)(rand_r(&seed) % (d / 2 + 1)) : 0);
}

/* A transient failure: another attempt if the budget allows, else FAILED.
 * A source that changed during the copy fails with that as the reason's
 * first words (`changed`): it is what the WFM has to act on. */
static void pool_retry_or_fail(struct store *s, const struct task *t, const char *err,
			       int changed)
{
	int64_t now = util_now_ms();
	int64_t delay = pool_backoff_ms(t->attempts);
	int64_t deadline = t->first_started_ms + (int64_t)pool_cfg->task_timeout * 1000;
	int within_time = now - t->first_started_ms + delay <= (int64_t)pool_cfg->retry_max_time * 1000;
	if (t->attempts - t->attempt_base < pool_cfg->retries && within_time &&
	    now + delay < deadline) {
		metrics_retry();
		char *reason = util_printf("attempt %d failed, retrying in %lld s: %s", t->attempts,
					   (long long)((delay + 999) / 1000), err);
		struct persist p = { .task = t->id, .what = "its retry" };
		int rc;
		while ((rc = store_retry(s, t->id, now + delay, reason)) < 0)
			if (persist_wait(&p, &pool_stopping) < 0)
				break;
		if (rc == 0) {
			persist_done(&p);
			log_warn("task %s: %s", t->id, reason);
		}
		free(reason);
		return;
	}
	int made = t->attempts - t->attempt_base;
	char *reason = changed ? util_printf("%s (gave up after %d attempt%s)", err, made,
					     made == 1 ? "" : "s")
			       : util_printf("gave up after %d attempt%s: %s", made,
					     made == 1 ? "" : "s", err);
	if (pool_record(s, t, TS_FAILED, NULL, reason, NULL) == 0)
		log_warn("task %s failed: %s", t->id, reason);
	free(reason);
}

/* An operator cancelled the task while it ran: what it staged goes, and
 * it ends cancelled with the operator's reason. */
static void pool_cancelled(struct store *s, const struct task *t, int64_t started_wall)
{
	if (t->kind == TASK_LOAD)
		xfer_abandon(pool_cfg, t);
	struct task now;
	char *reason = NULL;
	if (store_get(s, t->id, &now) == 0) {
		reason = now.reason ? util_printf("cancelled by an operator: %s", now.reason) : NULL;
		task_clear(&now);
	}
	if (!reason)
		reason = util_strdup("cancelled by an operator");
	if (pool_attempt(s, t, started_wall, reason) == 0 &&
	    pool_record(s, t, TS_CANCELLED, NULL, reason, NULL) == 0)
		log_warn("task %s %s", t->id, reason);
	free(reason);
}

/* ---- what a load reports (struct xfer_report) --------------------------- */

/* A load's facts go to the store here. The items, versions and files done
 * are waited for (persist.c) until the store takes them or the worker is
 * stopped; a failed file's reason and progress are let go when the store
 * refuses them, except the last progress, which shows every byte of a
 * finished task. */
struct pool_report {
	struct store *s;
	const char *id;
	volatile sig_atomic_t *stop;
};

static int pool_report_items(void *arg, struct item **v, int *n)
{
	struct pool_report *p = arg;
	return store_items(p->s, p->id, v, n);
}

static int pool_report_set_items(void *arg, const struct item *v, int n)
{
	struct pool_report *p = arg;
	struct persist w = { .task = p->id, .what = "its items" };
	while (store_set_items(p->s, p->id, v, n) < 0)
		if (persist_wait(&w, p->stop) < 0)
			return -1;
	persist_done(&w);
	return 0;
}

static int pool_report_item_version(void *arg, int seq, const char *version)
{
	struct pool_report *p = arg;
	struct persist w = { .task = p->id, .what = "a file's source version" };
	while (store_item_version(p->s, p->id, seq, version) < 0)
		if (persist_wait(&w, p->stop) < 0)
			return -1;
	persist_done(&w);
	return 0;
}

static int pool_report_item_done(void *arg, int seq, int64_t size, const char *sha256)
{
	struct pool_report *p = arg;
	struct persist w = { .task = p->id, .what = "a file done" };
	while (store_item_done(p->s, p->id, seq, size, sha256) < 0)
		if (persist_wait(&w, p->stop) < 0)
			return -1;
	persist_done(&w);
	return 0;
}

static void pool_report_item_failed(void *arg, int seq, const char *error)
{
	struct pool_report *p = arg;
	struct persist w = { .task = p->id, .what = "a file failed" };
	while (store_item_failed(p->s, p->id, seq, error) < 0)
		if (persist_wait(&w, p->stop) < 0)
			return;
	persist_done(&w);
}

static void pool_report_progress(void *arg, int64_t bytes, int last)
{
	struct pool_report *p = arg;
	if (!last) {
		store_progress(p->s, p->id, bytes);
		return;
	}
	struct persist w = { .task = p->id, .what = "its progress" };
	while (store_progress(p->s, p->id, bytes) < 0)
		if (persist_wait(&w, p->stop) < 0)
			return;
	persist_done(&w);
}

static int pool_load(struct pool_worker *w, struct store *s, const struct task *t, char *err,
		     size_t errlen)
{
	struct pool_report pr = { .s = s, .id = t->id, .stop = &w->stop };
	const struct xfer_report r = {
		.arg = &pr,
		.items = pool_report_items,
		.set_items = pool_report_set_items,
		.item_version = pool_report_item_version,
		.item_done = pool_report_item_done,
		.item_failed = pool_report_item_failed,
		.progress = pool_report_progress,
	};
	return xfer_load(pool_cfg, t, &r, &w->stop, err, errlen);
}

static void pool_run(struct pool_worker *w, struct store *s, struct task *t)
{
	char err[2048] = "";
	char *src = url_mask(t->source ? t->source : "");
	char *dst = url_mask(t->destination);
	log_info("task %s %s running (attempt %d): %s%s%s", t->id, task_kind_name(t->kind),
		 t->attempts, src, *src ? " -> " : "", dst);
	int64_t started = util_mono_ms(), started_wall = util_now_ms();
	pthread_mutex_lock(&pool_lock);
	w->deadline_ms = t->first_started_ms + (int64_t)pool_cfg->task_timeout * 1000;
	snprintf(w->task_id, sizeof w->task_id, "%s", t->id);
	w->cancelled = t->cancel_requested;
	w->lost = 0;
	w->stop = pool_stopping || util_now_ms() >= w->deadline_ms || w->cancelled;
	pthread_mutex_unlock(&pool_lock);

	int rc;
	char *note = NULL;
	if (t->rule_fail) {
		/* A [staging] rule scripts this failure: nothing is touched. */
		snprintf(err, sizeof err, "%s", t->rule_fail);
		rc = XFER_FAILED;
		log_info("task %s: failed by rule %s", t->id, t->rule ? t->rule : "?");
	} else if (t->kind == TASK_LOAD)
		rc = pool_load(w, s, t, err, sizeof err);
	else if (t->kind == TASK_PURGE)
		rc = xfer_purge(pool_cfg, t, &w->stop, &note, err, sizeof err);
	else {
		snprintf(err, sizeof err, "unknown task kind %d", t->kind);
		rc = XFER_FAILED;
	}
	pthread_mutex_lock(&pool_lock);
	int cancelled = w->cancelled, lost = w->lost;
	w->deadline_ms = 0;
	w->task_id[0] = '\0';
	w->cancelled = 0;
	w->lost = 0;
	pthread_mutex_unlock(&pool_lock);
	if (lost) {
		/* The node that holds the lease now runs the task, in the same
		 * stage: removing it would destroy that node's work, and
		 * whatever this one records matches no row any more. */
		log_info("task %s: stopped on this node, which no longer holds its lease; "
			 "the node that took it over carries it on", t->id);
		free(note);
		free(src);
		free(dst);
		return;
	}
	if (cancelled && rc != XFER_OK) {
		pool_cancelled(s, t, started_wall);
		free(note);
		free(src);
		free(dst);
		return;
	}
	if (rc == XFER_STOPPED && !pool_stopping) {
		/* The monitor raised the flag: the task ran out of time. */
		char *why = util_printf("the task did not finish within task_timeout (%d s)%s%s",
					pool_cfg->task_timeout, *err ? ": " : "", err);
		snprintf(err, sizeof err, "%s", why);
		free(why);
		xfer_abandon(pool_cfg, t);
		metrics_xfer_error("timeout");
		rc = XFER_FAILED;
	} else if (rc == XFER_RETRY || rc == XFER_CHANGED) {
		metrics_xfer_error("transient");
	} else if (rc == XFER_FAILED && !t->rule_fail) {
		metrics_xfer_error("permanent");
	}
	if (rc != XFER_STOPPED &&
	    pool_attempt(s, t, started_wall, rc == XFER_OK ? NULL : err) < 0) {
		/* apubid is stopping: the task stays running in the store and
		 * runs again at the next start. */
		free(note);
		free(src);
		free(dst);
		return;
	}

	if (rc == XFER_OK) {
		/* A [staging] rule may script the DestinationAsset answered. */
		char *result = t->kind != TASK_LOAD ? NULL
			       : t->rule_result ? util_strdup(t->rule_result)
			       : asset_public(pool_cfg, t->dest_path, t->dest_is_dir);
		if (pool_record(s, t, TS_SUCCEEDED, result, NULL, note) == 0)
			log_info("task %s succeeded in %lld ms%s%s%s%s", t->id,
				 (long long)(util_mono_ms() - started), result ? ": " : "",
				 result ? result : "", note ? ": " : "", note ? note : "");
		free(result);
	} else if (rc == XFER_STOPPED) {
		if (store_requeue(s, t->id) == 0)
			log_info("task %s interrupted by shutdown, queued again", t->id);
	} else if (rc == XFER_RETRY || rc == XFER_CHANGED) {
		pool_retry_or_fail(s, t, err, rc == XFER_CHANGED);
	} else {
		if (pool_record(s, t, TS_FAILED, NULL, err, NULL) == 0)
			log_warn("task %s failed: %s", t->id, err);
	}
	free(note);
	free(src);
	free(dst);
}

static void pool_prune(struct store *s)
{
	int days = pool_cfg->retention_days;
	if (days <= 0)
		return;
	int64_t before = util_now_ms() - (int64_t)days * 86400000;
	int64_t n = store_prune(s, before);
	if (n > 0)
		log_info("store: pruned %lld tasks finished more than %d days ago", (long long)n, days);
}

/* Stops the workers running tasks an operator cancelled, or whose lease
 * another node took over. */
static void pool_cancel_requested(struct store *s)
{
	char ids[POOL_MAX_CANCELS][TASKID_LEN];
	int lost[POOL_MAX_CANCELS];
	int n = store_cancel_requests(s, ids, lost, POOL_MAX_CANCELS);
	pthread_mutex_lock(&pool_lock);
	for (int k = 0; k < n; k++)
		for (int i = 0; i < pool_nthreads; i++) {
			struct pool_worker *w = &pool_workers[i];
			if (strcmp(w->task_id, ids[k]) != 0 || w->cancelled || w->lost)
				continue;
			w->stop = 1;
			if (lost[k]) {
				w->lost = 1;
				log_info("task %s: another node took its lease over, stopping it here",
					 ids[k]);
			} else {
				w->cancelled = 1;
				log_info("task %s: cancel requested by an operator, stopping it", ids[k]);
			}
		}
	pthread_mutex_unlock(&pool_lock);
}

/* Once a second, on a store other nodes share: the unfinished tasks that
 * queue_limit counts are those of the whole cluster, which this process
 * alone cannot count as tasks come and go. */
static void pool_count_shared(struct store *s)
{
	if (!store_shared(s))
		return;
	int64_t n = store_count_active(s);
	if (n >= 0)
		__atomic_store_n(&pool_active_count, n, __ATOMIC_SEQ_CST);
}

/* Once a second: while the store refuses writes, one small write tells
 * when it takes them again (store_health lowers store.c's fault flag when
 * it commits); a change of whether submissions are taken is logged once. */
static void pool_watch_store(struct store *s)
{
	static int refusing;
	char why[512];
	if (store_check(s, why, sizeof why) < 0)
		(void)store_health(s, why, sizeof why);
	int now_refusing = store_check(s, why, sizeof why) < 0;
	if (now_refusing && !refusing)
		log_warn("store: new tasks are refused: %s", why);
	else if (!now_refusing && refusing)
		log_info("store: new tasks are accepted again");
	refusing = now_refusing;
}

/* Raises a worker's stop flag when apubid stops, its task's time is up, or
 * an operator cancelled its task; watches the store's health; prunes the
 * store now and then. */
static void *pool_monitor(void *arg)
{
	(void)arg;
	char err[512];
	struct store *s = NULL;
	int64_t next_store = 0, next_prune = 0;
	while (!pool_stopping) {
		int64_t now = util_now_ms(), mono = util_mono_ms();
		__atomic_store_n(&pool_monitor_beat_ms, mono, __ATOMIC_RELAXED);
		pthread_mutex_lock(&pool_lock);
		for (int i = 0; i < pool_nthreads; i++) {
			int64_t d = pool_workers[i].deadline_ms;
			if (d && now >= d)
				pool_workers[i].stop = 1;
		}
		pthread_mutex_unlock(&pool_lock);
		if (mono >= next_store) {
			next_store = mono + 1000;
			if (!s && !(s = store_open(pool_cfg, err, sizeof err)))
				log_error("worker monitor: %s; trying again", err);
			if (s) {
				pool_watch_store(s);
				pool_cancel_requested(s);
				pool_count_shared(s);
			}
			if (s && mono >= next_prune) {
				pool_prune(s);
				int every = pool_cfg->prune_interval > 0 ? pool_cfg->prune_interval : 600;
				next_prune = mono + (int64_t)every * 1000;
			}
		}
		usleep(200 * 1000);
	}
	store_close(s);
	for (int i = 0; i < pool_nthreads; i++)
		pool_workers[i].stop = 1;
	return NULL;
}

static void *pool_main(void *arg)
{
	struct pool_worker *w = arg;
	int index = w->index;
	char err[512];
	struct store *s = NULL;
	while (!pool_stopping && !(s = store_open(pool_cfg, err, sizeof err))) {
		log_error("worker %d: %s; trying again", index, err);
		sleep(1);
	}
	if (s)
		store_set_durable(s, 0);
	while (!pool_stopping) {
		__atomic_store_n(&w->beat_ms, util_mono_ms(), __ATOMIC_RELAXED);
		pthread_mutex_lock(&pool_lock);
		uint64_t seen = pool_generation;
		pthread_mutex_unlock(&pool_lock);

		struct task t;
		int rc = store_claim(s, &t);
		if (rc == 0) {
			pool_run(w, s, &t);
			task_clear(&t);
			/* The task's end may release tasks the ordering rule
			 * held behind it: every idle worker looks again. */
			pthread_mutex_lock(&pool_lock);
			pool_generation++;
			pthread_cond_broadcast(&pool_cond);
			pthread_mutex_unlock(&pool_lock);
			continue;
		}
		if (rc < 0)
			sleep(1);
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += 1;
		pthread_mutex_lock(&pool_lock);
		while (!pool_stopping && pool_generation == seen) {
			if (pthread_cond_timedwait(&pool_cond, &pool_lock, &until) == ETIMEDOUT)
				break;
		}
		pthread_mutex_unlock(&pool_lock);
	}
	store_close(s);
	__atomic_store_n(&w->exited, 1, __ATOMIC_RELAXED);
	return NULL;
}

int pool_health(char *why, size_t whylen)
{
	int64_t now = util_mono_ms();
	if (!pool_workers || pool_stopping) {
		util_error(why, whylen, "the task workers are not running");
		return -1;
	}
	for (int i = 0; i < pool_nthreads; i++) {
		struct pool_worker *w = &pool_workers[i];
		if (__atomic_load_n(&w->exited, __ATOMIC_RELAXED)) {
			util_error(why, whylen, "worker %d has stopped", i);
			return -1;
		}
		pthread_mutex_lock(&pool_lock);
		int busy = w->task_id[0] != '\0';
		pthread_mutex_unlock(&pool_lock);
		int64_t beat = __atomic_load_n(&w->beat_ms, __ATOMIC_RELAXED);
		if (!busy && beat && now - beat > POOL_STUCK_MS) {
			util_error(why, whylen, "worker %d has not looked for work for %lld s", i,
				   (long long)((now - beat) / 1000));
			return -1;
		}
	}
	int64_t beat = __atomic_load_n(&pool_monitor_beat_ms, __ATOMIC_RELAXED);
	if (beat && now - beat > POOL_STUCK_MS) {
		util_error(why, whylen, "the worker monitor has not run for %lld s",
			   (long long)((now - beat) / 1000));
		return -1;
	}
	return 0;
}

int pool_start(const struct config *c)
{
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&pool_cond, &attr);
	pthread_condattr_destroy(&attr);

	pool_cfg = c;
	pool_workers = util_calloc((size_t)c->workers, sizeof *pool_workers);
	for (int i = 0; i < c->workers; i++) {
		pool_workers[i].index = i;
		pool_workers[i].beat_ms = util_mono_ms();
		int rc = pthread_create(&pool_workers[i].thread, NULL, pool_main, &pool_workers[i]);
		if (rc != 0) {
			log_error("cannot start worker %d: %s", i, strerror(rc));
			pool_stop();
			return -1;
		}
		pool_nthreads++;
	}
	if (pthread_create(&pool_monitor_thread, NULL, pool_monitor, NULL) != 0) {
		log_error("cannot start the worker monitor");
		pool_stop();
		return -1;
	}
	pool_monitor_started = 1;
	log_info("%d task workers started", c->workers);
	return 0;
}

void pool_stop(void)
{
	pthread_mutex_lock(&pool_lock);
	pool_stopping = 1;
	pthread_cond_broadcast(&pool_cond);
	pthread_mutex_unlock(&pool_lock);
	for (int i = 0; i < pool_nthreads; i++)
		pool_workers[i].stop = 1;
	if (pool_monitor_started)
		pthread_join(pool_monitor_thread, NULL);
	pool_monitor_started = 0;
	for (int i = 0; i < pool_nthreads; i++)
		pthread_join(pool_workers[i].thread, NULL);
	free(pool_workers);
	pool_workers = NULL;
	pool_nthreads = 0;
}

/*
 * pool.c - the task worker threads.
 *
 * What: `workers` threads, separate from the threads that serve SOAP
 * requests, each with its own store connection. A worker claims the oldest
 * queued task (store_claim is one atomic UPDATE, so no two workers ever get
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
 * Stopping: pool_stop sets `pool_stopping`; the file back end polls it
 * between files and gives up at a safe point, and the task goes back to
 * queued so the next start finishes it. Workers never exit the process: a
 * task's failure is recorded on the task.
 */
#include "apubid.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define POOL_PRUNE_EVERY_MS (10 * 60 * 1000)

static const struct config *pool_cfg;
static pthread_t *pool_threads;
static int pool_nthreads;
static volatile sig_atomic_t pool_stopping;
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cond;
static uint64_t pool_generation;
static int64_t pool_active_count;

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

/* Records a final state, trying again for a while if the store is busy: a
 * finished task that cannot be recorded stays running and is redone at the
 * next start, which is safe but slow. */
static void pool_record(struct store *s, const struct task *t, int state, const char *result,
			const char *reason, const char *note)
{
	for (int i = 0; i < 50; i++) {
		if (store_finish(s, t->id, state, result, reason, note) == 0) {
			pool_add_active(-1);
			return;
		}
		usleep(100 * 1000);
	}
	log_error("task %s: cannot record state %s; it will be redone at next start", t->id,
		  task_state_name(state));
}

static void pool_run(struct store *s, struct task *t)
{
	char err[1024] = "";
	char *src = url_mask(t->source ? t->source : "");
	char *dst = url_mask(t->destination);
	log_info("task %s %s running (attempt %d): %s%s%s", t->id, task_kind_name(t->kind),
		 t->attempts, src, *src ? " -> " : "", dst);
	int64_t started = util_mono_ms();

	if (t->kind == TASK_LOAD) {
		int rc = xfer_load(pool_cfg, t, &pool_stopping, err, sizeof err);
		if (rc == XFER_OK) {
			char *result = asset_public(pool_cfg, t->dest_path, t->dest_is_dir);
			pool_record(s, t, TS_SUCCEEDED, result, NULL, NULL);
			log_info("task %s succeeded in %lld ms: %s", t->id,
				 (long long)(util_mono_ms() - started), result);
			free(result);
		} else if (rc == XFER_STOPPED) {
			if (store_requeue(s, t->id) == 0)
				log_info("task %s interrupted by shutdown, queued again", t->id);
		} else {
			pool_record(s, t, TS_FAILED, NULL, err, NULL);
			log_warn("task %s failed: %s", t->id, err);
		}
	} else if (t->kind == TASK_PURGE) {
		char *note = NULL;
		int rc = xfer_purge(pool_cfg, t, &note, err, sizeof err);
		if (rc == XFER_OK) {
			pool_record(s, t, TS_SUCCEEDED, NULL, NULL, note);
			log_info("task %s succeeded in %lld ms%s%s", t->id,
				 (long long)(util_mono_ms() - started), note ? ": " : "",
				 note ? note : "");
		} else {
			pool_record(s, t, TS_FAILED, NULL, err, NULL);
			log_warn("task %s failed: %s", t->id, err);
		}
		free(note);
	} else {
		pool_record(s, t, TS_FAILED, NULL, "unknown task kind", NULL);
	}
	free(src);
	free(dst);
}

static void pool_prune(struct store *s)
{
	if (pool_cfg->retention_days <= 0)
		return;
	int64_t before = util_now_ms() - (int64_t)pool_cfg->retention_days * 86400000;
	int64_t n = store_prune(s, before);
	if (n > 0)
		log_info("store: pruned %lld tasks finished more than %d days ago", (long long)n,
			 pool_cfg->retention_days);
}

static void *pool_main(void *arg)
{
	int index = (int)(intptr_t)arg;
	char err[512];
	struct store *s = NULL;
	while (!pool_stopping && !(s = store_open(pool_cfg->store_path, err, sizeof err))) {
		log_error("worker %d: %s; trying again", index, err);
		sleep(1);
	}
	int64_t next_prune = 0;
	while (!pool_stopping) {
		if (index == 0 && util_mono_ms() >= next_prune) {
			pool_prune(s);
			next_prune = util_mono_ms() + POOL_PRUNE_EVERY_MS;
		}
		pthread_mutex_lock(&pool_lock);
		uint64_t seen = pool_generation;
		pthread_mutex_unlock(&pool_lock);

		struct task t;
		int rc = store_claim(s, &t);
		if (rc == 0) {
			pool_run(s, &t);
			task_clear(&t);
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
	return NULL;
}

int pool_start(const struct config *c)
{
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&pool_cond, &attr);
	pthread_condattr_destroy(&attr);

	pool_cfg = c;
	pool_threads = util_calloc((size_t)c->workers, sizeof *pool_threads);
	for (int i = 0; i < c->workers; i++) {
		int rc = pthread_create(&pool_threads[i], NULL, pool_main, (void *)(intptr_t)i);
		if (rc != 0) {
			log_error("cannot start worker %d: %s", i, strerror(rc));
			pool_stop();
			return -1;
		}
		pool_nthreads++;
	}
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
		pthread_join(pool_threads[i], NULL);
	free(pool_threads);
	pool_threads = NULL;
	pool_nthreads = 0;
}

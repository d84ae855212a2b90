/*
 * store.c - the task store's front: which backend holds the tasks, and
 * what every backend shares.
 *
 * apubid keeps its tasks in one of two backends behind one table of
 * operations (store.h): store_sqlite.c, one SQLite file for one daemon
 * (the embedded default: `[store] path`), and store_pg.c, a PostgreSQL
 * database shared by several daemons (`[store] url`). store_open picks the
 * backend from the configuration; every other store_* call goes to the
 * backend of the handle it is given. Callers never learn which one it is.
 *
 * What lives here because every backend needs it the same way:
 *
 * - The write-fault flag. A write that fails for a reason of the store's
 *   own (a full disk, a database that went away) raises one flag for the
 *   whole process, and the next write that commits lowers it. store_check
 *   reads it: submissions ask before they commit, so that nothing answers
 *   a TaskId the store may not keep, and the SOAP layer answers 503 with
 *   Retry-After meanwhile.
 *
 * - Group commit. A durable commit costs one flush to disk, and a disk
 *   does a few thousand a second at best. Once store_start has run, new
 *   tasks are not inserted by the caller's connection but handed to one
 *   committer thread with its own connection, which writes every task that
 *   arrived while the last commit was running in one transaction
 *   (insert_batch) and wakes each caller after the commit that holds its
 *   task. A caller is still answered only once its task is committed;
 *   under load many callers share one flush. A backend whose commit is
 *   dear (PostgreSQL: a round trip and a WAL flush under a lock shared by
 *   every node) lets the committer wait a little, under load only, for a
 *   batch as large as the last (store_ops.gather_us).
 *
 * - Validation common to backends: the list limit, and the task states as
 *   SQL text checked against enum task_state here.
 */
#include "store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

_Static_assert(TS_QUEUED == 0 && TS_RUNNING == 1 && TS_RETRY == 2 && TS_SUCCEEDED == 3 &&
		       TS_FAILED == 4 && TS_CANCELLED == 5,
	       "store.h's SQL_* state texts follow enum task_state");

/* ---- backend choice ----------------------------------------------------- */

static const struct store_ops *store_backend(const struct config *c)
{
	return c->store_url && *c->store_url ? &store_pg_ops : &store_sqlite_ops;
}

struct store *store_open(const struct config *c, char *err, size_t errlen)
{
	return store_backend(c)->open(c, err, errlen);
}

void store_close(struct store *s)
{
	if (s)
		s->ops->close(s);
}

const char *store_name(const struct store *s)
{
	return s->label;
}

int store_shared(const struct store *s)
{
	return s->ops->shared;
}

/* ---- the write-fault flag ----------------------------------------------- */

/* `failing` is read without the lock, `why` only under it. */
static struct {
	pthread_mutex_t lock;
	int failing;
	char why[256];
} store_fault = { .lock = PTHREAD_MUTEX_INITIALIZER };

int store_fault_raise(const char *why)
{
	pthread_mutex_lock(&store_fault.lock);
	int was = store_fault.failing;
	snprintf(store_fault.why, sizeof store_fault.why, "%s", why);
	__atomic_store_n(&store_fault.failing, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&store_fault.lock);
	return was;
}

void store_fault_clear(void)
{
	if (__atomic_load_n(&store_fault.failing, __ATOMIC_RELAXED))
		__atomic_store_n(&store_fault.failing, 0, __ATOMIC_RELAXED);
}

int store_check(struct store *s, char *why, size_t whylen)
{
	if (s->ops->check && s->ops->check(s, why, whylen) < 0)
		return -1;
	if (!__atomic_load_n(&store_fault.failing, __ATOMIC_RELAXED))
		return 0;
	pthread_mutex_lock(&store_fault.lock);
	util_error(why, whylen, "store %s does not take writes: %s", s->label, store_fault.why);
	pthread_mutex_unlock(&store_fault.lock);
	return -1;
}

/* ---- group commit -------------------------------------------------------- */

/* One caller waiting for its task to be committed by the batch thread. */
struct store_batch_req {
	const struct task *t;
	int rc;
	int done;
	struct store_batch_req *next;
};

/* The most tasks one transaction takes: a burst larger than this is
 * committed in several. */
#define STORE_BATCH_MAX 512

static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake; /* the committer: work arrived, or stop */
	pthread_cond_t done; /* the callers: a batch was committed */
	struct store_batch_req *head, **tail;
	struct store *s;     /* the committer's own connection */
	const struct store_ops *ops; /* the backend's background work */
	pthread_t thread;
	int running, stopping;
	int64_t batches, tasks; /* for the log at stop */
} store_batch = { .lock = PTHREAD_MUTEX_INITIALIZER,
		  .wake = PTHREAD_COND_INITIALIZER,
		  .done = PTHREAD_COND_INITIALIZER };

/* Commits one list of requests, STORE_BATCH_MAX at a time; each request
 * gets its batch's outcome, or its own insert's failure. */
static void store_batch_commit(struct store_batch_req *list)
{
	const struct task *t[STORE_BATCH_MAX];
	int rc[STORE_BATCH_MAX];
	while (list) {
		struct store_batch_req *first = list;
		int n = 0;
		for (; list && n < STORE_BATCH_MAX; list = list->next)
			t[n++] = list->t;
		(void)store_batch.s->ops->insert_batch(store_batch.s, t, rc, n);
		int i = 0;
		for (struct store_batch_req *r = first; r != list; r = r->next)
			r->rc = rc[i++];
	}
}

/* Requests queued now. Called with the lock held. */
static int store_batch_queued(void)
{
	int n = 0;
	for (struct store_batch_req *r = store_batch.head; r; r = r->next)
		n++;
	return n;
}

static void *store_batch_main(void *arg)
{
	(void)arg;
	int last = 0; /* the size of the previous batch */
	pthread_mutex_lock(&store_batch.lock);
	for (;;) {
		while (!store_batch.head && !store_batch.stopping)
			pthread_cond_wait(&store_batch.wake, &store_batch.lock);
		/* Under load the callers of one batch come back together and
		 * those of the next arrive while it commits, so batches
		 * alternate between two halves of the callers. On a backend
		 * whose commit costs more than the callers' turn-around, a
		 * short wait for as many tasks as the last batch held merges
		 * the halves: one commit for both. A lone caller (last <= 1)
		 * never waits. */
		int64_t gather = store_batch.ops->gather_us;
		if (gather > 0 && last > 1 && !store_batch.stopping) {
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += (long)gather * 1000;
			if (until.tv_nsec >= 1000000000L) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000L;
			}
			while (!store_batch.stopping && store_batch_queued() < last &&
			       pthread_cond_timedwait(&store_batch.wake, &store_batch.lock, &until) == 0)
				;
		}
		struct store_batch_req *list = store_batch.head;
		if (!list)
			break; /* stopping, and nothing left to write */
		store_batch.head = NULL;
		store_batch.tail = &store_batch.head;
		pthread_mutex_unlock(&store_batch.lock);

		store_batch_commit(list);
		int n = 0;
		pthread_mutex_lock(&store_batch.lock);
		for (struct store_batch_req *r = list, *next; r; r = next) {
			next = r->next; /* r belongs to its caller once done is set */
			r->done = 1;
			n++;
		}
		store_batch.batches++;
		store_batch.tasks += n;
		last = n;
		pthread_cond_broadcast(&store_batch.done);
	}
	pthread_mutex_unlock(&store_batch.lock);
	return NULL;
}

int store_start(const struct config *c, void (*wake)(void), char *err, size_t errlen)
{
	if (store_batch.running)
		return 0;
	store_batch.s = store_open(c, err, errlen);
	if (!store_batch.s)
		return -1;
	store_batch.ops = store_batch.s->ops;
	if (store_batch.ops->start && store_batch.ops->start(c, wake, err, errlen) < 0) {
		store_close(store_batch.s);
		store_batch.s = NULL;
		return -1;
	}
	store_batch.head = NULL;
	store_batch.tail = &store_batch.head;
	store_batch.stopping = 0;
	store_batch.batches = store_batch.tasks = 0;
	int rc = pthread_create(&store_batch.thread, NULL, store_batch_main, NULL);
	if (rc != 0) {
		util_error(err, errlen, "cannot start the store's committer: %s", strerror(rc));
		if (store_batch.ops->stop)
			store_batch.ops->stop();
		store_close(store_batch.s);
		store_batch.s = NULL;
		return -1;
	}
	store_batch.running = 1;
	return 0;
}

void store_stop(void)
{
	if (!store_batch.running)
		return;
	pthread_mutex_lock(&store_batch.lock);
	store_batch.stopping = 1;
	pthread_cond_signal(&store_batch.wake);
	pthread_mutex_unlock(&store_batch.lock);
	pthread_join(store_batch.thread, NULL);
	store_batch.running = 0;
	if (store_batch.ops->stop)
		store_batch.ops->stop();
	store_close(store_batch.s);
	store_batch.s = NULL;
	if (store_batch.batches)
		log_debug("store: %lld tasks committed in %lld batches", (long long)store_batch.tasks,
			  (long long)store_batch.batches);
}

int store_insert(struct store *s, const struct task *t)
{
	int rc;
	if (!store_batch.running) {
		(void)s->ops->insert_batch(s, &t, &rc, 1);
	} else {
		struct store_batch_req r = { .t = t, .rc = -1 };
		pthread_mutex_lock(&store_batch.lock);
		*store_batch.tail = &r;
		store_batch.tail = &r.next;
		pthread_cond_signal(&store_batch.wake);
		while (!r.done)
			pthread_cond_wait(&store_batch.done, &store_batch.lock);
		pthread_mutex_unlock(&store_batch.lock);
		rc = r.rc;
	}
	char why[512];
	if (rc == 0 && s && s->ops->kept && s->ops->kept(s, why, sizeof why) < 0) {
		log_error("store: insert: %s", why);
		return -1;
	}
	return rc;
}

/* ---- what backends share ------------------------------------------------- */

void *store_grow(void *v, int len, int *cap, size_t size)
{
	if (len < *cap)
		return v;
	*cap = *cap ? *cap * 2 : 16;
	void *nv = util_calloc((size_t)*cap, size);
	if (v)
		memcpy(nv, v, (size_t)len * size);
	free(v);
	return nv;
}

int store_list_limit(const struct task_filter *f)
{
	return f->limit <= 0 ? 100 : f->limit > 1000 ? 1000 : f->limit;
}

void task_free_all(struct task *t, int n)
{
	for (int i = 0; i < n; i++)
		task_clear(&t[i]);
	free(t);
}

void item_free_all(struct item *items, int n)
{
	for (int i = 0; i < n; i++) {
		free(items[i].path);
		free(items[i].sha256);
		free(items[i].error);
		free(items[i].version);
	}
	free(items);
}

void task_event_free_all(struct task_event *ev, int n)
{
	for (int i = 0; i < n; i++)
		free(ev[i].detail);
	free(ev);
}

void attempt_free_all(struct attempt *a, int n)
{
	for (int i = 0; i < n; i++)
		free(a[i].error);
	free(a);
}

/* ---- everything else goes to the handle's backend ------------------------ */

int store_set_durable(struct store *s, int full)
{
	return s->ops->set_durable(s, full);
}

int store_get(struct store *s, const char *id, struct task *t)
{
	return s->ops->get(s, id, t);
}

int store_claim(struct store *s, struct task *t)
{
	return s->ops->claim(s, t);
}

int store_finish(struct store *s, const char *id, int state, const char *result,
		 const char *reason, const char *note, int notify)
{
	return s->ops->finish(s, id, state, result, reason, note, notify);
}

int store_requeue(struct store *s, const char *id)
{
	return s->ops->requeue(s, id);
}

int store_recover(struct store *s)
{
	return s->ops->recover(s);
}

int64_t store_count_active(struct store *s)
{
	return s->ops->count_active(s);
}

int64_t store_prune(struct store *s, int64_t before_ms)
{
	return s->ops->prune(s, before_ms);
}

int store_retry(struct store *s, const char *id, int64_t next_ms, const char *reason)
{
	return s->ops->retry(s, id, next_ms, reason);
}

int store_attempt(struct store *s, const char *id, int n, int64_t started_ms, const char *error)
{
	return s->ops->attempt(s, id, n, started_ms, error);
}

int store_items(struct store *s, const char *id, struct item **items, int *n)
{
	return s->ops->items(s, id, items, n);
}

int store_set_items(struct store *s, const char *id, const struct item *items, int n)
{
	return s->ops->set_items(s, id, items, n);
}

int store_item_done(struct store *s, const char *id, int seq, int64_t size, const char *sha256)
{
	return s->ops->item_done(s, id, seq, size, sha256);
}

int store_item_failed(struct store *s, const char *id, int seq, const char *error)
{
	return s->ops->item_failed(s, id, seq, error);
}

int store_item_version(struct store *s, const char *id, int seq, const char *version)
{
	return s->ops->item_version(s, id, seq, version);
}

int store_progress(struct store *s, const char *id, int64_t bytes_done)
{
	return s->ops->progress(s, id, bytes_done);
}

int store_waiting_for(struct store *s, const char *id, char out[TASKID_LEN])
{
	return s->ops->waiting_for(s, id, out);
}

int64_t store_count_held(struct store *s)
{
	return s->ops->count_held(s);
}

int store_take_poll(struct store *s, const char *id)
{
	return s->ops->take_poll(s, id);
}

int store_list(struct store *s, const struct task_filter *f, struct task **tasks, int *n)
{
	*tasks = NULL;
	*n = 0;
	return s->ops->list(s, f, tasks, n);
}

int store_events(struct store *s, const char *id, struct task_event **ev, int *n)
{
	return s->ops->events(s, id, ev, n);
}

int store_attempts(struct store *s, const char *id, struct attempt **a, int *n)
{
	return s->ops->attempts(s, id, a, n);
}

int store_count_by_state(struct store *s, int64_t counts[6])
{
	return s->ops->count_by_state(s, counts);
}

int store_admin_retry(struct store *s, const char *id, char *err, size_t errlen)
{
	return s->ops->admin_retry(s, id, err, errlen);
}

int store_admin_cancel(struct store *s, const char *id, const char *reason, int notify,
		       int *was_running, char *err, size_t errlen)
{
	*was_running = 0;
	return s->ops->admin_cancel(s, id, reason, notify, was_running, err, errlen);
}

int store_cancel_requests(struct store *s, char (*ids)[TASKID_LEN], int *lost, int max)
{
	return s->ops->cancel_requests(s, ids, lost, max);
}

int store_notify_due(struct store *s, int64_t now_ms, char (*ids)[TASKID_LEN], int max)
{
	return s->ops->notify_due(s, now_ms, ids, max);
}

int store_notify_result(struct store *s, const char *id, int state, int attempts,
			int64_t next_ms, const char *error)
{
	return s->ops->notify_result(s, id, state, attempts, next_ms, error);
}

int store_health(struct store *s, char *why, size_t whylen)
{
	return s->ops->health(s, why, whylen);
}

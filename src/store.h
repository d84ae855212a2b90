/*
 * store.h - what the task store's front (store.c) and its backends
 * (store_sqlite.c, store_pg.c) share, and nothing else includes.
 *
 * Each backend fills one table of operations; store.c picks the table from
 * the configuration when a connection is opened and forwards every store_*
 * call through it. A backend's connection starts with a `struct store`, so
 * the front reaches the table from any handle. The functions keep the
 * contracts written in apubid.h; what a backend adds is said in its file.
 */
#ifndef STORE_H
#define STORE_H

#include "apubid.h"

/* The task states as they are written in SQL text, so that no statement
 * spells a state as a bare number. store.c checks they match enum
 * task_state at compile time. */
#define SQL_QUEUED "0"
#define SQL_RUNNING "1"
#define SQL_RETRY "2"
#define SQL_SUCCEEDED "3"
#define SQL_FAILED "4"
#define SQL_CANCELLED "5"
/* Final states are those >= SQL_FINAL. */
#define SQL_FINAL SQL_SUCCEEDED

struct store_ops;

/* The head of every backend's connection. `label` names the store in
 * messages: the SQLite file's path, or the PostgreSQL URL with its
 * password masked. */
struct store {
	const struct store_ops *ops;
	char *label;
};

struct store_ops {
	const char *name;
	/* Other processes accept and finish tasks in the same store. */
	int shared;
	/* How long (microseconds) the group committer may wait under load
	 * for a batch as large as the last one (0: never waits). */
	int gather_us;
	struct store *(*open)(const struct config *c, char *err, size_t errlen);
	void (*close)(struct store *s);
	int (*set_durable)(struct store *s, int full);
	/* Commits n tasks in one transaction: 0 and rc[i] = 0 for each, or -1
	 * and nothing committed (rc[i] -1 for each; a task refused on its own,
	 * e.g. a duplicate id, is told apart only in rc). */
	int (*insert_batch)(struct store *s, const struct task *const *t, int *rc, int n);
	/* Whether a committed insert stays: the backend's part of
	 * store_insert's check after the commit (0, or -1 with why). NULL:
	 * nothing to check. */
	int (*kept)(struct store *s, char *why, size_t whylen);
	int (*get)(struct store *s, const char *id, struct task *t);
	int (*claim)(struct store *s, struct task *t);
	int (*finish)(struct store *s, const char *id, int state, const char *result,
		      const char *reason, const char *note, int notify);
	int (*requeue)(struct store *s, const char *id);
	int (*recover)(struct store *s);
	int64_t (*count_active)(struct store *s);
	int64_t (*prune)(struct store *s, int64_t before_ms);
	int (*retry)(struct store *s, const char *id, int64_t next_ms, const char *reason);
	int (*attempt)(struct store *s, const char *id, int n, int64_t started_ms,
		       const char *error);
	int (*items)(struct store *s, const char *id, struct item **items, int *n);
	int (*set_items)(struct store *s, const char *id, const struct item *items, int n);
	int (*item_done)(struct store *s, const char *id, int seq, int64_t size,
			 const char *sha256);
	int (*item_failed)(struct store *s, const char *id, int seq, const char *error);
	int (*item_version)(struct store *s, const char *id, int seq, const char *version);
	int (*progress)(struct store *s, const char *id, int64_t bytes_done);
	int (*waiting_for)(struct store *s, const char *id, char out[TASKID_LEN]);
	int64_t (*count_held)(struct store *s);
	int (*take_poll)(struct store *s, const char *id);
	int (*list)(struct store *s, const struct task_filter *f, struct task **tasks, int *n);
	int (*events)(struct store *s, const char *id, struct task_event **ev, int *n);
	int (*attempts)(struct store *s, const char *id, struct attempt **a, int *n);
	int (*count_by_state)(struct store *s, int64_t counts[6]);
	int (*admin_retry)(struct store *s, const char *id, char *err, size_t errlen);
	int (*admin_cancel)(struct store *s, const char *id, const char *reason, int notify,
			    int *was_running, char *err, size_t errlen);
	int (*cancel_requests)(struct store *s, char (*ids)[TASKID_LEN], int *lost, int max);
	int (*notify_due)(struct store *s, int64_t now_ms, char (*ids)[TASKID_LEN], int max);
	int (*notify_result)(struct store *s, const char *id, int state, int attempts,
			     int64_t next_ms, const char *error);
	int (*health)(struct store *s, char *why, size_t whylen);
	/* The backend's part of store_check, before the common fault flag
	 * (NULL: none). */
	int (*check)(struct store *s, char *why, size_t whylen);
	/* Work the backend does in the background while the daemon runs
	 * (NULL: none); `wake` is called when another process committed
	 * work. */
	int (*start)(const struct config *c, void (*wake)(void), char *err, size_t errlen);
	void (*stop)(void);
};

extern const struct store_ops store_sqlite_ops;
extern const struct store_ops store_pg_ops;

/* The process's write-fault flag (store.c). store_fault_raise records why
 * the store does not take writes and returns whether the flag was already
 * up (the caller then logs at debug level); store_fault_clear lowers it
 * after a write committed. */
int store_fault_raise(const char *why);
void store_fault_clear(void);

/* Grows a malloc'ed array of `size`-byte elements to hold one more. */
void *store_grow(void *v, int len, int *cap, size_t size);
/* The limit store_list applies: 1..1000, 0 meaning 100. */
int store_list_limit(const struct task_filter *f);

#endif

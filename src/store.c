/*
 * store.c - tasks on disk, in SQLite. The only file that includes sqlite3.h.
 *
 * A `struct store` is one connection; every thread that touches tasks opens
 * its own (SQLite connections are not shared between threads here). The
 * database runs in WAL mode with synchronous=FULL, so a commit is on disk
 * when sqlite3_step returns: LoadAsset answers a TaskId only after
 * store_insert returned 0, and a TaskId once answered is never lost.
 *
 * The schema lives in db/NNN_*.sql, embedded in the binary, and is applied
 * in order at open time, tracked by PRAGMA user_version. A later back end
 * (PostgreSQL, for several nodes sharing one task table) implements the same
 * functions in store_pg.c.
 *
 * Claiming is one UPDATE ... RETURNING statement, so two workers (or two
 * processes) can never claim the same task. The same statement applies the
 * ordering rule (order.c): it takes the oldest runnable task that no
 * earlier unfinished task overlaps, scanning the unfinished tasks in seq
 * order on a partial index that holds their keys (task_order), so the
 * claim costs about as many index entries as there are unfinished tasks
 * ahead of the one it takes, however many finished tasks are kept.
 *
 * Group commit: a durable commit costs one fsync, and a disk does a few
 * thousand of those a second at best. Once store_batch_start has run, new
 * tasks are not inserted by the caller's connection but handed to one
 * committer thread, which writes every task that arrived while the last
 * fsync was running in one transaction and wakes each caller after the
 * commit that holds its task. A caller is still answered only once its
 * task is on disk; under load many callers share one fsync.
 *
 * Writers in one process take turns on a mutex (store_wlock) before they
 * ask SQLite for its write lock: SQLite's own busy handler waits by
 * sleeping for growing intervals, which turns a few threads writing small
 * transactions into a queue of naps. The busy handler stays for writers in
 * other processes (apubictl).
 *
 * Write faults: a write that fails for a reason of the store's own (a full
 * disk, an I/O error, a read-only file, a lock held beyond the busy
 * timeout) raises one flag for the whole process, and the next write that
 * commits lowers it. store_check reads it, together with whether the file
 * at the store's path is still the one the connection opened (SQLite goes
 * on writing into a deleted file through its open descriptors, and every
 * task written there is gone at the next start). Submissions ask
 * store_check before they commit, so that nothing answers a TaskId the
 * store may not keep. While the flag is up, failed statements are logged
 * at debug level: the first failure was logged, and workers trying again
 * must not fill the log.
 */
#include "apubid.h"

#include <sqlite3.h>
#include <errno.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const store_migrations[] = { embed_schema_v1, embed_schema_v2,
						 embed_schema_v3, embed_schema_v4,
						 embed_schema_v5, embed_schema_v6 };
#define STORE_VERSION ((int)(sizeof store_migrations / sizeof store_migrations[0]))

/* The ordering rule, as a sub-query on a candidate task `t`: an unfinished
 * task accepted before it (lower seq) whose destination overlaps, that is
 * one dest_key is a prefix of the other (db/005_order.sql). The claim takes
 * no task for which this finds a row. */
#define STORE_AHEAD                                                                    \
	"SELECT o.id FROM task o INDEXED BY task_order WHERE o.state < 3 AND o.seq < t.seq" \
	" AND (substr(t.dest_key, 1, length(o.dest_key)) = o.dest_key"                   \
	" OR substr(o.dest_key, 1, length(t.dest_key)) = t.dest_key)"

#define STORE_TASK_COLUMNS                                                             \
	"id, kind, state, source, destination, dest_path, dest_is_dir, result, reason,"    \
	" note, attempts, created_ms, updated_ms, next_attempt_ms, first_started_ms,"     \
	" bytes_total, bytes_done, files_total, files_done, seq, attempt_base,"         \
	" cancel_requested, notify_state, notify_attempts, notify_next_ms, notify_ms,"  \
	" notify_error, rule, rule_fail, rule_result, rule_polls"

enum {
	Q_INSERT,
	Q_GET,
	Q_CLAIM,
	Q_FINISH,
	Q_REQUEUE,
	Q_RECOVER,
	Q_COUNT,
	Q_PRUNE,
	Q_RETRY,
	Q_ATTEMPT,
	Q_ITEMS,
	Q_ITEMS_DEL,
	Q_ITEM_ADD,
	Q_TOTALS,
	Q_ITEM_DONE,
	Q_ITEM_FAILED,
	Q_ITEM_VERSION,
	Q_FILES_DONE,
	Q_PROGRESS,
	Q_RECOVER_CANCEL,
	Q_EVENTS,
	Q_ATTEMPTS,
	Q_BY_STATE,
	Q_ADMIN_RETRY,
	Q_ADMIN_CANCEL,
	Q_CANCEL_RUNNING,
	Q_STATE_OF,
	Q_CANCELS,
	Q_NOTIFY_DUE,
	Q_NOTIFY_RESULT,
	Q_HEALTH,
	Q_TAKE_POLL,
	Q_WAITING_FOR,
	Q_HELD,
	Q_MAX
};

static const char *const store_sql[Q_MAX] = {
	[Q_INSERT] = "INSERT INTO task (id, kind, state, source, destination, dest_path,"
		     " dest_is_dir, created_ms, updated_ms, next_attempt_ms, rule, rule_fail,"
		     " rule_result, rule_polls, dest_key) VALUES (?,?,0,?,?,?,?,?,?,?,?,?,?,?,?)",
	[Q_GET] = "SELECT " STORE_TASK_COLUMNS " FROM task WHERE id = ?",
	[Q_CLAIM] = "UPDATE task SET state = 1, attempts = attempts + 1, updated_ms = ?1,"
		    " first_started_ms = CASE WHEN first_started_ms = 0 THEN ?1"
		    " ELSE first_started_ms END"
		    " WHERE seq = (SELECT t.seq FROM task t INDEXED BY task_order"
		    " WHERE t.state < 3 AND t.state IN (0, 2)"
		    " AND t.next_attempt_ms <= ?1 AND NOT EXISTS (" STORE_AHEAD ")"
		    " ORDER BY t.seq LIMIT 1)"
		    " RETURNING " STORE_TASK_COLUMNS,
	[Q_FINISH] = "UPDATE task SET state = ?1, result = ?2, reason = ?3, note = ?4,"
		     " updated_ms = ?5, cancel_requested = 0,"
		     " notify_state = CASE WHEN ?7 THEN 1 ELSE 0 END, notify_attempts = 0,"
		     " notify_next_ms = ?5, notify_ms = 0, notify_error = NULL"
		     " WHERE id = ?6 AND state = 1",
	[Q_REQUEUE] = "UPDATE task SET state = 0, updated_ms = ? WHERE id = ? AND state = 1",
	[Q_RECOVER] = "UPDATE task SET state = 0, updated_ms = ? WHERE state = 1",
	[Q_RECOVER_CANCEL] = "UPDATE task SET state = 5, cancel_requested = 0, updated_ms = ?"
			     " WHERE state = 1 AND cancel_requested = 1",
	[Q_COUNT] = "SELECT count(*) FROM task WHERE state < 3",
	[Q_PRUNE] = "DELETE FROM task WHERE state >= 3 AND updated_ms < ? AND notify_state <> 1",
	[Q_RETRY] = "UPDATE task SET state = 2, next_attempt_ms = ?, reason = ?, updated_ms = ?"
		    " WHERE id = ? AND state = 1",
	[Q_ATTEMPT] = "INSERT OR REPLACE INTO attempt (task_id, n, started_ms, ended_ms, error)"
		      " VALUES (?, ?, ?, ?, ?)",
	[Q_ITEMS] = "SELECT seq, path, is_dir, size, state, sha256, error, version FROM item"
		    " WHERE task_id = ? ORDER BY seq",
	[Q_ITEMS_DEL] = "DELETE FROM item WHERE task_id = ?",
	[Q_ITEM_ADD] = "INSERT INTO item (task_id, seq, path, is_dir, size, state, sha256, error,"
		       " version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
	[Q_TOTALS] = "UPDATE task SET files_total = ?, bytes_total = ?, files_done = ?,"
		     " bytes_done = ?, updated_ms = ? WHERE id = ?",
	[Q_ITEM_DONE] = "UPDATE item SET state = 1, size = ?, sha256 = ?, error = NULL"
			" WHERE task_id = ? AND seq = ?",
	[Q_ITEM_FAILED] = "UPDATE item SET state = 2, error = ? WHERE task_id = ? AND seq = ?",
	[Q_ITEM_VERSION] = "UPDATE item SET version = ? WHERE task_id = ? AND seq = ?",
	[Q_FILES_DONE] = "UPDATE task SET files_done = (SELECT count(*) FROM item"
			 " WHERE task_id = ?1 AND state = 1 AND is_dir = 0), updated_ms = ?2"
			 " WHERE id = ?1",
	[Q_PROGRESS] = "UPDATE task SET bytes_done = ?, updated_ms = ? WHERE id = ?",
	[Q_EVENTS] = "SELECT at_ms, state, detail FROM event WHERE task_id = ? ORDER BY rowid",
	[Q_ATTEMPTS] = "SELECT n, started_ms, ended_ms, error FROM attempt WHERE task_id = ?"
		       " ORDER BY n",
	[Q_BY_STATE] = "SELECT state, count(*) FROM task GROUP BY state",
	[Q_ADMIN_RETRY] = "UPDATE task SET seq = (SELECT max(seq) + 1 FROM task),"
			  " state = 0, attempt_base = attempts, first_started_ms = 0,"
			  " next_attempt_ms = 0, result = NULL, reason = NULL, note = NULL,"
			  " cancel_requested = 0, notify_state = 0, notify_attempts = 0,"
			  " notify_next_ms = 0, notify_ms = 0, notify_error = NULL,"
			  " bytes_done = 0, files_done = 0, updated_ms = ?1"
			  " WHERE id = ?2 AND state IN (4, 5)",
	[Q_ADMIN_CANCEL] = "UPDATE task SET state = 5, reason = ?1, updated_ms = ?2,"
			   " notify_state = CASE WHEN ?3 THEN 1 ELSE 0 END, notify_attempts = 0,"
			   " notify_next_ms = ?2 WHERE id = ?4 AND state IN (0, 2)",
	[Q_CANCEL_RUNNING] = "UPDATE task SET cancel_requested = 1, reason = ?1"
			     " WHERE id = ?2 AND state = 1",
	[Q_STATE_OF] = "SELECT state FROM task WHERE id = ?",
	[Q_CANCELS] = "SELECT id FROM task WHERE cancel_requested = 1 AND state = 1 LIMIT ?",
	[Q_NOTIFY_DUE] = "SELECT id FROM task WHERE notify_state = 1 AND notify_next_ms <= ?"
			 " ORDER BY notify_next_ms LIMIT ?",
	[Q_NOTIFY_RESULT] = "UPDATE task SET notify_state = ?1, notify_attempts = ?2,"
			    " notify_next_ms = ?3, notify_error = ?4,"
			    " notify_ms = CASE WHEN ?1 IN (2, 3) THEN ?5 ELSE notify_ms END"
			    " WHERE id = ?6",
	[Q_HEALTH] = "INSERT OR REPLACE INTO health (id, at_ms) VALUES (1, ?)",
	[Q_WAITING_FOR] = "SELECT (" STORE_AHEAD " ORDER BY o.seq LIMIT 1) FROM task t"
			  " WHERE t.id = ? AND t.state IN (0, 2)",
	[Q_HELD] = "SELECT dest_key, state FROM task INDEXED BY task_order WHERE state < 3"
		   " ORDER BY seq",
	[Q_TAKE_POLL] = "UPDATE task SET rule_polls = rule_polls - (rule_polls > 0)"
			" WHERE id = ? AND rule_polls <> 0 RETURNING rule_polls",
};

struct store {
	sqlite3 *db;
	sqlite3_stmt *q[Q_MAX];
	/* The file opened, to tell it was deleted or replaced since. */
	dev_t dev;
	ino_t ino;
	int known;
};

/* The process's write-fault flag (see the top of the file); `failing` is
 * read without the lock, `why` only under it. */
static struct {
	pthread_mutex_t lock;
	int failing;
	char why[256];
} store_fault = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* Errors that say the store cannot take writes now, rather than that one
 * statement was wrong. */
static int store_fault_code(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_FULL:
	case SQLITE_IOERR:
	case SQLITE_READONLY:
	case SQLITE_CANTOPEN:
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
	case SQLITE_PERM:
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_PROTOCOL:
	case SQLITE_NOLFS:
		return 1;
	}
	return 0;
}

/* SQLite's message for the last error, with the system's when a system
 * call failed: "database or disk is full (No space left on device)". */
static void store_errtext(struct store *s, int rc, char *buf, size_t len)
{
	int e = sqlite3_system_errno(s->db);
	int io = (rc & 0xff) == SQLITE_IOERR || (rc & 0xff) == SQLITE_FULL ||
		 (rc & 0xff) == SQLITE_CANTOPEN;
	/* SQLite keeps no errno for a full disk (a short write says it). */
	if ((rc & 0xff) == SQLITE_FULL && !e)
		e = ENOSPC;
	if (io && e)
		snprintf(buf, len, "%s (%s)", sqlite3_errmsg(s->db), strerror(e));
	else
		snprintf(buf, len, "%s", sqlite3_errmsg(s->db));
}

/* A statement failed with rc: raises the fault flag when the store is at
 * fault, and logs (at debug while the flag was already up). */
static void store_failed(struct store *s, int rc, const char *what)
{
	char msg[256];
	store_errtext(s, rc, msg, sizeof msg);
	int fault = store_fault_code(rc), was = 0;
	if (fault) {
		pthread_mutex_lock(&store_fault.lock);
		was = store_fault.failing;
		snprintf(store_fault.why, sizeof store_fault.why, "%s", msg);
		__atomic_store_n(&store_fault.failing, 1, __ATOMIC_RELAXED);
		pthread_mutex_unlock(&store_fault.lock);
	}
	log_msg(was ? LOG_DEBUG : LOG_ERROR, "store: %s: %s", what, msg);
}

/* A write committed: the store takes writes. */
static void store_committed(void)
{
	if (__atomic_load_n(&store_fault.failing, __ATOMIC_RELAXED))
		__atomic_store_n(&store_fault.failing, 0, __ATOMIC_RELAXED);
}

/* Recursive: a transaction holds it across the statements inside. */
static pthread_mutex_t store_wlock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;

static void store_wbegin(void)
{
	pthread_mutex_lock(&store_wlock);
}

static void store_wend(void)
{
	pthread_mutex_unlock(&store_wlock);
}

static int store_exec(struct store *s, const char *sql)
{
	/* SQLite has rolled the transaction back by itself after some errors
	 * (a full disk, an I/O error): there is nothing left to roll back. */
	if (strcmp(sql, "ROLLBACK") == 0 && sqlite3_get_autocommit(s->db))
		return 0;
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		/* Names the statement by its first line (a migration is a
		 * whole file). */
		char what[64];
		snprintf(what, sizeof what, "%.*s", (int)strcspn(sql, "\n"), sql);
		store_failed(s, rc, what);
		return -1;
	}
	if (strcmp(sql, "COMMIT") == 0)
		store_committed();
	return 0;
}

static int store_user_version(struct store *s)
{
	sqlite3_stmt *st;
	int v = -1;
	if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* Applies the migrations the file has not seen yet, each in its own
 * transaction together with the version bump. */
static int store_migrate(struct store *s, char *err, size_t errlen)
{
	if (store_exec(s, "BEGIN IMMEDIATE") < 0) {
		snprintf(err, errlen, "cannot lock the store: %s", sqlite3_errmsg(s->db));
		return -1;
	}
	int v = store_user_version(s);
	if (v > STORE_VERSION) {
		store_exec(s, "ROLLBACK");
		snprintf(err, errlen, "store schema version %d is newer than this apubid (%d)", v,
			 STORE_VERSION);
		return -1;
	}
	for (; v >= 0 && v < STORE_VERSION; v++) {
		char bump[64];
		snprintf(bump, sizeof bump, "PRAGMA user_version = %d", v + 1);
		if (store_exec(s, store_migrations[v]) < 0 || store_exec(s, bump) < 0) {
			store_exec(s, "ROLLBACK");
			snprintf(err, errlen, "cannot apply store migration %d", v + 1);
			return -1;
		}
		log_info("store: schema migrated to version %d", v + 1);
	}
	if (v < 0 || store_exec(s, "COMMIT") < 0) {
		store_exec(s, "ROLLBACK");
		snprintf(err, errlen, "cannot read the store schema version");
		return -1;
	}
	return 0;
}

struct store *store_open(const char *path, char *err, size_t errlen)
{
	struct store *s = util_calloc(1, sizeof *s);
	int rc = sqlite3_open_v2(path, &s->db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
				 NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "cannot open store %s: %s", path,
			 s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_busy_timeout(s->db, 10000);
	if (store_exec(s, "PRAGMA journal_mode = WAL") < 0 ||
	    store_exec(s, "PRAGMA synchronous = FULL") < 0 ||
	    store_exec(s, "PRAGMA foreign_keys = ON") < 0) {
		snprintf(err, errlen, "cannot set up store %s: %s", path, sqlite3_errmsg(s->db));
		goto fail;
	}
	if (store_migrate(s, err, errlen) < 0)
		goto fail;
	const char *file = sqlite3_db_filename(s->db, "main");
	struct stat sb;
	if (file && *file && stat(file, &sb) == 0) {
		s->dev = sb.st_dev;
		s->ino = sb.st_ino;
		s->known = 1;
	}
	for (int i = 0; i < Q_MAX; i++) {
		if (sqlite3_prepare_v3(s->db, store_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
				       &s->q[i], NULL) != SQLITE_OK) {
			snprintf(err, errlen, "cannot prepare store statement: %s",
				 sqlite3_errmsg(s->db));
			goto fail;
		}
	}
	return s;
fail:
	store_close(s);
	return NULL;
}

int store_set_durable(struct store *s, int full)
{
	return store_exec(s, full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
}

void store_close(struct store *s)
{
	if (!s)
		return;
	for (int i = 0; i < Q_MAX; i++)
		sqlite3_finalize(s->q[i]);
	sqlite3_close(s->db);
	free(s);
}

/* Runs a prepared statement that returns no rows; resets it afterwards. */
static int store_step_done(struct store *s, sqlite3_stmt *st, const char *what)
{
	store_wbegin();
	int rc = sqlite3_step(st);
	int committed = rc == SQLITE_DONE && sqlite3_get_autocommit(s->db) &&
			sqlite3_changes(s->db) > 0;
	store_wend();
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE) {
		store_failed(s, rc, what);
		return -1;
	}
	if (committed)
		store_committed();
	return 0;
}

static void store_bind_text(sqlite3_stmt *st, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

/* Inserts one task with this connection's statement, inside or outside
 * a transaction. */
static int store_insert_one(struct store *s, const struct task *t)
{
	sqlite3_stmt *st = s->q[Q_INSERT];
	sqlite3_bind_text(st, 1, t->id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, t->kind);
	store_bind_text(st, 3, t->source);
	store_bind_text(st, 4, t->destination);
	store_bind_text(st, 5, t->dest_path);
	sqlite3_bind_int(st, 6, t->dest_is_dir);
	sqlite3_bind_int64(st, 7, t->created_ms);
	sqlite3_bind_int64(st, 8, t->created_ms);
	sqlite3_bind_int64(st, 9, t->next_attempt_ms);
	store_bind_text(st, 10, t->rule);
	store_bind_text(st, 11, t->rule_fail);
	store_bind_text(st, 12, t->rule_result);
	sqlite3_bind_int(st, 13, t->rule_polls);
	char *key = order_key(t->dest_path ? t->dest_path : "");
	sqlite3_bind_blob(st, 14, key, (int)strlen(key), free);
	return store_step_done(s, st, "insert");
}

/* One caller waiting for its task to be committed by the batch thread. */
struct store_batch_req {
	const struct task *t;
	int rc;
	int done;
	struct store_batch_req *next;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake; /* the committer: work arrived, or stop */
	pthread_cond_t done; /* the callers: a batch was committed */
	struct store_batch_req *head, **tail;
	struct store *s;     /* the committer's own connection */
	pthread_t thread;
	int running, stopping;
	int64_t batches, tasks; /* for the log at stop */
} store_batch = { .lock = PTHREAD_MUTEX_INITIALIZER,
		  .wake = PTHREAD_COND_INITIALIZER,
		  .done = PTHREAD_COND_INITIALIZER };

/* Commits one batch; every request gets the batch's outcome, or its own
 * insert's failure. A failed COMMIT rolls everything back: all fail. */
static void store_batch_commit(struct store_batch_req *list)
{
	struct store *s = store_batch.s;
	store_wbegin();
	int ok = store_exec(s, "BEGIN IMMEDIATE") == 0;
	for (struct store_batch_req *r = list; r; r = r->next) {
		r->rc = ok ? store_insert_one(s, r->t) : -1;
		/* After some errors (a full disk, an I/O error) SQLite rolls the
		 * whole transaction back: the tasks inserted before are gone
		 * too, and the next ones would each commit on their own outside
		 * it, for callers about to be told they failed. */
		if (ok && r->rc < 0 && sqlite3_get_autocommit(s->db))
			ok = 0;
	}
	if (ok && store_exec(s, "COMMIT") < 0) {
		store_exec(s, "ROLLBACK");
		ok = 0;
	}
	store_wend();
	for (struct store_batch_req *r = list; r; r = r->next)
		if (!ok)
			r->rc = -1;
}

static void *store_batch_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&store_batch.lock);
	for (;;) {
		while (!store_batch.head && !store_batch.stopping)
			pthread_cond_wait(&store_batch.wake, &store_batch.lock);
		struct store_batch_req *list = store_batch.head;
		if (!list)
			break; /* stopping, and nothing left to write */
		store_batch.head = NULL;
		store_batch.tail = &store_batch.head;
		pthread_mutex_unlock(&store_batch.lock);

		store_batch_commit(list);
		int64_t n = 0;
		pthread_mutex_lock(&store_batch.lock);
		for (struct store_batch_req *r = list, *next; r; r = next) {
			next = r->next; /* r belongs to its caller once done is set */
			r->done = 1;
			n++;
		}
		store_batch.batches++;
		store_batch.tasks += n;
		pthread_cond_broadcast(&store_batch.done);
	}
	pthread_mutex_unlock(&store_batch.lock);
	return NULL;
}

int store_batch_start(const char *path, char *err, size_t errlen)
{
	if (store_batch.running)
		return 0;
	store_batch.s = store_open(path, err, errlen);
	if (!store_batch.s)
		return -1;
	store_batch.head = NULL;
	store_batch.tail = &store_batch.head;
	store_batch.stopping = 0;
	store_batch.batches = store_batch.tasks = 0;
	int rc = pthread_create(&store_batch.thread, NULL, store_batch_main, NULL);
	if (rc != 0) {
		util_error(err, errlen, "cannot start the store's committer: %s", strerror(rc));
		store_close(store_batch.s);
		store_batch.s = NULL;
		return -1;
	}
	store_batch.running = 1;
	return 0;
}

void store_batch_stop(void)
{
	if (!store_batch.running)
		return;
	pthread_mutex_lock(&store_batch.lock);
	store_batch.stopping = 1;
	pthread_cond_signal(&store_batch.wake);
	pthread_mutex_unlock(&store_batch.lock);
	pthread_join(store_batch.thread, NULL);
	store_batch.running = 0;
	store_close(store_batch.s);
	store_batch.s = NULL;
	if (store_batch.batches)
		log_debug("store: %lld tasks committed in %lld batches", (long long)store_batch.tasks,
			  (long long)store_batch.batches);
}

static int store_same_file(struct store *s, const char *path, char *why, size_t whylen);

int store_insert(struct store *s, const struct task *t)
{
	int rc;
	if (!store_batch.running) {
		rc = store_insert_one(s, t);
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
	/* A commit into a file deleted or replaced meanwhile is not durable:
	 * the next start would not know the task. */
	char why[512];
	const char *path = s ? sqlite3_db_filename(s->db, "main") : NULL;
	if (rc == 0 && path && *path && store_same_file(s, path, why, sizeof why) < 0) {
		log_error("store: insert: %s", why);
		return -1;
	}
	return rc;
}

static char *store_column_text(sqlite3_stmt *st, int i)
{
	const unsigned char *v = sqlite3_column_text(st, i);
	return v ? util_strdup((const char *)v) : NULL;
}

static void store_read_task(sqlite3_stmt *st, struct task *t)
{
	memset(t, 0, sizeof *t);
	const unsigned char *id = sqlite3_column_text(st, 0);
	snprintf(t->id, sizeof t->id, "%s", id ? (const char *)id : "");
	t->kind = sqlite3_column_int(st, 1);
	t->state = sqlite3_column_int(st, 2);
	t->source = store_column_text(st, 3);
	t->destination = store_column_text(st, 4);
	t->dest_path = store_column_text(st, 5);
	t->dest_is_dir = sqlite3_column_int(st, 6);
	t->result = store_column_text(st, 7);
	t->reason = store_column_text(st, 8);
	t->note = store_column_text(st, 9);
	t->attempts = sqlite3_column_int(st, 10);
	t->created_ms = sqlite3_column_int64(st, 11);
	t->updated_ms = sqlite3_column_int64(st, 12);
	t->next_attempt_ms = sqlite3_column_int64(st, 13);
	t->first_started_ms = sqlite3_column_int64(st, 14);
	t->bytes_total = sqlite3_column_int64(st, 15);
	t->bytes_done = sqlite3_column_int64(st, 16);
	t->files_total = sqlite3_column_int(st, 17);
	t->files_done = sqlite3_column_int(st, 18);
	t->seq = sqlite3_column_int64(st, 19);
	t->attempt_base = sqlite3_column_int(st, 20);
	t->cancel_requested = sqlite3_column_int(st, 21);
	t->notify_state = sqlite3_column_int(st, 22);
	t->notify_attempts = sqlite3_column_int(st, 23);
	t->notify_next_ms = sqlite3_column_int64(st, 24);
	t->notify_ms = sqlite3_column_int64(st, 25);
	t->notify_error = store_column_text(st, 26);
	t->rule = store_column_text(st, 27);
	t->rule_fail = store_column_text(st, 28);
	t->rule_result = store_column_text(st, 29);
	t->rule_polls = sqlite3_column_int(st, 30);
}

/* Steps a statement that returns at most one task row. */
static int store_one_task(struct store *s, sqlite3_stmt *st, struct task *t, const char *what)
{
	int rc = sqlite3_step(st), ret;
	if (rc == SQLITE_ROW) {
		store_read_task(st, t);
		/* Drain so that an UPDATE ... RETURNING completes. */
		while ((rc = sqlite3_step(st)) == SQLITE_ROW)
			;
		ret = 0;
		if (rc != SQLITE_DONE) {
			store_failed(s, rc, what);
			task_clear(t);
			ret = -1;
		}
	} else if (rc == SQLITE_DONE) {
		ret = 1;
	} else {
		store_failed(s, rc, what);
		ret = -1;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return ret;
}

int store_get(struct store *s, const char *id, struct task *t)
{
	sqlite3_stmt *st = s->q[Q_GET];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	return store_one_task(s, st, t, "get");
}

int store_claim(struct store *s, struct task *t)
{
	sqlite3_stmt *st = s->q[Q_CLAIM];
	sqlite3_bind_int64(st, 1, util_now_ms());
	store_wbegin();
	int rc = store_one_task(s, st, t, "claim");
	store_wend();
	return rc;
}

int store_finish(struct store *s, const char *id, int state, const char *result,
		 const char *reason, const char *note, int notify)
{
	sqlite3_stmt *st = s->q[Q_FINISH];
	sqlite3_bind_int(st, 1, state);
	store_bind_text(st, 2, result);
	store_bind_text(st, 3, reason);
	store_bind_text(st, 4, note);
	sqlite3_bind_int64(st, 5, util_now_ms());
	sqlite3_bind_text(st, 6, id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 7, notify != 0);
	return store_step_done(s, st, "finish");
}

int store_requeue(struct store *s, const char *id)
{
	sqlite3_stmt *st = s->q[Q_REQUEUE];
	sqlite3_bind_int64(st, 1, util_now_ms());
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	return store_step_done(s, st, "requeue");
}

int store_recover(struct store *s)
{
	sqlite3_stmt *st = s->q[Q_RECOVER_CANCEL];
	sqlite3_bind_int64(st, 1, util_now_ms());
	if (store_step_done(s, st, "recover") < 0)
		return -1;
	st = s->q[Q_RECOVER];
	sqlite3_bind_int64(st, 1, util_now_ms());
	if (store_step_done(s, st, "recover") < 0)
		return -1;
	return sqlite3_changes(s->db);
}

int64_t store_count_active(struct store *s)
{
	sqlite3_stmt *st = s->q[Q_COUNT];
	int64_t n = -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	else
		log_error("store: count: %s", sqlite3_errmsg(s->db));
	sqlite3_reset(st);
	return n;
}

int64_t store_prune(struct store *s, int64_t before_ms)
{
	sqlite3_stmt *st = s->q[Q_PRUNE];
	sqlite3_bind_int64(st, 1, before_ms);
	if (store_step_done(s, st, "prune") < 0)
		return -1;
	return sqlite3_changes(s->db);
}

int store_retry(struct store *s, const char *id, int64_t next_ms, const char *reason)
{
	sqlite3_stmt *st = s->q[Q_RETRY];
	sqlite3_bind_int64(st, 1, next_ms);
	store_bind_text(st, 2, reason);
	sqlite3_bind_int64(st, 3, util_now_ms());
	sqlite3_bind_text(st, 4, id, -1, SQLITE_STATIC);
	return store_step_done(s, st, "retry");
}

int store_attempt(struct store *s, const char *id, int n, int64_t started_ms, const char *error)
{
	sqlite3_stmt *st = s->q[Q_ATTEMPT];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, n);
	sqlite3_bind_int64(st, 3, started_ms);
	sqlite3_bind_int64(st, 4, util_now_ms());
	store_bind_text(st, 5, error);
	return store_step_done(s, st, "attempt");
}

void task_free_all(struct task *t, int n)
{
	for (int i = 0; i < n; i++)
		task_clear(&t[i]);
	free(t);
}

/* Grows a malloc'ed array of `size`-byte elements to hold one more. */
static void *store_grow(void *v, int len, int *cap, size_t size)
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

/* Steps `st` (bound by the caller) to its end, reading each row with
 * `read` into a growing array of `size`-byte elements; resets the
 * statement. 0 with *out and *n (an empty result is NULL and 0), or -1
 * (what was read is freed with free_all). */
static int store_read_rows(struct store *s, sqlite3_stmt *st, size_t size,
			   void (*read)(sqlite3_stmt *st, void *row),
			   void (*free_all)(void *v, int n), void **out, int *n, const char *what)
{
	char *v = NULL;
	int len = 0, cap = 0, rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		v = store_grow(v, len, &cap, size);
		read(st, v + (size_t)len++ * size);
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE) {
		log_error("store: %s: %s", what, sqlite3_errmsg(s->db));
		free_all(v, len);
		return -1;
	}
	*out = v;
	*n = len;
	return 0;
}

static void store_read_task_row(sqlite3_stmt *st, void *row)
{
	store_read_task(st, row);
}

static void store_free_tasks(void *v, int n)
{
	task_free_all(v, n);
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

static void store_read_item(sqlite3_stmt *st, void *row)
{
	struct item *it = row;
	it->seq = sqlite3_column_int(st, 0);
	it->path = store_column_text(st, 1);
	if (!it->path)
		it->path = util_strdup("");
	it->is_dir = sqlite3_column_int(st, 2);
	it->size = sqlite3_column_int64(st, 3);
	it->state = sqlite3_column_int(st, 4);
	it->sha256 = store_column_text(st, 5);
	it->error = store_column_text(st, 6);
	it->version = store_column_text(st, 7);
}

static void store_free_items(void *v, int n)
{
	item_free_all(v, n);
}

int store_items(struct store *s, const char *id, struct item **items, int *n)
{
	sqlite3_stmt *st = s->q[Q_ITEMS];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	void *v;
	int rc = store_read_rows(s, st, sizeof **items, store_read_item, store_free_items, &v, n,
				 "items");
	if (rc == 0)
		*items = v;
	return rc;
}

int store_waiting_for(struct store *s, const char *id, char out[TASKID_LEN])
{
	sqlite3_stmt *st = s->q[Q_WAITING_FOR];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st), ret = 1;
	out[0] = 0;
	if (rc == SQLITE_ROW) {
		const unsigned char *v = sqlite3_column_text(st, 0);
		if (v) {
			snprintf(out, TASKID_LEN, "%s", (const char *)v);
			ret = 0;
		}
	} else if (rc != SQLITE_DONE) {
		log_error("store: waiting for: %s", sqlite3_errmsg(s->db));
		ret = -1;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return ret;
}

int64_t store_count_held(struct store *s)
{
	sqlite3_stmt *st = s->q[Q_HELD];
	struct order_held *h = order_held_new();
	int64_t n = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *key = sqlite3_column_blob(st, 0);
		int len = sqlite3_column_bytes(st, 0);
		int state = sqlite3_column_int(st, 1);
		if (order_held_next(h, key ? key : "", (size_t)len) && state != TS_RUNNING)
			n++;
	}
	if (rc != SQLITE_DONE) {
		log_error("store: held: %s", sqlite3_errmsg(s->db));
		n = -1;
	}
	sqlite3_reset(st);
	order_held_free(h);
	return n;
}

int store_take_poll(struct store *s, const char *id)
{
	sqlite3_stmt *st = s->q[Q_TAKE_POLL];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	store_wbegin();
	int rc = sqlite3_step(st), ret;
	if (rc == SQLITE_ROW) {
		ret = 1;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW)
			;
	} else {
		ret = 0;
	}
	store_wend();
	if (rc != SQLITE_DONE) {
		store_failed(s, rc, "poll");
		ret = -1;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return ret;
}

int store_set_items(struct store *s, const char *id, const struct item *items, int n)
{
	store_wbegin();
	if (store_exec(s, "BEGIN IMMEDIATE") < 0) {
		store_wend();
		return -1;
	}
	sqlite3_stmt *st = s->q[Q_ITEMS_DEL];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if (store_step_done(s, st, "items") < 0)
		goto fail;
	int64_t bytes = 0, bytes_done = 0;
	int files = 0, files_done = 0;
	for (int i = 0; i < n; i++) {
		st = s->q[Q_ITEM_ADD];
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, items[i].seq);
		sqlite3_bind_text(st, 3, items[i].path, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 4, items[i].is_dir);
		sqlite3_bind_int64(st, 5, items[i].size);
		sqlite3_bind_int(st, 6, items[i].state);
		store_bind_text(st, 7, items[i].sha256);
		store_bind_text(st, 8, items[i].error);
		store_bind_text(st, 9, items[i].version);
		if (store_step_done(s, st, "items") < 0)
			goto fail;
		if (!items[i].is_dir) {
			files++;
			if (items[i].size > 0)
				bytes += items[i].size;
			if (items[i].state == ITEM_DONE) {
				files_done++;
				if (items[i].size > 0)
					bytes_done += items[i].size;
			}
		}
	}
	st = s->q[Q_TOTALS];
	sqlite3_bind_int(st, 1, files);
	sqlite3_bind_int64(st, 2, bytes);
	sqlite3_bind_int(st, 3, files_done);
	sqlite3_bind_int64(st, 4, bytes_done);
	sqlite3_bind_int64(st, 5, util_now_ms());
	sqlite3_bind_text(st, 6, id, -1, SQLITE_STATIC);
	if (store_step_done(s, st, "items") < 0 || store_exec(s, "COMMIT") < 0)
		goto fail;
	store_wend();
	return 0;
fail:
	store_exec(s, "ROLLBACK");
	store_wend();
	return -1;
}

/* Recounts the finished files of a task after one item changed. */
static int store_files_done(struct store *s, const char *id)
{
	sqlite3_stmt *st = s->q[Q_FILES_DONE];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, util_now_ms());
	return store_step_done(s, st, "files done");
}

int store_item_done(struct store *s, const char *id, int seq, int64_t size, const char *sha256)
{
	store_wbegin();
	if (store_exec(s, "BEGIN IMMEDIATE") < 0) {
		store_wend();
		return -1;
	}
	sqlite3_stmt *st = s->q[Q_ITEM_DONE];
	sqlite3_bind_int64(st, 1, size);
	store_bind_text(st, 2, sha256);
	sqlite3_bind_text(st, 3, id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, seq);
	if (store_step_done(s, st, "item done") < 0 || store_files_done(s, id) < 0 ||
	    store_exec(s, "COMMIT") < 0) {
		store_exec(s, "ROLLBACK");
		store_wend();
		return -1;
	}
	store_wend();
	return 0;
}

int store_item_failed(struct store *s, const char *id, int seq, const char *error)
{
	sqlite3_stmt *st = s->q[Q_ITEM_FAILED];
	store_bind_text(st, 1, error);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, seq);
	return store_step_done(s, st, "item failed");
}

int store_item_version(struct store *s, const char *id, int seq, const char *version)
{
	sqlite3_stmt *st = s->q[Q_ITEM_VERSION];
	store_bind_text(st, 1, version);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, seq);
	return store_step_done(s, st, "item version");
}

int store_progress(struct store *s, const char *id, int64_t bytes_done)
{
	sqlite3_stmt *st = s->q[Q_PROGRESS];
	sqlite3_bind_int64(st, 1, bytes_done);
	sqlite3_bind_int64(st, 2, util_now_ms());
	sqlite3_bind_text(st, 3, id, -1, SQLITE_STATIC);
	return store_step_done(s, st, "progress");
}

/* ---- operators: listing, history, retry, cancel, notifications --------- */

int store_list(struct store *s, const struct task_filter *f, struct task **tasks, int *n)
{
	*tasks = NULL;
	*n = 0;
	/* Built per call: listing is an operator's action, not a hot path, and
	 * each filter left out keeps the query on the seq or (state, seq)
	 * index. */
	char sql[768];
	int64_t now = util_now_ms();
	snprintf(sql, sizeof sql,
		 "SELECT " STORE_TASK_COLUMNS " FROM task WHERE 1%s%s%s%s%s"
		 " ORDER BY seq DESC LIMIT ?6",
		 f->state >= 0 ? " AND state = ?1" : "", f->kind > 0 ? " AND kind = ?2" : "",
		 f->min_age_ms > 0 ? " AND created_ms <= ?3" : "",
		 f->max_age_ms > 0 ? " AND created_ms >= ?4" : "",
		 f->before_seq > 0 ? " AND seq < ?5" : "");
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
		log_error("store: list: %s", sqlite3_errmsg(s->db));
		return -1;
	}
	int limit = f->limit <= 0 ? 100 : f->limit > 1000 ? 1000 : f->limit;
	if (f->state >= 0)
		sqlite3_bind_int(st, 1, f->state);
	if (f->kind > 0)
		sqlite3_bind_int(st, 2, f->kind);
	if (f->min_age_ms > 0)
		sqlite3_bind_int64(st, 3, now - f->min_age_ms);
	if (f->max_age_ms > 0)
		sqlite3_bind_int64(st, 4, now - f->max_age_ms);
	if (f->before_seq > 0)
		sqlite3_bind_int64(st, 5, f->before_seq);
	sqlite3_bind_int(st, 6, limit);
	void *v;
	int rc = store_read_rows(s, st, sizeof(struct task), store_read_task_row, store_free_tasks,
				 &v, n, "list");
	sqlite3_finalize(st);
	if (rc == 0)
		*tasks = v;
	return rc;
}

void task_event_free_all(struct task_event *ev, int n)
{
	for (int i = 0; i < n; i++)
		free(ev[i].detail);
	free(ev);
}

static void store_read_event(sqlite3_stmt *st, void *row)
{
	struct task_event *e = row;
	e->at_ms = sqlite3_column_int64(st, 0);
	e->state = sqlite3_column_int(st, 1);
	e->detail = store_column_text(st, 2);
}

static void store_free_events(void *v, int n)
{
	task_event_free_all(v, n);
}

int store_events(struct store *s, const char *id, struct task_event **ev, int *n)
{
	sqlite3_stmt *st = s->q[Q_EVENTS];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	void *v;
	int rc = store_read_rows(s, st, sizeof **ev, store_read_event, store_free_events, &v, n,
				 "events");
	if (rc == 0)
		*ev = v;
	return rc;
}

void attempt_free_all(struct attempt *a, int n)
{
	for (int i = 0; i < n; i++)
		free(a[i].error);
	free(a);
}

static void store_read_attempt(sqlite3_stmt *st, void *row)
{
	struct attempt *e = row;
	e->n = sqlite3_column_int(st, 0);
	e->started_ms = sqlite3_column_int64(st, 1);
	e->ended_ms = sqlite3_column_int64(st, 2);
	e->error = store_column_text(st, 3);
}

static void store_free_attempts(void *v, int n)
{
	attempt_free_all(v, n);
}

int store_attempts(struct store *s, const char *id, struct attempt **a, int *n)
{
	sqlite3_stmt *st = s->q[Q_ATTEMPTS];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	void *v;
	int rc = store_read_rows(s, st, sizeof **a, store_read_attempt, store_free_attempts, &v, n,
				 "attempts");
	if (rc == 0)
		*a = v;
	return rc;
}

int store_count_by_state(struct store *s, int64_t counts[6])
{
	sqlite3_stmt *st = s->q[Q_BY_STATE];
	int rc;
	for (int i = 0; i < 6; i++)
		counts[i] = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int state = sqlite3_column_int(st, 0);
		if (state >= 0 && state < 6)
			counts[state] = sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		log_error("store: count by state: %s", sqlite3_errmsg(s->db));
		return -1;
	}
	return 0;
}

/* The state of a task: 0 and *state, 1 when there is no such task, -1. */
static int store_state_of(struct store *s, const char *id, int *state)
{
	sqlite3_stmt *st = s->q[Q_STATE_OF];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st), ret = -1;
	if (rc == SQLITE_ROW) {
		*state = sqlite3_column_int(st, 0);
		ret = 0;
	} else if (rc == SQLITE_DONE) {
		ret = 1;
	} else {
		log_error("store: state: %s", sqlite3_errmsg(s->db));
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return ret;
}

int store_admin_retry(struct store *s, const char *id, char *err, size_t errlen)
{
	sqlite3_stmt *st = s->q[Q_ADMIN_RETRY];
	sqlite3_bind_int64(st, 1, util_now_ms());
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	if (store_step_done(s, st, "retry") < 0) {
		util_error(err, errlen, "cannot write the store: %s", sqlite3_errmsg(s->db));
		return -1;
	}
	if (sqlite3_changes(s->db) == 1)
		return 0;
	int state, rc = store_state_of(s, id, &state);
	if (rc == 1)
		return 1;
	if (rc < 0)
		util_error(err, errlen, "cannot read the store: %s", sqlite3_errmsg(s->db));
	else
		util_error(err, errlen,
			   "task %s is %s; only failed or cancelled tasks can be retried", id,
			   task_state_name(state));
	return -1;
}

int store_admin_cancel(struct store *s, const char *id, const char *reason, int notify,
		       int *was_running, char *err, size_t errlen)
{
	int64_t now = util_now_ms();
	*was_running = 0;
	sqlite3_stmt *st = s->q[Q_ADMIN_CANCEL];
	store_bind_text(st, 1, reason);
	sqlite3_bind_int64(st, 2, now);
	sqlite3_bind_int(st, 3, notify != 0);
	sqlite3_bind_text(st, 4, id, -1, SQLITE_STATIC);
	if (store_step_done(s, st, "cancel") < 0)
		goto fail;
	if (sqlite3_changes(s->db) == 1)
		return 0;
	st = s->q[Q_CANCEL_RUNNING];
	store_bind_text(st, 1, reason);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	if (store_step_done(s, st, "cancel") < 0)
		goto fail;
	if (sqlite3_changes(s->db) == 1) {
		*was_running = 1;
		return 0;
	}
	int state, rc = store_state_of(s, id, &state);
	if (rc == 1)
		return 1;
	if (rc < 0)
		goto fail;
	util_error(err, errlen, "task %s is already %s; it cannot be cancelled", id,
		   task_state_name(state));
	return -1;
fail:
	util_error(err, errlen, "cannot write the store: %s", sqlite3_errmsg(s->db));
	return -1;
}

/* Reads up to `max` ids from a statement whose first column is an id. */
static int store_ids(struct store *s, sqlite3_stmt *st, char (*ids)[TASKID_LEN], int max,
		     const char *what)
{
	int n = 0, rc;
	while (n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *id = sqlite3_column_text(st, 0);
		snprintf(ids[n++], TASKID_LEN, "%s", id ? (const char *)id : "");
	}
	if (n < max && rc != SQLITE_DONE) {
		log_error("store: %s: %s", what, sqlite3_errmsg(s->db));
		n = -1;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return n;
}

int store_cancel_requests(struct store *s, char (*ids)[TASKID_LEN], int max)
{
	sqlite3_stmt *st = s->q[Q_CANCELS];
	sqlite3_bind_int(st, 1, max);
	return store_ids(s, st, ids, max, "cancel requests");
}

int store_notify_due(struct store *s, int64_t now_ms, char (*ids)[TASKID_LEN], int max)
{
	sqlite3_stmt *st = s->q[Q_NOTIFY_DUE];
	sqlite3_bind_int64(st, 1, now_ms);
	sqlite3_bind_int(st, 2, max);
	return store_ids(s, st, ids, max, "notifications due");
}

int store_notify_result(struct store *s, const char *id, int state, int attempts,
			int64_t next_ms, const char *error)
{
	sqlite3_stmt *st = s->q[Q_NOTIFY_RESULT];
	sqlite3_bind_int(st, 1, state);
	sqlite3_bind_int(st, 2, attempts);
	sqlite3_bind_int64(st, 3, next_ms);
	store_bind_text(st, 4, error);
	sqlite3_bind_int64(st, 5, util_now_ms());
	sqlite3_bind_text(st, 6, id, -1, SQLITE_STATIC);
	return store_step_done(s, st, "notification");
}

/* Whether the file at the store's path is still the one s opened. */
static int store_same_file(struct store *s, const char *path, char *why, size_t whylen)
{
	struct stat sb;
	if (!s->known)
		return 0;
	int gone = stat(path, &sb) < 0;
	if (gone && errno != ENOENT) {
		util_error(why, whylen, "store file %s cannot be checked: %s", path, strerror(errno));
		return -1;
	}
	if (gone || sb.st_dev != s->dev || sb.st_ino != s->ino) {
		util_error(why, whylen, "store file %s was deleted or replaced since apubid opened it",
			   path);
		return -1;
	}
	return 0;
}

int store_check(struct store *s, char *why, size_t whylen)
{
	const char *path = sqlite3_db_filename(s->db, "main");
	if (path && *path && store_same_file(s, path, why, whylen) < 0)
		return -1;
	if (!__atomic_load_n(&store_fault.failing, __ATOMIC_RELAXED))
		return 0;
	pthread_mutex_lock(&store_fault.lock);
	util_error(why, whylen, "store %s does not take writes: %s", path ? path : "",
		   store_fault.why);
	pthread_mutex_unlock(&store_fault.lock);
	return -1;
}

int store_health(struct store *s, char *why, size_t whylen)
{
	const char *path = sqlite3_db_filename(s->db, "main");
	struct stat sb;
	if (!path || !*path) {
		util_error(why, whylen, "the store has no file");
		return -1;
	}
	if (store_same_file(s, path, why, whylen) < 0)
		return -1;
	if (stat(path, &sb) < 0) {
		util_error(why, whylen, "store %s: %s", path, strerror(errno));
		return -1;
	}
	/* A store made read-only on purpose has no write bit left; root would
	 * still be allowed to write it, but an operator who did that wants
	 * apubid out of rotation. */
	if ((sb.st_mode & 0222) == 0 || access(path, W_OK) < 0) {
		util_error(why, whylen, "store %s is read-only", path);
		return -1;
	}
	char *dir = util_strdup(path);
	char *slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	int dir_ok = access(slash ? dir : ".", W_OK) == 0;
	free(dir);
	if (!dir_ok) {
		util_error(why, whylen, "the directory of store %s is not writable", path);
		return -1;
	}
	sqlite3_stmt *st = s->q[Q_HEALTH];
	sqlite3_bind_int64(st, 1, util_now_ms());
	store_wbegin();
	int rc = sqlite3_step(st);
	store_wend();
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE) {
		char msg[256];
		store_errtext(s, rc, msg, sizeof msg);
		store_failed(s, rc, "health");
		util_error(why, whylen, "store %s does not take writes: %s", path, msg);
		return -1;
	}
	store_committed();
	return 0;
}

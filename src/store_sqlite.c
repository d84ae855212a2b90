/*
 * store_sqlite.c - the task store in one SQLite file: the embedded
 * default, for one apubid on one machine. The only file that includes
 * sqlite3.h.
 *
 * A connection is one sqlite3 handle; every thread that touches tasks opens
 * its own (SQLite connections are not shared between threads here). The
 * database runs in WAL mode with synchronous=FULL, so a commit is on disk
 * when sqlite3_step returns: LoadAsset answers a TaskId only after
 * store_insert returned 0, and a TaskId once answered is never lost.
 *
 * The schema lives in db/sqlite/NNN_*.sql, embedded in the binary, and is
 * applied in order at open time, tracked by PRAGMA user_version.
 *
 * One process owns the file (lock.c holds its lock for the daemon's life),
 * so every task found running at start-up was left by this daemon's
 * previous run, and store_recover puts every one of them back.
 *
 * Claiming is one UPDATE ... RETURNING statement, so two workers (or two
 * processes) can never claim the same task. The same statement applies the
 * ordering rule (order.c): it takes the oldest runnable task that no
 * earlier unfinished task overlaps, scanning the unfinished tasks in seq
 * order on a partial index that holds their keys (task_order), so the
 * claim costs about as many index entries as there are unfinished tasks
 * ahead of the one it takes, however many finished tasks are kept.
 *
 * Group commit is store.c's: its committer hands every task that arrived
 * while the last fsync was running to insert_batch, one transaction.
 *
 * Writers in one process take turns on a mutex (store_sqlite_wlock) before
 * they ask SQLite for its write lock: SQLite's own busy handler waits by
 * sleeping for growing intervals, which turns a few threads writing small
 * transactions into a queue of naps. The busy handler stays for writers in
 * other processes (apubictl).
 *
 * Write faults: a write that fails for a reason of the store's own (a full
 * disk, an I/O error, a read-only file, a lock held beyond the busy
 * timeout) raises store.c's fault flag, and the next write that commits
 * lowers it. The backend's part of store_check is whether the file at the
 * store's path is still the one the connection opened (SQLite goes on
 * writing into a deleted file through its open descriptors, and every task
 * written there is gone at the next start). While the flag is up, failed
 * statements are logged at debug level: the first failure was logged, and
 * workers trying again must not fill the log.
 */
#include "store.h"

#include <sqlite3.h>
#include <errno.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const store_sqlite_migrations[] = { embed_sqlite_v1, embed_sqlite_v2,
						 embed_sqlite_v3, embed_sqlite_v4,
						 embed_sqlite_v5, embed_sqlite_v6 };
#define STORE_VERSION ((int)(sizeof store_sqlite_migrations / sizeof store_sqlite_migrations[0]))

/* The ordering rule, as a sub-query on a candidate task `t`: an unfinished
 * task accepted before it (lower seq) whose destination overlaps, that is
 * one dest_key is a prefix of the other (db/005_order.sql). The claim takes
 * no task for which this finds a row. */
#define STORE_AHEAD                                                                    \
	"SELECT o.id FROM task o INDEXED BY task_order WHERE o.state < " SQL_FINAL " AND o.seq < t.seq" \
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

static const char *const store_sqlite_sql[Q_MAX] = {
	[Q_INSERT] = "INSERT INTO task (id, kind, state, source, destination, dest_path,"
		     " dest_is_dir, created_ms, updated_ms, next_attempt_ms, rule, rule_fail,"
		     " rule_result, rule_polls, dest_key) VALUES (?,?,0,?,?,?,?,?,?,?,?,?,?,?,?)",
	[Q_GET] = "SELECT " STORE_TASK_COLUMNS " FROM task WHERE id = ?",
	[Q_CLAIM] = "UPDATE task SET state = " SQL_RUNNING ", attempts = attempts + 1, updated_ms = ?1,"
		    " first_started_ms = CASE WHEN first_started_ms = 0 THEN ?1"
		    " ELSE first_started_ms END"
		    " WHERE seq = (SELECT t.seq FROM task t INDEXED BY task_order"
		    " WHERE t.state < " SQL_FINAL " AND t.state IN (" SQL_QUEUED ", " SQL_RETRY ")"
		    " AND t.next_attempt_ms <= ?1 AND NOT EXISTS (" STORE_AHEAD ")"
		    " ORDER BY t.seq LIMIT 1)"
		    " RETURNING " STORE_TASK_COLUMNS,
	[Q_FINISH] = "UPDATE task SET state = ?1, result = ?2, reason = ?3, note = ?4,"
		     " updated_ms = ?5, cancel_requested = 0,"
		     " notify_state = CASE WHEN ?7 THEN 1 ELSE 0 END, notify_attempts = 0,"
		     " notify_next_ms = ?5, notify_ms = 0, notify_error = NULL"
		     " WHERE id = ?6 AND state = " SQL_RUNNING,
	[Q_REQUEUE] = "UPDATE task SET state = " SQL_QUEUED ", updated_ms = ? WHERE id = ? AND state = " SQL_RUNNING,
	[Q_RECOVER] = "UPDATE task SET state = " SQL_QUEUED ", updated_ms = ? WHERE state = " SQL_RUNNING,
	[Q_RECOVER_CANCEL] = "UPDATE task SET state = " SQL_CANCELLED ", cancel_requested = 0, updated_ms = ?"
			     " WHERE state = " SQL_RUNNING " AND cancel_requested = 1",
	[Q_COUNT] = "SELECT count(*) FROM task WHERE state < " SQL_FINAL,
	[Q_PRUNE] = "DELETE FROM task WHERE state >= " SQL_FINAL " AND updated_ms < ? AND notify_state <> 1",
	[Q_RETRY] = "UPDATE task SET state = " SQL_RETRY ", next_attempt_ms = ?, reason = ?, updated_ms = ?"
		    " WHERE id = ? AND state = " SQL_RUNNING,
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
			  " state = " SQL_QUEUED ", attempt_base = attempts, first_started_ms = 0,"
			  " next_attempt_ms = 0, result = NULL, reason = NULL, note = NULL,"
			  " cancel_requested = 0, notify_state = 0, notify_attempts = 0,"
			  " notify_next_ms = 0, notify_ms = 0, notify_error = NULL,"
			  " bytes_done = 0, files_done = 0, updated_ms = ?1"
			  " WHERE id = ?2 AND state IN (" SQL_FAILED ", " SQL_CANCELLED ")",
	[Q_ADMIN_CANCEL] = "UPDATE task SET state = " SQL_CANCELLED ", reason = ?1, updated_ms = ?2,"
			   " notify_state = CASE WHEN ?3 THEN 1 ELSE 0 END, notify_attempts = 0,"
			   " notify_next_ms = ?2 WHERE id = ?4 AND state IN (" SQL_QUEUED ", " SQL_RETRY ")",
	[Q_CANCEL_RUNNING] = "UPDATE task SET cancel_requested = 1, reason = ?1"
			     " WHERE id = ?2 AND state = " SQL_RUNNING,
	[Q_STATE_OF] = "SELECT state FROM task WHERE id = ?",
	[Q_CANCELS] = "SELECT id FROM task WHERE cancel_requested = 1 AND state = " SQL_RUNNING " LIMIT ?",
	[Q_NOTIFY_DUE] = "SELECT id FROM task WHERE notify_state = 1 AND notify_next_ms <= ?"
			 " ORDER BY notify_next_ms LIMIT ?",
	[Q_NOTIFY_RESULT] = "UPDATE task SET notify_state = ?1, notify_attempts = ?2,"
			    " notify_next_ms = ?3, notify_error = ?4,"
			    " notify_ms = CASE WHEN ?1 IN (2, 3) THEN ?5 ELSE notify_ms END"
			    " WHERE id = ?6",
	[Q_HEALTH] = "INSERT OR REPLACE INTO health (id, at_ms) VALUES (1, ?)",
	[Q_WAITING_FOR] = "SELECT (" STORE_AHEAD " ORDER BY o.seq LIMIT 1) FROM task t"
			  " WHERE t.id = ? AND t.state IN (" SQL_QUEUED ", " SQL_RETRY ")",
	[Q_HELD] = "SELECT dest_key, state FROM task INDEXED BY task_order WHERE state < " SQL_FINAL
		   " ORDER BY seq",
	[Q_TAKE_POLL] = "UPDATE task SET rule_polls = rule_polls - (rule_polls > 0)"
			" WHERE id = ? AND rule_polls <> 0 RETURNING rule_polls",
};

struct store_sqlite {
	struct store base;
	sqlite3 *db;
	sqlite3_stmt *q[Q_MAX];
	/* The file opened, to tell it was deleted or replaced since. */
	dev_t dev;
	ino_t ino;
	int known;
};

/* The SQLite connection behind a handle of this backend. */
#define SQ(s) ((struct store_sqlite *)(s))

/* Errors that say the store cannot take writes now, rather than that one
 * statement was wrong. */
static int store_sqlite_fault_code(int rc)
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
static void store_sqlite_errtext(struct store *s, int rc, char *buf, size_t len)
{
	int e = sqlite3_system_errno(SQ(s)->db);
	int io = (rc & 0xff) == SQLITE_IOERR || (rc & 0xff) == SQLITE_FULL ||
		 (rc & 0xff) == SQLITE_CANTOPEN;
	/* SQLite keeps no errno for a full disk (a short write says it). */
	if ((rc & 0xff) == SQLITE_FULL && !e)
		e = ENOSPC;
	if (io && e)
		snprintf(buf, len, "%s (%s)", sqlite3_errmsg(SQ(s)->db), strerror(e));
	else
		snprintf(buf, len, "%s", sqlite3_errmsg(SQ(s)->db));
}

/* A statement failed with rc: raises the fault flag when the store is at
 * fault, and logs (at debug while the flag was already up). */
static void store_sqlite_failed(struct store *s, int rc, const char *what)
{
	char msg[256];
	store_sqlite_errtext(s, rc, msg, sizeof msg);
	int was = store_sqlite_fault_code(rc) ? store_fault_raise(msg) : 0;
	log_msg(was ? LOG_DEBUG : LOG_ERROR, "store: %s: %s", what, msg);
}

/* Recursive: a transaction holds it across the statements inside. */
static pthread_mutex_t store_sqlite_wlock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;

static void store_sqlite_wbegin(void)
{
	pthread_mutex_lock(&store_sqlite_wlock);
}

static void store_sqlite_wend(void)
{
	pthread_mutex_unlock(&store_sqlite_wlock);
}

static int store_sqlite_exec(struct store *s, const char *sql)
{
	/* SQLite has rolled the transaction back by itself after some errors
	 * (a full disk, an I/O error): there is nothing left to roll back. */
	if (strcmp(sql, "ROLLBACK") == 0 && sqlite3_get_autocommit(SQ(s)->db))
		return 0;
	int rc = sqlite3_exec(SQ(s)->db, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		/* Names the statement by its first line (a migration is a
		 * whole file). */
		char what[64];
		snprintf(what, sizeof what, "%.*s", (int)strcspn(sql, "\n"), sql);
		store_sqlite_failed(s, rc, what);
		return -1;
	}
	if (strcmp(sql, "COMMIT") == 0)
		store_fault_clear();
	return 0;
}

static int store_sqlite_user_version(struct store *s)
{
	sqlite3_stmt *st;
	int v = -1;
	if (sqlite3_prepare_v2(SQ(s)->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* Applies the migrations the file has not seen yet, each in its own
 * transaction together with the version bump. */
static int store_sqlite_migrate(struct store *s, char *err, size_t errlen)
{
	if (store_sqlite_exec(s, "BEGIN IMMEDIATE") < 0) {
		snprintf(err, errlen, "cannot lock the store: %s", sqlite3_errmsg(SQ(s)->db));
		return -1;
	}
	int v = store_sqlite_user_version(s);
	if (v > STORE_VERSION) {
		store_sqlite_exec(s, "ROLLBACK");
		snprintf(err, errlen, "store schema version %d is newer than this apubid (%d)", v,
			 STORE_VERSION);
		return -1;
	}
	for (; v >= 0 && v < STORE_VERSION; v++) {
		char bump[64];
		snprintf(bump, sizeof bump, "PRAGMA user_version = %d", v + 1);
		if (store_sqlite_exec(s, store_sqlite_migrations[v]) < 0 || store_sqlite_exec(s, bump) < 0) {
			store_sqlite_exec(s, "ROLLBACK");
			snprintf(err, errlen, "cannot apply store migration %d", v + 1);
			return -1;
		}
		log_info("store: schema migrated to version %d", v + 1);
	}
	if (v < 0 || store_sqlite_exec(s, "COMMIT") < 0) {
		store_sqlite_exec(s, "ROLLBACK");
		snprintf(err, errlen, "cannot read the store schema version");
		return -1;
	}
	return 0;
}

static void store_sqlite_close(struct store *s);

static struct store *store_sqlite_open(const struct config *c, char *err, size_t errlen)
{
	const char *path = c->store_path ? c->store_path : "";
	struct store *s = util_calloc(1, sizeof(struct store_sqlite));
	s->ops = &store_sqlite_ops;
	s->label = util_strdup(path);
	int rc = sqlite3_open_v2(path, &SQ(s)->db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
				 NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "cannot open store %s: %s", path,
			 SQ(s)->db ? sqlite3_errmsg(SQ(s)->db) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_busy_timeout(SQ(s)->db, 10000);
	if (store_sqlite_exec(s, "PRAGMA journal_mode = WAL") < 0 ||
	    store_sqlite_exec(s, "PRAGMA synchronous = FULL") < 0 ||
	    store_sqlite_exec(s, "PRAGMA foreign_keys = ON") < 0) {
		snprintf(err, errlen, "cannot set up store %s: %s", path, sqlite3_errmsg(SQ(s)->db));
		goto fail;
	}
	if (store_sqlite_migrate(s, err, errlen) < 0)
		goto fail;
	const char *file = sqlite3_db_filename(SQ(s)->db, "main");
	struct stat sb;
	if (file && *file && stat(file, &sb) == 0) {
		SQ(s)->dev = sb.st_dev;
		SQ(s)->ino = sb.st_ino;
		SQ(s)->known = 1;
	}
	for (int i = 0; i < Q_MAX; i++) {
		if (sqlite3_prepare_v3(SQ(s)->db, store_sqlite_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
				       &SQ(s)->q[i], NULL) != SQLITE_OK) {
			snprintf(err, errlen, "cannot prepare store statement: %s",
				 sqlite3_errmsg(SQ(s)->db));
			goto fail;
		}
	}
	return s;
fail:
	store_sqlite_close(s);
	return NULL;
}

static int store_sqlite_set_durable(struct store *s, int full)
{
	return store_sqlite_exec(s, full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
}

static void store_sqlite_close(struct store *s)
{
	if (!s)
		return;
	for (int i = 0; i < Q_MAX; i++)
		sqlite3_finalize(SQ(s)->q[i]);
	sqlite3_close(SQ(s)->db);
	free(s->label);
	free(s);
}

/* Runs a prepared statement that returns no rows; resets it afterwards. */
static int store_sqlite_step_done(struct store *s, sqlite3_stmt *st, const char *what)
{
	store_sqlite_wbegin();
	int rc = sqlite3_step(st);
	int committed = rc == SQLITE_DONE && sqlite3_get_autocommit(SQ(s)->db) &&
			sqlite3_changes(SQ(s)->db) > 0;
	store_sqlite_wend();
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE) {
		store_sqlite_failed(s, rc, what);
		return -1;
	}
	if (committed)
		store_fault_clear();
	return 0;
}

static void store_sqlite_bind_text(sqlite3_stmt *st, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

/* Inserts one task with this connection's statement, inside or outside
 * a transaction. */
static int store_sqlite_insert_one(struct store *s, const struct task *t)
{
	sqlite3_stmt *st = SQ(s)->q[Q_INSERT];
	sqlite3_bind_text(st, 1, t->id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, t->kind);
	store_sqlite_bind_text(st, 3, t->source);
	store_sqlite_bind_text(st, 4, t->destination);
	store_sqlite_bind_text(st, 5, t->dest_path);
	sqlite3_bind_int(st, 6, t->dest_is_dir);
	sqlite3_bind_int64(st, 7, t->created_ms);
	sqlite3_bind_int64(st, 8, t->created_ms);
	sqlite3_bind_int64(st, 9, t->next_attempt_ms);
	store_sqlite_bind_text(st, 10, t->rule);
	store_sqlite_bind_text(st, 11, t->rule_fail);
	store_sqlite_bind_text(st, 12, t->rule_result);
	sqlite3_bind_int(st, 13, t->rule_polls);
	char *key = order_key(t->dest_path ? t->dest_path : "");
	sqlite3_bind_blob(st, 14, key, (int)strlen(key), free);
	return store_sqlite_step_done(s, st, "insert");
}

static int store_sqlite_same_file(struct store *s, const char *path, char *why, size_t whylen);

/* Commits tasks in one transaction (store.c's group committer, or one
 * store_insert). A failed COMMIT rolls everything back: all fail. */
static int store_sqlite_insert_batch(struct store *s, const struct task *const *t, int *rc, int n)
{
	store_sqlite_wbegin();
	int ok = store_sqlite_exec(s, "BEGIN IMMEDIATE") == 0;
	for (int i = 0; i < n; i++) {
		rc[i] = ok ? store_sqlite_insert_one(s, t[i]) : -1;
		/* After some errors (a full disk, an I/O error) SQLite rolls the
		 * whole transaction back: the tasks inserted before are gone
		 * too, and the next ones would each commit on their own outside
		 * it, for callers about to be told they failed. */
		if (ok && rc[i] < 0 && sqlite3_get_autocommit(SQ(s)->db))
			ok = 0;
	}
	if (ok && store_sqlite_exec(s, "COMMIT") < 0) {
		store_sqlite_exec(s, "ROLLBACK");
		ok = 0;
	}
	store_sqlite_wend();
	for (int i = 0; i < n && !ok; i++)
		rc[i] = -1;
	return ok ? 0 : -1;
}

/* A commit into a file deleted or replaced meanwhile is not durable: the
 * next start would not know the task. */
static int store_sqlite_kept(struct store *s, char *why, size_t whylen)
{
	const char *path = sqlite3_db_filename(SQ(s)->db, "main");
	if (path && *path && store_sqlite_same_file(s, path, why, whylen) < 0)
		return -1;
	return 0;
}

static char *store_sqlite_column_text(sqlite3_stmt *st, int i)
{
	const unsigned char *v = sqlite3_column_text(st, i);
	return v ? util_strdup((const char *)v) : NULL;
}

static void store_sqlite_read_task(sqlite3_stmt *st, struct task *t)
{
	memset(t, 0, sizeof *t);
	const unsigned char *id = sqlite3_column_text(st, 0);
	snprintf(t->id, sizeof t->id, "%s", id ? (const char *)id : "");
	t->kind = sqlite3_column_int(st, 1);
	t->state = sqlite3_column_int(st, 2);
	t->source = store_sqlite_column_text(st, 3);
	t->destination = store_sqlite_column_text(st, 4);
	t->dest_path = store_sqlite_column_text(st, 5);
	t->dest_is_dir = sqlite3_column_int(st, 6);
	t->result = store_sqlite_column_text(st, 7);
	t->reason = store_sqlite_column_text(st, 8);
	t->note = store_sqlite_column_text(st, 9);
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
	t->notify_error = store_sqlite_column_text(st, 26);
	t->rule = store_sqlite_column_text(st, 27);
	t->rule_fail = store_sqlite_column_text(st, 28);
	t->rule_result = store_sqlite_column_text(st, 29);
	t->rule_polls = sqlite3_column_int(st, 30);
}

/* Steps a statement that returns at most one task row. */
static int store_sqlite_one_task(struct store *s, sqlite3_stmt *st, struct task *t, const char *what)
{
	int rc = sqlite3_step(st), ret;
	if (rc == SQLITE_ROW) {
		store_sqlite_read_task(st, t);
		/* Drain so that an UPDATE ... RETURNING completes. */
		while ((rc = sqlite3_step(st)) == SQLITE_ROW)
			;
		ret = 0;
		if (rc != SQLITE_DONE) {
			store_sqlite_failed(s, rc, what);
			task_clear(t);
			ret = -1;
		}
	} else if (rc == SQLITE_DONE) {
		ret = 1;
	} else {
		store_sqlite_failed(s, rc, what);
		ret = -1;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return ret;
}

static int store_sqlite_get(struct store *s, const char *id, struct task *t)
{
	sqlite3_stmt *st = SQ(s)->q[Q_GET];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	return store_sqlite_one_task(s, st, t, "get");
}

static int store_sqlite_claim(struct store *s, struct task *t)
{
	sqlite3_stmt *st = SQ(s)->q[Q_CLAIM];
	sqlite3_bind_int64(st, 1, util_now_ms());
	store_sqlite_wbegin();
	int rc = store_sqlite_one_task(s, st, t, "claim");
	store_sqlite_wend();
	return rc;
}

static int store_sqlite_finish(struct store *s, const char *id, int state, const char *result,
		 const char *reason, const char *note, int notify)
{
	sqlite3_stmt *st = SQ(s)->q[Q_FINISH];
	sqlite3_bind_int(st, 1, state);
	store_sqlite_bind_text(st, 2, result);
	store_sqlite_bind_text(st, 3, reason);
	store_sqlite_bind_text(st, 4, note);
	sqlite3_bind_int64(st, 5, util_now_ms());
	sqlite3_bind_text(st, 6, id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 7, notify != 0);
	return store_sqlite_step_done(s, st, "finish");
}

static int store_sqlite_requeue(struct store *s, const char *id)
{
	sqlite3_stmt *st = SQ(s)->q[Q_REQUEUE];
	sqlite3_bind_int64(st, 1, util_now_ms());
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	return store_sqlite_step_done(s, st, "requeue");
}

static int store_sqlite_recover(struct store *s)
{
	sqlite3_stmt *st = SQ(s)->q[Q_RECOVER_CANCEL];
	sqlite3_bind_int64(st, 1, util_now_ms());
	if (store_sqlite_step_done(s, st, "recover") < 0)
		return -1;
	st = SQ(s)->q[Q_RECOVER];
	sqlite3_bind_int64(st, 1, util_now_ms());
	if (store_sqlite_step_done(s, st, "recover") < 0)
		return -1;
	return sqlite3_changes(SQ(s)->db);
}

static int64_t store_sqlite_count_active(struct store *s)
{
	sqlite3_stmt *st = SQ(s)->q[Q_COUNT];
	int64_t n = -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	else
		log_error("store: count: %s", sqlite3_errmsg(SQ(s)->db));
	sqlite3_reset(st);
	return n;
}

static int64_t store_sqlite_prune(struct store *s, int64_t before_ms)
{
	sqlite3_stmt *st = SQ(s)->q[Q_PRUNE];
	sqlite3_bind_int64(st, 1, before_ms);
	if (store_sqlite_step_done(s, st, "prune") < 0)
		return -1;
	return sqlite3_changes(SQ(s)->db);
}

static int store_sqlite_retry(struct store *s, const char *id, int64_t next_ms, const char *reason)
{
	sqlite3_stmt *st = SQ(s)->q[Q_RETRY];
	sqlite3_bind_int64(st, 1, next_ms);
	store_sqlite_bind_text(st, 2, reason);
	sqlite3_bind_int64(st, 3, util_now_ms());
	sqlite3_bind_text(st, 4, id, -1, SQLITE_STATIC);
	return store_sqlite_step_done(s, st, "retry");
}

static int store_sqlite_attempt(struct store *s, const char *id, int n, int64_t started_ms, const char *error)
{
	sqlite3_stmt *st = SQ(s)->q[Q_ATTEMPT];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, n);
	sqlite3_bind_int64(st, 3, started_ms);
	sqlite3_bind_int64(st, 4, util_now_ms());
	store_sqlite_bind_text(st, 5, error);
	return store_sqlite_step_done(s, st, "attempt");
}

/* Steps `st` (bound by the caller) to its end, reading each row with
 * `read` into a growing array of `size`-byte elements; resets the
 * statement. 0 with *out and *n (an empty result is NULL and 0), or -1
 * (what was read is freed with free_all). */
static int store_sqlite_read_rows(struct store *s, sqlite3_stmt *st, size_t size,
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
		log_error("store: %s: %s", what, sqlite3_errmsg(SQ(s)->db));
		free_all(v, len);
		return -1;
	}
	*out = v;
	*n = len;
	return 0;
}

static void store_sqlite_read_task_row(sqlite3_stmt *st, void *row)
{
	store_sqlite_read_task(st, row);
}

static void store_sqlite_free_tasks(void *v, int n)
{
	task_free_all(v, n);
}

static void store_sqlite_read_item(sqlite3_stmt *st, void *row)
{
	struct item *it = row;
	it->seq = sqlite3_column_int(st, 0);
	it->path = store_sqlite_column_text(st, 1);
	if (!it->path)
		it->path = util_strdup("");
	it->is_dir = sqlite3_column_int(st, 2);
	it->size = sqlite3_column_int64(st, 3);
	it->state = sqlite3_column_int(st, 4);
	it->sha256 = store_sqlite_column_text(st, 5);
	it->error = store_sqlite_column_text(st, 6);
	it->version = store_sqlite_column_text(st, 7);
}

static void store_sqlite_free_items(void *v, int n)
{
	item_free_all(v, n);
}

static int store_sqlite_items(struct store *s, const char *id, struct item **items, int *n)
{
	sqlite3_stmt *st = SQ(s)->q[Q_ITEMS];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	void *v;
	int rc = store_sqlite_read_rows(s, st, sizeof **items, store_sqlite_read_item, store_sqlite_free_items, &v, n,
				 "items");
	if (rc == 0)
		*items = v;
	return rc;
}

static int store_sqlite_waiting_for(struct store *s, const char *id, char out[TASKID_LEN])
{
	sqlite3_stmt *st = SQ(s)->q[Q_WAITING_FOR];
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
		log_error("store: waiting for: %s", sqlite3_errmsg(SQ(s)->db));
		ret = -1;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return ret;
}

static int64_t store_sqlite_count_held(struct store *s)
{
	sqlite3_stmt *st = SQ(s)->q[Q_HELD];
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
		log_error("store: held: %s", sqlite3_errmsg(SQ(s)->db));
		n = -1;
	}
	sqlite3_reset(st);
	order_held_free(h);
	return n;
}

static int store_sqlite_take_poll(struct store *s, const char *id)
{
	sqlite3_stmt *st = SQ(s)->q[Q_TAKE_POLL];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	store_sqlite_wbegin();
	int rc = sqlite3_step(st), ret;
	if (rc == SQLITE_ROW) {
		ret = 1;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW)
			;
	} else {
		ret = 0;
	}
	store_sqlite_wend();
	if (rc != SQLITE_DONE) {
		store_sqlite_failed(s, rc, "poll");
		ret = -1;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return ret;
}

static int store_sqlite_set_items(struct store *s, const char *id, const struct item *items, int n)
{
	store_sqlite_wbegin();
	if (store_sqlite_exec(s, "BEGIN IMMEDIATE") < 0) {
		store_sqlite_wend();
		return -1;
	}
	sqlite3_stmt *st = SQ(s)->q[Q_ITEMS_DEL];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if (store_sqlite_step_done(s, st, "items") < 0)
		goto fail;
	int64_t bytes = 0, bytes_done = 0;
	int files = 0, files_done = 0;
	for (int i = 0; i < n; i++) {
		st = SQ(s)->q[Q_ITEM_ADD];
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, items[i].seq);
		sqlite3_bind_text(st, 3, items[i].path, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 4, items[i].is_dir);
		sqlite3_bind_int64(st, 5, items[i].size);
		sqlite3_bind_int(st, 6, items[i].state);
		store_sqlite_bind_text(st, 7, items[i].sha256);
		store_sqlite_bind_text(st, 8, items[i].error);
		store_sqlite_bind_text(st, 9, items[i].version);
		if (store_sqlite_step_done(s, st, "items") < 0)
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
	st = SQ(s)->q[Q_TOTALS];
	sqlite3_bind_int(st, 1, files);
	sqlite3_bind_int64(st, 2, bytes);
	sqlite3_bind_int(st, 3, files_done);
	sqlite3_bind_int64(st, 4, bytes_done);
	sqlite3_bind_int64(st, 5, util_now_ms());
	sqlite3_bind_text(st, 6, id, -1, SQLITE_STATIC);
	if (store_sqlite_step_done(s, st, "items") < 0 || store_sqlite_exec(s, "COMMIT") < 0)
		goto fail;
	store_sqlite_wend();
	return 0;
fail:
	store_sqlite_exec(s, "ROLLBACK");
	store_sqlite_wend();
	return -1;
}

/* Recounts the finished files of a task after one item changed. */
static int store_sqlite_files_done(struct store *s, const char *id)
{
	sqlite3_stmt *st = SQ(s)->q[Q_FILES_DONE];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, util_now_ms());
	return store_sqlite_step_done(s, st, "files done");
}

static int store_sqlite_item_done(struct store *s, const char *id, int seq, int64_t size, const char *sha256)
{
	store_sqlite_wbegin();
	if (store_sqlite_exec(s, "BEGIN IMMEDIATE") < 0) {
		store_sqlite_wend();
		return -1;
	}
	sqlite3_stmt *st = SQ(s)->q[Q_ITEM_DONE];
	sqlite3_bind_int64(st, 1, size);
	store_sqlite_bind_text(st, 2, sha256);
	sqlite3_bind_text(st, 3, id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, seq);
	if (store_sqlite_step_done(s, st, "item done") < 0 || store_sqlite_files_done(s, id) < 0 ||
	    store_sqlite_exec(s, "COMMIT") < 0) {
		store_sqlite_exec(s, "ROLLBACK");
		store_sqlite_wend();
		return -1;
	}
	store_sqlite_wend();
	return 0;
}

static int store_sqlite_item_failed(struct store *s, const char *id, int seq, const char *error)
{
	sqlite3_stmt *st = SQ(s)->q[Q_ITEM_FAILED];
	store_sqlite_bind_text(st, 1, error);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, seq);
	return store_sqlite_step_done(s, st, "item failed");
}

static int store_sqlite_item_version(struct store *s, const char *id, int seq, const char *version)
{
	sqlite3_stmt *st = SQ(s)->q[Q_ITEM_VERSION];
	store_sqlite_bind_text(st, 1, version);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, seq);
	return store_sqlite_step_done(s, st, "item version");
}

static int store_sqlite_progress(struct store *s, const char *id, int64_t bytes_done)
{
	sqlite3_stmt *st = SQ(s)->q[Q_PROGRESS];
	sqlite3_bind_int64(st, 1, bytes_done);
	sqlite3_bind_int64(st, 2, util_now_ms());
	sqlite3_bind_text(st, 3, id, -1, SQLITE_STATIC);
	return store_sqlite_step_done(s, st, "progress");
}

/* ---- operators: listing, history, retry, cancel, notifications --------- */

static int store_sqlite_list(struct store *s, const struct task_filter *f, struct task **tasks, int *n)
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
	if (sqlite3_prepare_v2(SQ(s)->db, sql, -1, &st, NULL) != SQLITE_OK) {
		log_error("store: list: %s", sqlite3_errmsg(SQ(s)->db));
		return -1;
	}
	int limit = store_list_limit(f);
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
	int rc = store_sqlite_read_rows(s, st, sizeof(struct task), store_sqlite_read_task_row, store_sqlite_free_tasks,
				 &v, n, "list");
	sqlite3_finalize(st);
	if (rc == 0)
		*tasks = v;
	return rc;
}

static void store_sqlite_read_event(sqlite3_stmt *st, void *row)
{
	struct task_event *e = row;
	e->at_ms = sqlite3_column_int64(st, 0);
	e->state = sqlite3_column_int(st, 1);
	e->detail = store_sqlite_column_text(st, 2);
}

static void store_sqlite_free_events(void *v, int n)
{
	task_event_free_all(v, n);
}

static int store_sqlite_events(struct store *s, const char *id, struct task_event **ev, int *n)
{
	sqlite3_stmt *st = SQ(s)->q[Q_EVENTS];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	void *v;
	int rc = store_sqlite_read_rows(s, st, sizeof **ev, store_sqlite_read_event, store_sqlite_free_events, &v, n,
				 "events");
	if (rc == 0)
		*ev = v;
	return rc;
}

static void store_sqlite_read_attempt(sqlite3_stmt *st, void *row)
{
	struct attempt *e = row;
	e->n = sqlite3_column_int(st, 0);
	e->started_ms = sqlite3_column_int64(st, 1);
	e->ended_ms = sqlite3_column_int64(st, 2);
	e->error = store_sqlite_column_text(st, 3);
}

static void store_sqlite_free_attempts(void *v, int n)
{
	attempt_free_all(v, n);
}

static int store_sqlite_attempts(struct store *s, const char *id, struct attempt **a, int *n)
{
	sqlite3_stmt *st = SQ(s)->q[Q_ATTEMPTS];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	void *v;
	int rc = store_sqlite_read_rows(s, st, sizeof **a, store_sqlite_read_attempt, store_sqlite_free_attempts, &v, n,
				 "attempts");
	if (rc == 0)
		*a = v;
	return rc;
}

static int store_sqlite_count_by_state(struct store *s, int64_t counts[6])
{
	sqlite3_stmt *st = SQ(s)->q[Q_BY_STATE];
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
		log_error("store: count by state: %s", sqlite3_errmsg(SQ(s)->db));
		return -1;
	}
	return 0;
}

/* The state of a task: 0 and *state, 1 when there is no such task, -1. */
static int store_sqlite_state_of(struct store *s, const char *id, int *state)
{
	sqlite3_stmt *st = SQ(s)->q[Q_STATE_OF];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st), ret = -1;
	if (rc == SQLITE_ROW) {
		*state = sqlite3_column_int(st, 0);
		ret = 0;
	} else if (rc == SQLITE_DONE) {
		ret = 1;
	} else {
		log_error("store: state: %s", sqlite3_errmsg(SQ(s)->db));
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return ret;
}

static int store_sqlite_admin_retry(struct store *s, const char *id, char *err, size_t errlen)
{
	sqlite3_stmt *st = SQ(s)->q[Q_ADMIN_RETRY];
	sqlite3_bind_int64(st, 1, util_now_ms());
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	if (store_sqlite_step_done(s, st, "retry") < 0) {
		util_error(err, errlen, "cannot write the store: %s", sqlite3_errmsg(SQ(s)->db));
		return -1;
	}
	if (sqlite3_changes(SQ(s)->db) == 1)
		return 0;
	int state, rc = store_sqlite_state_of(s, id, &state);
	if (rc == 1)
		return 1;
	if (rc < 0)
		util_error(err, errlen, "cannot read the store: %s", sqlite3_errmsg(SQ(s)->db));
	else
		util_error(err, errlen,
			   "task %s is %s; only failed or cancelled tasks can be retried", id,
			   task_state_name(state));
	return -1;
}

static int store_sqlite_admin_cancel(struct store *s, const char *id, const char *reason, int notify,
		       int *was_running, char *err, size_t errlen)
{
	int64_t now = util_now_ms();
	*was_running = 0;
	sqlite3_stmt *st = SQ(s)->q[Q_ADMIN_CANCEL];
	store_sqlite_bind_text(st, 1, reason);
	sqlite3_bind_int64(st, 2, now);
	sqlite3_bind_int(st, 3, notify != 0);
	sqlite3_bind_text(st, 4, id, -1, SQLITE_STATIC);
	if (store_sqlite_step_done(s, st, "cancel") < 0)
		goto fail;
	if (sqlite3_changes(SQ(s)->db) == 1)
		return 0;
	st = SQ(s)->q[Q_CANCEL_RUNNING];
	store_sqlite_bind_text(st, 1, reason);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	if (store_sqlite_step_done(s, st, "cancel") < 0)
		goto fail;
	if (sqlite3_changes(SQ(s)->db) == 1) {
		*was_running = 1;
		return 0;
	}
	int state, rc = store_sqlite_state_of(s, id, &state);
	if (rc == 1)
		return 1;
	if (rc < 0)
		goto fail;
	util_error(err, errlen, "task %s is already %s; it cannot be cancelled", id,
		   task_state_name(state));
	return -1;
fail:
	util_error(err, errlen, "cannot write the store: %s", sqlite3_errmsg(SQ(s)->db));
	return -1;
}

/* Reads up to `max` ids from a statement whose first column is an id. */
static int store_sqlite_ids(struct store *s, sqlite3_stmt *st, char (*ids)[TASKID_LEN], int max,
		     const char *what)
{
	int n = 0, rc;
	while (n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *id = sqlite3_column_text(st, 0);
		snprintf(ids[n++], TASKID_LEN, "%s", id ? (const char *)id : "");
	}
	if (n < max && rc != SQLITE_DONE) {
		log_error("store: %s: %s", what, sqlite3_errmsg(SQ(s)->db));
		n = -1;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return n;
}

static int store_sqlite_cancel_requests(struct store *s, char (*ids)[TASKID_LEN], int *lost,
					int max)
{
	/* One process owns an SQLite store: no lease is ever lost. */
	sqlite3_stmt *st = SQ(s)->q[Q_CANCELS];
	sqlite3_bind_int(st, 1, max);
	int n = store_sqlite_ids(s, st, ids, max, "cancel requests");
	for (int i = 0; lost && i < n; i++)
		lost[i] = 0;
	return n;
}

static int store_sqlite_notify_due(struct store *s, int64_t now_ms, char (*ids)[TASKID_LEN], int max)
{
	sqlite3_stmt *st = SQ(s)->q[Q_NOTIFY_DUE];
	sqlite3_bind_int64(st, 1, now_ms);
	sqlite3_bind_int(st, 2, max);
	return store_sqlite_ids(s, st, ids, max, "notifications due");
}

static int store_sqlite_notify_result(struct store *s, const char *id, int state, int attempts,
			int64_t next_ms, const char *error)
{
	sqlite3_stmt *st = SQ(s)->q[Q_NOTIFY_RESULT];
	sqlite3_bind_int(st, 1, state);
	sqlite3_bind_int(st, 2, attempts);
	sqlite3_bind_int64(st, 3, next_ms);
	store_sqlite_bind_text(st, 4, error);
	sqlite3_bind_int64(st, 5, util_now_ms());
	sqlite3_bind_text(st, 6, id, -1, SQLITE_STATIC);
	return store_sqlite_step_done(s, st, "notification");
}

/* Whether the file at the store's path is still the one s opened. */
static int store_sqlite_same_file(struct store *s, const char *path, char *why, size_t whylen)
{
	struct stat sb;
	if (!SQ(s)->known)
		return 0;
	int gone = stat(path, &sb) < 0;
	if (gone && errno != ENOENT) {
		util_error(why, whylen, "store file %s cannot be checked: %s", path, strerror(errno));
		return -1;
	}
	if (gone || sb.st_dev != SQ(s)->dev || sb.st_ino != SQ(s)->ino) {
		util_error(why, whylen, "store file %s was deleted or replaced since apubid opened it",
			   path);
		return -1;
	}
	return 0;
}

static int store_sqlite_health(struct store *s, char *why, size_t whylen)
{
	const char *path = sqlite3_db_filename(SQ(s)->db, "main");
	struct stat sb;
	if (!path || !*path) {
		util_error(why, whylen, "the store has no file");
		return -1;
	}
	if (store_sqlite_same_file(s, path, why, whylen) < 0)
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
	sqlite3_stmt *st = SQ(s)->q[Q_HEALTH];
	sqlite3_bind_int64(st, 1, util_now_ms());
	store_sqlite_wbegin();
	int rc = sqlite3_step(st);
	store_sqlite_wend();
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE) {
		char msg[256];
		store_sqlite_errtext(s, rc, msg, sizeof msg);
		store_sqlite_failed(s, rc, "health");
		util_error(why, whylen, "store %s does not take writes: %s", path, msg);
		return -1;
	}
	store_fault_clear();
	return 0;
}

const struct store_ops store_sqlite_ops = {
	.name = "sqlite",
	.open = store_sqlite_open,
	.close = store_sqlite_close,
	.set_durable = store_sqlite_set_durable,
	.insert_batch = store_sqlite_insert_batch,
	.kept = store_sqlite_kept,
	.get = store_sqlite_get,
	.claim = store_sqlite_claim,
	.finish = store_sqlite_finish,
	.requeue = store_sqlite_requeue,
	.recover = store_sqlite_recover,
	.count_active = store_sqlite_count_active,
	.prune = store_sqlite_prune,
	.retry = store_sqlite_retry,
	.attempt = store_sqlite_attempt,
	.items = store_sqlite_items,
	.set_items = store_sqlite_set_items,
	.item_done = store_sqlite_item_done,
	.item_failed = store_sqlite_item_failed,
	.item_version = store_sqlite_item_version,
	.progress = store_sqlite_progress,
	.waiting_for = store_sqlite_waiting_for,
	.count_held = store_sqlite_count_held,
	.take_poll = store_sqlite_take_poll,
	.list = store_sqlite_list,
	.events = store_sqlite_events,
	.attempts = store_sqlite_attempts,
	.count_by_state = store_sqlite_count_by_state,
	.admin_retry = store_sqlite_admin_retry,
	.admin_cancel = store_sqlite_admin_cancel,
	.cancel_requests = store_sqlite_cancel_requests,
	.notify_due = store_sqlite_notify_due,
	.notify_result = store_sqlite_notify_result,
	.health = store_sqlite_health,
	.check = store_sqlite_kept,
};

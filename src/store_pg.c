/*
 * store_pg.c - the task store in a PostgreSQL database, shared by several
 * apubid nodes: any node accepts a task, any node answers for it, any node
 * runs it. The only file that includes libpq-fe.h.
 *
 * A connection is one PGconn; every thread that touches tasks opens its
 * own (libpq forbids two threads on one connection). The schema lives in
 * db/postgresql/NNN_*.sql, embedded in the binary, and is applied at open
 * time under a transaction-scoped advisory lock, so nodes starting together
 * do not both migrate; the version is one row of apubid_schema.
 *
 * Claim: one statement. A sub-select takes the oldest runnable task with
 * FOR UPDATE SKIP LOCKED (two nodes claiming at once take different rows,
 * neither waits), and keeps the ordering rule with a NOT EXISTS on an
 * earlier unfinished task whose dest_key overlaps: that row itself is the
 * lock, whichever node holds it.
 *
 * Seq order is acceptance order, across nodes. The ordering rule reads seq
 * as the order in which tasks were accepted, and a TaskId is answered only
 * once its task is committed, so seq must follow commit order. A sequence
 * alone does not: nextval hands its numbers out when a row is inserted, and
 * the transactions holding them commit in any order. Were task A to draw
 * seq 10 and task B, overlapping it, seq 11, and B to commit first, a claim
 * between the two commits sees B with no earlier unfinished overlapping
 * task and starts it; once A commits, A's own check looks only below seq
 * 10, finds nothing, and A starts beside B: two overlapping tasks at once,
 * and the one answered second ordered first. So a batch takes an advisory
 * transaction lock before its first nextval, and PostgreSQL releases it
 * only after the commit is flushed and visible: no transaction draws a seq
 * while an earlier-drawn one is uncommitted, and a task never becomes
 * visible behind a later one. The lock is taken once per batch, not per
 * task; the batch is one pipelined transaction with one insert statement
 * for all its tasks (their "accepted" events in the same statement), so it
 * is held for one statement and one WAL flush. Its price: the batches of
 * several nodes queue on it and do not share a flush, so a cluster accepts
 * about as many batches a second as one node, each larger.
 *
 * Leases: a claim writes the node (host, pid, process start time: a
 * restarted process is a new node), a lease deadline `[store]
 * lease_timeout` ahead, and a new lease token. A background thread renews
 * the deadline of this node's running tasks every third of the timeout.
 * Any node's claim also takes a running task whose lease has expired, and
 * runs it again (transfers resume). Every write of a running task's worker
 * (finish, retry, requeue, items, progress) names the token of the claim
 * made on the same connection, so a node whose lease was taken over writes
 * nothing any more: its statements match no row. The renewal notices the
 * tasks it no longer holds, and store_cancel_requests hands them to the
 * pool, which stops their transfers.
 *
 * Wake-ups: the code that commits new work (an insert batch, a finished
 * or requeued task, an operator's retry) sends NOTIFY apubid_task in the
 * same transaction; the background thread LISTENs and calls the pool's
 * wake. Not a trigger: a trigger notifies on every row and takes
 * NOTIFY's global lock once per insert. The pool's one-second poll stays
 * as the fallback.
 *
 * The database going away: a statement that fails because the connection
 * is gone (or the server refuses work: shutting down, out of resources)
 * raises store.c's fault flag, so submissions are refused with 503 and
 * Retry-After while it lasts, and a statement on a broken connection
 * reconnects first, at most once a second per connection, failing at once
 * otherwise. Nothing waits past connect_timeout (default 5 s, settable in
 * the URL). The pool's monitor calls store_health every second while the
 * flag is up; its write lowers the flag once the database is back.
 *
 * Secrets: the URL may hold a password; the label used in messages masks
 * it, and libpq's own messages never repeat it.
 */
#include "store.h"

#include <libpq-fe.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STORE_PG_CHANNEL "apubid_task"
/* pg_advisory_xact_lock(key, what): the first key names apubid ("apub"). */
#define STORE_PG_LOCK "1634760034"
#define STORE_PG_LOCK_MIGRATE STORE_PG_LOCK ", 1"
#define STORE_PG_LOCK_INSERT STORE_PG_LOCK ", 2"
#define STORE_PG_LOCK_PRUNE STORE_PG_LOCK ", 3"
/* Tasks one pruning statement deletes: short transactions, little bloat. */
#define STORE_PG_PRUNE_BATCH 1000
/* The group committer's longest wait for a batch to fill (store.h): a
 * fraction of one commit, which costs a WAL flush and a round trip. */
#define STORE_PG_GATHER_US 1000
/* How many of this node's running tasks the renewal tracks. */
#define STORE_PG_MAX_RUNNING 1024

static const char *const store_pg_migrations[] = { embed_pg_v1, embed_pg_v2 };
#define STORE_PG_VERSION ((int)(sizeof store_pg_migrations / sizeof store_pg_migrations[0]))

#define STORE_PG_COLUMNS                                                               \
	"id, kind, state, source, destination, dest_path, dest_is_dir, result, reason,"    \
	" note, attempts, created_ms, updated_ms, next_attempt_ms, first_started_ms,"     \
	" bytes_total, bytes_done, files_total, files_done, seq, attempt_base,"         \
	" cancel_requested, notify_state, notify_attempts, notify_next_ms, notify_ms,"  \
	" notify_error, rule, rule_fail, rule_result, rule_polls"

/* The ordering rule on a candidate task `t` (see store_sqlite.c). */
#define STORE_PG_AHEAD                                                                 \
	"SELECT o.id FROM task o WHERE o.state < " SQL_FINAL " AND o.seq < t.seq"           \
	" AND (substr(t.dest_key, 1, length(o.dest_key)) = o.dest_key"                   \
	" OR substr(o.dest_key, 1, length(t.dest_key)) = t.dest_key)"

/* The fence of a running task's writes: $n is the token of this
 * connection's claim of it, or NULL for a writer that claimed nothing
 * (an operator's tool). */
#define STORE_PG_FENCE(n) " AND ($" #n "::bigint IS NULL OR lease_token = $" #n ")"

struct store_pg {
	struct store base;
	PGconn *conn;
	char *url;
	int durable;             /* synchronous_commit on (1) or off (0) */
	int64_t lease_ms;
	int64_t next_connect_ms; /* no reconnection before (monotonic) */
	/* The last task claimed on this connection and the token of that
	 * claim: the writes of its worker carry it. */
	char claimed[TASKID_LEN];
	int64_t token;
	/* The statements of store_pg_prepared prepared on this connection
	 * (one bit each; a new connection starts with none). */
	unsigned prepared;
};

/* The statements run often enough to be planned once per connection:
 * GetTaskStatus's read, the workers' claim and the batch insert. */
enum { STORE_PG_PS_GET, STORE_PG_PS_CLAIM, STORE_PG_PS_INSERT };
static const char *const store_pg_ps_name[] = { "apubid_get", "apubid_claim", "apubid_insert" };

#define PG(s) ((struct store_pg *)(s))

/* ---- this node ----------------------------------------------------------- */

static pthread_once_t store_pg_node_once = PTHREAD_ONCE_INIT;
static char store_pg_node[160];

/* "host pid start": the start is the process's start time in clock ticks
 * since boot (/proc/self/stat), so a restarted process with a reused pid
 * is a different node. */
static void store_pg_node_init(void)
{
	char host[64] = "localhost";
	if (gethostname(host, sizeof host) < 0)
		snprintf(host, sizeof host, "localhost");
	host[sizeof host - 1] = '\0';
	unsigned long long start = 0;
	FILE *f = fopen("/proc/self/stat", "r");
	if (f) {
		char buf[1024];
		size_t n = fread(buf, 1, sizeof buf - 1, f);
		buf[n] = '\0';
		char *p = strrchr(buf, ')'); /* the command name may hold spaces */
		for (int field = 2; p && field < 22; field++)
			p = strchr(p + 1, ' ');
		if (p)
			start = strtoull(p + 1, NULL, 10);
		fclose(f);
	}
	if (!start)
		start = (unsigned long long)util_now_ms();
	snprintf(store_pg_node, sizeof store_pg_node, "%s %ld %llu", host, (long)getpid(), start);
}

static const char *store_pg_me(void)
{
	pthread_once(&store_pg_node_once, store_pg_node_init);
	return store_pg_node;
}

/* The tasks this node's workers run, with their tokens; the renewal
 * thread compares them with the rows it renewed. `lost` holds the ids
 * whose lease went to another node, until store_cancel_requests hands
 * them to the pool. */
static struct {
	pthread_mutex_t lock;
	int n, nlost;
	char id[STORE_PG_MAX_RUNNING][TASKID_LEN];
	int64_t token[STORE_PG_MAX_RUNNING];
	char lost[STORE_PG_MAX_RUNNING][TASKID_LEN];
} store_pg_running = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void store_pg_running_add(const char *id, int64_t token)
{
	pthread_mutex_lock(&store_pg_running.lock);
	if (store_pg_running.n < STORE_PG_MAX_RUNNING) {
		snprintf(store_pg_running.id[store_pg_running.n], TASKID_LEN, "%s", id);
		store_pg_running.token[store_pg_running.n++] = token;
	}
	pthread_mutex_unlock(&store_pg_running.lock);
}

static void store_pg_running_del(const char *id)
{
	pthread_mutex_lock(&store_pg_running.lock);
	for (int i = 0; i < store_pg_running.n; i++)
		if (strcmp(store_pg_running.id[i], id) == 0) {
			int last = --store_pg_running.n;
			memcpy(store_pg_running.id[i], store_pg_running.id[last], TASKID_LEN);
			store_pg_running.token[i] = store_pg_running.token[last];
			break;
		}
	pthread_mutex_unlock(&store_pg_running.lock);
}

/* ---- statements ---------------------------------------------------------- */

/* Parameters of one statement, as text (NULL for SQL NULL). */
struct store_pg_args {
	int n;
	const char *v[20];
	char num[20][24];
};

static void store_pg_str(struct store_pg_args *a, const char *v)
{
	a->v[a->n++] = v;
}

static void store_pg_int(struct store_pg_args *a, int64_t v)
{
	snprintf(a->num[a->n], sizeof a->num[a->n], "%lld", (long long)v);
	a->v[a->n] = a->num[a->n];
	a->n++;
}

/* The token fencing writes to `id` from this connection (NULL: none). */
static void store_pg_token(struct store_pg_args *a, struct store *s, const char *id)
{
	if (PG(s)->token && strcmp(PG(s)->claimed, id) == 0)
		store_pg_int(a, PG(s)->token);
	else
		store_pg_str(a, NULL);
}

/* Errors that say the database cannot take work now, rather than that one
 * statement was wrong: the connection is gone (class 08), the server is
 * shutting down or starting (57P0x), out of disk, memory or connections
 * (53), or a read-only standby (25006). */
static int store_pg_fault_state(const char *state)
{
	return !state || strncmp(state, "08", 2) == 0 || strncmp(state, "57P0", 4) == 0 ||
	       strncmp(state, "53", 2) == 0 || strcmp(state, "25006") == 0;
}

/* libpq's message on one line. */
static void store_pg_errtext(PGconn *c, char *buf, size_t len)
{
	snprintf(buf, len, "%s", c ? PQerrorMessage(c) : "out of memory");
	for (char *p = buf; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	size_t n = strlen(buf);
	while (n && buf[n - 1] == ' ')
		buf[--n] = '\0';
	if (!*buf)
		snprintf(buf, len, "the database connection failed");
}

/* A statement failed: raises the fault flag when the database is at
 * fault, and logs (at debug while the flag was already up). */
static void store_pg_failed(struct store *s, const char *state, const char *msg, const char *what)
{
	int was = 0;
	if (store_pg_fault_state(state) || PQstatus(PG(s)->conn) != CONNECTION_OK)
		was = store_fault_raise(msg);
	log_msg(was ? LOG_DEBUG : LOG_ERROR, "store: %s: %s", what, msg);
}

static int store_pg_setup(struct store *s);

/* Opens the connection again when it is broken, at most once a second: a
 * database that is down fails the caller at once. */
static int store_pg_connected(struct store *s, const char *what)
{
	struct store_pg *p = PG(s);
	if (p->conn && PQstatus(p->conn) == CONNECTION_OK)
		return 0;
	int64_t now = util_mono_ms();
	char msg[512];
	if (now < p->next_connect_ms) {
		store_pg_errtext(p->conn, msg, sizeof msg);
		store_pg_failed(s, NULL, msg, what);
		return -1;
	}
	p->next_connect_ms = now + 1000;
	PQreset(p->conn);
	if (PQstatus(p->conn) != CONNECTION_OK || store_pg_setup(s) < 0) {
		store_pg_errtext(p->conn, msg, sizeof msg);
		store_pg_failed(s, NULL, msg, what);
		return -1;
	}
	p->prepared = 0;
	log_info("store: connected to %s again", s->label);
	return 0;
}

/* Runs `sql` as the prepared statement `ps`, preparing it first on a
 * connection that has not; a statement that cannot be prepared runs
 * unprepared. */
static PGresult *store_pg_exec(struct store *s, int ps, const char *sql,
			       const struct store_pg_args *a)
{
	PGconn *c = PG(s)->conn;
	int n = a ? a->n : 0;
	const char *const *v = a ? a->v : NULL;
	if (ps >= 0 && !(PG(s)->prepared & (1u << ps))) {
		PGresult *r = PQprepare(c, store_pg_ps_name[ps], sql, n, NULL);
		if (r && PQresultStatus(r) == PGRES_COMMAND_OK)
			PG(s)->prepared |= 1u << ps;
		PQclear(r);
	}
	if (ps >= 0 && (PG(s)->prepared & (1u << ps)))
		return PQexecPrepared(c, store_pg_ps_name[ps], n, v, NULL, NULL, 0);
	return PQexecParams(c, sql, n, NULL, v, NULL, NULL, 0);
}

/* Runs one statement (prepared as `ps`, or -1): its result (PQclear it),
 * or NULL after logging. A `write` that succeeds lowers the fault flag. */
static PGresult *store_pg_run_ps(struct store *s, int ps, const char *sql,
				 const struct store_pg_args *a, int write, const char *what)
{
	int retried = 0;
again:
	if (store_pg_connected(s, what) < 0)
		return NULL;
	int idle = PQtransactionStatus(PG(s)->conn) == PQTRANS_IDLE;
	PGresult *r = store_pg_exec(s, ps, sql, a);
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
		if (write)
			store_fault_clear();
		return r;
	}
	/* A connection found broken by its first statement since the
	 * database came back: a read outside a transaction is asked again on
	 * a new one at once (a write is not: it may have been done). */
	if (!write && idle && !retried && PQstatus(PG(s)->conn) != CONNECTION_OK) {
		PQclear(r);
		retried = 1;
		PG(s)->next_connect_ms = 0;
		goto again;
	}
	char msg[512];
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	if (r && PQresultErrorMessage(r)[0]) {
		snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
		msg[strcspn(msg, "\n")] = '\0';
	} else {
		store_pg_errtext(PG(s)->conn, msg, sizeof msg);
	}
	store_pg_failed(s, state, msg, what);
	PQclear(r);
	return NULL;
}

static PGresult *store_pg_run(struct store *s, const char *sql, const struct store_pg_args *a,
			      int write, const char *what)
{
	return store_pg_run_ps(s, -1, sql, a, write, what);
}

/* Runs a statement for its effect: the number of rows it changed, or -1. */
static int64_t store_pg_do(struct store *s, const char *sql, const struct store_pg_args *a,
			   const char *what)
{
	PGresult *r = store_pg_run(s, sql, a, 1, what);
	if (!r)
		return -1;
	const char *n = PQcmdTuples(r);
	int64_t changed = *n ? strtoll(n, NULL, 10) : PQntuples(r);
	PQclear(r);
	return changed;
}

static int store_pg_begin(struct store *s, const char *what)
{
	return store_pg_do(s, "BEGIN", NULL, what) < 0 ? -1 : 0;
}

static int store_pg_commit(struct store *s, const char *what)
{
	return store_pg_do(s, "COMMIT", NULL, what) < 0 ? -1 : 0;
}

/* Leaves a transaction that failed; on a broken connection there is none
 * left to roll back. */
static void store_pg_rollback(struct store *s)
{
	PGconn *c = PG(s)->conn;
	if (c && PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) != PQTRANS_IDLE)
		PQclear(PQexec(c, "ROLLBACK"));
}

static char *store_pg_text(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? NULL : util_strdup(PQgetvalue(r, row, col));
}

static int64_t store_pg_i64(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* ---- opening: connection, schema ---------------------------------------- */

/* The URL with its password masked, in the authority and in a
 * `password=` parameter. */
static char *store_pg_label(const char *url)
{
	char *m = url_mask(url);
	char *q = strchr(m, '?');
	for (char *p = q; p && (p = strstr(p, "password=")) != NULL;) {
		if (p[-1] != '?' && p[-1] != '&') {
			p++;
			continue;
		}
		char *end = p + 9 + strcspn(p + 9, "&");
		char *nm = util_printf("%.*s***%s", (int)(p + 9 - m), m, end);
		size_t at = (size_t)(p + 9 - m) + 3;
		free(m);
		m = nm;
		p = m + at;
	}
	return m;
}

/* What every (re)connection sets: the commit durability it was asked for. */
static int store_pg_setup(struct store *s)
{
	PGresult *r = PQexec(PG(s)->conn, PG(s)->durable ? "SET synchronous_commit = on"
							 : "SET synchronous_commit = off");
	int ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
	PQclear(r);
	return ok ? 0 : -1;
}

static int store_pg_version(struct store *s)
{
	PGresult *r = store_pg_run(s, "SELECT coalesce(max(version), 0) FROM apubid_schema",
				   NULL, 0, "schema version");
	if (!r)
		return -1;
	int v = PQntuples(r) == 1 ? (int)store_pg_i64(r, 0, 0) : -1;
	PQclear(r);
	return v;
}

/* Brings the schema up to date; the advisory lock makes a node starting
 * beside another wait for its migration rather than run its own. */
static int store_pg_migrate(struct store *s, char *err, size_t errlen)
{
	/* The common case, a schema already current, costs one query. */
	PGresult *r = PQexec(PG(s)->conn, "SELECT coalesce(max(version), 0) FROM apubid_schema");
	int v = r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1
			? atoi(PQgetvalue(r, 0, 0))
			: -1;
	PQclear(r);
	if (v == STORE_PG_VERSION)
		return 0;
	if (store_pg_begin(s, "migrate") < 0 ||
	    store_pg_do(s, "SELECT pg_advisory_xact_lock(" STORE_PG_LOCK_MIGRATE ")", NULL,
			"migrate") < 0 ||
	    store_pg_do(s, "CREATE TABLE IF NOT EXISTS apubid_schema (version integer NOT NULL)",
			NULL, "migrate") < 0 ||
	    (v = store_pg_version(s)) < 0) {
		store_pg_rollback(s);
		util_error(err, errlen, "cannot read the store schema version of %s", s->label);
		return -1;
	}
	if (v > STORE_PG_VERSION) {
		store_pg_rollback(s);
		util_error(err, errlen, "store schema version %d is newer than this apubid (%d)", v,
			   STORE_PG_VERSION);
		return -1;
	}
	for (; v < STORE_PG_VERSION; v++) {
		struct store_pg_args a = { 0 };
		store_pg_int(&a, v + 1);
		/* A migration is several statements: the simple protocol
		 * runs them in the one transaction. */
		r = PQexec(PG(s)->conn, store_pg_migrations[v]);
		int ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
		char msg[512] = "";
		if (!ok)
			store_pg_errtext(PG(s)->conn, msg, sizeof msg);
		PQclear(r);
		if (!ok || store_pg_do(s, "INSERT INTO apubid_schema (version) VALUES ($1)", &a,
				       "migrate") < 0) {
			store_pg_rollback(s);
			util_error(err, errlen, "cannot apply store migration %d: %s", v + 1, msg);
			return -1;
		}
		log_info("store: schema migrated to version %d", v + 1);
	}
	if (store_pg_commit(s, "migrate") < 0) {
		store_pg_rollback(s);
		util_error(err, errlen, "cannot commit the store schema");
		return -1;
	}
	return 0;
}

/* Connects to `url`; connect_timeout defaults to 5 s (the URL may say
 * otherwise), so a database that does not answer fails the caller soon. */
static PGconn *store_pg_connect(const char *url)
{
	const char *keys[] = { "connect_timeout", "application_name", "dbname", NULL };
	const char *vals[] = { "5", "apubid", url, NULL };
	return PQconnectdbParams(keys, vals, 1);
}

static void store_pg_close(struct store *s);

static void store_pg_notice(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

static struct store *store_pg_open(const struct config *c, char *err, size_t errlen)
{
	struct store *s = util_calloc(1, sizeof(struct store_pg));
	struct store_pg *p = PG(s);
	s->ops = &store_pg_ops;
	s->label = store_pg_label(c->store_url);
	p->url = util_strdup(c->store_url);
	p->durable = 1;
	p->lease_ms = (int64_t)(c->lease_timeout > 0 ? c->lease_timeout : 30) * 1000;
	p->conn = store_pg_connect(p->url);
	if (!p->conn || PQstatus(p->conn) != CONNECTION_OK) {
		char msg[512];
		store_pg_errtext(p->conn, msg, sizeof msg);
		util_error(err, errlen, "cannot connect to store %s: %s", s->label, msg);
		goto fail;
	}
	p->next_connect_ms = util_mono_ms() + 1000;
	/* Notices (a migration's "already exists") are not apubid's to log. */
	PQsetNoticeProcessor(p->conn, store_pg_notice, NULL);
	if (store_pg_setup(s) < 0) {
		util_error(err, errlen, "cannot set up store %s", s->label);
		goto fail;
	}
	if (store_pg_migrate(s, err, errlen) < 0)
		goto fail;
	return s;
fail:
	store_pg_close(s);
	return NULL;
}

static void store_pg_close(struct store *s)
{
	if (!s)
		return;
	PQfinish(PG(s)->conn);
	free(PG(s)->url);
	free(s->label);
	free(s);
}

static int store_pg_set_durable(struct store *s, int full)
{
	PG(s)->durable = full != 0;
	if (store_pg_connected(s, "durability") < 0)
		return -1;
	return store_pg_setup(s);
}

/* ---- tasks --------------------------------------------------------------- */

static void store_pg_read_task(const PGresult *r, int row, struct task *t)
{
	memset(t, 0, sizeof *t);
	snprintf(t->id, sizeof t->id, "%s", PQgetvalue(r, row, 0));
	t->kind = (int)store_pg_i64(r, row, 1);
	t->state = (int)store_pg_i64(r, row, 2);
	t->source = store_pg_text(r, row, 3);
	t->destination = store_pg_text(r, row, 4);
	t->dest_path = store_pg_text(r, row, 5);
	t->dest_is_dir = (int)store_pg_i64(r, row, 6);
	t->result = store_pg_text(r, row, 7);
	t->reason = store_pg_text(r, row, 8);
	t->note = store_pg_text(r, row, 9);
	t->attempts = (int)store_pg_i64(r, row, 10);
	t->created_ms = store_pg_i64(r, row, 11);
	t->updated_ms = store_pg_i64(r, row, 12);
	t->next_attempt_ms = store_pg_i64(r, row, 13);
	t->first_started_ms = store_pg_i64(r, row, 14);
	t->bytes_total = store_pg_i64(r, row, 15);
	t->bytes_done = store_pg_i64(r, row, 16);
	t->files_total = (int)store_pg_i64(r, row, 17);
	t->files_done = (int)store_pg_i64(r, row, 18);
	t->seq = store_pg_i64(r, row, 19);
	t->attempt_base = (int)store_pg_i64(r, row, 20);
	t->cancel_requested = (int)store_pg_i64(r, row, 21);
	t->notify_state = (int)store_pg_i64(r, row, 22);
	t->notify_attempts = (int)store_pg_i64(r, row, 23);
	t->notify_next_ms = store_pg_i64(r, row, 24);
	t->notify_ms = store_pg_i64(r, row, 25);
	t->notify_error = store_pg_text(r, row, 26);
	t->rule = store_pg_text(r, row, 27);
	t->rule_fail = store_pg_text(r, row, 28);
	t->rule_result = store_pg_text(r, row, 29);
	t->rule_polls = (int)store_pg_i64(r, row, 30);
}

/* dest_key as hex for decode(): the key holds the path's bytes as they
 * are. */
static char *store_pg_key_hex(const char *dest_path)
{
	char *key = order_key(dest_path ? dest_path : "");
	size_t n = strlen(key);
	char *hex = util_malloc(2 * n + 1);
	for (size_t i = 0; i < n; i++)
		snprintf(hex + 2 * i, 3, "%02x", (unsigned char)key[i]);
	hex[2 * n] = '\0';
	free(key);
	return hex;
}

/* Sends one statement of a pipeline; -1 when libpq could not queue it. */
static int store_pg_send(PGconn *c, const char *sql, const struct store_pg_args *a)
{
	return PQsendQueryParams(c, sql, a ? a->n : 0, NULL, a ? a->v : NULL, NULL, NULL, 0) == 1
		       ? 0
		       : -1;
}

/* Reads the result of the next statement of a pipeline: the rows it
 * changed, or -1 with the first failure's SQLSTATE and message kept. */
static int64_t store_pg_take(PGconn *c, char *state, char *msg, size_t msglen)
{
	PGresult *r = PQgetResult(c);
	if (!r)
		return -1;
	int64_t changed = -1;
	ExecStatusType st = PQresultStatus(r);
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
		const char *n = PQcmdTuples(r);
		changed = *n ? strtoll(n, NULL, 10) : PQntuples(r);
	} else if (!*msg && st != PGRES_PIPELINE_ABORTED) {
		const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		snprintf(state, 6, "%s", code ? code : "");
		snprintf(msg, msglen, "%s", PQresultErrorMessage(r));
		msg[strcspn(msg, "\n")] = '\0';
	}
	PQclear(r);
	/* Each statement's results end with a NULL. */
	while ((r = PQgetResult(c)) != NULL)
		PQclear(r);
	return changed;
}

/* One column of a batch as a PostgreSQL array literal: elements double
 * quoted with " and \ escaped, NULL bare. The caller frees it. */
struct store_pg_array {
	char *v;
	size_t len, cap;
};

static void store_pg_array_room(struct store_pg_array *a, size_t more)
{
	if (a->len + more < a->cap)
		return;
	a->cap = 2 * (a->len + more);
	char *nv = util_malloc(a->cap);
	if (a->v)
		memcpy(nv, a->v, a->len);
	free(a->v);
	a->v = nv;
}

static void store_pg_array_put(struct store_pg_array *a, const char *v)
{
	/* A separator, the quotes, each byte escaped at worst, a NUL. */
	store_pg_array_room(a, (v ? 2 * strlen(v) : 4) + 4);
	char sep = a->len ? ',' : '{';
	a->v[a->len++] = sep;
	if (!v) {
		memcpy(a->v + a->len, "NULL", 4);
		a->len += 4;
	} else {
		a->v[a->len++] = '"';
		for (; *v; v++) {
			if (*v == '"' || *v == '\\')
				a->v[a->len++] = '\\';
			a->v[a->len++] = *v;
		}
		a->v[a->len++] = '"';
	}
	a->v[a->len] = '\0';
}

/* Closes the literal; it is "{}" for no element. */
static const char *store_pg_array_end(struct store_pg_array *a)
{
	store_pg_array_room(a, 3);
	if (!a->len)
		a->v[a->len++] = '{';
	memcpy(a->v + a->len, "}", 2);
	a->len++;
	return a->v;
}

static void store_pg_array_int(struct store_pg_array *a, int64_t v)
{
	char num[24];
	snprintf(num, sizeof num, "%lld", (long long)v);
	store_pg_array_put(a, num);
}

/* The batch's insert: one statement for every task of the batch, whatever
 * their number, so it is prepared once per connection. The columns come as
 * arrays, one element per task in arrival order; seq is drawn after the
 * sort, so the batch's tasks take their seq in that order. The same
 * statement writes each new task's "accepted" event (schema version 2
 * dropped the trigger that did) and returns the ids it inserted: an id
 * that exists already is skipped by ON CONFLICT and gets no event. */
static const char store_pg_insert_sql[] =
	"WITH r AS (SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[],"
	" $5::text[], $6::int[], $7::bigint[], $8::bigint[], $9::text[], $10::text[],"
	" $11::text[], $12::int[], $13::text[]) WITH ORDINALITY AS r(id, kind, source,"
	" destination, dest_path, dest_is_dir, created_ms, next_attempt_ms, rule, rule_fail,"
	" rule_result, rule_polls, dest_key, ord)),"
	" n AS (INSERT INTO task (seq, id, kind, state, source, destination, dest_path,"
	" dest_is_dir, created_ms, updated_ms, next_attempt_ms, rule, rule_fail, rule_result,"
	" rule_polls, dest_key) SELECT nextval('task_seq'), id, kind, " SQL_QUEUED ", source,"
	" destination, dest_path, dest_is_dir, created_ms, created_ms, next_attempt_ms, rule,"
	" rule_fail, rule_result, rule_polls, decode(dest_key, 'hex') FROM r ORDER BY ord"
	" ON CONFLICT (id) DO NOTHING RETURNING id, created_ms),"
	" e AS (INSERT INTO event (task_id, at_ms, state, detail)"
	" SELECT id, created_ms, " SQL_QUEUED ", 'accepted' FROM n)"
	" SELECT id FROM n";
#define STORE_PG_INSERT_COLUMNS 13

/* The batch is one transaction sent as one pipeline: BEGIN, the lock, the
 * one insert, NOTIFY and COMMIT go out before the first answer is read, so
 * a batch of n tasks costs one round trip, one planned statement and one
 * commit. */
static int store_pg_insert_batch(struct store *s, const struct task *const *t, int *rc, int n)
{
	for (int i = 0; i < n; i++)
		rc[i] = -1;
	if (store_pg_connected(s, "insert") < 0)
		return -1;
	PGconn *c = PG(s)->conn;
	char state[6] = "", msg[512] = "";
	if (!(PG(s)->prepared & (1u << STORE_PG_PS_INSERT))) {
		PGresult *r = PQprepare(c, store_pg_ps_name[STORE_PG_PS_INSERT], store_pg_insert_sql,
					STORE_PG_INSERT_COLUMNS, NULL);
		int ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
		if (!ok) {
			const char *code = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
			store_pg_errtext(c, msg, sizeof msg);
			PQclear(r);
			store_pg_failed(s, code, msg, "insert");
			return -1;
		}
		PQclear(r);
		PG(s)->prepared |= 1u << STORE_PG_PS_INSERT;
	}
	struct store_pg_array col[STORE_PG_INSERT_COLUMNS];
	memset(col, 0, sizeof col);
	for (int i = 0; i < n; i++) {
		store_pg_array_put(&col[0], t[i]->id);
		store_pg_array_int(&col[1], t[i]->kind);
		store_pg_array_put(&col[2], t[i]->source);
		store_pg_array_put(&col[3], t[i]->destination);
		store_pg_array_put(&col[4], t[i]->dest_path);
		store_pg_array_int(&col[5], t[i]->dest_is_dir);
		store_pg_array_int(&col[6], t[i]->created_ms);
		store_pg_array_int(&col[7], t[i]->next_attempt_ms);
		store_pg_array_put(&col[8], t[i]->rule);
		store_pg_array_put(&col[9], t[i]->rule_fail);
		store_pg_array_put(&col[10], t[i]->rule_result);
		store_pg_array_int(&col[11], t[i]->rule_polls);
		char *key = store_pg_key_hex(t[i]->dest_path);
		store_pg_array_put(&col[12], key);
		free(key);
	}
	const char *v[STORE_PG_INSERT_COLUMNS];
	for (int k = 0; k < STORE_PG_INSERT_COLUMNS; k++)
		v[k] = store_pg_array_end(&col[k]);
	int ok = PQenterPipelineMode(c) == 1;
	/* The lock orders seq by commit across nodes (see the top). */
	int sent = ok && store_pg_send(c, "BEGIN", NULL) == 0 &&
		   store_pg_send(c, "SELECT pg_advisory_xact_lock(" STORE_PG_LOCK_INSERT ")",
				 NULL) == 0 &&
		   PQsendQueryPrepared(c, store_pg_ps_name[STORE_PG_PS_INSERT],
				       STORE_PG_INSERT_COLUMNS, v, NULL, NULL, 0) == 1 &&
		   store_pg_send(c, "NOTIFY " STORE_PG_CHANNEL, NULL) == 0 &&
		   store_pg_send(c, "COMMIT", NULL) == 0 && PQpipelineSync(c) == 1;
	for (int k = 0; k < STORE_PG_INSERT_COLUMNS; k++)
		free(col[k].v);
	ok = sent;
	if (sent) {
		ok = store_pg_take(c, state, msg, sizeof msg) >= 0 &&
		     store_pg_take(c, state, msg, sizeof msg) >= 0;
		/* The ids inserted: a duplicate id is refused on its own, the
		 * others stay. */
		PGresult *r = PQgetResult(c);
		if (r && PQresultStatus(r) == PGRES_TUPLES_OK) {
			int rows = PQntuples(r);
			for (int i = 0; i < n; i++) {
				for (int j = 0; j < rows && rc[i] < 0; j++)
					if (strcmp(PQgetvalue(r, j, 0), t[i]->id) == 0)
						rc[i] = 0;
				if (rc[i] < 0)
					log_error("store: insert: task %s exists already", t[i]->id);
			}
		} else {
			ok = 0;
			if (r && !*msg && PQresultStatus(r) != PGRES_PIPELINE_ABORTED) {
				const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
				snprintf(state, sizeof state, "%s", code ? code : "");
				snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
				msg[strcspn(msg, "\n")] = '\0';
			}
		}
		PQclear(r);
		while ((r = PQgetResult(c)) != NULL)
			PQclear(r);
		ok = store_pg_take(c, state, msg, sizeof msg) >= 0 && ok;
		ok = store_pg_take(c, state, msg, sizeof msg) >= 0 && ok;
		/* The end of the pipeline. */
		r = PQgetResult(c);
		if (!r || PQresultStatus(r) != PGRES_PIPELINE_SYNC)
			ok = 0;
		PQclear(r);
	}
	if (PQpipelineStatus(c) != PQ_PIPELINE_OFF && PQexitPipelineMode(c) != 1 &&
	    PQstatus(c) == CONNECTION_OK) {
		/* Results left unread: the connection is in no known state. */
		PQreset(c);
		PG(s)->prepared = 0;
		ok = 0;
	}
	if (!ok) {
		if (!*msg)
			store_pg_errtext(c, msg, sizeof msg);
		store_pg_failed(s, *state ? state : NULL, msg, "insert");
		store_pg_rollback(s);
		for (int i = 0; i < n; i++)
			rc[i] = -1;
		return -1;
	}
	store_fault_clear();
	return 0;
}

static int store_pg_get(struct store *s, const char *id, struct task *t)
{
	struct store_pg_args a = { 0 };
	store_pg_str(&a, id);
	PGresult *r = store_pg_run_ps(s, STORE_PG_PS_GET,
				      "SELECT " STORE_PG_COLUMNS " FROM task WHERE id = $1", &a, 0,
				      "get");
	if (!r)
		return -1;
	int rc = 1;
	if (PQntuples(r) > 0) {
		store_pg_read_task(r, 0, t);
		rc = 0;
	}
	PQclear(r);
	return rc;
}

static int store_pg_claim(struct store *s, struct task *t)
{
	/* The candidates come out of a locking sub-select in seq order, and
	 * the rule's check is a LATERAL probe with LIMIT 1, which PostgreSQL
	 * can only run as a nested loop over them: the scan stops at the
	 * first candidate with nothing ahead, and each probe walks the
	 * unfinished tasks before it backwards through task_order. Written as
	 * a NOT EXISTS with the ORDER BY outside, the planner turned the check
	 * into an anti join over every unfinished task, or checked every
	 * candidate before sorting them: a claim cost O(unfinished tasks),
	 * 50-400 ms with a few thousand queued. */
	static const char sql[] =
		"WITH c AS MATERIALIZED (SELECT t.seq AS claim_seq FROM (SELECT t.seq, t.dest_key"
		" FROM task t WHERE t.state < " SQL_FINAL
		" AND ((t.state IN (" SQL_QUEUED ", " SQL_RETRY ") AND t.next_attempt_ms <= $1)"
		" OR (t.state = " SQL_RUNNING " AND t.lease_until_ms < $1))"
		" ORDER BY t.seq FOR UPDATE SKIP LOCKED) t"
		" LEFT JOIN LATERAL (" STORE_PG_AHEAD " ORDER BY o.seq DESC LIMIT 1) a ON true"
		" WHERE a.id IS NULL LIMIT 1)"
		" UPDATE task SET state = " SQL_RUNNING ", attempts = attempts + 1, updated_ms = $1,"
		" first_started_ms = CASE WHEN first_started_ms = 0 THEN $1"
		" ELSE first_started_ms END, node = $2, lease_until_ms = $1 + $3,"
		" lease_token = nextval('lease_token_seq')"
		" FROM c WHERE task.seq = c.claim_seq RETURNING " STORE_PG_COLUMNS ", lease_token";
	struct store_pg_args a = { 0 };
	store_pg_int(&a, util_now_ms());
	store_pg_str(&a, store_pg_me());
	store_pg_int(&a, PG(s)->lease_ms);
	PGresult *r = store_pg_run_ps(s, STORE_PG_PS_CLAIM, sql, &a, 1, "claim");
	if (!r)
		return -1;
	int rc = 1;
	if (PQntuples(r) > 0) {
		store_pg_read_task(r, 0, t);
		snprintf(PG(s)->claimed, TASKID_LEN, "%s", t->id);
		PG(s)->token = store_pg_i64(r, 0, 31);
		store_pg_running_add(t->id, PG(s)->token);
		rc = 0;
	}
	PQclear(r);
	return rc;
}

/* A worker let its task go (finished, retrying, queued again): its lease
 * is no longer renewed. The connection keeps the claim's token until its
 * next claim, so that any later write of that worker to the task stays
 * fenced. */
static void store_pg_released(struct store *s, const char *id)
{
	(void)s;
	store_pg_running_del(id);
}

static int store_pg_finish(struct store *s, const char *id, int state, const char *result,
			   const char *reason, const char *note, int notify)
{
	/* The end of a task may release tasks the ordering rule held behind
	 * it, on any node. */
	static const char sql[] =
		"WITH u AS (UPDATE task SET state = $1, result = $2, reason = $3, note = $4,"
		" updated_ms = $5, cancel_requested = 0,"
		" notify_state = CASE WHEN $7::int <> 0 THEN 1 ELSE 0 END, notify_attempts = 0,"
		" notify_next_ms = $5, notify_ms = 0, notify_error = NULL, node = NULL,"
		" lease_until_ms = 0"
		" WHERE id = $6 AND state = " SQL_RUNNING STORE_PG_FENCE(8) " RETURNING 1)"
		" SELECT pg_notify('" STORE_PG_CHANNEL "', '') FROM u";
	struct store_pg_args a = { 0 };
	store_pg_int(&a, state);
	store_pg_str(&a, result);
	store_pg_str(&a, reason);
	store_pg_str(&a, note);
	store_pg_int(&a, util_now_ms());
	store_pg_str(&a, id);
	store_pg_int(&a, notify != 0);
	store_pg_token(&a, s, id);
	if (store_pg_do(s, sql, &a, "finish") < 0)
		return -1;
	store_pg_released(s, id);
	return 0;
}

static int store_pg_requeue(struct store *s, const char *id)
{
	static const char sql[] =
		"WITH u AS (UPDATE task SET state = " SQL_QUEUED ", updated_ms = $1, node = NULL,"
		" lease_until_ms = 0 WHERE id = $2 AND state = " SQL_RUNNING STORE_PG_FENCE(3)
		" RETURNING 1) SELECT pg_notify('" STORE_PG_CHANNEL "', '') FROM u";
	struct store_pg_args a = { 0 };
	store_pg_int(&a, util_now_ms());
	store_pg_str(&a, id);
	store_pg_token(&a, s, id);
	if (store_pg_do(s, sql, &a, "requeue") < 0)
		return -1;
	store_pg_released(s, id);
	return 0;
}

static int store_pg_recover(struct store *s)
{
	/* Only the tasks of this node (none, unless a store handle of this
	 * very process claimed them) or of a node whose lease ran out: a
	 * live node keeps renewing its own. */
	static const char cancel[] =
		"UPDATE task SET state = " SQL_CANCELLED ", cancel_requested = 0, updated_ms = $1,"
		" node = NULL, lease_until_ms = 0 WHERE state = " SQL_RUNNING
		" AND cancel_requested = 1 AND (node = $2 OR lease_until_ms < $1)";
	static const char requeue[] =
		"UPDATE task SET state = " SQL_QUEUED ", updated_ms = $1, node = NULL,"
		" lease_until_ms = 0 WHERE state = " SQL_RUNNING
		" AND (node = $2 OR lease_until_ms < $1)";
	struct store_pg_args a = { 0 };
	store_pg_int(&a, util_now_ms());
	store_pg_str(&a, store_pg_me());
	if (store_pg_do(s, cancel, &a, "recover") < 0)
		return -1;
	int64_t n = store_pg_do(s, requeue, &a, "recover");
	return n < 0 ? -1 : (int)n;
}

/* Runs a statement whose one row holds one number: it, or -1. */
static int64_t store_pg_number(struct store *s, const char *sql, const struct store_pg_args *a,
			       const char *what)
{
	PGresult *r = store_pg_run(s, sql, a, 0, what);
	if (!r)
		return -1;
	int64_t n = PQntuples(r) == 1 ? store_pg_i64(r, 0, 0) : -1;
	PQclear(r);
	return n;
}

static int64_t store_pg_count_active(struct store *s)
{
	return store_pg_number(s, "SELECT count(*) FROM task WHERE state < " SQL_FINAL, NULL,
			       "count");
}

static int64_t store_pg_prune(struct store *s, int64_t before_ms)
{
	/* One node prunes at a time (the others skip this round), in short
	 * batches that each commit on their own. */
	static const char del[] =
		"DELETE FROM task WHERE seq IN (SELECT seq FROM task WHERE state >= " SQL_FINAL
		" AND updated_ms < $1 AND notify_state <> 1 ORDER BY updated_ms LIMIT $2)";
	if (store_pg_begin(s, "prune") < 0)
		return -1;
	int64_t got = store_pg_number(
		s, "SELECT pg_try_advisory_xact_lock(" STORE_PG_LOCK_PRUNE ")::int", NULL, "prune");
	if (got != 1) {
		store_pg_rollback(s);
		return got < 0 ? -1 : 0;
	}
	int64_t total = 0;
	for (;;) {
		struct store_pg_args a = { 0 };
		store_pg_int(&a, before_ms);
		store_pg_int(&a, STORE_PG_PRUNE_BATCH);
		int64_t n = store_pg_do(s, del, &a, "prune");
		if (n < 0) {
			store_pg_rollback(s);
			return total ? total : -1;
		}
		total += n;
		/* Each batch commits; the lock is taken again for the next. */
		if (store_pg_commit(s, "prune") < 0)
			return total;
		if (n < STORE_PG_PRUNE_BATCH)
			return total;
		if (store_pg_begin(s, "prune") < 0 ||
		    store_pg_number(s, "SELECT pg_try_advisory_xact_lock(" STORE_PG_LOCK_PRUNE ")::int",
				    NULL, "prune") != 1) {
			store_pg_rollback(s);
			return total;
		}
	}
}

static int store_pg_retry(struct store *s, const char *id, int64_t next_ms, const char *reason)
{
	static const char sql[] =
		"UPDATE task SET state = " SQL_RETRY ", next_attempt_ms = $1, reason = $2,"
		" updated_ms = $3, node = NULL, lease_until_ms = 0"
		" WHERE id = $4 AND state = " SQL_RUNNING STORE_PG_FENCE(5);
	struct store_pg_args a = { 0 };
	store_pg_int(&a, next_ms);
	store_pg_str(&a, reason);
	store_pg_int(&a, util_now_ms());
	store_pg_str(&a, id);
	store_pg_token(&a, s, id);
	if (store_pg_do(s, sql, &a, "retry") < 0)
		return -1;
	store_pg_released(s, id);
	return 0;
}

static int store_pg_attempt(struct store *s, const char *id, int n, int64_t started_ms,
			    const char *error)
{
	/* Recorded only while the task is this claim's (or by a writer
	 * without one). */
	static const char sql[] =
		"INSERT INTO attempt (task_id, n, started_ms, ended_ms, error)"
		" SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM task WHERE id = $1"
		STORE_PG_FENCE(6) ")"
		" ON CONFLICT (task_id, n) DO UPDATE SET started_ms = EXCLUDED.started_ms,"
		" ended_ms = EXCLUDED.ended_ms, error = EXCLUDED.error";
	struct store_pg_args a = { 0 };
	store_pg_str(&a, id);
	store_pg_int(&a, n);
	store_pg_int(&a, started_ms);
	store_pg_int(&a, util_now_ms());
	store_pg_str(&a, error);
	store_pg_token(&a, s, id);
	return store_pg_do(s, sql, &a, "attempt") < 0 ? -1 : 0;
}

/* ---- items and progress --------------------------------------------------- */

static int store_pg_items(struct store *s, const char *id, struct item **items, int *n)
{
	struct store_pg_args a = { 0 };
	store_pg_str(&a, id);
	PGresult *r = store_pg_run(s,
				   "SELECT seq, path, is_dir, size, state, sha256, error, version"
				   " FROM item WHERE task_id = $1 ORDER BY seq",
				   &a, 0, "items");
	if (!r)
		return -1;
	int rows = PQntuples(r);
	struct item *v = rows ? util_calloc((size_t)rows, sizeof *v) : NULL;
	for (int i = 0; i < rows; i++) {
		v[i].seq = (int)store_pg_i64(r, i, 0);
		v[i].path = store_pg_text(r, i, 1);
		if (!v[i].path)
			v[i].path = util_strdup("");
		v[i].is_dir = (int)store_pg_i64(r, i, 2);
		v[i].size = store_pg_i64(r, i, 3);
		v[i].state = (int)store_pg_i64(r, i, 4);
		v[i].sha256 = store_pg_text(r, i, 5);
		v[i].error = store_pg_text(r, i, 6);
		v[i].version = store_pg_text(r, i, 7);
	}
	PQclear(r);
	*items = v;
	*n = rows;
	return 0;
}

static int store_pg_set_items(struct store *s, const char *id, const struct item *items, int n)
{
	int64_t bytes = 0, bytes_done = 0;
	int files = 0, files_done = 0;
	for (int i = 0; i < n; i++) {
		if (items[i].is_dir)
			continue;
		files++;
		if (items[i].size > 0)
			bytes += items[i].size;
		if (items[i].state == ITEM_DONE) {
			files_done++;
			if (items[i].size > 0)
				bytes_done += items[i].size;
		}
	}
	if (store_pg_begin(s, "items") < 0)
		return -1;
	/* The totals first: when the fence leaves them alone, the task is
	 * another claim's and its items are not this worker's to replace. */
	struct store_pg_args a = { 0 };
	store_pg_int(&a, files);
	store_pg_int(&a, bytes);
	store_pg_int(&a, files_done);
	store_pg_int(&a, bytes_done);
	store_pg_int(&a, util_now_ms());
	store_pg_str(&a, id);
	store_pg_token(&a, s, id);
	int64_t changed = store_pg_do(s,
				      "UPDATE task SET files_total = $1, bytes_total = $2,"
				      " files_done = $3, bytes_done = $4, updated_ms = $5"
				      " WHERE id = $6" STORE_PG_FENCE(7),
				      &a, "items");
	if (changed < 0)
		goto fail;
	if (changed == 0) {
		store_pg_rollback(s);
		return 0;
	}
	a = (struct store_pg_args){ 0 };
	store_pg_str(&a, id);
	if (store_pg_do(s, "DELETE FROM item WHERE task_id = $1", &a, "items") < 0)
		goto fail;
	for (int i = 0; i < n; i++) {
		a = (struct store_pg_args){ 0 };
		store_pg_str(&a, id);
		store_pg_int(&a, items[i].seq);
		store_pg_str(&a, items[i].path);
		store_pg_int(&a, items[i].is_dir);
		store_pg_int(&a, items[i].size);
		store_pg_int(&a, items[i].state);
		store_pg_str(&a, items[i].sha256);
		store_pg_str(&a, items[i].error);
		store_pg_str(&a, items[i].version);
		if (store_pg_do(s,
				"INSERT INTO item (task_id, seq, path, is_dir, size, state, sha256,"
				" error, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
				&a, "items") < 0)
			goto fail;
	}
	if (store_pg_commit(s, "items") < 0)
		goto fail;
	return 0;
fail:
	store_pg_rollback(s);
	return -1;
}

static int store_pg_item_done(struct store *s, const char *id, int seq, int64_t size,
			      const char *sha256)
{
	static const char item[] =
		"UPDATE item SET state = 1, size = $1, sha256 = $2, error = NULL"
		" WHERE task_id = $3 AND seq = $4"
		" AND EXISTS (SELECT 1 FROM task WHERE id = $3" STORE_PG_FENCE(5) ")";
	static const char done[] =
		"UPDATE task SET files_done = (SELECT count(*) FROM item WHERE task_id = $1"
		" AND state = 1 AND is_dir = 0), updated_ms = $2 WHERE id = $1";
	struct store_pg_args a = { 0 };
	store_pg_int(&a, size);
	store_pg_str(&a, sha256);
	store_pg_str(&a, id);
	store_pg_int(&a, seq);
	store_pg_token(&a, s, id);
	if (store_pg_begin(s, "item done") < 0)
		return -1;
	int64_t changed = store_pg_do(s, item, &a, "item done");
	struct store_pg_args b = { 0 };
	store_pg_str(&b, id);
	store_pg_int(&b, util_now_ms());
	if (changed < 0 || (changed > 0 && store_pg_do(s, done, &b, "item done") < 0) ||
	    store_pg_commit(s, "item done") < 0) {
		store_pg_rollback(s);
		return -1;
	}
	return 0;
}

static int store_pg_item_failed(struct store *s, const char *id, int seq, const char *error)
{
	struct store_pg_args a = { 0 };
	store_pg_str(&a, error);
	store_pg_str(&a, id);
	store_pg_int(&a, seq);
	store_pg_token(&a, s, id);
	return store_pg_do(s,
			   "UPDATE item SET state = 2, error = $1 WHERE task_id = $2 AND seq = $3"
			   " AND EXISTS (SELECT 1 FROM task WHERE id = $2" STORE_PG_FENCE(4) ")",
			   &a, "item failed") < 0
		       ? -1
		       : 0;
}

static int store_pg_item_version(struct store *s, const char *id, int seq, const char *version)
{
	struct store_pg_args a = { 0 };
	store_pg_str(&a, version);
	store_pg_str(&a, id);
	store_pg_int(&a, seq);
	store_pg_token(&a, s, id);
	return store_pg_do(s,
			   "UPDATE item SET version = $1 WHERE task_id = $2 AND seq = $3"
			   " AND EXISTS (SELECT 1 FROM task WHERE id = $2" STORE_PG_FENCE(4) ")",
			   &a, "item version") < 0
		       ? -1
		       : 0;
}

static int store_pg_progress(struct store *s, const char *id, int64_t bytes_done)
{
	struct store_pg_args a = { 0 };
	store_pg_int(&a, bytes_done);
	store_pg_int(&a, util_now_ms());
	store_pg_str(&a, id);
	store_pg_token(&a, s, id);
	return store_pg_do(s,
			   "UPDATE task SET bytes_done = $1, updated_ms = $2 WHERE id = $3"
			   STORE_PG_FENCE(4),
			   &a, "progress") < 0
		       ? -1
		       : 0;
}

/* ---- ordering, polls ------------------------------------------------------ */

static int store_pg_waiting_for(struct store *s, const char *id, char out[TASKID_LEN])
{
	struct store_pg_args a = { 0 };
	store_pg_str(&a, id);
	out[0] = '\0';
	PGresult *r = store_pg_run(s,
				   "SELECT (" STORE_PG_AHEAD " ORDER BY o.seq LIMIT 1) FROM task t"
				   " WHERE t.id = $1 AND t.state IN (" SQL_QUEUED ", " SQL_RETRY ")",
				   &a, 0, "waiting for");
	if (!r)
		return -1;
	int rc = 1;
	if (PQntuples(r) == 1 && !PQgetisnull(r, 0, 0)) {
		snprintf(out, TASKID_LEN, "%s", PQgetvalue(r, 0, 0));
		rc = 0;
	}
	PQclear(r);
	return rc;
}

static int64_t store_pg_count_held(struct store *s)
{
	/* dest_key is order_key(dest_path): the path is read and keyed here
	 * as the insert keyed it. */
	PGresult *r = store_pg_run(s,
				   "SELECT dest_path, state FROM task WHERE state < " SQL_FINAL
				   " ORDER BY seq",
				   NULL, 0, "held");
	if (!r)
		return -1;
	struct order_held *h = order_held_new();
	int64_t n = 0;
	for (int i = 0; i < PQntuples(r); i++) {
		char *key = order_key(PQgetvalue(r, i, 0));
		if (order_held_next(h, key, strlen(key)) && store_pg_i64(r, i, 1) != TS_RUNNING)
			n++;
		free(key);
	}
	order_held_free(h);
	PQclear(r);
	return n;
}

static int store_pg_take_poll(struct store *s, const char *id)
{
	struct store_pg_args a = { 0 };
	store_pg_str(&a, id);
	PGresult *r = store_pg_run(s,
				   "UPDATE task SET rule_polls = rule_polls -"
				   " CASE WHEN rule_polls > 0 THEN 1 ELSE 0 END"
				   " WHERE id = $1 AND rule_polls <> 0 RETURNING rule_polls",
				   &a, 1, "poll");
	if (!r)
		return -1;
	int rc = PQntuples(r) > 0;
	PQclear(r);
	return rc;
}

/* ---- operators ------------------------------------------------------------ */

static int store_pg_list(struct store *s, const struct task_filter *f, struct task **tasks,
			 int *n)
{
	/* Built per call, numbering the parameters of the filters set. */
	struct store_pg_args a = { 0 };
	int64_t now = util_now_ms();
	char sql[1024];
	size_t len = (size_t)snprintf(sql, sizeof sql,
				      "SELECT " STORE_PG_COLUMNS " FROM task WHERE true");
	if (f->state >= 0) {
		store_pg_int(&a, f->state);
		len += (size_t)snprintf(sql + len, sizeof sql - len, " AND state = $%d", a.n);
	}
	if (f->kind > 0) {
		store_pg_int(&a, f->kind);
		len += (size_t)snprintf(sql + len, sizeof sql - len, " AND kind = $%d", a.n);
	}
	if (f->min_age_ms > 0) {
		store_pg_int(&a, now - f->min_age_ms);
		len += (size_t)snprintf(sql + len, sizeof sql - len, " AND created_ms <= $%d", a.n);
	}
	if (f->max_age_ms > 0) {
		store_pg_int(&a, now - f->max_age_ms);
		len += (size_t)snprintf(sql + len, sizeof sql - len, " AND created_ms >= $%d", a.n);
	}
	if (f->before_seq > 0) {
		store_pg_int(&a, f->before_seq);
		len += (size_t)snprintf(sql + len, sizeof sql - len, " AND seq < $%d", a.n);
	}
	store_pg_int(&a, store_list_limit(f));
	snprintf(sql + len, sizeof sql - len, " ORDER BY seq DESC LIMIT $%d", a.n);
	PGresult *r = store_pg_run(s, sql, &a, 0, "list");
	if (!r)
		return -1;
	int rows = PQntuples(r);
	struct task *v = rows ? util_calloc((size_t)rows, sizeof *v) : NULL;
	for (int i = 0; i < rows; i++)
		store_pg_read_task(r, i, &v[i]);
	PQclear(r);
	*tasks = v;
	*n = rows;
	return 0;
}

static int store_pg_events(struct store *s, const char *id, struct task_event **ev, int *n)
{
	struct store_pg_args a = { 0 };
	store_pg_str(&a, id);
	PGresult *r = store_pg_run(s,
				   "SELECT at_ms, state, detail FROM event WHERE task_id = $1"
				   " ORDER BY id",
				   &a, 0, "events");
	if (!r)
		return -1;
	int rows = PQntuples(r);
	struct task_event *v = rows ? util_calloc((size_t)rows, sizeof *v) : NULL;
	for (int i = 0; i < rows; i++) {
		v[i].at_ms = store_pg_i64(r, i, 0);
		v[i].state = (int)store_pg_i64(r, i, 1);
		v[i].detail = store_pg_text(r, i, 2);
	}
	PQclear(r);
	*ev = v;
	*n = rows;
	return 0;
}

static int store_pg_attempts(struct store *s, const char *id, struct attempt **at, int *n)
{
	struct store_pg_args a = { 0 };
	store_pg_str(&a, id);
	PGresult *r = store_pg_run(s,
				   "SELECT n, started_ms, ended_ms, error FROM attempt"
				   " WHERE task_id = $1 ORDER BY n",
				   &a, 0, "attempts");
	if (!r)
		return -1;
	int rows = PQntuples(r);
	struct attempt *v = rows ? util_calloc((size_t)rows, sizeof *v) : NULL;
	for (int i = 0; i < rows; i++) {
		v[i].n = (int)store_pg_i64(r, i, 0);
		v[i].started_ms = store_pg_i64(r, i, 1);
		v[i].ended_ms = store_pg_i64(r, i, 2);
		v[i].error = store_pg_text(r, i, 3);
	}
	PQclear(r);
	*at = v;
	*n = rows;
	return 0;
}

static int store_pg_count_by_state(struct store *s, int64_t counts[6])
{
	for (int i = 0; i < 6; i++)
		counts[i] = 0;
	PGresult *r = store_pg_run(s, "SELECT state, count(*) FROM task GROUP BY state", NULL, 0,
				   "count by state");
	if (!r)
		return -1;
	for (int i = 0; i < PQntuples(r); i++) {
		int64_t state = store_pg_i64(r, i, 0);
		if (state >= 0 && state < 6)
			counts[state] = store_pg_i64(r, i, 1);
	}
	PQclear(r);
	return 0;
}

/* The state of a task: 0 and *state, 1 when there is no such task, -1. */
static int store_pg_state_of(struct store *s, const char *id, int *state)
{
	struct store_pg_args a = { 0 };
	store_pg_str(&a, id);
	PGresult *r = store_pg_run(s, "SELECT state FROM task WHERE id = $1", &a, 0, "state");
	if (!r)
		return -1;
	int rc = 1;
	if (PQntuples(r) == 1) {
		*state = (int)store_pg_i64(r, 0, 0);
		rc = 0;
	}
	PQclear(r);
	return rc;
}

static int store_pg_admin_retry(struct store *s, const char *id, char *err, size_t errlen)
{
	/* A retry counts as an acceptance: a new seq, under the insert lock
	 * like any acceptance. */
	static const char sql[] =
		"UPDATE task SET seq = nextval('task_seq'), state = " SQL_QUEUED ","
		" attempt_base = attempts, first_started_ms = 0, next_attempt_ms = 0,"
		" result = NULL, reason = NULL, note = NULL, cancel_requested = 0,"
		" notify_state = 0, notify_attempts = 0, notify_next_ms = 0, notify_ms = 0,"
		" notify_error = NULL, bytes_done = 0, files_done = 0, updated_ms = $1,"
		" node = NULL, lease_until_ms = 0"
		" WHERE id = $2 AND state IN (" SQL_FAILED ", " SQL_CANCELLED ")";
	struct store_pg_args a = { 0 };
	store_pg_int(&a, util_now_ms());
	store_pg_str(&a, id);
	int64_t changed = -1;
	if (store_pg_begin(s, "retry") == 0 &&
	    store_pg_do(s, "SELECT pg_advisory_xact_lock(" STORE_PG_LOCK_INSERT ")", NULL,
			"retry") >= 0 &&
	    (changed = store_pg_do(s, sql, &a, "retry")) >= 0 &&
	    (changed == 0 || store_pg_do(s, "NOTIFY " STORE_PG_CHANNEL, NULL, "retry") >= 0) &&
	    store_pg_commit(s, "retry") == 0) {
		if (changed == 1)
			return 0;
	} else {
		store_pg_rollback(s);
		util_error(err, errlen, "cannot write the store %s", s->label);
		return -1;
	}
	int state, rc = store_pg_state_of(s, id, &state);
	if (rc == 1)
		return 1;
	if (rc < 0)
		util_error(err, errlen, "cannot read the store %s", s->label);
	else
		util_error(err, errlen,
			   "task %s is %s; only failed or cancelled tasks can be retried", id,
			   task_state_name(state));
	return -1;
}

static int store_pg_admin_cancel(struct store *s, const char *id, const char *reason, int notify,
				 int *was_running, char *err, size_t errlen)
{
	int64_t now = util_now_ms();
	struct store_pg_args a = { 0 };
	store_pg_str(&a, reason);
	store_pg_int(&a, now);
	store_pg_int(&a, notify != 0);
	store_pg_str(&a, id);
	int64_t changed = store_pg_do(
		s,
		"UPDATE task SET state = " SQL_CANCELLED ", reason = $1, updated_ms = $2,"
		" notify_state = CASE WHEN $3::int <> 0 THEN 1 ELSE 0 END, notify_attempts = 0,"
		" notify_next_ms = $2 WHERE id = $4 AND state IN (" SQL_QUEUED ", " SQL_RETRY ")",
		&a, "cancel");
	if (changed < 0)
		goto fail;
	if (changed == 1)
		return 0;
	/* A running task: the node running it sees the flag within about a
	 * second (its store_cancel_requests) and stops it. */
	a = (struct store_pg_args){ 0 };
	store_pg_str(&a, reason);
	store_pg_str(&a, id);
	changed = store_pg_do(s,
			      "UPDATE task SET cancel_requested = 1, reason = $1"
			      " WHERE id = $2 AND state = " SQL_RUNNING,
			      &a, "cancel");
	if (changed < 0)
		goto fail;
	if (changed == 1) {
		*was_running = 1;
		return 0;
	}
	int state, rc = store_pg_state_of(s, id, &state);
	if (rc == 1)
		return 1;
	if (rc < 0)
		goto fail;
	util_error(err, errlen, "task %s is already %s; it cannot be cancelled", id,
		   task_state_name(state));
	return -1;
fail:
	util_error(err, errlen, "cannot write the store %s", s->label);
	return -1;
}

/* Reads up to `max` ids from the first column of r (cleared). */
static int store_pg_ids(PGresult *r, char (*ids)[TASKID_LEN], int have, int max)
{
	int n = have;
	for (int i = 0; i < PQntuples(r) && n < max; i++)
		snprintf(ids[n++], TASKID_LEN, "%s", PQgetvalue(r, i, 0));
	PQclear(r);
	return n;
}

static int store_pg_cancel_requests(struct store *s, char (*ids)[TASKID_LEN], int *lost, int max)
{
	/* The tasks whose lease went to another node first: their workers
	 * must stop, and what they record is fenced off anyway. */
	int n = 0;
	pthread_mutex_lock(&store_pg_running.lock);
	while (store_pg_running.nlost > 0 && n < max)
		memcpy(ids[n++], store_pg_running.lost[--store_pg_running.nlost], TASKID_LEN);
	pthread_mutex_unlock(&store_pg_running.lock);
	for (int i = 0; lost && i < n; i++)
		lost[i] = 1;
	if (n > 0)
		log_warn("store: %d task%s of this node went to another node (lease lost); "
			 "stopping %s", n, n == 1 ? "" : "s", n == 1 ? "it" : "them");
	struct store_pg_args a = { 0 };
	store_pg_str(&a, store_pg_me());
	store_pg_int(&a, max);
	PGresult *r = store_pg_run(s,
				   "SELECT id FROM task WHERE cancel_requested = 1 AND state = "
				   SQL_RUNNING " AND node = $1 LIMIT $2",
				   &a, 0, "cancel requests");
	if (!r)
		return n ? n : -1;
	int all = store_pg_ids(r, ids, n, max);
	for (int i = n; lost && i < all; i++)
		lost[i] = 0;
	return all;
}

static int store_pg_notify_due(struct store *s, int64_t now_ms, char (*ids)[TASKID_LEN], int max)
{
	/* Claimed like a task: pushing notify_next_ms a lease ahead keeps the
	 * other nodes off these while this one POSTs them, and gives them back
	 * if it dies. */
	struct store_pg_args a = { 0 };
	store_pg_int(&a, now_ms);
	store_pg_int(&a, max);
	store_pg_int(&a, PG(s)->lease_ms);
	PGresult *r = store_pg_run(
		s,
		"UPDATE task SET notify_next_ms = $1 + $3 WHERE seq IN (SELECT seq FROM task"
		" WHERE notify_state = 1 AND notify_next_ms <= $1 ORDER BY notify_next_ms"
		" LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING id",
		&a, 1, "notifications due");
	if (!r)
		return -1;
	return store_pg_ids(r, ids, 0, max);
}

static int store_pg_notify_result(struct store *s, const char *id, int state, int attempts,
				  int64_t next_ms, const char *error)
{
	struct store_pg_args a = { 0 };
	store_pg_int(&a, state);
	store_pg_int(&a, attempts);
	store_pg_int(&a, next_ms);
	store_pg_str(&a, error);
	store_pg_int(&a, util_now_ms());
	store_pg_str(&a, id);
	return store_pg_do(s,
			   "UPDATE task SET notify_state = $1, notify_attempts = $2,"
			   " notify_next_ms = $3, notify_error = $4,"
			   " notify_ms = CASE WHEN $1::int IN (2, 3) THEN $5 ELSE notify_ms END"
			   " WHERE id = $6",
			   &a, "notification") < 0
		       ? -1
		       : 0;
}

static int store_pg_health(struct store *s, char *why, size_t whylen)
{
	struct store_pg_args a = { 0 };
	store_pg_str(&a, store_pg_me());
	store_pg_int(&a, util_now_ms());
	if (store_pg_do(s,
			"INSERT INTO health (node, at_ms) VALUES ($1, $2)"
			" ON CONFLICT (node) DO UPDATE SET at_ms = EXCLUDED.at_ms",
			&a, "health") < 0) {
		char msg[512];
		store_pg_errtext(PG(s)->conn, msg, sizeof msg);
		util_error(why, whylen, "store %s does not take writes: %s", s->label, msg);
		return -1;
	}
	return 0;
}

/* ---- the background: leases and wake-ups --------------------------------- */

static struct {
	pthread_t thread;
	int running;
	volatile int stopping;
	struct store *s;
	void (*wake)(void);
	int64_t lease_ms;
	int64_t renewed_ms; /* the last renewal that succeeded (monotonic) */
} store_pg_bg;

/* Renews this node's leases; a task the node runs that the renewal did
 * not find is another node's now (or was ended by an operator): its id
 * goes to `lost`. When renewals have failed for a whole lease, every task
 * is lost: another node may run them by now. */
static void store_pg_renew(struct store *s)
{
	/* The tasks run before the statement starts: each was claimed, and
	 * so is visible, by then. */
	static char ids[STORE_PG_MAX_RUNNING][TASKID_LEN];
	pthread_mutex_lock(&store_pg_running.lock);
	int n = store_pg_running.n;
	memcpy(ids, store_pg_running.id, (size_t)n * TASKID_LEN);
	pthread_mutex_unlock(&store_pg_running.lock);

	struct store_pg_args a = { 0 };
	int64_t now = util_now_ms();
	store_pg_int(&a, now + store_pg_bg.lease_ms);
	store_pg_str(&a, store_pg_me());
	PGresult *r = store_pg_run(s,
				   "UPDATE task SET lease_until_ms = $1 WHERE state = " SQL_RUNNING
				   " AND node = $2 RETURNING id",
				   &a, 1, "lease renewal");
	int64_t mono = util_mono_ms();
	int all_lost = !r && mono - store_pg_bg.renewed_ms > store_pg_bg.lease_ms;
	if (r)
		store_pg_bg.renewed_ms = mono;
	if (!r && !all_lost)
		return;
	pthread_mutex_lock(&store_pg_running.lock);
	for (int i = 0; i < n; i++) {
		int found = 0;
		for (int k = 0; r && !found && k < PQntuples(r); k++)
			found = strcmp(PQgetvalue(r, k, 0), ids[i]) == 0;
		if (found)
			continue;
		/* Still run by a worker here (not let go meanwhile)? */
		for (int j = 0; j < store_pg_running.n; j++)
			if (strcmp(store_pg_running.id[j], ids[i]) == 0) {
				if (store_pg_running.nlost < STORE_PG_MAX_RUNNING)
					memcpy(store_pg_running.lost[store_pg_running.nlost++], ids[i],
					       TASKID_LEN);
				int last = --store_pg_running.n;
				memcpy(store_pg_running.id[j], store_pg_running.id[last], TASKID_LEN);
				store_pg_running.token[j] = store_pg_running.token[last];
				break;
			}
	}
	pthread_mutex_unlock(&store_pg_running.lock);
	PQclear(r);
}

/* Listens for NOTIFY apubid_task on the background connection. */
static int store_pg_listen(struct store *s)
{
	PGresult *r = store_pg_run(s, "LISTEN " STORE_PG_CHANNEL, NULL, 0, "listen");
	PQclear(r);
	return r ? 0 : -1;
}

static void *store_pg_bg_main(void *arg)
{
	(void)arg;
	struct store *s = store_pg_bg.s;
	int listening = store_pg_listen(s) == 0;
	int64_t every = store_pg_bg.lease_ms / 3, next_renew = 0;
	while (!store_pg_bg.stopping) {
		int64_t mono = util_mono_ms();
		if (mono >= next_renew) {
			next_renew = mono + every;
			int was = PQstatus(PG(s)->conn) == CONNECTION_OK;
			store_pg_renew(s);
			/* A new connection listens again. */
			if (!was || !listening)
				listening = PQstatus(PG(s)->conn) == CONNECTION_OK &&
					    store_pg_listen(s) == 0;
		}
		PGconn *c = PG(s)->conn;
		int fd = c && PQstatus(c) == CONNECTION_OK ? PQsocket(c) : -1;
		if (fd < 0) {
			usleep(200 * 1000);
			continue;
		}
		/* Notifications that came in with the renewal's answer are
		 * queued already: they wake before the next wait. */
		int woken = 0;
		PGnotify *nf;
		while ((nf = PQnotifies(c)) != NULL) {
			woken = 1;
			PQfreemem(nf);
		}
		if (woken && store_pg_bg.wake)
			store_pg_bg.wake();
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int64_t wait = next_renew - util_mono_ms();
		if (wait > 200)
			wait = 200; /* looks at the stop flag this often */
		if (wait < 0)
			wait = 0;
		if (poll(&pfd, 1, (int)wait) > 0 && !PQconsumeInput(c)) {
			listening = 0;
			next_renew = 0; /* reconnects on the renewal's statement */
		}
	}
	return NULL;
}

static int store_pg_start(const struct config *c, void (*wake)(void), char *err, size_t errlen)
{
	if (store_pg_bg.running)
		return 0;
	store_pg_bg.s = store_pg_open(c, err, errlen);
	if (!store_pg_bg.s)
		return -1;
	store_pg_bg.wake = wake;
	store_pg_bg.lease_ms = PG(store_pg_bg.s)->lease_ms;
	store_pg_bg.renewed_ms = util_mono_ms();
	store_pg_bg.stopping = 0;
	int rc = pthread_create(&store_pg_bg.thread, NULL, store_pg_bg_main, NULL);
	if (rc != 0) {
		util_error(err, errlen, "cannot start the store's lease thread: %s", strerror(rc));
		store_pg_close(store_pg_bg.s);
		store_pg_bg.s = NULL;
		return -1;
	}
	store_pg_bg.running = 1;
	log_info("store: node \"%s\", leases of %lld s", store_pg_me(),
		 (long long)(store_pg_bg.lease_ms / 1000));
	return 0;
}

static void store_pg_stop(void)
{
	if (!store_pg_bg.running)
		return;
	store_pg_bg.stopping = 1;
	pthread_join(store_pg_bg.thread, NULL);
	store_pg_bg.running = 0;
	store_pg_close(store_pg_bg.s);
	store_pg_bg.s = NULL;
}

const struct store_ops store_pg_ops = {
	.name = "postgresql",
	.shared = 1,
	.gather_us = STORE_PG_GATHER_US,
	.open = store_pg_open,
	.close = store_pg_close,
	.set_durable = store_pg_set_durable,
	.insert_batch = store_pg_insert_batch,
	.get = store_pg_get,
	.claim = store_pg_claim,
	.finish = store_pg_finish,
	.requeue = store_pg_requeue,
	.recover = store_pg_recover,
	.count_active = store_pg_count_active,
	.prune = store_pg_prune,
	.retry = store_pg_retry,
	.attempt = store_pg_attempt,
	.items = store_pg_items,
	.set_items = store_pg_set_items,
	.item_done = store_pg_item_done,
	.item_failed = store_pg_item_failed,
	.item_version = store_pg_item_version,
	.progress = store_pg_progress,
	.waiting_for = store_pg_waiting_for,
	.count_held = store_pg_count_held,
	.take_poll = store_pg_take_poll,
	.list = store_pg_list,
	.events = store_pg_events,
	.attempts = store_pg_attempts,
	.count_by_state = store_pg_count_by_state,
	.admin_retry = store_pg_admin_retry,
	.admin_cancel = store_pg_admin_cancel,
	.cancel_requests = store_pg_cancel_requests,
	.notify_due = store_pg_notify_due,
	.notify_result = store_pg_notify_result,
	.health = store_pg_health,
	.start = store_pg_start,
	.stop = store_pg_stop,
};

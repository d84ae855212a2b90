/*
 * apubid.h - the map of apubid.
 *
 * apubid is an APUBI publishing server: NAGRA's Workflow Manager (WFM) calls
 * LoadAsset, PurgeAsset and GetTaskStatus over SOAP; apubid commits each job
 * as a task in its store, answers with a TaskId, and a pool of worker threads
 * carries the task out (copy an asset into the CDN origin, or remove it).
 *
 * Every subsystem lives in one file named after its role, and its exported
 * functions carry the file stem as prefix. This header declares them all,
 * grouped under the file that defines them, in the order a reader meets them
 * when following a request: configuration, logging, URLs and paths, asset
 * resolution, tasks, the store, transfers, the worker pool, the SOAP service
 * and the server loop.
 *
 * Conventions: functions return 0 on success and -1 on failure unless their
 * contract says otherwise. An `err` buffer of `errlen` bytes receives a
 * human-readable reason on failure (never NULL-terminated garbage: it is
 * always a C string after a failing call). Strings handed back to the caller
 * are malloc'ed and owned by the caller unless the contract says otherwise.
 * No library type (gSOAP, SQLite, libcurl) appears here: each stays inside
 * the one file that uses it.
 */
#ifndef APUBID_H
#define APUBID_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#define APUBID_VERSION "0.1.0"

/* An upper-case UUID, 36 characters, plus the terminator. */
#define TASKID_LEN 37

/* ---- util.c: allocation that never returns NULL ---------------------- */

/* On allocation failure these log and abort: apubid cannot make progress
 * without memory, and a half-built task must not reach the store. */
void *util_malloc(size_t n);
void *util_calloc(size_t n, size_t size);
char *util_strdup(const char *s);                 /* NULL in, NULL out */
char *util_strndup(const char *s, size_t n);
char *util_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Trims leading and trailing XML whitespace (space, tab, CR, LF) in place;
 * returns s. NULL in, NULL out. */
char *util_trim(char *s);
/* Milliseconds since the epoch (CLOCK_REALTIME) and a monotonic clock. */
int64_t util_now_ms(void);
int64_t util_mono_ms(void);
/* Fills `out` with a fresh upper-case UUID (libuuid, random). */
void util_uuid(char out[TASKID_LEN]);

/* ---- embed.c: files built into the binary (NUL-terminated) ---------- */

extern const char embed_wsdl[];      /* wsdl/APUBI.wsdl */
extern const char embed_xsd[];       /* wsdl/APUBI.xsd */
extern const char embed_schema_v1[]; /* db/001_init.sql */

/* ---- log.c: one line per event on stderr ----------------------------- */

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* Returns the level for "error", "warn", "info" or "debug", or -1. */
int log_parse_level(const char *name);
void log_set_level(int level);
int log_enabled(int level);
/* Writes "2026-11-22T12:00:00.123Z LEVEL message\n" atomically to stderr. */
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/* ---- url.c: URL parsing, masking and path normalisation -------------- */

struct url {
	char *scheme;   /* lower-cased, e.g. "ftp"; never NULL after a parse */
	char *user;     /* percent-decoded userinfo, or NULL */
	char *password; /* percent-decoded, or NULL */
	char *host;     /* lower-cased; "" for file:///x; IPv6 without brackets */
	int port;       /* explicit port, or 0 when absent */
	char *path;     /* percent-decoded path, starts with '/' (or is "") */
};

/* Parses an absolute URL "scheme://[user[:password]@]host[:port][/path]".
 * The scheme is letters, digits, '+', '-', '.', starting with a letter.
 * Query strings and fragments are refused (an asset URL has none). The path
 * is percent-decoded; "%00", a bad escape, or any control character (below
 * 0x20, or 0x7f) anywhere in the input makes the parse fail. A bad port
 * (non-digits, 0, > 65535) fails. On failure, *u is left empty (safe to
 * url_free) and err says what is wrong. */
int url_parse(const char *s, struct url *u, char *err, size_t errlen);
void url_free(struct url *u);

/* Returns a malloc'ed copy of `s` with any password in the userinfo
 * replaced by "***": "ftp://user:pw@h/x" -> "ftp://user:***@h/x". A URL
 * with a user but no password is returned unchanged; a string that is not a
 * URL is returned unchanged. Safe for log lines, task views and faults. */
char *url_mask(const char *s);

/* Percent-encodes every byte of a path outside [A-Za-z0-9-._~/] (UTF-8
 * bytes included), the canonical form apubid writes into URLs. Returns a
 * malloc'ed string. */
char *url_encode_path(const char *p);

/* Returns 1 when `s` looks like an absolute URL ("scheme://"), else 0. */
int url_is_absolute(const char *s);

/* Normalises a relative path: splits on '/', drops empty and "." segments,
 * and refuses ".." segments, control characters and NUL. The result has no
 * leading or trailing '/' (it may be "" when nothing is left). *is_dir is
 * set to 1 when `in` ends with '/' (after the caller's trimming), else 0.
 * Returns 0 and a malloc'ed *out, or -1 with err set. */
int url_path_normalize(const char *in, char **out, int *is_dir, char *err, size_t errlen);

/* ---- config.c: the settings, one table drives parsing and defaults --- */

#define CONFIG_MAX_PREFIXES 32

struct config {
	/* [server] */
	char *listen_host;          /* "127.0.0.1"; "::1" for "[::1]:8080" */
	int listen_port;            /* 8080 */
	char *endpoint;             /* "/apubi"; always starts with '/' */
	int threads;                /* serving threads, 16 */
	int64_t max_request_size;   /* bytes, "1M" = 1048576 */
	int client_fault_status;    /* 500 (default) or 400 */
	int recv_timeout;           /* seconds a socket read may stall, 10 */
	int send_timeout;           /* seconds a socket write may stall, 10 */
	int request_timeout;        /* seconds for one whole message, 30 */
	int keepalive_timeout;      /* seconds an idle keep-alive connection is kept, 15 */
	int max_keepalive_requests; /* requests on one connection, 1000 */
	/* [store] */
	char *store_path;           /* "var/apubid.db" */
	int retention_days;         /* 30 */
	/* [workers] */
	int workers;                /* task worker threads, 4 */
	int queue_limit;            /* unfinished tasks before 503, 10000 */
	/* [source] allow: each a normalised prefix URL ending in '/', e.g.
	 * "file:///srv/ingest/". Relative local paths in the file are made
	 * absolute against the working directory. */
	char *source_allow[CONFIG_MAX_PREFIXES];
	int nsource_allow;
	/* [destination] */
	char *dest_root;            /* "file:///srv/cdn/", always ends in '/' */
	char *dest_root_path;       /* "/srv/cdn" for a file:// root, else NULL */
	char *dest_allow[CONFIG_MAX_PREFIXES]; /* prefixes ending in '/' */
	int ndest_allow;
	char *public_url;           /* ends in '/', or NULL */
	/* [log] */
	int log_level;              /* LOG_INFO */
};

/* The configuration apubid runs with when started without -f: listen on
 * 127.0.0.1:8080, store var/apubid.db, sources under var/ingest/, publish
 * into var/cdn/ (relative to the working directory). */
extern const char config_default_text[];

/* Fills *c with the defaults, then applies `text` (INI) read from a file
 * called `name` (used in messages). Sections and keys are those of the
 * struct above and of etc/apubid.conf. Unknown sections or keys, bad
 * values, a key outside any section, and missing required settings are
 * refused with "name:line: reason" in err. Lines starting with '#' or ';'
 * are comments; "key = value" with whitespace trimmed. Repeatable keys
 * ([source] allow, [destination] allow) accumulate. Sizes accept K, M, G
 * suffixes (powers of 1024). Returns 0 or -1. On failure *c holds nothing
 * that needs freeing beyond config_free. */
int config_parse(struct config *c, const char *text, const char *name, char *err, size_t errlen);
/* Reads the file and calls config_parse; `path` NULL uses the default. */
int config_load(struct config *c, const char *path, char *err, size_t errlen);
void config_free(struct config *c);

/* ---- asset.c: turning what the WFM sends into what apubid touches ---- */

/* Validates a SourceAssetUrl (already trimmed) against the configuration:
 * it must be an absolute URL or an absolute path ("/srv/ingest/a.ts",
 * taken as file://), its scheme must be one apubid can fetch (today:
 * "file"), and it must fall under one of [source] allow. For file sources
 * the path must not contain "..", and the local file or directory must
 * exist. On success *local_path receives the absolute local path (without a
 * trailing '/'), and *is_dir whether the source is a directory (a trailing
 * '/' in the URL, or an existing directory). Returns 0, or -1 with err set
 * to a sentence fit for a client fault, e.g.
 * "source asset does not exist: /srv/ingest/a.ts". */
int asset_source(const struct config *c, const char *src, char **local_path, int *is_dir,
		 char *err, size_t errlen);

/* Maps a DestinationAsset (already trimmed) to a path relative to the
 * destination root. Accepted forms: a relative path
 * ("dir/movie.ts", "dir/"); an absolute URL under the root URL, under
 * public_url, or under one of [destination] allow (userinfo is ignored when
 * comparing, and the remainder after the prefix becomes the relative path);
 * an absolute local path under dest_root_path. Anything else, ".." segments,
 * control characters, and a value that maps to the root itself are refused.
 * On success *rel is the normalised relative path (no leading or trailing
 * '/') and *is_dir is 1 when the value ends in '/'. */
int asset_destination(const struct config *c, const char *dst, char **rel, int *is_dir,
		      char *err, size_t errlen);

/* What GetTaskStatus answers as DestinationAsset for a published asset:
 * public_url + rel (+ "/" for a directory) when public_url is set, else
 * dest_root + rel (+ "/"). Relative path characters outside the URL-safe set
 * are percent-encoded. The value maps back to `rel` through
 * asset_destination. Returns a malloc'ed string. */
char *asset_public(const struct config *c, const char *rel, int is_dir);

/* ---- task.c: kinds, states and what the WFM sees of them ------------- */

enum task_kind { TASK_LOAD = 1, TASK_PURGE = 2 };

enum task_state {
	TS_QUEUED = 0,    /* committed, waiting for a worker */
	TS_RUNNING = 1,   /* claimed by a worker */
	TS_RETRY = 2,     /* waiting to be tried again */
	TS_SUCCEEDED = 3,
	TS_FAILED = 4,
	TS_CANCELLED = 5,
};

struct task {
	char id[TASKID_LEN];
	int kind;          /* enum task_kind */
	int state;         /* enum task_state */
	char *source;      /* SourceAssetUrl as received (trimmed), loads only */
	char *destination; /* DestinationAsset as received (trimmed) */
	char *dest_path;   /* resolved path relative to the destination root */
	int dest_is_dir;
	char *result;      /* DestinationAsset answered once a load succeeded */
	char *reason;      /* why the task failed */
	char *note;        /* anything else worth telling, e.g. nothing to purge */
	int attempts;      /* how many times a worker started it */
	int64_t created_ms;
	int64_t updated_ms;
};

/* "IN_PROGRESS" for queued, running and retry; "SUCCESS"; "FAILED" for
 * failed and cancelled. */
const char *task_apubi_status(int state);
/* "queued", "running", "retry", "succeeded", "failed", "cancelled". */
const char *task_state_name(int state);
const char *task_kind_name(int kind); /* "load", "purge" */
/* 1 for succeeded, failed and cancelled. */
int task_is_final(int state);
/* 1 when the state machine allows from -> to:
 * queued -> running | cancelled; running -> succeeded | failed | retry |
 * queued (interrupted) | cancelled; retry -> running | cancelled; a final state goes
 * nowhere. */
int task_can_move(int from, int to);
/* Frees the strings of *t and zeroes it. */
void task_clear(struct task *t);

/* ---- store.c: tasks on disk (SQLite, WAL) ---------------------------- */

/* A store handle is one connection: use one per thread. The schema lives in
 * db/ and is applied by store_open when the file is new or older. */
struct store;

struct store *store_open(const char *path, char *err, size_t errlen);
void store_close(struct store *s);
/* Commits a new task durably (fsync'ed) before returning 0. */
int store_insert(struct store *s, const struct task *t);
/* 0 and *t filled (caller task_clear's it), 1 when no such task, -1 on error. */
int store_get(struct store *s, const char *id, struct task *t);
/* Atomically moves the oldest queued task to running, bumps its attempts
 * and fills *t. 0 when a task was claimed, 1 when none waits, -1 on error. */
int store_claim(struct store *s, struct task *t);
/* Ends a running task: state TS_SUCCEEDED, TS_FAILED or TS_CANCELLED, with
 * the result, reason and note (each may be NULL). */
int store_finish(struct store *s, const char *id, int state, const char *result,
		 const char *reason, const char *note);
/* Puts a running task back to queued (a worker stopped at a safe point). */
int store_requeue(struct store *s, const char *id);
/* At start-up: every task left running by a crash goes back to queued.
 * Returns how many, or -1. */
int store_recover(struct store *s);
/* Tasks not yet final, or -1. */
int64_t store_count_active(struct store *s);
/* Deletes final tasks last updated before `before_ms`; returns how many. */
int64_t store_prune(struct store *s, int64_t before_ms);

/* ---- xfer.c, xfer_file.c: carrying out a task ------------------------ */

enum xfer_result { XFER_OK = 0, XFER_FAILED = -1, XFER_STOPPED = 1 };

/* Publishes t->source (a validated source URL or absolute path) to
 * t->dest_path under the destination root. A file is written under a
 * temporary name in its final directory and renamed into place; a
 * directory is assembled under a staging name beside its final place and
 * swapped in, so the final name never shows a partial asset. An existing
 * asset at the destination is replaced. `stop` is polled between files:
 * when it becomes non-zero the transfer cleans up and returns XFER_STOPPED.
 * On XFER_FAILED, err holds a sentence for the task's reason. */
int xfer_load(const struct config *c, const struct task *t, volatile sig_atomic_t *stop,
	      char *err, size_t errlen);
/* Removes t->dest_path (file or whole directory) under the root. An absent
 * asset is not a failure: *note receives a malloc'ed remark instead. */
int xfer_purge(const struct config *c, const struct task *t, char **note, char *err,
	       size_t errlen);

/* The local-filesystem backend behind xfer_load/xfer_purge. `root` is the
 * absolute destination root directory, `src` an absolute local path. All
 * access below `root` walks one component at a time without following
 * symbolic links, so nothing is written or removed outside it. */
int xfer_file_load(const char *src, const char *root, const char *rel, const char *taskid,
		   volatile sig_atomic_t *stop, char *err, size_t errlen);
int xfer_file_purge(const char *root, const char *rel, const char *taskid, char **note,
		    char *err, size_t errlen);

/* ---- pool.c: the task worker threads --------------------------------- */

/* Starts `c->workers` threads, each with its own store connection, that
 * claim tasks and run them to a final state. */
int pool_start(const struct config *c);
/* Tells the workers a task was committed (so they need not wait to poll). */
void pool_wake(void);
/* Workers stop at a safe point; an interrupted task goes back to queued.
 * Joins the threads. */
void pool_stop(void);
/* Unfinished tasks as the pool counts them (for the queue limit). */
int64_t pool_active(void);
void pool_add_active(int64_t n);

/* ---- server.c, svc.c, web.c: the SOAP listener ----------------------- */

struct soap; /* gSOAP's context; only server.c, svc.c and web.c look inside */

/* What one serving thread knows about the request it is answering; hangs
 * off the gSOAP context's `user` pointer. */
struct conn {
	const struct config *cfg;
	struct store *store;   /* this thread's own store connection */
	const char *op;        /* operation or view, for the request log line */
	char taskid[TASKID_LEN];
	int http_status;       /* the status line sent, for the log */
	int retry_after;       /* seconds for a Retry-After header, 0 for none */
	int linger;            /* drain the unread request body before closing */
	int64_t started_ms;
	int64_t received;      /* bytes read from the socket for this request */
	int64_t body_left;     /* declared body bytes not yet read, -1 unknown */
	int too_large;         /* the body outgrew max_request_size */
	int stalled;           /* the client stopped sending within the limits */
};

/* svc.c: fills the context's fault (Client/Sender when `sender`, else
 * Server/Receiver) with `msg` as faultstring and as
 * detail/ExceptionWS/message, and returns gSOAP's SOAP_FAULT. */
int svc_fault(struct soap *soap, int sender, const char *msg);
/* svc.c: gives a fault the engine raised by itself the ExceptionWS detail
 * every apubid fault carries. */
void svc_fault_detail(struct soap *soap);

/* web.c: the GET handler (?wsdl, ?xsd; 404 elsewhere). */
int web_get(struct soap *soap);

/* Binds, runs the accept loop and the serving threads until *stop, then
 * drains requests in flight and returns 0 (or -1 if binding failed). */
int server_run(const struct config *c, volatile sig_atomic_t *stop);

#endif

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
 * and the server loop. apubictl, the operator's tool, is a program of its
 * own with its own map, ctl/ctl.h; it links some of the modules below.
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
/* Writes a reason into a caller's err buffer (nothing when err is NULL). */
void util_error(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Trims leading and trailing XML whitespace (space, tab, CR, LF) in place;
 * returns s. NULL in, NULL out. */
char *util_trim(char *s);
/* Replaces, in place, every byte that is not part of valid UTF-8 (overlong
 * forms and surrogates included) and every control character but tab, CR
 * and LF with '?', so the text can go into XML and log lines; returns s. */
char *util_utf8_sanitize(char *s);
/* For a UTF-8 lead byte: how many continuation bytes follow (0 for ASCII,
 * -1 when no valid sequence starts with it), and the range the first of
 * them must fall in (which excludes overlong forms and surrogates). */
int util_utf8_lead(unsigned char c, unsigned char *lo, unsigned char *hi);
/* A growing string. Start from { 0 }; after any append, p is a
 * NUL-terminated malloc'ed string of len bytes, which the owner frees. */
struct util_buf {
	char *p;
	size_t len, cap;
};
void util_buf_add(struct util_buf *b, const char *s, size_t n);
void util_buf_adds(struct util_buf *b, const char *s);
void util_buf_addf(struct util_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Milliseconds since the epoch (CLOCK_REALTIME) and a monotonic clock. */
int64_t util_now_ms(void);
int64_t util_mono_ms(void);
/* Fills `out` with a fresh upper-case UUID (libuuid, random). */
void util_uuid(char out[TASKID_LEN]);
/* The one reading of a TaskId given by a client or an operator: when the
 * `n` bytes at `s` have a UUID's shape (8-4-4-4-12 hexadecimal digits, any
 * case), writes them upper-case and NUL-terminated to `out`, as TaskIds are
 * issued, and returns 0; otherwise returns -1 and leaves `out` alone. */
int util_taskid_parse(const char *s, size_t n, char out[TASKID_LEN]);

/* ---- embed.c: files built into the binary (NUL-terminated) ---------- */

extern const char embed_wsdl[];      /* wsdl/APUBI.wsdl */
extern const char embed_xsd[];       /* wsdl/APUBI.xsd */
extern const char embed_sqlite_v1[]; /* db/sqlite/001_init.sql */
extern const char embed_sqlite_v2[]; /* db/sqlite/002_transfer.sql */
extern const char embed_sqlite_v3[]; /* db/sqlite/003_operations.sql */
extern const char embed_sqlite_v4[]; /* db/sqlite/004_rules.sql */
extern const char embed_sqlite_v5[]; /* db/sqlite/005_order.sql */
extern const char embed_sqlite_v6[]; /* db/sqlite/006_source_version.sql */
extern const char embed_pg_v1[];     /* db/postgresql/001_init.sql */
extern const char embed_pg_v2[];     /* db/postgresql/002_accept_event.sql */

/* ---- log.c: one line per event on stderr or [log] file --------------- */

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* Returns the level for "error", "warn", "info" or "debug", or -1. */
int log_parse_level(const char *name);
void log_set_level(int level);
int log_enabled(int level);
/* Sends the log to `path` from now on (created 0640 if absent, appended
 * to), or back to the original stderr when `path` is NULL. The file takes
 * the place of descriptor 2, so library output lands there too. On
 * failure the log stays where it was. Thread-safe. */
int log_open(const char *path, char *err, size_t errlen);
/* Opens log_open's file again (after logrotate renamed it away); nothing
 * to do without a file. On failure the log stays where it was. */
int log_reopen(char *err, size_t errlen);
enum log_format { LOG_TEXT = 0, LOG_JSON = 1 };
/* Returns the format for "text" or "json", or -1. */
int log_parse_format(const char *name);
void log_set_format(int format);
/* Writes one line atomically to stderr: "2026-11-22T12:00:00.123Z LEVEL
 * message\n" in text, {"time":..,"level":..,"message":..} in JSON. When
 * stderr is the journal's stream (JOURNAL_STREAM), the line starts with
 * its syslog priority ("<4>") and a text line has no timestamp. */
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* One member of a structured line: a string (`str`, in double quotes in
 * text when `quote`) or, when `str` is NULL, the number `num`. `key` is a
 * word of its own, never "time", "level" or "message". */
struct log_field {
	const char *key;
	const char *str;
	long long num;
	int quote;
};
/* A line whose message is "event key=value key=\"value\" ..."; in JSON
 * each field is also a member of its own, numbers as numbers. */
void log_event(int level, const char *event, const struct log_field *f, int nf);
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
/* The same for a user name or password in a URL's userinfo: '/' is
 * encoded too, so ':', '@' and '/' in a secret cannot move the URL's
 * boundaries. */
char *url_encode_userinfo(const char *s);

/* The URL's port, or its scheme's default when it names none (ftp and
 * ftps 21, sftp 22, http 80, https 443), 0 for other schemes. */
int url_default_port(const struct url *u);

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
	char *public_endpoint;      /* "https://publish.example.com/apubi" or NULL */
	int threads;                /* serving threads, 16 */
	int64_t max_request_size;   /* bytes, "1M" = 1048576 */
	int client_fault_status;    /* 500 (default) or 400 */
	int recv_timeout;           /* seconds a socket read may stall, 10 */
	int send_timeout;           /* seconds a socket write may stall, 10 */
	int request_timeout;        /* seconds for one whole message, 30 */
	int keepalive_timeout;      /* seconds an idle keep-alive connection is kept, 15 */
	int header_timeout;         /* seconds for a request line and headers (and TLS handshake), 10 */
	int max_connections;        /* open client connections, 10000 */
	int max_connections_per_address; /* of which from one address, 256 */
	int max_keepalive_requests; /* requests on one connection, 1000 */
	char *user;                 /* drop to this user after binding, NULL: stay */
	/* [store] */
	char *store_path;           /* SQLite file, "var/apubid.db" */
	char *store_url;            /* PostgreSQL URI: that store instead; NULL: SQLite */
	char *spool_dir;            /* remote-to-remote copies; NULL in the file: path's directory */
	int lease_timeout;          /* seconds a node's claim lasts unrenewed (PostgreSQL), 30 */
	int retention_days;         /* finished tasks are pruned after this, 30; 0 keeps them */
	int prune_interval;         /* seconds between two pruning runs, 600 */
	/* [workers] */
	int workers;                /* task worker threads, 4 */
	int queue_limit;            /* unfinished tasks before 503, 10000 */
	/* [source] allow: each a normalised prefix URL ending in '/', e.g.
	 * "file:///srv/ingest/". Relative local paths in the file are made
	 * absolute against the working directory. */
	char *source_allow[CONFIG_MAX_PREFIXES];
	int nsource_allow;
	/* [destination] */
	char *dest_root;            /* "file:///srv/cdn/" or "ftp://cdn:21/data/cdn/"
				     * (no userinfo), always ends in '/' */
	char *dest_root_path;       /* "/srv/cdn" for a file:// root, else NULL */
	char *dest_allow[CONFIG_MAX_PREFIXES]; /* prefixes ending in '/' */
	int ndest_allow;
	char *public_url;           /* ends in '/', or NULL */
	/* The root normalised like dest_root but with its userinfo kept
	 * (percent-encoded again), for the transfers; never shown. Equal to
	 * dest_root for a file:// root. */
	char *dest_root_auth;
	/* [transfer] */
	int retries;                /* attempts per task before FAILED, 5 (1 = no retry) */
	int retry_delay;            /* seconds before the first retry, 2; doubles each time */
	int retry_max_delay;        /* cap on one delay, seconds, 60 */
	int retry_max_time;         /* no retry starts later than this after the first attempt, 600 */
	int connect_timeout;        /* seconds, 15 */
	int stall_timeout;          /* seconds without progress before a transfer is cut, 30 */
	int task_timeout;           /* seconds for a whole task (all attempts) before FAILED, 3600 */
	int max_per_host;           /* concurrent connections to one server, 4 */
	int parallel;               /* files in flight at once within one task, 4 */
	int refuse_private_sources; /* sources may not resolve to loopback,
				     * private or link-local addresses, 0 */
	/* The four files below: absolute paths, readable when the
	 * configuration was loaded. */
	char *ca_file;              /* CA bundle for FTPS/HTTPS servers, NULL: system store */
	char *ssh_private_key;      /* SFTP key authentication */
	char *ssh_public_key;
	char *ssh_known_hosts;      /* NULL: SFTP host keys are not checked */
	/* [credentials] url (repeatable): "scheme://user:password@host[:port]/"
	 * entries whose userinfo is used for URLs of that scheme, host and port
	 * that carry none. Kept as written; matched on scheme, host and
	 * effective port; at most one entry per server; a user is required,
	 * the password optional (SFTP keys). */
	char *credentials[CONFIG_MAX_PREFIXES];
	int ncredentials;
	/* [log] */
	int log_level;              /* LOG_INFO */
	int log_format;             /* LOG_TEXT or LOG_JSON */
	char *log_file;             /* absolute path appended to, NULL: stderr */
	/* [notify] When url is set, a task's JSON view is POSTed there when
	 * it reaches a final state, retried with backoff. */
	char *notify_url;           /* http:// or https:// URL, NULL: off; may hold userinfo */
	int notify_retries;         /* deliveries tried before "failed", 10 */
	int notify_retry_delay;     /* seconds before the first retry, 2; doubles */
	int notify_retry_max_delay; /* cap on one delay, seconds, 300 */
	int notify_timeout;         /* seconds for one POST, 10 */
	/* [tls] HTTPS instead of HTTP when cert_file is set. The files:
	 * absolute paths, readable when the configuration was loaded. */
	char *tls_cert_file;        /* PEM: the certificate, then its chain */
	char *tls_key_file;         /* PEM private key, NULL: it is in cert_file */
	char *tls_key_password;     /* for an encrypted key; a secret, never shown */
	char *tls_client_ca;        /* PEM CA(s) client certificates must chain to,
				     * NULL: no client certificate asked for */
	/* [auth] Every request needs credentials when auth_methods is not 0. */
	char *auth_users_file;      /* "user:crypt-hash" lines, for Basic */
	char *auth_digest_file;     /* "user:realm:SHA-256 HA1" lines, for Digest */
	char *auth_realm;           /* "apubid" */
	int auth_methods;           /* AUTH_BASIC | AUTH_DIGEST; from the files when unset */
	struct auth *auth;          /* the loaded files, NULL without [auth]; owned */
	/* Bookkeeping, not settings. */
	/* Where the paths paths.c checks were set, for its messages: the
	 * name config messages use for the file, and the line of [store]
	 * path and spool, [destination] root and each [source] allow (0: the
	 * default). */
	char *name;
	int store_path_line, spool_line, dest_root_line;
	int source_allow_line[CONFIG_MAX_PREFIXES];
	/* [staging] Scripted outcomes, for staging and certification only:
	 * `rule` lines are refused unless `enabled = yes`. */
	int staging_enabled;        /* 0 */
	struct rules *rules;        /* parsed [staging] rule lines, NULL when none; owned */
	int reread;                 /* read by config_reread: restart-only files unopened */
	struct config_grave *grave; /* strings config_reload replaced; freed by config_free */
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
 * ([source] allow, [destination] allow, [credentials] url) accumulate. The
 * [transfer] file settings are opened at load: a missing or unreadable
 * file is refused. Sizes accept K, M, G
 * suffixes (powers of 1024). Returns 0 or -1. On failure *c holds nothing
 * that needs freeing beyond config_free. */
int config_parse(struct config *c, const char *text, const char *name, char *err, size_t errlen);
/* Reads the file and calls config_parse; `path` NULL uses the default. */
int config_load(struct config *c, const char *path, char *err, size_t errlen);
/* config_load for a configuration read again while apubid runs (SIGHUP):
 * the same checks, except that the files only a restart would open again
 * ([transfer] ca_file and SSH keys, [tls], [auth]) are not opened, their
 * paths only made absolute: apubid may have dropped the rights to read
 * them, and they would not be used before a restart anyway. */
int config_reread(struct config *c, const char *path, char *err, size_t errlen);
/* Brings the running configuration `live` in line with `fresh` (from
 * config_reread) for every setting that may change at run time (those
 * apubid.conf(5) marks as reloaded): numbers are stored in place, a
 * replaced string stays allocated until config_free(live), so a thread
 * still reading the old value is safe. `applied` receives the changed
 * reloadable settings as "log.level, notify.url", `restart` the changed
 * ones that need a restart ("server.listen"); either is "" when there is
 * none. Only names are written, never values (a value may hold a
 * password). Returns how many settings were applied. */
int config_reload(struct config *live, const struct config *fresh, char *applied,
		  size_t appliedlen, char *restart, size_t restartlen);
/* Calls fn(arg, section, key, type, range, default, reloads) for every
 * setting in table order, for documentation and its tests: `type` is one
 * word ("integer", "path", "URL", ...), `range` e.g. "1 to 100", and
 * both `range` and `default` are "" when there is none. */
void config_each(void (*fn)(void *arg, const char *section, const char *key, const char *type,
			    const char *range, const char *def, int reloads),
		 void *arg);
void config_free(struct config *c);

/* ---- paths.c: the local directories apubid works in ----------------- */

/* Checks, as the user apubid will run as ([server] user when apubid is
 * root and one is set, else apubid itself), that the store's directory is
 * a writable directory (and an existing store a writable file), that a
 * file:// destination root is a writable directory and that every file://
 * [source] allow prefix is a readable directory; apubid creates none of
 * them. Returns the number of problems, and in *report (malloc'ed, ""
 * when none) one line each: "FILE:LINE: [destination] root /srv/cdn does
 * not exist: No such file or directory". Forks when it checks as another
 * user: call it before any thread starts. Also records the root's device
 * for paths_health. */
int paths_check(const struct config *c, char **report);
/* For /healthz: 0 while a file:// destination root is still a writable
 * directory on the device paths_check saw (or when the root is remote),
 * else -1 with why ("root /srv/cdn: No such file or directory"). One stat
 * and one access(2): cheap enough for a probe every second. */
int paths_health(const struct config *c, char *why, size_t whylen);

/* ---- auth.c: who may call apubid ------------------------------------ */

/* HTTP authentication methods, a bit mask. */
#define AUTH_BASIC 1
#define AUTH_DIGEST 2

/* Longest user name apubid accepts (bytes). */
#define AUTH_USER_MAX 128

/* The credentials files, read once at start-up. */
struct auth;

/* Reads the files for `methods`: `users_file` (Basic) holds "user:hash"
 * lines, the hash from crypt(3) in a method libxcrypt deems strong
 * (yescrypt "$y$", SHA-512 "$6$", bcrypt "$2b$", ...; DES and MD5 hashes
 * are refused); `digest_file` (Digest) holds "user:realm:HA1" lines, HA1
 * the lower-case hex SHA-256 of "user:realm:password", every realm equal to
 * `realm`. Blank lines and lines starting with '#' are skipped. Each file
 * must be a regular file that other users cannot read or write and its
 * group cannot write (mode 600 or 640), and hold at least one user; a user
 * may appear once per file. A file not needed by `methods` may be NULL.
 * Returns the loaded credentials, or NULL with err naming the file and
 * line (never a hash). */
struct auth *auth_load(const char *users_file, const char *digest_file, const char *realm,
		       int methods, char *err, size_t errlen);
void auth_free(struct auth *a); /* NULL is fine */

enum auth_result {
	AUTH_OK = 0,      /* valid credentials */
	AUTH_MISSING = 1, /* no Authorization header */
	AUTH_FAILED = 2,  /* wrong, unknown, malformed or of a method not enabled */
	AUTH_STALE = 3,   /* a right Digest answer to an expired nonce */
};

/* Checks the Authorization header of one request (NULL when absent) for
 * the HTTP `method` ("POST") and request target `uri` as the request line
 * gave it. `user` receives the user name the client claimed, made safe
 * for a log line ("" when none); `why` a reason for the log, never a
 * password. A failure takes as long whether the user exists or not: a
 * Basic check hashes the password once per hash setting (method and cost)
 * in users_file, whoever it names, and a Digest check computes the answer
 * for an unknown user too. A successful Basic check is remembered for a
 * few minutes (as a keyed hash) so that keep-alive clients do not pay for
 * the slow hash on every request. Thread-safe. Returns enum auth_result. */
int auth_check(struct auth *a, const char *authorization, const char *method, const char *uri,
	       char *user, size_t userlen, char *why, size_t whylen);

/* Hands each WWW-Authenticate value of a 401 to emit(arg, value), strongest
 * first: a Digest challenge with a fresh nonce (SHA-256, qop auth, stale
 * when `stale`), then Basic. Stops at and returns the first non-zero
 * return of emit; 0 otherwise. */
int auth_challenges(struct auth *a, int stale, int (*emit)(void *arg, const char *value),
		    void *arg);

/* 1 when `password` matches the crypt(3) `hash` (compared in constant
 * time), else 0. */
int auth_crypt_verify(const char *password, const char *hash);

/* ---- asset.c: turning what the WFM sends into what apubid touches ---- */

/* Validates a SourceAssetUrl (already trimmed) against the configuration:
 * it must be an absolute URL or an absolute path ("/srv/ingest/a.ts",
 * taken as file://), its scheme one of file, ftp, ftps, sftp, http, https,
 * and it must fall under (or be) one of [source] allow (userinfo ignored,
 * an absent port is the scheme's default). ".." segments are refused. A
 * file source must exist, and resolve (symbolic links followed) under an
 * allowed prefix: *local_path receives its absolute local path (without a
 * trailing '/'), and *is_dir whether it is a directory (a trailing '/' in
 * the URL, or an existing directory). A remote source is not looked up (the
 * worker finds out): it must name a host and a path, *is_dir is 1 when the
 * URL ends in '/', and *local_path receives the decoded, normalised URL
 * path without a trailing '/' ("/repository/movie.ts"), so callers can take
 * its basename. A directory over http(s) is refused (a package there is
 * named by its manifest: asset_package). Returns 0, or -1 with
 * err set to a sentence fit for a client fault (credentials masked), e.g.
 * "source asset does not exist: /srv/ingest/a.ts". */
int asset_source(const struct config *c, const char *src, char **local_path, int *is_dir,
		 char *err, size_t errlen);

/* 1 when a SourceAssetUrl names an HLS or DASH manifest on an HTTP(S)
 * origin (its path ends in .m3u8 or .mpd, any case): with a directory
 * DestinationAsset it stands for the whole package, which the worker
 * plans from the manifest (xfer_http.c). 0 otherwise. */
int asset_package(const char *src);

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
	int64_t next_attempt_ms;  /* when a task waiting to retry may run again */
	int64_t first_started_ms; /* the first attempt's start, for the task timeout */
	int64_t bytes_total, bytes_done;
	int files_total, files_done;
	int64_t seq;              /* acceptance order, newest highest: the order
				   * tasks on one destination run in (an
				   * operator's retry gives a new one) */
	int attempt_base;         /* attempts made before an operator's retry:
				   * the retry budget counts from here */
	int cancel_requested;     /* an operator asked a running task to stop */
	int notify_state;         /* enum notify_state */
	int notify_attempts;      /* delivery attempts made */
	int64_t notify_next_ms;   /* when the next delivery may be tried */
	int64_t notify_ms;        /* when it was delivered (or given up) */
	char *notify_error;       /* why the last delivery failed */
	/* A scripted outcome ([staging] rule) chosen when the task was
	 * accepted, copied onto the task so that reloading the rules never
	 * changes a task already accepted. NULL rule: the task runs for real. */
	char *rule;               /* the rule's name */
	char *rule_fail;          /* end FAILED with this reason instead of running */
	char *rule_result;        /* on success answer this DestinationAsset ("" allowed) */
	int rule_polls;           /* GetTaskStatus answers IN_PROGRESS this many more
				   * times whatever the state; -1: for ever */
};

/* Delivery of a final task's view to [notify] url. */
enum notify_state {
	NOTIFY_NONE = 0,      /* no notification (none configured, or not final) */
	NOTIFY_PENDING = 1,   /* to be delivered (again) at notify_next_ms */
	NOTIFY_DELIVERED = 2,
	NOTIFY_FAILED = 3,    /* every attempt failed */
};
/* "none", "pending", "delivered", "failed". */
const char *task_notify_name(int notify_state);
/* The state named ("queued" ... "cancelled"), or -1. */
int task_state_parse(const char *name);
/* TASK_LOAD or TASK_PURGE for "load" or "purge", or -1. */
int task_kind_parse(const char *name);

/* One change of a task's state, recorded by the store itself. */
struct task_event {
	int64_t at_ms;
	int state;     /* the state entered */
	char *detail;  /* "accepted", "attempt 2", the reason of a retry or failure,
			* the result of a success, or NULL */
};
void task_event_free_all(struct task_event *ev, int n);

/* One attempt a worker made. */
struct attempt {
	int n;            /* 1, 2, ... (counting across operator retries) */
	int64_t started_ms, ended_ms;
	char *error;      /* NULL: the attempt succeeded */
};
void attempt_free_all(struct attempt *a, int n);
/* Frees every task of an array from store_list, and the array. */
void task_free_all(struct task *t, int n);

/* One file (or directory) of a load, in transfer order. */
enum item_state { ITEM_PENDING = 0, ITEM_DONE = 1, ITEM_FAILED = 2 };
struct item {
	int seq;
	char *path;    /* relative to the asset, "" for a single-file asset */
	int is_dir;
	int64_t size;  /* -1 when unknown */
	int state;     /* enum item_state */
	char *sha256;  /* lower-case hex, once done */
	char *error;   /* the last error of this file */
	char *version; /* the source version its copy was last started from
			* (xfer.c's text), or NULL */
};
void item_free_all(struct item *items, int n);

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
 * queued (interrupted) | cancelled; retry -> running | cancelled; failed and
 * cancelled -> queued (an operator's retry); succeeded goes nowhere. */
int task_can_move(int from, int to);
/* Frees the strings of *t and zeroes it. */
void task_clear(struct task *t);

/* ---- rules.c: scripted outcomes for staging ------------------------- */

/* Which submissions a rule matches. */
#define RULE_LOAD 1
#define RULE_PURGE 2

/* One [staging] rule: `rule = name=N op=LoadAsset|PurgeAsset|* [dest=GLOB]
 * [src=GLOB] OUTCOME...`, each token key=value, values optionally in
 * double quotes (with \" and \\ inside). Globs are fnmatch(3) patterns
 * (no FNM_PATHNAME: '*' crosses '/') matched against DestinationAsset and
 * SourceAssetUrl as received (trimmed); an absent pattern matches
 * anything, and src= never matches a PurgeAsset. Outcomes, combinable:
 *   delay=DUR        the task is not started before DUR after acceptance
 *                    (30s, 5m, 1h; "forever": never started)
 *   polls=N          the first N GetTaskStatus answers are IN_PROGRESS,
 *                    whatever the task's state ("forever": all of them)
 *   fail=TEXT        the task ends FAILED with TEXT as its reason, without
 *                    touching any file
 *   fault=STATUS     the submission is refused: a SOAP fault with HTTP
 *                    STATUS (400..599), nothing is recorded; faultstring=
 *                    TEXT gives its message (default "refused by rule N")
 *   destination=TEXT a successful load answers TEXT as DestinationAsset
 *                    (may be empty, to break the contract on purpose)
 * Without any outcome a rule only tags the tasks it matches. */
struct rule {
	char *name;
	int ops;                /* RULE_LOAD | RULE_PURGE */
	char *dest_glob, *src_glob; /* NULL: any */
	int64_t delay_ms;       /* 0: none, -1: for ever */
	int polls;              /* 0: none, -1: for ever */
	char *fail;             /* NULL: none */
	int fault_status;       /* 0: none */
	char *faultstring;      /* NULL: the default */
	char *destination;      /* NULL: none */
};
/* The rules in file order (the first that matches a submission wins). */
struct rules {
	struct rule *v;
	int n;
};
/* Parses one `rule` value; 0, or -1 with err ("rule 2: unknown key
 * \"dst\"", "rule slow: polls is not a number"). Names are unique (the
 * caller checks across lines with rules_add). */
int rules_add(struct rules **rs, const char *line, char *err, size_t errlen);
void rules_free(struct rules *rs); /* NULL is fine */
/* The first rule matching a submission (op RULE_LOAD or RULE_PURGE; src
 * NULL for a purge), or NULL. */
const struct rule *rules_match(const struct rules *rs, int op, const char *src, const char *dst);
/* 1 when both sets hold the same rules in the same order (NULL is the
 * empty set); for config_reload. */
int rules_same(const struct rules *a, const struct rules *b);
/* A deep copy (NULL for NULL), for rules_set while the configuration
 * keeps its own. */
struct rules *rules_copy(const struct rules *rs);
/* The live rules: rules_current() returns them with a reference held,
 * rules_release() drops it; rules_set() (SIGHUP) installs new ones (taking
 * ownership) and frees the old ones once no reference is left. */
const struct rules *rules_current(void);
void rules_release(const struct rules *rs);
void rules_set(struct rules *rs);

/* ---- order.c: the ordering rule, one order per destination ------------ */

/* The key of a destination (a relative path as asset_destination makes
 * it): "/" + rel + "/", or "/" for the root itself. Two destinations
 * overlap (the same path, or one a directory holding the other) exactly
 * when one key is a prefix of the other. malloc'ed. */
char *order_key(const char *rel);
/* Counts held tasks in one pass: feed the keys of the unfinished tasks in
 * acceptance order; order_held_next returns 1 when the key overlaps one fed
 * before it. */
struct order_held;
struct order_held *order_held_new(void);
int order_held_next(struct order_held *h, const char *key, size_t len);
void order_held_free(struct order_held *h); /* NULL is fine */

/* ---- store.c, store_sqlite.c, store_pg.c: the tasks ----------------- */

/* A store handle is one connection: use one per thread. The backend is
 * SQLite (`[store] path`, one daemon per file) or PostgreSQL (`[store]
 * url`, several daemons sharing one task table); the schema of each lives
 * in db/<backend>/ and is applied by store_open when the store is new or
 * older. */
struct store;

struct store *store_open(const struct config *c, char *err, size_t errlen);
void store_close(struct store *s); /* NULL is fine */
/* The store in messages: the SQLite path, or the PostgreSQL URL with its
 * password masked. */
const char *store_name(const struct store *s);
/* 1 when other apubid nodes accept and finish tasks in the same store
 * (PostgreSQL), so that counts kept by this process alone drift. */
int store_shared(const struct store *s);
/* A connection commits durably each time (full, the default), or lets its
 * last commits be lost if the machine loses power, never torn (SQLite WAL
 * with synchronous=NORMAL; PostgreSQL synchronous_commit=off). The workers'
 * connections use the latter for the steps of a task already accepted: a
 * step lost to a power cut is done again, since a task found running at
 * start-up is queued again and every step can be repeated. Accepting a task
 * always commits durably. */
int store_set_durable(struct store *s, int full);
/* Commits a new task durably before returning 0; -1 when the commit
 * failed, or when the SQLite file at the store's path is no longer the one
 * s opened (a commit into a deleted file is not durable). After
 * store_start, the task goes through the group committer (s then only
 * serves that check, and may be NULL to skip it): concurrent callers
 * share one transaction and one flush, and each returns once the commit
 * holding its task is done. */
int store_insert(struct store *s, const struct task *t);
/* Starts and stops what the daemon's store does in the background: the
 * group committer, with its own connection, and for PostgreSQL the
 * renewal of this node's leases and the wake-ups from other nodes
 * (`wake` is called when another node committed work). Stop only when no
 * store_insert can still be called. */
int store_start(const struct config *c, void (*wake)(void), char *err, size_t errlen);
void store_stop(void);
/* 0 and *t filled (caller task_clear's it), 1 when no such task, -1 on error. */
int store_get(struct store *s, const char *id, struct task *t);
/* Atomically moves the oldest queued task, or retry task whose time has
 * come, to running, bumps its attempts, stamps its first start, and fills
 * *t. 0 when a task was claimed, 1 when none waits, -1 on error.
 * The ordering rule: a task is not claimed while an unfinished task
 * accepted before it (lower seq: queued, delayed by a rule, running, or
 * waiting to retry) has an overlapping destination: the same path, or one
 * path a directory holding the other ("show" and "show/v1/a.ts" overlap,
 * "show" and "show2" do not). Tasks on unrelated destinations are claimed
 * side by side; on one destination they run one after another, in the
 * order they were accepted. The rule is one statement of the store, so it
 * holds for every process sharing it. */
int store_claim(struct store *s, struct task *t);
/* Ends a running task: state TS_SUCCEEDED, TS_FAILED or TS_CANCELLED, with
 * the result, reason and note (each may be NULL). With `notify`, its
 * notification becomes pending (due now) in the same transaction. */
int store_finish(struct store *s, const char *id, int state, const char *result,
		 const char *reason, const char *note, int notify);
/* Puts a running task back to queued (a worker stopped at a safe point). */
int store_requeue(struct store *s, const char *id);
/* At start-up: the tasks left running by a crash go back to queued
 * (tasks waiting to retry keep waiting), or to cancelled when an operator
 * asked it to stop. On SQLite that is every running task (one daemon owns
 * the file); on PostgreSQL only those of a node that is gone: an earlier
 * run of apubid on this host, or any node whose lease has expired, never a
 * live node's. Returns how many went back to queued, or -1. */
int store_recover(struct store *s);
/* Tasks not yet final, or -1. */
int64_t store_count_active(struct store *s);
/* Deletes final tasks last updated before `before_ms` (with their items
 * and attempts); returns how many. */
int64_t store_prune(struct store *s, int64_t before_ms);
/* Running -> retry: the task runs again once `next_ms` has passed; the
 * reason says why it is waiting. */
int store_retry(struct store *s, const char *id, int64_t next_ms, const char *reason);
/* Records the end of attempt `n` with its error (NULL: it succeeded). */
int store_attempt(struct store *s, const char *id, int n, int64_t started_ms, const char *error);
/* The items of a task in order: 0 and a malloc'ed array (item_free_all),
 * *n = 0 when none were recorded yet; -1 on error. */
int store_items(struct store *s, const char *id, struct item **items, int *n);
/* Replaces the items of a task and sets its totals, in one transaction. */
int store_set_items(struct store *s, const char *id, const struct item *items, int n);
/* Marks one item done (size, sha256) or failed (error), and updates the
 * task's files_done. */
int store_item_done(struct store *s, const char *id, int seq, int64_t size, const char *sha256);
int store_item_failed(struct store *s, const char *id, int seq, const char *error);
/* Records the source version an item's copy starts from (NULL: unknown),
 * before the first byte of that copy is written. */
int store_item_version(struct store *s, const char *id, int seq, const char *version);
/* Progress of a running task (callers throttle: not once per buffer). */
int store_progress(struct store *s, const char *id, int64_t bytes_done);
/* For a queued or retry task held by the ordering rule: 0 and the id of
 * the earliest unfinished task ahead of it on an overlapping destination
 * in `out`; 1 when nothing holds it (or it is not waiting), -1 on error. */
int store_waiting_for(struct store *s, const char *id, char out[TASKID_LEN]);
/* How many queued or retry tasks the ordering rule holds, or -1. */
int64_t store_count_held(struct store *s);
/* A task shaped by a rule with polls: uses up one scripted IN_PROGRESS
 * answer. Returns 1 when the caller must answer IN_PROGRESS (polls were
 * left, or -1), 0 when none are left, -1 on error. */
int store_take_poll(struct store *s, const char *id);

/* Which tasks store_list returns: newest first (highest seq first). */
struct task_filter {
	int state;           /* enum task_state, or -1 for any */
	int kind;            /* enum task_kind, or 0 for any */
	int64_t min_age_ms;  /* created at least this long ago, 0: any */
	int64_t max_age_ms;  /* created at most this long ago, 0: any */
	int64_t before_seq;  /* paging: only tasks with seq < this, 0: from the newest */
	int limit;           /* at most this many (1..1000; 0 means 100) */
};
/* 0 and a malloc'ed array of *n tasks (task_free_all), -1 on error. */
int store_list(struct store *s, const struct task_filter *f, struct task **tasks, int *n);
/* A task's state history, oldest first; its attempts, first first. 0 and
 * malloc'ed arrays (empty for an unknown id), -1 on error. */
int store_events(struct store *s, const char *id, struct task_event **ev, int *n);
int store_attempts(struct store *s, const char *id, struct attempt **a, int *n);
/* How many tasks are in each state (indexed by enum task_state, 6 slots). */
int store_count_by_state(struct store *s, int64_t counts[6]);

/* An operator's retry: a failed or cancelled task goes back to queued with
 * a fresh retry budget and task timeout (its attempts and items stay on
 * record; a load starts over). The retry counts as an acceptance: the task
 * gets a new seq and so goes behind every task accepted before it. 0 done,
 * 1 no such task, -1 with err (a task
 * in another state: "task X is running; only failed or cancelled tasks can
 * be retried"). */
int store_admin_retry(struct store *s, const char *id, char *err, size_t errlen);
/* An operator's cancel: a queued or retry task becomes cancelled at once
 * with `reason` (its notification pending when `notify`); a running task
 * is marked cancel_requested, and the daemon that runs it stops it within
 * about a second and records it cancelled (*was_running = 1). 0 done, 1 no
 * such task, -1 with err (a final task cannot be cancelled). */
int store_admin_cancel(struct store *s, const char *id, const char *reason, int notify,
		       int *was_running, char *err, size_t errlen);
/* Running tasks this node must stop: up to `max` ids; returns how many,
 * or -1. lost[i] (lost may be NULL) tells why ids[i] must stop: 0 for an
 * operator's cancel, 1 for a task whose lease another node has taken
 * over (a shared store only), which that node now runs: its stage is that
 * node's to resume, and nothing this node writes about it is recorded. */
int store_cancel_requests(struct store *s, char (*ids)[TASKID_LEN], int *lost, int max);
/* Final tasks whose notification is due (pending, next_ms <= now), oldest
 * first: up to `max` ids; returns how many, or -1. */
int store_notify_due(struct store *s, int64_t now_ms, char (*ids)[TASKID_LEN], int max);
/* Records a delivery attempt: state NOTIFY_DELIVERED, NOTIFY_FAILED, or
 * NOTIFY_PENDING again at next_ms; `error` NULL after a delivery. */
int store_notify_result(struct store *s, const char *id, int state, int attempts,
			int64_t next_ms, const char *error);
/* Whether the store can take a write: the file and its directory are
 * writable (a file without any write permission bit counts as read-only,
 * even for root), and a small write transaction commits. 0, or -1 with
 * why. */
int store_health(struct store *s, char *why, size_t whylen);
/* Whether new tasks may be committed, cheaply enough to ask on every
 * submission (one stat, no write): the file at the store's path is still
 * the one this connection opened (not deleted or replaced: same device and
 * inode), and the last write any connection of this process made to the
 * store did not fail for a reason of the store's own (a full disk, an I/O
 * error, a read-only file, a lock held too long). That flag is set by the
 * failing write and cleared by the next write that commits, store_health's
 * included. 0, or -1 with why. */
int store_check(struct store *s, char *why, size_t whylen);

/* ---- lock.c: one daemon per store -------------------------------------- */

/* Takes the exclusive lock on `<store_path>.lock` (created if absent,
 * the pid written into it) and holds it until lock_release or the end of
 * the process. Refused when another process holds it: -1 and err names the
 * store, the holder's pid and the lock file ("store var/apubid.db is in use
 * by apubid pid 1234 (lock var/apubid.db.lock)"). */
int lock_take(const char *store_path, char *err, size_t errlen);
void lock_release(void);

/* ---- manifest.c, manifest_hls.c, manifest_dash.c: HLS and DASH plans -- */

/* What a fetch and a plan end with: MANIFEST_TRANSIENT is worth another
 * attempt later (a 5xx, a cut connection), MANIFEST_PERMANENT is not (a
 * 404, a manifest refused). */
enum manifest_rc { MANIFEST_OK = 0, MANIFEST_TRANSIENT = -1, MANIFEST_PERMANENT = -2 };

/* Limits against a hostile manifest: one manifest's bytes, all manifests'
 * bytes of a plan, files in a plan, references in a plan (a file named
 * again, as byte ranges do, counts each time), a reference's length (and
 * the length of the URL it resolves to). */
#define MANIFEST_MAX_BYTES (16 * 1024 * 1024)
#define MANIFEST_MAX_TOTAL (64 * 1024 * 1024)
#define MANIFEST_MAX_ITEMS 100000
#define MANIFEST_MAX_REFS 400000
#define MANIFEST_MAX_URL 8192

/* Fetches the manifest at `url` (canonical, query included): on
 * MANIFEST_OK, *body is a malloc'ed buffer of *len bytes the planner then
 * owns (it may stop reading past MANIFEST_MAX_BYTES: the planner refuses a
 * larger one anyway); otherwise MANIFEST_TRANSIENT or MANIFEST_PERMANENT
 * with err set and *body left NULL. */
typedef int (*manifest_fetch_fn)(void *arg, const char *url, char **body, size_t *len, char *err,
				 size_t errlen);

/* One file of a package. */
struct manifest_item {
	char *path;      /* relative to the top manifest's directory, decoded,
			  * without query: "720p/seg_001.ts" */
	char *url;       /* the absolute URL to fetch, canonical */
	int is_manifest; /* a playlist or an MPD: publish after the media */
	char *body;      /* a manifest's bytes as planned (publish these, not a
			  * second fetch), or NULL for media */
	size_t len;
};

/* Plans the package whose top manifest is at `url` (an absolute http(s)
 * URL; .m3u8/.m3u is HLS, .mpd is DASH, else the bytes decide), fetching
 * every manifest through fetch(arg, ...). On MANIFEST_OK, *items is the
 * list of files (free with manifest_free_items), each named once, media
 * first, nested manifests next, the top manifest last. Otherwise *items is
 * NULL, *n 0, and err names the manifest and the reference or rule at
 * fault (passwords masked): a reference leaving the top's origin or
 * directory, a live presentation, a limit, a fetch's own reason. */
int manifest_plan(const char *url, manifest_fetch_fn fetch, void *arg,
		  struct manifest_item **items, int *n, char *err, size_t errlen);
void manifest_free_items(struct manifest_item *items, int n);

/* Between manifest.c and its backends. A plan in progress: */
struct manifest_ctx;
/* What an item is, in publishing order. */
enum manifest_kind { MANIFEST_MEDIA, MANIFEST_NESTED, MANIFEST_TOP };
/* A format: its extensions, a test of its first bytes, and the walk that
 * adds every file of a top manifest at `url` with manifest_add. */
struct manifest_format {
	const char *name;
	const char *const *extensions;
	int (*sniff)(const char *body, size_t len);
	int (*plan)(struct manifest_ctx *m, const char *url, const char *body, size_t len);
};
extern const struct manifest_format manifest_hls, manifest_dash;
/* Resolves `ref` against `base`, checks it (origin, directory, name) and
 * adds it unless already there. *url (when not NULL) points at the item's
 * canonical URL, valid for the plan's lifetime; *added (when not NULL) is
 * 1 for a new item. `where` starts the failure's reason ("manifest X line
 * 12"). Returns 0, or -1 with the plan failed. */
int manifest_add(struct manifest_ctx *m, const char *base, const char *ref, enum manifest_kind kind,
		 const char *where, const char **url, int *added);
/* RFC 3986 5.2.2: the URL of reference `ref` seen from `base` (an
 * absolute URL), dot segments removed, fragment dropped; malloc'ed, or NULL
 * when `base` has no scheme. Nothing is checked: manifest_add does. */
char *manifest_resolve(const char *base, const char *ref);
/* Fetches a nested manifest within the limits; 0, or -1 with the plan
 * failed. */
int manifest_fetch(struct manifest_ctx *m, const char *url, char **body, size_t *len);
/* Hands a fetched manifest's bytes to the item of `url` (freed if none). */
void manifest_keep(struct manifest_ctx *m, const char *url, char *body, size_t len);
/* Fails the plan with a reason (the first failure wins); returns -1. */
int manifest_fail(struct manifest_ctx *m, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- xfer.c, xfer_local.c: carrying out a task ------------------------ */

/* XFER_CHANGED: the source changed while a file was copied; transient
 * like XFER_RETRY (the file is copied again from its start), and the
 * reason starts "source changed during the copy: ". */
enum xfer_result {
	XFER_OK = 0,
	XFER_FAILED = -1,
	XFER_STOPPED = 1,
	XFER_RETRY = 2,
	XFER_CHANGED = 3,
};

/* What tells one version of a source file from another, as far as its
 * protocol shows it: a local file's size, times, device and inode from
 * stat(2); SFTP's size and modification time; FTP's SIZE and MDTM; an HTTP
 * answer's Content-Length, ETag and Last-Modified. `known` says which
 * fields hold a value (XV_ bits). */
#define XV_SIZE 1
#define XV_MTIME 2     /* mtime_ns */
#define XV_CTIME 4     /* ctime_ns: a local file's status change time */
#define XV_INODE 8     /* dev and ino: which local file the path names */
#define XV_ETAG 16
#define XV_MODIFIED 32 /* the Last-Modified text */
#define XV_GONE 64     /* the path names nothing any more */
struct xfer_version {
	unsigned known;
	int64_t size;
	int64_t mtime_ns, ctime_ns; /* nanoseconds since the epoch */
	uint64_t dev, ino;
	char etag[128];             /* as sent, quotes included */
	char modified[64];
};
/* Whether two versions of one file differ: 1 when a field both know
 * differs (or one is XV_GONE), with `what` naming each change the way a
 * reason does ("size 419430400 -> 471859200, modification time
 * 2026-11-22T12:00:00.123456789Z -> ..."); 0 when they agree. */
int xfer_version_diff(const struct xfer_version *before, const struct xfer_version *after,
		      char *what, size_t whatlen);
/* The version as one line of text for the store ("size=5 mtime=..."),
 * malloc'ed; equal versions give equal text. */
char *xfer_version_text(const struct xfer_version *v);

/* What a load tells the worker that runs it, which alone writes the task
 * store (pool.c): the transfer itself never touches the store. Calls come
 * from one thread at a time (a load with several files in flight
 * serialises them). The calls that return int answer 0 once the fact is
 * recorded and -1 when the worker gave up waiting for the store because
 * it is being stopped; the load then ends XFER_STOPPED. */
struct xfer_report {
	void *arg;
	/* The items an earlier attempt recorded (none: *n 0); -1 when they
	 * cannot be read. *v is freed by the caller (item_free_all). */
	int (*items)(void *arg, struct item **v, int *n);
	/* The task's items replaced by v (the plan, or every item pending
	 * again when the stage an earlier attempt filled is gone). */
	int (*set_items)(void *arg, const struct item *v, int n);
	/* The source version a file's copy starts from (NULL: none kept). */
	int (*item_version)(void *arg, int seq, const char *version);
	/* A file is in the stage with `size` bytes of this SHA-256. */
	int (*item_done)(void *arg, int seq, int64_t size, const char *sha256);
	/* A file's copy failed; best effort, like progress. */
	void (*item_failed)(void *arg, int seq, const char *error);
	/* Bytes copied so far; `last` once the asset is in place, which the
	 * worker then tries harder to record. */
	void (*progress)(void *arg, int64_t bytes, int last);
};

/* Carries out a load: lists the source (a local path or a server), records
 * one item per file, and copies every item not yet done into a staging
 * area beside the destination (local root or server), manifests (.m3u8,
 * .mpd) last; then puts the asset in place in one rename, replacing what
 * was there. A retry of the same task (XFER_RETRY earlier) resumes: done
 * items are skipped, a partial file continues where the protocol allows.
 * Each file's size is checked and its SHA-256, computed while streaming,
 * is stored on its item. A file whose source changed during its copy (its
 * version, struct xfer_version, differs after the copy from before it) is
 * not kept: XFER_CHANGED, and the next attempt copies it from the start. `stop` is polled during transfers: XFER_STOPPED
 * keeps the stage for a later resume. XFER_RETRY means a transient error
 * (worth another attempt), XFER_FAILED a permanent one; err then names the
 * file, the server (credentials masked) and the protocol's message. */
int xfer_load(const struct config *c, const struct task *t, const struct xfer_report *r,
	      volatile sig_atomic_t *stop, char *err, size_t errlen);
/* Removes what a load left in its staging area (a task that failed
 * because its time ran out, while its stage was kept for a resume). */
void xfer_abandon(const struct config *c, const struct task *t);
/* Removes t->dest_path (file or whole directory) under the root, local or
 * remote; a directory is first renamed aside so it vanishes at once. An
 * absent asset is not a failure: *note receives a malloc'ed remark. */
int xfer_purge(const struct config *c, const struct task *t, volatile sig_atomic_t *stop,
	       char **note, char *err, size_t errlen);

/* The pieces of the local-filesystem end (xfer_local.c; xfer_local_end in
 * xfer.h is made of them, and the unit tests call them). `root` is the
 * absolute destination root directory, `src` an absolute local path. All
 * access below `root` walks one component at a time without following
 * symbolic links, so nothing is written or removed outside it. */
int xfer_local_purge(const char *root, const char *rel, const char *taskid, char **note,
		    char *err, size_t errlen);

/* Every function of the local end returns XFER_OK or XFER_FAILED, with
 * err set on failure to a sentence for a task's reason. Paths inside a
 * package ("sub/a.ts") are normalised: no "..", ".", empty segment, or
 * leading or trailing '/'; anything else is refused. */

/* A local package being assembled below the destination root, under
 * ".NAME.apubid-TASKID.stage" (a directory) or ".NAME.apubid-TASKID.tmp"
 * (a single file) beside its final name. One thread at a time. */
struct xfer_local_stage;
/* Prepares publishing `rel` (normalised relative path) below `root`: walks
 * and creates the parent directories (never through a symbolic link) and,
 * for a directory asset (is_dir), the staging directory. With `resume`, an
 * existing staging directory or temporary file of the same task is kept
 * (a retry continues where the last attempt stopped); without, it is
 * removed first. Side names a retry cannot continue in (an interrupted
 * commit's .swap and .old, a stage of the other kind) are always removed.
 * *out is freed by exactly one of xfer_local_stage_close and
 * xfer_local_stage_discard. */
int xfer_local_stage_open(const char *root, const char *rel, const char *taskid, int is_dir,
			 int resume, struct xfer_local_stage **out, char *err, size_t errlen);
/* 1 when xfer_local_stage_open (with resume) found an earlier attempt's
 * stage to continue in, 0 when the stage is new: then nothing an earlier
 * attempt did is there any more (it was committed, or lost), and every item
 * must be done again. */
int xfer_local_stage_found(const struct xfer_local_stage *st);
/* Opens for writing one file of the asset, creating missing directories
 * inside the stage: `path` is "" for a single-file asset, else the file's
 * relative path inside the package. A symbolic link on the way or at the
 * file fails; a file that also has a name elsewhere (a hard link) is
 * replaced by a fresh one. The file is not truncated: *size receives its
 * current size, the offset a resumed transfer continues from; the returned
 * fd is positioned at that offset (O_RDWR|O_CLOEXEC, blocking, no
 * O_APPEND). The caller closes the fd after xfer_local_stage_done_file (or
 * after a failure, without it). */
int xfer_local_stage_file(struct xfer_local_stage *st, const char *path, int *fd, int64_t *size,
			 char *err, size_t errlen);
/* fsyncs a finished file (the caller then closes it). */
int xfer_local_stage_done_file(struct xfer_local_stage *st, int fd, char *err, size_t errlen);
/* Creates an (empty) directory inside the package, and any missing parent;
 * an existing directory is fine. */
int xfer_local_stage_mkdir(struct xfer_local_stage *st, const char *path, char *err,
			  size_t errlen);
/* Makes a package's stage hold exactly the plan: removes every file,
 * directory, link or other entry that none of `items` names (a stage an
 * attempt left can hold files of another plan: an earlier listing of a
 * changed source, or anything put there by hand). A single file's stage
 * is the one file. */
int xfer_local_stage_prune(struct xfer_local_stage *st, const struct item *items, int nitems,
			   char *err, size_t errlen);
/* Puts the asset in place: fsyncs the stage's directories (refusing a
 * stage that holds a symbolic link or a special file), renames the stage
 * to the final name (or, over a directory with content or another type,
 * moves it to ".NAME.apubid-TASKID.swap" and exchanges it with the
 * existing asset, which is then removed), and fsyncs the parent. After it
 * the stage is gone; a failure before the rename leaves the stage as it
 * was. The handle still needs xfer_local_stage_close or _discard. */
int xfer_local_stage_commit(struct xfer_local_stage *st, char *err, size_t errlen);
/* Removes whatever the stage holds (a permanent failure, or a local copy
 * that will be redone from scratch) and frees the handle; after a
 * successful commit it only frees. Use it instead of
 * xfer_local_stage_close, not before it. NULL is fine. */
void xfer_local_stage_discard(struct xfer_local_stage *st);
/* XFER_FAILED ("source contains the destination: ...") when the local
 * source directory `src` holds the stage of a directory asset. */
int xfer_local_stage_check_source(const struct xfer_local_stage *st, const char *src, char *err,
				 size_t errlen);
/* Frees the handle (NULL is fine); what the stage holds stays for a later
 * resume. */
void xfer_local_stage_close(struct xfer_local_stage *st);

/* Lists a local source (an absolute path), entries as a server's listing
 * gives them (struct xfer_entry below) but each named by its path
 * relative to the source: for a file, one entry named "" with is_dir 0;
 * for a directory, every file and directory below it (none for an empty
 * one), depth first in bytewise name order, directories before their
 * content, a directory's size 0. A symbolic link or a special file
 * anywhere fails the listing ("source contains a symbolic link: sub/x",
 * "source asset is a symbolic link: /in/x", "source contains a special
 * file: sub/p", "source asset does not exist: /in/x"). *entries is
 * malloc'ed (free with xfer_curl_free_entries); on failure it is NULL and
 * *n 0. */
struct xfer_entry;
int xfer_local_list(const char *src, struct xfer_entry **entries, int *n, char *err,
		    size_t errlen);
/* Opens one source file for reading (path "" for a single-file source),
 * walking from `src` with O_NOFOLLOW on every component; *size = its size.
 * A directory, a symbolic link or a special file is refused. The caller
 * closes *fd. */
int xfer_local_open_source(const char *src, const char *path, int *fd, int64_t *size,
			  char *err, size_t errlen);
/* The version of an open source file (fstat), or with fd < 0 of the file
 * `path` names inside `src` now (lstat: a link there is another file, a
 * missing one is XV_GONE). Returns XFER_OK or XFER_FAILED with err. */
int xfer_local_version(const char *src, const char *path, int fd, struct xfer_version *v,
		      char *err, size_t errlen);

/* ---- xfer_fd.c: work on open descriptors ------------------------------ */

/* The reason of a failure, one sentence into err (NULL allowed): returns
 * XFER_FAILED. xfer_clear_err empties err. */
int xfer_fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void xfer_clear_err(char *err, size_t errlen);

/* Copies `len` bytes from `in` at `in_off` to `out` at `out_off` with
 * positional calls (neither descriptor's offset moves), with
 * copy_file_range where it works and pread/pwrite otherwise, polling *stop
 * (may be NULL) before every 16 MiB, the first included. When on_data is
 * not NULL it sees every byte, in order, so the caller can hash: below
 * 8 MiB the bytes pass through us and on_data sees each chunk read; from
 * 8 MiB on, the kernel copies while a second thread reads the destination
 * back behind the copy and calls on_data (so on_data must not share state
 * with anything the copying thread touches meanwhile). A non-zero return
 * fails the copy. Returns XFER_OK, XFER_FAILED or XFER_STOPPED. err names
 * no file (the function only has descriptors): "read error at byte N:
 * ...", "write error at byte N: ...", "the source ended at byte N, M bytes
 * short"; callers add which files. */
int xfer_fd_copy(int in, int64_t in_off, int out, int64_t out_off, int64_t len,
		int (*on_data)(void *arg, const char *buf, size_t n), void *arg,
		volatile sig_atomic_t *stop, char *err, size_t errlen);

/* 1 when every byte of the open partial file fd (a stage's, a spool's)
 * was written since the machine last started, so that a resume may
 * continue after them; 0 when they may not be on the disk (written before
 * a crash or a power cut, or unknown), and the file must be copied again
 * from its first byte. Marks the file as written in this boot either
 * way. */
int xfer_fd_claim(int fd);
/* Truncates an open partial file to `size` and positions the fd there (when
 * a resumed transfer has to start again from 0 or from a known good
 * offset). */
int xfer_fd_truncate(int fd, int64_t size, char *err, size_t errlen);
/* Takes the boot mark off a finished file. */
void xfer_fd_unclaim(int fd);

/* ---- xfer_curl.c: remote servers through libcurl ---------------------- */
/* What differs between protocols (stat, mkdir, rename, remove) is in one
 * file per protocol behind struct xfer_ops (xfer.h: xfer_ftp.c,
 * xfer_sftp.c, xfer_dav.c, xfer_http.c); the calls below hand over to the
 * session's table where they must. */

/* How a remote operation ended; the caller decides on retries. */
enum xfer_status {
	XS_OK = 0,
	XS_TRANSIENT = 1, /* worth another attempt: refused, reset, timeout, FTP 4xx, HTTP 5xx, short transfer */
	XS_PERMANENT = 2, /* not worth retrying: login refused, permission, 550, 4xx */
	XS_NOTFOUND = 3,  /* the path does not exist (FTP 550 on RETR/SIZE, HTTP 404, SFTP no such file) */
	XS_STOPPED = 4,   /* *stop became non-zero */
	XS_CHANGED = 5,   /* the source is not the version expected; err says
			   * what changed ("ETag \"a\" -> \"b\""), nothing else */
};

/* Options for a remote session, filled by xfer.c from the configuration. */
struct xfer_curl_opts {
	const char *ca_file;          /* CA bundle for FTPS/HTTPS peers, NULL: system store */
	const char *ssh_private_key;  /* SFTP key authentication */
	const char *ssh_public_key;
	const char *ssh_known_hosts;  /* NULL: host key not checked */
	int connect_timeout;          /* seconds */
	int stall_timeout;            /* seconds below 1 byte/s before a transfer is cut */
	volatile sig_atomic_t *stop;  /* polled during transfers */
	int refuse_private;           /* refuse loopback, private and link-local
				       * addresses (after DNS, data connections
				       * included): XS_PERMANENT */	/* The source rules a URL the session is asked to fetch must pass
	 * beside the one it was opened for (the files an HLS or DASH
	 * manifest names): 0 when allowed, -1 with err set; NULL: none. */
	int (*allow)(void *arg, const char *url, char *err, size_t errlen);
	void *allow_arg;
};

struct xfer_entry {
	char *name;    /* the entry's name within its directory (raw bytes, not encoded) */
	int is_dir;
	int64_t size;  /* -1 when unknown */
};

/* One session with one server: scheme://[user[:password]@]host[:port].
 * The connection is reused across calls (one login per session). All
 * `path` arguments are absolute server paths, raw (not percent-encoded);
 * a directory path ends in '/'. Functions return enum xfer_status; on
 * anything but XS_OK, err holds the protocol's own message with the server
 * named (credentials masked), e.g. "ftp://user:***@cdn:21/x.ts: 550 No such
 * file". Schemes: ftp, ftps (ftp with explicit TLS, AUTH TLS), sftp,
 * http, https (WebDAV for writes). */
struct xfer_curl;
/* Once in main, before any thread starts (libcurl's global set-up is not
 * thread-safe), and once at exit. */
int xfer_curl_global_init(char *err, size_t errlen);
void xfer_curl_global_cleanup(void);
/* A refused login (or certificate, or host key) is remembered: later calls
 * on the same session return the same error without contacting the server
 * again (no retry storm, no account lock-out). A non-zero return from an
 * on_data callback fails the call with XS_PERMANENT. A transfer is cut
 * (XS_TRANSIENT) when no byte has moved for stall_timeout seconds. */
struct xfer_curl *xfer_curl_open(const char *url, const struct xfer_curl_opts *o, char *err,
				 size_t errlen);
void xfer_curl_close(struct xfer_curl *x);
/* Lists a directory (not recursive). FTP and SFTP only; *entries is a
 * malloc'ed array of *n entries without "." and "..". */
int xfer_curl_list(struct xfer_curl *x, const char *dir, struct xfer_entry **entries, int *n,
		   char *err, size_t errlen);
void xfer_curl_free_entries(struct xfer_entry *e, int n);
/* Whether a path exists and what it is (size of a file, -1 if unknown). */
int xfer_curl_stat(struct xfer_curl *x, const char *path, int *is_dir, int64_t *size, char *err,
		   size_t errlen);
/* What the server says of a file now (HTTP: HEAD, its Content-Length,
 * ETag and Last-Modified; FTP: SIZE and MDTM; SFTP: size and modification
 * time). XS_NOTFOUND when it is not there. */
int xfer_curl_version(struct xfer_curl *x, const char *path, struct xfer_version *v, char *err,
		      size_t errlen);
/* Downloads `path` into `fd` from byte `offset` on, writing at the fd's
 * current position (resume: the caller positions it at `offset`); calls
 * on_data for every chunk written, so the caller hashes and counts. With
 * `expect` (NULL: none), an HTTP answer whose own ETag or Last-Modified
 * differs from it is refused before any byte is written: XS_CHANGED. */
int xfer_curl_get(struct xfer_curl *x, const char *path, int fd, int64_t offset,
		  const struct xfer_version *expect,
		  int (*on_data)(void *arg, const char *buf, size_t n), void *arg, char *err,
		  size_t errlen);
/* Uploads `size` bytes of `fd` to `path`, starting at byte `offset` of both
 * (resume where the protocol allows: FTP APPE, SFTP append; the server must
 * hold exactly `offset` bytes; WebDAV always starts at 0: pass 0). The fd
 * is read with pread from `offset`, its position does not matter. on_data
 * is called for every chunk read. Parent directories must exist. */
int xfer_curl_put(struct xfer_curl *x, const char *path, int fd, int64_t offset, int64_t size,
		  int (*on_data)(void *arg, const char *buf, size_t n), void *arg, char *err,
		  size_t errlen);
/* Size of a remote file (for resuming an upload), XS_NOTFOUND if absent. */
int xfer_curl_size(struct xfer_curl *x, const char *path, int64_t *size, char *err,
		   size_t errlen);
/* Creates one directory level; an existing directory is XS_OK. */
int xfer_curl_mkdir(struct xfer_curl *x, const char *dir, char *err, size_t errlen);
/* Renames `from` to `to` (files or directories), replacing a file at `to`
 * where the protocol can (FTP RNFR/RNTO, SFTP rename after removing a file
 * in the way, WebDAV MOVE with Overwrite: T). */
int xfer_curl_rename(struct xfer_curl *x, const char *from, const char *to, char *err,
		     size_t errlen);
/* Removes a file, or a directory tree (depth first; WebDAV: DELETE). An
 * absent path is XS_NOTFOUND. */
int xfer_curl_remove(struct xfer_curl *x, const char *path, int is_dir, char *err,
		     size_t errlen);

/* ---- persist.c: store writes a worker cannot drop --------------------- */

/* A write a worker tries again until the store takes it: the loop is
 *
 *	struct persist p = { .task = t->id, .what = "its final state" };
 *	while (store_finish(...) < 0)
 *		if (persist_wait(&p, stop) < 0)
 *			return -1;
 *	persist_done(&p);
 *
 * Start from zeros but for `task` and `what` (both kept, not copied). */
struct persist {
	const char *task;   /* the task's id, for the log */
	const char *what;   /* what is being recorded, e.g. "its final state (succeeded)" */
	int tries;          /* failed tries so far */
	int64_t delay_ms;   /* the next pause */
	int64_t since_ms;   /* monotonic time of the first failure */
};
/* After a failed try: logs the first failure only, then sleeps the
 * backoff (100 ms, doubling up to 5 s), polling *stop. 0: try again; -1:
 * *stop was raised (the caller gives up: the task stays as the store last
 * recorded it, and a task left running is queued again at the next
 * start). */
int persist_wait(struct persist *p, volatile sig_atomic_t *stop);
/* After the try that succeeded: logs the recovery when tries failed. */
void persist_done(struct persist *p);

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
/* 0 when every worker thread and the monitor are alive and responsive,
 * else -1 with why ("worker 2 has not looked for work for 12 s"). */
int pool_health(char *why, size_t whylen);

/* ---- notify.c: notifications of final tasks --------------------------- */

/* Starts the thread that POSTs the JSON view of every task whose
 * notification is pending to [notify] url (own store connection, libcurl),
 * retrying with backoff; does nothing when no url is set. */
int notify_start(const struct config *c);
/* Picks up a changed [notify] url and its settings (SIGHUP); starts the
 * thread if needed. */
void notify_reload(const struct config *c);
void notify_wake(void);
void notify_stop(void);

/* ---- view.c: what a task looks like to an operator ------------------- */

enum view_format { VIEW_JSON = 0, VIEW_XML = 1 };
/* One task rendered whole: id, kind, status (APUBI), state, source and
 * destination (credentials masked), destination_asset (the result),
 * reason, note, created/updated/first_started/next_attempt (ISO 8601 UTC
 * with milliseconds, left out when zero; next_attempt only while waiting
 * to retry), attempts (how many were started), progress {bytes_done,
 * bytes_total, files_done, files_total}, waiting_for (the TaskId of the
 * task the ordering rule holds it behind, or null), attempt_log [{n, started, ended,
 * error}], history [{at, state, detail}], items [{path, is_dir, size,
 * state (pending, done, failed), sha256, error}] and notification {state,
 * attempts, last_error, delivered_at}. Absent strings are JSON null. The
 * XML carries the same tree: <task id=".."> with one element per member,
 * null members left out, arrays as <attempt_log><attempt>..,
 * <history><event>.., <items><item>... With status_only, only {"id",
 * "status"} (XML: <task id=".."><status>..</status></task>). Stored text
 * is made valid UTF-8 first, so no stored byte breaks either document.
 * Returns 0 and a malloc'ed *out, 1 for an unknown task (*out NULL), -1
 * on error. */
int view_task(struct store *s, const char *id, int format, int status_only, char **out);
/* A page of tasks, newest first: {"tasks": [summary...], "next": cursor}
 * (XML: <tasks next=".."><task id="..">..</task>..</tasks>), a summary
 * being a task's fields up to progress (no attempt_log, history, items or
 * notification). The cursor is the decimal seq of the page's last task, a
 * string to pass back as before_seq; it is null (no attribute) when no
 * task lies beyond the page. Returns 0 and a malloc'ed *out, or -1. */
int view_list(struct store *s, const struct task_filter *f, int format, char **out);
/* An error document in a view's format: {"error": msg} or
 * <error>msg</error>; malloc'ed. */
char *view_error(int format, const char *msg);

/* ---- metrics.c: counters for /metrics (Prometheus text format) ------- */

/* Every function here is thread-safe and lock-free (atomics). `op` is one
 * of a small fixed set of names: LoadAsset, PurgeAsset, GetTaskStatus,
 * wsdl, xsd, view, metrics, healthz, other. */
void metrics_request(const char *op, int http_status, int64_t usec);
/* A file transferred by a load (its size in bytes). */
void metrics_file(int64_t bytes);
/* A transfer attempt that ended in error: "transient", "permanent",
 * "timeout". */
void metrics_xfer_error(const char *kind);
void metrics_retry(void);
/* A notification attempt: "delivered", "retry", "failed". */
void metrics_notify(const char *outcome);
/* The exposition text: the counters above, plus tasks by state and the
 * queue depth read from the store. malloc'ed. */
char *metrics_render(struct store *s);

/* ---- framing.c: where an HTTP/1.1 request begins and ends ------------ */

enum { FRAMING_MORE, FRAMING_DONE, FRAMING_BAD };

/* The state of one request's header block as framing_head reads it. */
struct framing {
	size_t pos;             /* where the first line not yet checked starts */
	int lines;              /* lines checked (the request line is the first) */
	int minor;              /* HTTP/1.minor */
	int64_t content_length; /* -1 when none */
	int chunked;            /* Transfer-Encoding: chunked */
	int too_large;          /* Content-Length over the body limit */
	int auths, hosts;
	int expect_continue;    /* Expect: 100-continue */
	size_t head_len;        /* bytes up to the blank line, once complete */
	int status;             /* the HTTP status of a refusal (FRAMING_BAD) */
	const char *why;        /* and its reason, a static string */
};
void framing_init(struct framing *f);
/* Reads the header block in buf[0..n) (all bytes of the request so far,
 * the same start each call) as far as it goes. Returns FRAMING_DONE once
 * the blank line is in (f->head_len), FRAMING_BAD with f->status and
 * f->why, or FRAMING_MORE. max_head bounds the block, max_body only sets
 * f->too_large. */
int framing_head(struct framing *f, const char *buf, size_t n, int64_t max_head,
		 int64_t max_body);

/* Follows a chunked body to its end. */
struct framing_chunks {
	int state, digits;
	uint64_t left;  /* bytes left in the current chunk */
	int64_t data;   /* chunk data bytes so far */
	size_t line;
	int too_large;
};
void framing_chunks_init(struct framing_chunks *c);
/* Consumes body bytes buf[0..n) (each byte once, across calls); *used says
 * how many were part of the body. Returns FRAMING_DONE at its end,
 * FRAMING_BAD with *why (c->too_large past max_body), or FRAMING_MORE. */
int framing_chunks(struct framing_chunks *c, const char *buf, size_t n, size_t *used,
		   int64_t max_body, const char **why);

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
	int64_t started_ms;
	int64_t received;      /* bytes of this request the engine has read */
	int64_t body_left;     /* 0 once the engine has read the whole request, else -1 */
	int64_t content_length; /* from the headers, -1 when none */
	int encoded;           /* Content-Encoding: the body is compressed */
	const char *refused;   /* why the request is refused before parsing */
	int refused_status;    /* the HTTP status that goes with it */
	/* The body scanner (server.c): UTF-8 and character references. */
	int scan_state, u8_need;
	unsigned char u8_lo, u8_hi;
	uint32_t scan_val;
	int too_large;         /* the body outgrew max_request_size */
};

/* svc.c: fills the context's fault (Client/Sender when `sender`, else
 * Server/Receiver) with `msg` as faultstring and as
 * detail/ExceptionWS/message, and returns gSOAP's SOAP_FAULT. */
int svc_fault(struct soap *soap, int sender, const char *msg);
/* svc.c: gives a fault the engine raised by itself the ExceptionWS detail
 * every apubid fault carries. */
void svc_fault_detail(struct soap *soap);

/* web.c: the GET handler: ?wsdl and ?xsd on the endpoint; /tasks/ID.json,
 * /tasks/ID.xml, /tasks[.json|.xml], /healthz and /metrics at the server
 * root; a 404 fault elsewhere. */
int web_get(struct soap *soap);
/* web.c: HEAD, answered as web_get would answer GET, without the body. */
int web_head(struct soap *soap);

/* Binds, runs the accept loop and the serving threads until *stop, then
 * drains requests in flight and returns 0 (or -1 if binding failed). */
int server_run(const struct config *c, volatile sig_atomic_t *stop);

/* The part of server_run that needs privileges, for callers that drop
 * them before serving: binds the listening socket and, with [tls], loads
 * the certificate and key. server_run then serves on that socket (it binds
 * by itself when server_bind was not called). Returns 0 or -1 (logged). */
int server_bind(const struct config *c);
/* For the fuzz target (tests/fuzz/): prepares one serving context as
 * server_run would, without binding, then serves one connection on `fd`
 * (closed afterwards) through the real serve loop. */
int server_fuzz_init(const struct config *c, volatile sig_atomic_t *stop);
void server_fuzz_serve(int fd);

#endif

/*
 * ctl.h - the map of apubictl, the operator's tool.
 *
 * apubictl is a program of its own beside the daemon. It links the
 * daemon's modules it needs (util, log, url, config, auth, rules, order,
 * store, task, view and embed, declared in ../apubid.h) with gSOAP's client
 * stubs, never the server. Its own files, one per role, in the order a
 * command meets them:
 *
 *   ctl.c      the command line: options, usage, exit statuses, dispatch
 *   client.c   the SOAP client of any APUBI endpoint: load, purge, status,
 *              TLS, Basic and Digest authentication, --wait
 *   admin.c    the store commands: tasks, show, retry, cancel, prune
 *   display.c  how text from the store or the network reaches a terminal
 *   conform.c  `apubictl conform`, the checks of the APUBI contract
 *
 * Exported functions carry their file's stem as prefix (ctl_, client_,
 * admin_, display_, conform_), as in the daemon. Conventions are the
 * daemon's too; in addition, every command returns one of the exit
 * statuses below, which are a contract with scripts (documented in
 * --help and apubictl(8)).
 */
#ifndef CTL_H
#define CTL_H

#include "apubid.h"

#include <stdio.h>

#define CTL_DEFAULT_URL "http://127.0.0.1:8080/apubi"

/* Exit statuses, for scripts. */
enum ctl_exit {
	CTL_OK = 0,          /* done; with --wait the task succeeded */
	CTL_TASK_FAILED = 1, /* with --wait, the task ended FAILED; conform: a check failed */
	CTL_USAGE = 2,       /* bad command line or configuration file */
	CTL_FAULT = 3,       /* the server answered with a SOAP fault */
	CTL_TRANSPORT = 4,   /* no answer: connection, TLS, HTTP error, 401 */
	CTL_TIMEOUT = 5,     /* --wait gave up, the task is still in progress */
	CTL_STORE = 6,       /* the local store cannot be opened, read or written */
	CTL_NO_TASK = 7,     /* admin commands: no such task in the store */
	CTL_REFUSED = 8,     /* admin commands: not possible in the task's state */
};

enum ctl_cmd { CMD_NONE, CMD_LOAD, CMD_PURGE, CMD_STATUS, CMD_TASKS, CMD_SHOW, CMD_RETRY,
	       CMD_CANCEL, CMD_PRUNE, CMD_CONFORM };

/* Everything the command line said (ctl.c fills it, checked). */
struct ctl_opts {
	const char *url, *config, *store;
	const char *cacert, *cert, *key;
	int insecure;
	const char *user, *password_file;
	int auth_method; /* AUTH_BASIC, AUTH_DIGEST, or 0: as the server offers */
	int wait;
	double timeout, interval; /* seconds; timeout 0: wait for ever */
	int state, kind;
	int64_t older_ms, newer_ms; /* -1: not given */
	int limit;
	int64_t before;
	int json;
	const char *reason;
	const char *source, *destination, *junit; /* conform */
	int verbose;
};

/* ---- ctl.c: the command line ------------------------------------------ */

/* Says "apubictl: <message>" and where help is on stderr; returns
 * CTL_USAGE. */
int ctl_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The first line of a file, without its line break (malloc'ed), or NULL
 * with a message on stderr. */
char *ctl_read_password(const char *path);
/* Loads -c FILE (or the built-in configuration) into *cfg: CTL_OK, or
 * CTL_USAGE with the reason on stderr and nothing to free. */
int ctl_config(const struct ctl_opts *o, struct config *cfg);

/* ---- client.c: the SOAP client ---------------------------------------- */

/* Where client commands go: --url, $APUBICTL_URL, the listen address of
 * `cfg` (an explicit -c FILE; NULL: none), or CTL_DEFAULT_URL. malloc'ed. */
char *client_endpoint(const struct ctl_opts *o, const struct config *cfg);
/* load (args: SRC DST), purge (DST) or status (TASKID), with --wait for
 * the first two. Prints the TaskId (load, purge) or the status on stdout;
 * returns an exit status. */
int client_command(int cmd, const struct ctl_opts *o, char **args);

/* ---- admin.c: the store commands -------------------------------------- */

/* Opens the store --store or cfg names; never creates one (a typo in a
 * path must not leave an empty store behind). CTL_OK and *s, or CTL_STORE
 * with the reason on stderr. */
int admin_store_open(const struct ctl_opts *o, const struct config *cfg, struct store **s);
/* tasks, show (args: TASKID), retry (TASKID), cancel (TASKID) or prune,
 * on the store of the configuration; returns an exit status. */
int admin_command(int cmd, const struct ctl_opts *o, char **args);

/* ---- display.c: text fit for a terminal ------------------------------- */

/* A malloc'ed copy of text from the store or the network: invalid UTF-8
 * and control characters (line breaks and tabs included) become '?' or
 * ' '. NULL becomes "-". */
char *display_safe(const char *s);
/* Prints "  label value" on stdout, the value made safe; masked
 * (url_mask) when `mask` says it may be a URL carrying a password. */
void display_field(const char *label, const char *value, int mask);
/* The functions below write into the caller's buf and return it. */
/* "2026-11-22T12:00:00.123Z" (with_ms) or "2026-11-22T12:00:00Z"; "-" for 0. */
const char *display_time(int64_t ms, int with_ms, char *buf, size_t len);
/* "512 B", "1.5 MiB"; "?" for a negative count. */
const char *display_bytes(int64_t n, char *buf, size_t len);
/* "45 s", "3 min 20 s", "12 min", "2 h 05 min"; "?" for a negative or
 * absurd count of seconds. */
const char *display_duration(double seconds, char *buf, size_t len);

/* ---- conform.c: `apubictl conform` ------------------------------------ */

/* The checks of the APUBI contract run against any endpoint (listed at
 * the top of conform.c). */
struct conform_opts {
	const char *url;                  /* the endpoint, http:// or https:// */
	const char *source, *destination; /* a LoadAsset the endpoint accepts */
	double timeout;                   /* seconds a task may take (0: 60) */
	double interval;                  /* seconds between two polls (0: 1) */
	const char *junit;                /* JUnit XML report to write, or NULL */
	int verbose;                      /* every exchange on stderr too */
	const char *cacert, *cert, *key;  /* TLS, as the other client commands */
	int insecure;
	const char *user, *password;      /* password: a secret, never printed */
	int auth_method;                  /* AUTH_BASIC, AUTH_DIGEST, 0: as offered */
};
/* Runs the checks and prints the report on stdout (and writes the JUnit
 * file). Returns apubictl's exit status: CTL_OK every required check
 * passed, CTL_TASK_FAILED one did not (or the JUnit file could not be
 * written), CTL_TRANSPORT nothing answered at the URL. */
int conform_run(const struct conform_opts *o);

#endif

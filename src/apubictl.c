/*
 * apubictl.c - the operator's command-line tool.
 *
 * Three parts in one binary:
 *
 *  - a SOAP client of any APUBI endpoint (load, purge, status), built on
 *    gSOAP client stubs generated from the same WSDL as the server. It
 *    speaks HTTP or HTTPS (server checked against the system store or
 *    --cacert, optional client certificate), and Basic or Digest
 *    authentication through gSOAP's httpda plugin: the first call goes out
 *    without credentials, and only a 401 makes apubictl answer the
 *    server's challenge (Digest when offered, else Basic), so a password
 *    never travels where no one asked for it.
 *
 *  - a conformance run against any APUBI endpoint (conform, in
 *    ctl_conform.c): the WFM's sequences, checked one rule at a time.
 *
 *  - an administrator of a local store (tasks, show, retry, cancel,
 *    prune): it opens the SQLite store named by an apubid.conf (-c) or
 *    --store through the store_* functions, beside a running daemon (the
 *    store is WAL and every write is one transaction). A queued task it
 *    changes is seen by the daemon's workers within a second.
 *
 * Invariants: passwords come from the environment or a file, never from
 * the command line, and never appear in output (URLs go through url_mask);
 * text read from the store is printed with control characters replaced,
 * so a hostile task cannot drive the operator's terminal; the exit status
 * says what happened (ctl_exit below, documented in --help and
 * apubictl(8)) so that scripts can branch on it. Helpers carry the prefix
 * ctl_.
 */
#include "apubid.h"

#include "soapH.h"
#include "APUBIBinding.nsmap"
#include "httpda.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CTL_DEFAULT_URL "http://127.0.0.1:8080/apubi"

/* Exit statuses, for scripts. */
enum ctl_exit {
	CTL_OK = 0,          /* done; with --wait the task succeeded */
	CTL_TASK_FAILED = 1, /* with --wait, the task ended FAILED */
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

#define M(c) (1u << (c))
#define CMDS_CLIENT (M(CMD_LOAD) | M(CMD_PURGE) | M(CMD_STATUS) | M(CMD_CONFORM))
#define CMDS_WAIT (M(CMD_LOAD) | M(CMD_PURGE))
#define CMDS_ALL 0xffffu

static const struct ctl_command {
	const char *name;
	int cmd;
	int min_args, max_args;
	const char *args;
} ctl_commands[] = {
	{ "load", CMD_LOAD, 2, 2, "SRC DST" },
	{ "purge", CMD_PURGE, 1, 1, "DST" },
	{ "status", CMD_STATUS, 1, 1, "TASKID" },
	{ "tasks", CMD_TASKS, 0, 0, "" },
	{ "show", CMD_SHOW, 1, 1, "TASKID" },
	{ "retry", CMD_RETRY, 1, 1, "TASKID" },
	{ "cancel", CMD_CANCEL, 1, 1, "TASKID" },
	{ "prune", CMD_PRUNE, 0, 0, "" },
	{ "conform", CMD_CONFORM, 0, 1, "[URL] --source SRC --destination DST" },
};

/* Long-only options get codes above any character. */
enum {
	OPT_STORE = 256, OPT_CACERT, OPT_CERT, OPT_KEY, OPT_INSECURE, OPT_USER, OPT_PWFILE,
	OPT_TIMEOUT, OPT_INTERVAL, OPT_STATE, OPT_KIND, OPT_OLDER, OPT_NEWER, OPT_LIMIT,
	OPT_BEFORE, OPT_JSON, OPT_REASON, OPT_AUTH, OPT_SOURCE, OPT_DEST, OPT_JUNIT, OPT_VERBOSE,
};

static const struct option ctl_long[] = {
	{ "url", required_argument, NULL, 'u' },
	{ "config", required_argument, NULL, 'c' },
	{ "store", required_argument, NULL, OPT_STORE },
	{ "cacert", required_argument, NULL, OPT_CACERT },
	{ "cert", required_argument, NULL, OPT_CERT },
	{ "key", required_argument, NULL, OPT_KEY },
	{ "insecure", no_argument, NULL, OPT_INSECURE },
	{ "user", required_argument, NULL, OPT_USER },
	{ "password-file", required_argument, NULL, OPT_PWFILE },
	{ "auth", required_argument, NULL, OPT_AUTH },
	{ "wait", no_argument, NULL, 'w' },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "interval", required_argument, NULL, OPT_INTERVAL },
	{ "state", required_argument, NULL, OPT_STATE },
	{ "kind", required_argument, NULL, OPT_KIND },
	{ "older-than", required_argument, NULL, OPT_OLDER },
	{ "newer-than", required_argument, NULL, OPT_NEWER },
	{ "limit", required_argument, NULL, OPT_LIMIT },
	{ "before", required_argument, NULL, OPT_BEFORE },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "reason", required_argument, NULL, OPT_REASON },
	{ "source", required_argument, NULL, OPT_SOURCE },
	{ "destination", required_argument, NULL, OPT_DEST },
	{ "junit", required_argument, NULL, OPT_JUNIT },
	{ "verbose", no_argument, NULL, OPT_VERBOSE },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

/* Which commands each option applies to (by option code). */
static unsigned ctl_option_cmds(int code)
{
	switch (code) {
	case 'u': case OPT_CACERT: case OPT_CERT: case OPT_KEY: case OPT_INSECURE:
	case OPT_USER: case OPT_PWFILE: case OPT_AUTH:
		return CMDS_CLIENT;
	case 'w':
		return CMDS_WAIT;
	case OPT_TIMEOUT: case OPT_INTERVAL:
		return CMDS_WAIT | M(CMD_CONFORM);
	case OPT_SOURCE: case OPT_DEST: case OPT_JUNIT: case OPT_VERBOSE:
		return M(CMD_CONFORM);
	case OPT_STATE: case OPT_KIND: case OPT_NEWER: case OPT_LIMIT: case OPT_BEFORE:
		return M(CMD_TASKS);
	case OPT_OLDER:
		return M(CMD_TASKS) | M(CMD_PRUNE);
	case OPT_JSON:
		return M(CMD_TASKS) | M(CMD_SHOW);
	case OPT_REASON:
		return M(CMD_CANCEL);
	default: /* -c, --store */
		return CMDS_ALL;
	}
}

/* Everything the command line said. */
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

static void ctl_usage(FILE *f)
{
	fprintf(f,
		"usage: apubictl [OPTIONS] COMMAND [ARGS]\n"
		"\n"
		"Client commands (talk SOAP to an APUBI endpoint):\n"
		"  load SRC DST [--wait]   LoadAsset; prints the TaskId (and, with --wait,\n"
		"                          the DestinationAsset once the task succeeded)\n"
		"  purge DST [--wait]      PurgeAsset; prints the TaskId\n"
		"  status TASKID           GetTaskStatus; prints the status (and the\n"
		"                          DestinationAsset of a successful load)\n"
		"  conform [URL] --source SRC --destination DST [--timeout S] [--interval S]\n"
		"        [--junit FILE] [--verbose]\n"
		"                          check that an endpoint keeps the APUBI contract as\n"
		"                          the WFM uses it: loads SRC to DST, waits for it\n"
		"                          (--timeout, default 60 s), purges it, and reports\n"
		"                          PASS/FAIL/SKIP per check, as JUnit XML with --junit\n"
		"\n"
		"Store commands (open the local store directly):\n"
		"  tasks [--state S] [--kind load|purge] [--older-than DUR] [--newer-than DUR]\n"
		"        [--limit N] [--before SEQ] [--json]\n"
		"                          list tasks, newest first\n"
		"  show TASKID [--json]    everything about one task: why it failed, each\n"
		"                          attempt, each file, its history\n"
		"  retry TASKID            queue a failed or cancelled task again\n"
		"  cancel TASKID [--reason TEXT]\n"
		"                          cancel a queued, waiting or running task\n"
		"  prune [--older-than DUR]\n"
		"                          delete finished tasks (default: [store] retention_days)\n"
		"\n"
		"Options:\n"
		"  -u, --url URL           endpoint (default: $APUBICTL_URL, else the listen\n"
		"                          address of -c FILE, else " CTL_DEFAULT_URL ")\n"
		"  -c, --config FILE       apubid.conf to take the store (and URL) from\n"
		"                          (default: apubid's built-in configuration)\n"
		"      --store PATH        the store's SQLite file, overriding the configuration\n"
		"      --cacert FILE       trust only the CA(s) in FILE for https://\n"
		"      --cert FILE         client certificate (PEM; the key too unless --key)\n"
		"      --key FILE          client certificate's private key (PEM)\n"
		"      --insecure          do not check the server's certificate\n"
		"      --user USER         authenticate (Digest or Basic, as the server asks);\n"
		"                          password from $APUBICTL_PASSWORD or --password-file\n"
		"      --password-file FILE  read the password from the first line of FILE\n"
		"      --auth basic|digest only answer with this method (default: Digest when\n"
		"                          offered, Basic otherwise or when Digest is refused)\n"
		"  -w, --wait              wait until the task is final, showing progress\n"
		"      --timeout SECONDS   with --wait, give up after this long (default: never,\n"
		"                          but a daemon that stops answering: after a minute)\n"
		"      --interval SECONDS  with --wait, time between two polls (default: 1)\n"
		"      --state S           queued, running, retry, succeeded, failed, cancelled\n"
		"      --kind K            load or purge\n"
		"      --older-than DUR    created at least DUR ago (30s, 10m, 2h, 7d)\n"
		"      --newer-than DUR    created at most DUR ago\n"
		"      --limit N           at most N tasks (1 to 1000, default 100)\n"
		"      --before SEQ        the page after the one that ended at SEQ\n"
		"      --json              JSON instead of text\n"
		"      --reason TEXT       why a task is cancelled (recorded as its reason)\n"
		"      --source SRC        conform: a SourceAssetUrl the endpoint loads (a\n"
		"                          relative path is taken from the current directory)\n"
		"      --destination DST   conform: the DestinationAsset to load it to\n"
		"      --junit FILE        conform: write the report as JUnit XML too\n"
		"      --verbose           conform: show every request and answer on stderr\n"
		"  -h, --help              this help;   -V, --version  the version\n"
		"\n"
		"Exit status:\n"
		"  0  success: submitted, answered, done; with --wait the task succeeded\n"
		"  1  with --wait, the task ended FAILED; conform: a required check failed\n"
		"  2  usage error: bad command line, options or configuration file\n"
		"  3  the server answered with a SOAP fault (unknown TaskId, refused request)\n"
		"  4  no answer: cannot connect, TLS failure, HTTP error, 401 Unauthorized;\n"
		"     conform: nothing answered at the URL\n"
		"  5  with --wait, --timeout passed while the task was still in progress\n"
		"  6  the local store cannot be opened, read or written\n"
		"  7  no such task in the local store\n"
		"  8  not possible in the task's state (retry of a running task, cancel of\n"
		"     a finished one)\n");
}

static int ctl_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int ctl_usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("apubictl: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputs("\n(see apubictl --help)\n", stderr);
	va_end(ap);
	return CTL_USAGE;
}

/* ---- small helpers --------------------------------------------------- */

/* A copy of text from the store or the network, safe for a terminal:
 * invalid UTF-8 and control characters (line breaks and tabs included)
 * become '?' or ' '. NULL becomes "-". */
static char *ctl_safe(const char *s)
{
	if (!s)
		return util_strdup("-");
	char *c = util_utf8_sanitize(util_strdup(s));
	for (char *p = c; *p; p++)
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
	return c;
}

/* Prints "label: value" with the value made safe; masked when it may be a
 * URL carrying a password. */
static void ctl_field(const char *label, const char *value, int mask)
{
	char *m = mask && value ? url_mask(value) : NULL;
	char *s = ctl_safe(m ? m : value);
	printf("  %-14s %s\n", label, s);
	free(s);
	free(m);
}

/* "2026-11-22T12:00:00.123Z" (with_ms) or "2026-11-22T12:00:00Z"; "-" for 0. */
static const char *ctl_time(int64_t ms, int with_ms, char *buf, size_t len)
{
	if (ms <= 0) {
		snprintf(buf, len, "-");
		return buf;
	}
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	char s[32];
	strftime(s, sizeof s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (with_ms)
		snprintf(buf, len, "%s.%03dZ", s, (int)(ms % 1000));
	else
		snprintf(buf, len, "%sZ", s);
	return buf;
}

/* "1.5 MiB" */
static const char *ctl_bytes(int64_t n, char *buf, size_t len)
{
	if (n < 0) {
		snprintf(buf, len, "?");
		return buf;
	}
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n;
	int u = 0;
	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%" PRId64 " B", n);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
	return buf;
}

/* "30s", "10m", "2h", "7d" or plain seconds -> milliseconds, or -1. */
static int64_t ctl_duration(const char *s)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (end == s || errno || !(v >= 0 && v <= 1e9)) /* NaN too */
		return -1;
	double unit = 1000;
	if (*end) {
		switch (*end) {
		case 's': unit = 1000; break;
		case 'm': unit = 60e3; break;
		case 'h': unit = 3600e3; break;
		case 'd': unit = 86400e3; break;
		case 'w': unit = 7 * 86400e3; break;
		default: return -1;
		}
		if (end[1])
			return -1;
	}
	return (int64_t)(v * unit);
}

/* A non-negative number of seconds ("1.5"), or -1. */
static double ctl_seconds(const char *s)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (end == s || *end || errno || !(v >= 0 && v <= 1e7)) /* NaN too */
		return -1;
	return v;
}

static int ctl_integer(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (end == s || *end || errno || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* The first line of a file, without its line break; NULL with a message. */
static char *ctl_read_password(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "apubictl: --password-file %s: %s\n", path, strerror(errno));
		return NULL;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, f);
	fclose(f);
	if (n < 0) {
		free(line);
		fprintf(stderr, "apubictl: --password-file %s: the file is empty\n", path);
		return NULL;
	}
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	return line;
}

static void ctl_sleep(double seconds)
{
	struct timespec ts = { (time_t)seconds,
			       (long)((seconds - (double)(time_t)seconds) * 1e9) };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- configuration and store ----------------------------------------- */

static int ctl_config(const struct ctl_opts *o, struct config *cfg)
{
	char err[1024];
	if (config_load(cfg, o->config, err, sizeof err) < 0) {
		fprintf(stderr, "apubictl: %s\n", err);
		config_free(cfg);
		return CTL_USAGE;
	}
	return CTL_OK;
}

/* Opens the store an existing file holds; never creates one (a typo in a
 * path must not leave an empty store behind). */
static int ctl_store_open(const struct ctl_opts *o, const struct config *cfg,
			  struct store **s)
{
	const char *path = o->store ? o->store : cfg->store_path;
	struct stat st;
	if (stat(path, &st) < 0) {
		fprintf(stderr, "apubictl: store %s: %s\n", path, strerror(errno));
		return CTL_STORE;
	}
	if (!S_ISREG(st.st_mode)) {
		fprintf(stderr, "apubictl: store %s: not a regular file\n", path);
		return CTL_STORE;
	}
	char err[1024];
	*s = store_open(path, err, sizeof err);
	if (!*s) {
		fprintf(stderr, "apubictl: store %s: %s\n", path, err);
		return CTL_STORE;
	}
	return CTL_OK;
}

/* ---- the SOAP client -------------------------------------------------- */

struct ctl_client {
	struct soap *soap;
	const char *url;
	const char *user;
	char *password;
	int auth_method; /* AUTH_BASIC or AUTH_DIGEST when forced, else 0 */
	struct http_da_info da; /* credentials once a server asked for them */
	int authed;
	/* The last answer, copied out of gSOAP's memory. */
	char *task_id;
	int status; /* enum ns__StatusType */
	char *dest;
	char *last_error; /* what a quiet call did not say */
};

/* The three calls, each leaving its answer in the client. */
enum { OP_LOAD, OP_PURGE, OP_STATUS };
struct ctl_call {
	int op;
	const char *a, *b;
};

/* The challenges of the last 401 (AUTH_BASIC | AUTH_DIGEST), seen by a
 * header hook in front of the plugin's. apubictl has one context, in one
 * thread. */
static int ctl_offered;
static int (*ctl_parsehdr_next)(struct soap *, const char *, const char *);

static int ctl_parsehdr(struct soap *soap, const char *key, const char *val)
{
	if (!soap_tag_cmp(key, "WWW-Authenticate")) {
		if (!soap_tag_cmp(val, "Digest *"))
			ctl_offered |= AUTH_DIGEST;
		else if (!soap_tag_cmp(val, "Basic *"))
			ctl_offered |= AUTH_BASIC;
	}
	return ctl_parsehdr_next(soap, key, val);
}

static int ctl_call_once(struct ctl_client *cl, const struct ctl_call *c)
{
	struct soap *soap = cl->soap;
	int rc;
	ctl_offered = 0;
	if (c->op == OP_LOAD) {
		struct _ns__LoadAsset req = { (char *)c->a, (char *)c->b, NULL };
		struct _ns__LoadAssetResponse resp = { NULL };
		rc = soap_call___ns__LoadAsset(soap, cl->url, NULL, &req, &resp);
		if (rc == SOAP_OK) {
			free(cl->task_id);
			cl->task_id = util_strdup(resp.TaskId ? resp.TaskId : "");
		}
	} else if (c->op == OP_PURGE) {
		struct _ns__PurgeAsset req = { (char *)c->a, NULL };
		struct _ns__PurgeAssetResponse resp = { NULL };
		rc = soap_call___ns__PurgeAsset(soap, cl->url, NULL, &req, &resp);
		if (rc == SOAP_OK) {
			free(cl->task_id);
			cl->task_id = util_strdup(resp.TaskId ? resp.TaskId : "");
		}
	} else {
		struct _ns__GetTaskStatus req = { (char *)c->a };
		struct _ns__GetTaskStatusResponse resp;
		memset(&resp, 0, sizeof resp);
		rc = soap_call___ns__GetTaskStatus(soap, cl->url, NULL, &req, &resp);
		if (rc == SOAP_OK) {
			cl->status = resp.Status;
			free(cl->dest);
			cl->dest = util_strdup(resp.DestinationAsset);
		}
	}
	return rc;
}

/* The text of detail/ExceptionWS/message, or NULL. */
static const char *ctl_fault_message(struct soap *soap)
{
	if (!soap->fault)
		return NULL;
	struct SOAP_ENV__Detail *d = soap->fault->detail ? soap->fault->detail
							  : soap->fault->SOAP_ENV__Detail;
	if (d && d->ns__ExceptionWS && d->ns__ExceptionWS->message)
		return d->ns__ExceptionWS->message;
	return NULL;
}

/* Says on `out` what went wrong with a call and returns the exit status
 * for it. */
static int ctl_report(struct ctl_client *cl, int rc, FILE *out)
{
	struct soap *soap = cl->soap;
	char *url = url_mask(cl->url);
	const char *fs = *soap_faultstring(soap);
	const char **fd = soap_faultdetail(soap);
	const char *detail = fd && *fd ? *fd : NULL;
	int code;
	if (rc == SOAP_FAULT || (rc > 0 && rc < 100 && soap->fault && soap->status >= 400 &&
				 soap->status < 600 && ctl_fault_message(soap))) {
		/* The server itself refused: what it said is the message. */
		const char *msg = ctl_fault_message(soap);
		const char **fc = soap_faultcode(soap);
		char *s1 = ctl_safe(fs ? fs : "(no faultstring)");
		fprintf(out, "apubictl: fault from %s (HTTP %d, %s): %s\n", url, soap->status,
			fc && *fc ? *fc : "no faultcode", s1);
		if (msg && (!fs || strcmp(msg, fs) != 0)) {
			char *s2 = ctl_safe(msg);
			fprintf(out, "apubictl: detail: %s\n", s2);
			free(s2);
		}
		free(s1);
		code = CTL_FAULT;
	} else if (rc == 401) {
		if (cl->user)
			fprintf(out, "apubictl: %s: authentication failed for user %s "
					"(HTTP 401)\n", url, cl->user);
		else
			fprintf(out, "apubictl: %s: authentication required (HTTP 401): "
					"use --user with $APUBICTL_PASSWORD or --password-file\n",
				url);
		code = CTL_TRANSPORT;
	} else if (rc >= 100 && rc < 600) {
		/* gSOAP reads no body with these statuses; say what they
		 * usually mean with apubid. A 503 (queue full, stopping) is
		 * worth trying again later, like a refused connection. */
		const char *why = rc == 404   ? ": no endpoint there (check the URL's path)"
				  : rc == 503 ? ": the queue is full or the server is stopping; "
						"try again later"
				  : rc == 413 ? ": the request is too large for the server"
				  : rc == 405 ? ": the URL does not take SOAP requests"
					      : "";
		fprintf(out, "apubictl: %s: HTTP %d without a SOAP answer%s\n", url, rc, why);
		code = CTL_TRANSPORT;
	} else {
		char *s1 = ctl_safe(fs ? fs : "transport error");
		char *s2 = detail ? ctl_safe(detail) : NULL;
		fprintf(out, "apubictl: %s: %s%s%s\n", url, s1, s2 ? ": " : "", s2 ? s2 : "");
		free(s1);
		free(s2);
		code = CTL_TRANSPORT;
	}
	free(url);
	return code;
}

static struct ctl_client *ctl_clear_error(struct ctl_client *cl)
{
	free(cl->last_error);
	cl->last_error = NULL;
	return cl;
}

static void ctl_forget_credentials(struct ctl_client *cl)
{
	if (!cl->authed)
		return;
	if (cl->da.passwd)
		explicit_bzero(cl->da.passwd, strlen(cl->da.passwd));
	http_da_release(cl->soap, &cl->da);
	cl->authed = 0;
}

/* Answers the challenge of the 401 just received with `method` and makes
 * the call again. The plugin sends Digest when it holds a nonce from the
 * challenge, Basic otherwise. */
static int ctl_answer(struct ctl_client *cl, const struct ctl_call *c, int method)
{
	struct soap *soap = cl->soap;
	char *realm = util_strdup(soap->authrealm ? soap->authrealm : "");
	ctl_forget_credentials(cl);
	http_da_save(soap, &cl->da, realm, cl->user, cl->password);
	free(realm);
	if (method == AUTH_BASIC) {
		free(cl->da.nonce);
		cl->da.nonce = NULL;
	}
	cl->authed = 1;
	soap_destroy(soap);
	soap_end(soap);
	http_da_restore(soap, &cl->da);
	return ctl_call_once(cl, c);
}

/* One call with authentication as the server asks: on a 401, answer its
 * challenge (Digest when offered, else Basic, unless --auth says) and try
 * again; when a Digest answer is refused and Basic was offered too, try
 * Basic (the user may be in the server's Basic file only). The same
 * happens later when a nonce went stale. Returns an exit status, with the
 * answer in the client on CTL_OK. `quiet` leaves transport errors
 * unreported (the caller retries). */
static int ctl_call(struct ctl_client *cl, const struct ctl_call *c, int quiet, int *transport)
{
	struct soap *soap = cl->soap;
	if (cl->authed)
		http_da_restore(soap, &cl->da);
	int rc = ctl_call_once(cl, c);
	if (rc == 401 && cl->user) {
		int offered = ctl_offered;
		int method = cl->auth_method     ? cl->auth_method
			     : offered & AUTH_DIGEST ? AUTH_DIGEST
						     : AUTH_BASIC;
		if (offered & method)
			rc = ctl_answer(cl, c, method);
		if (rc == 401 && !cl->auth_method && method == AUTH_DIGEST &&
		    (offered & AUTH_BASIC))
			rc = ctl_answer(cl, c, AUTH_BASIC);
	}
	int code = CTL_OK;
	if (transport)
		*transport = 0;
	if (rc != SOAP_OK) {
		int is_transport = rc != SOAP_FAULT && rc != 401 && !(rc >= 100 && rc < 600);
		if (transport)
			*transport = is_transport;
		if (quiet && is_transport) {
			/* Kept for later: the fault goes with soap_end. */
			size_t len;
			FILE *m = open_memstream(&ctl_clear_error(cl)->last_error, &len);
			code = m ? ctl_report(cl, rc, m) : CTL_TRANSPORT;
			if (m)
				fclose(m);
		} else {
			code = ctl_report(cl, rc, stderr);
		}
	}
	soap_destroy(soap);
	soap_end(soap);
	return code;
}

static int ctl_client_init(struct ctl_client *cl, const struct ctl_opts *o, const char *url)
{
	memset(cl, 0, sizeof *cl);
	cl->url = url;
	int https = strncasecmp(url, "https://", 8) == 0;
	if (!https && strncasecmp(url, "http://", 7) != 0)
		return ctl_usage_error("--url %s: not an http:// or https:// URL", url);
	if (!https && (o->cacert || o->cert || o->key || o->insecure))
		return ctl_usage_error("--cacert, --cert, --key and --insecure need an https:// URL");
	if (o->key && !o->cert)
		return ctl_usage_error("--key needs --cert");
	if (o->password_file && !o->user)
		return ctl_usage_error("--password-file needs --user");
	if (o->user) {
		if (o->password_file) {
			cl->password = ctl_read_password(o->password_file);
			if (!cl->password)
				return CTL_USAGE;
		} else if (getenv("APUBICTL_PASSWORD")) {
			cl->password = util_strdup(getenv("APUBICTL_PASSWORD"));
		} else {
			return ctl_usage_error("--user %s needs a password: set APUBICTL_PASSWORD "
					       "or give --password-file", o->user);
		}
		cl->user = o->user;
		cl->auth_method = o->auth_method;
	} else if (o->auth_method) {
		return ctl_usage_error("--auth needs --user");
	}

	cl->soap = soap_new1(SOAP_IO_KEEPALIVE | SOAP_C_UTFSTRING | SOAP_XML_TREE);
	if (!cl->soap) {
		fprintf(stderr, "apubictl: out of memory\n");
		return CTL_TRANSPORT;
	}
	struct soap *soap = cl->soap;
	soap_set_namespaces(soap, namespaces);
	soap->connect_timeout = 15;
	soap->recv_timeout = 60;
	soap->send_timeout = 60;
	soap->transfer_timeout = 120;
	if (cl->user) {
		if (soap_register_plugin(soap, http_da)) {
			fprintf(stderr, "apubictl: cannot set up HTTP authentication\n");
			return CTL_TRANSPORT;
		}
		ctl_parsehdr_next = soap->fparsehdr;
		soap->fparsehdr = ctl_parsehdr;
	}
	if (https) {
		unsigned short flags = SOAP_TLSv1_2 | SOAP_TLSv1_3;
		if (o->insecure)
			flags |= SOAP_SSL_NO_AUTHENTICATION;
		else
			flags |= SOAP_SSL_DEFAULT;
		if (o->cacert)
			flags |= SOAP_SSL_NO_DEFAULT_CA_PATH;
		if (soap_ssl_client_context(soap, flags, NULL, NULL, o->cacert, NULL, NULL)) {
			char buf[512];
			soap_sprint_fault(soap, buf, sizeof buf);
			fprintf(stderr, "apubictl: TLS set-up: %s\n", buf);
			return o->cacert ? CTL_USAGE : CTL_TRANSPORT;
		}
		if (o->cert) {
			/* gSOAP takes one PEM holding both; apubictl accepts them
			 * apart, like curl, so it loads them itself. */
			const char *key = o->key ? o->key : o->cert;
			SSL_CTX *ctx = soap->ctx;
			if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, o->cert) != 1) {
				fprintf(stderr, "apubictl: --cert %s: cannot load the certificate\n",
					o->cert);
				return CTL_USAGE;
			}
			if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
			    SSL_CTX_check_private_key(ctx) != 1) {
				fprintf(stderr, "apubictl: --key %s: cannot load the private key "
						"matching --cert\n", key);
				return CTL_USAGE;
			}
		}
	}
	return CTL_OK;
}

static void ctl_client_free(struct ctl_client *cl)
{
	if (cl->soap) {
		ctl_forget_credentials(cl);
		soap_destroy(cl->soap);
		soap_end(cl->soap);
		soap_free(cl->soap);
	}
	if (cl->password) {
		explicit_bzero(cl->password, strlen(cl->password));
		free(cl->password);
	}
	free(cl->task_id);
	free(cl->dest);
	free(cl->last_error);
}

static const char *ctl_status_name(int status)
{
	switch (status) {
	case ns__StatusType__IN_USCOREPROGRESS:
		return "IN_PROGRESS";
	case ns__StatusType__SUCCESS:
		return "SUCCESS";
	case ns__StatusType__FAILED:
		return "FAILED";
	default:
		return "UNKNOWN";
	}
}

/* What the local store says about a task's progress, when there is one:
 * "running, attempt 2, 3.0/10.0 MiB, 1/4 files". NULL without a store. */
static char *ctl_progress(struct store *s, const char *id, int *state)
{
	if (!s)
		return NULL;
	struct task t;
	if (store_get(s, id, &t) != 0)
		return NULL;
	char a[32], b[32];
	char *out;
	if (t.bytes_total > 0 || t.files_total > 0)
		out = util_printf("%s, attempt %d, %s/%s, %d/%d files", task_state_name(t.state),
				  t.attempts, ctl_bytes(t.bytes_done, a, sizeof a),
				  ctl_bytes(t.bytes_total, b, sizeof b), t.files_done, t.files_total);
	else
		out = util_printf("%s, attempt %d", task_state_name(t.state), t.attempts);
	*state = t.state;
	task_clear(&t);
	return out;
}

/* How long --wait without --timeout waits out a daemon that does not
 * answer (a restart: a stop lets the tasks in flight reach a safe point). */
#define CTL_OUTAGE_MS 60000

/* Polls GetTaskStatus until the task is final. On a terminal, one line
 * that updates in place; otherwise one line on stderr per change. A
 * daemon that does not answer is polled again, until --timeout or, without
 * one, for CTL_OUTAGE_MS; a fault or a 401 ends the wait at once. */
static int ctl_wait(struct ctl_client *cl, const struct ctl_opts *o, struct store *s,
		    const char *id)
{
	int tty = isatty(STDERR_FILENO);
	int64_t start = util_mono_ms(), outage = 0;
	int last_status = -1, last_state = -2;
	double interval = o->interval > 0 ? o->interval : 1.0;
	for (;;) {
		struct ctl_call c = { OP_STATUS, id, NULL };
		int transport;
		int code = ctl_call(cl, &c, 1, &transport);
		int64_t now = util_mono_ms(), elapsed = now - start;
		int outage_began = 0;
		if (code == CTL_OK) {
			outage = 0;
		} else {
			if (transport && !outage) {
				outage = now;
				outage_began = 1;
			}
			if (!transport ||
			    (o->timeout > 0 ? elapsed >= (int64_t)(o->timeout * 1000)
					    : now - outage >= CTL_OUTAGE_MS)) {
				if (tty)
					fputs("\r\033[K", stderr);
				if (transport && cl->last_error)
					fputs(cl->last_error, stderr);
				return code;
			}
		}
		if (code == CTL_OK && cl->status != ns__StatusType__IN_USCOREPROGRESS) {
			if (tty)
				fputs("\r\033[K", stderr);
			return CTL_OK;
		}

		int state = -1;
		char *prog = code == CTL_OK ? ctl_progress(s, id, &state) : NULL;
		char *what = util_printf("%s%s%s",
					 code == CTL_OK ? ctl_status_name(cl->status)
							: "no answer, retrying",
					 prog ? " - " : "", prog ? prog : "");
		if (tty) {
			/* One line that never wraps, or \r would not go back to
			 * it; the TaskId is on stdout already. */
			char *shown = util_printf("%s (%" PRId64 " s)", what, elapsed / 1000);
			struct winsize ws;
			size_t cols = ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1
					      ? ws.ws_col - 1 : 79;
			if (strlen(shown) > cols)
				shown[cols] = '\0';
			fprintf(stderr, "\r\033[K%s", shown);
			fflush(stderr);
			free(shown);
		} else if (code != CTL_OK ? outage_began
					  : cl->status != last_status || state != last_state) {
			/* A log: one line per change, and one when an outage
			 * begins. */
			fprintf(stderr, "task %s: %s\n", id, what);
		}
		free(what);
		free(prog);
		/* After an outage, the next answer is news again. */
		last_status = code == CTL_OK ? cl->status : -1;
		last_state = code == CTL_OK ? state : -2;

		if (o->timeout > 0 && elapsed >= (int64_t)(o->timeout * 1000)) {
			if (tty)
				fputs("\r\033[K", stderr);
			fprintf(stderr, "apubictl: task %s still in progress after %g s\n", id,
				o->timeout);
			return CTL_TIMEOUT;
		}
		double left = o->timeout > 0 ? o->timeout - (double)elapsed / 1000 : interval;
		ctl_sleep(left < interval ? (left > 0 ? left : 0) : interval);
	}
}

/* Where client commands go: --url, $APUBICTL_URL, the listen address of
 * an explicit -c FILE, or the default. */
static char *ctl_endpoint(const struct ctl_opts *o, const struct config *cfg)
{
	if (o->url)
		return util_strdup(o->url);
	const char *env = getenv("APUBICTL_URL");
	if (env && *env)
		return util_strdup(env);
	if (cfg) {
		const char *h = cfg->listen_host;
		if (!strcmp(h, "0.0.0.0") || !*h)
			h = "127.0.0.1";
		else if (!strcmp(h, "::"))
			h = "::1";
		int v6 = strchr(h, ':') != NULL;
		return util_printf("%s://%s%s%s:%d%s", cfg->tls_cert_file ? "https" : "http",
				   v6 ? "[" : "", h, v6 ? "]" : "", cfg->listen_port, cfg->endpoint);
	}
	return util_strdup(CTL_DEFAULT_URL);
}

static int ctl_client_command(int cmd, const struct ctl_opts *o, char **args)
{
	struct config cfg;
	int have_cfg = 0, code;
	if (o->config) {
		if ((code = ctl_config(o, &cfg)) != CTL_OK)
			return code;
		have_cfg = 1;
	}
	char *url = ctl_endpoint(o, have_cfg ? &cfg : NULL);
	struct ctl_client cl;
	struct store *s = NULL;
	code = ctl_client_init(&cl, o, url);
	if (code != CTL_OK)
		goto out;

	if (cmd == CMD_STATUS) {
		struct ctl_call c = { OP_STATUS, args[0], NULL };
		code = ctl_call(&cl, &c, 0, NULL);
		if (code == CTL_OK) {
			printf("%s\n", ctl_status_name(cl.status));
			if (cl.dest) {
				char *d = ctl_safe(cl.dest);
				printf("%s\n", d);
				free(d);
			}
		}
		goto out;
	}

	/* A relative local source means the file here, as for cp(1): the
	 * daemon, which may run elsewhere, accepts absolute ones only. */
	char *src = NULL;
	if (cmd == CMD_LOAD && !url_is_absolute(args[0]) && args[0][0] != '/') {
		char *cwd = getcwd(NULL, 0);
		if (cwd)
			src = util_printf("%s/%s", cwd, args[0]);
		free(cwd);
	}
	struct ctl_call c = { cmd == CMD_LOAD ? OP_LOAD : OP_PURGE, src ? src : args[0],
			      cmd == CMD_LOAD ? args[1] : NULL };
	code = ctl_call(&cl, &c, 0, NULL);
	free(src);
	if (code != CTL_OK)
		goto out;
	char *id = ctl_safe(cl.task_id);
	printf("%s\n", id);
	fflush(stdout);
	if (o->wait) {
		/* The local store, when named, adds progress to the display. */
		if (have_cfg || o->store) {
			struct config dcfg;
			const struct config *pc = have_cfg ? &cfg : NULL;
			if (!pc && config_load(&dcfg, NULL, NULL, 0) == 0)
				pc = &dcfg;
			if (pc && ctl_store_open(o, pc, &s) != CTL_OK)
				s = NULL;
			if (pc == &dcfg)
				config_free(&dcfg);
		}
		code = ctl_wait(&cl, o, s, id);
		if (code == CTL_OK && cl.status == ns__StatusType__SUCCESS) {
			if (cl.dest) {
				char *d = ctl_safe(cl.dest);
				printf("%s\n", d);
				free(d);
			}
		} else if (code == CTL_OK) {
			fprintf(stderr, "apubictl: task %s FAILED", id);
			struct task t;
			if (s && store_get(s, id, &t) == 0) {
				char *r = ctl_safe(t.reason);
				fprintf(stderr, ": %s", r);
				free(r);
				task_clear(&t);
			}
			fprintf(stderr, "\n(on the daemon's host: apubictl show %s)\n", id);
			code = CTL_TASK_FAILED;
		}
	}
	free(id);
out:
	store_close(s);
	ctl_client_free(&cl);
	free(url);
	if (have_cfg)
		config_free(&cfg);
	return code;
}

/* ---- the store commands ----------------------------------------------- */

static int ctl_tasks(struct store *s, const struct ctl_opts *o)
{
	struct task_filter f = { o->state, o->kind, o->older_ms > 0 ? o->older_ms : 0,
				 o->newer_ms > 0 ? o->newer_ms : 0, o->before, o->limit };
	if (o->json) {
		char *out = NULL;
		if (view_list(s, &f, VIEW_JSON, &out) < 0) {
			fprintf(stderr, "apubictl: cannot list the tasks\n");
			return CTL_STORE;
		}
		fputs(out, stdout);
		if (*out && out[strlen(out) - 1] != '\n')
			putchar('\n');
		free(out);
		return CTL_OK;
	}
	struct task *t = NULL;
	int n = 0;
	if (store_list(s, &f, &t, &n) < 0) {
		fprintf(stderr, "apubictl: cannot list the tasks\n");
		return CTL_STORE;
	}
	printf("%-36s  %-5s  %-9s  %-11s  %-20s  %3s  %-30s  %s\n", "ID", "KIND", "STATE",
	       "STATUS", "CREATED", "ATT", "DESTINATION", "REASON");
	for (int i = 0; i < n; i++) {
		char c[40];
		char *m = url_mask(t[i].destination ? t[i].destination : "");
		char *d = ctl_safe(m);
		char *r = ctl_safe(t[i].reason ? t[i].reason : t[i].note ? t[i].note : "");
		/* Truncate on a UTF-8 boundary. */
		if (strlen(r) > 60) {
			size_t k = 57;
			while (k > 0 && ((unsigned char)r[k] & 0xc0) == 0x80)
				k--;
			strcpy(r + k, "...");
		}
		printf("%-36s  %-5s  %-9s  %-11s  %-20s  %3d  %-30s  %s\n", t[i].id,
		       task_kind_name(t[i].kind), task_state_name(t[i].state),
		       task_apubi_status(t[i].state), ctl_time(t[i].created_ms, 0, c, sizeof c),
		       t[i].attempts, d, r);
		free(m);
		free(d);
		free(r);
	}
	int limit = o->limit > 0 ? o->limit : 100;
	if (n == limit && n > 0)
		fprintf(stderr, "(more may follow: --before %" PRId64 ")\n", t[n - 1].seq);
	task_free_all(t, n);
	return CTL_OK;
}

static int ctl_show(struct store *s, const struct ctl_opts *o, const char *id)
{
	if (o->json) {
		char *out = NULL;
		int rc = view_task(s, id, VIEW_JSON, 0, &out);
		if (rc == 1) {
			fprintf(stderr, "apubictl: no task %s in the store\n", id);
			return CTL_NO_TASK;
		}
		if (rc < 0) {
			fprintf(stderr, "apubictl: cannot read task %s\n", id);
			return CTL_STORE;
		}
		fputs(out, stdout);
		if (*out && out[strlen(out) - 1] != '\n')
			putchar('\n');
		free(out);
		return CTL_OK;
	}
	struct task t;
	int rc = store_get(s, id, &t);
	if (rc == 1) {
		fprintf(stderr, "apubictl: no task %s in the store\n", id);
		return CTL_NO_TASK;
	}
	if (rc < 0) {
		fprintf(stderr, "apubictl: cannot read task %s\n", id);
		return CTL_STORE;
	}
	struct task_event *ev = NULL;
	struct attempt *at = NULL;
	struct item *it = NULL;
	int nev = 0, nat = 0, nit = 0;
	if (store_events(s, id, &ev, &nev) < 0 || store_attempts(s, id, &at, &nat) < 0 ||
	    store_items(s, id, &it, &nit) < 0) {
		fprintf(stderr, "apubictl: cannot read the history of task %s\n", id);
		task_event_free_all(ev, nev);
		attempt_free_all(at, nat);
		item_free_all(it, nit);
		task_clear(&t);
		return CTL_STORE;
	}

	char b1[40], b2[40];
	printf("Task %s\n", t.id);
	ctl_field("kind:", task_kind_name(t.kind), 0);
	char *seq = util_printf("%" PRId64, t.seq);
	ctl_field("seq:", seq, 0);
	free(seq);
	char *st = util_printf("%s (state %s%s)", task_apubi_status(t.state),
			       task_state_name(t.state),
			       t.cancel_requested && t.state == TS_RUNNING ? ", cancel requested" : "");
	ctl_field("status:", st, 0);
	free(st);
	if (t.kind == TASK_LOAD)
		ctl_field("source:", t.source, 1);
	ctl_field("destination:", t.destination, 1);
	if (t.dest_path) {
		char *dp = util_printf("%s%s (under the destination root)", t.dest_path,
				       t.dest_is_dir ? "/" : "");
		ctl_field("path:", dp, 0);
		free(dp);
	}
	ctl_field("result:", t.result, 1);
	ctl_field("reason:", t.reason, 0);
	ctl_field("note:", t.note, 0);
	ctl_field("created:", ctl_time(t.created_ms, 1, b1, sizeof b1), 0);
	ctl_field("updated:", ctl_time(t.updated_ms, 1, b1, sizeof b1), 0);
	ctl_field("first start:", ctl_time(t.first_started_ms, 1, b1, sizeof b1), 0);
	if (t.state == TS_RETRY)
		ctl_field("next attempt:", ctl_time(t.next_attempt_ms, 1, b1, sizeof b1), 0);
	char ahead[TASKID_LEN];
	if ((t.state == TS_QUEUED || t.state == TS_RETRY) && store_waiting_for(s, id, ahead) == 0) {
		char *w = util_printf("%s (accepted earlier, on an overlapping destination)",
				      ahead);
		ctl_field("waiting for:", w, 0);
		free(w);
	}
	char *att = t.attempt_base > 0
			    ? util_printf("%d (%d before an operator's retry)", t.attempts,
					  t.attempt_base)
			    : util_printf("%d", t.attempts);
	ctl_field("attempts:", att, 0);
	free(att);
	if (t.kind == TASK_LOAD) {
		char *p = util_printf("%s of %s, %d of %d files",
				      ctl_bytes(t.bytes_done, b1, sizeof b1),
				      ctl_bytes(t.bytes_total, b2, sizeof b2), t.files_done,
				      t.files_total);
		ctl_field("progress:", p, 0);
		free(p);
	}
	char *nt;
	if (t.notify_state == NOTIFY_NONE)
		nt = util_strdup("none");
	else if (t.notify_state == NOTIFY_PENDING)
		nt = util_printf("pending, %d attempt%s made, next at %s", t.notify_attempts,
				 t.notify_attempts == 1 ? "" : "s",
				 ctl_time(t.notify_next_ms, 1, b1, sizeof b1));
	else
		nt = util_printf("%s at %s after %d attempt%s", task_notify_name(t.notify_state),
				 ctl_time(t.notify_ms, 1, b1, sizeof b1), t.notify_attempts,
				 t.notify_attempts == 1 ? "" : "s");
	ctl_field("notification:", nt, 0);
	free(nt);
	if (t.notify_error)
		ctl_field("notify error:", t.notify_error, 1);
	if (t.rule) {
		/* A [staging] rule shaped this task: say how. */
		char polls[64] = "";
		if (t.rule_polls < 0)
			snprintf(polls, sizeof polls, ", IN_PROGRESS for ever");
		else if (t.rule_polls > 0)
			snprintf(polls, sizeof polls, ", %d IN_PROGRESS answer%s left", t.rule_polls,
				 t.rule_polls == 1 ? "" : "s");
		char *r = util_printf("%s%s%s%s%s%s", t.rule, t.rule_fail ? ", fails: " : "",
				      t.rule_fail ? t.rule_fail : "",
				      t.rule_result ? ", answers DestinationAsset \"" : "",
				      t.rule_result ? t.rule_result : "", t.rule_result ? "\"" : "");
		char *full = util_printf("%s%s", r, polls);
		ctl_field("staging rule:", full, 1);
		free(full);
		free(r);
	}

	printf("\nHistory:\n");
	if (nev == 0)
		printf("  (none recorded)\n");
	for (int i = 0; i < nev; i++) {
		char *d = ctl_safe(ev[i].detail ? ev[i].detail : "");
		printf("  %s  %-9s  %s\n", ctl_time(ev[i].at_ms, 1, b1, sizeof b1),
		       task_state_name(ev[i].state), d);
		free(d);
	}

	printf("\nAttempts:\n");
	if (nat == 0)
		printf("  (none yet)\n");
	for (int i = 0; i < nat; i++) {
		char *e = ctl_safe(at[i].error ? at[i].error : "ok");
		char dur[32] = "";
		if (at[i].ended_ms > 0 && at[i].started_ms > 0)
			snprintf(dur, sizeof dur, " (%.1f s)",
				 (double)(at[i].ended_ms - at[i].started_ms) / 1000);
		printf("  #%-3d %s%s  %s\n", at[i].n, ctl_time(at[i].started_ms, 1, b1, sizeof b1),
		       dur, e);
		free(e);
	}

	if (t.kind == TASK_LOAD) {
		printf("\nItems:\n");
		if (nit == 0)
			printf("  (none listed yet)\n");
		static const char *const istates[] = { "pending", "done", "failed" };
		for (int i = 0; i < nit; i++) {
			char *p = ctl_safe(*it[i].path ? it[i].path : "(the asset itself)");
			printf("  %-4d %-7s %10s  %s%s\n", it[i].seq,
			       it[i].state >= 0 && it[i].state <= 2 ? istates[it[i].state] : "?",
			       it[i].is_dir ? "dir" : ctl_bytes(it[i].size, b1, sizeof b1), p,
			       it[i].is_dir ? "/" : "");
			if (it[i].sha256)
				printf("       sha256 %s\n", it[i].sha256);
			if (it[i].error) {
				char *e = ctl_safe(it[i].error);
				printf("       error: %s\n", e);
				free(e);
			}
			free(p);
		}
	}
	task_event_free_all(ev, nev);
	attempt_free_all(at, nat);
	item_free_all(it, nit);
	task_clear(&t);
	return CTL_OK;
}

/* After a refused operator action: a task in a state that does not allow
 * it (exit 8), or trouble with the store (exit 6). */
static int ctl_refused(struct store *s, int cmd, const char *id, const char *err)
{
	struct task t;
	int rc = store_get(s, id, &t);
	char *e = ctl_safe(err);
	fprintf(stderr, "apubictl: %s\n", e);
	free(e);
	if (rc == 1)
		return CTL_NO_TASK;
	if (rc < 0)
		return CTL_STORE;
	int refused = cmd == CMD_RETRY ? t.state != TS_FAILED && t.state != TS_CANCELLED
				       : task_is_final(t.state);
	task_clear(&t);
	return refused ? CTL_REFUSED : CTL_STORE;
}

static int ctl_store_command(int cmd, const struct ctl_opts *o, char **args)
{
	/* show, retry and cancel name a task: read its TaskId as SOAP and the
	 * task views do, in any case. */
	char id[TASKID_LEN];
	if (cmd == CMD_SHOW || cmd == CMD_RETRY || cmd == CMD_CANCEL) {
		if (util_taskid_parse(args[0], strlen(args[0]), id) < 0) {
			char *e = ctl_safe(args[0]);
			int rc = ctl_usage_error("%s: not a TaskId (a UUID such as "
						 "3F2B8C1E-6A0D-4C55-9E1B-0D7A2C4F9B10)", e);
			free(e);
			return rc;
		}
		args[0] = id;
	}
	struct config cfg;
	int code = ctl_config(o, &cfg);
	if (code != CTL_OK)
		return code;
	struct store *s = NULL;
	if ((code = ctl_store_open(o, &cfg, &s)) != CTL_OK) {
		config_free(&cfg);
		return code;
	}
	char err[1024] = "";
	int rc;
	switch (cmd) {
	case CMD_TASKS:
		code = ctl_tasks(s, o);
		break;
	case CMD_SHOW:
		code = ctl_show(s, o, args[0]);
		break;
	case CMD_RETRY:
		rc = store_admin_retry(s, args[0], err, sizeof err);
		if (rc == 0) {
			printf("task %s queued again\n", args[0]);
		} else if (rc == 1) {
			fprintf(stderr, "apubictl: no task %s in the store\n", args[0]);
			code = CTL_NO_TASK;
		} else {
			code = ctl_refused(s, cmd, args[0], err);
		}
		break;
	case CMD_CANCEL: {
		int was_running = 0;
		rc = store_admin_cancel(s, args[0],
					o->reason ? o->reason : "cancelled by an operator",
					cfg.notify_url != NULL, &was_running, err, sizeof err);
		if (rc == 0 && was_running)
			printf("task %s is running: apubid stops it within about a second "
			       "and records it cancelled\n", args[0]);
		else if (rc == 0)
			printf("task %s cancelled\n", args[0]);
		else if (rc == 1) {
			fprintf(stderr, "apubictl: no task %s in the store\n", args[0]);
			code = CTL_NO_TASK;
		} else {
			code = ctl_refused(s, cmd, args[0], err);
		}
		break;
	}
	case CMD_PRUNE: {
		int64_t age = o->older_ms;
		if (age < 0) {
			if (cfg.retention_days <= 0) {
				code = ctl_usage_error("[store] retention_days is 0 (keep every "
						       "task): give --older-than");
				break;
			}
			age = (int64_t)cfg.retention_days * 86400000;
		}
		int64_t n = store_prune(s, util_now_ms() - age);
		if (n < 0) {
			fprintf(stderr, "apubictl: pruning failed\n");
			code = CTL_STORE;
		} else {
			printf("pruned %" PRId64 " finished task%s\n", n, n == 1 ? "" : "s");
		}
		break;
	}
	}
	store_close(s);
	config_free(&cfg);
	return code;
}

/* ---- conform ---------------------------------------------------------- */

/* `conform`: the command line checked as for the other client commands,
 * then the run itself (ctl_conform.c). The URL comes from the argument,
 * else as for the other client commands. */
static int ctl_conform_command(const struct ctl_opts *o, const char *arg)
{
	if (!o->source || !*o->source || !o->destination || !*o->destination)
		return ctl_usage_error("conform needs --source SRC and --destination DST");
	if (arg && o->url)
		return ctl_usage_error("conform: give the URL once (argument or --url)");
	struct config cfg;
	int have_cfg = 0, code;
	if (!arg && o->config) {
		if ((code = ctl_config(o, &cfg)) != CTL_OK)
			return code;
		have_cfg = 1;
	}
	char *url = arg ? util_strdup(arg) : ctl_endpoint(o, have_cfg ? &cfg : NULL);
	if (have_cfg)
		config_free(&cfg);
	struct ctl_conform_opts co = {
		.url = url, .source = o->source, .destination = o->destination,
		.timeout = o->timeout, .interval = o->interval, .junit = o->junit,
		.verbose = o->verbose, .cacert = o->cacert, .cert = o->cert, .key = o->key,
		.insecure = o->insecure, .user = o->user, .auth_method = o->auth_method,
	};
	char *password = NULL, *src = NULL;
	int https = strncasecmp(url, "https://", 8) == 0;
	code = CTL_USAGE;
	if (!https && strncasecmp(url, "http://", 7) != 0) {
		ctl_usage_error("%s: not an http:// or https:// URL", url);
		goto out;
	}
	if (!https && (o->cacert || o->cert || o->key || o->insecure)) {
		ctl_usage_error("--cacert, --cert, --key and --insecure need an https:// URL");
		goto out;
	}
	if (o->key && !o->cert) {
		ctl_usage_error("--key needs --cert");
		goto out;
	}
	if ((o->password_file || o->auth_method) && !o->user) {
		ctl_usage_error("--password-file and --auth need --user");
		goto out;
	}
	if (o->user) {
		if (o->password_file)
			password = ctl_read_password(o->password_file);
		else if (getenv("APUBICTL_PASSWORD"))
			password = util_strdup(getenv("APUBICTL_PASSWORD"));
		else
			ctl_usage_error("--user %s needs a password: set APUBICTL_PASSWORD or give "
					"--password-file", o->user);
		if (!password)
			goto out;
		co.password = password;
	}
	/* A relative local source means the file here, as for load. */
	if (!url_is_absolute(o->source) && o->source[0] != '/') {
		char *cwd = getcwd(NULL, 0);
		if (cwd)
			co.source = src = util_printf("%s/%s", cwd, o->source);
		free(cwd);
	}
	code = ctl_conform(&co);
out:
	if (password) {
		explicit_bzero(password, strlen(password));
		free(password);
	}
	free(src);
	free(url);
	return code;
}

/* ---- main ------------------------------------------------------------- */

int main(int argc, char **argv)
{
	struct ctl_opts o;
	memset(&o, 0, sizeof o);
	o.state = -1;
	o.older_ms = o.newer_ms = -1;
	o.interval = 1;
	int seen[32]; /* option codes given, for the applicability check */
	int nseen = 0;
	int64_t v;
	int opt, idx;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":u:c:whV", ctl_long, &idx)) != -1) {
		if (opt == '?') {
			return ctl_usage_error("unknown option %s", argv[optind - 1]);
		} else if (opt == ':') {
			return ctl_usage_error("option %s needs a value", argv[optind - 1]);
		}
		if (nseen < 32)
			seen[nseen++] = opt;
		switch (opt) {
		case 'u': o.url = optarg; break;
		case 'c': o.config = optarg; break;
		case OPT_STORE: o.store = optarg; break;
		case OPT_CACERT: o.cacert = optarg; break;
		case OPT_CERT: o.cert = optarg; break;
		case OPT_KEY: o.key = optarg; break;
		case OPT_INSECURE: o.insecure = 1; break;
		case OPT_USER: o.user = optarg; break;
		case OPT_PWFILE: o.password_file = optarg; break;
		case OPT_AUTH:
			if (!strcmp(optarg, "basic"))
				o.auth_method = AUTH_BASIC;
			else if (!strcmp(optarg, "digest"))
				o.auth_method = AUTH_DIGEST;
			else
				return ctl_usage_error("--auth %s: basic or digest", optarg);
			break;
		case 'w': o.wait = 1; break;
		case OPT_TIMEOUT:
			if ((o.timeout = ctl_seconds(optarg)) < 0)
				return ctl_usage_error("--timeout %s: not a number of seconds", optarg);
			break;
		case OPT_INTERVAL:
			if ((o.interval = ctl_seconds(optarg)) < 0.05 || o.interval > 3600)
				return ctl_usage_error("--interval %s: seconds between 0.05 and 3600",
						       optarg);
			break;
		case OPT_STATE:
			if ((o.state = task_state_parse(optarg)) < 0)
				return ctl_usage_error("--state %s: one of queued, running, retry, "
						       "succeeded, failed, cancelled", optarg);
			break;
		case OPT_KIND:
			if ((o.kind = task_kind_parse(optarg)) < 0)
				return ctl_usage_error("--kind %s: load or purge", optarg);
			break;
		case OPT_OLDER:
			if ((o.older_ms = ctl_duration(optarg)) < 0)
				return ctl_usage_error("--older-than %s: a duration such as 30s, "
						       "10m, 2h, 7d", optarg);
			break;
		case OPT_NEWER:
			if ((o.newer_ms = ctl_duration(optarg)) < 0)
				return ctl_usage_error("--newer-than %s: a duration such as 30s, "
						       "10m, 2h, 7d", optarg);
			break;
		case OPT_LIMIT:
			if (ctl_integer(optarg, 1, 1000, &v) < 0)
				return ctl_usage_error("--limit %s: a number from 1 to 1000", optarg);
			o.limit = (int)v;
			break;
		case OPT_BEFORE:
			if (ctl_integer(optarg, 1, INT64_MAX, &v) < 0)
				return ctl_usage_error("--before %s: a sequence number", optarg);
			o.before = v;
			break;
		case OPT_JSON: o.json = 1; break;
		case OPT_REASON: o.reason = optarg; break;
		case OPT_SOURCE: o.source = optarg; break;
		case OPT_DEST: o.destination = optarg; break;
		case OPT_JUNIT: o.junit = optarg; break;
		case OPT_VERBOSE: o.verbose = 1; break;
		case 'h':
			ctl_usage(stdout);
			return CTL_OK;
		case 'V':
			printf("apubictl %s\n", APUBID_VERSION);
			return CTL_OK;
		}
	}
	if (optind >= argc)
		return ctl_usage_error("no command given");
	const struct ctl_command *cmd = NULL;
	for (size_t i = 0; i < sizeof ctl_commands / sizeof ctl_commands[0]; i++)
		if (strcmp(argv[optind], ctl_commands[i].name) == 0)
			cmd = &ctl_commands[i];
	if (!cmd)
		return ctl_usage_error("unknown command %s", argv[optind]);
	int nargs = argc - optind - 1;
	char **args = argv + optind + 1;
	if (nargs < cmd->min_args || nargs > cmd->max_args)
		return ctl_usage_error("usage: apubictl %s %s", cmd->name, cmd->args);
	for (int i = 0; i < nseen; i++) {
		if (!(ctl_option_cmds(seen[i]) & M(cmd->cmd))) {
			const char *name = "?";
			for (const struct option *l = ctl_long; l->name; l++)
				if (l->val == seen[i])
					name = l->name;
			return ctl_usage_error("--%s does not apply to %s", name, cmd->name);
		}
	}
	if (o.store && !*o.store)
		return ctl_usage_error("--store needs a path");
	for (int i = 0; i < nargs; i++)
		if (!*args[i])
			return ctl_usage_error("usage: apubictl %s %s (an argument is empty)",
					       cmd->name, cmd->args);

	/* A server that closes the connection mid-write (a TLS peer refusing
	 * our certificate) must give an error, not kill the process. */
	signal(SIGPIPE, SIG_IGN);
	/* The store's own log lines (schema upgrades, errors) are for the
	 * daemon's log; apubictl says what matters itself. */
	log_set_level(LOG_ERROR);
	if (cmd->cmd == CMD_CONFORM)
		return ctl_conform_command(&o, nargs ? args[0] : NULL);
	if (cmd->cmd == CMD_LOAD || cmd->cmd == CMD_PURGE || cmd->cmd == CMD_STATUS)
		return ctl_client_command(cmd->cmd, &o, args);
	return ctl_store_command(cmd->cmd, &o, args);
}

/*
 * ctl.c - apubictl's command line: options, usage, exit statuses, and the
 * dispatch to the role that carries a command out (client.c for load,
 * purge and status, admin.c for the store commands, conform.c for
 * conform).
 *
 * Every option is checked here against the commands it applies to (an
 * option given to a command it does not apply to is a usage error, not
 * silently ignored), and every value is parsed here, so that the other
 * files receive a checked struct ctl_opts.
 *
 * Invariants: passwords come from the environment or a file, never from
 * the command line; the exit status says what happened (enum ctl_exit in
 * ctl.h, documented in --help and apubictl(8)) so that scripts can branch
 * on it.
 */
#include "ctl.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
		"      --store PATH        the store's SQLite file or PostgreSQL URI, overriding the\n"
		"                          configuration\n"
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

int ctl_usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("apubictl: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputs("\n(see apubictl --help)\n", stderr);
	va_end(ap);
	return CTL_USAGE;
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
char *ctl_read_password(const char *path)
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

/* ---- configuration ---------------------------------------------------- */

int ctl_config(const struct ctl_opts *o, struct config *cfg)
{
	char err[1024];
	if (config_load(cfg, o->config, err, sizeof err) < 0) {
		fprintf(stderr, "apubictl: %s\n", err);
		config_free(cfg);
		return CTL_USAGE;
	}
	return CTL_OK;
}

/* ---- conform ---------------------------------------------------------- */

/* `conform`: the command line checked as for the other client commands,
 * then the run itself (conform.c). The URL comes from the argument,
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
	char *url = arg ? util_strdup(arg) : client_endpoint(o, have_cfg ? &cfg : NULL);
	if (have_cfg)
		config_free(&cfg);
	struct conform_opts co = {
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
	code = conform_run(&co);
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
		return client_command(cmd->cmd, &o, args);
	return admin_command(cmd->cmd, &o, args);
}

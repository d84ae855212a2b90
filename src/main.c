/*
 * main.c - options, start-up order, signals and shutdown.
 *
 * Start-up: read and check the configuration and the directories it names
 * (paths.c; -n stops here; the TLS and credentials files are read now),
 * open [log] file, bind the listening socket and load the TLS key, drop to
 * [server] user when set, then, with only that user's rights: take the
 * store's lock (lock.c: a second apubid on the same store stops here,
 * before it could take the first one's running tasks for interrupted
 * ones), open the store (applying its schema), put back to queued every
 * task a crash left running, start the task workers, the notifier and the
 * signal thread, and serve until SIGTERM or SIGINT. The store is opened
 * after the drop on purpose: every file apubid creates (the store, its
 * WAL, its lock file, published assets) then belongs to the service user,
 * and a store that user cannot write stops the start instead of failing
 * later. The lock is a descriptor, so it would survive the drop as well;
 * it is taken after it so that its file belongs to the service user too.
 * `-n` reads the configuration and checks the directories only: it
 * neither opens the store nor takes its lock, so it checks a file beside a
 * running apubid.
 * Shutdown: stop accepting, finish the requests in flight, stop the workers
 * at a safe point (an interrupted task is queued again and resumes at the
 * next start), then the notifier, release the store's lock, exit 0. The notifier stops last so that
 * a task the workers finish while stopping is notified now rather than at
 * the next start when the receiver answers quickly; a POST it cannot
 * finish is aborted and stays pending in the store.
 *
 * Signals: SIGTERM, SIGINT and SIGHUP are blocked in every thread (the
 * mask is set before the first thread starts and inherited) and taken by
 * one thread with sigwait, so reloading runs in an ordinary thread, not in
 * a handler. SIGTERM and SIGINT raise the stop flag the accept loop polls.
 * SIGHUP reloads: the log file is opened again (logrotate), the
 * configuration file is read again and what may change at run time is
 * applied (config_reload); a file that does not parse changes nothing.
 * New [staging] rules are installed with rules_set: submissions that
 * follow use them, tasks already accepted keep the rule they were given.
 */
#include "apubid.h"

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static volatile sig_atomic_t main_stop;
/* The running configuration and where it came from (NULL: built in). */
static struct config main_cfg;
static const char *main_file;
static sigset_t main_signals;

/* Puts the configuration's [staging] rules in force (a copy: the
 * configuration keeps its own to compare with at the next reload), and
 * says so, since they make apubid answer what it did not do. */
static void main_rules_install(void)
{
	const struct rules *rs = main_cfg.staging_enabled ? main_cfg.rules : NULL;
	rules_set(rules_copy(rs));
	if (rs)
		log_warn("staging: %d scripted rule%s in force: apubid answers what they script, "
			 "not only what it does (not for production)",
			 rs->n, rs->n == 1 ? "" : "s");
	else if (main_cfg.staging_enabled)
		log_info("staging: enabled, no rule: every task runs for real");
}

/* SIGHUP: everything that may change while apubid runs. A step added
 * here must leave the running configuration as it was when it fails. */
static void main_reload(void)
{
	char err[1024], applied[1024], restart[1024];
	struct config fresh;
	if (config_reread(&fresh, main_file, err, sizeof err) < 0) {
		/* Rotation must work even while the file is being edited. */
		char e[512];
		if (log_reopen(e, sizeof e) < 0)
			log_error("reload: %s", e);
		log_error("reload: %s; the running configuration is kept", err);
		return;
	}
	int n = config_reload(&main_cfg, &fresh, applied, sizeof applied, restart,
			      sizeof restart);
	config_free(&fresh);
	/* Tasks already accepted keep the rule copied onto them; the next
	 * submissions follow the new set. */
	if (strstr(applied, "staging."))
		main_rules_install();
	/* Opens the file again (rotation) or the one now named. */
	if (log_open(main_cfg.log_file, err, sizeof err) < 0)
		log_error("reload: %s", err);
	log_set_level(main_cfg.log_level);
	log_set_format(main_cfg.log_format);
	notify_reload(&main_cfg);
	if (n > 0)
		log_info("reload: applied %s", applied);
	else
		log_info("reload: %s read again, no setting that can be reloaded changed",
			 main_file ? main_file : "built-in configuration");
	if (*restart)
		log_warn("reload: %s changed: restart apubid to apply them", restart);
}

/* The signal thread: SIGHUP reloads, SIGTERM and SIGINT stop apubid. */
static void *main_signal_loop(void *arg)
{
	(void)arg;
	for (;;) {
		int sig;
		if (sigwait(&main_signals, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			log_info("SIGHUP: reloading the configuration");
			main_reload();
			continue;
		}
		main_stop = 1;
		return NULL;
	}
}

/* Becomes [server] user for good: supplementary groups, group, then user
 * (real, effective and saved), and checks that root cannot be regained.
 * Without `user`, only warns when running as root. */
static int main_drop_privileges(const struct config *c)
{
	if (!c->user) {
		if (geteuid() == 0)
			log_warn("running as root: set [server] user to drop privileges after binding");
		return 0;
	}
	errno = 0;
	struct passwd *pw = getpwnam(c->user);
	if (!pw) {
		log_error("[server] user %s: %s", c->user, errno ? strerror(errno) : "no such user");
		return -1;
	}
	uid_t uid = pw->pw_uid;
	gid_t gid = pw->pw_gid;
	if (geteuid() != 0) {
		if (getuid() == uid && geteuid() == uid)
			return 0; /* started as that user already */
		log_error("cannot switch to user %s: apubid is not running as root", c->user);
		return -1;
	}
	if (initgroups(c->user, gid) < 0 || setresgid(gid, gid, gid) < 0 ||
	    setresuid(uid, uid, uid) < 0) {
		log_error("cannot switch to user %s: %s", c->user, strerror(errno));
		return -1;
	}
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	if (setuid(0) == 0 || seteuid(0) == 0 || setgid(0) == 0 || getresuid(&ru, &eu, &su) < 0 ||
	    getresgid(&rg, &eg, &sg) < 0 || ru != uid || eu != uid || su != uid || rg != gid ||
	    eg != gid || sg != gid) {
		log_error("privileges were not dropped for good (user %s): stopping", c->user);
		return -1;
	}
	log_info("running as user %s (uid %u, gid %u)", c->user, (unsigned)uid, (unsigned)gid);
	return 0;
}

static void main_usage(FILE *f)
{
	fprintf(f, "usage: apubid [-f FILE] [-n] [-h|--help] [-V|--version]\n"
		   "  -f FILE        read the configuration from FILE (default: built-in defaults)\n"
		   "  -n             check the configuration and exit\n"
		   "  -h, --help     show this help\n"
		   "  -V, --version  show the version\n");
}

static const struct option main_long[] = {
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

int main(int argc, char **argv)
{
	const char *file = NULL;
	int check_only = 0, opt;
	while ((opt = getopt_long(argc, argv, "f:nhV", main_long, NULL)) != -1) {
		switch (opt) {
		case 'f':
			file = optarg;
			break;
		case 'n':
			check_only = 1;
			break;
		case 'h':
			main_usage(stdout);
			return 0;
		case 'V':
			printf("apubid %s\n", APUBID_VERSION);
			return 0;
		default:
			main_usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		main_usage(stderr);
		return 2;
	}

	char err[1024];
	main_file = file;
	if (config_load(&main_cfg, file, err, sizeof err) < 0) {
		fprintf(stderr, "apubid: %s\n", err);
		config_free(&main_cfg);
		return 1;
	}
	/* The directories it names, as the user apubid will run as: every
	 * problem is listed, and none is left for the first task to find. */
	char *report;
	int problems = paths_check(&main_cfg, &report);
	for (char *l = strtok(report, "\n"); l; l = strtok(NULL, "\n"))
		fprintf(stderr, "apubid: %s\n", l);
	free(report);
	if (problems) {
		config_free(&main_cfg);
		return 1;
	}
	if (check_only) {
		printf("apubid: configuration %s is valid\n", file ? file : "(built-in defaults)");
		config_free(&main_cfg);
		return 0;
	}
	if (main_cfg.log_file && log_open(main_cfg.log_file, err, sizeof err) < 0) {
		fprintf(stderr, "apubid: %s\n", err);
		config_free(&main_cfg);
		return 1;
	}
	log_set_level(main_cfg.log_level);
	log_set_format(main_cfg.log_format);

	/* Before any thread exists, so that every thread inherits the mask
	 * and only the signal thread takes these signals. */
	sigemptyset(&main_signals);
	sigaddset(&main_signals, SIGTERM);
	sigaddset(&main_signals, SIGINT);
	sigaddset(&main_signals, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &main_signals, NULL);
	signal(SIGPIPE, SIG_IGN);

	log_info("apubid %s starting (configuration: %s)", APUBID_VERSION,
		 file ? file : "built-in defaults");
	if (server_bind(&main_cfg) < 0 || main_drop_privileges(&main_cfg) < 0) {
		config_free(&main_cfg);
		return 1;
	}
	if (xfer_curl_global_init(err, sizeof err) < 0) {
		log_error("%s", err);
		config_free(&main_cfg);
		return 1;
	}
	/* A SQLite store belongs to one daemon; a PostgreSQL one is shared
	 * by design, each node's claims guarded by leases. */
	if (!main_cfg.store_url && lock_take(main_cfg.store_path, err, sizeof err) < 0) {
		log_error("%s", err);
		config_free(&main_cfg);
		return 1;
	}
	struct store *s = store_open(&main_cfg, err, sizeof err);
	if (!s) {
		log_error("%s", err);
		config_free(&main_cfg);
		return 1;
	}
	int recovered = store_recover(s);
	int64_t active = store_count_active(s);
	char *name = util_strdup(store_name(s));
	store_close(s);
	if (recovered < 0 || active < 0) {
		log_error("cannot read the task store %s", name);
		free(name);
		config_free(&main_cfg);
		return 1;
	}
	if (recovered > 0)
		log_info("store: %d interrupted tasks queued again", recovered);
	log_info("store: %s, %lld unfinished tasks", name, (long long)active);
	free(name);
	pool_add_active(active);
	if (store_start(&main_cfg, pool_wake, err, sizeof err) < 0) {
		log_error("%s", err);
		config_free(&main_cfg);
		return 1;
	}

	main_rules_install();
	if (pool_start(&main_cfg) < 0) {
		config_free(&main_cfg);
		return 1;
	}
	if (notify_start(&main_cfg) < 0) {
		pool_stop();
		config_free(&main_cfg);
		return 1;
	}
	pthread_t sig_thread;
	int e = pthread_create(&sig_thread, NULL, main_signal_loop, NULL);
	if (e != 0) {
		log_error("cannot start the signal thread: %s", strerror(e));
		pool_stop();
		notify_stop();
		config_free(&main_cfg);
		return 1;
	}
	int rc = server_run(&main_cfg, &main_stop);
	/* server_run also returns when it could not serve: end the signal
	 * thread the way a SIGTERM would. */
	if (!main_stop)
		pthread_kill(sig_thread, SIGTERM);
	pthread_join(sig_thread, NULL);
	/* No request is in flight any more: nothing can be waiting for the
	 * committer. */
	store_stop();
	pool_stop();
	notify_stop();
	xfer_curl_global_cleanup();
	rules_set(NULL);
	/* Nothing writes to the store any more. */
	lock_release();
	log_info("apubid stopped");
	config_free(&main_cfg);
	return rc < 0 ? 1 : 0;
}

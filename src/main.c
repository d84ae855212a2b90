/*
 * main.c - options, start-up order, signals and shutdown.
 *
 * Start-up: read and check the configuration (-n stops here; the TLS and
 * credentials files are read now), bind the listening socket and load the
 * TLS key, drop to [server] user when set, then, with only that user's
 * rights: open the store (applying its schema), put back to queued every
 * task a crash left running, start the task workers, and serve until
 * SIGTERM or SIGINT. The store is opened after the drop on purpose: every
 * file apubid creates (the store, its WAL, published assets) then belongs
 * to the service user, and a store that user cannot write stops the start
 * instead of failing later.
 * Shutdown: stop accepting, finish the requests in flight, stop the workers
 * at a safe point (an interrupted task is queued again and resumes at the
 * next start), exit 0.
 */
#include "apubid.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static volatile sig_atomic_t main_stop;

static void main_on_signal(int sig)
{
	(void)sig;
	main_stop = 1;
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
	fprintf(f, "usage: apubid [-f FILE] [-n] [-h] [-V]\n"
		   "  -f FILE  read the configuration from FILE (default: built-in defaults)\n"
		   "  -n       check the configuration and exit\n"
		   "  -h       show this help\n"
		   "  -V       show the version\n");
}

int main(int argc, char **argv)
{
	const char *file = NULL;
	int check_only = 0, opt;
	while ((opt = getopt(argc, argv, "f:nhV")) != -1) {
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

	struct config cfg;
	char err[1024];
	if (config_load(&cfg, file, err, sizeof err) < 0) {
		fprintf(stderr, "apubid: %s\n", err);
		config_free(&cfg);
		return 1;
	}
	if (check_only) {
		printf("apubid: configuration %s is valid\n", file ? file : "(built-in defaults)");
		config_free(&cfg);
		return 0;
	}
	log_set_level(cfg.log_level);

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = main_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	log_info("apubid %s starting (configuration: %s)", APUBID_VERSION,
		 file ? file : "built-in defaults");
	if (server_bind(&cfg) < 0 || main_drop_privileges(&cfg) < 0) {
		config_free(&cfg);
		return 1;
	}
	if (xfer_curl_global_init(err, sizeof err) < 0) {
		log_error("%s", err);
		config_free(&cfg);
		return 1;
	}
	struct store *s = store_open(cfg.store_path, err, sizeof err);
	if (!s) {
		log_error("%s", err);
		config_free(&cfg);
		return 1;
	}
	int recovered = store_recover(s);
	int64_t active = store_count_active(s);
	store_close(s);
	if (recovered < 0 || active < 0) {
		log_error("cannot read the task store %s", cfg.store_path);
		config_free(&cfg);
		return 1;
	}
	if (recovered > 0)
		log_info("store: %d interrupted tasks queued again", recovered);
	log_info("store: %s, %lld unfinished tasks", cfg.store_path, (long long)active);
	pool_add_active(active);

	if (pool_start(&cfg) < 0) {
		config_free(&cfg);
		return 1;
	}
	int rc = server_run(&cfg, &main_stop);
	pool_stop();
	xfer_curl_global_cleanup();
	log_info("apubid stopped");
	config_free(&cfg);
	return rc < 0 ? 1 : 0;
}

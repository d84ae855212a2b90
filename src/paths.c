/*
 * paths.c - the local directories apubid works in, checked before it
 * starts and while it runs.
 *
 * apubid creates none of them: the store's directory, a file://
 * destination root and the file:// [source] allow prefixes are the
 * operator's (a typo must not quietly make a fresh empty tree somewhere,
 * and a root that vanished with its mount must not be refilled on the
 * disk underneath). So paths_check makes sure, for `apubid -n` and at
 * every start, before the first request can be accepted, that:
 *
 *   - the store's directory exists and the service user can create files
 *     in it (SQLite adds -wal and -shm files beside the store), and an
 *     existing store is a file that user can write;
 *   - a file:// destination root is a directory that user can write;
 *   - every file:// [source] allow prefix is a directory that user can
 *     read.
 *
 * "The service user" is [server] user when apubid is root and one is set:
 * the checks then run in a child process that has become that user the
 * way main.c does (supplementary groups, group, user), so access(2) gives
 * the answer the running daemon would get, ACLs, read-only mounts and
 * root-squashing NFS included, without reimplementing permission rules.
 * Otherwise apubid checks as itself. Every problem is reported, not only
 * the first, each as "FILE:LINE: reason: system error" naming the setting's
 * line (config.c records it; a setting left at its default is named
 * without a line).
 *
 * While running, paths_health (for /healthz) looks again at the
 * destination root, cheaply: one stat and one access. The root must still
 * be a writable directory on the device it was on at start: a root that
 * was unmounted leaves its mount point behind, on another device, and
 * publishing there would fill the wrong disk; a read-only remount fails
 * access(W_OK) with EROFS.
 */
#include "apubid.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* The destination root's device when paths_check last saw it. */
static dev_t paths_root_dev;
static int paths_root_known;

/* Appends one problem: "NAME:LINE: what path reason: strerror(e)". */
static void paths_problem(struct util_buf *b, const struct config *c, int line,
			  const char *what, const char *path, const char *reason, int e)
{
	const char *name = c->name ? c->name : "(built-in defaults)";
	if (line)
		util_buf_addf(b, "%s:%d: ", name, line);
	else
		util_buf_addf(b, "%s: ", name);
	util_buf_addf(b, "%s %s %s: %s\n", what, path, reason, strerror(e));
}

/* Checks that `path` is a directory (`dir`) or a regular file, allowing
 * `mode` (R_OK, W_OK, X_OK) to the current process; `as` names the user
 * for messages ("" when apubid checks as itself). Returns 0 or -1 with a
 * problem added to b. */
static int paths_one(struct util_buf *b, const struct config *c, int line, const char *what,
		     const char *path, int dir, int mode, const char *as)
{
	struct stat st;
	char reason[160];
	if (stat(path, &st) < 0) {
		int e = errno;
		paths_problem(b, c, line, what, path,
			      e == ENOENT || e == ENOTDIR ? "does not exist" : "cannot be reached", e);
		return -1;
	}
	if (dir && !S_ISDIR(st.st_mode)) {
		paths_problem(b, c, line, what, path, "is not a directory", ENOTDIR);
		return -1;
	}
	if (!dir && S_ISDIR(st.st_mode)) {
		paths_problem(b, c, line, what, path, "is a directory", EISDIR);
		return -1;
	}
	if (access(path, mode) < 0) {
		int e = errno;
		snprintf(reason, sizeof reason, "is not %s%s%s",
			 mode & W_OK ? "writable" : "readable", *as ? " by user " : "", as);
		paths_problem(b, c, line, what, path, reason, e);
		return -1;
	}
	return 0;
}

/* Every check, as the current process; returns the number of problems. */
static int paths_run(struct util_buf *b, const struct config *c, const char *as)
{
	int n = 0;
	/* A PostgreSQL store has no directory here; a spool set for it
	 * must be one apubid can write. */
	if (c->store_url && c->spool_dir && c->spool_line &&
	    paths_one(b, c, c->spool_line, "[store] spool", c->spool_dir, 1, W_OK | X_OK, as) < 0)
		n++;
	if (c->store_path && !c->store_url) {
		const char *slash = strrchr(c->store_path, '/');
		char *dir = slash ? util_strndup(c->store_path,
						 slash == c->store_path ? 1 : (size_t)(slash - c->store_path))
				  : util_strdup(".");
		struct stat st;
		if (paths_one(b, c, c->store_path_line, "the store's directory", dir, 1,
			      W_OK | X_OK, as) < 0)
			n++;
		else if (stat(c->store_path, &st) == 0 &&
			 paths_one(b, c, c->store_path_line, "[store] path", c->store_path, 0,
				   R_OK | W_OK, as) < 0)
			n++;
		free(dir);
	}
	if (c->dest_root_path &&
	    paths_one(b, c, c->dest_root_line, "[destination] root", c->dest_root_path, 1,
		      W_OK | X_OK, as) < 0)
		n++;
	for (int i = 0; i < c->nsource_allow; i++) {
		struct url u;
		if (strncmp(c->source_allow[i], "file://", 7) != 0 ||
		    url_parse(c->source_allow[i], &u, NULL, 0) < 0)
			continue;
		/* The prefix ends in '/'; "/" itself stays "/". */
		size_t len = strlen(u.path);
		if (len > 1 && u.path[len - 1] == '/')
			u.path[len - 1] = '\0';
		if (paths_one(b, c, c->source_allow_line[i], "[source] allow", u.path, 1,
			      R_OK | X_OK, as) < 0)
			n++;
		url_free(&u);
	}
	return n;
}

/* Runs the checks in a child that has become `user`; the child's report
 * comes back through a pipe. Returns the number of problems. */
static int paths_run_as(struct util_buf *b, const struct config *c, const char *user)
{
	int fds[2];
	if (pipe(fds) < 0) {
		util_buf_addf(b, "cannot check the paths as user %s: %s\n", user, strerror(errno));
		return 1;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		util_buf_addf(b, "cannot check the paths as user %s: %s\n", user, strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return 1;
	}
	if (pid == 0) {
		struct util_buf r = { 0 };
		int n;
		close(fds[0]);
		struct passwd *pw = getpwnam(user);
		if (!pw || initgroups(user, pw->pw_gid) < 0 ||
		    setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) < 0 ||
		    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) < 0) {
			util_buf_addf(&r, "cannot check the paths as user %s: %s\n", user,
				      pw ? strerror(errno) : "no such user");
			n = 1;
		} else {
			n = paths_run(&r, c, user);
		}
		for (size_t off = 0; off < r.len;) {
			ssize_t w = write(fds[1], r.p + off, r.len - off);
			if (w <= 0)
				break;
			off += (size_t)w;
		}
		_exit(n > 100 ? 100 : n);
	}
	close(fds[1]);
	char buf[4096];
	ssize_t got;
	while ((got = read(fds[0], buf, sizeof buf)) != 0) {
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			break;
		util_buf_add(b, buf, (size_t)got);
	}
	close(fds[0]);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status)) {
		util_buf_addf(b, "cannot check the paths as user %s: the check did not finish\n",
			      user);
		return 1;
	}
	return WEXITSTATUS(status);
}

int paths_check(const struct config *c, char **report)
{
	struct util_buf b = { 0 };
	int n;
	if (c->user && geteuid() == 0)
		n = paths_run_as(&b, c, c->user);
	else
		n = paths_run(&b, c, "");
	struct stat st;
	paths_root_known = c->dest_root_path && stat(c->dest_root_path, &st) == 0;
	if (paths_root_known)
		paths_root_dev = st.st_dev;
	util_buf_adds(&b, "");
	*report = b.p;
	return n;
}

int paths_health(const struct config *c, char *why, size_t whylen)
{
	const char *root = c->dest_root_path;
	struct stat st;
	if (!root)
		return 0;
	if (stat(root, &st) < 0) {
		util_error(why, whylen, "root %s: %s", root, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		util_error(why, whylen, "root %s: %s", root, strerror(ENOTDIR));
		return -1;
	}
	if (paths_root_known && st.st_dev != paths_root_dev) {
		util_error(why, whylen,
			   "root %s is no longer on the filesystem it was on at start (unmounted?)",
			   root);
		return -1;
	}
	if (access(root, W_OK | X_OK) < 0) {
		util_error(why, whylen, "root %s is not writable: %s", root, strerror(errno));
		return -1;
	}
	return 0;
}

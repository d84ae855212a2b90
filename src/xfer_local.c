/*
 * xfer_local.c - the local-filesystem side of transfers: listing and reading
 * a local source, assembling an asset below the local destination root
 * ("a stage") and putting it in place, and purging an asset from the
 * root. These pieces are the end xfer.c drives (xfer_local_end, struct
 * xfer_end_ops, at the bottom of this file), whatever the other end is;
 * the copy between two local files is xfer_fd.c's.
 *
 * Invariants this file keeps:
 *
 * - Nothing is written, renamed or removed outside the root. The root is
 *   opened once, and every path below it is reached by walking the relative
 *   path one component at a time with openat(O_NOFOLLOW | O_DIRECTORY). A
 *   symbolic link anywhere on the way fails the task; a symbolic link at the
 *   final name is replaced or unlinked itself, never followed. Paths inside
 *   a stage are walked the same way from the staging directory, and
 *   recursive removal (xfer_local_rmtree) follows the same rule.
 *
 * - The final name never shows a partial asset. A file is written as
 *   ".<name>.apubid-<taskid>.tmp" in its final directory; a directory tree
 *   is assembled under ".<name>.apubid-<taskid>.stage" beside its final
 *   place. Each file's writeback starts when it is finished, one syncfs of
 *   the root's file system at commit makes every staged file and directory
 *   of a package durable at once (a single file: one fsync), and then the
 *   stage is renamed into place. When a plain
 *   rename cannot replace what is there (a directory with content, or a
 *   different type), the stage is first renamed to
 *   ".<name>.apubid-<taskid>.swap" and swapped with the old asset by
 *   renameat2(RENAME_EXCHANGE), so the old asset lands under the swap name,
 *   never under the stage name: a retry that resumes a stage can therefore
 *   never mistake the old asset for a partial new one. Whatever was there
 *   before is removed only after the new asset is visible. A purged
 *   directory is first renamed to ".<name>.apubid-<taskid>.purge" so it
 *   vanishes at once, and only then deleted file by file.
 *
 * - A stage can outlive an attempt. The side names carry the TaskId, so a
 *   retry of the same task finds what an earlier attempt left: opened with
 *   `resume` it continues in it (a partial file keeps its bytes and tells
 *   its size), without `resume` it removes it first. Two tasks never share
 *   a side name. Before a commit, xfer_local_stage_prune removes whatever
 *   the task's plan does not name; the commit publishes the staged tree
 *   as it then stands, files finished by earlier attempts included (the
 *   caller skips those, after reading them back), but refuses one that
 *   holds a symbolic link or a special file where the plan has a file or
 *   a directory: only files and directories are ever staged, so anything
 *   else was planted.
 *
 * - Sources are read without following a symbolic link at the source's
 *   last component or anywhere inside a source tree: a link or a special
 *   file in a package fails the task rather than publishing something the
 *   customer did not put in it.
 *
 * - What a changing source gets: xfer_local_version tells one version of a
 *   source file from another (size, modification and status change times
 *   in nanoseconds, device, inode), from the open descriptor or from what
 *   the path names now. The copy reads exactly the size the file had when
 *   opened, so a file that grows, shrinks or is rewritten meanwhile
 *   would be published as neither version; xfer.c compares the two before
 *   and after and never publishes such a copy.
 *
 * Errors are reported once, in `err`, as a sentence fit for a task's
 * reason. Destination failures name the relative path the WFM asked for
 * ("cannot write dir/movie.ts: ..."), not the absolute path on our disks;
 * source failures name the source path the WFM sent. A stage handle is used
 * by one thread at a time.
 */
#include "xfer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

#define XFER_LOCAL_DIR_FLAGS (O_DIRECTORY | O_NOFOLLOW | O_RDONLY | O_CLOEXEC)

/* Flags for xfer_local_walk. */
#define XFER_LOCAL_WALK_CREATE 1 /* make missing directories on the way */
#define XFER_LOCAL_WALK_SYNC 2   /* and fsync the directory each was made in */

/* A file of a stage handed out by xfer_local_stage_file and not yet
 * finished, so later calls on its descriptor can name it in messages. */
struct xfer_local_open {
	int fd;
	char *path;
};

struct xfer_local_stage {
	char *rel;     /* the asset below the root, for messages */
	char *prefix;  /* rel + "/", for messages about paths inside a package */
	char *taskid;
	int is_dir;
	int pfd;       /* the directory that holds the final name */
	char *name;    /* the final name in pfd */
	char *side;    /* the staging name in pfd: ".stage" or ".tmp" */
	int dfd;       /* the staging directory of a directory asset, else -1 */
	int gone;      /* committed: nothing left under the side names */
	int found;     /* an earlier attempt's stage was there to continue */
	struct xfer_local_open *open;
	int nopen, capopen;
};

/* Grows an array like util_malloc allocates: never NULL. */
static void *xfer_local_grow(void *p, int *cap, size_t elem)
{
	int n = *cap ? *cap * 2 : 16;
	void *q = realloc(p, (size_t)n * elem);
	if (!q) {
		log_error("out of memory (%zu bytes)", (size_t)n * elem);
		abort();
	}
	*cap = n;
	return q;
}

/* A TaskId becomes part of file names, so it must not carry a '/' or
 * anything else a file name should not: accept what util_uuid produces and
 * similar tokens. */
static int xfer_local_taskid_ok(const char *id)
{
	if (!id || !*id || strlen(id) > 64)
		return 0;
	for (const char *p = id; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= 'a' && *p <= 'z') || *p == '-'))
			return 0;
	return 1;
}

/* One path component as the walk accepts it. Paths arrive normalised; this
 * is the second line of defence, so a caller's bug cannot turn into a walk
 * out of the root or the source. */
static int xfer_local_name_ok(const char *s, size_t n)
{
	if (n == 0 || n > NAME_MAX)
		return 0;
	if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
		return 0;
	return memchr(s, '/', n) == NULL;
}

/* 1 when every '/'-separated component of a non-empty `path` is one the
 * walk accepts (so no "..", ".", empty segment, or leading or trailing
 * '/'). */
static int xfer_local_path_ok(const char *path)
{
	if (!path || !*path)
		return 0;
	for (const char *p = path;;) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		if (!xfer_local_name_ok(p, n))
			return 0;
		if (!slash)
			return 1;
		p = slash + 1;
	}
}

/* The name of a side file beside `name`: ".<name>.apubid-<taskid>.<what>".
 * Returns a malloc'ed string the caller frees. */
static char *xfer_local_side_name(const char *name, const char *taskid, const char *what)
{
	return util_printf(".%s.apubid-%s.%s", name, taskid, what);
}

/* 1 when opening `name` in `dirfd` failed with `e` because it is a
 * symbolic link (O_NOFOLLOW answers ELOOP, or ENOTDIR with O_DIRECTORY). */
static int xfer_local_is_link(int dirfd, const char *name, int e)
{
	struct stat st;
	return (e == ELOOP || e == ENOTDIR) &&
	       fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode);
}

/*
 * Removes `name` in the directory `dirfd`: a file, a symbolic link (the
 * link itself) or a whole directory tree. Symbolic links are never followed,
 * so the removal cannot leave the tree it was pointed at. Returns 0, or -1
 * with errno set; ENOENT means there was nothing to remove.
 */
static int xfer_local_rmtree(int dirfd, const char *name)
{
	if (unlinkat(dirfd, name, 0) == 0)
		return 0;
	/* Linux answers EISDIR for a directory; POSIX allows EPERM. */
	if (errno != EISDIR && errno != EPERM)
		return -1;
	int first = errno;
	int fd = openat(dirfd, name, XFER_LOCAL_DIR_FLAGS);
	if (fd < 0) {
		/* Not a directory after all: the unlink's own reason stands. */
		if (errno == ENOTDIR || errno == ELOOP)
			errno = first;
		return -1;
	}
	DIR *d = fdopendir(fd);
	if (!d) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	int rc = -1, e = 0;
	/* Whether readdir returns entries added or removed while it runs is
	 * unspecified, so after a pass the directory may still hold something;
	 * a few passes settle it, and a tree that keeps growing under us is an
	 * error rather than a loop. */
	for (int pass = 0; pass < 4; pass++) {
		struct dirent *de;
		errno = 0;
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			if (xfer_local_rmtree(fd, de->d_name) < 0 && errno != ENOENT) {
				e = errno;
				goto out;
			}
			errno = 0;
		}
		if (errno) {
			e = errno;
			goto out;
		}
		if (unlinkat(dirfd, name, AT_REMOVEDIR) == 0) {
			rc = 0;
			goto out;
		}
		e = errno;
		if (e != ENOTEMPTY && e != EEXIST)
			goto out;
		rewinddir(d);
	}
out:
	closedir(d);
	if (rc < 0)
		errno = e;
	return rc;
}

/* Removes a side name left by an earlier attempt of this task. */
static int xfer_local_clear_stale(int dirfd, const char *side)
{
	if (xfer_local_rmtree(dirfd, side) < 0 && errno != ENOENT)
		return -1;
	return 0;
}

static int xfer_local_cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads the names in the directory `dirfd` (without "." and ".."), sorted
 * bytewise so listings and walks come out in the same order every time.
 * Returns 0 with a malloc'ed *names of *n strings, or -1 with errno set. */
static int xfer_local_read_names(int dirfd, char ***names, int *n)
{
	*names = NULL;
	*n = 0;
	/* fdopendir takes its descriptor over; give it its own. */
	int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	DIR *d = fdopendir(fd);
	if (!d) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	/* A descriptor shared with an earlier readdir may be at its end. */
	rewinddir(d);
	char **v = NULL;
	int nv = 0, cap = 0, e = 0;
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
			if (nv == cap)
				v = xfer_local_grow(v, &cap, sizeof *v);
			v[nv++] = util_strdup(de->d_name);
		}
		errno = 0;
	}
	e = errno;
	closedir(d);
	if (e) {
		for (int i = 0; i < nv; i++)
			free(v[i]);
		free(v);
		errno = e;
		return -1;
	}
	if (nv > 1)
		qsort(v, (size_t)nv, sizeof *v, xfer_local_cmp_names);
	*names = v;
	*n = nv;
	return 0;
}

static void xfer_local_free_names(char **names, int n)
{
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/*
 * Opens the directory that holds the last component of `rel`, walking down
 * from `startfd` one component at a time without following symbolic links.
 * With XFER_LOCAL_WALK_CREATE, missing directories are made (0755, subject to
 * the umask) on the way; with XFER_LOCAL_WALK_SYNC as well, the directory
 * each was made in is fsync'ed. `prefix` goes before `rel` in messages ("" or
 * "pkg/" for a path inside a package). Returns 0 with *dirfd (the caller
 * closes it) and *leaf (a pointer into rel), 1 when a component is missing
 * or is a file and CREATE is off (the asset is absent), -1 with err set.
 */
static int xfer_local_walk(int startfd, const char *prefix, const char *rel, int flags,
			  int *dirfd, const char **leaf, char *err, size_t errlen)
{
	int create = flags & XFER_LOCAL_WALK_CREATE;
	*dirfd = -1;
	*leaf = NULL;
	if (!rel || !*rel)
		return xfer_fail(err, errlen, "invalid destination path: it is empty");
	/* Check every component before touching the disk, so a bad path
	 * creates nothing. */
	if (!xfer_local_path_ok(rel))
		return xfer_fail(err, errlen, "invalid destination path: %s%s", prefix, rel);

	int fd = fcntl(startfd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return xfer_fail(err, errlen, "cannot open %s: %s",
				*prefix ? prefix : "the destination root", strerror(errno));
	const char *p = rel;
	for (;;) {
		const char *slash = strchr(p, '/');
		if (!slash) {
			*dirfd = fd;
			*leaf = p;
			return 0;
		}
		size_t n = (size_t)(slash - p);
		int upto = (int)(slash - rel); /* rel up to this component, for messages */
		char comp[NAME_MAX + 1];
		memcpy(comp, p, n);
		comp[n] = '\0';

		int created = 0;
		int next = openat(fd, comp, XFER_LOCAL_DIR_FLAGS);
		if (next < 0 && errno == ENOENT && create) {
			if (mkdirat(fd, comp, 0755) == 0)
				created = 1;
			else if (errno != EEXIST) {
				int e = errno;
				close(fd);
				return xfer_fail(err, errlen, "cannot create %s%.*s: %s", prefix,
						upto, rel, strerror(e));
			}
			/* EEXIST: another task made it meanwhile; open what is there. */
			next = openat(fd, comp, XFER_LOCAL_DIR_FLAGS);
		}
		if (next < 0) {
			int e = errno;
			int islink = xfer_local_is_link(fd, comp, e);
			close(fd);
			if (islink)
				return xfer_fail(err, errlen,
						"destination path crosses a symbolic link: %s%.*s",
						prefix, upto, rel);
			if (!create && (e == ENOENT || e == ENOTDIR))
				return 1;
			if (e == ENOTDIR)
				return xfer_fail(err, errlen,
						"destination path is blocked by a file: %s%.*s",
						prefix, upto, rel);
			return xfer_fail(err, errlen, "cannot open %s%.*s: %s", prefix, upto,
					rel, strerror(e));
		}
		/* A directory made on the way must survive a crash along with
		 * the asset that will be renamed into it. */
		if (created && (flags & XFER_LOCAL_WALK_SYNC) && fsync(fd) < 0) {
			int e = errno;
			close(fd);
			close(next);
			return xfer_fail(err, errlen, "cannot create %s%.*s: %s", prefix, upto,
					rel, strerror(e));
		}
		close(fd);
		fd = next;
		p = slash + 1;
	}
}

static int xfer_local_open_root(const char *root, char *err, size_t errlen)
{
	if (!root || root[0] != '/') {
		xfer_fail(err, errlen, "destination root is not an absolute path: %s",
			 root ? root : "(none)");
		return -1;
	}
	/* The root itself is the operator's choice and may be a link (e.g.
	 * /srv/cdn -> /data/cdn); only what lies below it is confined. */
	int fd = open(root, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		xfer_fail(err, errlen, "cannot open destination root %s: %s", root,
			 strerror(errno));
	return fd;
}

/* Clears O_NONBLOCK, which opens use so that a FIFO put where a file was
 * cannot hang the worker in open(2); on a regular file it changes nothing,
 * but the descriptor goes to callers that should see an ordinary one. */
static void xfer_local_blocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0 && (fl & O_NONBLOCK))
		fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
}

/* ---- reading a local source ------------------------------------------- */

/* Opens the source `src` itself (already without a trailing '/') without
 * following a link at its last component. Returns the descriptor and *st,
 * or -1 with err set. */
static int xfer_local_open_top(const char *src, struct stat *st, char *err, size_t errlen)
{
	/* O_NONBLOCK so that a FIFO put where the asset was cannot hang the
	 * worker in open(2); it changes nothing for files and directories. */
	int fd = open(src, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		if (e == ENOENT)
			return xfer_fail(err, errlen, "source asset does not exist: %s", src);
		if (e == ELOOP)
			return xfer_fail(err, errlen, "source asset is a symbolic link: %s",
					src);
		return xfer_fail(err, errlen, "cannot read %s: %s", src, strerror(e));
	}
	if (fstat(fd, st) < 0) {
		int e = errno;
		close(fd);
		return xfer_fail(err, errlen, "cannot read %s: %s", src, strerror(e));
	}
	if (!S_ISREG(st->st_mode) && !S_ISDIR(st->st_mode)) {
		close(fd);
		return xfer_fail(err, errlen, "source asset is not a file or a directory: %s",
				src);
	}
	xfer_local_blocking(fd);
	return fd;
}

/* An absolute source path without trailing '/': a trailing '/' would make
 * open(2) follow a link at the last component despite O_NOFOLLOW. Returns
 * a malloc'ed path, or NULL with err set. */
static char *xfer_local_source_path(const char *src, char *err, size_t errlen)
{
	if (!src || src[0] != '/') {
		xfer_fail(err, errlen, "source asset is not an absolute path: %s",
			 src ? src : "(none)");
		return NULL;
	}
	size_t n = strlen(src);
	while (n > 1 && src[n - 1] == '/')
		n--;
	return util_strndup(src, n);
}

struct xfer_local_lister {
	const char *src;
	struct xfer_entry *items;
	int n, cap;
	char *err;
	size_t errlen;
};

static void xfer_local_list_add(struct xfer_local_lister *l, char *path, int is_dir, int64_t size)
{
	if (l->n == l->cap)
		l->items = xfer_local_grow(l->items, &l->cap, sizeof *l->items);
	l->items[l->n++] = (struct xfer_entry){ .name = path, .is_dir = is_dir, .size = size };
}

/* Lists the directory `dfd`, which is `sub` inside the source ("" at the
 * top): each entry, then, for a directory, its own content. */
static int xfer_local_list_dir(struct xfer_local_lister *l, int dfd, const char *sub)
{
	char **names;
	int nn, rc = XFER_OK;
	if (xfer_local_read_names(dfd, &names, &nn) < 0)
		return xfer_fail(l->err, l->errlen, "cannot read %s%s%s: %s", l->src,
				*sub ? "/" : "", sub, strerror(errno));
	for (int i = 0; i < nn && rc == XFER_OK; i++) {
		char *child = *sub ? util_printf("%s/%s", sub, names[i]) : util_strdup(names[i]);
		struct stat st;
		if (fstatat(dfd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
			rc = xfer_fail(l->err, l->errlen, "cannot read %s/%s: %s", l->src,
				      child, strerror(errno));
		} else if (S_ISLNK(st.st_mode)) {
			rc = xfer_fail(l->err, l->errlen,
				      "source contains a symbolic link: %s", child);
		} else if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
			rc = xfer_fail(l->err, l->errlen,
				      "source contains a special file: %s", child);
		} else if (S_ISREG(st.st_mode)) {
			xfer_local_list_add(l, child, 0, (int64_t)st.st_size);
			continue; /* the list owns child now */
		} else {
			int fd = openat(dfd, names[i], XFER_LOCAL_DIR_FLAGS);
			if (fd < 0 && xfer_local_is_link(dfd, names[i], errno)) {
				rc = xfer_fail(l->err, l->errlen,
					      "source contains a symbolic link: %s", child);
			} else if (fd < 0) {
				rc = xfer_fail(l->err, l->errlen, "cannot read %s/%s: %s",
					      l->src, child, strerror(errno));
			} else {
				xfer_local_list_add(l, child, 1, 0);
				rc = xfer_local_list_dir(l, fd, child);
				close(fd);
				continue;
			}
		}
		free(child);
	}
	xfer_local_free_names(names, nn);
	return rc;
}

int xfer_local_list(const char *src, struct xfer_entry **items, int *n, char *err,
		   size_t errlen)
{
	struct xfer_local_lister l = { .err = err, .errlen = errlen };
	struct stat st;
	int fd = -1, rc = XFER_FAILED;

	*items = NULL;
	*n = 0;
	xfer_clear_err(err, errlen);
	char *path = xfer_local_source_path(src, err, errlen);
	if (!path)
		return XFER_FAILED;
	l.src = path;
	if ((fd = xfer_local_open_top(path, &st, err, errlen)) < 0)
		goto out;
	if (S_ISREG(st.st_mode)) {
		xfer_local_list_add(&l, util_strdup(""), 0, (int64_t)st.st_size);
		rc = XFER_OK;
	} else {
		rc = xfer_local_list_dir(&l, fd, "");
	}
out:
	if (fd >= 0)
		close(fd);
	free(path);
	if (rc == XFER_OK) {
		*items = l.items;
		*n = l.n;
	} else {
		xfer_curl_free_entries(l.items, l.n);
	}
	return rc;
}

int xfer_local_open_source(const char *src, const char *path, int *fd, int64_t *size,
			  char *err, size_t errlen)
{
	struct stat st;
	int dfd = -1, f = -1, rc = XFER_FAILED;

	*fd = -1;
	*size = 0;
	xfer_clear_err(err, errlen);
	char *top = xfer_local_source_path(src, err, errlen);
	if (!top)
		return XFER_FAILED;
	if (!path || !*path) {
		if ((f = xfer_local_open_top(top, &st, err, errlen)) < 0)
			goto out;
		if (S_ISDIR(st.st_mode)) {
			xfer_fail(err, errlen, "cannot read %s: %s", top, strerror(EISDIR));
			goto out;
		}
		goto done;
	}
	if (!xfer_local_path_ok(path)) {
		xfer_fail(err, errlen, "invalid path inside the source %s: %s", top, path);
		goto out;
	}
	if ((dfd = xfer_local_open_top(top, &st, err, errlen)) < 0)
		goto out;
	if (!S_ISDIR(st.st_mode)) {
		xfer_fail(err, errlen, "cannot read %s/%s: %s", top, path, strerror(ENOTDIR));
		goto out;
	}
	const char *p = path;
	for (;;) {
		const char *slash = strchr(p, '/');
		int upto = slash ? (int)(slash - path) : (int)strlen(path);
		char comp[NAME_MAX + 1];
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		memcpy(comp, p, n);
		comp[n] = '\0';
		int next = openat(dfd, comp,
				  slash ? XFER_LOCAL_DIR_FLAGS
					: O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (next < 0) {
			int e = errno;
			if (xfer_local_is_link(dfd, comp, e))
				xfer_fail(err, errlen, "source contains a symbolic link: %.*s",
					 upto, path);
			else
				xfer_fail(err, errlen, "cannot read %s/%.*s: %s", top, upto,
					 path, strerror(e));
			goto out;
		}
		if (!slash) {
			f = next;
			break;
		}
		close(dfd);
		dfd = next;
		p = slash + 1;
	}
	if (fstat(f, &st) < 0) {
		xfer_fail(err, errlen, "cannot read %s/%s: %s", top, path, strerror(errno));
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		xfer_fail(err, errlen, "cannot read %s/%s: %s", top, path, strerror(EISDIR));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		xfer_fail(err, errlen, "source contains a special file: %s", path);
		goto out;
	}
	xfer_local_blocking(f);
done:
	*fd = f;
	*size = (int64_t)st.st_size;
	f = -1;
	rc = XFER_OK;
out:
	if (f >= 0)
		close(f);
	if (dfd >= 0)
		close(dfd);
	free(top);
	return rc;
}

static void xfer_local_version_of(const struct stat *st, struct xfer_version *v)
{
	memset(v, 0, sizeof *v);
	v->known = XV_SIZE | XV_MTIME | XV_CTIME | XV_INODE;
	v->size = (int64_t)st->st_size;
	v->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
	v->ctime_ns = (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
	v->dev = (uint64_t)st->st_dev;
	v->ino = (uint64_t)st->st_ino;
}

int xfer_local_version(const char *src, const char *path, int fd, struct xfer_version *v,
		      char *err, size_t errlen)
{
	struct stat st;
	xfer_clear_err(err, errlen);
	memset(v, 0, sizeof *v);
	if (fd >= 0) {
		if (fstat(fd, &st) < 0)
			return xfer_fail(err, errlen, "cannot read %s%s%s: %s", src,
					path && *path ? "/" : "", path ? path : "",
					strerror(errno));
		xfer_local_version_of(&st, v);
		return XFER_OK;
	}
	/* The path as a reader would open it now: not through a link at its
	 * end (a link there is not the file that was read). */
	char *full = path && *path ? util_printf("%s/%s", src, path) : util_strdup(src);
	int rc = XFER_OK;
	if (lstat(full, &st) == 0)
		xfer_local_version_of(&st, v);
	else if (errno == ENOENT || errno == ENOTDIR)
		v->known = XV_GONE;
	else
		rc = xfer_fail(err, errlen, "cannot read %s: %s", full, strerror(errno));
	free(full);
	return rc;
}

/* ---- the stage ---------------------------------------------------------- */

static void xfer_local_stage_forget(struct xfer_local_stage *st, int fd)
{
	for (int i = 0; i < st->nopen; i++)
		if (st->open[i].fd == fd) {
			free(st->open[i].path);
			st->open[i] = st->open[--st->nopen];
			return;
		}
}

/* "cannot write <rel>[/<child>]: <reason>" for any failure on the
 * destination side; child is the path inside a directory package. */
static int xfer_local_stage_fail(const struct xfer_local_stage *st, const char *child, int e,
				char *err, size_t errlen)
{
	return xfer_fail(err, errlen, "cannot write %s%s%s: %s", st->rel,
			child && *child ? "/" : "", child ? child : "", strerror(e));
}

void xfer_local_stage_close(struct xfer_local_stage *st)
{
	if (!st)
		return;
	if (st->dfd >= 0)
		close(st->dfd);
	if (st->pfd >= 0)
		close(st->pfd);
	for (int i = 0; i < st->nopen; i++)
		free(st->open[i].path);
	free(st->open);
	free(st->rel);
	free(st->prefix);
	free(st->taskid);
	free(st->name);
	free(st->side);
	free(st);
}

int xfer_local_stage_open(const char *root, const char *rel, const char *taskid, int is_dir,
			 int resume, struct xfer_local_stage **out, char *err, size_t errlen)
{
	struct xfer_local_stage *st = NULL;
	int rootfd = -1, pfd = -1;
	const char *leaf;
	char *swap = NULL, *old = NULL, *other = NULL;

	*out = NULL;
	xfer_clear_err(err, errlen);
	if (!xfer_local_taskid_ok(taskid)) {
		xfer_fail(err, errlen, "invalid task id for a file name");
		goto fail;
	}
	if ((rootfd = xfer_local_open_root(root, err, errlen)) < 0)
		goto fail;
	if (xfer_local_walk(rootfd, "", rel, XFER_LOCAL_WALK_CREATE | XFER_LOCAL_WALK_SYNC, &pfd,
			   &leaf, err, errlen) != 0)
		goto fail;

	st = util_calloc(1, sizeof *st);
	st->rel = util_strdup(rel);
	st->prefix = util_printf("%s/", rel);
	st->taskid = util_strdup(taskid);
	st->is_dir = is_dir ? 1 : 0;
	st->pfd = pfd;
	pfd = -1;
	st->dfd = -1;
	st->name = util_strdup(leaf);
	st->side = xfer_local_side_name(leaf, taskid, is_dir ? "stage" : "tmp");

	/* What an interrupted commit of an earlier attempt left is never
	 * worth keeping: under .swap the old asset, or a finished stage that
	 * a resume cannot tell from it; under .old the replaced asset. Nor is
	 * a stage of the other kind (the source was a file then and is a
	 * directory now, or the reverse). */
	swap = xfer_local_side_name(leaf, taskid, "swap");
	old = xfer_local_side_name(leaf, taskid, "old");
	other = xfer_local_side_name(leaf, taskid, is_dir ? "tmp" : "stage");
	if (xfer_local_clear_stale(st->pfd, swap) < 0 || xfer_local_clear_stale(st->pfd, old) < 0 ||
	    xfer_local_clear_stale(st->pfd, other) < 0 ||
	    (!resume && xfer_local_clear_stale(st->pfd, st->side) < 0)) {
		xfer_local_stage_fail(st, NULL, errno, err, errlen);
		goto fail;
	}
	if (st->is_dir) {
		if (mkdirat(st->pfd, st->side, 0755) == 0)
			st->found = 0;
		else if (errno == EEXIST)
			st->found = 1;
		else {
			xfer_local_stage_fail(st, NULL, errno, err, errlen);
			goto fail;
		}
		st->dfd = openat(st->pfd, st->side, XFER_LOCAL_DIR_FLAGS);
		if (st->dfd < 0 && (errno == ENOTDIR || errno == ELOOP)) {
			/* Something other than a directory under our name: not
			 * a stage to continue in. */
			st->found = 0;
			if (xfer_local_rmtree(st->pfd, st->side) < 0 ||
			    mkdirat(st->pfd, st->side, 0755) < 0) {
				xfer_local_stage_fail(st, NULL, errno, err, errlen);
				goto fail;
			}
			st->dfd = openat(st->pfd, st->side, XFER_LOCAL_DIR_FLAGS);
		}
		if (st->dfd < 0) {
			xfer_local_stage_fail(st, NULL, errno, err, errlen);
			goto fail;
		}
	} else if (resume) {
		/* Only a plain file of our own can be continued; anything
		 * else under the name (a directory, a link, a file with
		 * another name elsewhere) is removed. */
		struct stat sb;
		int there = fstatat(st->pfd, st->side, &sb, AT_SYMLINK_NOFOLLOW) == 0;
		st->found = there && S_ISREG(sb.st_mode) && sb.st_nlink == 1;
		if (there && !st->found && xfer_local_clear_stale(st->pfd, st->side) < 0) {
			xfer_local_stage_fail(st, NULL, errno, err, errlen);
			goto fail;
		}
	}
	free(swap);
	free(old);
	free(other);
	close(rootfd);
	*out = st;
	return XFER_OK;
fail:
	free(swap);
	free(old);
	free(other);
	xfer_local_stage_close(st);
	if (pfd >= 0)
		close(pfd);
	if (rootfd >= 0)
		close(rootfd);
	return XFER_FAILED;
}

/* Checks that the stage can still take content. */
static int xfer_local_stage_usable(const struct xfer_local_stage *st, char *err, size_t errlen)
{
	if (!st->gone)
		return 0;
	xfer_fail(err, errlen, "cannot write %s: its stage was already committed", st->rel);
	return -1;
}

int xfer_local_stage_file(struct xfer_local_stage *st, const char *path, int *fd, int64_t *size,
			 char *err, size_t errlen)
{
	int dirfd = -1, f = -1;
	const char *leaf;

	*fd = -1;
	*size = 0;
	xfer_clear_err(err, errlen);
	if (!path)
		path = "";
	if (xfer_local_stage_usable(st, err, errlen) < 0)
		return XFER_FAILED;
	if (!st->is_dir) {
		if (*path)
			return xfer_fail(err, errlen,
					"invalid destination path: %s%s (%s is a single file)",
					st->prefix, path, st->rel);
		dirfd = st->pfd;
		leaf = st->side;
	} else {
		if (!*path)
			return xfer_fail(err, errlen,
					"invalid destination path: a file in %s needs a name",
					st->rel);
		if (xfer_local_walk(st->dfd, st->prefix, path, XFER_LOCAL_WALK_CREATE, &dirfd, &leaf,
				   err, errlen) != 0)
			return XFER_FAILED;
	}

	struct stat sb;
	for (int fresh = 0;; fresh = 1) {
		/* Not truncated: a resumed transfer continues after what is
		 * there. A fresh file is made with O_EXCL. */
		f = openat(dirfd, leaf,
			   O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC |
				   (fresh ? O_EXCL : 0),
			   0644);
		if (f < 0) {
			int e = errno;
			if (xfer_local_is_link(dirfd, leaf, e))
				xfer_fail(err, errlen,
					 "destination path crosses a symbolic link: %s%s",
					 st->is_dir ? st->prefix : st->rel, path);
			else
				xfer_local_stage_fail(st, path, e, err, errlen);
			goto fail;
		}
		if (fstat(f, &sb) < 0) {
			xfer_local_stage_fail(st, path, errno, err, errlen);
			goto fail;
		}
		if (!S_ISREG(sb.st_mode)) {
			xfer_fail(err, errlen, "cannot write %s%s: it is not a regular file",
				 st->is_dir ? st->prefix : st->rel, path);
			goto fail;
		}
		/* A file that also has a name elsewhere is not one we made:
		 * writing into it could change something outside the stage. */
		if (sb.st_nlink <= 1 || fresh)
			break;
		close(f);
		f = -1;
		if (unlinkat(dirfd, leaf, 0) < 0) {
			xfer_local_stage_fail(st, path, errno, err, errlen);
			goto fail;
		}
	}
	if (sb.st_nlink > 1) {
		xfer_local_stage_fail(st, path, EMLINK, err, errlen);
		goto fail;
	}
	xfer_local_blocking(f);
	if (lseek(f, sb.st_size, SEEK_SET) < 0) {
		xfer_local_stage_fail(st, path, errno, err, errlen);
		goto fail;
	}
	if (dirfd != st->pfd)
		close(dirfd);
	/* A descriptor number handed out again means the earlier one was
	 * closed without done_file: forget that one. */
	xfer_local_stage_forget(st, f);
	if (st->nopen == st->capopen)
		st->open = xfer_local_grow(st->open, &st->capopen, sizeof *st->open);
	st->open[st->nopen++] = (struct xfer_local_open){ .fd = f, .path = util_strdup(path) };
	*fd = f;
	*size = (int64_t)sb.st_size;
	return XFER_OK;
fail:
	if (f >= 0)
		close(f);
	if (dirfd >= 0 && dirfd != st->pfd)
		close(dirfd);
	return XFER_FAILED;
}

int xfer_local_stage_done_file(struct xfer_local_stage *st, int fd, char *err, size_t errlen)
{
	xfer_clear_err(err, errlen);
	/* Writeback starts now, without waiting for it: the one barrier at
	 * commit (xfer_local_stage_settle) then finds little left to write,
	 * where an fsync per file would wait for the disk once per file. */
	(void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	/* A finished file is checked against its record on a resume, not
	 * continued: the mark of its boot goes, and is never published. */
	xfer_fd_unclaim(fd);
	xfer_local_stage_forget(st, fd);
	return XFER_OK;
}

int xfer_local_stage_mkdir(struct xfer_local_stage *st, const char *path, char *err,
			  size_t errlen)
{
	int dirfd = -1, rc = XFER_FAILED;
	const char *leaf;

	xfer_clear_err(err, errlen);
	if (xfer_local_stage_usable(st, err, errlen) < 0)
		return XFER_FAILED;
	if (!st->is_dir)
		return xfer_fail(err, errlen,
				"invalid destination path: %s%s (%s is a single file)",
				st->prefix, path ? path : "", st->rel);
	if (!path || !*path)
		return xfer_fail(err, errlen,
				"invalid destination path: a directory in %s needs a name",
				st->rel);
	if (xfer_local_walk(st->dfd, st->prefix, path, XFER_LOCAL_WALK_CREATE, &dirfd, &leaf, err,
			   errlen) != 0)
		return XFER_FAILED;
	if (mkdirat(dirfd, leaf, 0755) < 0 && errno != EEXIST) {
		xfer_local_stage_fail(st, path, errno, err, errlen);
		goto out;
	}
	/* EEXIST from an earlier attempt is fine, if it is a directory. */
	int check = openat(dirfd, leaf, XFER_LOCAL_DIR_FLAGS);
	if (check < 0) {
		int e = errno;
		if (xfer_local_is_link(dirfd, leaf, e))
			xfer_fail(err, errlen, "destination path crosses a symbolic link: %s%s",
				 st->prefix, path);
		else
			xfer_local_stage_fail(st, path, e, err, errlen);
		goto out;
	}
	close(check);
	rc = XFER_OK;
out:
	close(dirfd);
	return rc;
}

/* Checks the staged directory `dfd` (`sub` inside the package, "" at the
 * top) and every directory below it: only files and directories are ever
 * staged, so anything else was planted: refuse to publish it. */
static int xfer_local_stage_settle(struct xfer_local_stage *st, int dfd, const char *sub,
				  char *err, size_t errlen)
{
	char **names;
	int nn, rc = XFER_OK;
	if (xfer_local_read_names(dfd, &names, &nn) < 0)
		return xfer_local_stage_fail(st, sub, errno, err, errlen);
	for (int i = 0; i < nn && rc == XFER_OK; i++) {
		char *child = *sub ? util_printf("%s/%s", sub, names[i]) : util_strdup(names[i]);
		struct stat sb;
		if (fstatat(dfd, names[i], &sb, AT_SYMLINK_NOFOLLOW) < 0) {
			rc = xfer_local_stage_fail(st, child, errno, err, errlen);
		} else if (S_ISDIR(sb.st_mode)) {
			int fd = openat(dfd, names[i], XFER_LOCAL_DIR_FLAGS);
			if (fd < 0) {
				rc = xfer_local_stage_fail(st, child, errno, err, errlen);
			} else {
				rc = xfer_local_stage_settle(st, fd, child, err, errlen);
				close(fd);
			}
		} else if (S_ISLNK(sb.st_mode)) {
			rc = xfer_fail(err, errlen,
				      "staged package holds a symbolic link: %s/%s", st->rel,
				      child);
		} else if (!S_ISREG(sb.st_mode)) {
			rc = xfer_fail(err, errlen, "staged package holds a special file: %s/%s",
				      st->rel, child);
		}
		free(child);
	}
	xfer_local_free_names(names, nn);
	return rc;
}

/* The plan of a package, sorted by path for bsearch. */
struct xfer_local_plan {
	const struct item **v;
	int n;
};

static int xfer_local_cmp_items(const void *a, const void *b)
{
	return strcmp((*(const struct item *const *)a)->path, (*(const struct item *const *)b)->path);
}

static int xfer_local_find_item(const void *key, const void *elem)
{
	return strcmp(key, (*(const struct item *const *)elem)->path);
}

/* Removes from the staged directory `dfd` (`sub` in the package) and below
 * whatever the plan does not name. */
static int xfer_local_stage_prune_dir(struct xfer_local_stage *st,
				      const struct xfer_local_plan *plan, int dfd, const char *sub,
				      char *err, size_t errlen)
{
	char **names;
	int nn, rc = XFER_OK;
	if (xfer_local_read_names(dfd, &names, &nn) < 0)
		return xfer_local_stage_fail(st, sub, errno, err, errlen);
	for (int i = 0; i < nn && rc == XFER_OK; i++) {
		char *child = *sub ? util_printf("%s/%s", sub, names[i]) : util_strdup(names[i]);
		const struct item *const *hit =
			bsearch(child, plan->v, (size_t)plan->n, sizeof *plan->v, xfer_local_find_item);
		struct stat sb;
		if (!hit) {
			log_warn("xfer_local: %s/%s is in the stage but not in the task's plan: "
				 "removed before the commit",
				 st->rel, child);
			if (xfer_local_rmtree(dfd, names[i]) < 0 && errno != ENOENT)
				rc = xfer_local_stage_fail(st, child, errno, err, errlen);
		} else if ((*hit)->is_dir && fstatat(dfd, names[i], &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
			   S_ISDIR(sb.st_mode)) {
			int fd = openat(dfd, names[i], XFER_LOCAL_DIR_FLAGS);
			if (fd < 0) {
				rc = xfer_local_stage_fail(st, child, errno, err, errlen);
			} else {
				rc = xfer_local_stage_prune_dir(st, plan, fd, child, err, errlen);
				close(fd);
			}
		}
		free(child);
	}
	xfer_local_free_names(names, nn);
	return rc;
}

int xfer_local_stage_prune(struct xfer_local_stage *st, const struct item *items, int nitems,
			   char *err, size_t errlen)
{
	xfer_clear_err(err, errlen);
	if (xfer_local_stage_usable(st, err, errlen) < 0)
		return XFER_FAILED;
	if (!st->is_dir)
		return XFER_OK;
	struct xfer_local_plan plan = { util_malloc(sizeof *plan.v * (size_t)(nitems + 1)), 0 };
	for (int i = 0; i < nitems; i++)
		if (items[i].path && *items[i].path)
			plan.v[plan.n++] = &items[i];
	qsort(plan.v, (size_t)plan.n, sizeof *plan.v, xfer_local_cmp_items);
	int rc = xfer_local_stage_prune_dir(st, &plan, st->dfd, "", err, errlen);
	free(plan.v);
	return rc;
}

/*
 * Puts the finished stage in place as the final name, then removes
 * whatever the name held before. A plain rename replaces a file, a symbolic
 * link or an empty directory atomically and is tried first; when the
 * kernel refuses because the types differ or the old directory has
 * content, the stage moves to the swap name and is exchanged with the old
 * asset by RENAME_EXCHANGE, which leaves the old asset at the swap name.
 * Trying the rename first instead of looking first means no other task can
 * slip something in between the look and the rename.
 */
static int xfer_local_stage_put(struct xfer_local_stage *st, char *err, size_t errlen)
{
	int pfd = st->pfd;
	char *swap = NULL, *aside = NULL;
	const char *old = NULL;
	int rc = XFER_FAILED;

	if (renameat(pfd, st->side, pfd, st->name) < 0) {
		int e = errno;
		if (e != EISDIR && e != ENOTDIR && e != ENOTEMPTY && e != EEXIST) {
			rc = xfer_local_stage_fail(st, NULL, e, err, errlen);
			goto out;
		}
		swap = xfer_local_side_name(st->name, st->taskid, "swap");
		if (xfer_local_clear_stale(pfd, swap) < 0 ||
		    renameat(pfd, st->side, pfd, swap) < 0) {
			rc = xfer_local_stage_fail(st, NULL, errno, err, errlen);
			goto out;
		}
		if (renameat2(pfd, swap, pfd, st->name, RENAME_EXCHANGE) == 0) {
			old = swap;
		} else if (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP) {
			/* The file system cannot swap (NFS, some FUSE): move the
			 * old asset aside first. The name is briefly absent,
			 * which a reader sees as "not yet published", never as
			 * a partial package. */
			aside = xfer_local_side_name(st->name, st->taskid, "old");
			if (xfer_local_clear_stale(pfd, aside) < 0 ||
			    renameat(pfd, st->name, pfd, aside) < 0) {
				e = errno;
				renameat(pfd, swap, pfd, st->side);
				rc = xfer_local_stage_fail(st, NULL, e, err, errlen);
				goto out;
			}
			if (renameat(pfd, swap, pfd, st->name) < 0) {
				e = errno;
				/* Put the old asset back rather than leave nothing,
				 * and the stage where a resume finds it. */
				renameat(pfd, aside, pfd, st->name);
				renameat(pfd, swap, pfd, st->side);
				rc = xfer_local_stage_fail(st, NULL, e, err, errlen);
				goto out;
			}
			old = aside;
		} else {
			e = errno;
			renameat(pfd, swap, pfd, st->side);
			rc = xfer_local_stage_fail(st, NULL, e, err, errlen);
			goto out;
		}
	}
	st->gone = 1;
	/* The new asset is visible; make the rename durable before saying so.
	 * Even if that fails, the replaced asset is no longer served and is
	 * removed below like after a success. */
	if (fsync(pfd) < 0)
		rc = xfer_local_stage_fail(st, NULL, errno, err, errlen);
	else
		rc = XFER_OK;
	if (old) {
		/* The publish has succeeded: failing to delete the replaced
		 * asset wastes space but does not change what is served, so it
		 * is logged rather than failing the task. */
		if (xfer_local_rmtree(pfd, old) < 0 && errno != ENOENT)
			log_warn("xfer_local: published %s but could not remove the replaced "
				 "asset left as %s: %s",
				 st->rel, old, strerror(errno));
		else
			fsync(pfd);
	}
out:
	free(swap);
	free(aside);
	return rc;
}

int xfer_local_stage_commit(struct xfer_local_stage *st, char *err, size_t errlen)
{
	xfer_clear_err(err, errlen);
	if (xfer_local_stage_usable(st, err, errlen) < 0)
		return XFER_FAILED;
	if (st->is_dir && xfer_local_stage_settle(st, st->dfd, "", err, errlen) != XFER_OK)
		return XFER_FAILED;
	/* One barrier for the whole stage, files and directories alike, made
	 * by this attempt or an earlier one: everything staged is on disk
	 * before the rename can make it visible. A package takes one syncfs
	 * of the root's file system; a single file, an fsync of itself, which
	 * does not wait for whatever else that file system has to write. */
	if (st->is_dir) {
		if (syncfs(st->pfd) < 0)
			return xfer_local_stage_fail(st, NULL, errno, err, errlen);
	} else {
		int fd = openat(st->pfd, st->side, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0 || fsync(fd) < 0) {
			int e = errno;
			if (fd >= 0)
				close(fd);
			return xfer_local_stage_fail(st, NULL, e, err, errlen);
		}
		close(fd);
	}
	int rc = xfer_local_stage_put(st, err, errlen);
	if (st->gone && st->dfd >= 0) {
		close(st->dfd);
		st->dfd = -1;
	}
	if (rc == XFER_OK)
		log_debug("xfer_local: put %s in place", st->rel);
	return rc;
}

void xfer_local_stage_discard(struct xfer_local_stage *st)
{
	if (!st)
		return;
	if (!st->gone) {
		if (st->dfd >= 0) {
			close(st->dfd);
			st->dfd = -1;
		}
		/* A failed commit may have left the stage under the swap name
		 * if it could not be moved back; that name is only ever ours. */
		char *swap = xfer_local_side_name(st->name, st->taskid, "swap");
		const char *names[] = { st->side, swap };
		for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
			if (xfer_local_rmtree(st->pfd, names[i]) < 0 && errno != ENOENT)
				log_warn("xfer_local: could not remove %s beside %s: %s", names[i],
					 st->rel, strerror(errno));
		free(swap);
	}
	xfer_local_stage_close(st);
}

/* ---- a source tree that holds the stage ---------------------------------- */

/* 1 when the directory `ancestor` is `fd` itself or one of the directories
 * above it, found by climbing ".." to the file system root. */
static int xfer_local_is_above(int ancestor, int fd)
{
	struct stat a, cur, up;
	if (fstat(ancestor, &a) < 0)
		return 0;
	int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	int found = 0;
	/* The depth bound only guards against a file system that never
	 * reaches its root. */
	for (int depth = 0; d >= 0 && depth < 4096; depth++) {
		if (fstat(d, &cur) < 0)
			break;
		if (cur.st_dev == a.st_dev && cur.st_ino == a.st_ino) {
			found = 1;
			break;
		}
		int u = openat(d, "..", XFER_LOCAL_DIR_FLAGS);
		if (u < 0 || fstat(u, &up) < 0) {
			if (u >= 0)
				close(u);
			break;
		}
		close(d);
		d = u;
		if (up.st_dev == cur.st_dev && up.st_ino == cur.st_ino)
			break; /* "/" is its own parent */
	}
	if (d >= 0)
		close(d);
	return found;
}

int xfer_local_stage_check_source(const struct xfer_local_stage *st, const char *src, char *err,
				 size_t errlen)
{
	if (!st->is_dir)
		return XFER_OK;
	/* Publishing a tree into itself would list the stage as part of the
	 * package on a retry and publish a copy inside the copy. */
	int sfd = open(src, XFER_LOCAL_DIR_FLAGS);
	if (sfd < 0)
		return xfer_fail(err, errlen, "cannot read %s: %s", src, strerror(errno));
	int inside = xfer_local_is_above(sfd, st->pfd);
	close(sfd);
	if (inside)
		return xfer_fail(err, errlen, "source contains the destination: %s is inside %s",
				st->rel, src);
	return XFER_OK;
}

/* ---- xfer_local_purge ------------------------------------------------------ */

int xfer_local_purge(const char *root, const char *rel, const char *taskid, char **note,
		    char *err, size_t errlen)
{
	int rootfd = -1, pfd = -1, rc = XFER_FAILED, absent = 0;
	char *gone = NULL;
	const char *name;
	struct stat st;

	if (note)
		*note = NULL;
	xfer_clear_err(err, errlen);
	if (!xfer_local_taskid_ok(taskid)) {
		xfer_fail(err, errlen, "invalid task id for a file name");
		goto out;
	}
	if ((rootfd = xfer_local_open_root(root, err, errlen)) < 0)
		goto out;
	int w = xfer_local_walk(rootfd, "", rel, 0, &pfd, &name, err, errlen);
	if (w < 0)
		goto out;
	if (w == 1) {
		absent = 1;
		rc = XFER_OK;
		goto out;
	}
	gone = xfer_local_side_name(name, taskid, "purge");
	/* A crashed attempt of this task may have renamed the asset aside and
	 * not finished deleting it; finish that first. */
	if (xfer_local_clear_stale(pfd, gone) < 0) {
		xfer_fail(err, errlen, "cannot remove %s: %s", rel, strerror(errno));
		goto out;
	}
	if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT) {
			absent = 1;
			rc = XFER_OK;
		} else {
			xfer_fail(err, errlen, "cannot remove %s: %s", rel, strerror(errno));
		}
		goto out;
	}
	if (!S_ISDIR(st.st_mode)) {
		/* A file, or a link: unlinkat removes the link, not its target. */
		if (unlinkat(pfd, name, 0) < 0) {
			if (errno == ENOENT) {
				absent = 1;
				rc = XFER_OK;
			} else {
				xfer_fail(err, errlen, "cannot remove %s: %s", rel,
					 strerror(errno));
			}
			goto out;
		}
		if (fsync(pfd) < 0) {
			xfer_fail(err, errlen, "cannot remove %s: %s", rel, strerror(errno));
			goto out;
		}
		rc = XFER_OK;
		goto out;
	}
	/* A directory disappears in one rename, so no client ever sees half
	 * of it; the slow deletion happens under the side name. */
	if (renameat(pfd, name, pfd, gone) < 0) {
		if (errno == ENOENT) {
			absent = 1;
			rc = XFER_OK;
		} else {
			xfer_fail(err, errlen, "cannot remove %s: %s", rel, strerror(errno));
		}
		goto out;
	}
	if (fsync(pfd) < 0) {
		xfer_fail(err, errlen, "cannot remove %s: %s", rel, strerror(errno));
		goto out;
	}
	rc = XFER_OK;
	if (xfer_local_rmtree(pfd, gone) < 0 && errno != ENOENT) {
		/* The asset is no longer served, which is what a purge
		 * promises; what is left only takes space. A retry under a new
		 * TaskId would find nothing to purge, so failing would not
		 * help: tell the operator and the WFM instead. */
		int e = errno;
		log_warn("xfer_local: purged %s but could not delete all of it (left as %s): %s",
			 rel, gone, strerror(e));
		if (note)
			*note = util_printf("%s was removed, but some of its files could not be "
					    "deleted: %s",
					    rel, strerror(e));
	} else {
		fsync(pfd);
	}
out:
	if (rc == XFER_OK && absent) {
		log_debug("xfer_local: nothing to purge at %s", rel);
		if (note)
			*note = util_printf("nothing to purge: %s was not there", rel);
	} else if (rc == XFER_OK) {
		log_debug("xfer_local: purged %s", rel);
	}
	free(gone);
	if (pfd >= 0)
		close(pfd);
	if (rootfd >= 0)
		close(rootfd);
	return rc;
}

int xfer_local_stage_found(const struct xfer_local_stage *st)
{
	return st->found;
}

/* ---- the end (struct xfer_end_ops) ---------------------------------------- */

/* A local destination's stage, shared by the lanes of a task: its calls
 * keep a list of open files, so they take turns. */
struct xfer_local_end_stage {
	struct xfer_local_stage *st;
	pthread_mutex_t lock;
};

#define XL_STAGE(e) ((struct xfer_local_end_stage *)(e)->stage)

static int xfer_local_end_init(const struct config *c, struct xfer_end *e, const struct url *u,
			       int is_source, char *err, size_t errlen)
{
	e->show = util_strdup("");
	e->caps = XFER_BY_FD | XFER_CAN_LIST | XFER_CAN_WRITE;
	return XS_OK;
}

static void xfer_local_end_release(struct xfer_end *e)
{
}

static int xfer_local_end_connect(const struct config *c, struct xfer_end *e,
				  volatile sig_atomic_t *stop, int is_source, char *err,
				  size_t errlen)
{
	return XS_OK;
}

static void xfer_local_end_disconnect(struct xfer_end *e)
{
}

/* A source that cannot be read is missing (XS_NOTFOUND) or refused. */
static int xfer_local_end_missing(const char *src, const char *rel)
{
	char *path = *rel ? util_printf("%s/%s", src, rel) : util_strdup(src);
	int rc = access(path, F_OK) == 0 ? XS_PERMANENT : XS_NOTFOUND;
	free(path);
	return rc;
}

static int xfer_local_end_list(struct xfer_end *e, int is_dir, struct xfer_entry **entries,
			       int *n, char *err, size_t errlen)
{
	if (xfer_local_list(e->path, entries, n, err, errlen) < 0)
		return xfer_local_end_missing(e->path, "");
	return XS_OK;
}

static int xfer_local_end_open(struct xfer_end *e, const char *rel, int *fd, int64_t *size,
			       char *err, size_t errlen)
{
	if (xfer_local_open_source(e->path, rel, fd, size, err, errlen) < 0)
		return xfer_local_end_missing(e->path, rel);
	return XS_OK;
}

static int xfer_local_end_version(struct xfer_end *e, const char *rel, int fd,
				  struct xfer_version *v, char *err, size_t errlen)
{
	return xfer_local_version(e->path, rel, fd, v, err, errlen) == XFER_OK ? XS_OK
									      : XS_PERMANENT;
}

static int xfer_local_end_stage(struct xfer_end *e, const struct task *t, int resume,
				const struct xfer_end *src, int *found, char *err, size_t errlen)
{
	*found = 0;
	struct xfer_local_stage *st = NULL;
	if (xfer_local_stage_open(e->path, t->dest_path, t->id, t->dest_is_dir, resume, &st, err,
				  errlen) < 0)
		return XS_PERMANENT;
	struct xfer_local_end_stage *s = util_calloc(1, sizeof *s);
	s->st = st;
	pthread_mutex_init(&s->lock, NULL);
	e->stage = s;
	if ((src->caps & XFER_BY_FD) &&
	    xfer_local_stage_check_source(st, src->path, err, errlen) < 0)
		return XS_PERMANENT;
	*found = xfer_local_stage_found(st);
	return XS_OK;
}

static int xfer_local_end_mkdir(struct xfer_end *e, const char *rel, char *err, size_t errlen)
{
	struct xfer_local_end_stage *s = XL_STAGE(e);
	pthread_mutex_lock(&s->lock);
	int rc = xfer_local_stage_mkdir(s->st, rel, err, errlen);
	pthread_mutex_unlock(&s->lock);
	return rc < 0 ? XS_PERMANENT : XS_OK;
}

static int xfer_local_end_create(struct xfer_end *e, const char *rel, int *fd, int64_t *have,
				 char *err, size_t errlen)
{
	struct xfer_local_end_stage *s = XL_STAGE(e);
	pthread_mutex_lock(&s->lock);
	int rc = xfer_local_stage_file(s->st, rel, fd, have, err, errlen);
	pthread_mutex_unlock(&s->lock);
	return rc < 0 ? XS_PERMANENT : XS_OK;
}

static int xfer_local_end_finish(struct xfer_end *e, int fd, char *err, size_t errlen)
{
	struct xfer_local_end_stage *s = XL_STAGE(e);
	pthread_mutex_lock(&s->lock);
	int rc = xfer_local_stage_done_file(s->st, fd, err, errlen);
	pthread_mutex_unlock(&s->lock);
	return rc < 0 ? XS_PERMANENT : XS_OK;
}

static int xfer_local_end_commit(struct xfer_end *e, const struct item *items, int nitems,
				 char **note, char *err, size_t errlen)
{
	struct xfer_local_stage *st = XL_STAGE(e)->st;
	return xfer_local_stage_prune(st, items, nitems, err, errlen) < 0 ||
			       xfer_local_stage_commit(st, err, errlen) < 0
		       ? XS_PERMANENT
		       : XS_OK;
}

static void xfer_local_end_unstage(struct xfer_end *e, int discard)
{
	struct xfer_local_end_stage *s = XL_STAGE(e);
	if (!s)
		return;
	if (discard)
		xfer_local_stage_discard(s->st);
	else
		xfer_local_stage_close(s->st);
	pthread_mutex_destroy(&s->lock);
	free(s);
	e->stage = NULL;
}

static int xfer_local_end_purge(struct xfer_end *e, const struct task *t, char **note, char *err,
				size_t errlen)
{
	return xfer_local_purge(e->path, t->dest_path, t->id, note, err, errlen) == XFER_OK
		       ? XS_OK
		       : XS_PERMANENT;
}

static void xfer_local_end_abandon(struct xfer_end *e, const struct task *t)
{
	struct xfer_local_stage *st = NULL;
	char err[512];
	if (xfer_local_stage_open(e->path, t->dest_path, t->id, t->dest_is_dir, 0, &st, err,
				  sizeof err) == 0)
		xfer_local_stage_discard(st);
}

const struct xfer_end_ops xfer_local_end = {
	.init = xfer_local_end_init,
	.release = xfer_local_end_release,
	.connect = xfer_local_end_connect,
	.disconnect = xfer_local_end_disconnect,
	.list = xfer_local_end_list,
	.open = xfer_local_end_open,
	.version = xfer_local_end_version,
	.stage = xfer_local_end_stage,
	.mkdir = xfer_local_end_mkdir,
	.create = xfer_local_end_create,
	.finish = xfer_local_end_finish,
	.commit = xfer_local_end_commit,
	.unstage = xfer_local_end_unstage,
	.purge = xfer_local_end_purge,
	.abandon = xfer_local_end_abandon,
};

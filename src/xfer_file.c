/*
 * xfer_file.c - the local-filesystem transfer backend: publishes a local
 * file or directory tree into the destination root, and purges an asset
 * from it.
 *
 * Invariants this file keeps:
 *
 * - Nothing is written, renamed or removed outside the root. The root is
 *   opened once, and every path below it is reached by walking the relative
 *   path one component at a time with openat(O_NOFOLLOW | O_DIRECTORY). A
 *   symbolic link anywhere on the way fails the task; a symbolic link at the
 *   final name is replaced or unlinked itself, never followed. Recursive
 *   removal (xfer_file_rmtree) follows the same rule.
 *
 * - The final name never shows a partial asset. A file is written as
 *   ".<name>.apubid-<taskid>.tmp" in its final directory, fsync'ed, and
 *   renamed into place; a directory tree is assembled under
 *   ".<name>.apubid-<taskid>.stage" beside its final place, every file and
 *   directory fsync'ed, and then renamed (or swapped with
 *   renameat2(RENAME_EXCHANGE)) into place. Whatever was there before is
 *   removed only after the new asset is visible. A purged directory is first
 *   renamed to ".<name>.apubid-<taskid>.purge" so it vanishes at once, and
 *   only then deleted file by file.
 *
 * - The side names carry the TaskId, so a retry of the same task finds and
 *   removes what a crashed attempt left, and two tasks never share one.
 *   On failure or stop, this file removes its own side names before
 *   returning.
 *
 * - Sources are read without following a symbolic link at the source's
 *   last component or anywhere inside a source tree: a link or a special
 *   file in a package fails the task rather than publishing something the
 *   customer did not put in it.
 *
 * Errors are reported once, in `err`, as a sentence fit for a task's
 * reason. Destination failures name the relative path the WFM asked for
 * ("cannot write dir/movie.ts: ..."), not the absolute path on our disks;
 * source failures name the source path the WFM sent.
 */
#include "apubid.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

/* copy_file_range moves at most this much per call, so a stop request is
 * noticed within one chunk even inside a very large file. */
#define XFER_FILE_CHUNK (16 * 1024 * 1024)
/* The read/write fallback buffer, used when the kernel cannot copy between
 * the two file systems itself. */
#define XFER_FILE_BUFSZ (1024 * 1024)

#define XFER_FILE_DIR_FLAGS (O_DIRECTORY | O_NOFOLLOW | O_RDONLY | O_CLOEXEC)

/* What one load needs to hand down the copy routines. */
struct xfer_file_job {
	const char *src;             /* absolute source path, for messages */
	const char *rel;             /* destination below the root, for messages */
	const char *taskid;
	volatile sig_atomic_t *stop; /* may be NULL: never stop */
	dev_t stage_dev;             /* the staging directory, so a source tree */
	ino_t stage_ino;             /* that contains it is refused */
	char *buf;                   /* fallback buffer, allocated on first use */
	char *err;
	size_t errlen;
};

static int xfer_file_fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Writes the reason into err and returns XFER_FAILED, so failure paths read
 * "return xfer_file_fail(...)". */
static int xfer_file_fail(char *err, size_t errlen, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (err && errlen)
		snprintf(err, errlen, "%s", line);
	log_debug("xfer_file: %s", line);
	return XFER_FAILED;
}

/* "cannot write <rel>[/<child>]: <reason>" for any failure on the
 * destination side; child is the path inside a directory package. */
static int xfer_file_fail_write(struct xfer_file_job *j, const char *child, int e)
{
	return xfer_file_fail(j->err, j->errlen, "cannot write %s%s%s: %s", j->rel,
			      child ? "/" : "", child ? child : "", strerror(e));
}

/* "cannot read <src>[/<child>]: <reason>" for the source side. */
static int xfer_file_fail_read(struct xfer_file_job *j, const char *child, int e)
{
	return xfer_file_fail(j->err, j->errlen, "cannot read %s%s%s: %s", j->src,
			      child ? "/" : "", child ? child : "", strerror(e));
}

static int xfer_file_stopped(const struct xfer_file_job *j)
{
	return j->stop && *j->stop;
}

/* A TaskId becomes part of file names, so it must not carry a '/' or
 * anything else a file name should not: accept what util_uuid produces and
 * similar tokens. */
static int xfer_file_taskid_ok(const char *id)
{
	if (!id || !*id || strlen(id) > 64)
		return 0;
	for (const char *p = id; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= 'a' && *p <= 'z') || *p == '-'))
			return 0;
	return 1;
}

/* One path component as the walk accepts it. rel arrives normalised; this
 * is the second line of defence, so a caller's bug cannot turn into a walk
 * out of the root. */
static int xfer_file_name_ok(const char *s, size_t n)
{
	if (n == 0 || n > NAME_MAX)
		return 0;
	if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
		return 0;
	return memchr(s, '/', n) == NULL;
}

/* The name of a side file beside `name`: ".<name>.apubid-<taskid>.<what>".
 * Returns a malloc'ed string the caller frees. */
static char *xfer_file_side_name(const char *name, const char *taskid, const char *what)
{
	return util_printf(".%s.apubid-%s.%s", name, taskid, what);
}

/*
 * Removes `name` in the directory `dirfd`: a file, a symbolic link (the
 * link itself) or a whole directory tree. Symbolic links are never followed,
 * so the removal cannot leave the tree it was pointed at. Returns 0, or -1
 * with errno set; ENOENT means there was nothing to remove.
 */
static int xfer_file_rmtree(int dirfd, const char *name)
{
	if (unlinkat(dirfd, name, 0) == 0)
		return 0;
	/* Linux answers EISDIR for a directory; POSIX allows EPERM. */
	if (errno != EISDIR && errno != EPERM)
		return -1;
	int first = errno;
	int fd = openat(dirfd, name, XFER_FILE_DIR_FLAGS);
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
			if (xfer_file_rmtree(fd, de->d_name) < 0 && errno != ENOENT) {
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

/* Removes a side name left by a crashed attempt of this task. */
static int xfer_file_clear_stale(int dirfd, const char *side)
{
	if (xfer_file_rmtree(dirfd, side) < 0 && errno != ENOENT)
		return -1;
	return 0;
}

/*
 * Opens the directory that holds the last component of `rel`, walking down
 * from `rootfd` one component at a time without following symbolic links.
 * With `create`, missing directories are made (0755, subject to the umask)
 * on the way. Returns 0 with *dirfd (the caller closes it) and *leaf (a
 * pointer into rel), 1 when a component is missing or is a file and
 * `create` is off (the asset is absent), -1 with err set.
 */
static int xfer_file_walk(int rootfd, const char *rel, int create, int *dirfd,
			  const char **leaf, char *err, size_t errlen)
{
	*dirfd = -1;
	*leaf = NULL;
	if (!rel || !*rel)
		return xfer_file_fail(err, errlen, "invalid destination path: it is empty");
	/* Check every component before touching the disk, so a bad path
	 * creates nothing. */
	for (const char *p = rel;;) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		if (!xfer_file_name_ok(p, n))
			return xfer_file_fail(err, errlen, "invalid destination path: %s", rel);
		if (!slash)
			break;
		p = slash + 1;
	}

	int fd = fcntl(rootfd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return xfer_file_fail(err, errlen, "cannot open the destination root: %s",
				      strerror(errno));
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
		int next = openat(fd, comp, XFER_FILE_DIR_FLAGS);
		if (next < 0 && errno == ENOENT && create) {
			if (mkdirat(fd, comp, 0755) == 0)
				created = 1;
			else if (errno != EEXIST) {
				int e = errno;
				close(fd);
				return xfer_file_fail(err, errlen, "cannot create %.*s: %s",
						      upto, rel, strerror(e));
			}
			/* EEXIST: another task made it meanwhile; open what is there. */
			next = openat(fd, comp, XFER_FILE_DIR_FLAGS);
		}
		if (next < 0) {
			int e = errno;
			struct stat st;
			int islink = (e == ELOOP || e == ENOTDIR) &&
				     fstatat(fd, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
				     S_ISLNK(st.st_mode);
			close(fd);
			if (islink)
				return xfer_file_fail(err, errlen,
						      "destination path crosses a symbolic link: %.*s",
						      upto, rel);
			if (!create && (e == ENOENT || e == ENOTDIR))
				return 1;
			if (e == ENOTDIR)
				return xfer_file_fail(err, errlen,
						      "destination path is blocked by a file: %.*s",
						      upto, rel);
			return xfer_file_fail(err, errlen, "cannot open %.*s: %s", upto, rel,
					      strerror(e));
		}
		/* A directory made on the way must survive a crash along with
		 * the asset that will be renamed into it. */
		if (created && fsync(fd) < 0) {
			int e = errno;
			close(fd);
			close(next);
			return xfer_file_fail(err, errlen, "cannot create %.*s: %s", upto, rel,
					      strerror(e));
		}
		close(fd);
		fd = next;
		p = slash + 1;
	}
}

static int xfer_file_open_root(const char *root, char *err, size_t errlen)
{
	if (!root || root[0] != '/') {
		xfer_file_fail(err, errlen, "destination root is not an absolute path: %s",
			       root ? root : "(none)");
		return -1;
	}
	/* The root itself is the operator's choice and may be a link (e.g.
	 * /srv/cdn -> /data/cdn); only what lies below it is confined. */
	int fd = open(root, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		xfer_file_fail(err, errlen, "cannot open destination root %s: %s", root,
			       strerror(errno));
	return fd;
}

/*
 * Copies everything from `in` (at its current offset) to `out` and checks
 * that exactly `size` bytes went across. copy_file_range lets the kernel
 * copy (or reflink) without the data passing through us; when the two file
 * systems cannot do that, read/write takes over from where it stopped, since
 * both calls advance the same file offsets. `child` names the file inside a
 * directory package, or is NULL.
 */
static int xfer_file_copy(struct xfer_file_job *j, int in, int out, off_t size,
			  const char *child)
{
	off_t done = 0;
	int kernel = 1;
	for (;;) {
		if (xfer_file_stopped(j))
			return XFER_STOPPED;
		ssize_t n;
		if (kernel) {
			n = copy_file_range(in, NULL, out, NULL, XFER_FILE_CHUNK, 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL ||
				      errno == EOPNOTSUPP)) {
				kernel = 0;
				continue;
			}
			if (n < 0) {
				int e = errno;
				if (e == EIO || e == EBADF)
					return xfer_file_fail(j->err, j->errlen,
							      "cannot copy %s%s%s to %s%s%s: %s",
							      j->src, child ? "/" : "",
							      child ? child : "", j->rel,
							      child ? "/" : "", child ? child : "",
							      strerror(e));
				return xfer_file_fail_write(j, child, e);
			}
			/* Some file systems (procfs-like, some FUSE) answer 0
			 * before the end; let read(2) have the final word. */
			if (n == 0 && done < size) {
				kernel = 0;
				continue;
			}
		} else {
			if (!j->buf)
				j->buf = util_malloc(XFER_FILE_BUFSZ);
			n = read(in, j->buf, XFER_FILE_BUFSZ);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return xfer_file_fail_read(j, child, errno);
			for (ssize_t off = 0; off < n;) {
				ssize_t w = write(out, j->buf + off, (size_t)(n - off));
				if (w < 0 && errno == EINTR)
					continue;
				if (w < 0)
					return xfer_file_fail_write(j, child, errno);
				off += w;
			}
		}
		if (n == 0)
			break;
		done += n;
	}
	if (done != size)
		return xfer_file_fail(j->err, j->errlen,
				      "cannot write %s%s%s: copied %lld of %lld bytes; the source "
				      "changed during the copy",
				      j->rel, child ? "/" : "", child ? child : "",
				      (long long)done, (long long)size);
	return XFER_OK;
}

/* Creates `name` in `dfd` (it must not exist), copies the open source file
 * `in` into it and makes it durable. On failure the partial file is
 * removed. */
static int xfer_file_copy_into(struct xfer_file_job *j, int in, int dfd, const char *name,
			       const char *child)
{
	struct stat st;
	if (fstat(in, &st) < 0)
		return xfer_file_fail_read(j, child, errno);
	int out = openat(dfd, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (out < 0)
		return xfer_file_fail_write(j, child, errno);
	int rc = xfer_file_copy(j, in, out, st.st_size, child);
	if (rc == XFER_OK && fsync(out) < 0)
		rc = xfer_file_fail_write(j, child, errno);
	/* close can report a deferred write error (NFS), so it counts. */
	if (close(out) < 0 && rc == XFER_OK)
		rc = xfer_file_fail_write(j, child, errno);
	if (rc != XFER_OK)
		unlinkat(dfd, name, 0);
	return rc;
}

/*
 * Puts the finished asset at `from` in place as `name` (both in `pfd`), then
 * removes whatever `name` held before. A plain rename replaces a file, a
 * symbolic link or an empty directory atomically and is tried first; when
 * the kernel refuses because the types differ or the old directory has
 * content, the two are swapped with RENAME_EXCHANGE, which leaves the old
 * asset at `from`. Trying the rename first instead of looking first means no
 * other task can slip something in between the look and the rename.
 */
static int xfer_file_put(struct xfer_file_job *j, int pfd, const char *from, const char *name)
{
	char *aside = NULL;
	int old_at = 0; /* 1: old asset at `from`; 2: old asset at `aside` */
	int rc = XFER_FAILED;

	if (renameat(pfd, from, pfd, name) < 0) {
		int e = errno;
		if (e != EISDIR && e != ENOTDIR && e != ENOTEMPTY && e != EEXIST) {
			rc = xfer_file_fail_write(j, NULL, e);
			goto out;
		}
		if (renameat2(pfd, from, pfd, name, RENAME_EXCHANGE) == 0) {
			old_at = 1;
		} else if (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP) {
			/* The file system cannot swap (NFS, some FUSE): move the
			 * old asset aside first. The name is briefly absent,
			 * which a reader sees as "not yet published", never as
			 * a partial package. */
			aside = xfer_file_side_name(name, j->taskid, "old");
			if (xfer_file_clear_stale(pfd, aside) < 0 ||
			    renameat(pfd, name, pfd, aside) < 0) {
				rc = xfer_file_fail_write(j, NULL, errno);
				goto out;
			}
			if (renameat(pfd, from, pfd, name) < 0) {
				e = errno;
				/* Put the old asset back rather than leave nothing. */
				renameat(pfd, aside, pfd, name);
				rc = xfer_file_fail_write(j, NULL, e);
				goto out;
			}
			old_at = 2;
		} else {
			rc = xfer_file_fail_write(j, NULL, errno);
			goto out;
		}
	}
	/* The new asset is visible; make the rename durable before saying so.
	 * Even if that fails, the replaced asset is no longer served and is
	 * removed below like after a success. */
	if (fsync(pfd) < 0)
		rc = xfer_file_fail_write(j, NULL, errno);
	else
		rc = XFER_OK;
	if (old_at) {
		const char *old = old_at == 1 ? from : aside;
		/* The publish has succeeded: failing to delete the replaced
		 * asset wastes space but does not change what is served, so it
		 * is logged rather than failing the task. */
		if (xfer_file_rmtree(pfd, old) < 0 && errno != ENOENT)
			log_warn("xfer_file: published %s but could not remove the replaced "
				 "asset left as %s: %s",
				 j->rel, old, strerror(errno));
		else
			fsync(pfd);
	}
out:
	free(aside);
	return rc;
}

/* Publishes the open regular file `in` as `name` in `pfd`. */
static int xfer_file_load_file(struct xfer_file_job *j, int in, int pfd, const char *name)
{
	char *tmp = xfer_file_side_name(name, j->taskid, "tmp");
	int rc;
	/* A crashed attempt may have left a file, or the old directory a swap
	 * had moved to this name. */
	if (xfer_file_clear_stale(pfd, tmp) < 0) {
		rc = xfer_file_fail_write(j, NULL, errno);
		goto out;
	}
	rc = xfer_file_copy_into(j, in, pfd, tmp, NULL);
	if (rc == XFER_OK)
		rc = xfer_file_put(j, pfd, tmp, name);
	if (rc != XFER_OK)
		xfer_file_rmtree(pfd, tmp);
out:
	free(tmp);
	return rc;
}

static int xfer_file_copy_tree(struct xfer_file_job *j, int sfd, int dfd, const char *sub);

/* Copies one entry `name` of the source directory `sfd` into `dfd`; `child`
 * is its path inside the package, for messages. */
static int xfer_file_copy_entry(struct xfer_file_job *j, int sfd, int dfd, const char *name,
				const char *child)
{
	struct stat st;
	if (fstatat(sfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return xfer_file_fail_read(j, child, errno);
	if (S_ISLNK(st.st_mode))
		return xfer_file_fail(j->err, j->errlen, "source contains a symbolic link: %s",
				      child);
	if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
		return xfer_file_fail(j->err, j->errlen, "source contains a special file: %s",
				      child);

	/* Open without following: if the entry was swapped for a link since
	 * the fstatat, the open fails rather than reading through it. The
	 * non-blocking open keeps a FIFO swapped in from hanging the worker. */
	int flags = S_ISDIR(st.st_mode) ? XFER_FILE_DIR_FLAGS
					: O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
	int in = openat(sfd, name, flags);
	if (in < 0) {
		if (errno == ELOOP || (S_ISDIR(st.st_mode) && errno == ENOTDIR))
			return xfer_file_fail(j->err, j->errlen,
					      "source contains a symbolic link: %s", child);
		return xfer_file_fail_read(j, child, errno);
	}
	struct stat now;
	int rc;
	if (fstat(in, &now) < 0) {
		rc = xfer_file_fail_read(j, child, errno);
	} else if ((now.st_mode & S_IFMT) != (st.st_mode & S_IFMT)) {
		rc = xfer_file_fail(j->err, j->errlen, "source changed during the copy: %s",
				    child);
	} else if (S_ISREG(now.st_mode)) {
		rc = xfer_file_copy_into(j, in, dfd, name, child);
	} else if (now.st_dev == j->stage_dev && now.st_ino == j->stage_ino) {
		/* Publishing a tree into itself would copy the copy forever. */
		rc = xfer_file_fail(j->err, j->errlen,
				    "source contains the destination: %s is inside %s", j->rel,
				    j->src);
	} else if (mkdirat(dfd, name, 0755) < 0) {
		rc = xfer_file_fail_write(j, child, errno);
	} else {
		int out = openat(dfd, name, XFER_FILE_DIR_FLAGS);
		if (out < 0) {
			rc = xfer_file_fail_write(j, child, errno);
		} else {
			rc = xfer_file_copy_tree(j, in, out, child);
			close(out);
		}
	}
	close(in);
	return rc;
}

/* Copies the content of the source directory `sfd` into the empty directory
 * `dfd`, then makes `dfd` durable. `sub` is the directory's path inside the
 * package ("" at the top). The stop flag is polled before every entry. */
static int xfer_file_copy_tree(struct xfer_file_job *j, int sfd, int dfd, const char *sub)
{
	const char *here = *sub ? sub : NULL;
	/* fdopendir takes its descriptor over; give it its own. */
	int fd = fcntl(sfd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return xfer_file_fail_read(j, here, errno);
	DIR *d = fdopendir(fd);
	if (!d) {
		int e = errno;
		close(fd);
		return xfer_file_fail_read(j, here, e);
	}
	int rc = XFER_OK;
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
			errno = 0;
			continue;
		}
		if (xfer_file_stopped(j)) {
			rc = XFER_STOPPED;
			break;
		}
		char *child = *sub ? util_printf("%s/%s", sub, de->d_name)
				   : util_strdup(de->d_name);
		rc = xfer_file_copy_entry(j, sfd, dfd, de->d_name, child);
		free(child);
		if (rc != XFER_OK)
			break;
		errno = 0;
	}
	if (rc == XFER_OK && errno)
		rc = xfer_file_fail_read(j, here, errno);
	closedir(d);
	/* The entries just made must be on disk before the tree is swapped
	 * in, or a crash could show a directory missing some of its files. */
	if (rc == XFER_OK && fsync(dfd) < 0)
		rc = xfer_file_fail_write(j, here, errno);
	return rc;
}

/* Publishes the open source directory `sfd` as `name` in `pfd`. */
static int xfer_file_load_dir(struct xfer_file_job *j, int sfd, int pfd, const char *name)
{
	char *stage = xfer_file_side_name(name, j->taskid, "stage");
	int dfd = -1, rc;
	if (xfer_file_clear_stale(pfd, stage) < 0) {
		rc = xfer_file_fail_write(j, NULL, errno);
		goto out;
	}
	if (xfer_file_stopped(j)) {
		rc = XFER_STOPPED;
		goto out;
	}
	if (mkdirat(pfd, stage, 0755) < 0) {
		rc = xfer_file_fail_write(j, NULL, errno);
		goto out;
	}
	struct stat st;
	dfd = openat(pfd, stage, XFER_FILE_DIR_FLAGS);
	if (dfd < 0 || fstat(dfd, &st) < 0) {
		rc = xfer_file_fail_write(j, NULL, errno);
		goto fail;
	}
	j->stage_dev = st.st_dev;
	j->stage_ino = st.st_ino;
	rc = xfer_file_copy_tree(j, sfd, dfd, "");
	close(dfd);
	dfd = -1;
	if (rc == XFER_OK)
		rc = xfer_file_put(j, pfd, stage, name);
fail:
	if (dfd >= 0)
		close(dfd);
	/* Whatever is left under the staging name is ours to remove: the
	 * partial copy, or a complete one that could not be put in place. */
	if (rc != XFER_OK && xfer_file_rmtree(pfd, stage) < 0 && errno != ENOENT)
		log_warn("xfer_file: could not remove the staging directory %s beside %s: %s",
			 stage, j->rel, strerror(errno));
out:
	free(stage);
	return rc;
}

/* Opens the source without following a link at its last component.
 * Returns the descriptor and *st, or -1 with err set. */
static int xfer_file_open_source(struct xfer_file_job *j, struct stat *st)
{
	/* O_NONBLOCK so that a FIFO put where the asset was cannot hang the
	 * worker in open(2); it changes nothing for files and directories. */
	int fd = open(j->src, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		if (e == ENOENT)
			return xfer_file_fail(j->err, j->errlen, "source asset does not exist: %s",
					      j->src);
		if (e == ELOOP)
			return xfer_file_fail(j->err, j->errlen,
					      "source asset is a symbolic link: %s", j->src);
		return xfer_file_fail_read(j, NULL, e);
	}
	if (fstat(fd, st) < 0) {
		int e = errno;
		close(fd);
		return xfer_file_fail_read(j, NULL, e);
	}
	if (!S_ISREG(st->st_mode) && !S_ISDIR(st->st_mode)) {
		close(fd);
		return xfer_file_fail(j->err, j->errlen,
				      "source asset is not a file or a directory: %s", j->src);
	}
	return fd;
}

int xfer_file_load(const char *src, const char *root, const char *rel, const char *taskid,
		   volatile sig_atomic_t *stop, char *err, size_t errlen)
{
	struct xfer_file_job j = { .rel = rel, .taskid = taskid, .stop = stop, .err = err,
				   .errlen = errlen };
	char *path = NULL;
	int rootfd = -1, pfd = -1, sfd = -1, rc = XFER_FAILED;
	const char *name;
	struct stat st;

	if (err && errlen)
		err[0] = '\0';
	if (!src || src[0] != '/') {
		xfer_file_fail(err, errlen, "source asset is not an absolute path: %s",
			       src ? src : "(none)");
		goto out;
	}
	if (!xfer_file_taskid_ok(taskid)) {
		xfer_file_fail(err, errlen, "invalid task id for a file name");
		goto out;
	}
	/* A trailing '/' would make open(2) follow a link at the last
	 * component despite O_NOFOLLOW. */
	size_t n = strlen(src);
	while (n > 1 && src[n - 1] == '/')
		n--;
	path = util_strndup(src, n);
	j.src = path;
	if (xfer_file_stopped(&j)) {
		rc = XFER_STOPPED;
		goto out;
	}
	/* The source first: one that vanished since submission must not
	 * leave new empty directories behind in the root. */
	if ((sfd = xfer_file_open_source(&j, &st)) < 0)
		goto out;
	if ((rootfd = xfer_file_open_root(root, err, errlen)) < 0)
		goto out;
	if (xfer_file_walk(rootfd, rel, 1, &pfd, &name, err, errlen) != 0)
		goto out;
	if (S_ISDIR(st.st_mode))
		rc = xfer_file_load_dir(&j, sfd, pfd, name);
	else
		rc = xfer_file_load_file(&j, sfd, pfd, name);
	if (rc == XFER_OK)
		log_debug("xfer_file: published %s as %s", path, rel);
	else if (rc == XFER_STOPPED)
		log_debug("xfer_file: stopped publishing %s as %s", path, rel);
out:
	if (sfd >= 0)
		close(sfd);
	if (pfd >= 0)
		close(pfd);
	if (rootfd >= 0)
		close(rootfd);
	free(j.buf);
	free(path);
	return rc;
}

int xfer_file_purge(const char *root, const char *rel, const char *taskid, char **note,
		    char *err, size_t errlen)
{
	int rootfd = -1, pfd = -1, rc = XFER_FAILED, absent = 0;
	char *gone = NULL;
	const char *name;
	struct stat st;

	if (note)
		*note = NULL;
	if (err && errlen)
		err[0] = '\0';
	if (!xfer_file_taskid_ok(taskid)) {
		xfer_file_fail(err, errlen, "invalid task id for a file name");
		goto out;
	}
	if ((rootfd = xfer_file_open_root(root, err, errlen)) < 0)
		goto out;
	int w = xfer_file_walk(rootfd, rel, 0, &pfd, &name, err, errlen);
	if (w < 0)
		goto out;
	if (w == 1) {
		absent = 1;
		rc = XFER_OK;
		goto out;
	}
	gone = xfer_file_side_name(name, taskid, "purge");
	/* A crashed attempt of this task may have renamed the asset aside and
	 * not finished deleting it; finish that first. */
	if (xfer_file_clear_stale(pfd, gone) < 0) {
		xfer_file_fail(err, errlen, "cannot remove %s: %s", rel, strerror(errno));
		goto out;
	}
	if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT) {
			absent = 1;
			rc = XFER_OK;
		} else {
			xfer_file_fail(err, errlen, "cannot remove %s: %s", rel, strerror(errno));
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
				xfer_file_fail(err, errlen, "cannot remove %s: %s", rel,
					       strerror(errno));
			}
			goto out;
		}
		if (fsync(pfd) < 0) {
			xfer_file_fail(err, errlen, "cannot remove %s: %s", rel, strerror(errno));
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
			xfer_file_fail(err, errlen, "cannot remove %s: %s", rel, strerror(errno));
		}
		goto out;
	}
	if (fsync(pfd) < 0) {
		xfer_file_fail(err, errlen, "cannot remove %s: %s", rel, strerror(errno));
		goto out;
	}
	rc = XFER_OK;
	if (xfer_file_rmtree(pfd, gone) < 0 && errno != ENOENT) {
		/* The asset is no longer served, which is what a purge
		 * promises; what is left only takes space. A retry under a new
		 * TaskId would find nothing to purge, so failing would not
		 * help: tell the operator and the WFM instead. */
		int e = errno;
		log_warn("xfer_file: purged %s but could not delete all of it (left as %s): %s",
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
		log_debug("xfer_file: nothing to purge at %s", rel);
		if (note)
			*note = util_printf("nothing to purge: %s was not there", rel);
	} else if (rc == XFER_OK) {
		log_debug("xfer_file: purged %s", rel);
	}
	free(gone);
	if (pfd >= 0)
		close(pfd);
	if (rootfd >= 0)
		close(rootfd);
	return rc;
}

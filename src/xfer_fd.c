/*
 * xfer_fd.c - the work on open descriptors every transfer shares, whatever
 * its ends: copying bytes from one file to another, and marking a partial
 * file with the boot of the machine that wrote it.
 *
 * A copy between two local files (a local source into a local stage)
 * lets the kernel move the bytes with copy_file_range where the file
 * systems allow it, and reads and writes them itself where they do not.
 * When the caller hashes, a long copy is read back behind the kernel by a
 * second thread, from the page cache the copy just filled, so the digest
 * is of what was written and the hashing runs on the other core. Every
 * call is positional: neither descriptor's offset moves.
 *
 * A partial file (a local stage's, a spool file between two servers) is
 * continued by a later attempt only when every byte of it was written in
 * this boot: xfer_fd_claim says whether it was and marks it as being
 * written now; xfer_fd_unclaim takes the mark off a finished file.
 *
 * The local files' functions (here and in xfer_local.c) report a failure
 * as one sentence in err, through xfer_fail.
 */
#include "apubid.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

/* Writes the reason into err and returns XFER_FAILED, so failure paths
 * read "return xfer_fail(...)". */
int xfer_fail(char *err, size_t errlen, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (err && errlen)
		snprintf(err, errlen, "%s", line);
	log_debug("xfer: %s", line);
	return XFER_FAILED;
}

void xfer_clear_err(char *err, size_t errlen)
{
	if (err && errlen)
		err[0] = '\0';
}

static int xfer_fd_stopped(volatile sig_atomic_t *stop)
{
	return stop && *stop;
}

/* A copy polls the stop flag at least this often, so a stop request is
 * noticed within one chunk even inside a very large file; it is also the
 * most copy_file_range is asked for in one call. */
#define XFER_FD_CHUNK (16 * 1024 * 1024)
/* The read/write buffer, used when the kernel cannot copy between the two
 * file systems itself or when the caller wants to see the data. 256 KiB,
 * as a download's pieces (XC_WRITE_BUF in xfer_curl.c): writes of 1 MiB
 * or more cost several times as much system time on a virtual machine. */
#define XFER_FD_BUFSZ (256 * 1024)


/* ---- copying ------------------------------------------------------------ */

/* Where a copy failed, so each caller can name the file at fault. */
enum xfer_fd_fault_at {
	XFER_FD_AT_NONE = 0,
	XFER_FD_AT_READ,   /* reading the source */
	XFER_FD_AT_WRITE,  /* writing the destination */
	XFER_FD_AT_COPY,   /* copy_file_range, which cannot tell which side */
	XFER_FD_AT_SHORT,  /* the source ended before `len` bytes */
	XFER_FD_AT_CALLER, /* on_data asked to stop */
};

struct xfer_fd_fault {
	int at;        /* enum xfer_fd_fault_at */
	int errnum;
	int64_t done;  /* bytes copied before the fault */
};

/* Copies at least this long, when the caller hashes, are checked by a
 * second thread that reads the destination back behind the copy (from the
 * page cache the copy just filled): the kernel copies, the other core
 * hashes, and the digest is of what was written. */
#define XFER_FD_PAR_MIN (8 * 1024 * 1024)

/* The copy and the thread hashing behind it. `copied` grows as the copy
 * goes; `ended` is set once it stops (done or failed). */
struct xfer_fd_hasher {
	int out;
	int64_t out_off, len;
	int (*on_data)(void *arg, const char *buf, size_t n);
	void *arg;
	pthread_mutex_t lock;
	pthread_cond_t more;
	int64_t copied;
	int ended;
	int64_t hashed;
	int failed;   /* XFER_FD_AT_READ, _SHORT or _CALLER, 0 when fine */
	int errnum;
};

static void *xfer_fd_hasher_main(void *arg)
{
	struct xfer_fd_hasher *h = arg;
	char *buf = util_malloc(XFER_FD_BUFSZ);
	for (;;) {
		pthread_mutex_lock(&h->lock);
		while (h->copied == h->hashed && !h->ended)
			pthread_cond_wait(&h->more, &h->lock);
		int64_t upto = h->copied;
		pthread_mutex_unlock(&h->lock);
		if (upto == h->hashed)
			break; /* the copy ended and everything copied is hashed */
		while (h->hashed < upto) {
			size_t want = upto - h->hashed > XFER_FD_BUFSZ ? XFER_FD_BUFSZ
									  : (size_t)(upto - h->hashed);
			ssize_t n = pread(h->out, buf, want, h->out_off + h->hashed);
			if (n < 0 && errno == EINTR)
				continue;
			int failed = 0;
			if (n <= 0) {
				failed = n < 0 ? XFER_FD_AT_READ : XFER_FD_AT_SHORT;
				h->errnum = n < 0 ? errno : 0;
			} else if (h->on_data(h->arg, buf, (size_t)n) != 0) {
				failed = XFER_FD_AT_CALLER;
			}
			if (failed) {
				pthread_mutex_lock(&h->lock);
				h->failed = failed;
				pthread_mutex_unlock(&h->lock);
				goto out;
			}
			h->hashed += n;
		}
	}
out:
	free(buf);
	return NULL;
}

static int xfer_fd_copy_fds(int in, int64_t in_off, int out, int64_t out_off, int64_t len,
			   int (*on_data)(void *arg, const char *buf, size_t n), void *arg,
			   volatile sig_atomic_t *stop, struct xfer_fd_fault *f,
			   struct xfer_fd_hasher *h);

/* A long copy the caller hashes: the copy runs here (in the kernel where
 * it can), the hashing in a second thread reading the destination. */
static int xfer_fd_copy_hashed(int in, int64_t in_off, int out, int64_t out_off, int64_t len,
			      int (*on_data)(void *arg, const char *buf, size_t n), void *arg,
			      volatile sig_atomic_t *stop, struct xfer_fd_fault *f)
{
	struct xfer_fd_hasher h = { .out = out, .out_off = out_off, .len = len,
				      .on_data = on_data, .arg = arg };
	pthread_mutex_init(&h.lock, NULL);
	pthread_cond_init(&h.more, NULL);
	pthread_t t;
	if (pthread_create(&t, NULL, xfer_fd_hasher_main, &h) != 0) {
		pthread_mutex_destroy(&h.lock);
		pthread_cond_destroy(&h.more);
		return xfer_fd_copy_fds(in, in_off, out, out_off, len, on_data, arg, stop, f,
				       NULL);
	}
	int rc = xfer_fd_copy_fds(in, in_off, out, out_off, len, NULL, NULL, stop, f, &h);
	pthread_mutex_lock(&h.lock);
	h.ended = 1;
	pthread_cond_signal(&h.more);
	pthread_mutex_unlock(&h.lock);
	pthread_join(t, NULL);
	pthread_mutex_destroy(&h.lock);
	pthread_cond_destroy(&h.more);
	if (rc == XFER_OK && h.failed) {
		/* Which byte: the hasher read the destination, at out_off. */
		f->at = h.failed;
		f->errnum = h.errnum;
		f->done = h.hashed;
		rc = XFER_FAILED;
	}
	return rc;
}

/*
 * Copies `len` bytes from `in` at `in_off` to `out` at `out_off` with
 * positional calls, so the descriptors' own offsets do not move.
 * copy_file_range lets the kernel copy (or reflink) without the data
 * passing through us; when the two file systems cannot do that, or when
 * `on_data` wants to see the bytes, pread/pwrite does the work. The stop
 * flag is polled before every chunk of at most XFER_FD_CHUNK bytes.
 */
static int xfer_fd_copy_fds(int in, int64_t in_off, int out, int64_t out_off, int64_t len,
			   int (*on_data)(void *arg, const char *buf, size_t n), void *arg,
			   volatile sig_atomic_t *stop, struct xfer_fd_fault *f,
			   struct xfer_fd_hasher *h)
{
	int64_t done = 0;
	int kernel = on_data == NULL;
	char *buf = NULL;
	int rc = XFER_OK;

	memset(f, 0, sizeof *f);
	if (in_off < 0 || out_off < 0 || len < 0) {
		f->at = XFER_FD_AT_COPY;
		f->errnum = EINVAL;
		return XFER_FAILED;
	}
	int64_t flushed = 0;
	for (;;) {
		/* Start writing each chunk to disk as soon as it is copied, so
		 * that the fsync at the end of a long file finds little left
		 * to do (advisory: an error shows again at that fsync). */
		if (len >= XFER_FD_CHUNK && done > flushed) {
			sync_file_range(out, out_off + flushed, done - flushed, SYNC_FILE_RANGE_WRITE);
			flushed = done;
		}
		if (h) {
			pthread_mutex_lock(&h->lock);
			h->copied = done;
			pthread_cond_signal(&h->more);
			int hash_failed = h->failed;
			pthread_mutex_unlock(&h->lock);
			if (hash_failed)
				break; /* reported by the caller */
		}
		if (xfer_fd_stopped(stop)) {
			rc = XFER_STOPPED;
			break;
		}
		if (done >= len)
			break;
		int64_t end = len - done > XFER_FD_CHUNK ? done + XFER_FD_CHUNK : len;
		while (done < end) {
			if (kernel) {
				loff_t io = in_off + done, oo = out_off + done;
				ssize_t n = copy_file_range(in, &io, out, &oo, (size_t)(end - done), 0);
				if (n < 0 && errno == EINTR)
					continue;
				/* The kernel cannot copy between these two: do it
				 * ourselves, from where it stopped. */
				if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL ||
					      errno == EOPNOTSUPP || errno == EBADF)) {
					kernel = 0;
					continue;
				}
				if (n < 0) {
					f->errnum = errno;
					f->at = errno == EIO ? XFER_FD_AT_COPY : XFER_FD_AT_WRITE;
					rc = XFER_FAILED;
					goto out;
				}
				/* Some file systems (procfs-like, some FUSE) answer 0
				 * before the end; let pread(2) have the final word. */
				if (n == 0) {
					kernel = 0;
					continue;
				}
				done += n;
				continue;
			}
			if (!buf)
				buf = util_malloc(XFER_FD_BUFSZ);
			size_t want = end - done > XFER_FD_BUFSZ ? XFER_FD_BUFSZ
								   : (size_t)(end - done);
			ssize_t n = pread(in, buf, want, in_off + done);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				f->at = n < 0 ? XFER_FD_AT_READ : XFER_FD_AT_SHORT;
				f->errnum = n < 0 ? errno : 0;
				rc = XFER_FAILED;
				goto out;
			}
			if (on_data && on_data(arg, buf, (size_t)n) != 0) {
				f->at = XFER_FD_AT_CALLER;
				rc = XFER_FAILED;
				goto out;
			}
			for (ssize_t off = 0; off < n;) {
				ssize_t w = pwrite(out, buf + off, (size_t)(n - off),
						   out_off + done + off);
				if (w < 0 && errno == EINTR)
					continue;
				if (w <= 0) {
					f->at = XFER_FD_AT_WRITE;
					f->errnum = w < 0 ? errno : EIO;
					done += off;
					rc = XFER_FAILED;
					goto out;
				}
				off += w;
			}
			done += n;
		}
	}
out:
	f->done = done;
	free(buf);
	return rc;
}

int xfer_fd_copy(int in, int64_t in_off, int out, int64_t out_off, int64_t len,
		int (*on_data)(void *arg, const char *buf, size_t n), void *arg,
		volatile sig_atomic_t *stop, char *err, size_t errlen)
{
	struct xfer_fd_fault f;
	xfer_clear_err(err, errlen);
	int rc = on_data && len >= XFER_FD_PAR_MIN
			 ? xfer_fd_copy_hashed(in, in_off, out, out_off, len, on_data, arg, stop, &f)
			 : xfer_fd_copy_fds(in, in_off, out, out_off, len, on_data, arg, stop, &f, NULL);
	if (rc != XFER_FAILED)
		return rc;
	switch (f.at) {
	case XFER_FD_AT_READ:
		return xfer_fail(err, errlen, "read error at byte %lld: %s",
				(long long)(in_off + f.done), strerror(f.errnum));
	case XFER_FD_AT_WRITE:
		return xfer_fail(err, errlen, "write error at byte %lld: %s",
				(long long)(out_off + f.done), strerror(f.errnum));
	case XFER_FD_AT_SHORT:
		return xfer_fail(err, errlen,
				"the source ended at byte %lld, %lld bytes short",
				(long long)(in_off + f.done), (long long)(len - f.done));
	case XFER_FD_AT_CALLER:
		return xfer_fail(err, errlen, "copy ended by its caller at byte %lld",
				(long long)(in_off + f.done));
	default:
		return xfer_fail(err, errlen, "copy error at byte %lld: %s",
				(long long)(in_off + f.done), strerror(f.errnum));
	}
}


/* ---- the boot mark ---------------------------------------------------- */

/* This boot of the machine, from the kernel (a new one at every boot). */
static char xfer_fd_boot[64];
static pthread_once_t xfer_fd_boot_once = PTHREAD_ONCE_INIT;

static void xfer_fd_boot_init(void)
{
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
	if (f) {
		if (!fgets(xfer_fd_boot, sizeof xfer_fd_boot, f))
			xfer_fd_boot[0] = '\0';
		fclose(f);
	}
	xfer_fd_boot[strcspn(xfer_fd_boot, "\n")] = '\0';
}

#define XFER_FD_BOOT_XATTR "user.apubid.boot"

/*
 * A partial file is continued only if every byte of it was written since
 * the machine last started: bytes written before a power cut or a crash
 * may never have reached the disk (the stage is made durable at the
 * commit only), and the file can then hold zeros where its size says
 * data. A file being written carries the boot it was written in (an
 * extended attribute, removed when the file is finished); a file from
 * another boot, or on a file system without user attributes, is
 * copied again from its first byte.
 */
int xfer_fd_claim(int fd)
{
	pthread_once(&xfer_fd_boot_once, xfer_fd_boot_init);
	char was[64];
	ssize_t n = fgetxattr(fd, XFER_FD_BOOT_XATTR, was, sizeof was - 1);
	int same = xfer_fd_boot[0] && n > 0 && (size_t)n == strlen(xfer_fd_boot) &&
		   memcmp(was, xfer_fd_boot, (size_t)n) == 0;
	if (!same && xfer_fd_boot[0])
		(void)fsetxattr(fd, XFER_FD_BOOT_XATTR, xfer_fd_boot,
				strlen(xfer_fd_boot), 0);
	return same;
}

int xfer_fd_truncate(int fd, int64_t size, char *err, size_t errlen)
{
	xfer_clear_err(err, errlen);
	if (size < 0)
		return xfer_fail(err, errlen, "cannot truncate a staged file to %lld bytes",
				(long long)size);
	while (ftruncate(fd, (off_t)size) < 0)
		if (errno != EINTR)
			return xfer_fail(err, errlen, "cannot truncate a staged file: %s",
					strerror(errno));
	/* Without this, the next write(2) would land at the old end and
	 * leave a hole of zeros. */
	if (lseek(fd, (off_t)size, SEEK_SET) < 0)
		return xfer_fail(err, errlen, "cannot truncate a staged file: %s",
				strerror(errno));
	return XFER_OK;
}

void xfer_fd_unclaim(int fd)
{
	(void)fremovexattr(fd, XFER_FD_BOOT_XATTR);
}

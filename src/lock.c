/*
 * lock.c - one daemon per SQLite store.
 *
 * A SQLite store belongs to one daemon (a PostgreSQL store is shared by
 * design: there each node's claims are leases, store_pg.c). Two apubid
 * processes on one SQLite file would each take the other's running
 * tasks for interrupted ones: the second one's start-up (store_recover)
 * queues again the task the first is running, a worker of the second
 * claims it, removes the first one's stage, and the task can end FAILED
 * while its asset is published. So apubid holds an exclusive lock on its
 * store for as long as it runs, taken before it recovers anything.
 *
 * The lock is a POSIX record lock (fcntl F_SETLK, write lock on the whole
 * file) on `<store path>.lock`, beside the store. The kernel drops it when
 * the process ends, however it ends, so a kill -9 leaves nothing stale
 * behind: the file itself stays (removing it would let a third process
 * lock a new file while a second still holds the old one), and it only
 * ever means something while a process holds its lock. The holder writes
 * its pid into the file, for people; a daemon refused the lock names the
 * holder from F_GETLK, which asks the kernel, and falls back to the file
 * (F_GETLK answers 0 for a holder in another pid namespace).
 *
 * Why a file of its own and not a lock on the store: SQLite takes and
 * drops fcntl locks on the store, its WAL and its shared memory file, and a
 * process's fcntl locks on a file all vanish when it closes any descriptor
 * of that file, which SQLite does. apubictl opens the store beside the
 * running daemon (listing, showing, retrying, cancelling tasks) and never
 * takes this lock; nor does `apubid -n`, which does not open the store.
 *
 * The descriptor is opened O_CLOEXEC (nothing apubid starts inherits it)
 * and O_NOFOLLOW (apubid may run as root: a link planted under that name
 * must not make it truncate whatever the link points to). It stays open
 * until lock_release or the end of the process: a lock survives dropping
 * privileges, so main.c takes it as the service user, which then owns the
 * file like the store beside it.
 */
#include "apubid.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int lock_fd = -1;

/* The pid of the process holding the lock on fd, or 0 when unknown. */
static long lock_holder(int fd)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	if (fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK && fl.l_pid > 0)
		return (long)fl.l_pid;
	char buf[32];
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	char *end;
	long pid = strtol(buf, &end, 10);
	return pid > 0 && (*end == '\n' || *end == '\0') ? pid : 0;
}

int lock_take(const char *store_path, char *err, size_t errlen)
{
	if (lock_fd >= 0)
		return 0;
	char *path = util_printf("%s.lock", store_path);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		util_error(err, errlen, "store %s: cannot open its lock file %s: %s", store_path,
			   path, strerror(errno));
		free(path);
		return -1;
	}
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	if (fcntl(fd, F_SETLK, &fl) < 0) {
		int e = errno;
		if (e == EACCES || e == EAGAIN) {
			long pid = lock_holder(fd);
			if (pid > 0)
				util_error(err, errlen, "store %s is in use by apubid pid %ld (lock %s)",
					   store_path, pid, path);
			else
				util_error(err, errlen,
					   "store %s is in use by another apubid (lock %s)",
					   store_path, path);
		} else {
			util_error(err, errlen, "store %s: cannot lock %s: %s", store_path, path,
				   strerror(e));
		}
		close(fd);
		free(path);
		return -1;
	}
	char pid[32];
	int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n)
		log_warn("store %s: cannot write the pid into %s: %s (the lock is held all the same)",
			 store_path, path, strerror(errno));
	free(path);
	lock_fd = fd;
	return 0;
}

void lock_release(void)
{
	if (lock_fd < 0)
		return;
	close(lock_fd);
	lock_fd = -1;
}

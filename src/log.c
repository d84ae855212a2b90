/*
 * log.c - one line per event on stderr, with a UTC timestamp and a level.
 * Each line is formatted in full and written with a single write(2), so
 * lines from concurrent threads never interleave. Callers mask secrets
 * (url_mask) before a URL reaches a log line.
 *
 * With [log] file, log_open opens the file (O_APPEND, so lines from
 * concurrent writers and a rotating tool never overwrite each other) and
 * puts it in place of descriptor 2 with dup2: log_msg keeps writing to
 * STDERR_FILENO, the swap is atomic for writers in other threads, and
 * whatever a library prints to stderr lands in the same file. The original
 * stderr is kept (dup'ed once) so that a reload without a file goes back
 * to it. log_reopen opens the same path again: after logrotate has renamed
 * the file away, SIGHUP makes apubid create and write a new one.
 */
#include "apubid.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile int log_level = LOG_INFO;
static const char *const log_names[] = { "error", "warn", "info", "debug" };

/* Guards the two below; only log_open and log_reopen take it, never
 * log_msg. */
static pthread_mutex_t log_file_lock = PTHREAD_MUTEX_INITIALIZER;
static char *log_path;          /* the file in place of stderr, or NULL */
static int log_saved_fd = -1;   /* the stderr apubid was started with */

int log_parse_level(const char *name)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(name, log_names[i]) == 0)
			return i;
	return -1;
}

void log_set_level(int level)
{
	log_level = level;
}

int log_enabled(int level)
{
	return level <= log_level;
}

/* Points descriptor 2 at `path` (or back at the original stderr when
 * NULL). Called with log_file_lock held. */
static int log_switch(const char *path, char *err, size_t errlen)
{
	if (log_saved_fd < 0) {
		log_saved_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
		if (log_saved_fd < 0) {
			util_error(err, errlen, "cannot keep stderr: %s", strerror(errno));
			return -1;
		}
	}
	int fd = log_saved_fd;
	if (path) {
		fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
		if (fd < 0) {
			util_error(err, errlen, "cannot open log file %s: %s", path, strerror(errno));
			return -1;
		}
	}
	int rc = dup2(fd, STDERR_FILENO);
	int e = errno;
	if (fd != log_saved_fd)
		close(fd);
	if (rc < 0) {
		util_error(err, errlen, "cannot put log file %s in place of stderr: %s",
			   path ? path : "(stderr)", strerror(e));
		return -1;
	}
	return 0;
}

int log_open(const char *path, char *err, size_t errlen)
{
	pthread_mutex_lock(&log_file_lock);
	int rc = log_switch(path, err, errlen);
	if (rc == 0) {
		free(log_path);
		log_path = util_strdup(path);
	}
	pthread_mutex_unlock(&log_file_lock);
	return rc;
}

int log_reopen(char *err, size_t errlen)
{
	pthread_mutex_lock(&log_file_lock);
	int rc = log_path ? log_switch(log_path, err, errlen) : 0;
	pthread_mutex_unlock(&log_file_lock);
	return rc;
}

void log_msg(int level, const char *fmt, ...)
{
	if (!log_enabled(level))
		return;
	char line[4096];
	struct timeval tv;
	struct tm tm;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	size_t n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(line + n, sizeof line - n, ".%03ldZ %-5s ",
			      (long)(tv.tv_usec / 1000), log_names[level]);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += (size_t)m;
	if (n > sizeof line - 2)
		n = sizeof line - 2;
	/* A value quoted into a log line must not forge a second line, nor
	 * send escape sequences to a terminal. */
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			line[i] = line[i] == '\n' || line[i] == '\r' ? ' ' : '?';
	line[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, n);
	(void)w;
}

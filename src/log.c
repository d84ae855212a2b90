/*
 * log.c - one line per event on stderr, with a UTC timestamp and a level.
 * Each line is formatted in full and written with a single write(2), so
 * lines from concurrent threads never interleave. Callers mask secrets
 * (url_mask) before a URL reaches a log line.
 *
 * Two shapes, chosen by [log] format. Text (the default) is for people:
 *
 *   2026-11-22T12:00:00.123Z info  request op=LoadAsset status=200 ms=5
 *
 * JSON is for log shippers: one object per line, with "time" (ISO 8601
 * UTC, milliseconds), "level", "message" (the text line's message), and,
 * for an event logged with log_event, one member per field ("op",
 * "status", ...; numbers as JSON numbers). jansson does the escaping; every
 * string is made valid UTF-8 first (a log message may quote any byte a
 * client sent), so every line parses.
 *
 * Under systemd, when descriptor 2 is the journal's own stream (the
 * JOURNAL_STREAM variable names its "device:inode", which is compared with
 * fstat of descriptor 2, as sd_journal_stream_fd(3) advises, so that a
 * [log] file or a redirection in between is not mistaken for it), every
 * line starts with its syslog priority, "<3>" error, "<4>" warn, "<6>"
 * info, "<7>" debug: journald strips it and files the line at that
 * priority, so `journalctl -p warning` works. Text lines then leave out
 * their timestamp, since journald stamps every line itself, more
 * precisely; JSON lines keep "time", part of their fixed shape. The check
 * is made again after every switch of descriptor 2.
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
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static volatile int log_level = LOG_INFO;
static volatile int log_format = LOG_TEXT;
static const char *const log_names[] = { "error", "warn", "info", "debug" };
static const char *const log_formats[] = { "text", "json" };
/* syslog priorities (LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG of
 * <syslog.h>, whose names clash with ours) by level. */
static const int log_priorities[] = { 3, 4, 6, 7 };
/* Whether descriptor 2 is the journal's stream: 1 or 0, -1 when not
 * known yet (at start, and after each switch of descriptor 2). */
static int log_journal = -1;

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

int log_parse_format(const char *name)
{
	for (int i = 0; i < 2; i++)
		if (strcmp(name, log_formats[i]) == 0)
			return i;
	return -1;
}

void log_set_format(int format)
{
	log_format = format;
}

/* 1 when descriptor 2 is the stream JOURNAL_STREAM names. */
static int log_journal_detect(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	char extra;
	struct stat st;
	if (!js || sscanf(js, "%llu:%llu%c", &dev, &ino, &extra) != 2)
		return 0;
	if (fstat(STDERR_FILENO, &st) < 0)
		return 0;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
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
	__atomic_store_n(&log_journal, -1, __ATOMIC_RELAXED);
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

/* Writes one line: `msg` (mutable, already free of control characters)
 * and, in JSON, the fields as members. */
static void log_write(int level, char *msg, const struct log_field *f, int nf)
{
	char stamp[40], prio[8] = "";
	struct timeval tv;
	struct tm tm;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	size_t n = strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(stamp + n, sizeof stamp - n, ".%03ldZ", (long)(tv.tv_usec / 1000));
	int journal = __atomic_load_n(&log_journal, __ATOMIC_RELAXED);
	if (journal < 0) {
		journal = log_journal_detect();
		__atomic_store_n(&log_journal, journal, __ATOMIC_RELAXED);
	}
	if (journal)
		snprintf(prio, sizeof prio, "<%d>", log_priorities[level]);

	if (log_format == LOG_JSON) {
		/* jansson takes only valid UTF-8; util_utf8_sanitize works in
		 * place, so field values are copied first. */
		json_t *o = json_object();
		char *js = NULL;
		if (o) {
			json_object_set_new(o, "time", json_string(stamp));
			json_object_set_new(o, "level", json_string(log_names[level]));
			json_object_set_new(o, "message", json_string(util_utf8_sanitize(msg)));
			for (int i = 0; i < nf; i++) {
				char v[1024];
				if (!f[i].str) {
					json_object_set_new(o, f[i].key, json_integer(f[i].num));
					continue;
				}
				snprintf(v, sizeof v, "%s", f[i].str);
				json_object_set_new(o, f[i].key, json_string(util_utf8_sanitize(v)));
			}
			js = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
			json_decref(o);
		}
		if (js) {
			struct iovec iov[3] = { { prio, strlen(prio) }, { js, strlen(js) }, { "\n", 1 } };
			ssize_t w = writev(STDERR_FILENO, iov, 3);
			(void)w;
			free(js);
			return;
		}
		/* Out of memory: the text line below still says what happened. */
	}
	char line[4200];
	int m = journal ? snprintf(line, sizeof line, "%s%-5s %s\n", prio, log_names[level], msg)
			: snprintf(line, sizeof line, "%s %-5s %s\n", stamp, log_names[level], msg);
	if (m < 0)
		return;
	n = (size_t)m < sizeof line ? (size_t)m : sizeof line - 1;
	line[n - 1] = '\n';
	ssize_t w = write(STDERR_FILENO, line, n);
	(void)w;
}

/* A value quoted into a log line must not forge a second line, nor send
 * escape sequences to a terminal. */
static void log_clean(char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			s[i] = s[i] == '\n' || s[i] == '\r' ? ' ' : '?';
}

void log_msg(int level, const char *fmt, ...)
{
	if (!log_enabled(level))
		return;
	char msg[4096];
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	size_t n = (size_t)m < sizeof msg ? (size_t)m : sizeof msg - 1;
	msg[n] = '\0';
	log_clean(msg, n);
	log_write(level, msg, NULL, 0);
}

void log_event(int level, const char *event, const struct log_field *f, int nf)
{
	if (!log_enabled(level))
		return;
	char msg[4096];
	size_t n = (size_t)snprintf(msg, sizeof msg, "%s", event);
	for (int i = 0; i < nf && n < sizeof msg - 1; i++) {
		const char *q = f[i].quote ? "\"" : "";
		int m = f[i].str ? snprintf(msg + n, sizeof msg - n, " %s=%s%s%s", f[i].key, q,
					    f[i].str, q)
				 : snprintf(msg + n, sizeof msg - n, " %s=%lld", f[i].key, f[i].num);
		if (m < 0)
			break;
		n += (size_t)m;
	}
	if (n > sizeof msg - 1)
		n = sizeof msg - 1;
	msg[n] = '\0';
	log_clean(msg, n);
	log_write(level, msg, f, nf);
}

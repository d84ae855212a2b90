/*
 * log.c - one line per event on stderr, with a UTC timestamp and a level.
 * Each line is formatted in full and written with a single write(2), so
 * lines from concurrent threads never interleave. Callers mask secrets
 * (url_mask) before a URL reaches a log line.
 */
#include "apubid.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile int log_level = LOG_INFO;
static const char *const log_names[] = { "error", "warn", "info", "debug" };

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

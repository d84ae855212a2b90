/*
 * display.c - how text reaches the operator's terminal.
 *
 * Everything apubictl prints that it did not write itself (task fields
 * from the store, faults and task views from a server) may come from a
 * hostile peer or a hostile asset name: it goes through display_safe, so
 * no byte of it can drive the terminal. URLs that may carry a password go
 * through url_mask first. The formatters here write into the caller's
 * buffer and return it, so that they can appear in one printf.
 */
#include "ctl.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A copy of text from the store or the network, safe for a terminal:
 * invalid UTF-8 and control characters (line breaks and tabs included)
 * become '?' or ' '. NULL becomes "-". */
char *display_safe(const char *s)
{
	if (!s)
		return util_strdup("-");
	char *c = util_utf8_sanitize(util_strdup(s));
	for (char *p = c; *p; p++)
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
	return c;
}

/* Prints "label: value" with the value made safe; masked when it may be a
 * URL carrying a password. */
void display_field(const char *label, const char *value, int mask)
{
	char *m = mask && value ? url_mask(value) : NULL;
	char *s = display_safe(m ? m : value);
	printf("  %-14s %s\n", label, s);
	free(s);
	free(m);
}

/* "2026-11-22T12:00:00.123Z" (with_ms) or "2026-11-22T12:00:00Z"; "-" for 0. */
const char *display_time(int64_t ms, int with_ms, char *buf, size_t len)
{
	if (ms <= 0) {
		snprintf(buf, len, "-");
		return buf;
	}
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	char s[32];
	strftime(s, sizeof s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (with_ms)
		snprintf(buf, len, "%s.%03dZ", s, (int)(ms % 1000));
	else
		snprintf(buf, len, "%sZ", s);
	return buf;
}

/* "1.5 MiB" */
const char *display_bytes(int64_t n, char *buf, size_t len)
{
	if (n < 0) {
		snprintf(buf, len, "?");
		return buf;
	}
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n;
	int u = 0;
	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%" PRId64 " B", n);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
	return buf;
}

/* "45 s", "3 min 20 s", "2 h 05 min": a time left, to the second below
 * ten minutes and to the minute above. */
const char *display_duration(double seconds, char *buf, size_t len)
{
	if (!(seconds >= 0) || seconds > 1e8) { /* NaN too */
		snprintf(buf, len, "?");
		return buf;
	}
	int64_t s = (int64_t)(seconds + 0.5);
	if (s < 60)
		snprintf(buf, len, "%" PRId64 " s", s);
	else if (s < 600)
		snprintf(buf, len, "%" PRId64 " min %02" PRId64 " s", s / 60, s % 60);
	else if (s < 3600)
		snprintf(buf, len, "%" PRId64 " min", (s + 30) / 60);
	else
		snprintf(buf, len, "%" PRId64 " h %02" PRId64 " min", s / 3600, (s % 3600 + 30) / 60);
	return buf;
}

/*
 * util.c - small helpers every subsystem needs: allocation that never hands
 * back NULL, trimming, clocks and TaskId generation.
 */
#include "apubid.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uuid/uuid.h>

void util_error(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static void util_oom(size_t n)
{
	log_error("out of memory (%zu bytes)", n);
	abort();
}

void *util_malloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		util_oom(n);
	return p;
}

void *util_calloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		util_oom(n * size);
	return p;
}

char *util_strdup(const char *s)
{
	if (!s)
		return NULL;
	return util_strndup(s, strlen(s));
}

char *util_strndup(const char *s, size_t n)
{
	char *p = util_malloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *util_printf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		util_oom(0);
	char *p = util_malloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

static int util_is_xml_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

char *util_trim(char *s)
{
	if (!s)
		return NULL;
	size_t start = 0, len = strlen(s);
	while (start < len && util_is_xml_space(s[start]))
		start++;
	while (len > start && util_is_xml_space(s[len - 1]))
		len--;
	memmove(s, s + start, len - start);
	s[len - start] = '\0';
	return s;
}

int64_t util_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t util_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void util_uuid(char out[TASKID_LEN])
{
	uuid_t u;
	uuid_generate_random(u);
	uuid_unparse_upper(u, out);
}

int util_taskid_parse(const char *s, size_t n, char out[TASKID_LEN])
{
	if (n != TASKID_LEN - 1)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
			return -1;
	}
	for (size_t i = 0; i < n; i++)
		out[i] = (char)toupper((unsigned char)s[i]);
	out[n] = '\0';
	return 0;
}

int util_utf8_lead(unsigned char c, unsigned char *lo, unsigned char *hi)
{
	*lo = 0x80;
	*hi = 0xbf;
	if (c < 0x80)
		return 0;
	if (c >= 0xc2 && c <= 0xdf)
		return 1;
	if (c == 0xe0)
		return *lo = 0xa0, 2;
	if (c == 0xed)
		return *hi = 0x9f, 2;
	if (c >= 0xe1 && c <= 0xef)
		return 2;
	if (c == 0xf0)
		return *lo = 0x90, 3;
	if (c == 0xf4)
		return *hi = 0x8f, 3;
	if (c >= 0xf1 && c <= 0xf3)
		return 3;
	return -1;
}

/* Length of the valid UTF-8 sequence at p (1 to 4), or 0 when invalid. */
static int util_utf8_len(const unsigned char *p)
{
	unsigned char lo, hi;
	int more = util_utf8_lead(p[0], &lo, &hi);
	if (more < 0)
		return 0;
	if (more > 0 && (p[1] < lo || p[1] > hi))
		return 0;
	for (int i = 2; i <= more; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return more + 1;
}

char *util_utf8_sanitize(char *s)
{
	if (!s)
		return NULL;
	unsigned char *p = (unsigned char *)s;
	while (*p) {
		int n = util_utf8_len(p);
		if (n == 0 || (*p < 0x20 && *p != '\t' && *p != '\n' && *p != '\r'))
			*p++ = '?';
		else
			p += n;
	}
	return s;
}

/* Makes room for n more bytes and the terminator. */
static void util_buf_grow(struct util_buf *b, size_t n)
{
	if (b->len + n + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 256;
	while (b->len + n + 1 > cap)
		cap *= 2;
	char *p = util_malloc(cap);
	if (b->len)
		memcpy(p, b->p, b->len);
	free(b->p);
	b->p = p;
	b->cap = cap;
}

void util_buf_add(struct util_buf *b, const char *s, size_t n)
{
	util_buf_grow(b, n);
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void util_buf_adds(struct util_buf *b, const char *s)
{
	util_buf_add(b, s, strlen(s));
}

void util_buf_addf(struct util_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	util_buf_grow(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

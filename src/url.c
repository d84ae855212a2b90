/*
 * url.c - parsing, masking and path normalisation for the URLs and paths
 * that reach apubid from the WFM and from the configuration.
 *
 * Everything a client sends as SourceAssetUrl or DestinationAsset passes
 * through here before apubid touches a file, so the parser is strict where
 * strictness protects the filesystem: control characters (raw or
 * percent-encoded), "%00", bad escapes, query strings and fragments are
 * refused, and url_path_normalize never lets a ".." segment through. It is
 * lenient only where that costs nothing: userinfo ends at the *last* '@'
 * before the path, so a password with an unencoded '@' still leaves the
 * right host, and a raw space or UTF-8 byte in a path is taken as it is.
 *
 * Invariant: a struct url filled by url_parse holds decoded, NUL-free,
 * control-free strings, with scheme and host lower-cased; on failure it is
 * all NULL and zero.
 */
#include "apubid.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Locale-free character classes: URLs are ASCII, whatever LC_CTYPE says. */
static int url_is_alpha(int ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static int url_is_digit(int ch)
{
	return ch >= '0' && ch <= '9';
}

static int url_is_ctl(int ch)
{
	return (ch >= 0 && ch < 0x20) || ch == 0x7f;
}

static int url_hex(int ch)
{
	if (url_is_digit(ch))
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static char url_lower(char ch)
{
	return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

/* Length of the scheme when `s` starts with "scheme://", else 0. */
static size_t url_scheme_len(const char *s)
{
	size_t i = 0;
	if (!s || !url_is_alpha((unsigned char)s[0]))
		return 0;
	while (url_is_alpha((unsigned char)s[i]) || url_is_digit((unsigned char)s[i]) ||
	       s[i] == '+' || s[i] == '-' || s[i] == '.')
		i++;
	return strncmp(s + i, "://", 3) == 0 ? i : 0;
}

int url_is_absolute(const char *s)
{
	return url_scheme_len(s) > 0;
}

/* Percent-decodes s[0..n). A decoded NUL or control character is refused
 * as well as a raw one: once decoded, "%0d%0a" is as dangerous in a file
 * name or an FTP command as CRLF typed out. `what` names the part for the
 * message. Returns a malloc'ed string or NULL with err set. */
static char *url_decode(const char *s, size_t n, const char *what, char *err, size_t errlen)
{
	char *out = util_malloc(n + 1);
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		int ch = (unsigned char)s[i];
		if (ch == '%') {
			int hi = i + 1 < n ? url_hex((unsigned char)s[i + 1]) : -1;
			int lo = i + 2 < n ? url_hex((unsigned char)s[i + 2]) : -1;
			if (hi < 0 || lo < 0) {
				util_error(err, errlen, "bad percent-escape in %s", what);
				free(out);
				return NULL;
			}
			ch = hi * 16 + lo;
			i += 2;
			if (ch == 0) {
				util_error(err, errlen, "%%00 in %s", what);
				free(out);
				return NULL;
			}
			if (url_is_ctl(ch)) {
				util_error(err, errlen, "encoded control character in %s", what);
				free(out);
				return NULL;
			}
		}
		out[o++] = (char)ch;
	}
	out[o] = '\0';
	return out;
}

/* A registered name or IPv4 address: RFC 3986 unreserved and sub-delims.
 * Percent-encoded and non-ASCII host names are refused rather than guessed
 * at. */
static int url_host_char(int ch)
{
	return url_is_alpha(ch) || url_is_digit(ch) || (ch && strchr("-._~!$&'()*+,;=", ch));
}

static int url_ipv6_char(int ch)
{
	return url_hex(ch) >= 0 || ch == ':' || ch == '.';
}

/* Parses "digits" in s[0..n) as a port, 1..65535. */
static int url_port(const char *s, size_t n)
{
	int port = 0;
	if (n == 0 || n > 5)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!url_is_digit((unsigned char)s[i]))
			return -1;
		port = port * 10 + (s[i] - '0');
	}
	return port >= 1 && port <= 65535 ? port : -1;
}

int url_parse(const char *s, struct url *u, char *err, size_t errlen)
{
	memset(u, 0, sizeof *u);
	if (!s || !*s) {
		util_error(err, errlen, "empty URL");
		return -1;
	}
	for (const char *p = s; *p; p++) {
		if (url_is_ctl((unsigned char)*p)) {
			util_error(err, errlen, "control character in URL");
			return -1;
		}
	}
	size_t sl = url_scheme_len(s);
	if (!sl) {
		util_error(err, errlen, "not an absolute URL (scheme://...)");
		return -1;
	}

	const char *auth = s + sl + 3;
	const char *path = strchr(auth, '/');
	if (!path)
		path = auth + strlen(auth);
	const char *at = memrchr(auth, '@', (size_t)(path - auth));
	const char *host = at ? at + 1 : auth;
	/* '?' and '#' are tolerated inside userinfo (a careless password), but
	 * anywhere after it they start a query or a fragment. */
	if (strpbrk(host, "?#")) {
		util_error(err, errlen, "query strings and fragments are not supported");
		return -1;
	}

	u->scheme = util_strndup(s, sl);
	for (char *p = u->scheme; *p; p++)
		*p = url_lower(*p);

	if (at) {
		const char *colon = memchr(auth, ':', (size_t)(at - auth));
		const char *uend = colon ? colon : at;
		u->user = url_decode(auth, (size_t)(uend - auth), "user name", err, errlen);
		if (!u->user)
			goto fail;
		if (colon) {
			u->password = url_decode(colon + 1, (size_t)(at - colon - 1), "password",
						 err, errlen);
			if (!u->password)
				goto fail;
		}
	}

	const char *hend, *portp = NULL;
	if (*host == '[') {
		const char *close = memchr(host, ']', (size_t)(path - host));
		if (!close) {
			util_error(err, errlen, "unterminated IPv6 address (missing ']')");
			goto fail;
		}
		for (const char *p = host + 1; p < close; p++) {
			if (!url_ipv6_char((unsigned char)*p)) {
				util_error(err, errlen, "bad character in IPv6 address");
				goto fail;
			}
		}
		if (!memchr(host + 1, ':', (size_t)(close - host - 1))) {
			util_error(err, errlen, "bad IPv6 address");
			goto fail;
		}
		u->host = util_strndup(host + 1, (size_t)(close - host - 1));
		if (close + 1 < path) {
			if (close[1] != ':') {
				util_error(err, errlen, "unexpected text after IPv6 address");
				goto fail;
			}
			portp = close + 2;
		}
		hend = close;
	} else {
		const char *colon = memchr(host, ':', (size_t)(path - host));
		hend = colon ? colon : path;
		if (colon && memchr(colon + 1, ':', (size_t)(path - colon - 1))) {
			util_error(err, errlen, "IPv6 addresses must be in brackets, e.g. [::1]:21");
			goto fail;
		}
		for (const char *p = host; p < hend; p++) {
			if (!url_host_char((unsigned char)*p)) {
				util_error(err, errlen, "bad character in host name");
				goto fail;
			}
		}
		u->host = util_strndup(host, (size_t)(hend - host));
		if (colon)
			portp = colon + 1;
	}
	for (char *p = u->host; *p; p++)
		*p = url_lower(*p);
	if (portp) {
		u->port = url_port(portp, (size_t)(path - portp));
		if (u->port < 0) {
			u->port = 0;
			util_error(err, errlen, "bad port (expected 1 to 65535)");
			goto fail;
		}
	}
	/* Only file:// may leave the host out ("file:///srv/x"); for any
	 * other scheme an empty host is a typo that would otherwise reach a
	 * transfer library. */
	if (!*u->host && strcmp(u->scheme, "file") != 0) {
		util_error(err, errlen, "URL has no host");
		goto fail;
	}

	u->path = url_decode(path, strlen(path), "path", err, errlen);
	if (!u->path)
		goto fail;
	return 0;

fail:
	url_free(u);
	return -1;
}

void url_free(struct url *u)
{
	if (!u)
		return;
	free(u->scheme);
	free(u->user);
	free(u->password);
	free(u->host);
	free(u->path);
	memset(u, 0, sizeof *u);
}

static int url_all_digits(const char *s, const char *end)
{
	if (s == end)
		return 0;
	for (; s < end; s++)
		if (!url_is_digit((unsigned char)*s))
			return 0;
	return 1;
}

/* Works on the text, not on a parse: the URLs that most need masking are
 * the ones url_parse refuses (a bad port, a stray CR), because they end up
 * in error messages. When in doubt it masks too much rather than too
 * little. */
char *url_mask(const char *s)
{
	if (!s)
		return NULL;
	size_t sl = url_scheme_len(s);
	if (!sl)
		return util_strdup(s);
	const char *auth = s + sl + 3;
	const char *end = strchr(auth, '/');
	if (!end)
		end = auth + strlen(auth);
	const char *at = memrchr(auth, '@', (size_t)(end - auth));
	if (!at) {
		/* A password with an unencoded '/' ends the authority early:
		 * "ftp://u:pa/ss@host/x". When what precedes the first '/'
		 * reads "user:something-not-a-port" and an '@' follows, mask up
		 * to the last '@' so no part of the secret shows. */
		const char *colon = memchr(auth, ':', (size_t)(end - auth));
		if (!colon || *auth == '[' || url_all_digits(colon + 1, end))
			return util_strdup(s);
		at = strrchr(end, '@');
		if (!at)
			return util_strdup(s);
	}
	const char *colon = memchr(auth, ':', (size_t)(at - auth));
	if (!colon)
		return util_strdup(s);
	return util_printf("%.*s***%s", (int)(colon + 1 - s), s, at);
}

int url_path_normalize(const char *in, char **out, int *is_dir, char *err, size_t errlen)
{
	*out = NULL;
	*is_dir = 0;
	size_t n = strlen(in);
	for (size_t i = 0; i < n; i++) {
		if (url_is_ctl((unsigned char)in[i])) {
			util_error(err, errlen, "control character in path");
			return -1;
		}
	}
	char *buf = util_malloc(n + 1);
	size_t o = 0;
	const char *p = in;
	while (*p) {
		const char *e = strchrnul(p, '/');
		size_t len = (size_t)(e - p);
		if (len == 2 && p[0] == '.' && p[1] == '.') {
			util_error(err, errlen, "path must not contain '..'");
			free(buf);
			return -1;
		}
		if (len > 0 && !(len == 1 && p[0] == '.')) {
			if (o)
				buf[o++] = '/';
			memcpy(buf + o, p, len);
			o += len;
		}
		p = *e ? e + 1 : e;
	}
	buf[o] = '\0';
	*out = buf;
	*is_dir = n > 0 && in[n - 1] == '/';
	return 0;
}

/* Percent-encodes every byte outside RFC 3986's unreserved set and `keep`. */
static char *url_encode(const char *p, const char *keep)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = util_malloc(strlen(p) * 3 + 1), *o = out;
	for (; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || (ch && strchr("-._~", ch)) ||
		    (ch && strchr(keep, ch))) {
			*o++ = (char)ch;
		} else {
			*o++ = '%';
			*o++ = hex[ch >> 4];
			*o++ = hex[ch & 15];
		}
	}
	*o = '\0';
	return out;
}

char *url_encode_path(const char *p)
{
	return url_encode(p, "/");
}

char *url_encode_userinfo(const char *s)
{
	return url_encode(s, "");
}

int url_default_port(const struct url *u)
{
	static const struct {
		const char *scheme;
		int port;
	} defaults[] = {
		{ "ftp", 21 }, { "ftps", 21 }, { "sftp", 22 }, { "http", 80 }, { "https", 443 },
	};
	if (u->port)
		return u->port;
	for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
		if (strcmp(u->scheme, defaults[i].scheme) == 0)
			return defaults[i].port;
	return 0;
}

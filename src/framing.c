/*
 * framing.c - where an HTTP/1.1 request begins and ends (RFC 9112), read
 * strictly.
 *
 * A request apubid serves has passed through here first: the request line
 * and header fields are checked against the grammar before gSOAP's own,
 * more forgiving parser sees them, and the framing of the body (its
 * Content-Length, or chunked Transfer-Encoding) is decided here alone.
 * Leniency in framing is what request smuggling behind a proxy feeds on:
 * when two parsers disagree on where a request ends, a second request can
 * hide in the first one's body. So, as RFC 9112 allows or requires:
 *   - lines end with CRLF; a bare LF, a bare CR, a NUL or another control
 *     character anywhere in the request line or a header is a 400;
 *   - the request line is method SP target SP HTTP/1.x, single spaces;
 *   - a header name is a token immediately followed by ':' (no space
 *     before the colon, §5.1); an obsolete folded line is a 400 (§5.2);
 *   - Content-Length is digits only, and several must agree; with
 *     Transfer-Encoding as well, the request is a 400 and the connection
 *     is closed (§6.1); a Transfer-Encoding other than "chunked" is a 501;
 *   - two Host or two Authorization headers are a 400: which one counts
 *     would depend on the parser.
 *
 * The checker is incremental: framing_head is called again each time more
 * bytes of a header block have arrived, with everything read so far; it
 * checks each complete line once and remembers where it stopped, so a
 * block that arrives in many pieces costs no more than one that arrives
 * whole. framing_chunks follows a chunked body the same way, to find its
 * end (the engine decodes the chunks itself later). Nothing here
 * allocates or keeps pointers into the caller's buffer.
 */
#include "apubid.h"

#include <string.h>
#include <strings.h>

/* A header line longer than gSOAP's SOAP_HDRLEN could not be parsed by it. */
#define FRAMING_LINE_MAX 8192

void framing_init(struct framing *f)
{
	memset(f, 0, sizeof *f);
	f->content_length = -1;
}

static int framing_bad(struct framing *f, int status, const char *why)
{
	f->status = status;
	f->why = why;
	return FRAMING_BAD;
}

/* RFC 9110 §5.6.2 tchar. */
static int framing_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Checks the request line "method SP target SP HTTP/1.x". */
static int framing_request_line(struct framing *f, const unsigned char *p, size_t n)
{
	size_t i = 0;
	while (i < n && framing_tchar(p[i]))
		i++;
	if (i == 0 || i >= n || p[i] != ' ')
		return framing_bad(f, 400, "the request line is not \"method target HTTP/1.1\"");
	size_t t = ++i;
	while (i < n && p[i] > 0x20 && p[i] < 0x7f)
		i++;
	if (i == t || i >= n || p[i] != ' ')
		return framing_bad(f, 400, "the request target holds a character HTTP does not allow");
	i++;
	if (n - i != 8 || memcmp(p + i, "HTTP/", 5) != 0 || p[i + 6] != '.' ||
	    p[i + 5] < '0' || p[i + 5] > '9' || p[i + 7] < '0' || p[i + 7] > '9')
		return framing_bad(f, 400, "the request line does not end in an HTTP version");
	if (p[i + 5] != '1')
		return framing_bad(f, 505, "only HTTP/1.0 and HTTP/1.1 are served");
	f->minor = p[i + 7] - '0';
	return FRAMING_MORE;
}

static int framing_is(const unsigned char *name, size_t n, const char *want)
{
	return strlen(want) == n && strncasecmp((const char *)name, want, n) == 0;
}

/* Checks one header field line and records what framing needs from it. */
static int framing_field(struct framing *f, const unsigned char *p, size_t n, int64_t max_body)
{
	if (p[0] == ' ' || p[0] == '\t')
		return framing_bad(f, 400, "a header line is folded onto the one before it");
	size_t i = 0;
	while (i < n && framing_tchar(p[i]))
		i++;
	if (i == 0 || i >= n || p[i] != ':')
		return framing_bad(f, 400, i < n && (p[i] == ' ' || p[i] == '\t')
					   ? "a header name holds a space, or a space comes before its colon"
					   : "a header line is not \"name: value\"");
	const unsigned char *name = p;
	size_t nlen = i++;
	for (size_t k = i; k < n; k++)
		if ((p[k] < 0x20 && p[k] != '\t') || p[k] == 0x7f)
			return framing_bad(f, 400, "a header value holds a control character");
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	while (n > i && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	const unsigned char *v = p + i;
	size_t vlen = n - i;

	if (framing_is(name, nlen, "Content-Length")) {
		if (vlen == 0 || strspn((const char *)v, "0123456789") < vlen)
			return framing_bad(f, 400, "Content-Length is not a number");
		int64_t len = 0;
		for (size_t k = 0; k < vlen; k++) {
			if (len > (INT64_MAX - 9) / 10) {
				len = INT64_MAX;
				break;
			}
			len = len * 10 + (v[k] - '0');
		}
		if (f->content_length >= 0 && f->content_length != len)
			return framing_bad(f, 400, "the request has two different Content-Length headers");
		f->content_length = len;
		if (len > max_body)
			f->too_large = 1;
	} else if (framing_is(name, nlen, "Transfer-Encoding")) {
		if (f->chunked)
			return framing_bad(f, 400, "the request has two Transfer-Encoding headers");
		if (vlen != 7 || strncasecmp((const char *)v, "chunked", 7) != 0)
			return framing_bad(f, 501, "the only Transfer-Encoding served is chunked");
		f->chunked = 1;
	} else if (framing_is(name, nlen, "Authorization")) {
		if (f->auths++)
			return framing_bad(f, 400, "the request has two Authorization headers");
	} else if (framing_is(name, nlen, "Expect")) {
		f->expect_continue = vlen == 12 && strncasecmp((const char *)v, "100-continue", 12) == 0;
	} else if (framing_is(name, nlen, "Host")) {
		if (f->hosts++)
			return framing_bad(f, 400, "the request has two Host headers");
	}
	return FRAMING_MORE;
}

int framing_head(struct framing *f, const char *buf, size_t n, int64_t max_head,
		 int64_t max_body)
{
	const unsigned char *b = (const unsigned char *)buf;
	if (f->status)
		return FRAMING_BAD;
	if (f->head_len)
		return FRAMING_DONE;
	while (f->pos < n) {
		const unsigned char *line = b + f->pos;
		size_t left = n - f->pos;
		const unsigned char *lf = memchr(line, '\n', left);
		size_t len = lf ? (size_t)(lf - line) : left;
		/* What can be judged before the line is complete is judged at
		 * once: a client does not get to wait out a timeout with it. */
		const unsigned char *cr = memchr(line, '\r', len);
		if (cr && (size_t)(cr - line) + 1 < (lf ? len : left))
			return framing_bad(f, 400, "a request line or header holds a bare CR");
		if (memchr(line, '\0', len))
			return framing_bad(f, 400, "a request line or header holds a NUL");
		if ((int64_t)(f->pos + len) > max_head)
			return framing_bad(f, 431, "the request headers are larger than allowed");
		if (len > FRAMING_LINE_MAX)
			return f->lines ? framing_bad(f, 431, "a request header line is longer than 8 KB")
					: framing_bad(f, 414, "the request line is longer than 8 KB");
		if (!lf)
			return FRAMING_MORE;
		if (len == 0 || line[len - 1] != '\r')
			return framing_bad(f, 400, "a request line or header ends in a bare LF");
		len--;
		f->pos += len + 2;
		if (len == 0) {
			/* RFC 9112 §2.2: empty lines before a request line are
			 * ignored (a client may send CRLF after a body). */
			if (!f->lines) {
				if (f->pos > 64)
					return framing_bad(f, 400, "the request starts with empty lines");
				continue;
			}
			if (f->chunked && f->content_length >= 0)
				return framing_bad(f, 400,
						   "the request has both Content-Length and Transfer-Encoding");
			f->head_len = f->pos;
			return FRAMING_DONE;
		}
		int rc = f->lines++ == 0 ? framing_request_line(f, line, len)
					 : framing_field(f, line, len, max_body);
		if (rc == FRAMING_BAD)
			return rc;
	}
	return FRAMING_MORE;
}

/* States of framing_chunks. */
enum { FC_SIZE, FC_EXT, FC_SIZE_LF, FC_DATA, FC_DATA_CR, FC_DATA_LF, FC_TRAILER,
       FC_TRAILER_LF, FC_DONE };

void framing_chunks_init(struct framing_chunks *c)
{
	memset(c, 0, sizeof *c);
}

int framing_chunks(struct framing_chunks *c, const char *buf, size_t n, size_t *used,
		   int64_t max_body, const char **why)
{
	size_t i = 0;
	*why = NULL;
	while (i < n && c->state != FC_DONE) {
		unsigned char ch = (unsigned char)buf[i];
		switch (c->state) {
		case FC_SIZE: {
			int hex = (ch >= '0' && ch <= '9') || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f');
			if (hex) {
				if (c->digits++ >= 15) {
					*why = "a chunk size is too large";
					goto bad;
				}
				c->left = c->left * 16 +
					  (ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10);
			} else if (c->digits && (ch == ';' || ch == ' ' || ch == '\t')) {
				c->state = FC_EXT;
			} else if (c->digits && ch == '\r') {
				c->state = FC_SIZE_LF;
			} else {
				*why = "a chunk size is not a hexadecimal number";
				goto bad;
			}
			i++;
			break;
		}
		case FC_EXT:
			if (ch == '\r')
				c->state = FC_SIZE_LF;
			else if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
				*why = "a chunk extension holds a control character";
				goto bad;
			}
			i++;
			break;
		case FC_SIZE_LF:
			if (ch != '\n') {
				*why = "a chunk size line does not end in CRLF";
				goto bad;
			}
			i++;
			c->data += (int64_t)c->left;
			if (c->data > max_body) {
				c->too_large = 1;
				*why = "the request body is larger than max_request_size";
				goto bad;
			}
			c->digits = 0;
			c->state = c->left ? FC_DATA : FC_TRAILER;
			c->line = 0;
			break;
		case FC_DATA: {
			size_t take = n - i < c->left ? n - i : (size_t)c->left;
			i += take;
			c->left -= take;
			if (!c->left)
				c->state = FC_DATA_CR;
			break;
		}
		case FC_DATA_CR:
		case FC_DATA_LF:
			if (ch != (c->state == FC_DATA_CR ? '\r' : '\n')) {
				*why = "a chunk is longer than its size says";
				goto bad;
			}
			c->state = c->state == FC_DATA_CR ? FC_DATA_LF : FC_SIZE;
			i++;
			break;
		case FC_TRAILER:
			/* Trailer fields are read past, up to the empty line. */
			if (ch == '\r') {
				c->state = FC_TRAILER_LF;
			} else if ((ch < 0x20 && ch != '\t') || ch == 0x7f || ++c->line > 8192) {
				*why = "a trailer line is malformed";
				goto bad;
			}
			i++;
			break;
		case FC_TRAILER_LF:
			if (ch != '\n') {
				*why = "a trailer line does not end in CRLF";
				goto bad;
			}
			i++;
			c->state = c->line ? FC_TRAILER : FC_DONE;
			c->line = 0;
			break;
		}
	}
	*used = i;
	return c->state == FC_DONE ? FRAMING_DONE : FRAMING_MORE;
bad:
	*used = i;
	return FRAMING_BAD;
}

/*
 * manifest.c - the plan of an HLS or DASH package: every file a
 * presentation needs, found by reading its manifests.
 *
 * A SourceAssetUrl naming an .m3u8 or an .mpd on an HTTP(S) origin stands
 * for a whole presentation. manifest_plan reads the top manifest through
 * the caller's fetch function, hands it to the backend of its format
 * (manifest_hls.c, manifest_dash.c), and returns the list the transfer
 * engine copies: each file's path relative to the top manifest's directory
 * (the published tree keeps that layout) and the absolute URL it is fetched
 * from. The planner itself does no I/O: the engine fetches with libcurl,
 * the tests and the fuzzer from memory or files.
 *
 * This file holds the rules common to both formats, so they are written
 * once:
 *
 *  - References are resolved against the manifest naming them as RFC 3986
 *    says (section 5.2, dot segments removed), and a fragment is dropped.
 *  - Every reference must stay on the top manifest's origin (scheme, host,
 *    port) and under its directory; one that leaves them fails the plan with
 *    a reason naming the reference. The published name is the path below
 *    that directory, percent-decoded, without the query string (the query
 *    stays in the URL fetched). A name that a decoded path could make
 *    ambiguous is refused rather than guessed: an encoded '/', '.' or '..'
 *    segment, an empty segment, NUL or a control character, a backslash
 *    (WHATWG URL parsers read it as '/').
 *  - The URL fetched is canonical: the decoded path encoded again, so the
 *    same file spelt two ways ("seg%31.ts", "seg1.ts") is one item. Items
 *    are unique by published name; two different URLs (different queries)
 *    behind one name fail the plan. Byte-range references (HLS
 *    EXT-X-BYTERANGE, DASH mediaRange, SegmentBase) name the file once.
 *  - Limits keep a hostile manifest from exhausting memory: a manifest's
 *    bytes (MANIFEST_MAX_BYTES), all manifests' bytes together
 *    (MANIFEST_MAX_TOTAL), items (MANIFEST_MAX_ITEMS), references
 *    (MANIFEST_MAX_REFS, so a file named over and over costs no more
 *    time than as many files), a URL's length (MANIFEST_MAX_URL).
 *
 * Order: the list has media files first (segments, init sections, keys) in
 * the order the manifests name them, then the nested manifests (HLS media
 * playlists), then the top manifest, so a player never finds a manifest
 * whose files are not there yet. Manifests carry the bytes that were
 * parsed, so the engine publishes exactly what was planned without
 * fetching them again.
 */
#include "apubid.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The parts of an absolute URL or of a reference, as spans of the text
 * (RFC 3986, appendix B). A part that is absent has ptr NULL; a part that
 * is present but empty has ptr non-NULL and len 0. */
struct manifest_span {
	const char *p;
	size_t n;
};
struct manifest_parts {
	struct manifest_span scheme, authority, path, query;
};

struct manifest_ctx {
	manifest_fetch_fn fetch;
	void *arg;
	char *top_url;   /* canonical URL of the top manifest */
	char *scheme;    /* lower-cased */
	char *authority; /* as written in the top URL (userinfo kept) */
	char *host;      /* lower-cased, without userinfo and port */
	int port;        /* explicit or the scheme's default */
	char *dir;       /* decoded directory path of the top, ends with '/' */
	struct manifest_item *items;
	int *kind; /* per item: enum manifest_kind */
	int n, cap;
	int *slots; /* open addressing on names: index + 1, 0 empty */
	size_t nslots;
	size_t total_bytes;
	long refs;
	char *err;
	size_t errlen;
	int rc; /* MANIFEST_TRANSIENT or MANIFEST_PERMANENT once failed */
};

static const struct manifest_format *manifest_formats[] = {
	&manifest_hls,
	&manifest_dash,
};

int manifest_fail(struct manifest_ctx *m, int rc, const char *fmt, ...)
{
	if (m->rc == MANIFEST_OK) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(m->err, m->errlen, fmt, ap);
		va_end(ap);
		m->rc = rc;
	}
	return -1;
}

static void manifest_split(const char *s, struct manifest_parts *u)
{
	memset(u, 0, sizeof *u);
	const char *p = s;
	/* A scheme is letters, digits, '+', '-', '.' before a ':' that comes
	 * before any '/', '?' or '#'. */
	const char *q = p;
	if (isalpha((unsigned char)*q)) {
		while (isalnum((unsigned char)*q) || *q == '+' || *q == '-' || *q == '.')
			q++;
		if (*q == ':') {
			u->scheme.p = p;
			u->scheme.n = (size_t)(q - p);
			p = q + 1;
		}
	}
	if (p[0] == '/' && p[1] == '/') {
		p += 2;
		size_t n = strcspn(p, "/?#");
		u->authority.p = p;
		u->authority.n = n;
		p += n;
	}
	size_t n = strcspn(p, "?#");
	u->path.p = p;
	u->path.n = n;
	p += n;
	if (*p == '?') {
		p++;
		n = strcspn(p, "#");
		u->query.p = p;
		u->query.n = n;
	}
}

/* RFC 3986 5.2.4: removes "." and ".." segments from a path. */
static char *manifest_remove_dots(const char *in, size_t len)
{
	char *out = util_malloc(len + 2);
	size_t o = 0;
	const char *p = in, *end = in + len;
	while (p < end) {
		size_t left = (size_t)(end - p);
		if (left >= 3 && memcmp(p, "../", 3) == 0) {
			p += 3;
		} else if (left >= 2 && memcmp(p, "./", 2) == 0) {
			p += 2;
		} else if (left >= 3 && memcmp(p, "/./", 3) == 0) {
			p += 2;
		} else if (left == 2 && memcmp(p, "/.", 2) == 0) {
			p += 1;
			out[o++] = '/';
			p = end;
		} else if ((left >= 4 && memcmp(p, "/../", 4) == 0) ||
			   (left == 3 && memcmp(p, "/..", 3) == 0)) {
			/* The last segment of out goes, with the '/' before it. */
			int last = left == 3;
			p += 3;
			while (o > 0 && out[o - 1] != '/')
				o--;
			if (o > 0)
				o--;
			if (last) {
				out[o++] = '/';
				p = end;
			}
		} else if ((left == 1 && *p == '.') || (left == 2 && memcmp(p, "..", 2) == 0)) {
			p = end;
		} else {
			/* Moves the first segment, with its leading '/', to out. */
			const char *s = p;
			if (*s == '/')
				s++;
			while (s < end && *s != '/')
				s++;
			memcpy(out + o, p, (size_t)(s - p));
			o += (size_t)(s - p);
			p = s;
		}
	}
	out[o] = '\0';
	return out;
}

static void manifest_buf_span(struct util_buf *b, struct manifest_span s)
{
	util_buf_add(b, s.p ? s.p : "", s.n);
}

char *manifest_resolve(const char *base, const char *ref)
{
	struct manifest_parts b, r;
	manifest_split(base, &b);
	manifest_split(ref, &r);
	if (!b.scheme.p)
		return NULL;
	struct util_buf out = { 0 };
	struct manifest_span authority, query;
	char *path;
	if (r.scheme.p) {
		manifest_buf_span(&out, r.scheme);
		authority = r.authority;
		path = manifest_remove_dots(r.path.p, r.path.n);
		query = r.query;
	} else {
		manifest_buf_span(&out, b.scheme);
		if (r.authority.p) {
			authority = r.authority;
			path = manifest_remove_dots(r.path.p, r.path.n);
			query = r.query;
		} else {
			authority = b.authority;
			if (r.path.n == 0) {
				path = util_strndup(b.path.p, b.path.n);
				query = r.query.p ? r.query : b.query;
			} else {
				struct util_buf merged = { 0 };
				if (r.path.p[0] == '/') {
					manifest_buf_span(&merged, r.path);
				} else if (b.authority.p && b.path.n == 0) {
					util_buf_adds(&merged, "/");
					manifest_buf_span(&merged, r.path);
				} else {
					size_t keep = b.path.n;
					while (keep > 0 && b.path.p[keep - 1] != '/')
						keep--;
					util_buf_add(&merged, b.path.p, keep);
					manifest_buf_span(&merged, r.path);
				}
				path = manifest_remove_dots(merged.p, merged.len);
				free(merged.p);
				query = r.query;
			}
		}
	}
	util_buf_adds(&out, ":");
	if (authority.p) {
		util_buf_adds(&out, "//");
		manifest_buf_span(&out, authority);
	}
	util_buf_adds(&out, path);
	free(path);
	if (query.p) {
		util_buf_adds(&out, "?");
		manifest_buf_span(&out, query);
	}
	return out.p;
}

static int manifest_hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Splits an authority into a lower-cased host and a port (the scheme's
 * default when absent). Returns -1 for a bad port. */
static int manifest_authority(const char *scheme, struct manifest_span a, char **host, int *port)
{
	const char *p = a.p, *end = a.p + a.n;
	const char *at = NULL;
	for (const char *q = p; q < end; q++)
		if (*q == '@')
			at = q;
	if (at)
		p = at + 1;
	const char *colon = NULL;
	if (p < end && *p == '[') {
		const char *close = memchr(p, ']', (size_t)(end - p));
		if (!close)
			return -1;
		if (close + 1 < end) {
			if (close[1] != ':')
				return -1;
			colon = close + 1;
		}
	} else {
		colon = memchr(p, ':', (size_t)(end - p));
	}
	const char *hend = colon ? colon : end;
	*host = util_strndup(p, (size_t)(hend - p));
	for (char *h = *host; *h; h++)
		*h = (char)tolower((unsigned char)*h);
	*port = strcmp(scheme, "https") == 0 ? 443 : strcmp(scheme, "http") == 0 ? 80 : 0;
	if (colon && colon + 1 < end) {
		long v = 0;
		for (const char *q = colon + 1; q < end; q++) {
			if (!isdigit((unsigned char)*q) || v > 65535)
				goto bad;
			v = v * 10 + (*q - '0');
		}
		if (v < 1 || v > 65535)
			goto bad;
		*port = (int)v;
	}
	return 0;
bad:
	free(*host);
	*host = NULL;
	return -1;
}

/* Percent-decodes a path. Refuses bad escapes, NUL, control characters,
 * an encoded '/' and a backslash. Returns NULL with *why set. */
static char *manifest_decode_path(const char *p, size_t n, const char **why)
{
	char *out = util_malloc(n + 1);
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)p[i];
		if (c == '%') {
			if (i + 2 >= n) {
				*why = "a bad percent-escape";
				goto fail;
			}
			int h = manifest_hex((unsigned char)p[i + 1]);
			int l = h < 0 ? -1 : manifest_hex((unsigned char)p[i + 2]);
			if (h < 0 || l < 0) {
				*why = "a bad percent-escape";
				goto fail;
			}
			c = h * 16 + l;
			i += 2;
			if (c == '/') {
				*why = "an encoded '/'";
				goto fail;
			}
		}
		if (c == 0 || c < 0x20 || c == 0x7f) {
			*why = "a control character";
			goto fail;
		}
		if (c == '\\') {
			*why = "a backslash";
			goto fail;
		}
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return out;
fail:
	free(out);
	return NULL;
}

/* Encodes a decoded path for a URL: RFC 3986 unreserved characters, '/',
 * and the sub-delimiters, ':' and '@' that a path may hold, stay as they
 * are; every other byte becomes %XX. */
static void manifest_encode(struct util_buf *b, const char *s, size_t n, int is_query)
{
	static const char keep[] = "-._~/!$&'()*+,;=:@";
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (isalnum(c) || (c && strchr(keep, c)) || (is_query && (c == '?' || c == '%'))) {
			util_buf_add(b, (const char *)&s[i], 1);
		} else {
			char hex[4];
			snprintf(hex, sizeof hex, "%%%02X", c);
			util_buf_add(b, hex, 3);
		}
	}
}

/* Checks that a reference's text can be a URL at all. */
static int manifest_ref_ok(const char *ref, const char **why)
{
	if (!*ref) {
		*why = "it is empty";
		return 0;
	}
	if (strlen(ref) > MANIFEST_MAX_URL) {
		*why = "it is too long";
		return 0;
	}
	for (const unsigned char *p = (const unsigned char *)ref; *p; p++)
		if (*p < 0x20 || *p == 0x7f) {
			*why = "it holds a control character";
			return 0;
		}
	return 1;
}

static unsigned long manifest_hash(const char *s)
{
	unsigned long h = 5381;
	while (*s)
		h = h * 33 + (unsigned char)*s++;
	return h;
}

/* The slot of `name` in the table: where it is, or the empty slot where it
 * would go. */
static size_t manifest_slot(const struct manifest_ctx *m, const char *name)
{
	size_t i = manifest_hash(name) & (m->nslots - 1);
	while (m->slots[i] && strcmp(m->items[m->slots[i] - 1].path, name) != 0)
		i = (i + 1) & (m->nslots - 1);
	return i;
}

static void manifest_grow(struct manifest_ctx *m)
{
	if (m->n < m->cap)
		return;
	m->cap = m->cap ? m->cap * 2 : 64;
	m->items = realloc(m->items, (size_t)m->cap * sizeof *m->items);
	m->kind = realloc(m->kind, (size_t)m->cap * sizeof *m->kind);
	if (!m->items || !m->kind)
		util_malloc((size_t)-1 / 2);
	/* The table stays at most half full. */
	free(m->slots);
	m->nslots = (size_t)m->cap * 4;
	m->slots = util_calloc(m->nslots, sizeof *m->slots);
	for (int i = 0; i < m->n; i++)
		m->slots[manifest_slot(m, m->items[i].path)] = i + 1;
}

int manifest_add(struct manifest_ctx *m, const char *base, const char *ref, enum manifest_kind kind,
		 const char *where, const char **url, int *added)
{
	const char *why = NULL;
	char *target = NULL, *host = NULL, *path = NULL, *name = NULL;
	struct util_buf canon = { 0 };
	if (added)
		*added = 0;
	if (++m->refs > MANIFEST_MAX_REFS)
		return manifest_fail(m, MANIFEST_PERMANENT, "%s: more than %d references", where,
				     MANIFEST_MAX_REFS);
	if (!manifest_ref_ok(ref, &why))
		goto refuse;
	target = manifest_resolve(base, ref);
	if (!target) {
		why = "its base is not an absolute URL";
		goto refuse;
	}
	if (strlen(target) > MANIFEST_MAX_URL) {
		why = "the URL it leads to is too long";
		goto refuse;
	}
	struct manifest_parts t;
	manifest_split(target, &t);
	char *scheme = util_strndup(t.scheme.p, t.scheme.n);
	for (char *c = scheme; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	int port = 0;
	int same = strcmp(scheme, m->scheme) == 0 && t.authority.p &&
		   manifest_authority(scheme, t.authority, &host, &port) == 0 &&
		   strcmp(host, m->host) == 0 && port == m->port;
	free(scheme);
	if (!same) {
		why = "it leaves the manifest's origin";
		goto refuse;
	}
	path = manifest_decode_path(t.path.p, t.path.n, &why);
	if (!path)
		goto refuse;
	size_t dl = strlen(m->dir);
	if (strncmp(path, m->dir, dl) != 0) {
		why = "it leaves the manifest's directory";
		goto refuse;
	}
	name = path + dl;
	if (!*name || name[strlen(name) - 1] == '/') {
		why = "it names a directory, not a file";
		goto refuse;
	}
	/* Each segment of the name is a plain name: dot segments in the raw
	 * reference are gone (resolution), so these came encoded. */
	for (const char *s = name; *s;) {
		size_t sl = strcspn(s, "/");
		if (sl == 0 || (sl == 1 && s[0] == '.') || (sl == 2 && s[0] == '.' && s[1] == '.')) {
			why = sl ? "it has an encoded dot segment" : "it has an empty path segment";
			goto refuse;
		}
		s += sl;
		if (*s == '/')
			s++;
	}
	/* The canonical URL: the top's scheme and authority (the same origin,
	 * however spelt, and the task's credentials, never a manifest's), the
	 * path encoded again, the query as written (spaces and bytes above
	 * 0x7f encoded). */
	util_buf_adds(&canon, m->scheme);
	util_buf_adds(&canon, "://");
	util_buf_adds(&canon, m->authority);
	manifest_encode(&canon, path, strlen(path), 0);
	if (t.query.p) {
		util_buf_adds(&canon, "?");
		manifest_encode(&canon, t.query.p, t.query.n, 1);
	}

	if (m->nslots) {
		size_t slot = manifest_slot(m, name);
		if (m->slots[slot]) {
			int i = m->slots[slot] - 1;
			if (strcmp(m->items[i].url, canon.p) != 0) {
				why = "another URL publishes as the same name";
				goto refuse;
			}
			if ((m->kind[i] == MANIFEST_MEDIA) != (kind == MANIFEST_MEDIA)) {
				why = "it is named both as a manifest and as a media file";
				goto refuse;
			}
			if (url)
				*url = m->items[i].url;
			free(canon.p);
			free(target);
			free(host);
			free(path);
			return 0;
		}
	}
	if (m->n >= MANIFEST_MAX_ITEMS) {
		manifest_fail(m, MANIFEST_PERMANENT, "%s: more than %d files", where,
			      MANIFEST_MAX_ITEMS);
		goto fail;
	}
	manifest_grow(m);
	struct manifest_item *it = &m->items[m->n];
	memset(it, 0, sizeof *it);
	it->path = util_strdup(name);
	it->url = canon.p;
	it->is_manifest = kind != MANIFEST_MEDIA;
	m->kind[m->n] = (int)kind;
	m->slots[manifest_slot(m, it->path)] = m->n + 1;
	m->n++;
	if (url)
		*url = it->url;
	if (added)
		*added = 1;
	free(target);
	free(host);
	free(path);
	return 0;

refuse: {
	/* The reference is quoted whole up to a length a reason can carry. */
	char *shown = url_mask(ref);
	int cut = strlen(shown) > 240;
	/* Where a relative reference led is part of the reason (a DASH
	 * BaseURL above it may be what leaves the directory). */
	char *to = target && strcmp(target, ref) != 0 ? url_mask(target) : NULL;
	manifest_fail(m, MANIFEST_PERMANENT, "%s: reference \"%.240s%s\"%s%.240s%s refused: %s",
		      where, shown, cut ? "..." : "", to ? " (" : "", to ? to : "",
		      to ? (strlen(to) > 240 ? "...)" : ")") : "", why);
	free(to);
	free(shown);
}
fail:
	free(canon.p);
	free(target);
	free(host);
	free(path);
	return -1;
}

int manifest_fetch(struct manifest_ctx *m, const char *url, char **body, size_t *len)
{
	char ferr[512] = "";
	*body = NULL;
	*len = 0;
	int rc = m->fetch(m->arg, url, body, len, ferr, sizeof ferr);
	char *shown = url_mask(url);
	if (rc != MANIFEST_OK) {
		free(*body);
		*body = NULL;
		manifest_fail(m, rc == MANIFEST_TRANSIENT ? MANIFEST_TRANSIENT : MANIFEST_PERMANENT,
			      "manifest %s: %s", shown, ferr[0] ? ferr : "cannot be fetched");
		free(shown);
		return -1;
	}
	if (*len > MANIFEST_MAX_BYTES || m->total_bytes + *len > MANIFEST_MAX_TOTAL) {
		free(*body);
		*body = NULL;
		manifest_fail(m, MANIFEST_PERMANENT, "manifest %s: larger than the %s limit", shown,
			      *len > MANIFEST_MAX_BYTES ? "16 MiB manifest" : "64 MiB manifests");
		free(shown);
		return -1;
	}
	free(shown);
	if (!*body) {
		*body = util_strdup("");
		*len = 0;
	}
	m->total_bytes += *len;
	return 0;
}

void manifest_keep(struct manifest_ctx *m, const char *url, char *body, size_t len)
{
	for (int i = m->n - 1; i >= 0; i--)
		if (strcmp(m->items[i].url, url) == 0) {
			free(m->items[i].body);
			m->items[i].body = body;
			m->items[i].len = len;
			return;
		}
	free(body);
}

void manifest_free_items(struct manifest_item *items, int n)
{
	for (int i = 0; i < n; i++) {
		free(items[i].path);
		free(items[i].url);
		free(items[i].body);
	}
	free(items);
}

/* The format of a manifest: by its name's extension, else by its first
 * bytes. */
static const struct manifest_format *manifest_format_of(const char *path, const char *body,
							 size_t len)
{
	const char *dot = strrchr(path, '.');
	const char *slash = strrchr(path, '/');
	if (dot && (!slash || dot > slash)) {
		for (size_t i = 0; i < sizeof manifest_formats / sizeof *manifest_formats; i++)
			for (const char *const *e = manifest_formats[i]->extensions; *e; e++)
				if (strcasecmp(dot, *e) == 0)
					return manifest_formats[i];
	}
	for (size_t i = 0; i < sizeof manifest_formats / sizeof *manifest_formats; i++)
		if (manifest_formats[i]->sniff(body, len))
			return manifest_formats[i];
	return NULL;
}

/* Media files first, then nested manifests, the top last; a stable order
 * within each kind (the order the manifests name them). */
static void manifest_order(struct manifest_ctx *m)
{
	struct manifest_item *sorted = util_calloc((size_t)m->n + 1, sizeof *sorted);
	int o = 0;
	for (int k = MANIFEST_MEDIA; k <= MANIFEST_TOP; k++)
		for (int i = 0; i < m->n; i++)
			if (m->kind[i] == k)
				sorted[o++] = m->items[i];
	free(m->items);
	m->items = sorted;
}

int manifest_plan(const char *url, manifest_fetch_fn fetch, void *arg,
		  struct manifest_item **items, int *n, char *err, size_t errlen)
{
	char dummy[1];
	struct manifest_ctx m = { .fetch = fetch, .arg = arg, .err = err ? err : dummy,
				  .errlen = err ? errlen : sizeof dummy };
	*items = NULL;
	*n = 0;
	if (err && errlen)
		err[0] = '\0';
	char *shown = url_mask(url);
	struct manifest_parts u;
	const char *why = NULL;
	char *host = NULL, *path = NULL;
	if (!manifest_ref_ok(url, &why))
		goto bad;
	manifest_split(url, &u);
	if (!u.scheme.p || !u.authority.p) {
		why = "it is not an absolute URL";
		goto bad;
	}
	m.scheme = util_strndup(u.scheme.p, u.scheme.n);
	for (char *c = m.scheme; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	if (manifest_authority(m.scheme, u.authority, &host, &m.port) < 0) {
		why = "its port is not a number from 1 to 65535";
		goto bad;
	}
	m.host = host;
	path = manifest_decode_path(u.path.p, u.path.n, &why);
	if (!path)
		goto bad;
	if (path[0] != '/') {
		char *rooted = util_printf("/%s", path);
		free(path);
		path = rooted;
	}
	m.dir = util_strndup(path, (size_t)(strrchr(path, '/') - path) + 1);
	m.authority = util_strndup(u.authority.p, u.authority.n);

	/* The top is an item like the others, so its name and URL go through
	 * the same checks and a nested reference back to it is caught. */
	char where[64];
	snprintf(where, sizeof where, "manifest");
	const char *top;
	if (manifest_add(&m, url, url, MANIFEST_TOP, where, &top, NULL) < 0)
		goto done;
	m.top_url = util_strdup(top);
	char *body;
	size_t len;
	if (manifest_fetch(&m, m.top_url, &body, &len) < 0)
		goto done;
	manifest_keep(&m, m.top_url, body, len);
	const struct manifest_format *f = manifest_format_of(path, body, len);
	if (!f) {
		manifest_fail(&m, MANIFEST_PERMANENT,
			      "manifest %s: neither an HLS playlist (.m3u8) nor a DASH MPD (.mpd)",
			      shown);
		goto done;
	}
	f->plan(&m, m.top_url, body, len);
	goto done;
bad:
	manifest_fail(&m, MANIFEST_PERMANENT, "manifest URL \"%s\" refused: %s", shown, why);
done:
	if (m.rc == MANIFEST_OK) {
		manifest_order(&m);
		*items = m.items;
		*n = m.n;
	} else {
		manifest_free_items(m.items, m.n);
	}
	free(m.kind);
	free(m.slots);
	free(m.top_url);
	free(m.scheme);
	free(m.authority);
	free(m.host);
	free(m.dir);
	free(path);
	free(shown);
	return m.rc;
}

/*
 * manifest_hls.c - the files of an HLS presentation (RFC 8216).
 *
 * A top playlist is either a master playlist or a media playlist. A master
 * names media playlists: variants (EXT-X-STREAM-INF and the URI line after
 * it), alternate renditions (EXT-X-MEDIA URI), I-frame playlists
 * (EXT-X-I-FRAME-STREAM-INF URI); and files: session keys and session data.
 * Each media playlist is fetched once and read for its segments (URI
 * lines, EXT-X-PART URIs), init sections (EXT-X-MAP URI) and keys
 * (EXT-X-KEY URI). A byte range (EXT-X-BYTERANGE, the BYTERANGE attribute)
 * takes part of a file that is copied whole, once: manifest_add names each
 * file once.
 *
 * A segment marked EXT-X-GAP is not on the origin and is skipped.
 *
 * Refused: a media playlist without EXT-X-ENDLIST (a live or event
 * playlist grows; there is no whole package to publish yet), a master
 * naming a master, a playlist that is both, a key with a method but no URI,
 * variables (EXT-X-DEFINE: URIs would need substitution first).
 * Keys of a DRM system (KEYFORMAT other than "identity") and data: URIs
 * name no file on the origin and are skipped.
 *
 * Lines are read within the buffer's length (no NUL needed or allowed);
 * CR LF and LF both end a line; a UTF-8 byte-order mark is skipped.
 */
#include "apubid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const manifest_hls_ext[] = { ".m3u8", ".m3u", NULL };

static int manifest_hls_sniff(const char *body, size_t len)
{
	if (len >= 3 && memcmp(body, "\xef\xbb\xbf", 3) == 0) {
		body += 3;
		len -= 3;
	}
	return len >= 7 && memcmp(body, "#EXTM3U", 7) == 0;
}

/* A cursor over the lines of a playlist. */
struct manifest_hls_lines {
	const char *p, *end;
	int no;
	char *line; /* the current line, NUL-terminated, CR stripped */
};

/* Moves to the next line; 0 at the end. */
static int manifest_hls_next(struct manifest_hls_lines *l)
{
	free(l->line);
	l->line = NULL;
	if (l->p >= l->end)
		return 0;
	if (l->no == 0 && l->end - l->p >= 3 && memcmp(l->p, "\xef\xbb\xbf", 3) == 0)
		l->p += 3;
	const char *nl = memchr(l->p, '\n', (size_t)(l->end - l->p));
	const char *e = nl ? nl : l->end;
	size_t n = (size_t)(e - l->p);
	if (n && l->p[n - 1] == '\r')
		n--;
	l->line = util_strndup(l->p, n);
	l->p = nl ? nl + 1 : l->end;
	l->no++;
	return 1;
}

/* 1 when `line` is the tag `tag` (followed by ':' or the end). */
static int manifest_hls_is(const char *line, const char *tag)
{
	size_t n = strlen(tag);
	return strncmp(line, tag, n) == 0 && (line[n] == ':' || line[n] == '\0');
}

/* The value of attribute `name` in a tag's attribute list (after the ':'),
 * unquoted, malloc'ed; NULL when absent or when the list is malformed. */
static char *manifest_hls_attr(const char *line, const char *name)
{
	const char *p = strchr(line, ':');
	if (!p)
		return NULL;
	p++;
	size_t nl = strlen(name);
	while (*p) {
		const char *eq = p;
		while (*eq && *eq != '=' && *eq != ',')
			eq++;
		if (*eq != '=')
			return NULL;
		int match = (size_t)(eq - p) == nl && strncmp(p, name, nl) == 0;
		const char *v = eq + 1, *ve;
		if (*v == '"') {
			v++;
			ve = strchr(v, '"');
			if (!ve)
				return NULL;
			p = ve + 1;
		} else {
			ve = v + strcspn(v, ",");
			p = ve;
		}
		if (match)
			return util_strndup(v, (size_t)(ve - v));
		if (*p == ',')
			p++;
		else if (*p)
			return NULL;
	}
	return NULL;
}

/* 1 when a reference names no file on the origin: inline data. */
static int manifest_hls_inline(const char *uri)
{
	return strncasecmp(uri, "data:", 5) == 0;
}

/* Adds a key's file unless the key has none: METHOD=NONE, a DRM system's
 * key (its URI names a licence, not a file), inline data. */
static int manifest_hls_key(struct manifest_ctx *m, const char *base, const char *line,
			    const char *where)
{
	char *method = manifest_hls_attr(line, "METHOD");
	char *uri = manifest_hls_attr(line, "URI");
	char *format = manifest_hls_attr(line, "KEYFORMAT");
	int rc = 0;
	if (!method) {
		rc = manifest_fail(m, MANIFEST_PERMANENT, "%s: a key without METHOD", where);
	} else if (strcmp(method, "NONE") == 0) {
		rc = 0;
	} else if (!uri) {
		rc = manifest_fail(m, MANIFEST_PERMANENT, "%s: a key with METHOD=%s but no URI",
				   where, method);
	} else if ((!format || strcmp(format, "identity") == 0) && !manifest_hls_inline(uri)) {
		rc = manifest_add(m, base, uri, MANIFEST_MEDIA, where, NULL, NULL);
	}
	free(method);
	free(uri);
	free(format);
	return rc;
}

/* Adds the file named by a tag's URI attribute; `required` makes a
 * missing URI an error. */
static int manifest_hls_uri(struct manifest_ctx *m, const char *base, const char *line,
			    int required, enum manifest_kind kind, const char *where,
			    const char **url, int *added)
{
	char *uri = manifest_hls_attr(line, "URI");
	int rc = 0;
	if (url)
		*url = NULL;
	if (!uri) {
		if (required)
			rc = manifest_fail(m, MANIFEST_PERMANENT, "%s: a tag without its URI", where);
	} else if (!manifest_hls_inline(uri)) {
		rc = manifest_add(m, base, uri, kind, where, url, added);
	}
	free(uri);
	return rc;
}

/* What a playlist is, from its tags. */
enum manifest_hls_type { MANIFEST_HLS_MASTER, MANIFEST_HLS_MEDIA };

static int manifest_hls_type(struct manifest_ctx *m, const char *shown, const char *body,
			     size_t len, enum manifest_hls_type *type)
{
	struct manifest_hls_lines l = { .p = body, .end = body + len };
	int master = 0, media = 0;
	while (manifest_hls_next(&l)) {
		const char *s = l.line;
		if (manifest_hls_is(s, "#EXT-X-STREAM-INF") || manifest_hls_is(s, "#EXT-X-MEDIA") ||
		    manifest_hls_is(s, "#EXT-X-I-FRAME-STREAM-INF"))
			master = 1;
		else if (manifest_hls_is(s, "#EXTINF") || manifest_hls_is(s, "#EXT-X-TARGETDURATION") ||
			 manifest_hls_is(s, "#EXT-X-ENDLIST") || manifest_hls_is(s, "#EXT-X-MAP"))
			media = 1;
	}
	if (master && media)
		return manifest_fail(m, MANIFEST_PERMANENT,
				     "playlist %s is both a master and a media playlist", shown);
	*type = master ? MANIFEST_HLS_MASTER : MANIFEST_HLS_MEDIA;
	return 0;
}

/* The checks every playlist passes before it is read: the #EXTM3U header,
 * no NUL byte. */
static int manifest_hls_check(struct manifest_ctx *m, const char *shown, const char *body,
			      size_t len)
{
	if (!manifest_hls_sniff(body, len))
		return manifest_fail(m, MANIFEST_PERMANENT,
				     "playlist %s: does not start with #EXTM3U", shown);
	if (memchr(body, '\0', len))
		return manifest_fail(m, MANIFEST_PERMANENT, "playlist %s: holds a NUL byte", shown);
	return 0;
}

static int manifest_hls_media(struct manifest_ctx *m, const char *url, const char *shown,
			      const char *body, size_t len)
{
	struct manifest_hls_lines l = { .p = body, .end = body + len };
	int ended = 0, gap = 0, rc = 0;
	char where[600];
	while (rc == 0 && manifest_hls_next(&l)) {
		const char *s = l.line;
		snprintf(where, sizeof where, "playlist %s line %d", shown, l.no);
		if (s[0] == '\0')
			continue;
		if (s[0] != '#') {
			/* A gap's segment is absent from the origin by
			 * definition: a player skips it, so does the plan. */
			if (!gap)
				rc = manifest_add(m, url, s, MANIFEST_MEDIA, where, NULL, NULL);
			gap = 0;
		} else if (manifest_hls_is(s, "#EXT-X-GAP"))
			gap = 1;
		else if (manifest_hls_is(s, "#EXT-X-DEFINE"))
			rc = manifest_fail(m, MANIFEST_PERMANENT,
					   "%s: variables (#EXT-X-DEFINE) are not supported", where);
		else if (manifest_hls_is(s, "#EXT-X-ENDLIST"))
			ended = 1;
		else if (manifest_hls_is(s, "#EXT-X-KEY"))
			rc = manifest_hls_key(m, url, s, where);
		else if (manifest_hls_is(s, "#EXT-X-MAP") || manifest_hls_is(s, "#EXT-X-PART"))
			rc = manifest_hls_uri(m, url, s, 1, MANIFEST_MEDIA, where, NULL, NULL);
	}
	free(l.line);
	if (rc == 0 && !ended)
		rc = manifest_fail(m, MANIFEST_PERMANENT,
				   "playlist %s is live: no #EXT-X-ENDLIST, the presentation is "
				   "not complete yet",
				   shown);
	return rc;
}

/* Fetches and reads a media playlist named by a master, once. */
static int manifest_hls_nested(struct manifest_ctx *m, const char *url)
{
	char *body;
	size_t len;
	if (manifest_fetch(m, url, &body, &len) < 0)
		return -1;
	manifest_keep(m, url, body, len);
	char *shown = url_mask(url);
	enum manifest_hls_type type;
	int rc = manifest_hls_check(m, shown, body, len);
	if (rc == 0)
		rc = manifest_hls_type(m, shown, body, len, &type);
	if (rc == 0 && type == MANIFEST_HLS_MASTER)
		rc = manifest_fail(m, MANIFEST_PERMANENT,
				   "playlist %s: a master playlist named by another master", shown);
	if (rc == 0)
		rc = manifest_hls_media(m, url, shown, body, len);
	free(shown);
	return rc;
}

static int manifest_hls_master(struct manifest_ctx *m, const char *url, const char *shown,
			       const char *body, size_t len)
{
	struct manifest_hls_lines l = { .p = body, .end = body + len };
	int rc = 0, want_uri = 0;
	char where[600];
	/* The playlists are read after the master, in the order it names
	 * them; their URLs live as long as the plan. */
	const char **nested = NULL;
	int nn = 0, ncap = 0;
	while (rc == 0 && manifest_hls_next(&l)) {
		const char *s = l.line, *purl = NULL;
		int added = 0;
		snprintf(where, sizeof where, "playlist %s line %d", shown, l.no);
		if (s[0] == '\0')
			continue;
		if (s[0] != '#') {
			if (!want_uri)
				rc = manifest_fail(m, MANIFEST_PERMANENT,
						   "%s: a URI without #EXT-X-STREAM-INF before it",
						   where);
			else
				rc = manifest_add(m, url, s, MANIFEST_NESTED, where, &purl, &added);
			want_uri = 0;
		} else if (manifest_hls_is(s, "#EXT-X-STREAM-INF")) {
			if (want_uri)
				rc = manifest_fail(m, MANIFEST_PERMANENT,
						   "%s: #EXT-X-STREAM-INF without its URI line", where);
			want_uri = 1;
		} else if (manifest_hls_is(s, "#EXT-X-MEDIA")) {
			rc = manifest_hls_uri(m, url, s, 0, MANIFEST_NESTED, where, &purl, &added);
		} else if (manifest_hls_is(s, "#EXT-X-I-FRAME-STREAM-INF")) {
			rc = manifest_hls_uri(m, url, s, 1, MANIFEST_NESTED, where, &purl, &added);
		} else if (manifest_hls_is(s, "#EXT-X-SESSION-KEY")) {
			rc = manifest_hls_key(m, url, s, where);
		} else if (manifest_hls_is(s, "#EXT-X-DEFINE")) {
			rc = manifest_fail(m, MANIFEST_PERMANENT,
					   "%s: variables (#EXT-X-DEFINE) are not supported", where);
		} else if (manifest_hls_is(s, "#EXT-X-SESSION-DATA")) {
			rc = manifest_hls_uri(m, url, s, 0, MANIFEST_MEDIA, where, NULL, NULL);
		}
		if (rc == 0 && added) {
			if (nn == ncap) {
				ncap = ncap ? ncap * 2 : 16;
				nested = realloc(nested, (size_t)ncap * sizeof *nested);
				if (!nested)
					util_malloc((size_t)-1 / 2);
			}
			nested[nn++] = purl;
		}
	}
	free(l.line);
	if (rc == 0 && want_uri)
		rc = manifest_fail(m, MANIFEST_PERMANENT,
				   "playlist %s: #EXT-X-STREAM-INF without its URI line", shown);
	for (int i = 0; rc == 0 && i < nn; i++)
		rc = manifest_hls_nested(m, nested[i]);
	free(nested);
	return rc;
}

static int manifest_hls_plan(struct manifest_ctx *m, const char *url, const char *body,
			     size_t len)
{
	char *shown = url_mask(url);
	enum manifest_hls_type type;
	int rc = manifest_hls_check(m, shown, body, len);
	if (rc == 0)
		rc = manifest_hls_type(m, shown, body, len, &type);
	if (rc == 0)
		rc = type == MANIFEST_HLS_MASTER ? manifest_hls_master(m, url, shown, body, len)
						 : manifest_hls_media(m, url, shown, body, len);
	free(shown);
	return rc;
}

const struct manifest_format manifest_hls = {
	.name = "HLS",
	.extensions = manifest_hls_ext,
	.sniff = manifest_hls_sniff,
	.plan = manifest_hls_plan,
};

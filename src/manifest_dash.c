/*
 * manifest_dash.c - the files of an MPEG-DASH presentation (ISO/IEC
 * 23009-1): the MPD names no files one by one, it implies them.
 *
 * For each Representation of each AdaptationSet of each Period, its base
 * URL is the chain of the first BaseURL at the MPD, Period, AdaptationSet
 * and Representation levels, each resolved against the one above (the MPD's
 * own URL at the top). Its segments come from the most specific level that
 * has segment information, whose attributes and children are inherited
 * from the same element at the levels above:
 *
 *  - SegmentTemplate: `initialization`, `index` and `media` templates with
 *    $RepresentationID$, $Bandwidth$, $Number$, $Time$ (a width as in
 *    $Number%05d$) and $$. With a SegmentTimeline, one segment per S and per
 *    repeat (S@t, S@d, S@r; r = -1 repeats until the next S's t or the
 *    period's end), numbered from startNumber. Without one, the count is
 *    the period's duration over `duration` (both in timescale units),
 *    rounded up, or endNumber.
 *  - SegmentList: Initialization@sourceURL, RepresentationIndex@sourceURL,
 *    SegmentURL@media and @index (a missing URL is the base URL; ranges
 *    take part of a file named once).
 *  - SegmentBase, or nothing: the base URL's file, plus an Initialization
 *    or RepresentationIndex sourceURL if given.
 *
 * A period's duration is its own @duration, else the next period's @start
 * minus its start, else (the last one) mediaPresentationDuration minus its
 * start. Durations are read exactly (ISO 8601, decimal seconds, in
 * nanoseconds) and all counts are integer arithmetic, so a segment count
 * never depends on rounding. Every expansion is bounded by
 * MANIFEST_MAX_ITEMS before it runs.
 *
 * Refused: type="dynamic" (live), remote elements (xlink:href), a DTD
 * (entities are a memory bomb and an MPD needs none), templates whose
 * segment count is unknown. The MPD is parsed by libxml2 without network
 * access; libxml2 stays inside this file.
 */
#include "apubid.h"

#include <ctype.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

static const char *const manifest_dash_ext[] = { ".mpd", NULL };

static int manifest_dash_sniff(const char *body, size_t len)
{
	size_t n = len < 4096 ? len : 4096;
	for (size_t i = 0; i + 4 <= n; i++)
		if (memcmp(body + i, "<MPD", 4) == 0 || (body[i] == ':' && i + 4 < n &&
							 memcmp(body + i, ":MPD", 4) == 0))
			return 1;
	return 0;
}

/* A time or duration, in nanoseconds; -1 when unknown. */
typedef int64_t manifest_ns;

/* Reads an ISO 8601 duration as an MPD writes it: "PT1H2M3.5S", "P1DT2H";
 * years and months (of no fixed length) are refused. Returns -1 when the
 * text is not such a duration. */
static manifest_ns manifest_dash_duration(const char *s)
{
	if (!s || *s != 'P')
		return -1;
	s++;
	__int128 total = 0;
	int in_time = 0, any = 0;
	while (*s) {
		if (*s == 'T') {
			if (in_time)
				return -1;
			in_time = 1;
			s++;
			continue;
		}
		__int128 whole = 0, frac = 0, scale = 1;
		const char *d = s;
		while (isdigit((unsigned char)*s)) {
			whole = whole * 10 + (*s++ - '0');
			if (whole > (__int128)1 << 62)
				return -1;
		}
		if (*s == '.') {
			s++;
			while (isdigit((unsigned char)*s)) {
				if (scale < 1000000000) {
					frac = frac * 10 + (*s - '0');
					scale *= 10;
				}
				s++;
			}
		}
		if (s == d)
			return -1;
		__int128 unit;
		if (*s == 'D' && !in_time)
			unit = (__int128)86400 * 1000000000;
		else if (*s == 'H' && in_time)
			unit = (__int128)3600 * 1000000000;
		else if (*s == 'M' && in_time)
			unit = (__int128)60 * 1000000000;
		else if (*s == 'S' && in_time)
			unit = 1000000000;
		else
			return -1;
		s++;
		total += whole * unit + frac * unit / scale;
		if (total > INT64_MAX / 2)
			return -1;
		any = 1;
	}
	return any ? (manifest_ns)total : -1;
}

/* A non-negative integer attribute; `dflt` when absent, -1 when bad. */
static int64_t manifest_dash_uint(xmlNode *n, const char *name, int64_t dflt)
{
	if (!n)
		return dflt;
	xmlChar *v = xmlGetProp(n, (const xmlChar *)name);
	if (!v)
		return dflt;
	const char *p = (const char *)v;
	int64_t x = 0;
	int ok = *p != '\0';
	for (; *p; p++) {
		if (!isdigit((unsigned char)*p) || x > (INT64_MAX - 9) / 10) {
			ok = 0;
			break;
		}
		x = x * 10 + (*p - '0');
	}
	xmlFree(v);
	return ok ? x : -1;
}

/* A signed integer attribute (S@r may be -1); `dflt` when absent; sets
 * *bad when malformed. */
static int64_t manifest_dash_int(xmlNode *n, const char *name, int64_t dflt, int *bad)
{
	xmlChar *v = xmlGetProp(n, (const xmlChar *)name);
	if (!v)
		return dflt;
	const char *p = (const char *)v;
	int neg = *p == '-';
	if (neg)
		p++;
	int64_t x = 0;
	int ok = *p != '\0';
	for (; *p; p++) {
		if (!isdigit((unsigned char)*p) || x > (INT64_MAX - 9) / 10) {
			ok = 0;
			break;
		}
		x = x * 10 + (*p - '0');
	}
	xmlFree(v);
	if (!ok)
		*bad = 1;
	return neg ? -x : x;
}

static int manifest_dash_is(xmlNode *n, const char *name)
{
	return n && n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

static xmlNode *manifest_dash_child(xmlNode *parent, const char *name)
{
	if (!parent)
		return NULL;
	for (xmlNode *c = parent->children; c; c = c->next)
		if (manifest_dash_is(c, name))
			return c;
	return NULL;
}

/* The text of an element, trimmed, malloc'ed. */
static char *manifest_dash_text(xmlNode *n)
{
	xmlChar *v = xmlNodeGetContent(n);
	char *s = util_strdup(v ? (const char *)v : "");
	xmlFree(v);
	return util_trim(s);
}

/* An attribute's value, malloc'ed, or NULL. */
static char *manifest_dash_attr(xmlNode *n, const char *name)
{
	if (!n)
		return NULL;
	xmlChar *v = xmlGetProp(n, (const xmlChar *)name);
	char *s = v ? util_strdup((const char *)v) : NULL;
	xmlFree(v);
	return s;
}

/* The segment information of one level: Period, AdaptationSet or
 * Representation. */
struct manifest_dash_levels {
	xmlNode *el[3];
};

/* The element `name` at the most specific level first. */
static xmlNode *manifest_dash_level(const struct manifest_dash_levels *lv, const char *name,
				    int level)
{
	return manifest_dash_child(lv->el[level], name);
}

/* The inherited attribute `attr` of segment element `name`: the most
 * specific level that has it. */
static char *manifest_dash_inherit(const struct manifest_dash_levels *lv, const char *name,
				   const char *attr)
{
	for (int i = 2; i >= 0; i--) {
		char *v = manifest_dash_attr(manifest_dash_level(lv, name, i), attr);
		if (v)
			return v;
	}
	return NULL;
}

/* The inherited child `child` of segment element `name`. */
static xmlNode *manifest_dash_inherit_child(const struct manifest_dash_levels *lv,
					    const char *name, const char *child)
{
	for (int i = 2; i >= 0; i--) {
		xmlNode *c = manifest_dash_child(manifest_dash_level(lv, name, i), child);
		if (c)
			return c;
	}
	return NULL;
}

static int64_t manifest_dash_inherit_uint(const struct manifest_dash_levels *lv, const char *name,
					  const char *attr, int64_t dflt)
{
	for (int i = 2; i >= 0; i--) {
		xmlNode *e = manifest_dash_level(lv, name, i);
		if (e && xmlHasProp(e, (const xmlChar *)attr))
			return manifest_dash_uint(e, attr, dflt);
	}
	return dflt;
}

/* One Representation being expanded. */
struct manifest_dash_rep {
	struct manifest_ctx *m;
	const char *base; /* its base URL */
	char *id;
	char *bandwidth;
	const char *where;
};

/* Expands a SegmentTemplate template for one segment; NULL (the plan
 * failed) for an unknown identifier, a bad width, or $Number$/$Time$ where
 * the template has neither (number or time < 0). */
static char *manifest_dash_fill(struct manifest_dash_rep *r, const char *tpl, int64_t number,
				int64_t time)
{
	struct util_buf b = { 0 };
	util_buf_adds(&b, "");
	const char *p = tpl;
	while (*p) {
		const char *d = strchr(p, '$');
		if (!d) {
			util_buf_adds(&b, p);
			break;
		}
		util_buf_add(&b, p, (size_t)(d - p));
		const char *e = strchr(d + 1, '$');
		if (!e)
			goto bad;
		if (e == d + 1) {
			util_buf_adds(&b, "$");
			p = e + 1;
			continue;
		}
		size_t n = (size_t)(e - d - 1);
		const char *id = d + 1;
		const char *fmt = memchr(id, '%', n);
		size_t idn = fmt ? (size_t)(fmt - id) : n;
		int width = 1;
		if (fmt) {
			/* Only %0<width>d, as the standard allows. */
			const char *f = fmt + 1;
			if (*f != '0')
				goto bad;
			width = 0;
			while (isdigit((unsigned char)*f) && f < e) {
				width = width * 10 + (*f - '0');
				if (width > 64)
					goto bad;
				f++;
			}
			if (f + 1 != e || *f != 'd')
				goto bad;
		}
		char num[96];
		if (idn == 16 && strncmp(id, "RepresentationID", 16) == 0 && !fmt) {
			if (!r->id)
				goto bad;
			util_buf_adds(&b, r->id);
		} else if (idn == 9 && strncmp(id, "Bandwidth", 9) == 0) {
			int64_t bw = r->bandwidth ? strtoll(r->bandwidth, NULL, 10) : -1;
			if (bw < 0)
				goto bad;
			snprintf(num, sizeof num, "%0*" PRId64, width, bw);
			util_buf_adds(&b, num);
		} else if (idn == 6 && strncmp(id, "Number", 6) == 0 && number >= 0) {
			snprintf(num, sizeof num, "%0*" PRId64, width, number);
			util_buf_adds(&b, num);
		} else if (idn == 4 && strncmp(id, "Time", 4) == 0 && time >= 0) {
			snprintf(num, sizeof num, "%0*" PRId64, width, time);
			util_buf_adds(&b, num);
		} else {
			goto bad;
		}
		p = e + 1;
	}
	return b.p;
bad:
	free(b.p);
	char *shown = url_mask(tpl);
	manifest_fail(r->m, MANIFEST_PERMANENT, "%s: template \"%s\" cannot be filled", r->where,
		      shown);
	free(shown);
	return NULL;
}

static int manifest_dash_add(struct manifest_dash_rep *r, const char *ref)
{
	return manifest_add(r->m, r->base, ref, MANIFEST_MEDIA, r->where, NULL, NULL);
}

static int manifest_dash_add_filled(struct manifest_dash_rep *r, const char *tpl, int64_t number,
				    int64_t time)
{
	char *ref = manifest_dash_fill(r, tpl, number, time);
	if (!ref)
		return -1;
	int rc = manifest_dash_add(r, ref);
	free(ref);
	return rc;
}

/* Refuses a count of segments that would pass the item limit. */
static int manifest_dash_room(struct manifest_dash_rep *r, int64_t have, int64_t more)
{
	if (more > MANIFEST_MAX_ITEMS || have + more > MANIFEST_MAX_ITEMS)
		return manifest_fail(r->m, MANIFEST_PERMANENT, "%s: more than %d segments",
				     r->where, MANIFEST_MAX_ITEMS);
	return 0;
}

static int manifest_dash_template(struct manifest_dash_rep *r,
				  const struct manifest_dash_levels *lv, manifest_ns period_ns)
{
	const char *T = "SegmentTemplate";
	char *media = manifest_dash_inherit(lv, T, "media");
	char *init = manifest_dash_inherit(lv, T, "initialization");
	char *index = manifest_dash_inherit(lv, T, "index");
	int64_t timescale = manifest_dash_inherit_uint(lv, T, "timescale", 1);
	int64_t start = manifest_dash_inherit_uint(lv, T, "startNumber", 1);
	int64_t end_number = manifest_dash_inherit_uint(lv, T, "endNumber", 0);
	int64_t duration = manifest_dash_inherit_uint(lv, T, "duration", 0);
	int64_t pto = manifest_dash_inherit_uint(lv, T, "presentationTimeOffset", 0);
	xmlNode *timeline = manifest_dash_inherit_child(lv, T, "SegmentTimeline");
	int rc = 0;
	if (timescale <= 0 || start < 0 || end_number < 0 || duration < 0 || pto < 0) {
		rc = manifest_fail(r->m, MANIFEST_PERMANENT,
				   "%s: a SegmentTemplate attribute is not a valid number", r->where);
		goto done;
	}
	/* A template is filled once per segment: a long one would cost its
	 * length times the segments before the result is refused as too long. */
	if ((media && strlen(media) > MANIFEST_MAX_URL) || (init && strlen(init) > MANIFEST_MAX_URL) ||
	    (index && strlen(index) > MANIFEST_MAX_URL)) {
		rc = manifest_fail(r->m, MANIFEST_PERMANENT, "%s: a SegmentTemplate template is too long",
				   r->where);
		goto done;
	}
	/* The initialization segment is named from the Representation only;
	 * a child Initialization@sourceURL stands in for the attribute. */
	if (!init) {
		xmlNode *in = manifest_dash_inherit_child(lv, T, "Initialization");
		init = manifest_dash_attr(in, "sourceURL");
	}
	if (init && (rc = manifest_dash_add_filled(r, init, -1, -1)) < 0)
		goto done;
	if (index && (rc = manifest_dash_add_filled(r, index, -1, -1)) < 0)
		goto done;
	if (!media)
		goto done;
	/* The period's end in timescale units, as a fraction over 1e9. */
	__int128 end_scaled = period_ns < 0 ? -1 : (__int128)pto * 1000000000 +
							 (__int128)period_ns * timescale;
	int64_t count = 0;
	if (timeline) {
		int64_t t = 0, number = start;
		int first = 1;
		for (xmlNode *s = timeline->children; s && rc == 0; s = s->next) {
			if (!manifest_dash_is(s, "S"))
				continue;
			int bad = 0;
			int64_t st = manifest_dash_int(s, "t", first ? 0 : t, &bad);
			int64_t d = manifest_dash_int(s, "d", -1, &bad);
			int64_t rep = manifest_dash_int(s, "r", 0, &bad);
			number = manifest_dash_int(s, "n", number, &bad);
			first = 0;
			if (bad || st < 0 || d <= 0 || rep < -1 || number < 0) {
				rc = manifest_fail(r->m, MANIFEST_PERMANENT,
						   "%s: an S element with a bad t, d, r or n",
						   r->where);
				break;
			}
			if (rep == -1) {
				/* Until the next S's t, or the period's end. */
				xmlNode *nx = s->next;
				while (nx && !manifest_dash_is(nx, "S"))
					nx = nx->next;
				__int128 until;
				int nb = 0;
				if (nx && xmlHasProp(nx, (const xmlChar *)"t"))
					until = (__int128)manifest_dash_int(nx, "t", 0, &nb) *
						1000000000;
				else if (end_scaled >= 0)
					until = end_scaled;
				else {
					rc = manifest_fail(r->m, MANIFEST_PERMANENT,
							   "%s: S@r=-1 repeats to an unknown end "
							   "(no period duration)",
							   r->where);
					break;
				}
				__int128 span = until - (__int128)st * 1000000000;
				__int128 dd = (__int128)d * 1000000000;
				__int128 k = span <= 0 ? 1 : (span + dd - 1) / dd;
				if (k > MANIFEST_MAX_ITEMS + 1)
					k = MANIFEST_MAX_ITEMS + 1;
				rep = (int64_t)k - 1;
			}
			if ((rc = manifest_dash_room(r, count, rep + 1)) < 0)
				break;
			t = st;
			for (int64_t i = 0; i <= rep && rc == 0; i++) {
				if (t > INT64_MAX - d || number == INT64_MAX) {
					rc = manifest_fail(r->m, MANIFEST_PERMANENT,
							   "%s: segment times overflow", r->where);
					break;
				}
				rc = manifest_dash_add_filled(r, media, number, t);
				t += d;
				number++;
				count++;
			}
		}
	} else {
		int64_t n;
		if (end_number > 0) {
			n = end_number >= start ? end_number - start + 1 : 0;
		} else if (duration <= 0) {
			/* One segment: a template without $Number$/$Time$. */
			n = 1;
		} else if (period_ns < 0) {
			rc = manifest_fail(r->m, MANIFEST_PERMANENT,
					   "%s: cannot count the segments of a SegmentTemplate "
					   "without a period duration",
					   r->where);
			goto done;
		} else {
			__int128 total = (__int128)period_ns * timescale;
			__int128 per = (__int128)duration * 1000000000;
			__int128 k = (total + per - 1) / per;
			n = k > MANIFEST_MAX_ITEMS + 1 ? MANIFEST_MAX_ITEMS + 1 : (int64_t)k;
		}
		if ((rc = manifest_dash_room(r, 0, n)) < 0)
			goto done;
		for (int64_t i = 0; i < n && rc == 0; i++) {
			if (start > INT64_MAX - i || (duration && i > (INT64_MAX - pto) / duration)) {
				rc = manifest_fail(r->m, MANIFEST_PERMANENT,
						   "%s: segment numbers overflow", r->where);
				break;
			}
			rc = manifest_dash_add_filled(r, media, start + i,
						      duration ? pto + i * duration : -1);
		}
	}
done:
	free(media);
	free(init);
	free(index);
	return rc;
}

/* SegmentList: the sourceURL of its Initialization and
 * RepresentationIndex, each SegmentURL's media and index. */
static int manifest_dash_list(struct manifest_dash_rep *r, const struct manifest_dash_levels *lv)
{
	const char *L = "SegmentList";
	int rc = 0;
	const char *children[] = { "Initialization", "RepresentationIndex" };
	for (size_t i = 0; i < 2 && rc == 0; i++) {
		xmlNode *c = manifest_dash_inherit_child(lv, L, children[i]);
		if (!c)
			continue;
		char *src = manifest_dash_attr(c, "sourceURL");
		rc = manifest_dash_add(r, src ? src : r->base);
		free(src);
	}
	/* The SegmentURLs of the most specific level that has any. */
	xmlNode *list = NULL;
	for (int i = 2; i >= 0 && !list; i--) {
		xmlNode *l = manifest_dash_level(lv, L, i);
		if (manifest_dash_child(l, "SegmentURL"))
			list = l;
	}
	for (xmlNode *s = list ? list->children : NULL; s && rc == 0; s = s->next) {
		if (!manifest_dash_is(s, "SegmentURL"))
			continue;
		char *media = manifest_dash_attr(s, "media");
		char *index = manifest_dash_attr(s, "index");
		rc = manifest_dash_add(r, media ? media : r->base);
		if (rc == 0 && index)
			rc = manifest_dash_add(r, index);
		free(media);
		free(index);
	}
	return rc;
}

/* SegmentBase, or no segment information: the base URL's file, with the
 * Initialization and RepresentationIndex sourceURLs if any. */
static int manifest_dash_base(struct manifest_dash_rep *r, const struct manifest_dash_levels *lv,
			      const char *mpd_url)
{
	int rc = 0;
	const char *children[] = { "Initialization", "RepresentationIndex" };
	for (size_t i = 0; i < 2 && rc == 0; i++) {
		xmlNode *c = manifest_dash_inherit_child(lv, "SegmentBase", children[i]);
		char *src = manifest_dash_attr(c, "sourceURL");
		if (src)
			rc = manifest_dash_add(r, src);
		free(src);
	}
	if (rc == 0 && strcmp(r->base, mpd_url) == 0)
		rc = manifest_fail(r->m, MANIFEST_PERMANENT,
				   "%s: no BaseURL names the Representation's file", r->where);
	if (rc == 0)
		rc = manifest_dash_add(r, r->base);
	return rc;
}

/* The base URL below `base` given by the first BaseURL child of `el`, or
 * `base` itself; malloc'ed, or NULL with the plan failed. */
static char *manifest_dash_baseurl(struct manifest_ctx *m, xmlNode *el, const char *base)
{
	xmlNode *b = manifest_dash_child(el, "BaseURL");
	if (!b)
		return util_strdup(base);
	char *text = manifest_dash_text(b);
	/* An empty BaseURL is the base itself. Otherwise the text is resolved
	 * like any reference; manifest_add checks where the files it leads to
	 * are, so a BaseURL elsewhere fails on its first file. */
	char *r = *text ? manifest_resolve(base, text) : NULL;
	free(text);
	/* Every segment is resolved against the base: a long one would cost
	 * its length per segment before the first is refused as too long. */
	if (r && strlen(r) > MANIFEST_MAX_URL) {
		char *shown = url_mask(base);
		manifest_fail(m, MANIFEST_PERMANENT, "BaseURL below %.240s: too long", shown);
		free(shown);
		free(r);
		return NULL;
	}
	return r ? r : util_strdup(base);
}

/* 1 when any element below `n` (or `n` itself) has an xlink:href. */
static xmlNode *manifest_dash_xlink(xmlNode *n)
{
	for (; n; n = n->next) {
		if (n->type != XML_ELEMENT_NODE)
			continue;
		for (xmlAttr *a = n->properties; a; a = a->next)
			if (strcmp((const char *)a->name, "href") == 0 && a->ns &&
			    strcmp((const char *)a->ns->href, "http://www.w3.org/1999/xlink") == 0)
				return n;
		xmlNode *c = manifest_dash_xlink(n->children);
		if (c)
			return c;
	}
	return NULL;
}

static int manifest_dash_rep(struct manifest_ctx *m, const char *mpd_url, const char *base,
			     xmlNode *period, xmlNode *as, xmlNode *rep, manifest_ns period_ns,
			     const char *where)
{
	struct manifest_dash_rep r = { .m = m, .where = where };
	char *b = manifest_dash_baseurl(m, rep, base);
	if (!b)
		return -1;
	r.base = b;
	r.id = manifest_dash_attr(rep, "id");
	r.bandwidth = manifest_dash_attr(rep, "bandwidth");
	struct manifest_dash_levels lv = { { period, as, rep } };
	/* The kind of segment information: that of the most specific level
	 * having any. */
	int rc = 0, kind = 0;
	for (int i = 2; i >= 0 && !kind; i--) {
		if (manifest_dash_child(lv.el[i], "SegmentTemplate"))
			kind = 1;
		else if (manifest_dash_child(lv.el[i], "SegmentList"))
			kind = 2;
		else if (manifest_dash_child(lv.el[i], "SegmentBase"))
			kind = 3;
	}
	if (kind == 1)
		rc = manifest_dash_template(&r, &lv, period_ns);
	else if (kind == 2)
		rc = manifest_dash_list(&r, &lv);
	else
		rc = manifest_dash_base(&r, &lv, mpd_url);
	free(b);
	free(r.id);
	free(r.bandwidth);
	return rc;
}

static pthread_once_t manifest_dash_once = PTHREAD_ONCE_INIT;

static void manifest_dash_init(void)
{
	xmlInitParser();
}

/* libxml2 reports some errors (an encoding that cannot be converted)
 * through its generic handler even with XML_PARSE_NOERROR, which writes to
 * stderr; the plan's reason carries what matters. */
static void manifest_dash_quiet(void *ctx, const char *msg, ...)
{
	(void)ctx;
	(void)msg;
}

static int manifest_dash_plan(struct manifest_ctx *m, const char *url, const char *body,
			      size_t len)
{
	pthread_once(&manifest_dash_once, manifest_dash_init);
	char *shown = url_mask(url);
	int rc = 0;
	xmlDoc *doc = NULL;
	/* An MPD has no DTD; one could only declare entities to expand. */
	for (size_t i = 0; i + 3 <= len; i++)
		if (body[i] == '<' && body[i + 1] == '!' && (body[i + 2] == 'D' || body[i + 2] == 'E')) {
			rc = manifest_fail(m, MANIFEST_PERMANENT,
					   "MPD %s: has a DTD or an entity declaration", shown);
			goto done;
		}
	/* The handler is per thread: set it where the parse runs. */
	xmlSetGenericErrorFunc(NULL, manifest_dash_quiet);
	doc = xmlReadMemory(body, (int)len, NULL, NULL,
			    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (!doc) {
		const xmlError *e = xmlGetLastError();
		char msg[200] = "";
		if (e && e->message) {
			snprintf(msg, sizeof msg, "%s", e->message);
			util_trim(msg);
		}
		rc = manifest_fail(m, MANIFEST_PERMANENT, "MPD %s: not well-formed XML (line %d: %s)",
				   shown, e ? e->line : 0, msg);
		goto done;
	}
	xmlNode *mpd = xmlDocGetRootElement(doc);
	if (!manifest_dash_is(mpd, "MPD")) {
		rc = manifest_fail(m, MANIFEST_PERMANENT, "MPD %s: the root element is not MPD", shown);
		goto done;
	}
	char *type = manifest_dash_attr(mpd, "type");
	int dynamic = type && strcmp(type, "static") != 0;
	free(type);
	if (dynamic) {
		rc = manifest_fail(m, MANIFEST_PERMANENT,
				   "MPD %s is live: type is not \"static\", the presentation is "
				   "not complete yet",
				   shown);
		goto done;
	}
	xmlNode *x = manifest_dash_xlink(mpd);
	if (x) {
		rc = manifest_fail(m, MANIFEST_PERMANENT,
				   "MPD %s: remote elements (xlink:href on %s) are not supported",
				   shown, (const char *)x->name);
		goto done;
	}
	char *mpdur = manifest_dash_attr(mpd, "mediaPresentationDuration");
	manifest_ns total = mpdur ? manifest_dash_duration(mpdur) : -1;
	int bad_total = mpdur && total < 0;
	free(mpdur);
	if (bad_total) {
		rc = manifest_fail(m, MANIFEST_PERMANENT,
				   "MPD %s: mediaPresentationDuration is not a duration", shown);
		goto done;
	}
	char *mbase = manifest_dash_baseurl(m, mpd, url);
	if (!mbase)
		rc = -1;
	manifest_ns pstart = 0;
	int pno = 0;
	for (xmlNode *p = mpd->children; p && rc == 0; p = p->next) {
		if (!manifest_dash_is(p, "Period"))
			continue;
		pno++;
		char *s = manifest_dash_attr(p, "start");
		char *d = manifest_dash_attr(p, "duration");
		if (s)
			pstart = manifest_dash_duration(s);
		manifest_ns pdur = d ? manifest_dash_duration(d) : -1;
		int bad = (s && pstart < 0) || (d && pdur < 0);
		free(s);
		free(d);
		if (bad) {
			rc = manifest_fail(m, MANIFEST_PERMANENT,
					   "MPD %s: Period %d has a bad start or duration", shown, pno);
			break;
		}
		if (pdur < 0) {
			xmlNode *nx = p->next;
			while (nx && !manifest_dash_is(nx, "Period"))
				nx = nx->next;
			char *ns = nx ? manifest_dash_attr(nx, "start") : NULL;
			manifest_ns nstart = ns ? manifest_dash_duration(ns) : -1;
			free(ns);
			if (nstart >= 0 && pstart >= 0)
				pdur = nstart - pstart >= 0 ? nstart - pstart : -1;
			else if (!nx && total >= 0 && pstart >= 0)
				pdur = total - pstart >= 0 ? total - pstart : -1;
		}
		char *pbase = manifest_dash_baseurl(m, p, mbase);
		int ano = 0;
		if (!pbase)
			rc = -1;
		for (xmlNode *as = p->children; as && rc == 0; as = as->next) {
			if (!manifest_dash_is(as, "AdaptationSet"))
				continue;
			ano++;
			char *abase = manifest_dash_baseurl(m, as, pbase);
			int rno = 0;
			if (!abase)
				rc = -1;
			for (xmlNode *rep = as->children; rep && rc == 0; rep = rep->next) {
				if (!manifest_dash_is(rep, "Representation"))
					continue;
				rno++;
				char *id = manifest_dash_attr(rep, "id");
				char *sid = id ? url_mask(id) : util_strdup("?");
				char where[700];
				snprintf(where, sizeof where,
					 "MPD %s Period %d AdaptationSet %d Representation %d "
					 "(id %.64s)",
					 shown, pno, ano, rno, sid);
				free(id);
				free(sid);
				rc = manifest_dash_rep(m, url, abase, p, as, rep, pdur, where);
			}
			free(abase);
		}
		free(pbase);
		if (pstart >= 0 && pdur >= 0)
			pstart += pdur;
		else
			pstart = -1;
	}
	free(mbase);
done:
	xmlFreeDoc(doc);
	free(shown);
	return rc;
}

const struct manifest_format manifest_dash = {
	.name = "DASH",
	.extensions = manifest_dash_ext,
	.sniff = manifest_dash_sniff,
	.plan = manifest_dash_plan,
};

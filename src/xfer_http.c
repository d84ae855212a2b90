/*
 * xfer_http.c - HTTP(S) origins as sources behind struct xfer_ops: a file
 * is fetched with GET (a resume with a Range), its version read from a
 * HEAD (Content-Length, ETag, Last-Modified). An HTTP server lists
 * nothing, so an HTTP source is a single file or a package its manifest
 * names (an HLS playlist, a DASH MPD), and it takes no writes: a root on
 * an HTTP server is WebDAV's (xfer_dav.c).
 *
 *   stat    HEAD; a directory named without its '/' is redirected (nginx:
 *           301) or not found, and HEAD of "path/" settles it (403 from a
 *           server that will not index a collection still means one)
 *   plan    manifest_plan (manifest.c) over GETs into memory: every file
 *           of the presentation, relative to the manifest's directory
 *
 * A plan checks every URL it fetches or lists against the session's
 * source rules (xfer_curl_allowed: [source] allow, as for the manifest
 * itself) before anything is fetched from it. The manifests' bytes the
 * plan parsed stay with the session, and the session's get and version
 * answer from them: what is published is what was planned, never a second
 * fetch that the origin could answer differently. Only the session that
 * planned holds them; xfer.c copies the manifests on that session, after
 * every media file.
 */
#include "xfer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int xfer_http_stat(struct xfer_curl *x, const char *path, int *is_dir, int64_t *size,
			  char *err, size_t errlen)
{
	int want_dir = path[strlen(path) - 1] == '/';
	int64_t len = -1;
	char first[1024] = "";
	int rc = XS_NOTFOUND;
	if (!want_dir) {
		rc = xfer_curl_head(x, path, &len, first, sizeof first);
		if (rc == XS_OK) {
			*size = len;
			return XS_OK;
		}
		long code = xfer_curl_http_code(x);
		if (rc != XS_NOTFOUND && !(rc == XS_PERMANENT && code >= 300 && code < 400))
			goto first_error;
	}
	char *d = xfer_curl_slash(path);
	int r = xfer_curl_head(x, d, NULL, err, errlen);
	free(d);
	if (r == XS_OK || (r == XS_PERMANENT && xfer_curl_http_code(x) == 403)) {
		*is_dir = 1;
		return XS_OK;
	}
	if (want_dir || r == XS_TRANSIENT || r == XS_STOPPED)
		return r;
first_error:
	snprintf(err, errlen, "%s", first);
	return rc;
}

static int xfer_http_read_only(struct xfer_curl *x, const char *path, char *err, size_t errlen)
{
	return xfer_curl_fail(x, XS_PERMANENT, path, err, errlen,
			      "an http source takes no writes (a root on an http server is WebDAV)");
}

static int xfer_http_mkdir(struct xfer_curl *x, const char *dir, char *err, size_t errlen)
{
	return xfer_http_read_only(x, dir, err, errlen);
}

static int xfer_http_rename(struct xfer_curl *x, const char *from, const char *to, char *err,
			    size_t errlen)
{
	(void)to;
	return xfer_http_read_only(x, from, err, errlen);
}

static int xfer_http_remove(struct xfer_curl *x, const char *path, int is_dir, char *err,
			    size_t errlen)
{
	(void)is_dir;
	return xfer_http_read_only(x, path, err, errlen);
}

/* ---- packages ---------------------------------------------------------- */

/* What a plan leaves on its session: each manifest's server path and the
 * bytes that were parsed. */
struct xfer_http_kept {
	int n;
	char **path;
	char **body;
	size_t *len;
};

static void xfer_http_kept_free(void *arg)
{
	struct xfer_http_kept *k = arg;
	if (!k)
		return;
	for (int i = 0; i < k->n; i++) {
		free(k->path[i]);
		free(k->body[i]);
	}
	free(k->path);
	free(k->body);
	free(k->len);
	free(k);
}

/* The bytes kept for server path `path`, or NULL. */
static const struct xfer_http_kept *xfer_http_kept_find(struct xfer_curl *x, const char *path,
							int *at)
{
	const struct xfer_http_kept *k = xfer_curl_extra(x);
	for (int i = 0; k && i < k->n; i++)
		if (strcmp(k->path[i], path) == 0) {
			*at = i;
			return k;
		}
	return NULL;
}

/* A plan's fetches: the session, and how the fetch that failed ended, so
 * that a stop or a missing top manifest keeps its own meaning. */
struct xfer_http_fetch {
	struct xfer_curl *x;
	const char *top;
	int status;      /* enum xfer_status of the fetch that failed */
	int top_missing; /* the top manifest itself answered 404 */
	size_t got;
};

static int xfer_http_count(void *arg, const char *buf, size_t n)
{
	(void)buf;
	struct xfer_http_fetch *f = arg;
	f->got += n;
	return f->got > MANIFEST_MAX_BYTES ? -1 : 0;
}

/* The server path of a URL of the session's origin (the planner keeps
 * every reference on it), decoded; NULL with err set otherwise. */
static char *xfer_http_path_of(const char *url, char *err, size_t errlen)
{
	struct url u;
	char why[256];
	if (url_parse(url, &u, why, sizeof why) < 0) {
		char *m = url_mask(url);
		snprintf(err, errlen, "%s: %s", m, why);
		free(m);
		return NULL;
	}
	char *path = util_strdup(u.path);
	url_free(&u);
	return path;
}

/* manifest_fetch_fn over the session: the URL checked against the
 * source rules, then a GET into memory. */
static int xfer_http_fetch(void *arg, const char *url, char **body, size_t *len, char *err,
			   size_t errlen)
{
	struct xfer_http_fetch *f = arg;
	*body = NULL;
	*len = 0;
	int rc = xfer_curl_allowed(f->x, url, err, errlen);
	char *path = rc == XS_OK ? xfer_http_path_of(url, err, errlen) : NULL;
	if (rc == XS_OK && !path)
		rc = XS_PERMANENT;
	int fd = -1;
	if (rc == XS_OK && (fd = memfd_create("apubid-manifest", MFD_CLOEXEC)) < 0) {
		snprintf(err, errlen, "cannot hold manifest %s in memory: %s", url,
			 strerror(errno));
		rc = XS_TRANSIENT;
	}
	if (rc == XS_OK) {
		f->got = 0;
		rc = xfer_curl_get(f->x, path, fd, 0, NULL, xfer_http_count, f, err, errlen);
		if (rc != XS_OK && f->got > MANIFEST_MAX_BYTES) {
			snprintf(err, errlen, "manifest %s is larger than %d bytes", url,
				 MANIFEST_MAX_BYTES);
			rc = XS_PERMANENT;
		}
	}
	if (rc == XS_OK) {
		off_t end = lseek(fd, 0, SEEK_END);
		char *b = util_malloc(end > 0 ? (size_t)end : 1);
		if (end < 0 || pread(fd, b, (size_t)end, 0) != (ssize_t)end) {
			snprintf(err, errlen, "cannot read back manifest %s: %s", url,
				 strerror(errno));
			free(b);
			rc = XS_TRANSIENT;
		} else {
			*body = b;
			*len = (size_t)end;
		}
	}
	if (fd >= 0)
		close(fd);
	if (rc == XS_NOTFOUND && path && strcmp(path, f->top) == 0)
		f->top_missing = 1;
	free(path);
	if (rc == XS_OK)
		return MANIFEST_OK;
	f->status = rc;
	return rc == XS_TRANSIENT || rc == XS_STOPPED ? MANIFEST_TRANSIENT : MANIFEST_PERMANENT;
}

/* The files of the package whose top manifest is `path`: each media file
 * checked against the source rules, each manifest's bytes kept on the
 * session for its get. */
static int xfer_http_plan(struct xfer_curl *x, const char *path, struct xfer_entry **entries,
			  int *n, char *err, size_t errlen)
{
	*entries = NULL;
	*n = 0;
	int rc = xfer_curl_check_path(x, path, err, errlen);
	if (rc != XS_OK)
		return rc;
	char *enc = url_encode_path(path);
	char *url = util_printf("%s%s", xfer_curl_base(x), enc);
	free(enc);
	struct xfer_http_fetch f = { .x = x, .top = path, .status = XS_OK };
	struct manifest_item *items = NULL;
	int ni = 0;
	int mrc = manifest_plan(url, xfer_http_fetch, &f, &items, &ni, err, errlen);
	if (mrc != MANIFEST_OK) {
		free(url);
		if (f.status == XS_STOPPED)
			return XS_STOPPED;
		if (f.top_missing)
			return XS_NOTFOUND;
		return mrc == MANIFEST_TRANSIENT ? XS_TRANSIENT : XS_PERMANENT;
	}
	for (int i = 0; i < ni && rc == XS_OK; i++)
		if (!items[i].body)
			rc = xfer_curl_allowed(x, items[i].url, err, errlen);
	if (rc != XS_OK) {
		manifest_free_items(items, ni);
		free(url);
		return rc;
	}
	/* Server paths of the kept bytes: the manifest's directory and the
	 * item's path below it. */
	const char *slash = strrchr(path, '/');
	size_t dirlen = slash ? (size_t)(slash - path) + 1 : 0;
	struct xfer_http_kept *k = util_calloc(1, sizeof *k);
	k->path = util_calloc((size_t)ni + 1, sizeof *k->path);
	k->body = util_calloc((size_t)ni + 1, sizeof *k->body);
	k->len = util_calloc((size_t)ni + 1, sizeof *k->len);
	struct xfer_entry *e = util_calloc((size_t)ni + 1, sizeof *e);
	for (int i = 0; i < ni; i++) {
		e[i].name = util_strdup(items[i].path);
		e[i].size = items[i].body ? (int64_t)items[i].len : -1;
		if (items[i].body) {
			k->path[k->n] = util_printf("%.*s%s", (int)dirlen, path, items[i].path);
			k->body[k->n] = items[i].body;
			k->len[k->n] = items[i].len;
			items[i].body = NULL;
			k->n++;
		}
	}
	xfer_curl_set_extra(x, k, xfer_http_kept_free);
	manifest_free_items(items, ni);
	free(url);
	*entries = e;
	*n = ni;
	return XS_OK;
}

/* A manifest a plan kept is answered from its bytes; anything else from
 * the origin. */
static int xfer_http_version(struct xfer_curl *x, const char *path, struct xfer_version *v,
			     char *err, size_t errlen)
{
	int at;
	const struct xfer_http_kept *k = xfer_http_kept_find(x, path, &at);
	if (!k)
		return xfer_curl_version(x, path, v, err, errlen);
	memset(v, 0, sizeof *v);
	v->known = XV_SIZE;
	v->size = (int64_t)k->len[at];
	return XS_OK;
}

static int xfer_http_get(struct xfer_curl *x, const char *path, int fd, int64_t offset,
			 const struct xfer_version *expect,
			 int (*on_data)(void *arg, const char *buf, size_t n), void *arg, char *err,
			 size_t errlen)
{
	int at;
	const struct xfer_http_kept *k = xfer_http_kept_find(x, path, &at);
	if (!k)
		return xfer_curl_get(x, path, fd, offset, expect, on_data, arg, err, errlen);
	size_t len = k->len[at];
	size_t off = offset > 0 && (size_t)offset < len ? (size_t)offset : offset > 0 ? len : 0;
	const char *p = k->body[at] + off;
	size_t left = len - off;
	while (left > 0) {
		ssize_t w = write(fd, p, left);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return xfer_curl_fail(x, XS_PERMANENT, path, err, errlen,
					      "cannot write the planned manifest: %s",
					      w < 0 ? strerror(errno) : "nothing written");
		if (on_data && on_data(arg, p, (size_t)w) != 0)
			return xfer_curl_fail(x, XS_PERMANENT, path, err, errlen,
					      "the copy of the planned manifest was refused");
		p += w;
		left -= (size_t)w;
	}
	return XS_OK;
}

const struct xfer_ops xfer_http_ops = {
	.name = "http",
	.caps = 0,
	.list = NULL,
	.version = xfer_http_version,
	.get = xfer_http_get,
	.put = NULL,
	/* An origin lists nothing: a package is what its manifest names
	 * (HLS, DASH). */
	.plan = xfer_http_plan,
	.stat = xfer_http_stat,
	.mkdir = xfer_http_mkdir,
	.rename = xfer_http_rename,
	.remove = xfer_http_remove,
};

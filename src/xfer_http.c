/*
 * xfer_http.c - HTTP(S) origins as sources behind struct xfer_ops: a file
 * is fetched with GET (a resume with a Range), its version read from a
 * HEAD (Content-Length, ETag, Last-Modified). An HTTP server lists
 * nothing, so an HTTP source is a single file, and it takes no writes:
 * a root on an HTTP server is WebDAV's (xfer_dav.c).
 *
 *   stat    HEAD; a directory named without its '/' is redirected (nginx:
 *           301) or not found, and HEAD of "path/" settles it (403 from a
 *           server that will not index a collection still means one)
 */
#include "xfer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

const struct xfer_ops xfer_http_ops = {
	.name = "http",
	.caps = 0,
	.list = NULL,
	.version = xfer_curl_version,
	.get = xfer_curl_get,
	.put = NULL,
	/* An origin lists nothing: a package is what its manifest names
	 * (HLS, DASH), planned by .plan when one is set. */
	.plan = NULL,
	.stat = xfer_http_stat,
	.mkdir = xfer_http_mkdir,
	.rename = xfer_http_rename,
	.remove = xfer_http_remove,
};

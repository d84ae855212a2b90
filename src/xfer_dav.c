/*
 * xfer_dav.c - WebDAV servers (nginx's dav module and others) as
 * destination roots behind struct xfer_ops; reading is plain HTTP
 * (xfer_http.c), whose stat this table shares.
 *
 *   mkdir   MKCOL "dir/" (refused, 405: fine when the collection is there)
 *   rename  MOVE with "Destination: URL" and "Overwrite: T"; a directory
 *           named without its '/' is moved again as one (WebDAV insists)
 *   remove  DELETE, which takes a whole tree; nginx wants a collection
 *           named with its '/' and a file without, so a DELETE refused
 *           for the wrong kind is tried again as the other
 *
 * An upload cannot continue a partial one (PUT has no append), so a
 * resumed upload starts from its first byte; a stage cannot be listed
 * (no PROPFIND here), so a PUT's answer and its byte count stand.
 */
#include "xfer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int xfer_dav_stat(struct xfer_curl *x, const char *path, int *is_dir, int64_t *size,
			 char *err, size_t errlen)
{
	return xfer_http_ops.stat(x, path, is_dir, size, err, errlen);
}

static int xfer_dav_mkdir(struct xfer_curl *x, const char *dir, char *err, size_t errlen)
{
	char first[1024];
	char *d = xfer_curl_slash(dir);
	int rc = xfer_curl_request(x, "MKCOL", d, NULL, 0, first, sizeof first);
	free(d);
	if (rc != XS_OK && rc != XS_TRANSIENT && rc != XS_STOPPED) {
		int is_dir = 0;
		int64_t size;
		char e2[1024];
		d = xfer_curl_slash(dir);
		int r = xfer_dav_stat(x, d, &is_dir, &size, e2, sizeof e2);
		free(d);
		if (r == XS_OK && is_dir)
			return XS_OK;
	}
	if (rc != XS_OK)
		snprintf(err, errlen, "%s", first);
	return rc;
}

static int xfer_dav_move(struct xfer_curl *x, const char *from, const char *to, int dir,
			 char *err, size_t errlen)
{
	char *f = dir ? xfer_curl_slash(from) : xfer_curl_noslash(from);
	char *t = dir ? xfer_curl_slash(to) : xfer_curl_noslash(to);
	char *enc = url_encode_path(t);
	char *dest = util_printf("Destination: %s%s", xfer_curl_base(x), enc);
	const char *headers[] = { dest, "Overwrite: T", NULL };
	int rc = xfer_curl_request(x, "MOVE", f, headers, 1, err, errlen);
	free(dest);
	free(enc);
	free(f);
	free(t);
	return rc;
}

static int xfer_dav_rename(struct xfer_curl *x, const char *from, const char *to, char *err,
			   size_t errlen)
{
	int dir = from[strlen(from) - 1] == '/';
	char first[1024];
	int rc = xfer_dav_move(x, from, to, dir, first, sizeof first);
	if (rc == XS_OK || rc == XS_TRANSIENT || rc == XS_STOPPED)
		goto out;
	/* Refused: a missing source is "not found"; a directory named
	 * without its '/' is moved again as one. */
	int from_dir = 0;
	int64_t size;
	char e2[1024];
	int r = xfer_dav_stat(x, from, &from_dir, &size, e2, sizeof e2);
	if (r == XS_NOTFOUND)
		rc = XS_NOTFOUND;
	else if (r == XS_OK && from_dir && !dir)
		rc = xfer_dav_move(x, from, to, 1, first, sizeof first);
out:
	if (rc != XS_OK)
		snprintf(err, errlen, "%s", first);
	return rc;
}

static int xfer_dav_remove(struct xfer_curl *x, const char *path, int is_dir, char *err,
			   size_t errlen)
{
	char first[1024];
	char *p = is_dir ? xfer_curl_slash(path) : xfer_curl_noslash(path);
	int rc = xfer_curl_request(x, "DELETE", p, NULL, 1, first, sizeof first);
	free(p);
	if (rc == XS_PERMANENT) {
		int d = 0;
		int64_t size;
		char e2[1024];
		if (xfer_dav_stat(x, path, &d, &size, e2, sizeof e2) == XS_OK && d != is_dir) {
			p = d ? xfer_curl_slash(path) : xfer_curl_noslash(path);
			rc = xfer_curl_request(x, "DELETE", p, NULL, 1, first, sizeof first);
			free(p);
		}
	}
	if (rc != XS_OK)
		snprintf(err, errlen, "%s", first);
	return rc;
}

const struct xfer_ops xfer_dav_ops = {
	.name = "webdav",
	.caps = XFER_CAN_WRITE,
	.list = NULL,
	.version = xfer_curl_version,
	.get = xfer_curl_get,
	.put = xfer_curl_put,
	.plan = NULL,
	.stat = xfer_dav_stat,
	.mkdir = xfer_dav_mkdir,
	.rename = xfer_dav_rename,
	.remove = xfer_dav_remove,
};

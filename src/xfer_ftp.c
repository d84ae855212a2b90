/*
 * xfer_ftp.c - FTP and FTPS (explicit TLS) servers behind struct xfer_ops.
 *
 *   stat    SIZE; when refused, CWD tells a directory from nothing
 *   mkdir   MKD (refused: fine when CWD finds the directory)
 *   rename  RNFR + RNTO; a file in the way is removed first where the
 *           server will not replace it
 *   remove  DELE, or a tree depth first: the files of each directory in
 *           one batch of DELE, then RMD
 *
 * Every path is absolute; libcurl sends them raw (FTP has no quoting), so
 * xfer_curl.c refuses a CR or LF in a path. A refused command does not
 * cost the control connection (xfer_curl.c sends commands as ones that
 * may fail and reads the reply), so a task logs in once per connection.
 * Downloads resume with REST, uploads with APPE.
 */
#include "xfer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Whether `path` is a directory the server lets us enter (CWD; all our
 * paths are absolute, so the working directory it leaves does not matter).
 * XS_OK: a directory; XS_NOTFOUND: no directory there (missing or a file). */
static int xfer_ftp_isdir(struct xfer_curl *x, const char *path, char *err, size_t errlen)
{
	int rc = xfer_curl_quote(x, "CWD", path, NULL, 1, err, errlen);
	if (rc == XS_PERMANENT && xfer_curl_reply_code(x) >= 500)
		rc = xfer_curl_fail(x, XS_NOTFOUND, path, err, errlen, "%s", xfer_curl_reply(x));
	return rc;
}

static int xfer_ftp_stat(struct xfer_curl *x, const char *path, int *is_dir, int64_t *size,
			 char *err, size_t errlen)
{
	int want_dir = path[strlen(path) - 1] == '/';
	int64_t len = -1;
	char first[1024] = "";
	int rc = XS_NOTFOUND;
	if (!want_dir) {
		rc = xfer_curl_head(x, path, &len, first, sizeof first);
		if (rc == XS_OK && len >= 0) {
			*size = len;
			return XS_OK;
		}
		if (rc != XS_OK && rc != XS_NOTFOUND)
			goto first_error;
	}
	/* SIZE refused (550) or not supported: CWD says whether it is a
	 * directory. */
	int r = xfer_ftp_isdir(x, path, err, errlen);
	if (r == XS_OK) {
		*is_dir = 1;
		return XS_OK;
	}
	if (r == XS_NOTFOUND && rc == XS_OK && !want_dir)
		return XS_OK; /* a file whose size the server does not tell */
	if (want_dir || r != XS_NOTFOUND)
		return r;
first_error:
	snprintf(err, errlen, "%s", first);
	return rc;
}

static int xfer_ftp_mkdir(struct xfer_curl *x, const char *dir, char *err, size_t errlen)
{
	char first[1024];
	int rc = xfer_curl_quote(x, "MKD", dir, NULL, 0, first, sizeof first);
	if (rc != XS_OK && rc != XS_TRANSIENT && rc != XS_STOPPED) {
		/* Refused (550): fine if the directory is there already. */
		char e2[1024];
		if (xfer_ftp_isdir(x, dir, e2, sizeof e2) == XS_OK)
			return XS_OK;
	}
	if (rc != XS_OK)
		snprintf(err, errlen, "%s", first);
	return rc;
}

static int xfer_ftp_rename_once(struct xfer_curl *x, const char *from, const char *to,
				char *err, size_t errlen)
{
	xfer_curl_quote_start(x);
	xfer_curl_quote_add(x, "RNFR", from, NULL);
	xfer_curl_quote_add(x, "RNTO", to, NULL);
	return xfer_curl_quote_run(x, from, 1, err, errlen);
}

static int xfer_ftp_rename(struct xfer_curl *x, const char *from, const char *to, char *err,
			   size_t errlen)
{
	return xfer_curl_rename_with(x, from, to, xfer_ftp_rename_once, "DELE", xfer_ftp_stat, err,
				     errlen);
}

static int xfer_ftp_remove(struct xfer_curl *x, const char *path, int is_dir, char *err,
			   size_t errlen)
{
	return xfer_curl_remove_with(x, path, is_dir, "DELE", "RMD", xfer_ftp_stat, err, errlen);
}

const struct xfer_ops xfer_ftp_ops = {
	.name = "ftp",
	.caps = XFER_CAN_LIST | XFER_CAN_WRITE | XFER_PUT_RESUMES,
	.list = xfer_curl_list,
	.stage_list = xfer_curl_stage_list,
	.version = xfer_curl_version,
	.get = xfer_curl_get,
	.put = xfer_curl_put,
	.plan = NULL,
	.stat = xfer_ftp_stat,
	.mkdir = xfer_ftp_mkdir,
	.rename = xfer_ftp_rename,
	.remove = xfer_ftp_remove,
};

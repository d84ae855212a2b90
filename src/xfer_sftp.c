/*
 * xfer_sftp.c - SFTP servers (OpenSSH's and others) behind struct
 * xfer_ops, through libcurl's libssh2 backend.
 *
 *   stat    open the file without reading it; only a directory can be
 *           listed, which tells the two apart
 *   mkdir   mkdir (refused: fine when the directory is there)
 *   rename  rename; SFTP v3 will not replace a file, so one in the way is
 *           removed first and the rename tried again
 *   remove  rm, or a tree depth first: rm for the files of each directory
 *           in one batch, then rmdir
 *
 * Paths go to commands in double quotes with '"' and '\' escaped, which is
 * what libcurl's SFTP quote parser reads; "/~/" at the start of a path is
 * libcurl's home directory, so xfer_curl.c refuses such paths. Downloads
 * resume by seeking, uploads by appending.
 */
#include "xfer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Whether `path` can be listed as a directory. */
static int xfer_sftp_isdir(struct xfer_curl *x, const char *path, char *err, size_t errlen)
{
	char *d = xfer_curl_slash(path);
	int rc = xfer_curl_touch(x, d, err, errlen);
	free(d);
	return rc;
}

/* libcurl reports an empty file's size as unknown (it takes a size of 0
 * for "the server did not say"); the parent's listing tells. Returns the
 * size, or -1. */
static int64_t xfer_sftp_size_from_parent(struct xfer_curl *x, const char *path)
{
	char *p = xfer_curl_noslash(path);
	char *slash = strrchr(p, '/');
	const char *name = slash + 1;
	char *parent = util_strndup(p, (size_t)(slash - p) + 1);
	char e[1024];
	int64_t size = -1;
	struct xfer_entry *ents = NULL;
	int n = 0;
	if (*name && xfer_curl_list_links(x, parent, 0, &ents, &n, e, sizeof e) == XS_OK)
		for (int i = 0; i < n; i++)
			if (!ents[i].is_dir && strcmp(ents[i].name, name) == 0)
				size = ents[i].size;
	xfer_curl_free_entries(ents, n);
	free(parent);
	free(p);
	return size;
}

static int xfer_sftp_stat(struct xfer_curl *x, const char *path, int *is_dir, int64_t *size,
			  char *err, size_t errlen)
{
	int want_dir = path[strlen(path) - 1] == '/';
	int64_t len = -1;
	char first[1024] = "";
	/* A file opens (named without a '/': libcurl would take "dir/" for a
	 * listing), and so does a directory on OpenSSH but not on every
	 * server; only a directory can be listed. */
	char *p = xfer_curl_noslash(path);
	int rc = xfer_curl_head(x, p, &len, first, sizeof first);
	int r = rc == XS_TRANSIENT || rc == XS_STOPPED ? rc : xfer_sftp_isdir(x, p, err, errlen);
	free(p);
	if (r == XS_OK) {
		*is_dir = 1;
		return XS_OK;
	}
	if (rc != XS_OK) {
		snprintf(err, errlen, "%s", first);
		return rc;
	}
	if (r == XS_TRANSIENT || r == XS_STOPPED)
		return r;
	if (want_dir)
		return xfer_curl_fail(x, XS_PERMANENT, path, err, errlen, "not a directory");
	if (len < 0)
		len = xfer_sftp_size_from_parent(x, path);
	*size = len;
	return XS_OK;
}

static int xfer_sftp_mkdir(struct xfer_curl *x, const char *dir, char *err, size_t errlen)
{
	char first[1024];
	int rc = xfer_curl_quote(x, "mkdir", dir, NULL, 0, first, sizeof first);
	if (rc != XS_OK && rc != XS_TRANSIENT && rc != XS_STOPPED) {
		/* Refused ("failure"): fine if the directory is there already. */
		char e2[1024];
		if (xfer_sftp_isdir(x, dir, e2, sizeof e2) == XS_OK)
			return XS_OK;
	}
	if (rc != XS_OK)
		snprintf(err, errlen, "%s", first);
	return rc;
}

static int xfer_sftp_rename_once(struct xfer_curl *x, const char *from, const char *to,
				 char *err, size_t errlen)
{
	return xfer_curl_quote(x, "rename", from, to, 1, err, errlen);
}

static int xfer_sftp_rename(struct xfer_curl *x, const char *from, const char *to, char *err,
			    size_t errlen)
{
	return xfer_curl_rename_with(x, from, to, xfer_sftp_rename_once, "rm", xfer_sftp_stat, err,
				     errlen);
}

static int xfer_sftp_remove(struct xfer_curl *x, const char *path, int is_dir, char *err,
			    size_t errlen)
{
	return xfer_curl_remove_with(x, path, is_dir, "rm", "rmdir", xfer_sftp_stat, err, errlen);
}

const struct xfer_ops xfer_sftp_ops = {
	.name = "sftp",
	.caps = XFER_CAN_LIST | XFER_CAN_WRITE | XFER_PUT_RESUMES,
	.list = xfer_curl_list,
	.stage_list = xfer_curl_stage_list,
	.version = xfer_curl_version,
	.get = xfer_curl_get,
	.put = xfer_curl_put,
	.plan = NULL,
	.stat = xfer_sftp_stat,
	.mkdir = xfer_sftp_mkdir,
	.rename = xfer_sftp_rename,
	.remove = xfer_sftp_remove,
};

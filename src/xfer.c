/*
 * xfer.c - carrying out a task: picks the transfer back end from the
 * source URL scheme and the destination root. Today every path leads to the
 * local-filesystem back end (xfer_file.c); remote back ends plug in here by
 * scheme, sharing the xfer_ stem.
 */
#include "apubid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Turns a validated source (file:// URL or absolute path) into a local path
 * without a trailing '/'. Returns a malloc'ed path or NULL with err set. */
static char *xfer_local_source(const char *source, char *err, size_t errlen)
{
	char *path;
	if (url_is_absolute(source)) {
		struct url u;
		if (url_parse(source, &u, err, errlen) < 0)
			return NULL;
		if (strcmp(u.scheme, "file") != 0) {
			snprintf(err, errlen, "unsupported source scheme '%s'", u.scheme);
			url_free(&u);
			return NULL;
		}
		path = util_strdup(u.path);
		url_free(&u);
	} else {
		path = util_strdup(source);
	}
	size_t n = strlen(path);
	while (n > 1 && path[n - 1] == '/')
		path[--n] = '\0';
	return path;
}

int xfer_load(const struct config *c, const struct task *t, volatile sig_atomic_t *stop,
	      char *err, size_t errlen)
{
	if (!c->dest_root_path) {
		snprintf(err, errlen, "destination root %s is not a local directory", c->dest_root);
		return XFER_FAILED;
	}
	char *src = xfer_local_source(t->source, err, errlen);
	if (!src)
		return XFER_FAILED;
	int rc = xfer_file_load(src, c->dest_root_path, t->dest_path, t->id, stop, err, errlen);
	free(src);
	return rc;
}

int xfer_purge(const struct config *c, const struct task *t, char **note, char *err,
	       size_t errlen)
{
	if (!c->dest_root_path) {
		snprintf(err, errlen, "destination root %s is not a local directory", c->dest_root);
		return XFER_FAILED;
	}
	return xfer_file_purge(c->dest_root_path, t->dest_path, t->id, note, err, errlen);
}

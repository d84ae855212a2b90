/*
 * xfer_remote.c - a server as an end of a transfer (struct xfer_end_ops):
 * a source to list and read, or a destination root to stage in, commit
 * and purge, each operation through the protocol's own table (struct
 * xfer_ops: xfer_ftp.c, xfer_sftp.c, xfer_dav.c, xfer_http.c) on one
 * libcurl session per lane (xfer_curl.c).
 *
 * The end's site is the session's URL, with the user and password found
 * for it (the URL's own, else the first [credentials] entry for the same
 * scheme, host and port), and the protocol: FTP and FTPS, SFTP, and
 * HTTP(S), read as a plain origin and written as a WebDAV root.
 *
 * A stage on a server is a hidden name beside the final one, a directory
 * ".NAME.apubid-TASKID.stage" or a file ".NAME.apubid-TASKID.tmp". Only a
 * resume looks for what an earlier attempt staged: a first attempt sends
 * no probe (on FTP a probe for a missing name costs the control
 * connection), and uploads over whatever an attempt that recorded nothing
 * may have left; the check before the commit (xfer.c) removes whatever
 * the plan does not name. The commit is one rename for a file; a
 * directory cannot be renamed over another, so the old package steps
 * aside (".NAME.apubid-TASKID.old"), the new one takes its name, and the
 * old one is removed. A purged directory vanishes at once under
 * ".NAME.apubid-TASKID.purge", then is removed.
 *
 * Every server path is checked before it is used (absolute, no control
 * character); what a server answers is sorted into enum xfer_status by
 * xfer_curl.c.
 */
#include "xfer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The end's own: the session's URL and the protocol. */
struct xfer_remote_site {
	char *session; /* scheme://user:password@host:port/ */
	const struct xfer_ops *proto;
};

/* A stage on the server. */
struct xfer_remote_stage {
	char *final; /* the asset's final server path */
	char *stage; /* its stage: a directory, or a temporary file */
	char *old;   /* where a directory it replaces steps aside */
	int is_dir;
};

#define XR_SITE(e) ((struct xfer_remote_site *)(e)->site)
#define XR_X(e) ((struct xfer_curl *)(e)->conn)
#define XR_STAGE(e) ((struct xfer_remote_stage *)(e)->stage)

/* "/a/b" + "c/d" -> "/a/b/c/d"; an empty part adds nothing. */
static char *xfer_remote_join(const char *a, const char *b)
{
	if (!*b)
		return util_strdup(a);
	if (!*a || strcmp(a, "/") == 0)
		return util_printf("/%s", b);
	return util_printf("%s/%s", a, b);
}

/* The hidden names beside the final one: ".NAME.apubid-TASKID.SUFFIX". */
static char *xfer_remote_side_name(const char *final, const char *taskid, const char *suffix)
{
	const char *slash = strrchr(final, '/');
	size_t dirlen = slash ? (size_t)(slash - final) + 1 : 0;
	return util_printf("%.*s.%s.apubid-%s.%s", (int)dirlen, final, final + dirlen, taskid,
			   suffix);
}

/* ---- the site ---------------------------------------------------------- */

/* The user and password for a server: the URL's own, else the first
 * [credentials] entry for the same scheme, host and port. */
static void xfer_remote_credentials(const struct config *c, const struct url *u, char **user,
				    char **password)
{
	*user = util_strdup(u->user);
	*password = util_strdup(u->password);
	if (u->user)
		return;
	int port = url_default_port(u);
	for (int i = 0; i < c->ncredentials; i++) {
		struct url k;
		if (url_parse(c->credentials[i], &k, NULL, 0) < 0)
			continue;
		int kport = url_default_port(&k);
		if (strcmp(k.scheme, u->scheme) == 0 && strcasecmp(k.host, u->host) == 0 &&
		    kport == port && k.user) {
			*user = util_strdup(k.user);
			*password = util_strdup(k.password);
			url_free(&k);
			return;
		}
		url_free(&k);
	}
}

/* The table of a protocol by scheme; an http(s) server is read as a
 * plain HTTP origin and written as a WebDAV root. */
static const struct xfer_ops *xfer_remote_proto(const char *scheme, int is_source)
{
	if (strcmp(scheme, "ftp") == 0 || strcmp(scheme, "ftps") == 0)
		return &xfer_ftp_ops;
	if (strcmp(scheme, "sftp") == 0)
		return &xfer_sftp_ops;
	return is_source ? &xfer_http_ops : &xfer_dav_ops;
}

static int xfer_remote_init(const struct config *c, struct xfer_end *e, const struct url *u,
			    int is_source, char *err, size_t errlen)
{
	char *user, *password;
	xfer_remote_credentials(c, u, &user, &password);
	int port = url_default_port(u);
	int v6 = strchr(u->host, ':') != NULL;
	char *auth = NULL;
	if (user) {
		char *eu = url_encode_userinfo(user);
		char *ep = password ? url_encode_userinfo(password) : NULL;
		auth = util_printf("%s%s%s@", eu, ep ? ":" : "", ep ? ep : "");
		free(eu);
		free(ep);
	}
	struct xfer_remote_site *s = util_calloc(1, sizeof *s);
	s->proto = xfer_remote_proto(u->scheme, is_source);
	s->session = util_printf("%s://%s%s%s%s:%d/", u->scheme, auth ? auth : "",
				 v6 ? "[" : "", u->host, v6 ? "]" : "", port);
	e->site = s;
	e->key = util_printf("%s://%s%s%s:%d", u->scheme, v6 ? "[" : "", u->host, v6 ? "]" : "",
			     port);
	e->show = url_mask(s->session);
	size_t n = strlen(e->show);
	if (n > 0 && e->show[n - 1] == '/')
		e->show[n - 1] = '\0';
	/* A package is planned from its manifest where the source lists
	 * nothing (an HTTP origin). */
	e->caps = s->proto->caps;
	if (s->proto->plan && !(s->proto->caps & XFER_CAN_LIST))
		e->caps |= XFER_PLANS;
	if (s->proto->stage_list)
		e->caps |= XFER_STAGE_LISTS;
	free(auth);
	free(user);
	free(password);
	return XS_OK;
}

static void xfer_remote_release(struct xfer_end *e)
{
	struct xfer_remote_site *s = XR_SITE(e);
	if (s)
		free(s->session);
	free(s);
	e->site = NULL;
}

/* struct xfer_curl_opts allow for a source: a URL a package's manifest
 * names is held to the rules of a SourceAssetUrl. */
static int xfer_remote_source_allowed(void *arg, const char *url, char *err, size_t errlen)
{
	char *local = NULL;
	int is_dir = 0;
	if (asset_source(arg, url, &local, &is_dir, err, errlen) < 0)
		return -1;
	free(local);
	return 0;
}

static int xfer_remote_connect(const struct config *c, struct xfer_end *e,
			       volatile sig_atomic_t *stop, int is_source, char *err,
			       size_t errlen)
{
	if (e->conn)
		return XS_OK;
	struct xfer_curl_opts o = {
		.ca_file = c->ca_file,
		.ssh_private_key = c->ssh_private_key,
		.ssh_public_key = c->ssh_public_key,
		.ssh_known_hosts = c->ssh_known_hosts,
		.connect_timeout = c->connect_timeout,
		.stall_timeout = c->stall_timeout,
		.stop = stop,
		.refuse_private = is_source && c->refuse_private_sources,
		.allow = is_source ? xfer_remote_source_allowed : NULL,
		.allow_arg = (void *)c,
	};
	e->conn = xfer_curl_open(XR_SITE(e)->session, &o, err, errlen);
	return e->conn ? XS_OK : XS_PERMANENT;
}

static void xfer_remote_disconnect(struct xfer_end *e)
{
	if (e->conn)
		xfer_curl_close(XR_X(e));
	e->conn = NULL;
}

/* ---- server paths ------------------------------------------------------ */

/* The protocol's operations on absolute server paths, each path checked
 * first. */
static int xfer_remote_stat_at(struct xfer_end *e, const char *path, int *is_dir,
			       int64_t *size, char *err, size_t errlen)
{
	*is_dir = 0;
	*size = -1;
	int rc = xfer_curl_check_path(XR_X(e), path, err, errlen);
	return rc != XS_OK ? rc : XR_SITE(e)->proto->stat(XR_X(e), path, is_dir, size, err, errlen);
}

static int xfer_remote_mkdir_at(struct xfer_end *e, const char *dir, char *err, size_t errlen)
{
	char *d = util_printf("%s/", dir);
	int rc = xfer_curl_check_path(XR_X(e), d, err, errlen);
	if (rc == XS_OK)
		rc = XR_SITE(e)->proto->mkdir(XR_X(e), d, err, errlen);
	free(d);
	return rc;
}

static int xfer_remote_rename_at(struct xfer_end *e, const char *from, const char *to,
				 char *err, size_t errlen)
{
	int rc = xfer_curl_check_path(XR_X(e), from, err, errlen);
	if (rc == XS_OK)
		rc = xfer_curl_check_path(XR_X(e), to, err, errlen);
	if (rc != XS_OK || strcmp(from, to) == 0)
		return rc;
	return XR_SITE(e)->proto->rename(XR_X(e), from, to, err, errlen);
}

static int xfer_remote_remove_at(struct xfer_end *e, const char *path, int is_dir, char *err,
				 size_t errlen)
{
	int rc = xfer_curl_check_path(XR_X(e), path, err, errlen);
	return rc != XS_OK ? rc : XR_SITE(e)->proto->remove(XR_X(e), path, is_dir, err, errlen);
}

/* ---- a source ---------------------------------------------------------- */

static void xfer_remote_add(struct xfer_entry **v, int *n, int *cap, char *name, int is_dir,
			    int64_t size)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		struct xfer_entry *nv = realloc(*v, (size_t)*cap * sizeof *nv);
		if (!nv)
			abort();
		*v = nv;
	}
	(*v)[(*n)++] = (struct xfer_entry){ .name = name, .is_dir = is_dir, .size = size };
}

/* A directory tree, breadth first, one listing per directory. */
static int xfer_remote_list_tree(struct xfer_end *e, struct xfer_entry **v, int *n, char *err,
				 size_t errlen)
{
	const struct xfer_ops *p = XR_SITE(e)->proto;
	if (!(p->caps & XFER_CAN_LIST)) {
		snprintf(err, errlen, "%s%s/: directory listing is not supported over %s", e->show,
			 e->path, p->name);
		return XS_PERMANENT;
	}
	int cap = 0, rc = XS_OK;
	char **queue = util_calloc(1, sizeof *queue);
	int qlen = 1, qhead = 0;
	queue[0] = util_strdup("");
	while (qhead < qlen && rc == XS_OK) {
		char *rel = queue[qhead++];
		char *abs = xfer_remote_join(e->path, rel);
		char *dir = util_printf("%s/", abs);
		struct xfer_entry *ents = NULL;
		int ne = 0;
		rc = p->list(XR_X(e), dir, &ents, &ne, err, errlen);
		for (int i = 0; rc == XS_OK && i < ne; i++) {
			char *path = *rel ? util_printf("%s/%s", rel, ents[i].name)
					  : util_strdup(ents[i].name);
			if (ents[i].is_dir) {
				queue = realloc(queue, (size_t)(qlen + 1) * sizeof *queue);
				if (!queue)
					abort();
				queue[qlen++] = util_strdup(path);
			}
			xfer_remote_add(v, n, &cap, path, ents[i].is_dir,
					ents[i].is_dir ? -1 : ents[i].size);
		}
		xfer_curl_free_entries(ents, ne);
		free(abs);
		free(dir);
	}
	for (int i = 0; i < qlen; i++)
		free(queue[i]);
	free(queue);
	return rc;
}

static int xfer_remote_list(struct xfer_end *e, int is_dir, struct xfer_entry **entries, int *n,
			    char *err, size_t errlen)
{
	*entries = NULL;
	*n = 0;
	if (is_dir)
		return xfer_remote_list_tree(e, entries, n, err, errlen);
	int dir = 0, cap = 0;
	int64_t size = -1;
	int rc = xfer_remote_stat_at(e, e->path, &dir, &size, err, errlen);
	if (rc == XS_OK && dir) {
		snprintf(err, errlen, "source %s%s is a directory: name it with a trailing '/'",
			 e->show, e->path);
		rc = XS_PERMANENT;
	}
	if (rc == XS_OK)
		xfer_remote_add(entries, n, &cap, util_strdup(""), 0, size);
	return rc;
}

static int xfer_remote_plan(struct xfer_end *e, const char *path, struct xfer_entry **entries,
			    int *n, char *err, size_t errlen)
{
	return XR_SITE(e)->proto->plan(XR_X(e), path, entries, n, err, errlen);
}

static int xfer_remote_version(struct xfer_end *e, const char *rel, int fd,
			       struct xfer_version *v, char *err, size_t errlen)
{
	char *path = xfer_remote_join(e->path, rel);
	int rc = XR_SITE(e)->proto->version(XR_X(e), path, v, err, errlen);
	free(path);
	return rc;
}

static int xfer_remote_get(struct xfer_end *e, const char *rel, int fd, int64_t offset,
			   const struct xfer_version *expect,
			   int (*on_data)(void *arg, const char *buf, size_t n), void *arg, char *err,
			   size_t errlen)
{
	char *path = xfer_remote_join(e->path, rel);
	int rc = XR_SITE(e)->proto->get(XR_X(e), path, fd, offset, expect, on_data, arg, err,
					errlen);
	free(path);
	return rc;
}

/* ---- a destination ----------------------------------------------------- */

static int xfer_remote_stage(struct xfer_end *e, const struct task *t, int resume,
			     const struct xfer_end *src, int *found, char *err, size_t errlen)
{
	struct xfer_remote_stage *st = util_calloc(1, sizeof *st);
	int is_dir = t->dest_is_dir;
	st->is_dir = is_dir;
	st->final = xfer_remote_join(e->path, t->dest_path);
	st->stage = xfer_remote_side_name(st->final, t->id, is_dir ? "stage" : "tmp");
	st->old = xfer_remote_side_name(st->final, t->id, "old");
	e->stage = st;
	*found = 0;
	/* Parent directories below the root, one level at a time. */
	const char *rel = t->dest_path;
	for (const char *p = strchr(rel, '/'); p; p = strchr(p + 1, '/')) {
		char *part = util_strndup(rel, (size_t)(p - rel));
		char *dir = xfer_remote_join(e->path, part);
		int rc = xfer_remote_mkdir_at(e, dir, err, errlen);
		free(part);
		free(dir);
		if (rc != XS_OK)
			return rc;
	}
	int found_dir = 0, rc = XS_NOTFOUND;
	int64_t size;
	if (resume)
		rc = xfer_remote_stat_at(e, st->stage, &found_dir, &size, err, errlen);
	if (rc == XS_OK && found_dir != is_dir)
		xfer_remote_remove_at(e, st->stage, found_dir, err, errlen);
	else if (rc == XS_OK)
		*found = 1;
	else if (rc != XS_NOTFOUND)
		return rc;
	return is_dir ? xfer_remote_mkdir_at(e, st->stage, err, errlen) : XS_OK;
}

static int xfer_remote_mkdir(struct xfer_end *e, const char *rel, char *err, size_t errlen)
{
	char *dir = xfer_remote_join(XR_STAGE(e)->stage, rel);
	int rc = xfer_remote_mkdir_at(e, dir, err, errlen);
	free(dir);
	return rc;
}

static int xfer_remote_put(struct xfer_end *e, const char *rel, int fd, int64_t offset,
			   int64_t size, int (*on_data)(void *arg, const char *buf, size_t n),
			   void *arg, char *err, size_t errlen)
{
	char *target = xfer_remote_join(XR_STAGE(e)->stage, rel);
	int rc = XR_SITE(e)->proto->put(XR_X(e), target, fd, offset, size, on_data, arg, err,
					errlen);
	free(target);
	return rc;
}

static int xfer_remote_stat(struct xfer_end *e, const char *rel, int *is_dir, int64_t *size,
			    char *err, size_t errlen)
{
	char *path = xfer_remote_join(XR_STAGE(e)->stage, rel);
	int rc = xfer_remote_stat_at(e, path, is_dir, size, err, errlen);
	free(path);
	return rc;
}

static int xfer_remote_stage_list(struct xfer_end *e, const char *rel,
				  struct xfer_entry **entries, int *n, char *err, size_t errlen)
{
	char *abs = xfer_remote_join(XR_STAGE(e)->stage, rel);
	char *d = util_printf("%s/", abs);
	int rc = XR_SITE(e)->proto->stage_list(XR_X(e), d, entries, n, err, errlen);
	free(d);
	free(abs);
	return rc;
}

static int xfer_remote_remove(struct xfer_end *e, const char *rel, int is_dir, char *err,
			      size_t errlen)
{
	char *path = xfer_remote_join(XR_STAGE(e)->stage, rel);
	int rc = xfer_remote_remove_at(e, path, is_dir, err, errlen);
	free(path);
	return rc;
}

static int xfer_remote_commit(struct xfer_end *e, const struct item *items, int nitems,
			      char **note, char *err, size_t errlen)
{
	struct xfer_remote_stage *st = XR_STAGE(e);
	if (!st->is_dir)
		return xfer_remote_rename_at(e, st->stage, st->final, err, errlen);
	/* A directory cannot be renamed over another: the old package steps
	 * aside, the new one takes its name, the old one is removed. */
	const char *old = st->old;
	int is_dir = 0, rc;
	int64_t size;
	rc = xfer_remote_stat_at(e, st->final, &is_dir, &size, err, errlen);
	if (rc == XS_OK) {
		int old_dir;
		if (xfer_remote_stat_at(e, old, &old_dir, &size, err, errlen) == XS_OK)
			xfer_remote_remove_at(e, old, old_dir, err, errlen);
		rc = xfer_remote_rename_at(e, st->final, old, err, errlen);
	} else if (rc == XS_NOTFOUND) {
		rc = XS_OK;
		is_dir = -1;
	}
	if (rc == XS_OK)
		rc = xfer_remote_rename_at(e, st->stage, st->final, err, errlen);
	if (rc == XS_OK && is_dir >= 0) {
		char why[512];
		if (xfer_remote_remove_at(e, old, is_dir, why, sizeof why) != XS_OK)
			*note = util_printf("the replaced asset could not be removed entirely: %s",
					    why);
	}
	return rc;
}

static void xfer_remote_unstage(struct xfer_end *e, int discard)
{
	struct xfer_remote_stage *st = XR_STAGE(e);
	if (!st)
		return;
	if (discard && e->conn) {
		char why[256];
		xfer_remote_remove_at(e, st->stage, st->is_dir, why, sizeof why);
	}
	free(st->final);
	free(st->stage);
	free(st->old);
	free(st);
	e->stage = NULL;
}

static int xfer_remote_purge(struct xfer_end *e, const struct task *t, char **note, char *err,
			     size_t errlen)
{
	char *final = xfer_remote_join(e->path, t->dest_path);
	char *aside = NULL;
	int is_dir = 0;
	int64_t size;
	int rc = xfer_remote_stat_at(e, final, &is_dir, &size, err, errlen);
	if (rc == XS_NOTFOUND) {
		*note = util_printf("nothing to purge: %s was not there", t->dest_path);
		rc = XS_OK;
	} else if (rc == XS_OK && !is_dir) {
		rc = xfer_remote_remove_at(e, final, 0, err, errlen);
		if (rc == XS_NOTFOUND) {
			*note = util_printf("nothing to purge: %s was not there", t->dest_path);
			rc = XS_OK;
		}
	} else if (rc == XS_OK) {
		/* A directory vanishes at once under a hidden name, then is
		 * removed. */
		aside = xfer_remote_side_name(final, t->id, "purge");
		rc = xfer_remote_rename_at(e, final, aside, err, errlen);
		if (rc == XS_OK || rc == XS_NOTFOUND) {
			int r = xfer_remote_remove_at(e, aside, 1, err, errlen);
			if (r != XS_OK && r != XS_NOTFOUND && rc == XS_OK)
				*note = util_printf("%s was removed, but some of its files could "
						    "not be deleted: %s",
						    t->dest_path, err);
			rc = XS_OK;
		}
	}
	free(final);
	free(aside);
	return rc;
}

static void xfer_remote_abandon(struct xfer_end *e, const struct task *t)
{
	char *final = xfer_remote_join(e->path, t->dest_path);
	char *stage = xfer_remote_side_name(final, t->id, t->dest_is_dir ? "stage" : "tmp");
	char why[512];
	xfer_remote_remove_at(e, stage, t->dest_is_dir, why, sizeof why);
	free(final);
	free(stage);
}

const struct xfer_end_ops xfer_remote_end = {
	.init = xfer_remote_init,
	.release = xfer_remote_release,
	.connect = xfer_remote_connect,
	.disconnect = xfer_remote_disconnect,
	.list = xfer_remote_list,
	.plan = xfer_remote_plan,
	.version = xfer_remote_version,
	.get = xfer_remote_get,
	.stage = xfer_remote_stage,
	.mkdir = xfer_remote_mkdir,
	.put = xfer_remote_put,
	.stat = xfer_remote_stat,
	.stage_list = xfer_remote_stage_list,
	.remove = xfer_remote_remove,
	.commit = xfer_remote_commit,
	.unstage = xfer_remote_unstage,
	.purge = xfer_remote_purge,
	.abandon = xfer_remote_abandon,
};

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
 *   stage_list PROPFIND "dir/" with Depth: 1 asking for resourcetype and
 *           getcontentlength (nginx needs its dav-ext module for PROPFIND);
 *           the multistatus is read with libxml2, without network access
 *
 * An upload cannot continue a partial one (PUT has no append), so a
 * resumed upload starts from its first byte. The stage is listed once
 * per directory before the commit, like an FTP or SFTP stage, so that a
 * short or missing file is copied again and a file the plan does not
 * name never reaches the final name.
 */
#include "xfer.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
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

static const char xfer_dav_propfind[] =
	"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
	"<D:propfind xmlns:D=\"DAV:\"><D:prop><D:resourcetype/><D:getcontentlength/>"
	"</D:prop></D:propfind>\n";

/* Whether node is the DAV: element `name`. */
static int xfer_dav_is(const xmlNode *node, const char *name)
{
	return node && node->type == XML_ELEMENT_NODE && node->ns && node->ns->href &&
	       strcmp((const char *)node->ns->href, "DAV:") == 0 &&
	       strcmp((const char *)node->name, name) == 0;
}

/* The first DAV: element `name` at or below node, depth first. */
static const xmlNode *xfer_dav_find(const xmlNode *node, const char *name)
{
	for (const xmlNode *c = node; c; c = c->next) {
		if (xfer_dav_is(c, name))
			return c;
		const xmlNode *hit = c->type == XML_ELEMENT_NODE ? xfer_dav_find(c->children, name)
								  : NULL;
		if (hit)
			return hit;
	}
	return NULL;
}

/* An href's path, percent-decoded, without scheme and authority and
 * without a trailing '/' (but "/" stays "/"); malloc'ed. */
static char *xfer_dav_href_path(const char *href)
{
	const char *p = strstr(href, "://");
	if (p) {
		p = strchr(p + 3, '/');
		href = p ? p : "/";
	}
	size_t n = strlen(href);
	char *out = util_malloc(n + 1), *o = out;
	for (size_t i = 0; i < n; i++) {
		static const char hex[] = "0123456789abcdef0123456789ABCDEF";
		const char *h1, *h2;
		if (href[i] == '%' && href[i + 1] && href[i + 2] &&
		    (h1 = strchr(hex, href[i + 1])) && (h2 = strchr(hex, href[i + 2]))) {
			*o++ = (char)(((h1 - hex) % 16) * 16 + (h2 - hex) % 16);
			i += 2;
		} else {
			*o++ = href[i];
		}
	}
	*o = '\0';
	while (o - out > 1 && o[-1] == '/')
		*--o = '\0';
	return out;
}

static int xfer_dav_stage_list(struct xfer_curl *x, const char *dir, struct xfer_entry **entries,
			       int *n, char *err, size_t errlen)
{
	*entries = NULL;
	*n = 0;
	char *d = xfer_curl_slash(dir);
	const char *headers[] = { "Depth: 1", "Content-Type: application/xml; charset=utf-8",
				  NULL };
	char *body = NULL;
	size_t len = 0;
	int rc = xfer_curl_request_reply(x, "PROPFIND", d, headers, xfer_dav_propfind, &body,
					 &len, 1, err, errlen);
	char *self = xfer_dav_href_path(d);
	xmlDoc *doc = NULL;
	int cap = 0;
	if (rc != XS_OK)
		goto out;
	doc = xmlReadMemory(body, (int)len, "multistatus.xml", NULL,
			    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	const xmlNode *top = doc ? xmlDocGetRootElement(doc) : NULL;
	if (!xfer_dav_is(top, "multistatus")) {
		rc = xfer_curl_fail(x, XS_TRANSIENT, d, err, errlen,
				    "the answer to PROPFIND is not a WebDAV multistatus");
		goto out;
	}
	for (const xmlNode *r = top->children; r; r = r->next) {
		if (!xfer_dav_is(r, "response"))
			continue;
		const xmlNode *href = xfer_dav_find(r->children, "href");
		xmlChar *text = href ? xmlNodeGetContent(href) : NULL;
		char *path = xfer_dav_href_path(text ? (const char *)text : "");
		xmlFree(text);
		const char *slash = strrchr(path, '/');
		const char *name = slash ? slash + 1 : path;
		if (strcmp(path, self) == 0 || !*name) {
			free(path);
			continue;
		}
		int64_t size = -1;
		const xmlNode *cl = xfer_dav_find(r->children, "getcontentlength");
		xmlChar *cltext = cl ? xmlNodeGetContent(cl) : NULL;
		if (cltext && *cltext)
			size = strtoll((const char *)cltext, NULL, 10);
		xmlFree(cltext);
		const xmlNode *rt = xfer_dav_find(r->children, "resourcetype");
		int is_dir = rt && xfer_dav_find(rt->children, "collection") != NULL;
		if (*n == cap) {
			cap = cap ? cap * 2 : 32;
			struct xfer_entry *v = util_calloc((size_t)cap, sizeof *v);
			if (*entries)
				memcpy(v, *entries, (size_t)*n * sizeof *v);
			free(*entries);
			*entries = v;
		}
		(*entries)[(*n)++] = (struct xfer_entry){ .name = util_strdup(name),
							  .is_dir = is_dir,
							  .size = is_dir ? -1 : size };
		free(path);
	}
out:
	if (rc != XS_OK) {
		xfer_curl_free_entries(*entries, *n);
		*entries = NULL;
		*n = 0;
	}
	xmlFreeDoc(doc);
	free(self);
	free(body);
	free(d);
	return rc;
}

const struct xfer_ops xfer_dav_ops = {
	.name = "webdav",
	.caps = XFER_CAN_WRITE,
	.list = NULL,
	.stage_list = xfer_dav_stage_list,
	.version = xfer_curl_version,
	.get = xfer_curl_get,
	.put = xfer_curl_put,
	.plan = NULL,
	.stat = xfer_dav_stat,
	.mkdir = xfer_dav_mkdir,
	.rename = xfer_dav_rename,
	.remove = xfer_dav_remove,
};

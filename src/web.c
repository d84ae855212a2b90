/*
 * web.c - what apubid answers to HTTP GET:
 *
 *   <endpoint>?wsdl, <endpoint>?xsd   the APUBI contract (text/xml)
 *   /tasks/ID.json, /tasks/ID.xml    one task (view.c); ?status_only=true
 *                                    for the bare status
 *   /tasks, /tasks.json, /tasks.xml  a page of tasks, newest first;
 *                                    ?state= &kind= &limit= &before=
 *   /healthz                         200 "ok", or 503 with the reason
 *                                    (store, workers, a local root gone)
 *   /metrics                         Prometheus text format (metrics.c)
 *
 * The WSDL's service address and schema location are rewritten to the
 * address the client reached (its Host header, when that is a plain
 * host[:port], and https:// when the connection is TLS), so a client
 * generated from ?wsdl talks to the right place behind any port mapping.
 * Behind a TLS proxy or load balancer the address the client reached is
 * not apubid's own: [server] public_endpoint, when set, is advertised as
 * is instead.
 * Other queries on the endpoint are 405 (it takes POST); any other path is
 * a 404 fault. HEAD gets what GET would, without the body, so that a load
 * balancer probing /healthz with HEAD sees the 503 too.
 *
 * Every route sits behind the same authentication as SOAP: server.c checks
 * credentials when the request line and headers are parsed, before the
 * engine calls web_get. The views and lists answer their errors (404 for an
 * unknown task, 400 for a bad parameter) in their own format, not as SOAP
 * faults: their clients are operators' tools, not the WFM. A parameter
 * apubid does not know is refused rather than ignored, so that a typo
 * ("stat=failed") cannot quietly list every task.
 */
#include "apubid.h"

#include "soapH.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define WEB_WSDL_ADDRESS "http://localhost:8080/apubi"
#define WEB_XSD_LOCATION "schemaLocation=\"APUBI.xsd\""

#define WEB_JSON "application/json"
#define WEB_XML "application/xml; charset=utf-8"
#define WEB_TEXT "text/plain; charset=utf-8"
#define WEB_METRICS "text/plain; version=0.0.4; charset=utf-8"

/* Returns 1 when a Host header value is safe to echo into XML and URLs. */
static int web_host_ok(const char *h, size_t n)
{
	if (n == 0 || n > 255)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = h[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == ':' ||
		      ch == '[' || ch == ']'))
			return 0;
	}
	return 1;
}

/* "http://host:port" (https:// over TLS) as the client reached it;
 * malloc'ed. The scheme comes from the connection itself, not from what
 * the client wrote. */
static char *web_base(struct soap *soap, const struct config *c)
{
	const char *e = soap->endpoint;
	const char *scheme = c->tls_cert_file ? "https" : "http";
	const char *h = strstr(e, "://");
	if (h) {
		h += 3;
		size_t n = strcspn(h, "/?");
		if (web_host_ok(h, n))
			return util_printf("%s://%.*s", scheme, (int)n, h);
	}
	if (strchr(c->listen_host, ':'))
		return util_printf("%s://[%s]:%d", scheme, c->listen_host, c->listen_port);
	return util_printf("%s://%s:%d", scheme, c->listen_host, c->listen_port);
}

/* Replaces the first occurrence of `from` in `text` by `to`; malloc'ed. */
static char *web_replace(const char *text, const char *from, const char *to)
{
	const char *at = strstr(text, from);
	if (!at)
		return util_strdup(text);
	return util_printf("%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
}

/* Set while web_head runs web_get: answers get their status line and
 * headers (Content-Length included) but no body. Serving threads answer
 * one request at a time, so a thread-local flag is enough. */
static __thread int web_head_only;

/* Sends `body` with an HTTP status and content type; returns SOAP_OK when
 * it went out (the engine then takes the request as answered). */
static int web_send_status(struct soap *soap, int status, const char *type, const char *body)
{
	size_t len = strlen(body);
	soap->http_content = type;
	soap->length = len;
	if (soap_response(soap, status == 200 ? SOAP_FILE : SOAP_FILE + status) ||
	    (!web_head_only && soap_send_raw(soap, body, len)) || soap_end_send(soap))
		return soap->error;
	return SOAP_OK;
}

/* A SOAP fault with an HTTP status for GET; for HEAD, the status alone
 * (a fault is a body). */
static int web_fault(struct soap *soap, int status, const char *msg)
{
	if (web_head_only)
		return web_send_status(soap, status, "text/xml; charset=utf-8", "");
	svc_fault(soap, 1, msg);
	return status;
}

static int web_send(struct soap *soap, const char *body)
{
	return web_send_status(soap, 200, "text/xml; charset=utf-8", body);
}

/* Sends a malloc'ed body and frees it. */
static int web_send_owned(struct soap *soap, int status, const char *type, char *body)
{
	int rc = web_send_status(soap, status, type, body);
	free(body);
	return rc;
}

/* An error document in a view's format. */
static int web_view_error(struct soap *soap, int format, int status, const char *msg)
{
	return web_send_owned(soap, status, format == VIEW_XML ? WEB_XML : WEB_JSON,
			      view_error(format, msg));
}

/* Decodes one query component (%XX, '+' for space) into out; returns -1
 * for a bad escape, an encoded NUL, or a value longer than outlen - 1. */
static int web_decode(const char *s, size_t n, char *out, size_t outlen)
{
	size_t j = 0;
	for (size_t i = 0; i < n; i++) {
		int ch = (unsigned char)s[i];
		if (ch == '+') {
			ch = ' ';
		} else if (ch == '%') {
			if (i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) ||
			    !isxdigit((unsigned char)s[i + 2]))
				return -1;
			char hex[3] = { s[i + 1], s[i + 2], '\0' };
			ch = (int)strtol(hex, NULL, 16);
			if (ch == 0)
				return -1;
			i += 2;
		}
		if (j + 1 >= outlen)
			return -1;
		out[j++] = (char)ch;
	}
	out[j] = '\0';
	return 0;
}

/* Walks "k=v&k=v": each call fills the next key and value (decoded) and
 * returns 1, 0 at the end, -1 for a malformed pair (its raw text in key). */
static int web_query_next(const char **q, char *key, size_t keylen, char *val, size_t vallen)
{
	while (*q && **q == '&')
		(*q)++;
	if (!*q || !**q)
		return 0;
	const char *p = *q;
	size_t n = strcspn(p, "&");
	*q = p + n;
	const char *eq = memchr(p, '=', n);
	size_t kn = eq ? (size_t)(eq - p) : n;
	if (web_decode(p, kn, key, keylen) < 0) {
		snprintf(key, keylen, "%.*s", (int)(kn < 40 ? kn : 40), p);
		return -1;
	}
	if (web_decode(eq ? eq + 1 : "", eq ? n - kn - 1 : 0, val, vallen) < 0)
		return -1;
	return 1;
}

/* A decimal integer in [min, max], nothing else. */
static int web_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
	if (!*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 18)
		return -1;
	errno = 0;
	long long v = strtoll(s, NULL, 10);
	if (errno || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Makes a parameter value fit for an error message: printable ASCII only,
 * and short. */
static void web_printable(char *s)
{
	size_t n = 0;
	for (char *p = s; *p && n < 64; p++, n++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			*p = '?';
	s[n] = '\0';
}

/* GET /tasks/ID.json|.xml[?status_only=true]; `id` is "ID.json". */
static int web_task(struct soap *soap, struct conn *cn, const char *name, size_t n,
		    const char *query)
{
	int format;
	if (n > 5 && memcmp(name + n - 5, ".json", 5) == 0) {
		format = VIEW_JSON;
		n -= 5;
	} else if (n > 4 && memcmp(name + n - 4, ".xml", 4) == 0) {
		format = VIEW_XML;
		n -= 4;
	} else {
		return web_view_error(soap, VIEW_JSON, 404,
				      "no such resource: a task is at /tasks/ID.json or /tasks/ID.xml");
	}
	char id[TASKID_LEN];
	if (util_taskid_parse(name, n, id) < 0)
		return web_view_error(soap, format, 404, "no such task: a TaskId is a UUID");
	snprintf(cn->taskid, sizeof cn->taskid, "%s", id);

	int status_only = 0;
	char key[64], val[64], msg[200];
	const char *q = query;
	int r;
	while ((r = web_query_next(&q, key, sizeof key, val, sizeof val)) != 0) {
		if (r > 0 && strcmp(key, "status_only") == 0 &&
		    (strcmp(val, "true") == 0 || strcmp(val, "false") == 0 ||
		     strcmp(val, "1") == 0 || strcmp(val, "0") == 0)) {
			status_only = val[0] == 't' || val[0] == '1';
			continue;
		}
		web_printable(key);
		if (r > 0 && strcmp(key, "status_only") == 0)
			snprintf(msg, sizeof msg, "status_only must be true or false");
		else
			snprintf(msg, sizeof msg,
				 "unknown parameter \"%s\": a task view takes only status_only", key);
		return web_view_error(soap, format, 400, msg);
	}

	char *out;
	int rc = view_task(cn->store, id, format, status_only, &out);
	if (rc == 1) {
		snprintf(msg, sizeof msg, "Task Id does not exist: %s", id);
		return web_view_error(soap, format, 404, msg);
	}
	if (rc < 0)
		return web_view_error(soap, format, 500, "internal error: the task store cannot be read");
	return web_send_owned(soap, 200, format == VIEW_XML ? WEB_XML : WEB_JSON, out);
}

/* GET /tasks[.json|.xml]?state=&kind=&limit=&before= */
static int web_list(struct soap *soap, struct conn *cn, int format, const char *query)
{
	struct task_filter f = { .state = -1, .kind = 0, .limit = 100 };
	char key[64], val[64], msg[300];
	const char *q = query;
	int r;
	while ((r = web_query_next(&q, key, sizeof key, val, sizeof val)) != 0) {
		int64_t v;
		const char *bad = NULL;
		if (r < 0) {
			bad = "is malformed";
		} else if (strcmp(key, "state") == 0) {
			f.state = task_state_parse(val);
			if (f.state < 0)
				bad = "must be one of queued, running, retry, succeeded, failed, cancelled";
		} else if (strcmp(key, "kind") == 0) {
			f.kind = task_kind_parse(val);
			if (f.kind < 0)
				bad = "must be load or purge";
		} else if (strcmp(key, "limit") == 0) {
			if (web_int(val, 1, 1000, &v) < 0)
				bad = "must be a whole number from 1 to 1000";
			else
				f.limit = (int)v;
		} else if (strcmp(key, "before") == 0) {
			if (web_int(val, 1, INT64_MAX, &v) < 0)
				bad = "must be the \"next\" cursor of an earlier page";
			else
				f.before_seq = v;
		} else {
			web_printable(key);
			snprintf(msg, sizeof msg,
				 "unknown parameter \"%s\": a task list takes state, kind, limit and before",
				 key);
			return web_view_error(soap, format, 400, msg);
		}
		if (bad) {
			web_printable(key);
			snprintf(msg, sizeof msg, "parameter \"%s\" %s", key, bad);
			return web_view_error(soap, format, 400, msg);
		}
	}
	char *out;
	if (view_list(cn->store, &f, format, &out) < 0)
		return web_view_error(soap, format, 500, "internal error: the task store cannot be read");
	return web_send_owned(soap, 200, format == VIEW_XML ? WEB_XML : WEB_JSON, out);
}

/* Whether the last health check failed: a probe that runs every second
 * must not write a log line every second, only when the answer changes. */
static int web_unhealthy;

static int web_health_fail(struct soap *soap, const char *what, const char *why)
{
	if (!__atomic_exchange_n(&web_unhealthy, 1, __ATOMIC_RELAXED))
		log_warn("health check: %s: %s", what, why);
	return web_send_owned(soap, 503, WEB_TEXT, util_printf("unhealthy: %s: %s\n", what, why));
}

/* GET /healthz: the store takes writes, every worker is alive, and a
 * local destination root is still there (paths.c). */
static int web_health(struct soap *soap, struct conn *cn)
{
	char why[256];
	if (store_health(cn->store, why, sizeof why) < 0)
		return web_health_fail(soap, "store", why);
	if (pool_health(why, sizeof why) < 0)
		return web_health_fail(soap, "workers", why);
	if (paths_health(cn->cfg, why, sizeof why) < 0)
		return web_health_fail(soap, "destination", why);
	if (__atomic_exchange_n(&web_unhealthy, 0, __ATOMIC_RELAXED))
		log_info("health check: healthy again");
	return web_send_status(soap, 200, WEB_TEXT, "ok\n");
}

int web_get(struct soap *soap)
{
	struct conn *cn = soap->user;
	const struct config *c = cn->cfg;
	const char *path = soap->path;
	size_t plen = strcspn(path, "?");
	const char *query = path[plen] == '?' ? path + plen + 1 : NULL;

	cn->op = "GET";
	/* The SOAP endpoint first: a configured endpoint shadows a route of
	 * the same path, never the other way round. */
	if (plen != strlen(c->endpoint) || strncmp(path, c->endpoint, plen) != 0) {
		if (plen > 7 && strncmp(path, "/tasks/", 7) == 0) {
			cn->op = "view";
			return web_task(soap, cn, path + 7, plen - 7, query);
		}
		if ((plen == 6 && strncmp(path, "/tasks", 6) == 0) ||
		    (plen == 11 && strncmp(path, "/tasks.json", 11) == 0)) {
			cn->op = "view";
			return web_list(soap, cn, VIEW_JSON, query);
		}
		if (plen == 10 && strncmp(path, "/tasks.xml", 10) == 0) {
			cn->op = "view";
			return web_list(soap, cn, VIEW_XML, query);
		}
		if (plen == 8 && strncmp(path, "/healthz", 8) == 0) {
			cn->op = "healthz";
			return web_health(soap, cn);
		}
		if (plen == 8 && strncmp(path, "/metrics", 8) == 0) {
			cn->op = "metrics";
			return web_send_owned(soap, 200, WEB_METRICS, metrics_render(cn->store));
		}
		char msg[300];
		snprintf(msg, sizeof msg, "no such resource: %.200s", path);
		return web_fault(soap, 404, msg);
	}
	if (query && (strcmp(query, "wsdl") == 0 || strcmp(query, "WSDL") == 0)) {
		cn->op = "wsdl";
		char *base = c->public_endpoint ? util_strdup("") : web_base(soap, c);
		const char *path = c->public_endpoint ? c->public_endpoint : c->endpoint;
		char *address = util_printf("%s%s", base, path);
		char *location = util_printf("schemaLocation=\"%s%s?xsd\"", base, path);
		char *step = web_replace(embed_wsdl, WEB_WSDL_ADDRESS, address);
		char *wsdl = web_replace(step, WEB_XSD_LOCATION, location);
		int rc = web_send(soap, wsdl);
		free(base);
		free(address);
		free(location);
		free(step);
		free(wsdl);
		return rc;
	}
	if (query && (strcmp(query, "xsd") == 0 || strcmp(query, "XSD") == 0)) {
		cn->op = "xsd";
		return web_send(soap, embed_xsd);
	}
	return web_fault(soap, 405,
			 "the APUBI endpoint takes SOAP requests by POST; GET serves only ?wsdl and ?xsd");
}

int web_head(struct soap *soap)
{
	web_head_only = 1;
	int rc = web_get(soap);
	web_head_only = 0;
	return rc;
}

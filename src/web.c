/*
 * web.c - what apubid answers to HTTP GET: the WSDL at <endpoint>?wsdl and
 * the schema it imports at <endpoint>?xsd. The WSDL's service address and
 * schema location are rewritten to the address the client reached (its
 * Host header, when that is a plain host[:port], and https:// when the
 * connection is TLS), so a client generated from ?wsdl talks to the right
 * place behind any port mapping. Any other
 * path is 404; other queries on the endpoint are 405 (it takes POST).
 */
#include "apubid.h"

#include "soapH.h"

#include <stdlib.h>
#include <string.h>

#define WEB_WSDL_ADDRESS "http://localhost:8080/apubi"
#define WEB_XSD_LOCATION "schemaLocation=\"APUBI.xsd\""

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
	const char *scheme = soap->ssl ? "https" : "http";
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

static int web_send(struct soap *soap, const char *body)
{
	size_t len = strlen(body);
	soap->http_content = "text/xml; charset=utf-8";
	soap->length = len;
	if (soap_response(soap, SOAP_FILE) || soap_send_raw(soap, body, len) ||
	    soap_end_send(soap))
		return soap->error;
	return SOAP_OK;
}

int web_get(struct soap *soap)
{
	struct conn *cn = soap->user;
	const struct config *c = cn->cfg;
	const char *path = soap->path;
	size_t plen = strcspn(path, "?");
	const char *query = path[plen] == '?' ? path + plen + 1 : NULL;

	cn->op = "GET";
	if (plen != strlen(c->endpoint) || strncmp(path, c->endpoint, plen) != 0) {
		char msg[300];
		snprintf(msg, sizeof msg, "no such resource: %.200s", path);
		svc_fault(soap, 1, msg);
		return 404;
	}
	if (query && (strcmp(query, "wsdl") == 0 || strcmp(query, "WSDL") == 0)) {
		cn->op = "wsdl";
		char *base = web_base(soap, c);
		char *address = util_printf("%s%s", base, c->endpoint);
		char *location = util_printf("schemaLocation=\"%s%s?xsd\"", base, c->endpoint);
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
	svc_fault(soap, 1, "the APUBI endpoint takes SOAP requests by POST; GET serves only ?wsdl and ?xsd");
	return 405;
}

/*
 * conform.c - `apubictl conform`: runs, against any APUBI endpoint, the
 * sequences NAGRA's WFM runs, and says for each rule of the contract
 * whether the endpoint keeps it.
 *
 * The checks, in order (a later one may need an earlier one's result and
 * is then skipped, which is neither a pass nor a failure):
 *   wsdl             GET ?wsdl: the operations and elements of the contract
 *   load-taskid      LoadAsset answers 200 with a TaskId
 *   load-success     GetTaskStatus goes IN_PROGRESS... then SUCCESS in time
 *   load-destination that SUCCESS carries a DestinationAsset
 *   purge            PurgeAsset of it reaches SUCCESS in time
 *   unknown-taskid   an unknown TaskId is a fault with an HTTP error status
 *   success-200      every successful answer of the run came with HTTP 200
 *   fault-detail     every fault carries detail/ExceptionWS/message
 *   sample-quirks    the public samples' shape (ns2, whitespace) is accepted
 *   soap12           SOAP 1.2 (reported, not required)
 *
 * Requests are raw bytes built here in the shapes of the WFM's messages
 * (nothing is read from the source tree at run time), sent with libcurl
 * (HTTP or HTTPS, Basic or Digest as the server asks), and answers are read
 * with libxml2: a parser of its own, so a quirk of gSOAP, which the server
 * is built on, cannot hide a quirk of the server. Names are checked with
 * their namespaces, never their prefixes.
 *
 * Invariants: nothing secret is printed (URLs go through url_mask, an
 * Authorization header shows only its scheme); what comes from the network
 * is sanitised before it reaches a terminal or the JUnit file; each check
 * ends in exactly one of pass, fail or skip. Helpers carry the prefix cf_.
 */
#include "ctl.h"

#include <curl/curl.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/uri.h>
#include <libxml/xmlerror.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CF_NS "wfm:APUBI/v1/schemas"
#define CF_SOAP11 "http://schemas.xmlsoap.org/soap/envelope/"
#define CF_SOAP12 "http://www.w3.org/2003/05/soap-envelope"
#define CF_WSDL "http://schemas.xmlsoap.org/wsdl/"
#define CF_WSDL_SOAP "http://schemas.xmlsoap.org/wsdl/soap/"
#define CF_WSDL_SOAP12 "http://schemas.xmlsoap.org/wsdl/soap12/"
#define CF_XS "http://www.w3.org/2001/XMLSchema"
/* How much of an answer's body a report shows. */
#define CF_BODY_SHOWN 4096

/* ---- growing strings ---------------------------------------------------- */

static void cf_reset(struct util_buf *b)
{
	b->len = 0;
	if (b->p)
		b->p[0] = '\0';
}

/* Text from the network made fit for a terminal and for XML: valid UTF-8,
 * no control characters but tab and line feed (CR dropped). */
static char *cf_clean(const char *s, size_t n)
{
	char *c = util_utf8_sanitize(util_strndup(s, n));
	char *w = c;
	for (char *r = c; *r; r++)
		if (*r != '\r')
			*w++ = *r;
	*w = '\0';
	return c;
}

/* ---- one HTTP exchange ------------------------------------------------- */

struct cf_x {
	char *req_head;   /* request line and headers as sent (Authorization masked) */
	char *req_body;   /* the body as shown (passwords in URLs masked), or NULL */
	long status;      /* HTTP status of the answer, 0: none */
	char *resp_head;  /* status line and headers of the final answer */
	struct util_buf body;
	char *error;      /* why there was no answer */
	int soap12;       /* a SOAP 1.2 exchange (kept out of the run's tallies) */
};

static void cf_x_free(struct cf_x *x)
{
	free(x->req_head);
	free(x->req_body);
	free(x->resp_head);
	free(x->body.p);
	free(x->error);
	memset(x, 0, sizeof *x);
}

/* The request and the answer, as a report shows them: "> " before what
 * was sent, "< " before what came back, the body cut after a few KB. */
static char *cf_x_dump(const struct cf_x *x)
{
	struct util_buf b = { 0 };
	const char *parts[2] = { x->req_head, x->req_body };
	for (int i = 0; i < 2; i++) {
		if (!parts[i])
			continue;
		char *c = cf_clean(parts[i], strlen(parts[i]));
		for (char *line = strtok(c, "\n"); line; line = strtok(NULL, "\n"))
			util_buf_addf(&b, "> %s\n", line);
		if (i == 0)
			util_buf_addf(&b, ">\n");
		free(c);
	}
	if (!x->status) {
		util_buf_addf(&b, "< (no answer: %s)\n", x->error ? x->error : "unknown error");
		return b.p;
	}
	if (x->resp_head) {
		char *c = cf_clean(x->resp_head, strlen(x->resp_head));
		for (char *line = strtok(c, "\n"); line; line = strtok(NULL, "\n"))
			util_buf_addf(&b, "< %s\n", line);
		free(c);
	}
	util_buf_addf(&b, "<\n");
	size_t shown = x->body.len < CF_BODY_SHOWN ? x->body.len : CF_BODY_SHOWN;
	if (shown) {
		char *c = cf_clean(x->body.p, shown);
		char *save = NULL;
		for (char *line = strtok_r(c, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
			util_buf_addf(&b, "< %s\n", line);
		free(c);
	}
	if (x->body.len > shown)
		util_buf_addf(&b, "< [... %zu more bytes]\n", x->body.len - shown);
	if (!x->body.len)
		util_buf_addf(&b, "< (empty body)\n");
	return b.p;
}

/* ---- the run ---------------------------------------------------------- */

enum { CF_PENDING, CF_PASS, CF_FAIL, CF_SKIP };

enum {
	C_WSDL, C_LOAD_TASKID, C_LOAD_SUCCESS, C_LOAD_DEST, C_PURGE, C_UNKNOWN, C_SUCCESS_200,
	C_FAULT_DETAIL, C_QUIRKS, C_SOAP12, C_COUNT
};

struct cf_check {
	const char *id, *title;
	int required;
	int result;
	char *note;     /* why it failed or was skipped; on a pass, what was seen */
	char *exchange; /* the request and answer behind a failure */
	double secs;
};

struct cf_run {
	const struct conform_opts *o;
	CURL *curl;
	struct curl_slist *h11, *h12, *hget;
	struct util_buf head_out, head_in; /* filled by libcurl's callbacks */
	struct cf_check c[C_COUNT];
	/* Tallies over every SOAP 1.1 answer of the run. */
	int successes, faults;
	char *bad200, *bad200_dump;     /* the first breach of "success is 200" */
	char *nodetail, *nodetail_dump; /* the first fault without a message */
	/* What the checks hand over to later ones. */
	char *task_id, *dest;
	char *success_dump; /* the exchange of the load's SUCCESS answer */
	int reached;    /* some HTTP answer came back */
	int basic_only; /* Digest was refused: Basic from now on */
};

static const struct cf_check cf_checks[C_COUNT] = {
	{ "wsdl", "the WSDL is served and matches the contract", 1, 0, 0, 0, 0 },
	{ "load-taskid", "LoadAsset returns a TaskId", 1, 0, 0, 0, 0 },
	{ "load-success", "GetTaskStatus moves from IN_PROGRESS to SUCCESS in time", 1, 0, 0, 0, 0 },
	{ "load-destination", "a successful load returns its DestinationAsset", 1, 0, 0, 0, 0 },
	{ "purge", "that DestinationAsset purges", 1, 0, 0, 0, 0 },
	{ "unknown-taskid", "an unknown TaskId is a fault with an HTTP error status", 1, 0, 0, 0, 0 },
	{ "success-200", "every successful answer is HTTP 200", 1, 0, 0, 0, 0 },
	{ "fault-detail", "every fault carries detail/ExceptionWS/message", 1, 0, 0, 0, 0 },
	{ "sample-quirks", "the public samples' ns2 declaration and whitespace are accepted", 1, 0,
	  0, 0, 0 },
	{ "soap12", "SOAP 1.2 (not required)", 0, 0, 0, 0, 0 },
};

static void cf_set(struct cf_check *c, int result, const struct cf_x *x, const char *fmt,
		   va_list ap)
{
	if (c->result != CF_PENDING && c->result != CF_PASS)
		return; /* the first failure is the one that says most */
	c->result = result;
	free(c->note);
	char *s = NULL;
	if (vasprintf(&s, fmt, ap) < 0)
		abort();
	c->note = cf_clean(s, strlen(s));
	free(s);
	free(c->exchange);
	c->exchange = x ? cf_x_dump(x) : NULL;
}

static int cf_fail(struct cf_check *c, const struct cf_x *x, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int cf_fail(struct cf_check *c, const struct cf_x *x, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cf_set(c, CF_FAIL, x, fmt, ap);
	va_end(ap);
	return -1;
}

static void cf_pass(struct cf_check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void cf_pass(struct cf_check *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cf_set(c, CF_PASS, NULL, fmt, ap);
	va_end(ap);
}

static void cf_skip(struct cf_check *c, const char *needs)
{
	if (c->result != CF_PENDING)
		return;
	c->result = CF_SKIP;
	c->note = util_printf("needs %s", needs);
}

/* ---- libcurl ------------------------------------------------------------ */

static size_t cf_on_body(char *p, size_t size, size_t n, void *ud)
{
	util_buf_add(ud, p, size * n);
	return size * n;
}

/* Response headers: a new status line starts a new answer (after a 401
 * that authentication answered, or a 100 Continue). */
static size_t cf_on_header(char *p, size_t size, size_t n, void *ud)
{
	struct cf_run *r = ud;
	if (size * n >= 5 && !strncmp(p, "HTTP/", 5))
		cf_reset(&r->head_in);
	util_buf_add(&r->head_in, p, size * n);
	return size * n;
}

/* The request headers as they left, the last request of an exchange
 * winning; credentials replaced by their scheme. */
static int cf_on_debug(CURL *h, curl_infotype type, char *p, size_t n, void *ud)
{
	struct cf_run *r = ud;
	if (type != CURLINFO_HEADER_OUT)
		return 0;
	cf_reset(&r->head_out);
	const char *end = p + n;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p + 1) : (size_t)(end - p);
		if (len >= 14 && !strncasecmp(p, "Authorization:", 14)) {
			const char *v = p + 14;
			while (v < p + len && *v == ' ')
				v++;
			const char *sp = v;
			while (sp < p + len && *sp != ' ' && *sp != '\r' && *sp != '\n')
				sp++;
			util_buf_addf(&r->head_out, "Authorization: %.*s ***\n", (int)(sp - v), v);
		} else {
			util_buf_add(&r->head_out, p, len);
		}
		p += len;
	}
	return 0;
}

static int cf_curl_init(struct cf_run *r, char *err, size_t errlen)
{
	const struct conform_opts *o = r->o;
	CURL *h = r->curl = curl_easy_init();
	if (!h) {
		util_error(err, errlen, "cannot set up libcurl");
		return -1;
	}
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 15L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "apubictl/" APUBID_VERSION " (conform)");
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, cf_on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, cf_on_debug);
	curl_easy_setopt(h, CURLOPT_DEBUGDATA, r);
	curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, cf_on_body);
	if (o->cacert) {
		curl_easy_setopt(h, CURLOPT_CAINFO, o->cacert);
		curl_easy_setopt(h, CURLOPT_CAPATH, NULL); /* only these CAs */
	}
	if (o->insecure) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (o->cert) {
		curl_easy_setopt(h, CURLOPT_SSLCERT, o->cert);
		curl_easy_setopt(h, CURLOPT_SSLKEY, o->key ? o->key : o->cert);
	}
	if (o->user) {
		/* As apubictl's other calls: the password goes out only in
		 * answer to a challenge, with the method asked for. */
		long methods = o->auth_method == AUTH_BASIC    ? CURLAUTH_BASIC | CURLAUTH_ONLY
			       : o->auth_method == AUTH_DIGEST ? CURLAUTH_DIGEST | CURLAUTH_ONLY
							       : CURLAUTH_BASIC | CURLAUTH_DIGEST;
		curl_easy_setopt(h, CURLOPT_HTTPAUTH, methods);
		curl_easy_setopt(h, CURLOPT_USERNAME, o->user);
		curl_easy_setopt(h, CURLOPT_PASSWORD, o->password ? o->password : "");
	}
	r->h11 = curl_slist_append(NULL, "Content-Type: text/xml; charset=utf-8");
	r->h11 = curl_slist_append(r->h11, "SOAPAction: \"\"");
	r->h11 = curl_slist_append(r->h11, "Expect:");
	r->h12 = curl_slist_append(NULL, "Content-Type: application/soap+xml; charset=utf-8");
	r->h12 = curl_slist_append(r->h12, "Expect:");
	r->hget = curl_slist_append(NULL, "Accept: text/xml, application/xml");
	return 0;
}

/* One request: GET url when body is NULL, else POST body (shown as
 * `shown`: the same bytes with any password in a URL masked). */
static void cf_send(struct cf_run *r, const char *url, const char *body, const char *shown,
		    int soap12, struct cf_x *x)
{
	CURL *h = r->curl;
	memset(x, 0, sizeof *x);
	x->soap12 = soap12;
	cf_reset(&r->head_out);
	cf_reset(&r->head_in);
	char err[CURL_ERROR_SIZE] = "";
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, err);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &x->body);
	if (body) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, soap12 ? r->h12 : r->h11);
		x->req_body = util_strdup(shown ? shown : body);
	} else {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, r->hget);
	}
	CURLcode rc = curl_easy_perform(h);
	long status = 0;
	if (rc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (status == 401 && r->o->user && !r->o->auth_method && !r->basic_only &&
	    r->head_in.p && strcasestr(r->head_in.p, "WWW-Authenticate: Basic")) {
		/* As apubictl's other calls: a user the server's Digest file
		 * does not know may be in its Basic file. libcurl preferred
		 * Digest; from now on it answers with Basic. */
		r->basic_only = 1;
		curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BASIC | CURLAUTH_ONLY);
		cf_reset(&x->body);
		cf_reset(&r->head_out);
		cf_reset(&r->head_in);
		rc = curl_easy_perform(h);
	}
	x->req_head = util_strdup(r->head_out.len ? r->head_out.p : "(request not sent)");
	if (rc != CURLE_OK) {
		x->error = util_printf("%s", *err ? err : curl_easy_strerror(rc));
	} else {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &x->status);
		x->resp_head = util_strdup(r->head_in.p ? r->head_in.p : "");
		r->reached = 1;
	}
	if (!x->body.p)
		util_buf_add(&x->body, "", 0);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
	if (r->o->verbose) {
		char *d = cf_x_dump(x);
		fprintf(stderr, "%s\n", d);
		free(d);
	}
}

/* ---- reading XML ------------------------------------------------------ */

/* Parses a document from the network: no network access, no entity
 * substitution, no DTD loading. NULL with the parser's reason. */
static xmlDocPtr cf_parse(const char *p, size_t n, char **why)
{
	xmlResetLastError();
	xmlDocPtr d = xmlReadMemory(p, (int)n, NULL, NULL,
				    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (!d) {
		const xmlError *e = xmlGetLastError();
		char *m = util_strdup(e && e->message ? e->message : "not well-formed");
		util_trim(m);
		*why = util_printf("not well-formed XML: %s (line %d)", m, e ? e->line : 0);
		free(m);
	}
	return d;
}

/* An element with this namespace (NULL: none) and local name. */
static int cf_is(xmlNodePtr n, const char *ns, const char *name)
{
	if (!n || n->type != XML_ELEMENT_NODE || strcmp((const char *)n->name, name))
		return 0;
	const char *href = n->ns && n->ns->href ? (const char *)n->ns->href : NULL;
	if (!ns)
		return !href || !*href;
	return href && !strcmp(href, ns);
}

static xmlNodePtr cf_child(xmlNodePtr parent, const char *ns, const char *name)
{
	for (xmlNodePtr c = parent ? parent->children : NULL; c; c = c->next)
		if (cf_is(c, ns, name))
			return c;
	return NULL;
}

static xmlNodePtr cf_first_element(xmlNodePtr parent)
{
	for (xmlNodePtr c = parent ? parent->children : NULL; c; c = c->next)
		if (c->type == XML_ELEMENT_NODE)
			return c;
	return NULL;
}

/* The trimmed text of an element (malloc'ed), NULL without the element. */
static char *cf_text(xmlNodePtr n)
{
	if (!n)
		return NULL;
	xmlChar *t = xmlNodeGetContent(n);
	char *s = util_trim(util_strdup(t ? (const char *)t : ""));
	xmlFree(t);
	return s;
}

/* "{ns}name" of an element, for reports. */
static char *cf_qname(xmlNodePtr n)
{
	if (!n)
		return util_strdup("nothing");
	if (n->ns && n->ns->href)
		return util_printf("{%s}%s", (const char *)n->ns->href, (const char *)n->name);
	return util_printf("%s (no namespace)", (const char *)n->name);
}

/* A SOAP answer taken apart. */
struct cf_soap {
	xmlDocPtr doc;
	int version; /* 11 or 12 */
	const char *env;
	xmlNodePtr body, payload; /* Body and its first element */
	xmlNodePtr fault;         /* payload when it is a Fault */
};

static void cf_soap_free(struct cf_soap *s)
{
	if (s->doc)
		xmlFreeDoc(s->doc);
	memset(s, 0, sizeof *s);
}

/* 0, or -1 with why the answer is not a SOAP envelope with a Body. */
static int cf_soap_parse(const struct cf_x *x, struct cf_soap *s, char **why)
{
	memset(s, 0, sizeof *s);
	if (!x->body.len) {
		*why = util_strdup("the answer has no body");
		return -1;
	}
	if (!(s->doc = cf_parse(x->body.p, x->body.len, why)))
		return -1;
	xmlNodePtr root = xmlDocGetRootElement(s->doc);
	if (cf_is(root, CF_SOAP11, "Envelope"))
		s->version = 11, s->env = CF_SOAP11;
	else if (cf_is(root, CF_SOAP12, "Envelope"))
		s->version = 12, s->env = CF_SOAP12;
	else {
		char *q = cf_qname(root);
		*why = util_printf("the answer is not a SOAP envelope: its root is %s", q);
		free(q);
		cf_soap_free(s);
		return -1;
	}
	if (!(s->body = cf_child(root, s->env, "Body"))) {
		*why = util_strdup("the envelope has no Body (in the envelope's namespace)");
		cf_soap_free(s);
		return -1;
	}
	s->payload = cf_first_element(s->body);
	if (cf_is(s->payload, s->env, "Fault"))
		s->fault = s->payload;
	return 0;
}

/* The faultstring (1.1) or Reason/Text (1.2) and the faultcode's text;
 * -1 with why when they are missing. */
static int cf_fault_parts(const struct cf_soap *s, char **code, char **string, char **why)
{
	xmlNodePtr f = s->fault;
	if (s->version == 11) {
		*code = cf_text(cf_child(f, NULL, "faultcode"));
		*string = cf_text(cf_child(f, NULL, "faultstring"));
	} else {
		*code = cf_text(cf_child(cf_child(f, s->env, "Code"), s->env, "Value"));
		*string = cf_text(cf_child(cf_child(f, s->env, "Reason"), s->env, "Text"));
	}
	if (!*code || !**code || !*string || !**string) {
		*why = util_printf("the fault has no %s", !*code || !**code
								? (s->version == 11 ? "faultcode" : "Code/Value")
								: (s->version == 11 ? "faultstring" : "Reason/Text"));
		free(*code);
		free(*string);
		*code = *string = NULL;
		return -1;
	}
	return 0;
}

/* detail/{APUBI}ExceptionWS/message (message unqualified, as in the
 * public sample and the XSD); NULL when missing or empty. */
static char *cf_fault_message(const struct cf_soap *s)
{
	xmlNodePtr d = s->version == 11 ? cf_child(s->fault, NULL, "detail")
					: cf_child(s->fault, s->env, "Detail");
	char *m = cf_text(cf_child(cf_child(d, CF_NS, "ExceptionWS"), NULL, "message"));
	if (m && !*m) {
		free(m);
		m = NULL;
	}
	return m;
}

/* Counts a SOAP 1.1 answer into the run's tallies: a success must be 200,
 * a fault must not be 200 and must carry its message. */
static void cf_tally(struct cf_run *r, const struct cf_x *x, const struct cf_soap *s)
{
	if (x->soap12)
		return;
	if (s->fault) {
		r->faults++;
		if (x->status == 200 && !r->bad200) {
			r->bad200 = util_strdup("a fault came with HTTP 200");
			r->bad200_dump = cf_x_dump(x);
		}
		char *m = cf_fault_message(s);
		if (!m && !r->nodetail) {
			r->nodetail = util_printf("a fault (HTTP %ld) has no non-empty "
						  "detail/{%s}ExceptionWS/message", x->status, CF_NS);
			r->nodetail_dump = cf_x_dump(x);
		}
		free(m);
	} else {
		r->successes++;
		if (x->status != 200 && !r->bad200) {
			r->bad200 = util_printf("a successful answer came with HTTP %ld", x->status);
			r->bad200_dump = cf_x_dump(x);
		}
	}
}

/* ---- requests in the WFM's shapes -------------------------------------- */

static char *cf_escape(const char *s)
{
	struct util_buf b = { 0 };
	util_buf_add(&b, "", 0);
	for (; *s; s++) {
		switch (*s) {
		case '<': util_buf_addf(&b, "&lt;"); break;
		case '>': util_buf_addf(&b, "&gt;"); break;
		case '&': util_buf_addf(&b, "&amp;"); break;
		case '"': util_buf_addf(&b, "&quot;"); break;
		default: util_buf_add(&b, s, 1);
		}
	}
	return b.p;
}

/* Shapes of the envelope: the WFM's indentation always; the quirks of the
 * public samples (the unused ns2 declaration, a line break before a
 * closing tag) only in sample-quirks, so that refusing them fails that
 * check and no other. */
enum { SHAPE_PLAIN, SHAPE_QUIRKS, SHAPE_SOAP12 };

/* An operation with (name, value) children; a NULL value leaves the
 * element out. */
static char *cf_envelope(int shape, const char *op, const char *n1, const char *v1,
			 const char *n2, const char *v2)
{
	struct util_buf b = { 0 };
	const char *env = shape == SHAPE_SOAP12 ? CF_SOAP12 : CF_SOAP11;
	const char *p = shape == SHAPE_SOAP12 ? "soap12" : "soap";
	util_buf_addf(&b, "<%s:Envelope xmlns:%s=\"%s\">\n    <%s:Body>\n", p, p, env, p);
	util_buf_addf(&b, "        <%s xmlns=\"" CF_NS "\"%s>\n", op,
		  shape == SHAPE_QUIRKS ? " xmlns:ns2=\"wfm:/APUBI/v1/schemas\"" : "");
	const char *names[2] = { n1, n2 }, *values[2] = { v1, v2 };
	for (int i = 0; i < 2; i++) {
		if (!names[i] || !values[i])
			continue;
		char *e = cf_escape(values[i]);
		util_buf_addf(&b, "            <%s>%s%s</%s>\n", names[i], e,
			  shape == SHAPE_QUIRKS ? "\n" : "", names[i]);
		free(e);
	}
	util_buf_addf(&b, "        </%s>\n    </%s:Body>\n</%s:Envelope>\n", op, p, p);
	return b.p;
}

/* Sends an operation; returns 0 with the answer parsed into s (its tally
 * taken), or -1 when there is no SOAP answer, after failing check c. */
static int cf_call(struct cf_run *r, struct cf_check *c, int shape, const char *op,
		   const char *n1, const char *v1, const char *n2, const char *v2, struct cf_x *x,
		   struct cf_soap *s)
{
	char *body = cf_envelope(shape, op, n1, v1, n2, v2);
	char *shown = NULL;
	/* A source URL may carry a password: the report shows it masked. */
	if (n1 && v1 && !strcmp(n1, "SourceAssetUrl")) {
		char *m = url_mask(v1);
		shown = cf_envelope(shape, op, n1, m, n2, v2);
		free(m);
	}
	cf_send(r, r->o->url, body, shown, shape == SHAPE_SOAP12, x);
	free(body);
	free(shown);
	if (!x->status)
		return cf_fail(c, x, "%s: no answer: %s", op, x->error);
	char *why = NULL;
	if (cf_soap_parse(x, s, &why) < 0) {
		cf_fail(c, x, "%s: HTTP %ld, %s", op, x->status, why);
		free(why);
		return -1;
	}
	cf_tally(r, x, s);
	return 0;
}

/* The answer must be a success: HTTP 200 and Body/{APUBI}<op>Response.
 * Returns that element, or NULL after failing check c. */
static xmlNodePtr cf_expect_response(struct cf_check *c, const struct cf_x *x,
				     const struct cf_soap *s, const char *op)
{
	char name[64];
	snprintf(name, sizeof name, "%sResponse", op);
	if (s->fault) {
		char *code = NULL, *string = NULL, *why = NULL;
		if (cf_fault_parts(s, &code, &string, &why) == 0)
			cf_fail(c, x, "%s: fault (HTTP %ld) %s: %s", op, x->status, code, string);
		else
			cf_fail(c, x, "%s: fault (HTTP %ld), and %s", op, x->status, why);
		free(code);
		free(string);
		free(why);
		return NULL;
	}
	if (!cf_is(s->payload, CF_NS, name)) {
		char *q = cf_qname(s->payload);
		cf_fail(c, x, "%s: the Body holds %s, not {%s}%s", op, q, CF_NS, name);
		free(q);
		return NULL;
	}
	if (x->status != 200) {
		cf_fail(c, x, "%s: a successful answer with HTTP %ld, not 200", op, x->status);
		return NULL;
	}
	return s->payload;
}

/* A TaskId from a LoadAsset or PurgeAsset answer, or NULL after failing
 * check c. */
static char *cf_submit(struct cf_run *r, struct cf_check *c, const char *op, const char *n1,
		       const char *v1, const char *n2, const char *v2)
{
	struct cf_x x;
	struct cf_soap s;
	char *id = NULL;
	if (cf_call(r, c, SHAPE_PLAIN, op, n1, v1, n2, v2, &x, &s) == 0) {
		xmlNodePtr resp = cf_expect_response(c, &x, &s, op);
		if (resp) {
			id = cf_text(cf_child(resp, CF_NS, "TaskId"));
			if (!id || !*id) {
				cf_fail(c, &x, "%s: %s", op, id ? "the TaskId is empty"
								: "no {" CF_NS "}TaskId in the answer");
				free(id);
				id = NULL;
			}
		}
		cf_soap_free(&s);
	}
	cf_x_free(&x);
	return id;
}

/* One GetTaskStatus in a shape: 0 with Status (and DestinationAsset, or
 * NULL) malloc'ed, or -1 after failing check c. */
static int cf_status(struct cf_run *r, struct cf_check *c, int shape, const char *id,
		     char **status, char **dest, struct cf_x *x)
{
	struct cf_soap s;
	*status = *dest = NULL;
	if (cf_call(r, c, shape, "GetTaskStatus", "TaskId", id, NULL, NULL, x, &s) < 0)
		return -1;
	int rc = -1;
	if (shape == SHAPE_SOAP12 && s.version != 12) {
		cf_fail(c, x, "GetTaskStatus in SOAP 1.2 was answered in SOAP 1.1");
		goto out;
	}
	xmlNodePtr resp = cf_expect_response(c, x, &s, "GetTaskStatus");
	if (!resp)
		goto out;
	*status = cf_text(cf_child(resp, CF_NS, "Status"));
	if (!*status) {
		cf_fail(c, x, "GetTaskStatus: no {%s}Status in the answer", CF_NS);
		goto out;
	}
	if (strcmp(*status, "IN_PROGRESS") && strcmp(*status, "SUCCESS") &&
	    strcmp(*status, "FAILED")) {
		cf_fail(c, x, "GetTaskStatus: Status \"%s\" is not IN_PROGRESS, SUCCESS or FAILED",
			*status);
		goto out;
	}
	*dest = cf_text(cf_child(resp, CF_NS, "DestinationAsset"));
	rc = 0;
out:
	if (rc < 0) {
		free(*status);
		*status = NULL;
	}
	cf_soap_free(&s);
	return rc;
}

/* Polls a task until it leaves IN_PROGRESS: 0 with SUCCESS (and its
 * DestinationAsset in *dest, possibly NULL, and the exchange in *dump when
 * dump is not NULL), or -1 after failing c. */
static int cf_poll(struct cf_run *r, struct cf_check *c, const char *what, const char *id,
		   char **dest, char **dump)
{
	double timeout = r->o->timeout > 0 ? r->o->timeout : 60;
	double interval = r->o->interval > 0 ? r->o->interval : 1;
	int64_t start = util_mono_ms();
	int polls = 0;
	*dest = NULL;
	for (;;) {
		struct cf_x x;
		char *status, *d;
		polls++;
		if (cf_status(r, c, SHAPE_PLAIN, id, &status, &d, &x) < 0) {
			cf_x_free(&x);
			return -1;
		}
		double elapsed = (double)(util_mono_ms() - start) / 1000;
		int rc = 1;
		if (!strcmp(status, "SUCCESS")) {
			cf_pass(c, "%s %s: SUCCESS after %d poll%s (%.1f s)", what, id, polls,
				polls == 1 ? "" : "s", elapsed);
			*dest = d;
			d = NULL;
			if (dump)
				*dump = cf_x_dump(&x);
			rc = 0;
		} else if (!strcmp(status, "FAILED")) {
			cf_fail(c, &x, "%s %s ended FAILED after %.1f s (GetTaskStatus carries no "
				       "reason: the server's logs say why)", what, id, elapsed);
			rc = -1;
		} else if (elapsed >= timeout) {
			cf_fail(c, &x, "%s %s still IN_PROGRESS after %.1f s and %d polls "
				       "(--timeout %g)", what, id, elapsed, polls, timeout);
			rc = -1;
		}
		free(status);
		free(d);
		cf_x_free(&x);
		if (rc <= 0)
			return rc;
		/* The last poll comes when --timeout is up, not an interval
		 * before. */
		double pause = interval < timeout - elapsed ? interval : timeout - elapsed;
		struct timespec ts = { (time_t)pause, (long)((pause - (double)(time_t)pause) * 1e9) };
		while (nanosleep(&ts, &ts) < 0)
			;
	}
}

/* ---- the WSDL ---------------------------------------------------------- */

/* Resolves a QName attribute value against the namespaces in scope at n:
 * "{ns}local" malloc'ed, or NULL. */
static char *cf_resolve(xmlDocPtr d, xmlNodePtr n, const char *qname)
{
	if (!qname)
		return NULL;
	const char *colon = strchr(qname, ':');
	char *prefix = colon ? util_strndup(qname, (size_t)(colon - qname)) : NULL;
	xmlNsPtr ns = xmlSearchNs(d, n, (const xmlChar *)prefix);
	free(prefix);
	if (!ns || !ns->href)
		return NULL;
	return util_printf("{%s}%s", (const char *)ns->href, colon ? colon + 1 : qname);
}

static char *cf_attr(xmlNodePtr n, const char *name)
{
	xmlChar *v = xmlGetProp(n, (const xmlChar *)name);
	char *s = v ? util_trim(util_strdup((const char *)v)) : NULL;
	xmlFree(v);
	return s;
}

/* For a wsdl:message QName: the "{ns}local" of its part's element. */
static char *cf_message_element(xmlDocPtr d, xmlNodePtr defs, xmlNodePtr at, const char *msg)
{
	char *q = cf_resolve(d, at, msg);
	char *tns = cf_attr(defs, "targetNamespace");
	char *out = NULL;
	if (q && tns) {
		char *local = strrchr(q, '}') + 1;
		size_t nslen = (size_t)(local - q - 2);
		if (strlen(tns) == nslen && !strncmp(q + 1, tns, nslen)) {
			for (xmlNodePtr m = defs->children; m && !out; m = m->next) {
				char *name = cf_is(m, CF_WSDL, "message") ? cf_attr(m, "name") : NULL;
				if (name && !strcmp(name, local)) {
					xmlNodePtr part = cf_child(m, CF_WSDL, "part");
					char *el = part ? cf_attr(part, "element") : NULL;
					out = cf_resolve(d, part, el);
					free(el);
				}
				free(name);
			}
		}
	}
	free(q);
	free(tns);
	return out;
}

/* The operations of a WSDL's portTypes as lines "Op in={ns}X out={ns}Y",
 * appended to b in document order. */
static void cf_wsdl_ops(xmlDocPtr d, struct util_buf *b)
{
	xmlNodePtr defs = xmlDocGetRootElement(d);
	util_buf_add(b, "", 0);
	for (xmlNodePtr pt = defs->children; pt; pt = pt->next) {
		if (!cf_is(pt, CF_WSDL, "portType"))
			continue;
		for (xmlNodePtr op = pt->children; op; op = op->next) {
			if (!cf_is(op, CF_WSDL, "operation"))
				continue;
			char *name = cf_attr(op, "name");
			xmlNodePtr in = cf_child(op, CF_WSDL, "input");
			xmlNodePtr out = cf_child(op, CF_WSDL, "output");
			char *im = in ? cf_attr(in, "message") : NULL;
			char *om = out ? cf_attr(out, "message") : NULL;
			char *ie = cf_message_element(d, defs, in, im);
			char *oe = cf_message_element(d, defs, out, om);
			util_buf_addf(b, "%s in=%s out=%s\n", name ? name : "?", ie ? ie : "?",
				  oe ? oe : "?");
			free(name), free(im), free(om), free(ie), free(oe);
		}
	}
}

/* NULL when a wsdl:binding is SOAP (1.1 or 1.2) document/literal, its
 * operations' inputs and outputs literal, and a wsdl:service port gives an
 * address; else why not (malloc'ed). */
static char *cf_wsdl_binding(xmlNodePtr defs)
{
	char *why = NULL;
	int bound = 0;
	for (xmlNodePtr b = defs->children; b && !bound; b = b->next) {
		if (!cf_is(b, CF_WSDL, "binding"))
			continue;
		xmlNodePtr sb = cf_child(b, CF_WSDL_SOAP, "binding");
		if (!sb)
			sb = cf_child(b, CF_WSDL_SOAP12, "binding");
		if (!sb)
			continue;
		const char *sns = (const char *)sb->ns->href;
		char *style = cf_attr(sb, "style");
		int ok = !style || !strcmp(style, "document"); /* document is the default */
		if (!ok && !why)
			why = util_printf("the SOAP binding's style is \"%s\", not document", style);
		free(style);
		for (xmlNodePtr op = b->children; op && ok; op = op->next) {
			if (!cf_is(op, CF_WSDL, "operation"))
				continue;
			static const char *const dirs[] = { "input", "output" };
			for (int i = 0; i < 2 && ok; i++) {
				xmlNodePtr body = cf_child(cf_child(op, CF_WSDL, dirs[i]), sns, "body");
				char *use = body ? cf_attr(body, "use") : NULL;
				if (!use || strcmp(use, "literal")) {
					ok = 0;
					if (!why) {
						char *name = cf_attr(op, "name");
						why = util_printf("the binding's %s %s is not soap:body "
								  "use=\"literal\"", name ? name : "?",
								  dirs[i]);
						free(name);
					}
				}
				free(use);
			}
		}
		bound = ok;
	}
	if (!bound)
		return why ? why : util_strdup("the WSDL has no SOAP binding (wsdl:binding "
					       "holding a soap:binding)");
	free(why);
	for (xmlNodePtr sv = defs->children; sv; sv = sv->next) {
		if (!cf_is(sv, CF_WSDL, "service"))
			continue;
		for (xmlNodePtr port = sv->children; port; port = port->next) {
			if (!cf_is(port, CF_WSDL, "port"))
				continue;
			xmlNodePtr a = cf_child(port, CF_WSDL_SOAP, "address");
			if (!a)
				a = cf_child(port, CF_WSDL_SOAP12, "address");
			char *loc = a ? cf_attr(a, "location") : NULL;
			int has = loc && *loc;
			free(loc);
			if (has)
				return NULL;
		}
	}
	return util_strdup("no wsdl:service port gives a soap:address location");
}

/* Where the schema of the APUBI namespace is: an xs:import or xs:include
 * schemaLocation in wsdl:types, made absolute against the WSDL's URL, or
 * NULL (then ?xsd is tried). *inline_schema is set when wsdl:types holds
 * the schema itself. */
static char *cf_schema_location(xmlDocPtr d, const char *wsdl_url, xmlNodePtr *inline_schema)
{
	xmlNodePtr types = cf_child(xmlDocGetRootElement(d), CF_WSDL, "types");
	*inline_schema = NULL;
	for (xmlNodePtr sc = types ? types->children : NULL; sc; sc = sc->next) {
		if (!cf_is(sc, CF_XS, "schema"))
			continue;
		char *tns = cf_attr(sc, "targetNamespace");
		if (tns && !strcmp(tns, CF_NS) && cf_child(sc, CF_XS, "element"))
			*inline_schema = sc;
		free(tns);
		for (xmlNodePtr im = sc->children; im; im = im->next) {
			if (!cf_is(im, CF_XS, "import") && !cf_is(im, CF_XS, "include"))
				continue;
			char *ns = cf_attr(im, "namespace");
			char *loc = cf_attr(im, "schemaLocation");
			int ours = !ns || !strcmp(ns, CF_NS);
			free(ns);
			if (!ours || !loc || !*loc) {
				free(loc);
				continue;
			}
			xmlChar *abs = xmlBuildURI((const xmlChar *)loc, (const xmlChar *)wsdl_url);
			char *out = util_strdup(abs ? (const char *)abs : loc);
			xmlFree(abs);
			free(loc);
			return out;
		}
	}
	return NULL;
}

/* The names of the top-level elements of a schema, one per line, sorted
 * by the order of `want` lines that are present. */
static int cf_schema_has(xmlNodePtr schema, const char *name)
{
	for (xmlNodePtr e = schema->children; e; e = e->next) {
		if (!cf_is(e, CF_XS, "element"))
			continue;
		char *n = cf_attr(e, "name");
		int same = n && !strcmp(n, name);
		free(n);
		if (same)
			return 1;
	}
	return 0;
}

static void cf_check_wsdl(struct cf_run *r)
{
	struct cf_check *c = &r->c[C_WSDL];
	const char *url = r->o->url;
	char *wurl = util_printf("%s%swsdl", url, strchr(url, '?') ? "&" : "?");
	struct cf_x x, xs;
	memset(&xs, 0, sizeof xs);
	xmlDocPtr d = NULL, ref = NULL, sd = NULL, refx = NULL;
	char *why = NULL, *loc = NULL;
	struct util_buf ops = { 0 }, want = { 0 };
	cf_send(r, wurl, NULL, NULL, 0, &x);
	if (!x.status) {
		cf_fail(c, &x, "GET ?wsdl: no answer: %s", x.error);
		goto out;
	}
	if (x.status != 200) {
		cf_fail(c, &x, "GET ?wsdl: HTTP %ld, not 200", x.status);
		goto out;
	}
	if (!(d = cf_parse(x.body.p, x.body.len, &why))) {
		cf_fail(c, &x, "GET ?wsdl: %s", why);
		goto out;
	}
	xmlNodePtr defs = xmlDocGetRootElement(d);
	if (!cf_is(defs, CF_WSDL, "definitions")) {
		char *q = cf_qname(defs);
		cf_fail(c, &x, "GET ?wsdl: the root element is %s, not {%s}definitions", q, CF_WSDL);
		free(q);
		goto out;
	}
	char *tns = cf_attr(defs, "targetNamespace");
	int tns_ok = tns && !strcmp(tns, CF_NS);
	if (!tns_ok) {
		cf_fail(c, &x, "the WSDL's targetNamespace is \"%s\", not \"%s\"", tns ? tns : "",
			CF_NS);
		free(tns);
		goto out;
	}
	free(tns);
	/* The operations, their input and output elements: as in the WSDL
	 * of the contract (the one built into apubictl). Others may be
	 * offered beside them. */
	ref = xmlReadMemory(embed_wsdl, (int)strlen(embed_wsdl), NULL, NULL, XML_PARSE_NONET);
	if (!ref) {
		cf_fail(c, NULL, "the built-in WSDL does not parse");
		goto out;
	}
	cf_wsdl_ops(d, &ops);
	cf_wsdl_ops(ref, &want);
	char *save = NULL;
	for (char *line = strtok_r(want.p, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *needle = util_printf("%s\n", line);
		int found = strstr(ops.p, needle) != NULL;
		free(needle);
		if (!found) {
			for (char *p = ops.p; *p; p++)
				if (*p == '\n')
					*p = p[1] ? ';' : '\0';
			cf_fail(c, &x, "the WSDL lacks the operation \"%s\" (its portType has: %s)",
				line, *ops.p ? ops.p : "no operation");
			goto out;
		}
	}
	char *nobind = cf_wsdl_binding(defs);
	if (nobind) {
		cf_fail(c, &x, "%s", nobind);
		free(nobind);
		goto out;
	}
	/* The schema: where wsdl:types says, else beside the WSDL at ?xsd. */
	xmlNodePtr schema = NULL;
	loc = cf_schema_location(d, wurl, &schema);
	if (!schema) {
		if (!loc)
			loc = util_printf("%s%sxsd", url, strchr(url, '?') ? "&" : "?");
		cf_send(r, loc, NULL, NULL, 0, &xs);
		if (xs.status != 200) {
			char *m = url_mask(loc);
			if (xs.status)
				cf_fail(c, &xs, "GET %s (the schema): HTTP %ld, not 200", m, xs.status);
			else
				cf_fail(c, &xs, "GET %s (the schema): no answer: %s", m, xs.error);
			free(m);
			goto out;
		}
		free(why);
		why = NULL;
		if (!(sd = cf_parse(xs.body.p, xs.body.len, &why))) {
			cf_fail(c, &xs, "the schema: %s", why);
			goto out;
		}
		schema = xmlDocGetRootElement(sd);
		char *stns = cf_is(schema, CF_XS, "schema") ? cf_attr(schema, "targetNamespace") : NULL;
		int ok = stns && !strcmp(stns, CF_NS);
		free(stns);
		if (!ok) {
			cf_fail(c, &xs, "the schema is not an xs:schema of targetNamespace \"%s\"", CF_NS);
			goto out;
		}
	}
	refx = xmlReadMemory(embed_xsd, (int)strlen(embed_xsd), NULL, NULL, XML_PARSE_NONET);
	if (!refx) {
		cf_fail(c, NULL, "the built-in XSD does not parse");
		goto out;
	}
	for (xmlNodePtr e = xmlDocGetRootElement(refx)->children; e; e = e->next) {
		if (!cf_is(e, CF_XS, "element"))
			continue;
		char *name = cf_attr(e, "name");
		int has = name && cf_schema_has(schema, name);
		if (!has) {
			cf_fail(c, sd ? &xs : &x, "the schema does not declare the element %s",
				name ? name : "?");
			free(name);
			goto out;
		}
		free(name);
	}
	cf_pass(c, "LoadAsset, PurgeAsset, GetTaskStatus, document/literal; schema %s",
		sd ? "fetched" : "inline");
out:
	free(why);
	free(loc);
	free(wurl);
	free(ops.p);
	free(want.p);
	if (d)
		xmlFreeDoc(d);
	if (ref)
		xmlFreeDoc(ref);
	if (sd)
		xmlFreeDoc(sd);
	if (refx)
		xmlFreeDoc(refx);
	cf_x_free(&x);
	cf_x_free(&xs);
}

/* ---- the other checks ------------------------------------------------- */

static void cf_check_unknown(struct cf_run *r)
{
	struct cf_check *c = &r->c[C_UNKNOWN];
	char id[TASKID_LEN];
	util_uuid(id);
	struct cf_x x;
	struct cf_soap s;
	if (cf_call(r, c, SHAPE_PLAIN, "GetTaskStatus", "TaskId", id, NULL, NULL, &x, &s) == 0) {
		char *code = NULL, *string = NULL, *why = NULL;
		if (!s.fault)
			cf_fail(c, &x, "GetTaskStatus of the unknown TaskId %s answered HTTP %ld "
				       "without a fault", id, x.status);
		else if (cf_fault_parts(&s, &code, &string, &why) < 0)
			cf_fail(c, &x, "GetTaskStatus of an unknown TaskId: %s", why);
		else if (x.status < 400 || x.status > 599)
			cf_fail(c, &x, "the fault for an unknown TaskId came with HTTP %ld, not an "
				       "error status (4xx, 5xx)", x.status);
		else
			cf_pass(c, "HTTP %ld, %s: %s", x.status, code, string);
		free(code);
		free(string);
		free(why);
		cf_soap_free(&s);
	}
	cf_x_free(&x);
}

/* An invalid LoadAsset (no SourceAssetUrl) must be refused with a fault;
 * then every fault of the run must have carried its message. */
static void cf_check_fault_detail(struct cf_run *r)
{
	struct cf_check *c = &r->c[C_FAULT_DETAIL];
	struct cf_x x;
	struct cf_soap s;
	if (cf_call(r, c, SHAPE_PLAIN, "LoadAsset", "DestinationAsset", r->o->destination, NULL,
		    NULL, &x, &s) == 0) {
		if (!s.fault)
			cf_fail(c, &x, "a LoadAsset without SourceAssetUrl was not refused with a "
				       "fault (HTTP %ld)", x.status);
		cf_soap_free(&s);
	}
	cf_x_free(&x);
	if (c->result != CF_PENDING)
		return;
	if (r->nodetail) {
		c->result = CF_FAIL;
		c->note = util_strdup(r->nodetail);
		c->exchange = util_strdup(r->nodetail_dump);
		return;
	}
	cf_pass(c, "%d fault%s, each with its message", r->faults, r->faults == 1 ? "" : "s");
}

static void cf_check_success_200(struct cf_run *r)
{
	struct cf_check *c = &r->c[C_SUCCESS_200];
	if (r->bad200) {
		c->result = CF_FAIL;
		c->note = util_strdup(r->bad200);
		c->exchange = util_strdup(r->bad200_dump);
		return;
	}
	cf_pass(c, "%d successful answer%s, all HTTP 200; no fault with 200", r->successes,
		r->successes == 1 ? "" : "s");
}

static void cf_check_status_shape(struct cf_run *r, int which, int shape)
{
	struct cf_check *c = &r->c[which];
	struct cf_x x;
	char *status, *dest;
	if (cf_status(r, c, shape, r->task_id, &status, &dest, &x) == 0)
		cf_pass(c, "HTTP 200, Status %s", status);
	free(status);
	free(dest);
	cf_x_free(&x);
}

/* ---- reports ---------------------------------------------------------- */

static const char *cf_word(const struct cf_check *c)
{
	switch (c->result) {
	case CF_PASS: return "PASS";
	case CF_SKIP: return "SKIP";
	default: return c->required ? "FAIL" : "INFO";
	}
}

static void cf_report_text(const struct cf_run *r, FILE *f)
{
	char *u = url_mask(r->o->url);
	char *su = cf_clean(u, strlen(u));
	fprintf(f, "APUBI conformance of %s\n", su);
	free(u);
	free(su);
	int pass = 0, fail = 0, skip = 0;
	for (int i = 0; i < C_COUNT; i++) {
		const struct cf_check *c = &r->c[i];
		fprintf(f, "%s %-16s %s", cf_word(c), c->id, c->title);
		if (c->result == CF_SKIP)
			fprintf(f, " (%s)", c->note);
		fputc('\n', f);
		if (c->result == CF_FAIL) {
			fprintf(f, "     reason: %s\n", c->note ? c->note : "?");
			if (c->exchange) {
				char *save = NULL, *e = util_strdup(c->exchange);
				for (char *l = strtok_r(e, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
					fprintf(f, "     %s\n", l);
				free(e);
			}
		} else if (c->result == CF_PASS && r->o->verbose && c->note) {
			fprintf(f, "     %s\n", c->note);
		}
		if (!c->required)
			continue;
		if (c->result == CF_PASS)
			pass++;
		else if (c->result == CF_SKIP)
			skip++;
		else
			fail++;
	}
	const struct cf_check *s12 = &r->c[C_SOAP12];
	fprintf(f, "%d required checks: %d passed, %d failed, %d skipped; SOAP 1.2: %s\n",
		pass + fail + skip, pass, fail, skip,
		s12->result == CF_PASS   ? "supported"
		: s12->result == CF_SKIP ? "not tried"
					 : "not supported");
}

/* Text for an XML attribute or element: escaped, and only characters
 * XML 1.0 allows (cf_clean already removed the control ones). */
static void cf_xml_text(FILE *f, const char *s)
{
	char *c = cf_clean(s, strlen(s));
	for (const char *p = c; *p; p++) {
		switch (*p) {
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '&': fputs("&amp;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\'': fputs("&apos;", f); break;
		case '\t': fputs("&#9;", f); break; /* attributes keep their tabs */
		default: fputc(*p, f);
		}
	}
	free(c);
}

static int cf_report_junit(const struct cf_run *r, const char *path, double total)
{
	char *tmp = util_printf("%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f) {
		fprintf(stderr, "apubictl: --junit %s: %m\n", path);
		free(tmp);
		return -1;
	}
	int fail = 0, skip = 0;
	for (int i = 0; i < C_COUNT; i++) {
		if (r->c[i].result == CF_SKIP)
			skip++;
		else if (r->c[i].result != CF_PASS && r->c[i].required)
			fail++;
	}
	char ts[32];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
	char *u = url_mask(r->o->url);
	fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
	fprintf(f, "<testsuite name=\"apubi-conformance\" tests=\"%d\" failures=\"%d\" "
		   "errors=\"0\" skipped=\"%d\" time=\"%.3f\" timestamp=\"%s\">\n",
		C_COUNT, fail, skip, total, ts);
	fprintf(f, "  <properties>\n    <property name=\"url\" value=\"");
	cf_xml_text(f, u);
	fprintf(f, "\"/>\n  </properties>\n");
	free(u);
	for (int i = 0; i < C_COUNT; i++) {
		const struct cf_check *c = &r->c[i];
		fprintf(f, "  <testcase classname=\"apubi-conformance\" name=\"%s\" time=\"%.3f\">\n",
			c->id, c->secs);
		const char *note = c->note ? c->note : "";
		if (c->result == CF_SKIP) {
			fprintf(f, "    <skipped message=\"");
			cf_xml_text(f, note);
			fprintf(f, "\"/>\n");
		} else if (c->result != CF_PASS && c->required) {
			fprintf(f, "    <failure message=\"");
			cf_xml_text(f, note);
			fprintf(f, "\" type=\"conformance\">");
			cf_xml_text(f, c->title);
			fputs("\n", f);
			cf_xml_text(f, note);
			fputs("\n", f);
			if (c->exchange)
				cf_xml_text(f, c->exchange);
			fprintf(f, "</failure>\n");
		}
		/* What was seen, and for a check that is not required, why
		 * it did not pass: reported, never a failure. */
		fprintf(f, "    <system-out>");
		cf_xml_text(f, c->title);
		fputs(": ", f);
		if (c->result == CF_FAIL && !c->required)
			fputs("not required; did not pass: ", f);
		cf_xml_text(f, note);
		if (c->result == CF_FAIL && !c->required && c->exchange) {
			fputs("\n", f);
			cf_xml_text(f, c->exchange);
		}
		fprintf(f, "</system-out>\n  </testcase>\n");
	}
	fprintf(f, "</testsuite>\n");
	int bad = ferror(f);
	if (fclose(f) != 0 || bad || rename(tmp, path) != 0) {
		fprintf(stderr, "apubictl: --junit %s: cannot write it\n", path);
		unlink(tmp);
		free(tmp);
		return -1;
	}
	free(tmp);
	return 0;
}

/* ---- the command -------------------------------------------------------- */

static void cf_timed(struct cf_run *r, int which, int64_t t0)
{
	r->c[which].secs += (double)(util_mono_ms() - t0) / 1000;
}

static void cf_check_load(struct cf_run *r)
{
	int64_t t0 = util_mono_ms();
	r->task_id = cf_submit(r, &r->c[C_LOAD_TASKID], "LoadAsset", "SourceAssetUrl",
			       r->o->source, "DestinationAsset", r->o->destination);
	cf_timed(r, C_LOAD_TASKID, t0);
	if (!r->task_id) {
		cf_skip(&r->c[C_LOAD_SUCCESS], "load-taskid");
		cf_skip(&r->c[C_LOAD_DEST], "load-taskid");
		cf_skip(&r->c[C_PURGE], "load-taskid");
		return;
	}
	cf_pass(&r->c[C_LOAD_TASKID], "TaskId %s", r->task_id);

	t0 = util_mono_ms();
	int ok = cf_poll(r, &r->c[C_LOAD_SUCCESS], "load", r->task_id, &r->dest,
			 &r->success_dump) == 0;
	cf_timed(r, C_LOAD_SUCCESS, t0);
	if (!ok) {
		cf_skip(&r->c[C_LOAD_DEST], "load-success");
		cf_skip(&r->c[C_PURGE], "load-success");
		return;
	}
	struct cf_check *c = &r->c[C_LOAD_DEST];
	if (!r->dest || !*r->dest) {
		c->result = CF_FAIL;
		c->note = util_printf("the SUCCESS answer of load %s carries %s DestinationAsset",
				      r->task_id, r->dest ? "an empty" : "no");
		c->exchange = util_strdup(r->success_dump);
		cf_skip(&r->c[C_PURGE], "load-destination");
		return;
	}
	cf_pass(c, "DestinationAsset %s", r->dest);

	t0 = util_mono_ms();
	char *pid = cf_submit(r, &r->c[C_PURGE], "PurgeAsset", "DestinationAsset", r->dest, NULL,
			      NULL);
	char *pdest = NULL;
	if (pid)
		cf_poll(r, &r->c[C_PURGE], "purge", pid, &pdest, NULL);
	free(pid);
	free(pdest);
	cf_timed(r, C_PURGE, t0);
}

int conform_run(const struct conform_opts *o)
{
	struct cf_run r;
	memset(&r, 0, sizeof r);
	r.o = o;
	memcpy(r.c, cf_checks, sizeof r.c);
	int64_t start = util_mono_ms(), t0;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
		fprintf(stderr, "apubictl: cannot set up libcurl\n");
		return CTL_TRANSPORT;
	}
	xmlInitParser();
	char err[256];
	if (cf_curl_init(&r, err, sizeof err) < 0) {
		fprintf(stderr, "apubictl: %s\n", err);
		return CTL_TRANSPORT;
	}

	t0 = util_mono_ms();
	cf_check_wsdl(&r);
	cf_timed(&r, C_WSDL, t0);
	if (r.reached) {
		cf_check_load(&r);
		t0 = util_mono_ms();
		cf_check_unknown(&r);
		cf_timed(&r, C_UNKNOWN, t0);
		if (r.task_id) {
			t0 = util_mono_ms();
			cf_check_status_shape(&r, C_QUIRKS, SHAPE_QUIRKS);
			cf_timed(&r, C_QUIRKS, t0);
			t0 = util_mono_ms();
			cf_check_status_shape(&r, C_SOAP12, SHAPE_SOAP12);
			cf_timed(&r, C_SOAP12, t0);
		} else {
			cf_skip(&r.c[C_QUIRKS], "load-taskid");
			cf_skip(&r.c[C_SOAP12], "load-taskid");
		}
		t0 = util_mono_ms();
		cf_check_fault_detail(&r);
		cf_timed(&r, C_FAULT_DETAIL, t0);
		cf_check_success_200(&r);
	} else {
		/* Nothing answers there: the other checks would only repeat it. */
		for (int i = 1; i < C_COUNT; i++)
			cf_skip(&r.c[i], "a reachable endpoint");
	}

	cf_report_text(&r, stdout);
	fflush(stdout);
	int code = CTL_OK;
	for (int i = 0; i < C_COUNT; i++)
		if (r.c[i].required && r.c[i].result != CF_PASS)
			code = CTL_TASK_FAILED;
	if (!r.reached) {
		char *u = url_mask(o->url);
		fprintf(stderr, "apubictl: %s: no answer at all\n", u);
		free(u);
		code = CTL_TRANSPORT;
	}
	if (o->junit &&
	    cf_report_junit(&r, o->junit, (double)(util_mono_ms() - start) / 1000) < 0 &&
	    code == CTL_OK)
		code = CTL_TASK_FAILED;

	for (int i = 0; i < C_COUNT; i++) {
		free(r.c[i].note);
		free(r.c[i].exchange);
	}
	free(r.task_id);
	free(r.dest);
	free(r.success_dump);
	free(r.bad200);
	free(r.bad200_dump);
	free(r.nodetail);
	free(r.nodetail_dump);
	free(r.head_out.p);
	free(r.head_in.p);
	curl_slist_free_all(r.h11);
	curl_slist_free_all(r.h12);
	curl_slist_free_all(r.hget);
	curl_easy_cleanup(r.curl);
	curl_global_cleanup();
	xmlCleanupParser();
	return code;
}

/*
 * server.c - the SOAP listener's serving side: the serving threads, the
 * serve path of one request, and the HTTP status of every answer.
 *
 * Design: the event loop (loop.c) accepts connections, runs TLS
 * handshakes, and reads each request whole into a buffer of the
 * connection's own; only then does it hand the connection to this file's
 * fixed pool of serving threads, each with its own copy of the gSOAP
 * context and its own store connection. The thread serves that one request
 * from memory (server_recv is the engine's frecv, reading the buffer;
 * server_send its fsend, filling the connection's output buffer), writes
 * the answer as far as the socket takes it at once, and gives the
 * connection back to the loop, which writes the rest, waits for the next
 * request, or closes. So a thread never waits on a client: see loop.c.
 * The serve path of one request:
 *   - answers a request the loop refused (framing, 413, 408) with a fault;
 *   - answers bodies that are not SOAP at all with a 400 fault, a POST to
 *     another path with 404;
 *   - frees the request's memory before the next one;
 *   - writes one log line per request, and counts it in metrics.c.
 *
 * HTTP status of faults (server_response): SOAP 1.1 client faults get
 * `client_fault_status` (500 by default, WS-I BP R1126), server faults 500;
 * SOAP 1.2 Sender 400, Receiver 500; an explicit status chosen by an
 * operation (404, 405, 413, 503) is kept. A Retry-After header goes with a
 * 503. Limits (sizes, depth) are set on the master context before it is
 * copied, so every serving context inherits them.
 *
 * Keep-alive: the connection carries the number of requests it may still
 * make (max_keepalive_requests); the last one is answered with
 * Connection: close, and the loop closes gracefully after it (shutdown,
 * then a short drain, so pipelined requests left unread do not make the
 * kernel reset the connection under the answers).
 *
 * Authentication ([auth], auth.c): once the request line and headers are
 * parsed (server_parse, wrapping the engine's fparse) and before anything
 * is served, the Authorization header is checked; a failure is a 401
 * whose WWW-Authenticate challenges auth.c writes (server_posthdr). Every
 * failure gets the same answer, whether the user exists or not; the log
 * line says which it was. Checking before the body also answers the empty
 * probe POST some Digest clients send first (curl --digest) with the 401
 * they wait for instead of an empty-body fault.
 */
#include "server.h"

#include "soapH.h"
#include "APUBIBinding.nsmap"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SERVER_QUEUE_LEN 1024
#define SERVER_MAX_DEPTH 64
#define SERVER_MAX_STRING 65536
#define SERVER_MAX_OCCURS 1000

static const struct config *server_cfg;
static volatile sig_atomic_t *server_stop;
/* The master context once server_bind has bound it. */
static struct soap *server_master;

/* What a serving thread keeps about its connection beyond struct conn,
 * which svc.c and web.c see: soap->user points at `cn`, the first member,
 * so server.c gets back to the whole with a cast. */
struct server_conn {
	struct conn cn;
	struct lconn *lc;          /* the connection being served */
	char peer[64];             /* "203.0.113.7:51234", for log lines */
	const char *authorization; /* this request's Authorization header (gSOAP memory) */
	char user[AUTH_USER_MAX];  /* the authenticated user, "" when none */
	int auth_stale;            /* the 401 should say stale=true */
	int64_t started_us;        /* monotonic, for the duration histogram */
};

static struct server_conn *server_conn_of(struct soap *soap)
{
	return soap->user;
}

/* The engine's callbacks, saved before apubid's wrappers replace them. */
static int (*server_orig_response)(struct soap *, int, ULONG64);
static int (*server_orig_parsehdr)(struct soap *, const char *, const char *);
static int (*server_orig_posthdr)(struct soap *, const char *, const char *);
static int (*server_orig_parse)(struct soap *);

/* The queue between the event loop and serving threads: connections with a
 * whole request read (NULL tells a thread to stop). */
static struct lconn *server_queue[SERVER_QUEUE_LEN];
static int server_qhead, server_qlen;
static pthread_mutex_t server_qlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t server_qnotempty = PTHREAD_COND_INITIALIZER;
static pthread_cond_t server_qnotfull = PTHREAD_COND_INITIALIZER;

static void server_enqueue(struct lconn *lc)
{
	pthread_mutex_lock(&server_qlock);
	while (server_qlen == SERVER_QUEUE_LEN)
		pthread_cond_wait(&server_qnotfull, &server_qlock);
	server_queue[(server_qhead + server_qlen++) % SERVER_QUEUE_LEN] = lc;
	pthread_cond_signal(&server_qnotempty);
	pthread_mutex_unlock(&server_qlock);
}

static struct lconn *server_dequeue(void)
{
	pthread_mutex_lock(&server_qlock);
	while (server_qlen == 0)
		pthread_cond_wait(&server_qnotempty, &server_qlock);
	struct lconn *lc = server_queue[server_qhead];
	server_qhead = (server_qhead + 1) % SERVER_QUEUE_LEN;
	server_qlen--;
	pthread_cond_signal(&server_qnotfull);
	pthread_mutex_unlock(&server_qlock);
	return lc;
}

void server_hand_over(struct lconn *lc)
{
	server_enqueue(lc);
}

static int server_is_sender_fault(struct soap *soap)
{
	const char **code = soap_faultcode(soap);
	return code && *code &&
	       (strcmp(*code, "SOAP-ENV:Client") == 0 || strcmp(*code, "SOAP-ENV:Sender") == 0);
}

/* Chooses the HTTP status of every response (see the file comment). */
static int server_response(struct soap *soap, int status, ULONG64 count)
{
	struct conn *cn = soap->user;
	if ((status > 0 && status < 200) || (status >= 600 && status < SOAP_STOP)) {
		if (status >= SOAP_GET_METHOD && status <= SOAP_HTTP_METHOD)
			status = 405;
		else if (!server_is_sender_fault(soap))
			status = 500;
		else if (soap->version == 2)
			status = 400;
		else
			status = cn ? cn->cfg->client_fault_status : 500;
	}
	if (cn) {
		if (status == SOAP_OK)
			cn->http_status = 200;
		else if (status >= SOAP_FILE && status < SOAP_FILE + 600)
			cn->http_status = status == SOAP_FILE ? 200 : status - SOAP_FILE;
		else if (status >= 200 && status < 600)
			cn->http_status = status;
		else
			cn->http_status = 200;
	}
	return server_orig_response(soap, status, count);
}

/* Refuses an announced body over the limit before reading it. */
static int server_parsehdr(struct soap *soap, const char *key, const char *val)
{
	struct conn *cn = soap->user;
	/* Credentials are auth.c's to decode; the engine does not need a copy
	 * of a Basic password in its own memory. */
	if (cn && key && val && strcasecmp(key, "Authorization") == 0) {
		server_conn_of(soap)->authorization = soap_strdup(soap, val);
		return SOAP_OK;
	}
	if (cn && key && val && strcasecmp(key, "Content-Length") == 0) {
		/* Digits only, and one value: a lenient reading is what
		 * request smuggling behind a proxy feeds on. */
		size_t digits = strspn(val, "0123456789");
		if (digits == 0 || val[digits + strspn(val + digits, " \t")] != '\0') {
			cn->refused = "Content-Length is not a number";
			cn->refused_status = 400;
			return 400;
		}
		errno = 0;
		unsigned long long n = strtoull(val, NULL, 10);
		if (cn->content_length >= 0 && (errno || (int64_t)n != cn->content_length)) {
			cn->refused = "the request has two different Content-Length headers";
			cn->refused_status = 400;
			return 400;
		}
		if (errno || (int64_t)n > cn->cfg->max_request_size) {
			return 413;
		}
		cn->content_length = (int64_t)n;
	}
	if (cn && key && val && strcasecmp(key, "Content-Encoding") == 0)
		cn->encoded = 1;
	return server_orig_parsehdr(soap, key, val);
}

static int server_emit_challenge(void *arg, const char *value)
{
	return server_orig_posthdr(arg, "WWW-Authenticate", value);
}

/* Adds Retry-After to a 503 just before the header block ends, and puts
 * auth.c's challenges in place of the engine's Basic one in a 401. */
static int server_posthdr(struct soap *soap, const char *key, const char *val)
{
	struct conn *cn = soap->user;
	if (key && strcasecmp(key, "WWW-Authenticate") == 0 && server_cfg->auth)
		return auth_challenges(server_cfg->auth, cn && server_conn_of(soap)->auth_stale,
				       server_emit_challenge, soap);
	if (!key && cn && cn->retry_after > 0) {
		char secs[16];
		snprintf(secs, sizeof secs, "%d", cn->retry_after);
		cn->retry_after = 0;
		int rc = server_orig_posthdr(soap, "Retry-After", secs);
		if (rc)
			return rc;
	}
	return server_orig_posthdr(soap, key, val);
}

/* Checks a character reference's code point against XML 1.0. */
static const char *server_scan_ref(uint32_t v)
{
	if (v == 0)
		return "the request holds a NUL character reference (&#0;)";
	if ((v < 0x20 && v != 0x9 && v != 0xa && v != 0xd) || v == 0xfffe || v == 0xffff)
		return "the request holds a reference to a control character XML does not allow";
	if (v >= 0xd800 && v <= 0xdfff)
		return "the request holds a reference to a UTF-16 surrogate";
	if (v > 0x10ffff)
		return "the request holds a character reference beyond Unicode";
	return NULL;
}

/* Scans body bytes as they arrive for what XML 1.0 forbids and gSOAP would
 * quietly alter: invalid UTF-8 (overlong forms and surrogates included),
 * raw control characters, and character references to NUL, controls,
 * surrogates or past U+10FFFF (a "&#0;" would cut a value short once
 * decoded). Returns how many bytes are clean; on a violation cn->refused
 * says why. A compressed body is not scanned (the engine inflates it). */
static size_t server_scan_body(struct conn *cn, const char *buf, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)buf[i];
		if (cn->u8_need > 0) {
			if (c < cn->u8_lo || c > cn->u8_hi)
				goto bad_utf8;
			cn->u8_lo = 0x80;
			cn->u8_hi = 0xbf;
			cn->u8_need--;
			cn->scan_state = 0;
			continue;
		}
		if (c >= 0x80) {
			int more = util_utf8_lead(c, &cn->u8_lo, &cn->u8_hi);
			if (more < 0)
				goto bad_utf8;
			cn->u8_need = more;
			cn->scan_state = 0;
			continue;
		}
		if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
			cn->refused = "the request holds a control character XML does not allow";
			cn->refused_status = 400;
			return i;
		}
		/* States: 0 text, 1 "&", 2 "&#", 3 decimal digits, 4 "&#x", 5 hex. */
		int digit = c >= '0' && c <= '9';
		int hex = digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
		uint32_t hv = digit ? (uint32_t)(c - '0') : (uint32_t)((c | 0x20) - 'a' + 10);
		switch (cn->scan_state) {
		case 1:
			cn->scan_state = c == '#' ? 2 : 0;
			break;
		case 2:
			if (c == 'x' || c == 'X')
				cn->scan_state = 4, cn->scan_val = 0;
			else if (digit)
				cn->scan_state = 3, cn->scan_val = hv;
			else
				cn->scan_state = 0;
			break;
		case 3:
		case 5:
			if (c == ';') {
				const char *why = server_scan_ref(cn->scan_val);
				if (why) {
					cn->refused = why;
					cn->refused_status = 400;
					return i;
				}
				cn->scan_state = 0;
			} else if (cn->scan_state == 3 ? digit : hex) {
				uint32_t base = cn->scan_state == 3 ? 10 : 16;
				cn->scan_val = cn->scan_val > 0x110000 ? 0x110001
								       : cn->scan_val * base + hv;
			} else {
				cn->scan_state = 0;
			}
			break;
		case 4:
			cn->scan_state = hex ? 5 : 0;
			cn->scan_val = hex ? hv : 0;
			break;
		default:
			cn->scan_state = 0;
		}
		if (c == '&')
			cn->scan_state = 1;
	}
	return n;
bad_utf8:
	cn->refused = "the request is not valid UTF-8";
	cn->refused_status = 400;
	return 0;
}

/* The engine's frecv: the request, from the buffer the loop filled. The
 * header block and the body are given out separately, so that the body
 * scanner sees body bytes only; at the end of the request the engine sees
 * end of input, so a truncated envelope is answered at once. */
static size_t server_recv(struct soap *soap, char *buf, size_t len)
{
	struct conn *cn = soap->user;
	struct lconn *lc = cn ? server_conn_of(soap)->lc : NULL;
	if (!lc || cn->refused || lc->rd >= lc->req_len) {
		if (cn)
			cn->body_left = 0;
		return 0;
	}
	size_t head = lc->fr.head_len;
	size_t end = lc->rd < head ? head : lc->req_len;
	size_t n = end - lc->rd < len ? end - lc->rd : len;
	memcpy(buf, lc->in + lc->rd, n);
	int body = lc->rd >= head;
	lc->rd += n;
	cn->received += (int64_t)n;
	if (body && !cn->encoded) {
		size_t clean = server_scan_body(cn, buf, n);
		if (cn->refused) {
			lc->close_after = 1;
			return clean;
		}
	}
	return n;
}

/* The engine's fsend: the answer goes to the connection's output buffer,
 * written once the request is served (server_flush). */
static int server_send(struct soap *soap, const char *s, size_t n)
{
	struct conn *cn = soap->user;
	struct lconn *lc = cn ? server_conn_of(soap)->lc : NULL;
	if (!lc)
		return SOAP_EOF;
	if (n == 0) /* an empty flush (HEAD), with no buffer behind it */
		return SOAP_OK;
	if (lc->out_len + n > lc->out_cap) {
		size_t cap = lc->out_cap ? lc->out_cap : 4096;
		while (cap < lc->out_len + n)
			cap *= 2;
		char *out = realloc(lc->out, cap);
		if (!out)
			return SOAP_EOM;
		lc->out = out;
		lc->out_cap = cap;
	}
	memcpy(lc->out + lc->out_len, s, n);
	lc->out_len += n;
	return SOAP_OK;
}

/* The engine's fclose: the loop closes connections, not the engine. */
static int server_close(struct soap *soap)
{
	(void)soap;
	return SOAP_OK;
}

static const char *server_method(int status)
{
	switch (status) {
	case SOAP_GET:
		return "GET";
	case SOAP_PUT:
		return "PUT";
	case SOAP_PATCH:
		return "PATCH";
	case SOAP_DEL:
		return "DELETE";
	case SOAP_HEAD:
		return "HEAD";
	case SOAP_OPTIONS:
		return "OPTIONS";
	case SOAP_CONNECT:
		return "CONNECT";
	default:
		return "POST";
	}
}

/* Parses the request line and headers (the engine's fparse), then, with
 * [auth], lets the request through only with valid credentials: anything
 * else is answered 401 before a GET handler runs or a body is read. */
static int server_parse(struct soap *soap)
{
	int rc = server_orig_parse(soap);
	struct server_conn *sc = server_conn_of(soap);
	if (rc != SOAP_OK || !sc || !server_cfg->auth)
		return rc;
	char user[AUTH_USER_MAX], why[160];
	int r = auth_check(server_cfg->auth, sc->authorization, server_method(soap->status),
			   soap->path, user, sizeof user, why, sizeof why);
	if (r == AUTH_OK) {
		snprintf(sc->user, sizeof sc->user, "%s", user);
		return SOAP_OK;
	}
	if (r == AUTH_MISSING)
		log_debug("authentication required: no credentials from %s", sc->peer);
	else if (r == AUTH_STALE)
		log_info("authentication: stale nonce for user \"%s\" from %s, challenged again", user,
			 sc->peer);
	else
		log_warn("authentication failed for user \"%s\" from %s: %s", user, sc->peer, why);
	sc->auth_stale = r == AUTH_STALE;
	return 401;
}

/* Microseconds on the monotonic clock: the duration histogram's finest
 * bucket is half a millisecond, finer than util_mono_ms. */
static int64_t server_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The log line and the metrics of one answered request: called once for
 * every request that got a status line. */
static void server_log_request(struct soap *soap, struct conn *cn)
{
	if (!cn->http_status)
		return;
	struct server_conn *sc = server_conn_of(soap);
	int64_t ms = util_mono_ms() - cn->started_ms;
	/* cn->op is one of metrics.c's fixed names or something it counts
	 * as "other" (NULL, "GET"). */
	metrics_request(cn->op, cn->http_status, server_mono_us() - sc->started_us);
	int fault = cn->http_status != 200;
	const char **fs = fault && soap->fault ? soap_faultstring(soap) : NULL;
	/* A structured line: [log] format = json makes each field a member. */
	struct log_field f[7];
	int n = 0;
	f[n++] = (struct log_field){ "op", cn->op ? cn->op : "-", 0, 0 };
	f[n++] = (struct log_field){ "status", NULL, cn->http_status, 0 };
	f[n++] = (struct log_field){ "ms", NULL, (long long)ms, 0 };
	if (sc->peer[0])
		f[n++] = (struct log_field){ "peer", sc->peer, 0, 0 };
	if (sc->user[0])
		f[n++] = (struct log_field){ "user", sc->user, 0, 1 };
	if (cn->taskid[0])
		f[n++] = (struct log_field){ "task", cn->taskid, 0, 0 };
	if (fs && *fs)
		f[n++] = (struct log_field){ "fault", *fs, 0, 1 };
	log_event(cn->http_status >= 500 ? LOG_WARN : LOG_INFO, "request", f, n);
}

/* Answers a request refused before it was parsed (cn->refused). */
static void server_send_refused(struct soap *soap, struct conn *cn)
{
	svc_fault(soap, 1, cn->refused);
	soap->error = cn->refused_status ? cn->refused_status : 400;
	soap_send_fault(soap);
}

/* 1 when the engine stopped inflating a compressed body because it grew
 * past the size limit (it then reports end of input). */
static int server_inflated_too_much(struct soap *soap)
{
	return ((struct conn *)soap->user)->encoded && soap->d_stream &&
	       (int64_t)soap->d_stream->total_out >= server_cfg->max_request_size;
}

static void server_send_too_large(struct soap *soap)
{
	char msg[128];
	snprintf(msg, sizeof msg, "the request body is larger than max_request_size (%lld bytes)",
		 (long long)server_cfg->max_request_size);
	svc_fault(soap, 1, msg);
	soap->error = 413;
	soap_send_fault(soap);
}

/* Answers a request the client stopped sending with 408. */
static void server_send_stalled(struct soap *soap, struct conn *cn)
{
	char msg[160];
	snprintf(msg, sizeof msg,
		 "the request did not arrive in time (header_timeout %d s, recv_timeout %d s, "
		 "request_timeout %d s)",
		 server_cfg->header_timeout, server_cfg->recv_timeout, server_cfg->request_timeout);
	svc_fault(soap, 1, msg);
	soap->error = 408;
	soap_send_fault(soap);
}

/* Serves one request whose headers have been read; returns 0 to keep the
 * connection, -1 to close it. */
static int server_dispatch(struct soap *soap, struct conn *cn)
{
	const char *path = soap->path;
	size_t plen = strcspn(path, "?");
	if (plen != strlen(server_cfg->endpoint) || strncmp(path, server_cfg->endpoint, plen) != 0) {
		char msg[300];
		snprintf(msg, sizeof msg, "no APUBI endpoint at %.200s (it is at %s)", path,
			 server_cfg->endpoint);
		svc_fault(soap, 1, msg);
		soap->error = 404;
		soap_send_fault(soap);
		return -1;
	}
	if (soap_envelope_begin_in(soap) || soap_recv_header(soap) || soap_body_begin_in(soap) ||
	    soap_serve_request(soap)) {
		int e = soap->error;
		log_debug("request failed in the engine: error %d, %lld bytes read%s", e,
			  (long long)cn->received, cn->too_large ? ", body too large" : "");
		if (cn->refused) {
			server_send_refused(soap, cn);
			return -1;
		}
		if (e == SOAP_EOF &&
		    (cn->received > server_cfg->max_request_size || server_inflated_too_much(soap)))
			cn->too_large = 1;
		if (e == SOAP_EOF && cn->too_large) {
			server_send_too_large(soap);
			return -1;
		}
		if (e == SOAP_EOF && cn->body_left == 0) {
			svc_fault(soap, 1, "the request body ends before its SOAP envelope does");
			soap->error = 400;
			soap_send_fault(soap);
			return -1;
		}
		if (e == SOAP_EOF)
			return -1;
		if (e == SOAP_NO_DATA || e >= SOAP_STOP || e == SOAP_NO_METHOD ||
		    e == SOAP_TAG_MISMATCH || e == SOAP_SYNTAX_ERROR) {
			/* Not an APUBI request at all: say so with 400, whatever
			 * the SOAP version, as the contract decides. */
			const char *why = e == SOAP_NO_DATA ? "the request body is empty"
					 : e == SOAP_NO_METHOD
						 ? "the SOAP body holds no APUBI operation (LoadAsset, PurgeAsset or GetTaskStatus)"
						 : "the request body is not a SOAP envelope";
			if (soap->version != 0 && e != SOAP_NO_DATA && e < SOAP_STOP &&
			    e != SOAP_NO_METHOD) {
				/* A SOAP envelope that is malformed inside. */
				soap_set_fault(soap);
				svc_fault_detail(soap);
			} else {
				svc_fault(soap, 1, why);
				soap->error = 400;
			}
		} else if (e < 200 || e >= 600) {
			soap_set_fault(soap);
			svc_fault_detail(soap);
		}
		soap_send_fault(soap);
		return -1;
	}
	return soap->keep_alive ? 0 : -1;
}

/* Serves the one request the loop read into lc->in (or refused), with the
 * answer left in lc->out; sets lc->close_after when the connection ends
 * with it. */
static void server_serve(struct soap *soap, struct server_conn *sc, struct lconn *lc)
{
	struct conn *cn = &sc->cn;
	sc->lc = lc;
	snprintf(sc->peer, sizeof sc->peer, "%s", lc->peer);
	soap->socket = lc->fd;
	soap->bufidx = 0;
	soap->buflen = 0;
	/* The last request allowed on the connection sees 0, and its answer
	 * says Connection: close. */
	if (lc->ka_left > 0)
		lc->ka_left--;
	soap->keep_alive = lc->ka_left != 0;
	cn->op = NULL;
	cn->taskid[0] = '\0';
	cn->http_status = 0;
	cn->retry_after = 0;
	cn->started_ms = lc->request_ms ? lc->request_ms : util_mono_ms();
	sc->started_us = server_mono_us();
	cn->received = 0;
	cn->body_left = -1;
	cn->content_length = -1;
	cn->too_large = 0;
	cn->encoded = 0;
	cn->refused = NULL;
	cn->refused_status = 0;
	cn->scan_state = 0;
	cn->u8_need = 0;
	cn->scan_val = 0;
	sc->authorization = NULL;
	sc->user[0] = '\0';
	sc->auth_stale = 0;
	soap_begin(soap);
	int rc;
	if (lc->refused_status == 408) {
		soap->keep_alive = 0;
		soap_begin_send(soap);
		server_send_stalled(soap, cn);
		server_log_request(soap, cn);
		rc = -1;
	} else if (lc->refused_status == 413) {
		soap->keep_alive = 0;
		server_send_too_large(soap);
		server_log_request(soap, cn);
		rc = -1;
	} else if (lc->refused_status) {
		soap->keep_alive = 0;
		cn->refused = lc->refused;
		cn->refused_status = lc->refused_status;
		server_send_refused(soap, cn);
		server_log_request(soap, cn);
		rc = -1;
	} else if (soap_begin_recv(soap)) {
		int e = soap->error;
		if (cn->refused) {
			server_send_refused(soap, cn);
			server_log_request(soap, cn);
			rc = -1;
		} else if (e == SOAP_STOP || e == SOAP_FORM || e == SOAP_HTML ||
			   (e >= SOAP_FILE && e < SOAP_FILE + 600)) {
			/* A GET (or HEAD) answered by web_get or the engine. */
			server_log_request(soap, cn);
			rc = soap->keep_alive ? 0 : -1;
		} else if (e == SOAP_EOF && server_inflated_too_much(soap)) {
			server_send_too_large(soap);
			server_log_request(soap, cn);
			rc = -1;
		} else if (e == SOAP_EOF) {
			log_debug("request ended before its headers did: %lld bytes read",
				  (long long)cn->received);
			rc = -1;
		} else {
			if (e == SOAP_NO_DATA) {
				svc_fault(soap, 1, "the request body is empty");
				soap->error = 400;
			} else if (e == SOAP_HDR) {
				svc_fault(soap, 1, "a request header line is longer than 8 KB");
				soap->error = 431;
			} else if (e < 200 || e >= 600) {
				soap_set_fault(soap);
				svc_fault_detail(soap);
			} else if (e == 401) {
				/* One answer for every failure: it must not
				 * tell which part of the credentials was
				 * wrong, nor whether the user exists. */
				svc_fault(soap, 1, "authentication required");
				soap->error = 401;
			} else if (e == 413) {
				char msg[128];
				snprintf(msg, sizeof msg,
					 "the request body is larger than max_request_size (%lld bytes)",
					 (long long)server_cfg->max_request_size);
				svc_fault(soap, 1, msg);
				soap->error = 413;
			} else if (!soap->fault) {
				svc_fault(soap, 1, "the request was refused");
				soap->error = e;
			}
			soap_send_fault(soap);
			server_log_request(soap, cn);
			rc = -1;
		}
	} else {
		rc = server_dispatch(soap, cn);
		server_log_request(soap, cn);
	}
	if (rc < 0 || !soap->keep_alive || *server_stop)
		lc->close_after = 1;
	soap_destroy(soap);
	soap_end(soap);
	soap->socket = SOAP_INVALID_SOCKET;
	sc->lc = NULL;
}

static void *server_thread(void *arg)
{
	struct soap *soap = arg;
	struct server_conn *sc = server_conn_of(soap);
	for (;;) {
		struct lconn *lc = server_dequeue();
		if (!lc)
			break;
		server_serve(soap, sc, lc);
		/* What the socket takes now; the loop writes the rest. */
		if (loop_write(lc) < 0) {
			lc->out_off = lc->out_len;
			lc->close_after = 1;
		}
		loop_give_back(lc);
	}
	return NULL;
}

/* The master context with every limit and hook set, not yet bound; its
 * copies serve the connections. */
static struct soap *server_prepare(const struct config *c)
{
	server_cfg = c;
	int mode = SOAP_IO_KEEPALIVE | SOAP_C_UTFSTRING | SOAP_XML_TREE;
	struct soap *master = soap_new2(mode, mode | SOAP_XML_NOTYPE);
	if (!master) {
		log_error("cannot create the SOAP context");
		return NULL;
	}
	soap_set_namespaces(master, namespaces);
	master->bind_flags = SO_REUSEADDR;
	master->bind_inet6 = strchr(c->listen_host, ':') != NULL;
	/* Negative is microseconds: the stop flag is seen within 200 ms. */
	master->accept_timeout = -200000;
	/* The loop keeps the time limits; the engine reads from memory. Its
	 * size limit, a silent close, stays as a backstop above the loop's. */
	master->recv_timeout = c->recv_timeout;
	master->send_timeout = c->send_timeout;
	master->recv_maxlength = (ULONG64)c->max_request_size + 2 * SOAP_HDRLEN;
	master->max_keep_alive = c->max_keepalive_requests;
	master->maxlevel = SERVER_MAX_DEPTH;
	master->maxlength = SERVER_MAX_STRING;
	master->maxoccurs = SERVER_MAX_OCCURS;
	master->fget = web_get;
	master->fhead = web_head;
	server_orig_response = master->fresponse;
	master->fresponse = server_response;
	server_orig_parsehdr = master->fparsehdr;
	master->fparsehdr = server_parsehdr;
	server_orig_posthdr = master->fposthdr;
	master->fposthdr = server_posthdr;
	master->fclose = server_close;
	master->frecv = server_recv;
	master->fsend = server_send;
	server_orig_parse = master->fparse;
	master->fparse = server_parse;

	if (c->tls_cert_file && tls_init(master, c) < 0) {
		soap_free(master);
		return NULL;
	}
	return master;
}

int server_bind(const struct config *c)
{
	struct soap *master = server_prepare(c);
	if (!master)
		return -1;
	if (loop_fit_files(c) < 0) {
		soap_free(master);
		return -1;
	}
	if (c->auth && (c->auth_methods & AUTH_BASIC) && !c->tls_cert_file)
		log_warn("[auth] Basic without [tls]: passwords cross the network readable by anyone "
			 "on the path, unless a TLS proxy sits in front");
	if (!soap_valid_socket(soap_bind(master, c->listen_host, c->listen_port, 128))) {
		char buf[256];
		soap_sprint_fault(master, buf, sizeof buf);
		log_error("cannot listen on %s:%d: %s", c->listen_host, c->listen_port, buf);
		soap_free(master);
		return -1;
	}
	server_master = master;
	return 0;
}


int server_run(const struct config *c, volatile sig_atomic_t *stop)
{
	if (!server_master && server_bind(c) < 0)
		return -1;
	server_cfg = c;
	server_stop = stop;
	struct soap *master = server_master;

	int n = c->threads;
	struct soap **ctx = util_calloc((size_t)n, sizeof *ctx);
	struct server_conn *conns = util_calloc((size_t)n, sizeof *conns);
	pthread_t *tids = util_calloc((size_t)n, sizeof *tids);
	int started = 0, rc = 0;
	for (int i = 0; i < n; i++) {
		char err[512];
		conns[i].cn.cfg = c;
		conns[i].cn.store = store_open(c, err, sizeof err);
		if (!conns[i].cn.store) {
			log_error("%s", err);
			rc = -1;
			break;
		}
		ctx[i] = soap_copy(master);
		if (!ctx[i]) {
			log_error("cannot copy the SOAP context");
			rc = -1;
			break;
		}
		ctx[i]->user = &conns[i];
		if (pthread_create(&tids[i], NULL, server_thread, ctx[i]) != 0) {
			log_error("cannot start serving thread %d", i);
			rc = -1;
			break;
		}
		started++;
	}
	loop_set_master(master);
	if (rc == 0 && loop_start(c, master->master, stop) < 0)
		rc = -1;
	if (rc == 0) {
		log_info("listening on %s://%s%s%s:%d%s (%d serving threads%s%s%s)",
			 c->tls_cert_file ? "https" : "http", master->bind_inet6 ? "[" : "",
			 c->listen_host, master->bind_inet6 ? "]" : "", c->listen_port, c->endpoint, n,
			 c->tls_client_ca ? ", client certificates required" : "",
			 c->auth ? ", authentication: " : "",
			 !c->auth ? ""
			 : c->auth_methods == (AUTH_BASIC | AUTH_DIGEST) ? "digest, basic"
			 : c->auth_methods == AUTH_DIGEST ? "digest" : "basic");
		/* Until *stop, and then until the requests in flight are answered. */
		loop_run();
		log_info("stopped: no new connections, requests in flight answered");
	}
	if (soap_valid_socket(master->master)) {
		close(master->master);
		master->master = SOAP_INVALID_SOCKET;
	}
	for (int i = 0; i < started; i++)
		server_enqueue(NULL);
	for (int i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	for (int i = 0; i < n; i++) {
		if (ctx[i]) {
			ctx[i]->user = NULL;
			soap_destroy(ctx[i]);
			soap_end(ctx[i]);
			soap_free(ctx[i]);
		}
		store_close(conns[i].cn.store);
	}
	free(ctx);
	free(conns);
	free(tids);
	soap_destroy(master);
	soap_end(master);
	soap_free(master);
	server_master = NULL;
	return rc;
}

/* The fuzz target's way in: one serving context, as server_run builds
 * them, fed by connections the caller makes (a socketpair holding the
 * request bytes, its writing side shut), through the same framing and
 * serve path as the loop's, one request after another. */
static struct soap *server_fuzz_ctx;
static struct server_conn server_fuzz_conn;

int server_fuzz_init(const struct config *c, volatile sig_atomic_t *stop)
{
	char err[512];
	struct soap *master = server_prepare(c);
	if (!master)
		return -1;
	server_master = master;
	server_stop = stop;
	server_fuzz_conn.cn.cfg = c;
	server_fuzz_conn.cn.store = store_open(c, err, sizeof err);
	if (!server_fuzz_conn.cn.store) {
		log_error("%s", err);
		return -1;
	}
	server_fuzz_ctx = soap_copy(master);
	if (!server_fuzz_ctx)
		return -1;
	server_fuzz_ctx->user = &server_fuzz_conn;
	return 0;
}

void server_fuzz_serve(int fd)
{
	struct lconn lc = { .fd = fd, .ka_left = server_cfg->max_keepalive_requests };
	snprintf(lc.peer, sizeof lc.peer, "fuzz");
	framing_init(&lc.fr);
	size_t cap = 0;
	for (;;) {
		if (cap - lc.in_len < 16384) {
			cap = cap ? cap * 2 : 65536;
			lc.in = realloc(lc.in, cap);
			if (!lc.in)
				abort();
		}
		ssize_t n = read(fd, lc.in + lc.in_len, cap - lc.in_len);
		if (n <= 0)
			break;
		lc.in_len += (size_t)n;
	}
	lc.in_cap = cap;
	while (lc.in_len && loop_frame(server_cfg, &lc)) {
		server_serve(server_fuzz_ctx, &server_fuzz_conn, &lc);
		for (size_t off = 0; off < lc.out_len;) {
			ssize_t w = write(fd, lc.out + off, lc.out_len - off);
			if (w <= 0)
				break;
			off += (size_t)w;
		}
		lc.out_len = 0;
		if (lc.close_after)
			break;
		loop_next_request(&lc);
	}
	free(lc.in);
	free(lc.out);
	close(fd);
	soap_destroy(server_fuzz_ctx);
	soap_end(server_fuzz_ctx);
}

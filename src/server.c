/*
 * server.c - the SOAP listener: accept loop, serving threads, and the HTTP
 * status of every answer.
 *
 * Design: the main thread binds and accepts; accepted sockets go through a
 * bounded queue to a fixed pool of serving threads, each with its own copy
 * of the gSOAP context and its own store connection. A serving thread runs
 * apubid's own serve loop (not the generated soap_serve) so that it can:
 *   - park a connection that has no request waiting (a new one that has
 *     sent nothing yet, or a keep-alive one between requests) with the
 *     parker thread, which watches every parked socket in one epoll set
 *     and queues it again once bytes arrive, so an idle client holds no
 *     serving thread; a connection is parked only when gSOAP has no bytes
 *     of it buffered (pipelined requests are served at once). TLS
 *     connections are not parked: their OpenSSL state lives in the
 *     serving context, so they wait in poll() as before;
 *   - answer bodies that are not SOAP at all with a 400 fault, a POST to
 *     another path with 404, an oversized body with 413;
 *   - free each request's memory before the next one on the connection;
 *   - write one log line per request, and count it in metrics.c.
 *
 * HTTP status of faults (server_response): SOAP 1.1 client faults get
 * `client_fault_status` (500 by default, WS-I BP R1126), server faults 500;
 * SOAP 1.2 Sender 400, Receiver 500; an explicit status chosen by an
 * operation (404, 405, 413, 503) is kept. A Retry-After header goes with a
 * 503. Limits (sizes, depth, timeouts) are set on the master context
 * before it is copied, so every serving context inherits them.
 *
 * TLS ([tls]): the certificate and key are loaded into the master's
 * SSL_CTX by server_bind, while apubid still has the privileges to read
 * them; copies share that context. The handshake runs in the serving
 * thread that dequeued the socket (soap_ssl_accept), bounded by the
 * send/receive timeouts, so a client that connects and stays silent holds
 * one serving thread for a while, never the accept loop. TLS 1.2 and 1.3
 * only; with client_ca, a client must present a certificate chaining to
 * that CA alone (the system's CAs are not consulted). Wherever this file
 * polls the socket, bytes OpenSSL has already decrypted (SSL_pending) count
 * as readable: poll() cannot see them.
 *
 * Authentication ([auth], auth.c): once the request line and headers are
 * parsed (server_parse, wrapping the engine's fparse) and before anything
 * is served or a body read, the Authorization header is checked; a
 * failure is a 401 whose WWW-Authenticate challenges auth.c writes
 * (server_posthdr). Every failure gets the same answer, whether the user
 * exists or not; the log line says which it was. Checking before the body
 * also answers the empty probe POST some Digest clients send first (curl
 * --digest) with the 401 they wait for instead of an empty-body fault.
 */
#include "apubid.h"

#include "soapH.h"
#include "APUBIBinding.nsmap"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SERVER_QUEUE_LEN 1024
#define SERVER_MAX_DEPTH 64
#define SERVER_MAX_STRING 65536
#define SERVER_MAX_OCCURS 1000
#define SERVER_LINGER_MS 2000
#define SERVER_LINGER_BYTES (64 << 20)

static const struct config *server_cfg;
static volatile sig_atomic_t *server_stop;
/* The master context once server_bind has bound it. */
static struct soap *server_master;

/* What a serving thread keeps about its connection beyond struct conn,
 * which svc.c and web.c see: soap->user points at `cn`, the first member,
 * so server.c gets back to the whole with a cast. */
struct server_conn {
	struct conn cn;
	char peer[64];             /* "203.0.113.7:51234", for log lines */
	const char *authorization; /* this request's Authorization header (gSOAP memory) */
	char user[AUTH_USER_MAX];  /* the authenticated user, "" when none */
	int auth_stale;            /* the 401 should say stale=true */
	int64_t started_us;        /* monotonic, for the duration histogram */
	/* The header block as read so far, checked by framing.c. */
	struct framing fr;
	char *head;
	size_t head_len, head_cap;
};

static struct server_conn *server_conn_of(struct soap *soap)
{
	return soap->user;
}

/* The engine's callbacks, saved before apubid's wrappers replace them. */
static int (*server_orig_response)(struct soap *, int, ULONG64);
static int (*server_orig_parsehdr)(struct soap *, const char *, const char *);
static int (*server_orig_posthdr)(struct soap *, const char *, const char *);
static int (*server_orig_close)(struct soap *);
static size_t (*server_orig_recv)(struct soap *, char *, size_t);
static int (*server_orig_parse)(struct soap *);

/* A connection for a serving thread: a new one (ka_left SERVER_NEW), or
 * a parked keep-alive one with ka_left requests still allowed on it. */
#define SERVER_NEW (-1)
struct server_job {
	SOAP_SOCKET s;
	int ka_left;
};

/* The queue between the accept loop (and the parker) and serving threads. */
static struct server_job server_queue[SERVER_QUEUE_LEN];
static int server_qhead, server_qlen;
static pthread_mutex_t server_qlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t server_qnotempty = PTHREAD_COND_INITIALIZER;
static pthread_cond_t server_qnotfull = PTHREAD_COND_INITIALIZER;

static void server_enqueue(SOAP_SOCKET s, int ka_left)
{
	pthread_mutex_lock(&server_qlock);
	while (server_qlen == SERVER_QUEUE_LEN)
		pthread_cond_wait(&server_qnotfull, &server_qlock);
	struct server_job *j = &server_queue[(server_qhead + server_qlen++) % SERVER_QUEUE_LEN];
	j->s = s;
	j->ka_left = ka_left;
	pthread_cond_signal(&server_qnotempty);
	pthread_mutex_unlock(&server_qlock);
}

static struct server_job server_dequeue(void)
{
	pthread_mutex_lock(&server_qlock);
	while (server_qlen == 0)
		pthread_cond_wait(&server_qnotempty, &server_qlock);
	struct server_job j = server_queue[server_qhead];
	server_qhead = (server_qhead + 1) % SERVER_QUEUE_LEN;
	server_qlen--;
	pthread_cond_signal(&server_qnotfull);
	pthread_mutex_unlock(&server_qlock);
	return j;
}

/* ---- the parker: idle connections wait in one epoll set --------------- */

/* Parked sockets are tracked in a table indexed by descriptor, linked in
 * parking order; the parker closes those idle past their deadline
 * (recv_timeout for a connection that has sent nothing yet,
 * keepalive_timeout between requests) and every one when apubid stops.
 * Descriptors at or above the table's size are not parked. */
#define SERVER_PARK_MAX 65536
struct server_parked {
	int64_t deadline_ms; /* monotonic */
	int ka_left;
	int prev, next;      /* -1 ends the list */
	int parked;
};
static struct server_parked *server_parked;
static int server_park_size, server_park_head = -1, server_park_count;
static int server_epfd = -1;
static int server_parker_running;
static pthread_t server_parker_thread;
static pthread_mutex_t server_park_lock = PTHREAD_MUTEX_INITIALIZER;

static void server_park_unlink(int fd)
{
	struct server_parked *p = &server_parked[fd];
	if (p->prev >= 0)
		server_parked[p->prev].next = p->next;
	else
		server_park_head = p->next;
	if (p->next >= 0)
		server_parked[p->next].prev = p->prev;
	p->parked = 0;
	server_park_count--;
}

/* Hands an idle connection to the parker. Returns 0, or -1 when it cannot
 * be parked (the caller keeps it). */
static int server_park(SOAP_SOCKET s, int ka_left)
{
	if (s < 0 || s >= server_park_size)
		return -1;
	int64_t wait = ka_left == SERVER_NEW ? server_cfg->recv_timeout
					      : server_cfg->keepalive_timeout;
	pthread_mutex_lock(&server_park_lock);
	if (!server_parker_running) {
		pthread_mutex_unlock(&server_park_lock);
		return -1;
	}
	struct server_parked *p = &server_parked[s];
	p->deadline_ms = util_mono_ms() + wait * 1000;
	p->ka_left = ka_left;
	p->prev = -1;
	p->next = server_park_head;
	if (server_park_head >= 0)
		server_parked[server_park_head].prev = s;
	server_park_head = s;
	p->parked = 1;
	server_park_count++;
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT, .data.fd = s };
	int rc = epoll_ctl(server_epfd, EPOLL_CTL_MOD, s, &ev);
	if (rc < 0 && errno == ENOENT)
		rc = epoll_ctl(server_epfd, EPOLL_CTL_ADD, s, &ev);
	if (rc < 0) {
		log_warn("cannot park a connection: %s", strerror(errno));
		server_park_unlink(s);
	}
	pthread_mutex_unlock(&server_park_lock);
	return rc < 0 ? -1 : 0;
}

static void *server_parker(void *arg)
{
	(void)arg;
	struct epoll_event ev[64];
	int64_t next_sweep = 0;
	while (!*server_stop) {
		int n = epoll_wait(server_epfd, ev, 64, 200);
		for (int i = 0; i < n; i++) {
			int fd = ev[i].data.fd, ka_left = 0, was = 0;
			pthread_mutex_lock(&server_park_lock);
			if (fd >= 0 && fd < server_park_size && server_parked[fd].parked) {
				ka_left = server_parked[fd].ka_left;
				server_park_unlink(fd);
				was = 1;
			}
			pthread_mutex_unlock(&server_park_lock);
			if (was)
				server_enqueue(fd, ka_left);
		}
		int64_t now = util_mono_ms();
		if (now < next_sweep)
			continue;
		next_sweep = now + 250;
		pthread_mutex_lock(&server_park_lock);
		for (int fd = server_park_head, next; fd >= 0; fd = next) {
			next = server_parked[fd].next;
			if (server_parked[fd].deadline_ms <= now) {
				server_park_unlink(fd);
				close(fd);
			}
		}
		pthread_mutex_unlock(&server_park_lock);
	}
	/* Stopping: nothing parked has a request in flight. */
	pthread_mutex_lock(&server_park_lock);
	server_parker_running = 0;
	while (server_park_head >= 0) {
		int fd = server_park_head;
		server_park_unlink(fd);
		close(fd);
	}
	pthread_mutex_unlock(&server_park_lock);
	return NULL;
}

/* Starts the parker; without it (no epoll, or TLS), connections wait in
 * their serving thread as before. */
static void server_parker_start(void)
{
	struct rlimit rl;
	int size = SERVER_PARK_MAX;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < (rlim_t)size)
		size = (int)rl.rlim_cur;
	server_epfd = epoll_create1(EPOLL_CLOEXEC);
	if (server_epfd < 0) {
		log_warn("epoll: %s; idle connections will hold serving threads", strerror(errno));
		return;
	}
	server_parked = util_calloc((size_t)size, sizeof *server_parked);
	server_park_size = size;
	server_park_head = -1;
	server_park_count = 0;
	server_parker_running = 1;
	if (pthread_create(&server_parker_thread, NULL, server_parker, NULL) != 0) {
		log_warn("cannot start the connection parker; idle connections will hold serving threads");
		server_parker_running = 0;
		close(server_epfd);
		server_epfd = -1;
	}
}

static void server_parker_join(void)
{
	if (server_epfd < 0)
		return;
	pthread_join(server_parker_thread, NULL);
	close(server_epfd);
	server_epfd = -1;
	free(server_parked);
	server_parked = NULL;
	server_park_size = 0;
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
			cn->linger = 1;
			return 400;
		}
		errno = 0;
		unsigned long long n = strtoull(val, NULL, 10);
		if (cn->content_length >= 0 && (errno || (int64_t)n != cn->content_length)) {
			cn->refused = "the request has two different Content-Length headers";
			cn->refused_status = 400;
			cn->linger = 1;
			return 400;
		}
		if (errno || (int64_t)n > cn->cfg->max_request_size) {
			cn->linger = 1;
			return 413;
		}
		cn->content_length = (int64_t)n;
	}
	if (cn && key && val && strcasecmp(key, "Content-Encoding") == 0)
		cn->encoded = 1;
	if (cn && key && val && strcasecmp(key, "Transfer-Encoding") == 0 && strcasestr(val, "chunked"))
		cn->chunked = 1;
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

/* Before closing a connection whose request body was refused unread,
 * drains it for a moment: closing with unread data makes the kernel send a
 * reset, and the client would lose the 413 it was sent. */
static int server_close(struct soap *soap)
{
	struct conn *cn = soap->user;
	if (cn && cn->linger && soap_valid_socket(soap->socket)) {
		cn->linger = 0;
		shutdown(soap->socket, SHUT_WR);
		int64_t until = util_mono_ms() + SERVER_LINGER_MS;
		size_t total = 0;
		char buf[16384];
		while (total < SERVER_LINGER_BYTES) {
			int64_t left = until - util_mono_ms();
			if (left <= 0)
				break;
			struct pollfd p = { .fd = soap->socket, .events = POLLIN };
			if (poll(&p, 1, (int)left) <= 0)
				break;
			ssize_t n = recv(soap->socket, buf, sizeof buf, 0);
			if (n <= 0)
				break;
			total += (size_t)n;
		}
	}
	return server_orig_close(soap);
}

/* Follows the blank line that ends a header block ("\r\n\r\n", or bare
 * "\n\n" as lenient servers accept) through `n` bytes. Returns how many
 * bytes up to and including its end, or n when it has not ended. */
static size_t server_scan_headers(struct conn *cn, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char ch = p[i];
		if (ch == '\n') {
			if (cn->hdr_state == 1 || cn->hdr_state == 2) {
				cn->hdr_done = 1;
				return i + 1;
			}
			cn->hdr_state = 1;
		} else if (ch == '\r') {
			cn->hdr_state = cn->hdr_state == 1 ? 2 : 0;
		} else {
			cn->hdr_state = 0;
		}
	}
	return n;
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

/* Checks the header block read so far against HTTP/1.1's grammar
 * (framing.c): keeps a copy of it until it is complete, since a line may
 * arrive in pieces. Returns 0, or -1 with cn->refused set. */
static int server_frame(struct soap *soap, struct conn *cn, const char *buf, size_t n)
{
	struct server_conn *sc = server_conn_of(soap);
	if (sc->fr.head_len || n == 0)
		return 0;
	if (sc->head_len + n > sc->head_cap) {
		size_t cap = sc->head_cap ? sc->head_cap : 4096;
		while (cap < sc->head_len + n)
			cap *= 2;
		char *grown = realloc(sc->head, cap);
		if (!grown) {
			cn->refused = "the request headers are larger than apubid can hold now";
			cn->refused_status = 431;
			cn->linger = 1;
			return -1;
		}
		sc->head = grown;
		sc->head_cap = cap;
	}
	memcpy(sc->head + sc->head_len, buf, n);
	sc->head_len += n;
	int64_t max = server_cfg->max_request_size;
	if (framing_head(&sc->fr, sc->head, sc->head_len, max, max) != FRAMING_BAD) {
		if (sc->fr.head_len) {
			free(sc->head);
			sc->head = NULL;
			sc->head_len = sc->head_cap = 0;
		}
		return 0;
	}
	cn->refused = sc->fr.why;
	cn->refused_status = sc->fr.status;
	cn->linger = 1;
	return -1;
}

/* Reads request bytes for the engine, within bounds it does not keep by
 * itself:
 *   - never past the current request: the engine uses one buffer for input
 *     and output, so bytes of a pipelined next request read ahead would be
 *     lost when the answer is written. The header block is read up to its
 *     blank line (peeking first), the body up to its Content-Length;
 *   - once the body announced by Content-Length is in, the engine sees end
 *     of input, so a truncated envelope is answered at once instead of
 *     after a read timeout;
 *   - a body (chunked) that outgrows max_request_size ends the input and is
 *     answered 413.
 * Over TLS, bytes decrypted ahead cannot be peeked at: there pipelining is
 * not supported (no client in use pipelines) and the body bound is set
 * once the headers are parsed (server_dispatch). */
static size_t server_recv(struct soap *soap, char *buf, size_t len)
{
	struct conn *cn = soap->user;
	if (!cn)
		return server_orig_recv(soap, buf, len);
	if (cn->hdr_done && cn->body_left == -2 && !soap->ssl)
		cn->body_left = cn->chunked ? -1 : cn->content_length >= 0 ? cn->content_length : 0;
	if (cn->body_left == 0 || cn->stalled || cn->refused)
		return 0;
	if (cn->body_left > 0 && (int64_t)len > cn->body_left)
		len = (size_t)cn->body_left;
	if (cn->received > server_cfg->max_request_size + SOAP_HDRLEN) {
		cn->too_large = 1;
		cn->linger = 1;
		return 0;
	}
	/* The engine calls this only with its buffer empty. Each read may stall
	 * recv_timeout seconds and the whole request request_timeout: a client
	 * trickling bytes (slowloris) cannot hold a serving thread longer. */
	int64_t deadline = cn->started_ms + (int64_t)server_cfg->request_timeout * 1000;
	int64_t wait = (int64_t)server_cfg->recv_timeout * 1000;
	int64_t left = deadline - util_mono_ms();
	if (left < wait)
		wait = left;
	if (!soap->ssl || SSL_pending(soap->ssl) == 0) {
		struct pollfd p = { .fd = soap->socket, .events = POLLIN };
		int rc;
		do
			rc = wait > 0 ? poll(&p, 1, (int)wait) : 0;
		while (rc < 0 && errno == EINTR);
		if (rc <= 0) {
			/* Sticky: the engine tries again on an empty read. */
			cn->stalled = 1;
			return 0;
		}
	}
	if (!soap->ssl && !cn->hdr_done) {
		ssize_t peeked;
		do
			peeked = recv(soap->socket, buf, len, MSG_PEEK);
		while (peeked < 0 && errno == EINTR);
		if (peeked > 0) {
			struct conn probe = *cn;
			len = server_scan_headers(&probe, buf, (size_t)peeked);
		}
	}
	size_t n = server_orig_recv(soap, buf, len);
	cn->received += (int64_t)n;
	if (!cn->hdr_done && server_frame(soap, cn, buf, n) < 0)
		return 0;
	if (!cn->hdr_done) {
		server_scan_headers(cn, buf, n);
		if (cn->hdr_done)
			cn->body_left = -2; /* decided at the next read, once parsed */
	} else {
		if (cn->body_left > 0)
			cn->body_left -= (int64_t)n;
		if (!cn->encoded) {
			size_t clean = server_scan_body(cn, buf, n);
			if (cn->refused) {
				cn->linger = 1;
				return clean;
			}
		}
	}
	return n;
}

/* Waits for the next request on a keep-alive connection. Returns 1 when
 * one is there (or the peer closed, which the engine will see), 0 when the
 * connection should be closed: idle too long, or apubid is stopping. */
static int server_wait_request(struct soap *soap)
{
	if (soap->bufidx < soap->buflen || (soap->ssl && SSL_pending(soap->ssl) > 0))
		return 1;
	int64_t until = util_mono_ms() + (int64_t)server_cfg->keepalive_timeout * 1000;
	while (!*server_stop) {
		int64_t left = until - util_mono_ms();
		if (left <= 0)
			return 0;
		struct pollfd p = { .fd = soap->socket, .events = POLLIN };
		int rc = poll(&p, 1, left > 250 ? 250 : (int)left);
		if (rc > 0)
			return 1;
		if (rc < 0 && errno != EINTR)
			return 0;
	}
	return 0;
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
	sc->cn.linger = 1;
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
	cn->linger = 1;
	soap_send_fault(soap);
}

/* Answers a request the client stopped sending with 408. */
static void server_send_stalled(struct soap *soap, struct conn *cn)
{
	char msg[160];
	snprintf(msg, sizeof msg,
		 "the request did not arrive in time (recv_timeout %d s, request_timeout %d s)",
		 server_cfg->recv_timeout, server_cfg->request_timeout);
	svc_fault(soap, 1, msg);
	soap->error = 408;
	soap_send_fault(soap);
}

/* Serves one request whose headers have been read; returns 0 to keep the
 * connection, -1 to close it. */
static int server_dispatch(struct soap *soap, struct conn *cn)
{
	const char *path = soap->path;
	/* Over TLS the headers were read with whatever followed them: what of
	 * the body is already buffered counts. */
	if (soap->ssl && soap->length > 0 && (soap->imode & SOAP_IO) != SOAP_IO_CHUNK) {
		int64_t buffered = (int64_t)(soap->buflen - soap->bufidx);
		cn->body_left = (int64_t)soap->length > buffered ? (int64_t)soap->length - buffered : 0;
	}
	size_t plen = strcspn(path, "?");
	if (plen != strlen(server_cfg->endpoint) || strncmp(path, server_cfg->endpoint, plen) != 0) {
		char msg[300];
		snprintf(msg, sizeof msg, "no APUBI endpoint at %.200s (it is at %s)", path,
			 server_cfg->endpoint);
		svc_fault(soap, 1, msg);
		soap->error = 404;
		cn->linger = 1;
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
		if (cn->stalled) {
			server_send_stalled(soap, cn);
			return -1;
		}
		if (e == SOAP_EOF && cn->received > server_cfg->max_request_size)
			cn->too_large = 1;
		if (e == SOAP_EOF && cn->too_large) {
			cn->linger = 1;
			char msg[128];
			snprintf(msg, sizeof msg,
				 "the request body is larger than max_request_size (%lld bytes)",
				 (long long)server_cfg->max_request_size);
			svc_fault(soap, 1, msg);
			soap->error = 413;
			soap_send_fault(soap);
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
		cn->linger = 1;
		soap_send_fault(soap);
		return -1;
	}
	return soap->keep_alive ? 0 : -1;
}

/* How long a serving thread with nothing else queued waits on its own
 * connection for the next request before parking it: a client that sends
 * its next request right after reading an answer is then served without
 * the two thread hand-overs parking costs. */
#define SERVER_LINGER_READY_MS 2

/* 1 when the next request can be read now: gSOAP holds bytes of it, or
 * the socket has some (waited for a moment when no other connection is
 * queued for a thread). */
static int server_request_ready(struct soap *soap)
{
	if (soap->bufidx < soap->buflen || (soap->ssl && SSL_pending(soap->ssl) > 0))
		return 1;
	pthread_mutex_lock(&server_qlock);
	int idle = server_qlen == 0;
	pthread_mutex_unlock(&server_qlock);
	struct pollfd p = { .fd = soap->socket, .events = POLLIN };
	return poll(&p, 1, idle ? SERVER_LINGER_READY_MS : 0) > 0;
}

/* Serves requests on one connection while they come; returns when the
 * connection is closed or parked. `ka_left` is SERVER_NEW for a fresh
 * connection, else what a parked one had left of max_keepalive_requests. */
static void server_serve(struct soap *soap, struct conn *cn, int ka_left)
{
	int first = 1;
	/* A connection starts with an empty buffer: whatever the last one
	 * left unread (after an error) must not be taken for this one's. A
	 * parked connection had nothing buffered when it was parked. */
	soap->bufidx = 0;
	soap->buflen = 0;
	/* Counted down before each request: the last one allowed sees 0, and
	 * its answer says Connection: close. */
	if (ka_left == SERVER_NEW)
		soap->keep_alive = soap->max_keep_alive > 0 ? soap->max_keep_alive : 1;
	else
		soap->keep_alive = ka_left;
	do {
		if (soap->keep_alive > 0 && soap->max_keep_alive > 0)
			soap->keep_alive--;
		if (!first && !server_request_ready(soap) && !soap->ssl && server_epfd >= 0) {
			/* Idle between requests: the parker watches it, this
			 * thread serves someone else. */
			if (server_park(soap->socket, soap->keep_alive) == 0) {
				soap->socket = SOAP_INVALID_SOCKET;
				return;
			}
		}
		if (!first && !server_wait_request(soap))
			break;
		first = 0;
		cn->op = NULL;
		cn->taskid[0] = '\0';
		cn->http_status = 0;
		cn->retry_after = 0;
		/* The last request allowed on the connection: pipelined ones
		 * after it are drained before the close, so that the kernel
		 * does not reset the connection under answers in flight. */
		cn->linger = soap->max_keep_alive > 0 && soap->keep_alive == 0;
		framing_init(&server_conn_of(soap)->fr);
		server_conn_of(soap)->head_len = 0;
		cn->started_ms = util_mono_ms();
		server_conn_of(soap)->started_us = server_mono_us();
		cn->received = 0;
		cn->body_left = -1;
		cn->content_length = -1;
		cn->chunked = 0;
		cn->hdr_done = 0;
		cn->hdr_state = 0;
		cn->too_large = 0;
		cn->stalled = 0;
		cn->encoded = 0;
		cn->refused = NULL;
		cn->refused_status = 0;
		cn->scan_state = 0;
		cn->u8_need = 0;
		cn->scan_val = 0;
		server_conn_of(soap)->authorization = NULL;
		server_conn_of(soap)->user[0] = '\0';
		server_conn_of(soap)->auth_stale = 0;
		soap_begin(soap);
		int rc;
		if (soap_begin_recv(soap)) {
			int e = soap->error;
			if (cn->refused) {
				server_send_refused(soap, cn);
				server_log_request(soap, cn);
				rc = -1;
			} else if (cn->stalled && cn->received > 0) {
				server_send_stalled(soap, cn);
				server_log_request(soap, cn);
				rc = -1;
			} else if (e == SOAP_STOP || e == SOAP_FORM || e == SOAP_HTML ||
			    (e >= SOAP_FILE && e < SOAP_FILE + 600)) {
				/* A GET (or HEAD) answered by web_get or the engine. */
				server_log_request(soap, cn);
				rc = soap->keep_alive ? 0 : -1;
			} else if (e == SOAP_EOF) {
				log_debug("connection closed before a request: %lld bytes read",
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
		soap_destroy(soap);
		soap_end(soap);
		if (rc < 0)
			break;
	} while (soap->keep_alive && !*server_stop);
	soap_force_closesock(soap);
}

/* "address:port" of the peer of a socket, for log lines. */
static void server_peer(SOAP_SOCKET s, char *out, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t n = sizeof ss;
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (getpeername(s, (struct sockaddr *)&ss, &n) == 0) {
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *in = (struct sockaddr_in *)&ss;
			inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
			port = ntohs(in->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
			inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
			port = ntohs(in6->sin6_port);
		}
	}
	snprintf(out, len, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
}

/* The engine's description of its last error (its faultstring, which
 * for TLS holds OpenSSL's reasons) on one line. */
static void server_fault_line(struct soap *soap, char *buf, size_t len)
{
	const char **fs = soap_faultstring(soap);
	if (fs && *fs)
		snprintf(buf, len, "%s", *fs);
	else
		soap_sprint_fault(soap, buf, len);
	for (char *p = buf; *p; p++)
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
	size_t n = strlen(buf);
	while (n && buf[n - 1] == ' ')
		buf[--n] = '\0';
}

/* One debug line per TLS connection: what was negotiated, and who the
 * client certificate names. */
static void server_log_tls(struct soap *soap, const char *peer)
{
	if (!log_enabled(LOG_DEBUG) || !soap->ssl)
		return;
	char subject[256] = "";
	X509 *cert = SSL_get1_peer_certificate(soap->ssl);
	if (cert) {
		X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof subject);
		X509_free(cert);
	}
	log_debug("TLS with %s: %s %s%s%s", peer, SSL_get_version(soap->ssl),
		  SSL_get_cipher_name(soap->ssl), subject[0] ? ", client certificate " : "",
		  subject);
}

static void *server_thread(void *arg)
{
	struct soap *soap = arg;
	struct server_conn *sc = server_conn_of(soap);
	for (;;) {
		struct server_job job = server_dequeue();
		SOAP_SOCKET s = job.s;
		if (!soap_valid_socket(s))
			break;
		soap->socket = s;
		sc->cn.linger = 0;
		server_peer(s, sc->peer, sizeof sc->peer);
		if (job.ka_left != SERVER_NEW) {
			/* A parked keep-alive connection with a request waiting. */
			server_serve(soap, &sc->cn, job.ka_left);
			continue;
		}
		/* The handshake happens here, not in the accept loop: a client
		 * that never completes it holds this thread until the
		 * send/receive timeouts, and nothing else. */
		if (server_cfg->tls_cert_file && soap_ssl_accept(soap)) {
			char buf[512];
			server_fault_line(soap, buf, sizeof buf);
			log_info("TLS handshake with %s failed: %s", sc->peer, buf);
			soap_force_closesock(soap);
			soap_destroy(soap);
			soap_end(soap);
			continue;
		}
		server_log_tls(soap, sc->peer);
		server_serve(soap, &sc->cn, SERVER_NEW);
	}
	return NULL;
}

/* Returns OpenSSL's oldest queued error as text (and clears the queue). */
static const char *server_ssl_error(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();
	if (e)
		ERR_error_string_n(e, buf, len);
	else
		snprintf(buf, len, "unknown error");
	ERR_clear_error();
	return buf;
}

/* A key password without a terminal to ask on: the configured one, or
 * none (so an encrypted key without key_password fails instead of
 * prompting). */
static int server_tls_password(char *buf, int size, int rwflag, void *u)
{
	(void)rwflag;
	if (!u || size <= 0)
		return 0;
	size_t n = strlen(u);
	if (n >= (size_t)size)
		return 0;
	memcpy(buf, u, n);
	return (int)n;
}

/* Sets up the master's TLS context from [tls]; called before privileges
 * are dropped, so the key may be readable by root only. */
static int server_tls_init(struct soap *master, const struct config *c)
{
	char e[256];
	unsigned short flags = SOAP_TLSv1_2 | SOAP_TLSv1_3 | SOAP_SSL_NO_DEFAULT_CA_PATH;
	/* Without client_ca: SOAP_SSL_NO_AUTHENTICATION (0), since
	 * SOAP_SSL_DEFAULT would ask every client for a certificate. */
	if (c->tls_client_ca)
		flags |= SOAP_SSL_REQUIRE_CLIENT_AUTHENTICATION;
	/* The certificate and key are loaded below rather than by gSOAP,
	 * which insists on both being in one file. */
	if (soap_ssl_server_context(master, flags, NULL, NULL, c->tls_client_ca, NULL, NULL, NULL,
				    NULL)) {
		server_fault_line(master, e, sizeof e);
		log_error("TLS: %s%s%s", e, c->tls_client_ca ? "; client_ca " : "",
			  c->tls_client_ca ? c->tls_client_ca : "");
		return -1;
	}
	SSL_CTX *ctx = master->ctx;
	const char *key = c->tls_key_file ? c->tls_key_file : c->tls_cert_file;
	SSL_CTX_set_default_passwd_cb(ctx, server_tls_password);
	SSL_CTX_set_default_passwd_cb_userdata(ctx, c->tls_key_password);
	int rc = -1;
	if (SSL_CTX_use_certificate_chain_file(ctx, c->tls_cert_file) != 1)
		log_error("TLS: cannot load the certificate chain from %s: %s", c->tls_cert_file,
			  server_ssl_error(e, sizeof e));
	else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
		log_error("TLS: cannot load the private key from %s: %s%s", key,
			  server_ssl_error(e, sizeof e),
			  c->tls_key_password ? "" : " (an encrypted key needs key_password)");
	else if (SSL_CTX_check_private_key(ctx) != 1)
		log_error("TLS: the private key in %s does not match the certificate in %s", key,
			  c->tls_cert_file);
	else
		rc = 0;
	/* The password is not needed once the key is loaded. */
	SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL);
	return rc;
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
	master->recv_timeout = c->recv_timeout;
	master->send_timeout = c->send_timeout;
	master->transfer_timeout = c->request_timeout;
	/* server_recv enforces the size and answers 413; the engine's own
	 * limit, a silent close, stays as a backstop just above it. */
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
	server_orig_close = master->fclose;
	master->fclose = server_close;
	server_orig_recv = master->frecv;
	master->frecv = server_recv;
	server_orig_parse = master->fparse;
	master->fparse = server_parse;

	if (c->tls_cert_file && server_tls_init(master, c) < 0) {
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
		conns[i].cn.store = store_open(c->store_path, err, sizeof err);
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
	if (rc == 0 && !c->tls_cert_file)
		server_parker_start();

	if (rc == 0) {
		log_info("listening on %s://%s%s%s:%d%s (%d serving threads%s%s%s)",
			 c->tls_cert_file ? "https" : "http", master->bind_inet6 ? "[" : "",
			 c->listen_host, master->bind_inet6 ? "]" : "", c->listen_port, c->endpoint, n,
			 c->tls_client_ca ? ", client certificates required" : "",
			 c->auth ? ", authentication: " : "",
			 !c->auth ? ""
			 : c->auth_methods == (AUTH_BASIC | AUTH_DIGEST) ? "digest, basic"
			 : c->auth_methods == AUTH_DIGEST ? "digest" : "basic");
		while (!*stop) {
			SOAP_SOCKET s = soap_accept(master);
			if (!soap_valid_socket(s)) {
				if (master->errnum && !*stop) {
					char buf[256];
					soap_sprint_fault(master, buf, sizeof buf);
					log_warn("accept: %s", buf);
					usleep(100 * 1000);
				}
				continue;
			}
			/* A plain connection waits for its first bytes in the
			 * parker; a TLS one goes to a thread for its handshake. */
			if (c->tls_cert_file || server_park(s, SERVER_NEW) < 0)
				server_enqueue(s, SERVER_NEW);
			/* The socket now belongs to a serving thread. */
			master->socket = SOAP_INVALID_SOCKET;
		}
		log_info("stopping: no new connections, finishing requests in flight");
	}

	/* Stop accepting at once, then let each thread finish its connection. */
	if (soap_valid_socket(master->master)) {
		close(master->master);
		master->master = SOAP_INVALID_SOCKET;
	}
	server_parker_join();
	for (int i = 0; i < started; i++)
		server_enqueue(SOAP_INVALID_SOCKET, SERVER_NEW);
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
 * request bytes), through the same serve loop. */
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
	server_fuzz_conn.cn.store = store_open(c->store_path, err, sizeof err);
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
	server_fuzz_ctx->socket = fd;
	server_fuzz_conn.cn.linger = 0;
	snprintf(server_fuzz_conn.peer, sizeof server_fuzz_conn.peer, "fuzz");
	server_serve(server_fuzz_ctx, &server_fuzz_conn.cn, SERVER_NEW);
	soap_destroy(server_fuzz_ctx);
	soap_end(server_fuzz_ctx);
}

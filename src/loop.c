/*
 * loop.c - the event loop: every client connection waits here, never in a
 * serving thread.
 *
 * One thread (the one that called server_run) accepts connections, runs
 * their TLS handshakes with non-blocking OpenSSL, and reads each request
 * (request line, headers, and the body by Content-Length or chunked, within
 * max_request_size) into a buffer of the connection's own, checking its
 * framing as it comes (framing.c). Only a complete request is handed to a
 * serving thread (server.c), which parses it from memory and answers; the
 * answer is written by that thread as far as the socket takes it at once,
 * and what a slow reader leaves is written from here. So a serving thread
 * never waits on a client: a client that trickles its request, stalls its
 * handshake, reads its answer slowly or just stays connected costs a
 * descriptor and a few hundred bytes, not a thread.
 *
 * Time limits, checked by a sweep four times a second:
 *   - the TLS handshake and the request line with headers within
 *     header_timeout of their first byte (a new connection that says
 *     nothing is closed after header_timeout too);
 *   - the whole request within request_timeout, and no silence longer
 *     than recv_timeout once it has begun; a request cut short is answered
 *     408, whatever the client keeps sending;
 *   - keepalive_timeout between requests; send_timeout for the rest of an
 *     answer, from the moment its serving thread gave it back (the kernel
 *     buffers a slow reader's socket, so progress seen from here is too
 *     coarse to measure a stall by); two seconds of lingering before a
 *     close.
 * Counts: at most max_connections open connections, and
 * max_connections_per_address from one address; past either, a new
 * connection is accepted and closed at once.
 *
 * Memory: a connection's input buffer exists only while bytes of a request
 * are pending, its output buffer only while an answer is being written.
 *
 * Sockets are registered edge-triggered once; an event that arrives while
 * a serving thread owns the connection is noted, and the loop tries the
 * socket again when the connection comes back (loop_give_back, through an
 * eventfd), so nothing is missed. A plain socket that the loop's last read
 * left empty, with no event since, is not read again on its return: its
 * next request brings an event. Together with one eventfd wake-up for a
 * batch of returns, this keeps the loop's system calls per keep-alive
 * request to about what the request needs (docs/performance.md).
 */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define LOOP_LINGER_MS 2000
#define LOOP_LINGER_BYTES (64 << 20)
#define LOOP_READ_CHUNK 16384
#define LOOP_ADDR_BUCKETS 4096
/* Descriptors apubid needs besides its connections: store, logs, curl,
 * the listening socket, epoll. */
#define LOOP_SPARE_FILES 256

struct loop_addr {
	unsigned char key[16];
	int count;
	struct loop_addr *next;
};

static const struct config *loop_cfg;
static volatile sig_atomic_t *loop_stop;
static struct soap *loop_master;
static int loop_listen = -1, loop_epfd = -1, loop_wakefd = -1;
static struct lconn loop_head;    /* list of every open connection */
static int loop_open;             /* connections open */
static int loop_busy;             /* of which held by serving threads */
static struct loop_addr *loop_addrs[LOOP_ADDR_BUCKETS];
static pthread_mutex_t loop_back_lock = PTHREAD_MUTEX_INITIALIZER;
static struct lconn *loop_back;   /* given back by serving threads */
static struct lconn *loop_dead;   /* closed, to be freed */

int loop_fit_files(const struct config *c)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)c->max_connections + LOOP_SPARE_FILES;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		log_error("getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
		return -1;
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= need)
		return 0;
	struct rlimit want = rl;
	want.rlim_cur = need;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
		want.rlim_max = need;
	if (setrlimit(RLIMIT_NOFILE, &want) == 0)
		return 0;
	log_error("max_connections = %d needs %llu open files, and the limit is %llu "
		  "(hard %llu) and cannot be raised: %s; lower max_connections or raise "
		  "LimitNOFILE",
		  c->max_connections, (unsigned long long)need, (unsigned long long)rl.rlim_cur,
		  (unsigned long long)rl.rlim_max, strerror(errno));
	return -1;
}

/* ---- per-address counts ------------------------------------------------ */

static struct loop_addr *loop_addr_get(const struct sockaddr_storage *ss)
{
	unsigned char key[16] = { 0 };
	if (ss->ss_family == AF_INET)
		memcpy(key, &((const struct sockaddr_in *)ss)->sin_addr, 4);
	else if (ss->ss_family == AF_INET6)
		memcpy(key, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
	uint32_t h = 2166136261u;
	for (int i = 0; i < 16; i++)
		h = (h ^ key[i]) * 16777619u;
	struct loop_addr **b = &loop_addrs[h % LOOP_ADDR_BUCKETS];
	for (struct loop_addr *a = *b; a; a = a->next)
		if (memcmp(a->key, key, 16) == 0)
			return a;
	struct loop_addr *a = calloc(1, sizeof *a);
	if (!a)
		return NULL;
	memcpy(a->key, key, 16);
	a->next = *b;
	*b = a;
	return a;
}

static void loop_addr_put(struct loop_addr *a)
{
	if (!a || --a->count > 0)
		return;
	uint32_t h = 2166136261u;
	for (int i = 0; i < 16; i++)
		h = (h ^ a->key[i]) * 16777619u;
	for (struct loop_addr **p = &loop_addrs[h % LOOP_ADDR_BUCKETS]; *p; p = &(*p)->next)
		if (*p == a) {
			*p = a->next;
			free(a);
			return;
		}
}

static void loop_peer(const struct sockaddr_storage *ss, char *out, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
		port = ntohs(in->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
		port = ntohs(in6->sin6_port);
	}
	snprintf(out, len, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
}

/* ---- connections ------------------------------------------------------- */

static void loop_progress(struct lconn *lc);

static void loop_close(struct lconn *lc)
{
	if (lc->ssl)
		tls_free(lc->ssl, 0);
	close(lc->fd);
	lc->prev->next = lc->next;
	lc->next->prev = lc->prev;
	loop_addr_put(lc->addr);
	loop_open--;
	free(lc->in);
	free(lc->out);
	lc->in = lc->out = NULL;
	/* Freed after the current batch of events, which may name it. */
	lc->state = LC_DEAD;
	lc->back = loop_dead;
	loop_dead = lc;
}

static void loop_bury(void)
{
	while (loop_dead) {
		struct lconn *lc = loop_dead;
		loop_dead = lc->back;
		free(lc);
	}
}

static void loop_accept(void)
{
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		int fd = accept4(loop_listen, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				log_warn("accept: %s", strerror(errno));
			return;
		}
		struct loop_addr *a = NULL;
		if (loop_open >= loop_cfg->max_connections) {
			log_debug("refused a connection: max_connections (%d) reached",
				  loop_cfg->max_connections);
			close(fd);
			continue;
		}
		a = loop_addr_get(&ss);
		if (!a || a->count >= loop_cfg->max_connections_per_address) {
			char peer[64];
			loop_peer(&ss, peer, sizeof peer);
			log_debug("refused a connection from %s: max_connections_per_address (%d) reached",
				  peer, loop_cfg->max_connections_per_address);
			if (a && a->count == 0) {
				a->count = 1;
				loop_addr_put(a); /* frees it */
			}
			close(fd);
			continue;
		}
		struct lconn *lc = calloc(1, sizeof *lc);
		if (!lc) {
			close(fd);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		lc->fd = fd;
		lc->addr = a;
		a->count++;
		loop_peer(&ss, lc->peer, sizeof lc->peer);
		lc->ka_left = loop_cfg->max_keepalive_requests;
		lc->since_ms = util_mono_ms();
		lc->next = loop_head.next;
		lc->prev = &loop_head;
		loop_head.next->prev = lc;
		loop_head.next = lc;
		loop_open++;
		framing_init(&lc->fr);
		lc->state = LC_READING;
		if (loop_cfg->tls_cert_file) {
			lc->ssl = tls_new(loop_master, fd);
			if (!lc->ssl) {
				loop_close(lc);
				continue;
			}
			lc->state = LC_HANDSHAKE;
		}
		struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
					  .data.ptr = lc };
		if (epoll_ctl(loop_epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			log_warn("epoll: %s", strerror(errno));
			loop_close(lc);
			continue;
		}
		/* The first bytes (or ClientHello) may already be there. */
		loop_progress(lc);
	}
}

/* >0 bytes, 0 end of stream, -1 nothing now, -2 error. */
static long loop_read(struct lconn *lc, char *buf, size_t len)
{
	if (lc->ssl)
		return tls_read(lc->ssl, buf, len);
	ssize_t n;
	do
		n = recv(lc->fd, buf, len, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? -1 : -2;
	return n;
}

int loop_write(struct lconn *lc)
{
	while (lc->out_off < lc->out_len) {
		long n;
		if (lc->ssl) {
			n = tls_write(lc->ssl, lc->out + lc->out_off, lc->out_len - lc->out_off);
		} else {
			do
				n = send(lc->fd, lc->out + lc->out_off, lc->out_len - lc->out_off,
					 MSG_NOSIGNAL | MSG_DONTWAIT);
			while (n < 0 && errno == EINTR);
			if (n < 0)
				n = errno == EAGAIN || errno == EWOULDBLOCK ? -1 : -2;
		}
		if (n == -1)
			return 0;
		if (n < 0)
			return -1;
		lc->out_off += (size_t)n;
	}
	return 1;
}

/* Refuses the request being read: a serving thread writes the fault. */
static void loop_refuse(struct lconn *lc, int status, const char *why)
{
	lc->refused_status = status;
	lc->refused = why;
	lc->req_len = lc->in_len;
	lc->close_after = 1;
}

int loop_frame(const struct config *c, struct lconn *lc)
{
	if (lc->in_len == 0)
		return 0;
	int64_t max = c->max_request_size;
	if (!lc->fr.head_len) {
		int rc = framing_head(&lc->fr, lc->in, lc->in_len, max + 8192, max);
		if (rc == FRAMING_BAD) {
			loop_refuse(lc, lc->fr.status, lc->fr.why);
			return 1;
		}
		if (rc == FRAMING_MORE)
			return 0;
		if (lc->fr.too_large) {
			loop_refuse(lc, 413, NULL);
			return 1;
		}
		lc->body_seen = lc->fr.head_len;
		framing_chunks_init(&lc->ch);
	}
	size_t head = lc->fr.head_len;
	if (lc->fr.chunked) {
		const char *why;
		size_t used;
		int rc = framing_chunks(&lc->ch, lc->in + lc->body_seen, lc->in_len - lc->body_seen,
					&used, max, &why);
		lc->body_seen += used;
		if (rc == FRAMING_BAD) {
			if (lc->ch.too_large)
				loop_refuse(lc, 413, NULL);
			else
				loop_refuse(lc, 400, why);
			return 1;
		}
		if (rc == FRAMING_MORE)
			return 0;
		lc->req_len = lc->body_seen;
		return 1;
	}
	size_t body = lc->fr.content_length > 0 ? (size_t)lc->fr.content_length : 0;
	if (lc->in_len < head + body)
		return 0;
	lc->req_len = head + body;
	return 1;
}

void loop_next_request(struct lconn *lc)
{
	if (lc->req_len < lc->in_len) {
		memmove(lc->in, lc->in + lc->req_len, lc->in_len - lc->req_len);
		lc->in_len -= lc->req_len;
	} else {
		free(lc->in);
		lc->in = NULL;
		lc->in_len = lc->in_cap = 0;
	}
	lc->req_len = 0;
	lc->rd = 0;
	lc->body_seen = 0;
	lc->continue_sent = 0;
	lc->refused = NULL;
	lc->refused_status = 0;
	lc->request_ms = 0;
	framing_init(&lc->fr);
}

static void loop_start_linger(struct lconn *lc)
{
	if (lc->ssl) {
		tls_free(lc->ssl, 1);
		lc->ssl = NULL;
	}
	shutdown(lc->fd, SHUT_WR);
	free(lc->in);
	lc->in = NULL;
	lc->in_len = lc->in_cap = 0;
	free(lc->out);
	lc->out = NULL;
	lc->out_len = lc->out_cap = lc->out_off = 0;
	lc->state = LC_LINGER;
	lc->since_ms = util_mono_ms();
	lc->req_len = 0; /* counts bytes drained */
}

static void loop_dispatch(struct lconn *lc)
{
	lc->state = LC_SERVING;
	lc->missed = 0;
	lc->served++;
	loop_busy++;
	server_hand_over(lc);
}

/* Moves a connection on as far as its socket allows. */
static void loop_progress(struct lconn *lc)
{
	if (lc->state == LC_HANDSHAKE) {
		char why[256];
		int rc = tls_handshake(lc->ssl, why, sizeof why);
		if (rc == 0)
			return;
		if (rc < 0) {
			log_info("TLS handshake with %s failed: %s", lc->peer, why);
			loop_close(lc);
			return;
		}
		tls_log(lc->ssl, lc->peer);
		lc->state = LC_READING;
		lc->since_ms = util_mono_ms();
	}
	if (lc->state == LC_WRITING) {
		int rc = loop_write(lc);
		if (rc < 0) {
			loop_close(lc);
			return;
		}
		if (rc == 0)
			return;
		free(lc->out);
		lc->out = NULL;
		lc->out_len = lc->out_cap = lc->out_off = 0;
		if (lc->close_after) {
			loop_start_linger(lc);
		} else {
			loop_next_request(lc);
			lc->state = LC_READING;
			lc->since_ms = util_mono_ms();
		}
	}
	if (lc->state == LC_LINGER) {
		char buf[LOOP_READ_CHUNK];
		for (;;) {
			long n = loop_read(lc, buf, sizeof buf);
			if (n == -1 && lc->req_len < LOOP_LINGER_BYTES)
				return;
			if (n <= 0 || (lc->req_len += (size_t)n) >= LOOP_LINGER_BYTES) {
				loop_close(lc);
				return;
			}
		}
	}
	if (lc->state != LC_READING)
		return;
	/* A pipelined request may be complete before any read. */
	if (lc->in_len && loop_frame(loop_cfg, lc)) {
		loop_dispatch(lc);
		return;
	}
	size_t limit = (size_t)loop_cfg->max_request_size + 8192 + LOOP_READ_CHUNK;
	for (;;) {
		if (lc->in_cap - lc->in_len < LOOP_READ_CHUNK) {
			size_t cap = lc->in_cap ? lc->in_cap * 2 : LOOP_READ_CHUNK;
			char *in = cap <= limit * 2 ? realloc(lc->in, cap) : NULL;
			if (!in) {
				loop_refuse(lc, 413, NULL);
				loop_dispatch(lc);
				return;
			}
			lc->in = in;
			lc->in_cap = cap;
		}
		size_t room = lc->in_cap - lc->in_len;
		long n = loop_read(lc, lc->in + lc->in_len, room);
		/* A short read empties a plain socket; TLS may hold a record back. */
		lc->drained = !lc->ssl && (n == -1 || (n > 0 && (size_t)n < room));
		if (n == -1)
			break;
		if (n <= 0) {
			/* The client went away, or closed its side mid-request. */
			if (n == 0 && lc->in_len)
				log_debug("connection from %s closed inside a request: %zu bytes read",
					  lc->peer, lc->in_len);
			else if (n == 0 && !lc->served)
				log_debug("connection closed before a request: from %s", lc->peer);
			loop_close(lc);
			return;
		}
		int64_t now = util_mono_ms();
		if (!lc->request_ms)
			lc->request_ms = now;
		lc->last_ms = now;
		lc->in_len += (size_t)n;
		if (loop_frame(loop_cfg, lc)) {
			loop_dispatch(lc);
			return;
		}
	}
	if (lc->in_len == 0) {
		free(lc->in);
		lc->in = NULL;
		lc->in_cap = 0;
		return;
	}
	/* Headers in, body to come, and the client waits to be asked. */
	if (lc->fr.head_len && lc->fr.expect_continue && !lc->continue_sent &&
	    lc->fr.minor >= 1) {
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
		lc->continue_sent = 1;
		if (lc->ssl)
			tls_write(lc->ssl, cont, sizeof cont - 1);
		else
			(void)!send(lc->fd, cont, sizeof cont - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	}
}

/* Closes or answers whatever has run out of time. */
static void loop_sweep(int64_t now)
{
	const struct config *c = loop_cfg;
	for (struct lconn *lc = loop_head.next, *next; lc != &loop_head; lc = next) {
		next = lc->next;
		switch (lc->state) {
		case LC_HANDSHAKE:
			if (now - lc->since_ms >= (int64_t)c->header_timeout * 1000) {
				log_info("TLS handshake with %s failed: not complete within "
					 "header_timeout (%d s)", lc->peer, c->header_timeout);
				loop_close(lc);
			}
			break;
		case LC_READING:
			if (!lc->request_ms) {
				/* Idle: a new connection, or between requests. */
				int limit = lc->served ? c->keepalive_timeout : c->header_timeout;
				if (now - lc->since_ms >= (int64_t)limit * 1000)
					loop_close(lc);
				break;
			}
			const char *why = NULL;
			if (!lc->fr.head_len && now - lc->request_ms >= (int64_t)c->header_timeout * 1000)
				why = "header_timeout";
			else if (now - lc->request_ms >= (int64_t)c->request_timeout * 1000)
				why = "request_timeout";
			else if (now - lc->last_ms >= (int64_t)c->recv_timeout * 1000)
				why = "recv_timeout";
			if (why) {
				loop_refuse(lc, 408, why);
				loop_dispatch(lc);
			}
			break;
		case LC_WRITING:
			if (now - lc->since_ms >= (int64_t)c->send_timeout * 1000)
				loop_close(lc);
			break;
		case LC_LINGER:
			if (now - lc->since_ms >= LOOP_LINGER_MS)
				loop_close(lc);
			break;
		default:
			break;
		}
	}
}

void loop_give_back(struct lconn *lc)
{
	pthread_mutex_lock(&loop_back_lock);
	/* Only the first connection on an empty list wakes the loop: the loop
	 * reads the eventfd before it takes the list, so a connection added to
	 * a list not yet taken is seen with the ones before it. */
	int wake = loop_back == NULL;
	lc->back = loop_back;
	loop_back = lc;
	pthread_mutex_unlock(&loop_back_lock);
	uint64_t one = 1;
	if (wake)
		(void)!write(loop_wakefd, &one, sizeof one);
}

/* Takes back connections whose answers the serving threads have written
 * as far as the socket took them. */
static void loop_take_back(void)
{
	uint64_t v;
	(void)!read(loop_wakefd, &v, sizeof v);
	pthread_mutex_lock(&loop_back_lock);
	struct lconn *lc = loop_back;
	loop_back = NULL;
	pthread_mutex_unlock(&loop_back_lock);
	while (lc) {
		struct lconn *next = lc->back;
		loop_busy--;
		if (lc->out_off < lc->out_len) {
			lc->state = LC_WRITING;
		} else if (lc->close_after) {
			free(lc->out);
			lc->out = NULL;
			lc->out_len = lc->out_cap = lc->out_off = 0;
			loop_start_linger(lc);
		} else {
			free(lc->out);
			lc->out = NULL;
			lc->out_len = lc->out_cap = lc->out_off = 0;
			loop_next_request(lc);
			lc->state = LC_READING;
		}
		lc->since_ms = util_mono_ms();
		/* A keep-alive connection whose socket was found empty, with no
		 * event since and no pipelined bytes, has nothing to read yet:
		 * its next request will bring an event. */
		if (lc->state != LC_READING || lc->missed || !lc->drained || lc->in_len)
			loop_progress(lc);
		lc = next;
	}
}

int loop_start(const struct config *c, int listen_fd, volatile sig_atomic_t *stop)
{
	loop_cfg = c;
	loop_stop = stop;
	loop_listen = listen_fd;
	loop_head.next = loop_head.prev = &loop_head;
	int fl = fcntl(listen_fd, F_GETFL);
	fcntl(listen_fd, F_SETFL, fl | O_NONBLOCK);
	loop_epfd = epoll_create1(EPOLL_CLOEXEC);
	loop_wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (loop_epfd < 0 || loop_wakefd < 0) {
		log_error("event loop: %s", strerror(errno));
		return -1;
	}
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &loop_listen };
	struct epoll_event wk = { .events = EPOLLIN, .data.ptr = &loop_wakefd };
	if (epoll_ctl(loop_epfd, EPOLL_CTL_ADD, listen_fd, &ev) < 0 ||
	    epoll_ctl(loop_epfd, EPOLL_CTL_ADD, loop_wakefd, &wk) < 0) {
		log_error("event loop: %s", strerror(errno));
		return -1;
	}
	return 0;
}

void loop_set_master(struct soap *master)
{
	loop_master = master;
}

void loop_run(void)
{
	struct epoll_event ev[128];
	int64_t next_sweep = 0, stop_by = 0;
	for (;;) {
		if (*loop_stop && !stop_by) {
			/* Stopping: no new connections, none waiting; those with a
			 * request in a thread or an answer to write finish. */
			stop_by = util_mono_ms() + (int64_t)loop_cfg->request_timeout * 1000;
			epoll_ctl(loop_epfd, EPOLL_CTL_DEL, loop_listen, NULL);
			for (struct lconn *lc = loop_head.next, *next; lc != &loop_head; lc = next) {
				next = lc->next;
				if (lc->state == LC_HANDSHAKE || lc->state == LC_READING ||
				    lc->state == LC_LINGER)
					loop_close(lc);
			}
		}
		if (stop_by && (loop_open == 0 || (loop_busy == 0 && util_mono_ms() > stop_by)))
			break;
		int n = epoll_wait(loop_epfd, ev, 128, 200);
		for (int i = 0; i < n; i++) {
			void *p = ev[i].data.ptr;
			if (p == &loop_listen) {
				if (!stop_by)
					loop_accept();
			} else if (p == &loop_wakefd) {
				loop_take_back();
			} else {
				struct lconn *lc = p;
				if (lc->state == LC_SERVING)
					lc->missed = 1;
				else if (lc->state == LC_READING && lc->drained &&
					 !(ev[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
					; /* the send buffer drained: nothing to read */
				else if (lc->state != LC_DEAD)
					loop_progress(lc);
			}
		}
		if (stop_by) {
			for (struct lconn *lc = loop_head.next, *next; lc != &loop_head; lc = next) {
				next = lc->next;
				if (lc->state == LC_READING || lc->state == LC_LINGER)
					loop_close(lc);
			}
		}
		int64_t now = util_mono_ms();
		if (now >= next_sweep) {
			next_sweep = now + 250;
			loop_sweep(now);
		}
		loop_bury();
	}
	for (struct lconn *lc = loop_head.next, *next; lc != &loop_head; lc = next) {
		next = lc->next;
		if (lc->state != LC_SERVING)
			loop_close(lc);
	}
	loop_bury();
	close(loop_epfd);
	close(loop_wakefd);
	loop_epfd = loop_wakefd = -1;
}

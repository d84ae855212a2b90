/*
 * server.h - what the parts of the listener share, and nothing else sees:
 * a client connection as the event loop (loop.c) holds it and hands it to
 * a serving thread (server.c), and TLS on it (tls.c).
 *
 * Ownership: a connection belongs to exactly one thread at a time. The
 * event loop owns it while it waits for bytes (handshake, request,
 * keep-alive idleness), while an answer is written out to a slow reader,
 * and while it lingers before the close; a serving thread owns it from
 * loop_hand_over to loop_give_back, and then touches it no more. So no
 * field below is locked.
 */
#ifndef APUBID_SERVER_H
#define APUBID_SERVER_H

#include "apubid.h"

struct ssl_st;
struct loop_addr;

enum { LC_HANDSHAKE, LC_READING, LC_SERVING, LC_WRITING, LC_LINGER, LC_DEAD };

struct lconn {
	int fd;
	struct ssl_st *ssl;     /* NULL on a plain connection */
	int state;
	char peer[64];          /* "203.0.113.7:51234", for log lines */
	struct loop_addr *addr; /* its peer address's count */
	/* Input: bytes read and not yet served; in[0..req_len) is the request
	 * handed to a thread, complete (req_len 0 until it is). */
	char *in;
	size_t in_len, in_cap, req_len;
	size_t rd;              /* how far the serving thread has read */
	struct framing fr;
	struct framing_chunks ch;
	size_t body_seen;       /* bytes of in[] the chunk scanner has consumed */
	int continue_sent;      /* "100 Continue" written for this request */
	/* Why the loop refuses the request instead (the thread answers it):
	 * a framing error, 413, or 408 when its time ran out. */
	int refused_status;
	const char *refused;
	/* Output: the answer, as much as the socket has not yet taken. */
	char *out;
	size_t out_len, out_cap, out_off;
	int close_after;        /* the answer ends the connection */
	int ka_left;            /* requests still allowed on the connection */
	int served;             /* requests handed to serving threads */
	/* Whether the socket must be read again before the next event: the
	 * loop's last read found it empty (drained; plain sockets only), and
	 * whether an event came while a thread held the connection (missed). */
	int drained, missed;
	int64_t since_ms;       /* start of the state's time limit */
	int64_t request_ms;     /* first byte of the current request, 0 before */
	int64_t last_ms;        /* last byte received */
	struct lconn *prev, *next, *back; /* the loop's list; the give-back list */
};

/* loop.c */
int loop_start(const struct config *c, int listen_fd, volatile sig_atomic_t *stop);
/* Runs the loop in the calling thread until *stop and every connection is
 * closed; then frees what it holds. */
void loop_run(void);
void loop_set_master(struct soap *master);
/* Raises RLIMIT_NOFILE to fit max_connections; -1 (logged) when it cannot. */
int loop_fit_files(const struct config *c);
/* A serving thread returns a connection after its answer (see above). */
void loop_give_back(struct lconn *lc);
/* Writes what the socket takes now; 1 when all is written, 0 when some is
 * left, -1 on error. */
int loop_write(struct lconn *lc);
/* Frames the request at the start of lc->in: 1 complete (or refused), 0 more
 * needed. For the fuzz target and the loop. */
int loop_frame(const struct config *c, struct lconn *lc);
/* Forgets the served request (in[0..req_len)) and readies the next. */
void loop_next_request(struct lconn *lc);

/* server.c */
void server_hand_over(struct lconn *lc);

/* tls.c */
int tls_init(struct soap *master, const struct config *c);
/* Starts TLS on an accepted socket: NULL (logged) on failure. */
struct ssl_st *tls_new(struct soap *master, int fd);
/* 1 when the handshake is done, 0 to wait for the socket, -1 failed
 * (`why` says why). */
int tls_handshake(struct ssl_st *ssl, char *why, size_t len);
/* >0 bytes, 0 end of stream, -1 nothing now (wait), -2 error. */
long tls_read(struct ssl_st *ssl, char *buf, size_t len);
long tls_write(struct ssl_st *ssl, const char *buf, size_t len);
void tls_free(struct ssl_st *ssl, int send_close_notify);
void tls_log(struct ssl_st *ssl, const char *peer);

#endif

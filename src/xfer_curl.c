/*
 * xfer_curl.c - the libcurl plumbing every remote protocol shares: FTP,
 * FTPS (explicit TLS), SFTP, and HTTP(S) with WebDAV for writes. This is
 * the only file that includes <curl/curl.h>. What differs between the
 * protocols (how a path is told to be a directory, how a directory is
 * made, a name moved, a tree removed) lives in one file per protocol
 * behind struct xfer_ops (xfer.h: xfer_ftp.c, xfer_sftp.c, xfer_dav.c,
 * xfer_http.c); xfer_curl_stat, _mkdir, _rename and _remove hand over to
 * the session's table. What is the same for all stays here: sessions,
 * downloads into a descriptor, uploads from one, listings, versions, the
 * commands that carry no transfer, and the sorting of every failure.
 *
 * One session is one easy handle for one server, used by one thread at a
 * time, driven by the session's own multi handle (xc_drive) rather than
 * curl_easy_perform, whose internal 1 s poll stalls an FTP download after
 * every EPSV. Every call starts with curl_easy_reset and re-applies the
 * session's options (credentials, TLS, SSH keys, timeouts): the reset
 * drops the previous call's options but the multi handle keeps the
 * connection cache, so the files a session copies travel over one
 * control connection (one SSH session, one keep-alive HTTP connection).
 * A task with several files in flight opens one session per lane. The
 * data connection of an FTPS upload is closed only once the server has
 * closed its side (xc_closesocket): a server that is late with its TLS 1.3
 * session tickets would otherwise have the connection reset under the
 * tail of the file it has not read yet, and store the file short.
 *
 * Commands without a transfer (MKD, RNFR/RNTO, DELE, RMD, CWD; rm, rename,
 * mkdir, rmdir) run as CURLOPT_QUOTE commands on a NOBODY request for the
 * server's root. FTP has no quoting, so paths go raw and a CR or LF in a
 * path is refused (every control character is, for every protocol); SFTP
 * paths go in double quotes with '"' and '\' escaped by a backslash, which
 * is what libcurl's SFTP quote parser reads. FTP URLs are written as
 * "ftp://host:port//abs/path" so that, with CURLFTPMETHOD_NOCWD, libcurl
 * sends absolute paths ("RETR /abs/path") whatever the login directory.
 *
 * Errors: the caller decides on retries from enum xfer_status, so every
 * failure is sorted here into transient (connection refused or cut,
 * timeout, FTP 4xx, HTTP 5xx, short transfer), permanent (login refused,
 * permission, certificate, 5xx and HTTP 4xx), not found, or stopped. The
 * message names the server (credentials masked) and the path, followed by
 * the server's own words where there are some: the last FTP error reply,
 * the HTTP status line, or libcurl's error buffer (SFTP's status text).
 * Credentials travel through CURLOPT_USERNAME/PASSWORD only, never inside a
 * URL, and a message is scrubbed of the password before it is returned.
 *
 * What a changing source gets: xfer_curl_version asks the server what
 * identifies a file now (HEAD: Content-Length, ETag, Last-Modified, or
 * the answer of the HEAD that planned the file a moment before; FTP: the
 * size and modify facts of one MLST, or SIZE and MDTM from a server
 * without it; SFTP: size and mtime), and xfer_curl_get, given the
 * version the caller expects, refuses an HTTP answer whose own ETag or
 * Last-Modified differs before writing any byte of it (XS_CHANGED): a
 * resumed download (Range) is never continued with bytes of another
 * version, whatever the server does with the range. The headers are read
 * from the debug callback, which sees every header line anyway.
 *
 * Memory does not grow with file size: downloads stream through the write
 * callback into the caller's fd, uploads through the read callback with
 * pread from the caller's offset. Nothing here is global; curl_global_init
 * is the program's business, before threads start.
 */
#include "xfer.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* libcurl's receive and upload buffers: larger than the defaults because
 * libssh2 pipelines SFTP writes in proportion to what it is given. */
#define XC_BUFSZ (256 * 1024)
#define XC_CONNECT_TIMEOUT 30 /* seconds, when the options give none */
#define XC_STALL_TIMEOUT 60
/* How deep xfer_curl_remove follows a directory tree before giving up. */
#define XC_MAX_DEPTH 64
/* An FTPS upload's data connection is closed only once the server has
 * closed its side, waiting at most this long, and reading at most
 * XC_LINGER_MAX bytes meanwhile (xc_closesocket). */
#define XC_LINGER_MS 10000
#define XC_LINGER_MAX (64 * 1024)
/* How long a HEAD's answer stands for the version of its file (see
 * xfer_curl_version). */
#define XC_HEAD_REUSE_MS 1000
/* The longest a handle sleeps before its transfer has started (xc_drive). */
#define XC_SETUP_POLL_MS 5
/* A download is written in pieces of this size, and its writeback started
 * every XC_WRITEBACK bytes. Not larger: ext4 caches a write of 1 MiB or
 * more in large folios, whose fresh high-order pages cost far more to fill
 * on a virtual machine that hands free memory back to its host (1 GiB in
 * 1 MiB writes: 0.6 s of system time, in 2 MiB writes 2.3 s, in 256 KiB
 * writes 0.16 s; docs/performance.md). */
#define XC_WRITE_BUF (256 * 1024)
#define XC_WRITEBACK (8 * 1024 * 1024)
/* ... or whatever it gathered after this many milliseconds. */
#define XC_WRITE_MS 200

enum xc_proto { XC_FTP, XC_SFTP, XC_HTTP };

/* What the body of an HTTP answer to a GET is for. */
enum xc_body { XC_BODY_UNKNOWN, XC_BODY_WRITE, XC_BODY_DISCARD };

static curl_socket_t xc_opensocket(void *clientp, curlsocktype purpose,
				   struct curl_sockaddr *a);
static int xc_closesocket(void *clientp, curl_socket_t fd);

struct xfer_curl {
	CURL *h;
	CURLM *m;                     /* drives h; owns the connection cache */
	int proto;                    /* enum xc_proto */
	int tls;                      /* ftps (AUTH TLS) or https */
	const char *protocols;        /* CURLOPT_PROTOCOLS_STR */
	char *base;                   /* "ftp://host:port", no credentials: URLs */
	char *shown;                  /* "ftps://user:***@host:port", for messages */
	char *user, *password;        /* decoded; NULL when absent */
	char *ca_file, *ssh_key, *ssh_pub, *known_hosts;
	long connect_timeout, stall_timeout;
	int refuse_private;
	volatile sig_atomic_t *stop;
	int (*allow)(void *arg, const char *url, char *err, size_t errlen);
	void *allow_arg;
	/* What the session's protocol keeps between calls (xfer_http.c: the
	 * manifests a plan parsed), freed with the session. */
	void *extra;
	void (*extra_free)(void *extra);
	char errbuf[CURL_ERROR_SIZE]; /* libcurl's own message for the last call */
	/* Once the server refused us (login, certificate, host key), every
	 * later call fails with this message without contacting it again:
	 * credentials do not change within a session, and repeated failed
	 * logins can lock an account. */
	char refused[512];
	int replayed;                 /* this call was answered from `refused` */
	/* Stall detection (see xc_progress). */
	curl_off_t moved;             /* bytes moved either way at the last check */
	int64_t moved_ms;             /* when they last changed, 0 before the transfer */
	int stalled;
	int linger;                   /* put over FTPS: see xc_closesocket */
	int mlst;                     /* FTP: MLST answered (1), refused (-1), not tried (0) */

	/* The current call; xc_setup clears all of it. */
	struct curl_slist *list;      /* quote commands or extra headers */
	char reply[256];              /* last FTP reply >= 400, or HTTP status line */
	int reply_code;               /* its code, 0 when none */
	char local[256];              /* a failure on our side (fd, on_data) */
	int fd;
	int64_t off;                  /* put: where reading starts in fd */
	int64_t limit;                /* put: bytes to send */
	int64_t pos;                  /* bytes moved through fd so far */
	int64_t reported;             /* put: bytes already shown to on_data */
	int64_t skip;                 /* get: bytes of the body to drop first */
	char *wbuf;                   /* get: what is gathered before a write */
	struct xc_hasher *hasher;     /* get: shows written pieces to on_data */
	size_t wlen;
	int64_t unsynced;             /* get: bytes written since writeback began */
	int64_t wflush_ms;            /* get: when the gathered bytes were last written */
	int body;                     /* get over HTTP: enum xc_body */
	char etag[128];               /* HTTP: the last answer's ETag, "" when none */
	char modified[64];            /* and its Last-Modified */
	const struct xfer_version *expect; /* get: the version the answer must be */
	char changed[512];            /* get: how the answer differed from it */
	int (*on_data)(void *arg, const char *buf, size_t n);
	void *arg;
	/* listings */
	struct xfer_entry *ents;
	int nents, capents;
	int with_links;               /* keep symbolic links (as files) */
	char facts[512];              /* FTP: the facts line of an MLST answer */
	/* HTTP: what the last HEAD through xfer_curl_head said, for one
	 * xfer_curl_version of the same path right after (see there). */
	char *head_path;
	struct xfer_version head_v;
	int64_t head_ms;
	const char *listdir;          /* the directory being listed, for messages */
	char *line;                   /* the listing line being received */
	size_t linelen, linecap;
};

static const struct {
	const char *scheme;
	int proto, tls, port;
	const char *curl_scheme;
} xc_schemes[] = {
	{ "ftp", XC_FTP, 0, 21, "ftp" },
	{ "ftps", XC_FTP, 1, 21, "ftp" }, /* explicit TLS on the FTP port */
	{ "sftp", XC_SFTP, 0, 22, "sftp" },
	{ "http", XC_HTTP, 0, 80, "http" },
	{ "https", XC_HTTP, 1, 443, "https" },
};

/* ---- messages ---------------------------------------------------------- */

/* Replaces every occurrence of the session's password in s (in place) by
 * "***". The password never enters a URL or a command we write, but a
 * server may echo what it received; this is the last line of defence. */
static void xc_scrub(const struct xfer_curl *x, char *s)
{
	if (!x || !x->password || strlen(x->password) < 3)
		return;
	size_t pl = strlen(x->password);
	char *p;
	while ((p = strstr(s, x->password)) != NULL) {
		memcpy(p, "***", 3);
		memmove(p + 3, p + pl, strlen(p + pl) + 1);
	}
}

static int xc_fail(struct xfer_curl *x, int status, const char *path, char *err, size_t errlen,
		   const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Writes "<server><path>: <what>" into err and returns `status`, so failure
 * paths read "return xc_fail(...)". */
static int xc_fail(struct xfer_curl *x, int status, const char *path, char *err, size_t errlen,
		   const char *fmt, ...)
{
	char what[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	char line[2048];
	snprintf(line, sizeof line, "%s%s: %s", x ? x->shown : "", path ? path : "", what);
	xc_scrub(x, line);
	if (err && errlen)
		snprintf(err, errlen, "%s", line);
	log_debug("xfer_curl: %s", line);
	return status;
}

/* Copies a server's line into a fixed buffer, control characters replaced,
 * so that nothing a server sends can forge a log line. */
static void xc_copy_line(char *dst, size_t dstlen, const char *s, size_t n)
{
	if (n >= dstlen)
		n = dstlen - 1;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		dst[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
	}
	dst[n] = '\0';
}

/* A header's value, without the blanks around it. */
static void xc_header_value(char *dst, size_t dstlen, const char *s, size_t n)
{
	while (n && (*s == ' ' || *s == '\t'))
		s++, n--;
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	xc_copy_line(dst, dstlen, s, n);
}

/* ---- libcurl callbacks --------------------------------------------------- */

/* Keeps the reply that explains a failure: for FTP the last reply with a
 * code of 400 or more, for HTTP the last status line. */
static void xc_reply_line(struct xfer_curl *x, const char *s, size_t n)
{
	while (n && (s[n - 1] == '\r' || s[n - 1] == '\n'))
		n--;
	if (x->proto == XC_HTTP) {
		if (n > 5 && memcmp(s, "HTTP/", 5) == 0) {
			xc_copy_line(x->reply, sizeof x->reply, s, n);
			x->etag[0] = x->modified[0] = '\0';
		} else if (n > 5 && strncasecmp(s, "ETag:", 5) == 0) {
			xc_header_value(x->etag, sizeof x->etag, s + 5, n - 5);
		} else if (n > 14 && strncasecmp(s, "Last-Modified:", 14) == 0) {
			xc_header_value(x->modified, sizeof x->modified, s + 14, n - 14);
		}
		return;
	}
	/* The one line of an MLST answer that does not start with a code:
	 * " type=file;size=...;modify=...; /path" (RFC 3659 7.2). */
	if (n > 1 && s[0] == ' ' && !x->facts[0]) {
		xc_copy_line(x->facts, sizeof x->facts, s + 1, n - 1);
		return;
	}
	if (n < 3 || s[0] < '4' || s[0] > '5' || s[1] < '0' || s[1] > '9' || s[2] < '0' ||
	    s[2] > '9' || (n > 3 && s[3] != ' ' && s[3] != '-'))
		return;
	xc_copy_line(x->reply, sizeof x->reply, s, n);
	x->reply_code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
}

static int xc_debug(CURL *h, curl_infotype type, char *data, size_t size, void *userp)
{
	(void)h;
	struct xfer_curl *x = userp;
	if (type != CURLINFO_HEADER_IN)
		return 0;
	while (size > 0) {
		const char *nl = memchr(data, '\n', size);
		size_t len = nl ? (size_t)(nl - data) : size;
		xc_reply_line(x, data, len);
		if (!nl)
			break;
		size -= len + 1;
		data += len + 1;
	}
	return 0;
}

/* Polls the stop flag, and cuts a transfer in which no byte has moved for
 * stall_timeout seconds. libcurl's own CURLOPT_LOW_SPEED_TIME (also set)
 * judges a speed averaged over the last few seconds, so it notices a stall
 * only some seconds late; this counts from the last byte. The clock starts
 * when the transfer does (libcurl's "pretransfer" point): connecting and
 * logging in have their own limits. libcurl calls this at least once a
 * second, whether bytes move or not. */
static int xc_progress(void *userp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	(void)dltotal, (void)ultotal;
	struct xfer_curl *x = userp;
	if (x->stop && *x->stop)
		return 1;
	int64_t now = util_mono_ms();
	if (x->moved_ms == 0) {
		curl_off_t pre = 0;
		curl_easy_getinfo(x->h, CURLINFO_PRETRANSFER_TIME_T, &pre);
		if (pre > 0) {
			x->moved = dlnow + ulnow;
			x->moved_ms = now;
		}
		return 0;
	}
	if (dlnow + ulnow != x->moved) {
		x->moved = dlnow + ulnow;
		x->moved_ms = now;
	} else if (now - x->moved_ms >= (int64_t)x->stall_timeout * 1000) {
		x->stalled = 1;
		return 1;
	}
	return 0;
}

/* Bodies nobody reads: error pages, MKCOL answers, listings of a probe. */
static size_t xc_discard(char *ptr, size_t size, size_t nmemb, void *userp)
{
	(void)ptr, (void)userp;
	return size * nmemb;
}

/* Whether an HTTP answer is of the version the caller expects: its own
 * ETag and Last-Modified, where both sides have one, are the same.
 * Otherwise `changed` says how they differ. */
static int xc_expected(struct xfer_curl *x)
{
	if (!x->expect || x->changed[0])
		return !x->changed[0];
	struct xfer_version got = { 0 };
	if (x->etag[0]) {
		got.known |= XV_ETAG;
		snprintf(got.etag, sizeof got.etag, "%s", x->etag);
	}
	if (x->modified[0]) {
		got.known |= XV_MODIFIED;
		snprintf(got.modified, sizeof got.modified, "%s", x->modified);
	}
	return !xfer_version_diff(x->expect, &got, x->changed, sizeof x->changed);
}

/* ---- the hasher beside a transfer ------------------------------------------ */

/* A transfer's on_data (the caller's SHA-256 and progress) runs in a thread
 * of its own, one piece behind the transfer: a download receives and
 * writes piece n+1 while piece n is hashed, an upload sends piece n while
 * it is hashed from a copy, so a fast link is not held to the speed of
 * SHA-256 on one core. Each piece is shown to on_data exactly once and in
 * order; xc_hasher_wait is the barrier. */
struct xc_hasher {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	char *buf, *spare;
	char *copy; /* an upload's piece, copied: libcurl reuses its buffer */
	size_t len;
	int busy, quit, failed;
	int (*on_data)(void *arg, const char *buf, size_t n);
	void *arg;
};

static void *xc_hasher_main(void *arg)
{
	struct xc_hasher *h = arg;
	pthread_mutex_lock(&h->lock);
	for (;;) {
		while (!h->busy && !h->quit)
			pthread_cond_wait(&h->cond, &h->lock);
		if (h->quit && !h->busy)
			break;
		pthread_mutex_unlock(&h->lock);
		int r = h->on_data(h->arg, h->buf, h->len);
		pthread_mutex_lock(&h->lock);
		if (r != 0)
			h->failed = 1;
		h->busy = 0;
		pthread_cond_broadcast(&h->cond);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

/* Waits until the piece handed over last has been shown to on_data,
 * starting the hasher first if the session has none. 0, or -1 with
 * x->local set when on_data refused a piece. */
static int xc_hasher_wait(struct xfer_curl *x)
{
	struct xc_hasher *h = x->hasher;
	if (!h) {
		h = util_calloc(1, sizeof *h);
		pthread_mutex_init(&h->lock, NULL);
		pthread_cond_init(&h->cond, NULL);
		h->spare = util_malloc(XC_WRITE_BUF);
		if (pthread_create(&h->thread, NULL, xc_hasher_main, h) != 0)
			abort();
		x->hasher = h;
		return 0;
	}
	pthread_mutex_lock(&h->lock);
	while (h->busy)
		pthread_cond_wait(&h->cond, &h->lock);
	int failed = h->failed;
	h->failed = 0;
	pthread_mutex_unlock(&h->lock);
	if (failed) {
		snprintf(x->local, sizeof x->local, "the transfer was refused by the caller");
		return -1;
	}
	return 0;
}

static void xc_hasher_stop(struct xfer_curl *x)
{
	struct xc_hasher *h = x->hasher;
	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	h->quit = 1;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
	pthread_join(h->thread, NULL);
	pthread_mutex_destroy(&h->lock);
	pthread_cond_destroy(&h->cond);
	free(h->spare);
	free(h->copy);
	free(h);
	x->hasher = NULL;
}

/* Gives the idle hasher (xc_hasher_wait first) `len` bytes at `buf` to
 * show to the session's on_data; `buf` must stay as it is until the next
 * xc_hasher_wait. */
static void xc_hasher_hand(struct xfer_curl *x, char *buf, size_t len)
{
	struct xc_hasher *h = x->hasher;
	pthread_mutex_lock(&h->lock);
	h->buf = buf;
	h->len = len;
	h->on_data = x->on_data;
	h->arg = x->arg;
	h->busy = 1;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
}

/* Hands an upload's piece to the hasher: a copy, since libcurl sends from
 * and then refills its own buffer. 0, or -1 with x->local set. */
static int xc_hasher_give(struct xfer_curl *x, const char *p, size_t n)
{
	while (n > 0) {
		if (xc_hasher_wait(x) < 0)
			return -1;
		struct xc_hasher *h = x->hasher;
		if (!h->copy)
			h->copy = util_malloc(XC_WRITE_BUF);
		size_t k = n < XC_WRITE_BUF ? n : XC_WRITE_BUF;
		memcpy(h->copy, p, k);
		xc_hasher_hand(x, h->copy, k);
		p += k;
		n -= k;
	}
	return 0;
}

/* Writes out what xc_write gathered, shows it to on_data, and starts its
 * writeback every XC_WRITEBACK bytes, so that the fsync or syncfs that
 * ends a large download finds little left to write. 0, or -1 with
 * x->local set. */
static int xc_flush(struct xfer_curl *x)
{
	const char *p = x->wbuf;
	size_t left = x->wlen;
	while (left > 0) {
		ssize_t w = write(x->fd, p, left);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			snprintf(x->local, sizeof x->local, "cannot write the local file: %s",
				 w < 0 ? strerror(errno) : "nothing written");
			x->wlen = 0;
			return -1;
		}
		p += w;
		left -= (size_t)w;
	}
	x->pos += (int64_t)x->wlen;
	x->unsynced += (int64_t)x->wlen;
	if (x->unsynced >= XC_WRITEBACK) {
		(void)sync_file_range(x->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
		x->unsynced = 0;
	}
	size_t n = x->wlen;
	x->wlen = 0;
	x->wflush_ms = util_mono_ms();
	if (!x->on_data)
		return 0;
	/* The piece goes to the hasher thread, which shows it to on_data
	 * while this thread receives the next one into the other buffer. */
	if (xc_hasher_wait(x) < 0)
		return -1;
	struct xc_hasher *h = x->hasher;
	xc_hasher_hand(x, x->wbuf, n);
	char *spare = h->spare;
	h->spare = x->wbuf;
	x->wbuf = spare;
	return 0;
}

static size_t xc_write(char *ptr, size_t size, size_t nmemb, void *userp)
{
	struct xfer_curl *x = userp;
	size_t n = size * nmemb;
	if (x->proto == XC_HTTP && x->body == XC_BODY_UNKNOWN) {
		long code = 0;
		curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code);
		if ((code == 200 || code == 206) && !xc_expected(x)) {
			/* Another version of the file: none of it is written. */
			x->body = XC_BODY_DISCARD;
			return 0;
		}
		if (code == 206 || (code == 200 && x->off == 0)) {
			x->body = XC_BODY_WRITE;
		} else if (code == 200) {
			/* The server ignored the Range: the whole file comes, and
			 * the part the caller has is read and dropped. */
			log_debug("xfer_curl: %s: range ignored, skipping %lld bytes", x->shown,
				  (long long)x->off);
			x->body = XC_BODY_WRITE;
			x->skip = x->off;
		} else {
			x->body = XC_BODY_DISCARD;
		}
	}
	if (x->body == XC_BODY_DISCARD)
		return n;
	const char *p = ptr;
	size_t left = n;
	if (x->skip > 0) {
		size_t drop = (int64_t)left < x->skip ? left : (size_t)x->skip;
		x->skip -= (int64_t)drop;
		p += drop;
		left -= drop;
	}
	if (left == 0)
		return n;
	/* Gathered into XC_WRITE_BUF before each write(2): libcurl hands over
	 * what one socket read gave (16 KiB at a time on a fast link), and a
	 * write per piece would be 65,000 system calls per GiB. */
	while (left > 0) {
		if (!x->wbuf)
			x->wbuf = util_malloc(XC_WRITE_BUF);
		size_t take = XC_WRITE_BUF - x->wlen < left ? XC_WRITE_BUF - x->wlen : left;
		memcpy(x->wbuf + x->wlen, p, take);
		x->wlen += take;
		p += take;
		left -= take;
		/* A slow link is written out now and then all the same, so
		 * that its progress shows and a cut loses little. */
		if ((x->wlen == XC_WRITE_BUF || util_mono_ms() - x->wflush_ms >= XC_WRITE_MS) &&
		    xc_flush(x) < 0)
			return 0;
	}
	/* libcurl calls the progress callback only between bursts, and a fast
	 * server fills many buffers in one: check the flag per chunk too. */
	if (x->stop && *x->stop)
		return 0;
	return n;
}

static size_t xc_read(char *buf, size_t size, size_t nitems, void *userp)
{
	struct xfer_curl *x = userp;
	size_t want = size * nitems;
	if (x->pos >= x->limit)
		return 0;
	if ((int64_t)want > x->limit - x->pos)
		want = (size_t)(x->limit - x->pos);
	ssize_t r;
	do
		r = pread(x->fd, buf, want, (off_t)(x->off + x->pos));
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		snprintf(x->local, sizeof x->local, "cannot read the local file: %s",
			 strerror(errno));
		return CURL_READFUNC_ABORT;
	}
	if (r == 0) {
		snprintf(x->local, sizeof x->local,
			 "the local file ended after %lld of %lld bytes",
			 (long long)(x->off + x->pos), (long long)(x->off + x->limit));
		return CURL_READFUNC_ABORT;
	}
	/* After a rewind (xc_seek), bytes already shown to on_data are sent
	 * again but not shown twice: the caller's hash sees each byte once. */
	int64_t end = x->pos + r;
	if (end > x->reported) {
		int64_t from = x->pos > x->reported ? x->pos : x->reported;
		if (x->on_data &&
		    xc_hasher_give(x, buf + (from - x->pos), (size_t)(end - from)) != 0)
			return CURL_READFUNC_ABORT;
		x->reported = end;
	}
	if (x->stop && *x->stop)
		return CURL_READFUNC_ABORT;
	x->pos = end;
	return (size_t)r;
}

/* libcurl rewinds an upload it has to send again (an HTTP authentication
 * round, a redirect); offsets are relative to the start of the upload. */
static int xc_seek(void *userp, curl_off_t offset, int origin)
{
	struct xfer_curl *x = userp;
	if (origin != SEEK_SET || offset < 0 || offset > x->limit)
		return CURL_SEEKFUNC_CANTSEEK;
	x->pos = offset;
	return CURL_SEEKFUNC_OK;
}

/* ---- listings ------------------------------------------------------------ */

/* A name a listing may hand back: not "." or "..", no '/', no control
 * character (it would break a quote command or a path). */
static int xc_name_ok(const char *s, size_t n)
{
	if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '/' || (unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

static void xc_add_entry(struct xfer_curl *x, const char *name, size_t n, int is_dir, int64_t size)
{
	if (!xc_name_ok(name, n)) {
		if (!(n == 1 && name[0] == '.') && !(n == 2 && name[0] == '.' && name[1] == '.'))
			log_debug("xfer_curl: %s%s: entry with an unusable name skipped",
				  x->shown, x->listdir);
		return;
	}
	if (x->nents == x->capents) {
		int cap = x->capents ? x->capents * 2 : 32;
		struct xfer_entry *v = util_calloc((size_t)cap, sizeof *v);
		if (x->ents)
			memcpy(v, x->ents, (size_t)x->nents * sizeof *v);
		free(x->ents);
		x->ents = v;
		x->capents = cap;
	}
	struct xfer_entry *e = &x->ents[x->nents++];
	e->name = util_strndup(name, n);
	e->is_dir = is_dir;
	e->size = is_dir ? -1 : size;
}

/* A listing line cut into whitespace-separated fields, with where each
 * starts in the line (the name is taken from the line, not the fields, so
 * that the spaces inside it survive). */
#define XC_MAX_FIELDS 12
struct xc_fields {
	int n;
	const char *f[XC_MAX_FIELDS];
	size_t len[XC_MAX_FIELDS];
};

static void xc_split(const char *s, const char *end, struct xc_fields *t)
{
	t->n = 0;
	while (t->n < XC_MAX_FIELDS) {
		while (s < end && (*s == ' ' || *s == '\t'))
			s++;
		if (s == end)
			break;
		t->f[t->n] = s;
		while (s < end && *s != ' ' && *s != '\t')
			s++;
		t->len[t->n] = (size_t)(s - t->f[t->n]);
		t->n++;
	}
}

/* What follows field i, leading whitespace skipped. */
static const char *xc_after(const struct xc_fields *t, int i, const char *end, size_t *len)
{
	const char *p = t->f[i] + t->len[i];
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	*len = (size_t)(end - p);
	return p;
}

static int xc_digits(const char *s, size_t n, size_t min, size_t max)
{
	if (n < min || n > max)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

static int64_t xc_number(const char *s, size_t n)
{
	if (!xc_digits(s, n, 1, 18))
		return -1;
	int64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (s[i] - '0');
	return v;
}

static int xc_month(const char *s, size_t n)
{
	static const char months[] = "janfebmaraprmayjunjulaugsepoctnovdec";
	if (n != 3)
		return 0;
	char m[4] = { (char)(s[0] | 0x20), (char)(s[1] | 0x20), (char)(s[2] | 0x20), 0 };
	const char *hit = strstr(months, m);
	return hit && (hit - months) % 3 == 0;
}

/* "13:01" or "2025": the last field of an ls date. */
static int xc_time_or_year(const char *s, size_t n)
{
	if (n == 5 && s[2] == ':')
		return xc_digits(s, 2, 2, 2) && xc_digits(s + 3, 2, 2, 2);
	return xc_digits(s, n, 4, 4);
}

static void xc_entry(struct xfer_curl *x, char type, const char *name, size_t namelen,
		     int64_t size)
{
	switch (type) {
	case 'd':
		xc_add_entry(x, name, namelen, 1, -1);
		break;
	case '-':
		xc_add_entry(x, name, namelen, 0, size);
		break;
	case 'l': {
		const char *arrow = memmem(name, namelen, " -> ", 4);
		if (arrow)
			namelen = (size_t)(arrow - name);
		if (x->with_links)
			xc_add_entry(x, name, namelen, 0, -1);
		else
			log_debug("xfer_curl: %s%s%.*s: symbolic link skipped (not supported)",
				  x->shown, x->listdir, (int)namelen, name);
		break;
	}
	default:
		/* A listing that must see everything (a removal, the check of
		 * a stage) takes a special file as a file too. */
		if (x->with_links)
			xc_add_entry(x, name, namelen, 0, -1);
		else
			log_debug("xfer_curl: %s%s%.*s: special file skipped", x->shown,
				  x->listdir, (int)namelen, name);
		break;
	}
}

/*
 * One line of a directory listing, in either of the two formats FTP servers
 * write and SFTP servers send as long names:
 *
 *   Unix:    drwxr-xr-x  2 user group 4096 Nov 22 13:01 name
 *            -rw-r--r--  1 user 1234 Nov 22  2025 name     (no group)
 *            lrwxrwxrwx  1 user group 4 Nov 22 13:01 name -> target
 *   Windows: 11-22-26  01:01PM       <DIR>          name
 *            11-22-26  01:01PM                1234 name
 *
 * In the Unix format the size is the field before the date ("Mon DD
 * HH:MM|YYYY") and the name is everything after the date, so a missing
 * group or owner column does not shift anything; without a recognisable
 * date the classic nine columns are assumed.
 */
static void xc_listing_line(struct xfer_curl *x, const char *s, size_t n)
{
	while (n && (s[n - 1] == '\r' || s[n - 1] == '\n'))
		n--;
	const char *end = s + n;
	struct xc_fields t;
	xc_split(s, end, &t);
	if (t.n == 0 || (t.n == 2 && t.len[0] == 5 && memcmp(t.f[0], "total", 5) == 0))
		return;
	size_t namelen;
	const char *name;
	if (t.n >= 4 && t.len[0] >= 8 && t.f[0][2] == '-' && t.f[0][5] == '-' &&
	    xc_digits(t.f[0], 2, 2, 2) && t.len[1] >= 5 && t.f[1][2] == ':') {
		name = xc_after(&t, 2, end, &namelen);
		int dir = t.len[2] == 5 && memcmp(t.f[2], "<DIR>", 5) == 0;
		xc_entry(x, dir ? 'd' : '-', name, namelen, dir ? -1 : xc_number(t.f[2], t.len[2]));
		return;
	}
	if (t.n >= 6 && t.len[0] >= 10 && strchr("-dlbcps", t.f[0][0])) {
		for (int i = 2; i + 2 < t.n && i + 3 < XC_MAX_FIELDS; i++) {
			if (xc_month(t.f[i], t.len[i]) && xc_digits(t.f[i + 1], t.len[i + 1], 1, 2) &&
			    xc_time_or_year(t.f[i + 2], t.len[i + 2]) && i + 3 <= t.n) {
				name = xc_after(&t, i + 2, end, &namelen);
				xc_entry(x, t.f[0][0], name, namelen, xc_number(t.f[i - 1], t.len[i - 1]));
				return;
			}
		}
		if (t.n >= 9) {
			name = xc_after(&t, 7, end, &namelen);
			xc_entry(x, t.f[0][0], name, namelen, xc_number(t.f[4], t.len[4]));
			return;
		}
	}
	log_debug("xfer_curl: %s%s: listing line not understood, skipped", x->shown, x->listdir);
}

/* Cuts a listing into lines as it arrives; memory grows with the longest
 * line, not with the listing. */
static size_t xc_listing(char *ptr, size_t size, size_t nmemb, void *userp)
{
	struct xfer_curl *x = userp;
	size_t n = size * nmemb;
	for (size_t i = 0; i < n; i++) {
		if (ptr[i] == '\n') {
			xc_listing_line(x, x->line, x->linelen);
			x->linelen = 0;
			continue;
		}
		if (x->linelen + 1 >= x->linecap) {
			size_t cap = x->linecap ? x->linecap * 2 : 512;
			if (cap > 64 * 1024) {
				snprintf(x->local, sizeof x->local, "a listing line is too long");
				return 0;
			}
			char *l = util_malloc(cap);
			if (x->line)
				memcpy(l, x->line, x->linelen);
			free(x->line);
			x->line = l;
			x->linecap = cap;
		}
		x->line[x->linelen++] = ptr[i];
	}
	return n;
}

/* ---- sessions --------------------------------------------------------- */

struct xfer_curl *xfer_curl_open(const char *url, const struct xfer_curl_opts *o, char *err,
				 size_t errlen)
{
	struct url u;
	char why[256];
	if (url_parse(url, &u, why, sizeof why) < 0) {
		char *m = url_mask(url);
		snprintf(err, errlen, "%s: %s", m, why);
		free(m);
		return NULL;
	}
	int k = -1;
	for (size_t i = 0; i < sizeof xc_schemes / sizeof xc_schemes[0]; i++)
		if (strcmp(u.scheme, xc_schemes[i].scheme) == 0)
			k = (int)i;
	if (k < 0 || (*u.path && strcmp(u.path, "/") != 0)) {
		char *m = url_mask(url);
		snprintf(err, errlen,
			 k < 0 ? "%s: unsupported scheme (ftp, ftps, sftp, http, https)"
			       : "%s: a session URL names a server only (scheme://host:port/)",
			 m);
		free(m);
		url_free(&u);
		return NULL;
	}
	CURL *h = curl_easy_init();
	if (!h) {
		snprintf(err, errlen, "libcurl cannot start a session");
		url_free(&u);
		return NULL;
	}
	struct xfer_curl *x = util_calloc(1, sizeof *x);
	x->h = h;
	x->m = curl_multi_init();
	if (!x->m) {
		snprintf(err, errlen, "libcurl cannot start a session");
		curl_easy_cleanup(h);
		free(x);
		url_free(&u);
		return NULL;
	}
	x->proto = xc_schemes[k].proto;
	x->tls = xc_schemes[k].tls;
	x->protocols = xc_schemes[k].curl_scheme;
	/* The Host header libcurl sends leaves a default port out; so does the
	 * base, so that a WebDAV Destination names the host the same way. */
	int v6 = strchr(u.host, ':') != NULL;
	char port[16] = "";
	if (u.port && u.port != xc_schemes[k].port)
		snprintf(port, sizeof port, ":%d", u.port);
	x->base = util_printf("%s://%s%s%s%s", xc_schemes[k].curl_scheme, v6 ? "[" : "", u.host,
			      v6 ? "]" : "", port);
	/* Messages name the port always, as the configuration shows it. */
	x->shown = util_printf("%s://%s%s%s%s%s%s:%d", u.scheme, u.user ? u.user : "",
			       u.user && u.password ? ":***" : "", u.user ? "@" : "", v6 ? "[" : "",
			       u.host, v6 ? "]" : "", u.port ? u.port : xc_schemes[k].port);
	x->user = util_strdup(u.user);
	x->password = util_strdup(u.password);
	url_free(&u);
	if (o) {
		x->ca_file = util_strdup(o->ca_file);
		x->ssh_key = util_strdup(o->ssh_private_key);
		x->ssh_pub = util_strdup(o->ssh_public_key);
		x->known_hosts = util_strdup(o->ssh_known_hosts);
		x->connect_timeout = o->connect_timeout;
		x->refuse_private = o->refuse_private;
		x->stall_timeout = o->stall_timeout;
		x->stop = o->stop;
		x->allow = o->allow;
		x->allow_arg = o->allow_arg;
	}
	if (x->connect_timeout <= 0)
		x->connect_timeout = XC_CONNECT_TIMEOUT;
	if (x->stall_timeout <= 0)
		x->stall_timeout = XC_STALL_TIMEOUT;
	x->fd = -1;
	x->listdir = "";
	return x;
}

void xfer_curl_close(struct xfer_curl *x)
{
	if (!x)
		return;
	if (x->extra_free)
		x->extra_free(x->extra);
	curl_easy_cleanup(x->h);
	curl_multi_cleanup(x->m);
	curl_slist_free_all(x->list);
	if (x->password)
		explicit_bzero(x->password, strlen(x->password));
	free(x->base);
	free(x->shown);
	free(x->user);
	free(x->password);
	free(x->ca_file);
	free(x->ssh_key);
	free(x->ssh_pub);
	free(x->known_hosts);
	xfer_curl_free_entries(x->ents, x->nents);
	free(x->line);
	xc_hasher_stop(x);
	free(x->wbuf);
	free(x->head_path);
	free(x);
}

/* Resets the handle for a new call on `url` and applies the session's
 * options; the connection cache survives the reset. */
static void xc_setup(struct xfer_curl *x, const char *url)
{
	CURL *h = x->h;
	curl_easy_reset(h);
	curl_slist_free_all(x->list);
	x->list = NULL;
	x->errbuf[0] = x->reply[0] = x->local[0] = x->facts[0] = '\0';
	x->reply_code = 0;
	x->replayed = 0;
	x->moved = 0;
	x->moved_ms = 0;
	x->stalled = 0;
	x->fd = -1;
	x->off = x->limit = x->pos = x->reported = x->skip = 0;
	x->wlen = 0;
	x->unsynced = 0;
	x->wflush_ms = util_mono_ms();
	x->body = XC_BODY_UNKNOWN;
	x->etag[0] = x->modified[0] = x->changed[0] = '\0';
	x->expect = NULL;
	x->on_data = NULL;
	x->arg = NULL;
	x->linelen = 0;

	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, x->protocols);
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, x->protocols);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, x->connect_timeout);
	curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, xc_opensocket);
	curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, x);
	curl_easy_setopt(h, CURLOPT_CLOSESOCKETFUNCTION, xc_closesocket);
	curl_easy_setopt(h, CURLOPT_CLOSESOCKETDATA, x);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, x->stall_timeout);
	/* A server that does not answer an FTP or SFTP command is stalled too. */
	curl_easy_setopt(h, CURLOPT_SERVER_RESPONSE_TIMEOUT, x->stall_timeout);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_BUFFERSIZE, (long)XC_BUFSZ);
	curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, (long)XC_BUFSZ);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, xc_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
	/* Verbose output goes to xc_debug only, which keeps the server's
	 * replies and ignores the rest (including what we send: the FTP
	 * PASS command and the Authorization header). */
	curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
	curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, xc_debug);
	curl_easy_setopt(h, CURLOPT_DEBUGDATA, x);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, xc_discard);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	if (x->user)
		curl_easy_setopt(h, CURLOPT_USERNAME, x->user);
	if (x->password)
		curl_easy_setopt(h, CURLOPT_PASSWORD, x->password);
	if (x->ca_file && x->tls)
		curl_easy_setopt(h, CURLOPT_CAINFO, x->ca_file);
	switch (x->proto) {
	case XC_FTP:
		curl_easy_setopt(h, CURLOPT_FTP_FILEMETHOD, (long)CURLFTPMETHOD_NOCWD);
		curl_easy_setopt(h, CURLOPT_FTP_CREATE_MISSING_DIRS, (long)CURLFTP_CREATE_DIR_NONE);
		if (x->tls)
			curl_easy_setopt(h, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
		break;
	case XC_SFTP:
		curl_easy_setopt(h, CURLOPT_SSH_AUTH_TYPES,
				 (long)(CURLSSH_AUTH_PUBLICKEY | CURLSSH_AUTH_PASSWORD));
		if (x->ssh_key)
			curl_easy_setopt(h, CURLOPT_SSH_PRIVATE_KEYFILE, x->ssh_key);
		if (x->ssh_pub)
			curl_easy_setopt(h, CURLOPT_SSH_PUBLIC_KEYFILE, x->ssh_pub);
		if (x->known_hosts)
			curl_easy_setopt(h, CURLOPT_SSH_KNOWNHOSTS, x->known_hosts);
		break;
	default:
		break;
	}
}

/* Runs the call on the session's multi handle rather than with
 * curl_easy_perform: the easy interface (7.88) sleeps its full 1 s poll
 * timeout whenever a reply it needs is already in its buffer (after an FTP
 * EPSV, every file), while here the loop runs the state machine again at
 * once whenever libcurl asks for it (a timeout of 0) and otherwise sleeps
 * only until a socket moves or libcurl's own next timer. */
static CURLcode xc_drive(struct xfer_curl *x)
{
	CURLMcode mc = curl_multi_add_handle(x->m, x->h);
	if (mc != CURLM_OK) {
		snprintf(x->local, sizeof x->local, "libcurl: %s", curl_multi_strerror(mc));
		return CURLE_FAILED_INIT;
	}
	CURLcode rc = CURLE_OK;
	int running = 1;
	while (running) {
		mc = curl_multi_perform(x->m, &running);
		if (mc != CURLM_OK)
			break;
		if (!running)
			break;
		long ms = -1;
		curl_multi_timeout(x->m, &ms);
		if (ms == 0)
			continue;
		if (ms < 0 || ms > 1000)
			ms = 1000;
		/* Before its transfer starts a handle may be waiting on a reply
		 * it already holds, with no socket and no timer that would wake
		 * it: such waits are cut short. */
		curl_off_t pre = 0;
		curl_easy_getinfo(x->h, CURLINFO_PRETRANSFER_TIME_T, &pre);
		if (pre == 0 && ms > XC_SETUP_POLL_MS)
			ms = XC_SETUP_POLL_MS;
		mc = curl_multi_poll(x->m, NULL, 0, (int)ms, NULL);
		if (mc != CURLM_OK)
			break;
	}
	int left;
	CURLMsg *msg;
	rc = mc != CURLM_OK ? CURLE_FAILED_INIT : CURLE_OK;
	while ((msg = curl_multi_info_read(x->m, &left)) != NULL)
		if (msg->msg == CURLMSG_DONE && msg->easy_handle == x->h)
			rc = msg->data.result;
	if (mc != CURLM_OK)
		snprintf(x->local, sizeof x->local, "libcurl: %s", curl_multi_strerror(mc));
	curl_multi_remove_handle(x->m, x->h);
	return rc;
}

static CURLcode xc_perform(struct xfer_curl *x)
{
	if (x->stop && *x->stop)
		return CURLE_ABORTED_BY_CALLBACK;
	if (x->refused[0]) {
		x->replayed = 1;
		return CURLE_LOGIN_DENIED;
	}
	return xc_drive(x);
}

/* Makes the session refuse every later call with `msg` (see `refused`). */
static void xc_refuse(struct xfer_curl *x, const char *msg)
{
	snprintf(x->refused, sizeof x->refused, "%s", msg && *msg ? msg : x->shown);
}

/* Failures of the connection or of the transfer itself rather than answers
 * of the server to a command: always worth another attempt. */
static int xc_connection_error(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_GOT_NOTHING:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_FTP_ACCEPT_FAILED:
	case CURLE_FTP_ACCEPT_TIMEOUT:
	case CURLE_FTP_WEIRD_PASV_REPLY:
	case CURLE_FTP_WEIRD_227_FORMAT:
	case CURLE_FTP_CANT_GET_HOST:
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_AGAIN:
	case CURLE_SSH:
		return 1;
	default:
		return 0;
	}
}

/* 1 for loopback, private (RFC 1918, unique local), link-local, shared
 * (100.64/10), unspecified and multicast addresses, IPv4-mapped included. */
static int xc_private_addr(const struct sockaddr *sa)
{
	const unsigned char *b;
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		b = s6->sin6_addr.s6_addr;
		static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
		if (memcmp(b, mapped, 12) == 0) {
			b += 12; /* an IPv4 address in IPv6 clothing */
			goto v4;
		}
		int zero15 = 1;
		for (int i = 0; i < 15; i++)
			zero15 &= b[i] == 0;
		return (zero15 && (b[15] == 0 || b[15] == 1)) || /* :: and ::1 */
		       (b[0] & 0xfe) == 0xfc ||                  /* fc00::/7 */
		       (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) || /* fe80::/10 */
		       b[0] == 0xff;                              /* multicast */
	}
	if (sa->sa_family != AF_INET)
		return 1;
	b = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr.s_addr;
v4:
	return b[0] == 0 || b[0] == 10 || b[0] == 127 || (b[0] == 169 && b[1] == 254) ||
	       (b[0] == 172 && (b[1] & 0xf0) == 16) || (b[0] == 192 && b[1] == 168) ||
	       (b[0] == 100 && (b[1] & 0xc0) == 64) || b[0] >= 224;
}

/* Every socket libcurl opens (control and data connections alike) comes
 * here, after name resolution: the place to refuse internal addresses. */
static curl_socket_t xc_opensocket(void *clientp, curlsocktype purpose,
				   struct curl_sockaddr *a)
{
	struct xfer_curl *x = clientp;
	(void)purpose;
	if (x->refuse_private && xc_private_addr(&a->addr)) {
		char host[INET6_ADDRSTRLEN] = "?";
		const void *in = a->family == AF_INET6
					 ? (const void *)&((struct sockaddr_in6 *)&a->addr)->sin6_addr
					 : (const void *)&((struct sockaddr_in *)&a->addr)->sin_addr;
		inet_ntop(a->family, in, host, sizeof host);
		snprintf(x->local, sizeof x->local,
			 "refused to connect to %s: a loopback, private or link-local address "
			 "(refuse_private_sources)", host);
		return CURL_SOCKET_BAD;
	}
	return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* Every socket xc_opensocket opened is closed here. An FTPS upload ends
 * with the client closing the data connection, and the server takes
 * whatever it read before the close for the whole file (FTP has no other
 * end of file). Under TLS 1.3 the server sends its session tickets only
 * once it has read our Finished message, which a busy server does after
 * we have sent the whole file and closed: those bytes then reach a closed
 * socket, the kernel answers with a reset, and the reset discards what
 * the server had not read yet - the file is stored short and the server
 * still answers 226. So the data connection of an upload is half-closed
 * (libcurl has sent the TLS close_notify before), and what the server
 * still sends is read and dropped until it closes its side: it then has
 * read every byte. The wait is bounded (XC_LINGER_MS, XC_LINGER_MAX, a
 * stop) and is never an error: a short file is still caught by the
 * listing of the stage (xfer.c). */
static int xc_closesocket(void *clientp, curl_socket_t fd)
{
	struct xfer_curl *x = clientp;
	if (x->linger && shutdown(fd, SHUT_WR) == 0) {
		int64_t until = util_mono_ms() + XC_LINGER_MS;
		size_t drained = 0;
		char buf[4096];
		for (;;) {
			int64_t left = until - util_mono_ms();
			if (left <= 0 || drained > XC_LINGER_MAX || (x->stop && *x->stop))
				break;
			struct pollfd p = { .fd = fd, .events = POLLIN };
			int n = poll(&p, 1, left < 100 ? (int)left : 100);
			if (n < 0 && errno != EINTR)
				break;
			if (n <= 0)
				continue;
			ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
			if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
				       errno != EINTR))
				break;
			if (r > 0)
				drained += (size_t)r;
		}
	}
	return close(fd);
}

/* Sorts out how a call ended. `nf` says whether a missing path is the
 * answer to this call (XS_NOTFOUND) or a failure of it (XS_PERMANENT, e.g.
 * an upload into a missing directory). */
static int xc_result(struct xfer_curl *x, CURLcode rc, int nf, const char *path, char *err,
		     size_t errlen)
{
	if (x->replayed) {
		if (err && errlen)
			snprintf(err, errlen, "%s", x->refused);
		return XS_PERMANENT;
	}
	if (x->local[0])
		return xc_fail(x, XS_PERMANENT, path, err, errlen, "%s", x->local);
	if (rc == CURLE_ABORTED_BY_CALLBACK && x->stalled)
		return xc_fail(x, XS_TRANSIENT, path, err, errlen,
			       "no data moved for %ld seconds", x->stall_timeout);
	if (rc != CURLE_OK && x->stop && *x->stop &&
	    (rc == CURLE_ABORTED_BY_CALLBACK || rc == CURLE_WRITE_ERROR ||
	     rc == CURLE_READ_ERROR))
		return xc_fail(x, XS_STOPPED, path, err, errlen, "stopped");

	if (rc == CURLE_OK && x->proto == XC_HTTP) {
		long code = 0;
		curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code);
		if (code >= 200 && code < 300)
			return XS_OK;
		int st = XS_PERMANENT;
		if (code == 404 || code == 410)
			st = nf ? XS_NOTFOUND : XS_PERMANENT;
		else if (code == 408 || code == 429 || code >= 500)
			st = XS_TRANSIENT;
		const char *sp = strchr(x->reply, ' ');
		if (sp && sp[1] && strchr(sp + 1, ' '))
			xc_fail(x, st, path, err, errlen, "%s", sp + 1);
		else
			xc_fail(x, st, path, err, errlen, "HTTP status %ld", code);
		if (code == 401 || code == 407)
			xc_refuse(x, err);
		return st;
	}
	if (rc == CURLE_OK)
		return XS_OK;
	log_debug("xfer_curl: %s%s: libcurl error %d (%s), reply %d", x->shown, path, (int)rc,
		  curl_easy_strerror(rc), x->reply_code);

	const char *what = x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc);
	if (xc_connection_error(rc))
		return xc_fail(x, XS_TRANSIENT, path, err, errlen, "%s", what);
	/* From here on the server refused something; for FTP its own reply
	 * says best what and why. */
	if (x->proto == XC_FTP && x->reply_code >= 400)
		what = x->reply;
	int st;
	switch (rc) {
	case CURLE_REMOTE_FILE_NOT_FOUND:
		st = nf ? XS_NOTFOUND : XS_PERMANENT;
		break;
	case CURLE_FTP_COULDNT_RETR_FILE:
	case CURLE_REMOTE_ACCESS_DENIED:
		/* FTP's 550 to RETR or LIST: "file unavailable", the reply FTP
		 * servers give for a missing path. */
		st = x->proto == XC_FTP && x->reply_code == 550 && nf ? XS_NOTFOUND
									: XS_PERMANENT;
		break;
	case CURLE_LOGIN_DENIED:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_USE_SSL_FAILED:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
	case CURLE_BAD_DOWNLOAD_RESUME:
	case CURLE_RANGE_ERROR:
	case CURLE_FTP_COULDNT_USE_REST:
	case CURLE_UPLOAD_FAILED:
	case CURLE_QUOTE_ERROR:
	case CURLE_REMOTE_FILE_EXISTS:
	case CURLE_FILESIZE_EXCEEDED:
	case CURLE_AUTH_ERROR:
		st = XS_PERMANENT;
		break;
	case CURLE_REMOTE_DISK_FULL: /* space may be freed: try again later */
	default:
		st = XS_TRANSIENT;
		break;
	}
	/* An FTP 4xx reply is the server's own "try again later" (421 too
	 * many users, 425 no data connection, 450 file busy, 452 no space). */
	if (x->proto == XC_FTP && x->reply_code >= 400 && x->reply_code < 500 &&
	    st != XS_NOTFOUND)
		st = XS_TRANSIENT;
	xc_fail(x, st, path, err, errlen, "%s", what);
	if (st == XS_PERMANENT &&
	    (rc == CURLE_LOGIN_DENIED || rc == CURLE_AUTH_ERROR || rc == CURLE_USE_SSL_FAILED ||
	     rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
	     rc == CURLE_SSL_CERTPROBLEM || rc == CURLE_SSL_ISSUER_ERROR))
		xc_refuse(x, err);
	return st;
}

/* ---- paths and URLs ----------------------------------------------------- */

/* Every path is absolute and free of control characters: FTP would take a
 * CR LF as the end of a command, and nothing legitimate carries one. */
static int xc_check_path(struct xfer_curl *x, const char *path, char *err, size_t errlen)
{
	if (!path || path[0] != '/')
		return xc_fail(x, XS_PERMANENT, path ? path : "", err, errlen,
			       "not an absolute path");
	for (const char *p = path; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return xc_fail(x, XS_PERMANENT, "", err, errlen,
				       "control character in path");
	/* libcurl reads "/~/" at the start of an SFTP path as the home
	 * directory, in URLs and quote commands alike. */
	if (x->proto == XC_SFTP && strncmp(path, "/~/", 3) == 0)
		return xc_fail(x, XS_PERMANENT, path, err, errlen,
			       "paths starting with /~/ are not supported over sftp");
	return XS_OK;
}

/* The URL of a path: FTP puts an extra '/' first, which libcurl reads as
 * "absolute" ("ftp://h//a/b" names /a/b, "ftp://h/a/b" a/b below the login
 * directory). */
static char *xc_url(struct xfer_curl *x, const char *path)
{
	char *enc = url_encode_path(path);
	char *u = util_printf("%s%s%s", x->base, x->proto == XC_FTP ? "/" : "", enc);
	free(enc);
	return u;
}

/* path without its trailing '/' (but "/" stays "/"). */
static char *xc_noslash(const char *path)
{
	char *p = util_strdup(path);
	size_t n = strlen(p);
	while (n > 1 && p[n - 1] == '/')
		p[--n] = '\0';
	return p;
}

/* path with a trailing '/'. */
static char *xc_slash(const char *path)
{
	size_t n = strlen(path);
	return n && path[n - 1] == '/' ? util_strdup(path) : util_printf("%s/", path);
}

/* "verb path" for FTP; verb "path" ["path"] for SFTP with '"' and '\'
 * escaped. Paths lose a trailing '/'. */
static char *xc_cmd(struct xfer_curl *x, const char *verb, const char *p1, const char *p2)
{
	const char *paths[2] = { p1, p2 };
	size_t cap = strlen(verb) + 8;
	for (int i = 0; i < 2; i++)
		if (paths[i])
			cap += 2 * strlen(paths[i]) + 4;
	char *out = util_malloc(cap), *o = out;
	o += sprintf(o, "%s", verb);
	for (int i = 0; i < 2; i++) {
		if (!paths[i])
			continue;
		char *p = xc_noslash(paths[i]);
		*o++ = ' ';
		if (x->proto == XC_FTP) {
			o += sprintf(o, "%s", p);
		} else {
			*o++ = '"';
			for (const char *s = p; *s; s++) {
				if (*s == '"' || *s == '\\')
					*o++ = '\\';
				*o++ = *s;
			}
			*o++ = '"';
		}
		free(p);
	}
	*o = '\0';
	return out;
}

/* Runs quote commands (already in x->list) on a NOBODY request for the
 * server's root; nothing is transferred. */
static int xc_run_quote(struct xfer_curl *x, const char *path, int nf, char *err, size_t errlen)
{
	curl_easy_setopt(x->h, CURLOPT_NOBODY, 1L);
	if (x->proto != XC_FTP) {
		curl_easy_setopt(x->h, CURLOPT_QUOTE, x->list);
		return xc_result(x, xc_perform(x), nf, path, err, errlen);
	}
	/* libcurl closes an FTP control connection after a quote command it
	 * sees fail, and the next call logs in again: a refused MKD of a
	 * directory that exists, or a CWD that tells a file from a directory,
	 * would cost a login. Each command goes with libcurl's '*' ("may
	 * fail"), and the server's reply, which xc_debug keeps, says how it
	 * went. */
	struct curl_slist *starred = NULL;
	for (struct curl_slist *l = x->list; l; l = l->next) {
		char *c = util_printf("*%s", l->data);
		starred = curl_slist_append(starred, c);
		free(c);
	}
	curl_easy_setopt(x->h, CURLOPT_QUOTE, starred);
	CURLcode c = xc_perform(x);
	curl_easy_setopt(x->h, CURLOPT_QUOTE, NULL);
	curl_slist_free_all(starred);
	if (c == CURLE_OK && x->reply_code >= 400)
		c = CURLE_QUOTE_ERROR;
	return xc_result(x, c, nf, path, err, errlen);
}

/* One quote command on `path` (and `path2`). */
static int xc_quote1(struct xfer_curl *x, const char *verb, const char *path, const char *path2,
		     int nf, char *err, size_t errlen)
{
	char *root = xc_url(x, "/");
	xc_setup(x, root);
	free(root);
	char *cmd = xc_cmd(x, verb, path, path2);
	x->list = curl_slist_append(x->list, cmd);
	free(cmd);
	return xc_run_quote(x, path, nf, err, errlen);
}

/* ---- listing, stat, size ------------------------------------------------ */

/* Fills x->ents with the entries of `dir` (symbolic links and special
 * files kept as files when x->with_links). */
static int xc_list(struct xfer_curl *x, const char *dir, char *err, size_t errlen)
{
	xfer_curl_free_entries(x->ents, x->nents);
	x->ents = NULL;
	x->nents = x->capents = 0;
	int rc = xc_check_path(x, dir, err, errlen);
	if (rc != XS_OK)
		return rc;
	if (x->proto == XC_HTTP)
		return xc_fail(x, XS_PERMANENT, dir, err, errlen,
			       "directory listing is not supported over http");
	char *d = xc_slash(dir);
	char *url = xc_url(x, d);
	x->listdir = d;
	xc_setup(x, url);
	curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, xc_listing);
	CURLcode c = xc_perform(x);
	if (c == CURLE_OK && x->linelen)
		xc_listing_line(x, x->line, x->linelen);
	/* Some FTP servers list a missing directory as an empty one (and
	 * libcurl takes a 450 to LIST for "nothing there"): CWD tells. */
	if (c == CURLE_OK && x->proto == XC_FTP && x->nents == 0) {
		int is_dir = 0;
		int64_t size;
		rc = xfer_ftp_ops.stat(x, d, &is_dir, &size, err, errlen);
	} else
		rc = xc_result(x, c, 1, d, err, errlen);
	x->listdir = "";
	free(url);
	free(d);
	return rc;
}

int xfer_curl_list(struct xfer_curl *x, const char *dir, struct xfer_entry **entries, int *n,
		   char *err, size_t errlen)
{
	*entries = NULL;
	*n = 0;
	x->with_links = 0;
	int rc = xc_list(x, dir, err, errlen);
	if (rc == XS_OK) {
		*entries = x->ents;
		*n = x->nents;
		x->ents = NULL;
		x->nents = x->capents = 0;
	}
	return rc;
}

void xfer_curl_free_entries(struct xfer_entry *e, int n)
{
	if (!e)
		return;
	for (int i = 0; i < n; i++)
		free(e[i].name);
	free(e);
}

/* The HTTP status of the last answer (0 if none). */
static long xc_http_code(struct xfer_curl *x)
{
	long code = 0;
	curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code);
	return code;
}

/* A request without a body: HEAD over HTTP; FTP and SFTP open the file
 * without reading it (FTP: SIZE). *size (may be NULL) is what the server
 * said, -1 if nothing. */
static int xc_head(struct xfer_curl *x, const char *path, int64_t *size, char *err, size_t errlen)
{
	char *url = xc_url(x, path);
	xc_setup(x, url);
	free(url);
	curl_easy_setopt(x->h, CURLOPT_NOBODY, 1L);
	int rc = xc_result(x, xc_perform(x), 1, path, err, errlen);
	curl_off_t len = -1;
	if (rc == XS_OK)
		curl_easy_getinfo(x->h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len);
	if (size)
		*size = len;
	return rc;
}

int xfer_curl_stat(struct xfer_curl *x, const char *path, int *is_dir, int64_t *size, char *err,
		   size_t errlen)
{
	*is_dir = 0;
	*size = -1;
	int rc = xc_check_path(x, path, err, errlen);
	if (rc != XS_OK)
		return rc;
	return xfer_curl_ops(x)->stat(x, path, is_dir, size, err, errlen);
}

int xfer_curl_size(struct xfer_curl *x, const char *path, int64_t *size, char *err, size_t errlen)
{
	int is_dir = 0;
	*size = -1;
	int rc = xfer_curl_stat(x, path, &is_dir, size, err, errlen);
	if (rc == XS_OK && is_dir) {
		*size = -1;
		return xc_fail(x, XS_PERMANENT, path, err, errlen, "is a directory, not a file");
	}
	return rc;
}

/* ---- transfers ------------------------------------------------------------ */

/* Adds to *v what the last answer told of the file: its size (`len`, -1
 * when not told) and, over HTTP, its ETag and Last-Modified. */
static void xc_answer_version(const struct xfer_curl *x, int64_t len, struct xfer_version *v)
{
	if (len >= 0) {
		v->known |= XV_SIZE;
		v->size = len;
	}
	if (x->etag[0]) {
		v->known |= XV_ETAG;
		snprintf(v->etag, sizeof v->etag, "%s", x->etag);
	}
	if (x->modified[0]) {
		v->known |= XV_MODIFIED;
		snprintf(v->modified, sizeof v->modified, "%s", x->modified);
	}
}

/* The value of the fact `name` ("size=") in an MLST facts line, or NULL. */
static const char *xc_fact(const char *facts, const char *name)
{
	size_t nl = strlen(name);
	for (const char *f = facts; *f && *f != ' ';) {
		if (strncasecmp(f, name, nl) == 0)
			return f + nl;
		const char *semi = strchr(f, ';');
		if (!semi)
			break;
		f = semi + 1;
	}
	return NULL;
}

/* A file's version over FTP in one command, MLST (RFC 3659), where
 * SIZE, MDTM and libcurl's REST 0 take three: XS_OK with *v filled, the
 * error of asking, or -1 when the server does not answer MLST with the
 * facts of a file (then the caller asks the old way). A server that does
 * not know the command is not asked again in this session. The time is
 * kept in whole seconds, as MDTM's, so a version recorded either way
 * compares equal. */
static int xc_mlst(struct xfer_curl *x, const char *path, struct xfer_version *v, char *err,
		   size_t errlen)
{
	if (x->mlst < 0)
		return -1;
	char *root = xc_url(x, "/");
	xc_setup(x, root);
	free(root);
	char *cmd = xc_cmd(x, "MLST", path, NULL);
	x->list = curl_slist_append(x->list, cmd);
	free(cmd);
	int rc = xc_run_quote(x, path, 1, err, errlen);
	if (rc != XS_OK) {
		if (x->reply_code >= 500 && x->reply_code <= 504) {
			if (x->reply_code == 500 || x->reply_code == 502)
				x->mlst = -1;
			return -1;
		}
		/* 550 for a file that is not there, as SIZE's: not found (a
		 * file gone since it was listed is a change, not a failure). */
		return rc == XS_PERMANENT && x->reply_code == 550 ? XS_NOTFOUND : rc;
	}
	const char *type = xc_fact(x->facts, "type=");
	const char *size = xc_fact(x->facts, "size=");
	const char *modify = xc_fact(x->facts, "modify=");
	if (!type || strncasecmp(type, "file;", 5) != 0 || !size || !modify)
		return -1;
	x->mlst = 1;
	char *end;
	long long sz = strtoll(size, &end, 10);
	if (end != size && *end == ';' && sz >= 0) {
		v->known |= XV_SIZE;
		v->size = (int64_t)sz;
	}
	struct tm tm = { 0 };
	if (sscanf(modify, "%4d%2d%2d%2d%2d%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
		   &tm.tm_min, &tm.tm_sec) == 6) {
		tm.tm_year -= 1900;
		tm.tm_mon -= 1;
		time_t t = timegm(&tm);
		if (t >= 0) {
			v->known |= XV_MTIME;
			v->mtime_ns = (int64_t)t * 1000000000;
		}
	}
	return XS_OK;
}

int xfer_curl_version(struct xfer_curl *x, const char *path, struct xfer_version *v, char *err,
		      size_t errlen)
{
	memset(v, 0, sizeof *v);
	int rc = xc_check_path(x, path, err, errlen);
	if (rc != XS_OK)
		return rc;
	if (x->proto == XC_FTP && (rc = xc_mlst(x, path, v, err, errlen)) >= 0)
		return rc;
	/* The version before a copy, asked right after the HEAD that told
	 * the file from a directory (xfer_http.c's stat, when a task is
	 * planned): that HEAD's answer, not a second one. Used once; the
	 * GET that follows is refused if its own answer is of another
	 * version, and the version after the copy is always asked anew. */
	if (x->head_path) {
		int same = x->proto == XC_HTTP && strcmp(x->head_path, path) == 0 &&
			   util_mono_ms() - x->head_ms < XC_HEAD_REUSE_MS;
		free(x->head_path);
		x->head_path = NULL;
		if (same) {
			*v = x->head_v;
			return XS_OK;
		}
	}
	char *url = xc_url(x, path);
	xc_setup(x, url);
	free(url);
	curl_easy_setopt(x->h, CURLOPT_NOBODY, 1L);
	/* FTP: MDTM besides SIZE; SFTP: the stat's mtime. HTTP keeps the
	 * Last-Modified text itself, which needs no parsing to compare. */
	if (x->proto != XC_HTTP)
		curl_easy_setopt(x->h, CURLOPT_FILETIME, 1L);
	rc = xc_result(x, xc_perform(x), 1, path, err, errlen);
	if (rc != XS_OK)
		return rc;
	curl_off_t len = -1, t = -1;
	curl_easy_getinfo(x->h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len);
	xc_answer_version(x, (int64_t)len, v);
	if (x->proto != XC_HTTP && curl_easy_getinfo(x->h, CURLINFO_FILETIME_T, &t) == CURLE_OK &&
	    t >= 0) {
		v->known |= XV_MTIME;
		v->mtime_ns = (int64_t)t * 1000000000;
	}
	return XS_OK;
}

int xfer_curl_get(struct xfer_curl *x, const char *path, int fd, int64_t offset,
		  const struct xfer_version *expect,
		  int (*on_data)(void *arg, const char *buf, size_t n), void *arg, char *err,
		  size_t errlen)
{
	int rc = xc_check_path(x, path, err, errlen);
	if (rc != XS_OK)
		return rc;
	if (offset < 0)
		return xc_fail(x, XS_PERMANENT, path, err, errlen, "negative offset");
	char *url = xc_url(x, path);
	xc_setup(x, url);
	free(url);
	x->fd = fd;
	x->off = offset;
	x->on_data = on_data;
	x->arg = arg;
	x->expect = expect;
	curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, xc_write);
	curl_easy_setopt(x->h, CURLOPT_WRITEDATA, x);
	if (offset > 0 && x->proto == XC_HTTP) {
		/* CURLOPT_RANGE rather than RESUME_FROM: libcurl would fail a
		 * 200 answer to a resumed GET, xc_write copes with it. */
		char range[32];
		snprintf(range, sizeof range, "%lld-", (long long)offset);
		curl_easy_setopt(x->h, CURLOPT_RANGE, range);
	} else if (offset > 0) {
		curl_easy_setopt(x->h, CURLOPT_RESUME_FROM_LARGE, (curl_off_t)offset);
	}
	/* FTP: no SIZE before RETR. The caller knows the size from the
	 * version it took, and checks what arrived against it. Not for a
	 * resume: libcurl then skips the REST as well. */
	if (x->proto == XC_FTP && offset == 0)
		curl_easy_setopt(x->h, CURLOPT_IGNORE_CONTENT_LENGTH, 1L);
	CURLcode c = xc_perform(x);
	/* What arrived before a failure is written too: the next attempt
	 * continues after it. */
	if (x->wlen && xc_flush(x) < 0 && c == CURLE_OK)
		c = CURLE_WRITE_ERROR;
	/* Every byte is shown to on_data before the call returns. */
	if (x->hasher && xc_hasher_wait(x) < 0 && c == CURLE_OK)
		c = CURLE_WRITE_ERROR;
	long code = 0;
	if (c == CURLE_OK && x->proto == XC_HTTP)
		curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code);
	/* An empty body never reached xc_write: judge the headers here. */
	if (x->proto == XC_HTTP && (code == 200 || code == 206))
		xc_expected(x);
	if (x->changed[0]) {
		if (err && errlen)
			snprintf(err, errlen, "%s", x->changed);
		log_debug("xfer_curl: %s%s: not the version expected: %s", x->shown, path,
			  x->changed);
		return XS_CHANGED;
	}
	if (code == 416 && offset > 0) {
		/* Range not satisfiable: fine when the caller has it all. */
		char first[1024];
		xc_result(x, c, 1, path, first, sizeof first);
		int64_t len = -1;
		if (xc_head(x, path, &len, err, errlen) == XS_OK && len == offset)
			return XS_OK;
		snprintf(err, errlen, "%s", first);
		return XS_PERMANENT;
	}
	return xc_result(x, c, 1, path, err, errlen);
}

int xfer_curl_put(struct xfer_curl *x, const char *path, int fd, int64_t offset, int64_t size,
		  int (*on_data)(void *arg, const char *buf, size_t n), void *arg, char *err,
		  size_t errlen)
{
	int rc = xc_check_path(x, path, err, errlen);
	if (rc != XS_OK)
		return rc;
	if (offset < 0 || size < offset)
		return xc_fail(x, XS_PERMANENT, path, err, errlen,
			       "bad upload range (offset %lld, size %lld)", (long long)offset,
			       (long long)size);
	if (offset > 0 && x->proto == XC_HTTP)
		return xc_fail(x, XS_PERMANENT, path, err, errlen,
			       "an upload over http cannot resume: start at 0");
	char *url = xc_url(x, path);
	xc_setup(x, url);
	free(url);
	x->fd = fd;
	x->off = offset;
	x->limit = size - offset;
	x->on_data = on_data;
	x->arg = arg;
	curl_easy_setopt(x->h, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(x->h, CURLOPT_READFUNCTION, xc_read);
	curl_easy_setopt(x->h, CURLOPT_READDATA, x);
	curl_easy_setopt(x->h, CURLOPT_SEEKFUNCTION, xc_seek);
	curl_easy_setopt(x->h, CURLOPT_SEEKDATA, x);
	curl_easy_setopt(x->h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)(size - offset));
	/* Resume appends (FTP APPE, SFTP open for append): the caller found
	 * `offset` bytes there with xfer_curl_size. */
	if (offset > 0)
		curl_easy_setopt(x->h, CURLOPT_APPEND, 1L);
	x->linger = x->proto == XC_FTP && x->tls;
	CURLcode c = xc_perform(x);
	x->linger = 0;
	/* Every byte read is shown to on_data before the call returns. */
	if (x->hasher && xc_hasher_wait(x) < 0 && c == CURLE_OK)
		c = CURLE_READ_ERROR;
	rc = xc_result(x, c, 0, path, err, errlen);
	if (rc == XS_OK && x->pos != x->limit)
		return xc_fail(x, XS_TRANSIENT, path, err, errlen,
			       "upload ended after %lld of %lld bytes",
			       (long long)(offset + x->pos), (long long)size);
	return rc;
}

/* ---- directories, renames, removals --------------------------------------- */

int xfer_curl_mkdir(struct xfer_curl *x, const char *dir, char *err, size_t errlen)
{
	int rc = xc_check_path(x, dir, err, errlen);
	if (rc != XS_OK)
		return rc;
	return xfer_curl_ops(x)->mkdir(x, dir, err, errlen);
}

int xfer_curl_rename(struct xfer_curl *x, const char *from, const char *to, char *err,
		     size_t errlen)
{
	int rc = xc_check_path(x, from, err, errlen);
	if (rc == XS_OK)
		rc = xc_check_path(x, to, err, errlen);
	if (rc != XS_OK)
		return rc;
	char *f = xc_noslash(from), *t = xc_noslash(to);
	int same = strcmp(f, t) == 0;
	free(f);
	free(t);
	if (same)
		return XS_OK;
	return xfer_curl_ops(x)->rename(x, from, to, err, errlen);
}

int xfer_curl_remove(struct xfer_curl *x, const char *path, int is_dir, char *err, size_t errlen)
{
	int rc = xc_check_path(x, path, err, errlen);
	if (rc != XS_OK)
		return rc;
	return xfer_curl_ops(x)->remove(x, path, is_dir, err, errlen);
}

/* Removes the directory tree `dir` (no trailing '/'): the files of each
 * directory in one batch of commands, then its subdirectories, then the
 * directory itself. Symbolic links are removed as files (the link, never
 * what it points to). */
static int xc_rmtree(struct xfer_curl *x, const char *dir, const char *rm_file,
		     const char *rm_dir, int depth, char *err, size_t errlen)
{
	if (depth > XC_MAX_DEPTH)
		return xc_fail(x, XS_PERMANENT, dir, err, errlen,
			       "directory tree deeper than %d levels", XC_MAX_DEPTH);
	x->with_links = 1;
	char *d = xc_slash(dir);
	int rc = xc_list(x, d, err, errlen);
	free(d);
	if (rc != XS_OK)
		return rc;
	struct xfer_entry *e = x->ents;
	int n = x->nents;
	x->ents = NULL;
	x->nents = x->capents = 0;

	xfer_curl_quote_start(x);
	int files = 0;
	for (int i = 0; i < n; i++) {
		if (e[i].is_dir)
			continue;
		char *p = util_printf("%s/%s", strcmp(dir, "/") == 0 ? "" : dir, e[i].name);
		xfer_curl_quote_add(x, rm_file, p, NULL);
		free(p);
		files++;
	}
	if (files)
		rc = xc_run_quote(x, dir, 0, err, errlen);
	for (int i = 0; i < n && rc == XS_OK; i++) {
		if (!e[i].is_dir)
			continue;
		char *p = util_printf("%s/%s", strcmp(dir, "/") == 0 ? "" : dir, e[i].name);
		rc = xc_rmtree(x, p, rm_file, rm_dir, depth + 1, err, errlen);
		free(p);
	}
	xfer_curl_free_entries(e, n);
	if (rc == XS_OK)
		rc = xc_quote1(x, rm_dir, dir, NULL, 0, err, errlen);
	return rc;
}

/* ---- what the protocols share (xfer.h) ------------------------------------- */

const struct xfer_ops *xfer_curl_ops(const struct xfer_curl *x)
{
	switch (x->proto) {
	case XC_FTP:
		return &xfer_ftp_ops;
	case XC_SFTP:
		return &xfer_sftp_ops;
	default:
		return &xfer_dav_ops;
	}
}

int xfer_curl_rmtree(struct xfer_curl *x, const char *dir, const char *rm_file,
		     const char *rm_dir, char *err, size_t errlen)
{
	return xc_rmtree(x, dir, rm_file, rm_dir, 0, err, errlen);
}

int xfer_curl_remove_with(struct xfer_curl *x, const char *path, int is_dir,
			  const char *rm_file, const char *rm_dir, xfer_stat_fn stat, char *err,
			  size_t errlen)
{
	char first[1024];
	char *p = xfer_curl_noslash(path);
	int rc, d = 0;
	int64_t size;
	if (!is_dir) {
		rc = xfer_curl_quote(x, rm_file, p, NULL, 0, first, sizeof first);
		if (rc == XS_PERMANENT) {
			/* Refused: missing, or a directory after all (a purge
			 * removes whatever is there). */
			char e2[1024];
			int r = stat(x, p, &d, &size, e2, sizeof e2);
			if (r == XS_NOTFOUND)
				rc = XS_NOTFOUND;
			else if (r == XS_OK && d)
				rc = xfer_curl_rmtree(x, p, rm_file, rm_dir, first, sizeof first);
		}
	} else {
		rc = stat(x, p, &d, &size, first, sizeof first);
		if (rc == XS_OK)
			rc = d ? xfer_curl_rmtree(x, p, rm_file, rm_dir, first, sizeof first)
			       : xfer_curl_quote(x, rm_file, p, NULL, 0, first, sizeof first);
	}
	free(p);
	if (rc != XS_OK)
		snprintf(err, errlen, "%s", first);
	return rc;
}

int xfer_curl_rename_with(struct xfer_curl *x, const char *from, const char *to,
			  xfer_rename_fn rename_once, const char *rm_file, xfer_stat_fn stat,
			  char *err, size_t errlen)
{
	char first[1024];
	int rc = rename_once(x, from, to, first, sizeof first);
	if (rc == XS_OK || rc == XS_TRANSIENT || rc == XS_STOPPED)
		goto out;
	/* Refused. A missing source is "not found" (and must not cost the
	 * target anything); a file in the way is removed first where the
	 * server will not replace it, and the rename tried again. */
	int from_dir = 0, to_dir = 0;
	int64_t size;
	char e2[1024];
	int r = stat(x, from, &from_dir, &size, e2, sizeof e2);
	if (r == XS_NOTFOUND) {
		rc = XS_NOTFOUND;
		goto out;
	}
	if (r != XS_OK)
		goto out;
	r = stat(x, to, &to_dir, &size, e2, sizeof e2);
	if (r != XS_OK || to_dir)
		goto out;
	r = xfer_curl_quote(x, rm_file, to, NULL, 0, e2, sizeof e2);
	if (r != XS_OK) {
		snprintf(first, sizeof first, "%s", e2);
		rc = r;
		goto out;
	}
	rc = rename_once(x, from, to, first, sizeof first);
out:
	if (rc != XS_OK)
		snprintf(err, errlen, "%s", first);
	return rc;
}

int xfer_curl_fail(struct xfer_curl *x, int status, const char *path, char *err, size_t errlen,
		   const char *fmt, ...)
{
	char what[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	return xc_fail(x, status, path, err, errlen, "%s", what);
}

int xfer_curl_check_path(struct xfer_curl *x, const char *path, char *err, size_t errlen)
{
	return xc_check_path(x, path, err, errlen);
}

int xfer_curl_head(struct xfer_curl *x, const char *path, int64_t *size, char *err,
		   size_t errlen)
{
	int64_t len = -1;
	int rc = xc_head(x, path, &len, err, errlen);
	if (size)
		*size = len;
	free(x->head_path);
	x->head_path = NULL;
	if (rc == XS_OK && x->proto == XC_HTTP) {
		memset(&x->head_v, 0, sizeof x->head_v);
		xc_answer_version(x, len, &x->head_v);
		x->head_path = util_strdup(path);
		x->head_ms = util_mono_ms();
	}
	return rc;
}

int xfer_curl_touch(struct xfer_curl *x, const char *path, char *err, size_t errlen)
{
	char *url = xc_url(x, path);
	xc_setup(x, url);
	free(url);
	return xc_result(x, xc_perform(x), 1, path, err, errlen);
}

int xfer_curl_request(struct xfer_curl *x, const char *method, const char *path,
		      const char *const *headers, int nf, char *err, size_t errlen)
{
	char *url = xc_url(x, path);
	xc_setup(x, url);
	free(url);
	curl_easy_setopt(x->h, CURLOPT_CUSTOMREQUEST, method);
	if (headers) {
		for (int i = 0; headers[i]; i++)
			x->list = curl_slist_append(x->list, headers[i]);
		curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, x->list);
	}
	return xc_result(x, xc_perform(x), nf, path, err, errlen);
}

/* A reply body kept in memory (a PROPFIND's multistatus), bounded. */
#define XC_MAX_REPLY (64 << 20)
struct xc_reply_body {
	char *p;
	size_t n, cap;
};

static size_t xc_collect(char *ptr, size_t size, size_t nmemb, void *userp)
{
	struct xc_reply_body *b = userp;
	size_t n = size * nmemb;
	if (b->n + n + 1 > XC_MAX_REPLY)
		return 0;
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 16384;
		while (cap < b->n + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p)
			return 0;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, ptr, n);
	b->n += n;
	b->p[b->n] = '\0';
	return n;
}

int xfer_curl_request_reply(struct xfer_curl *x, const char *method, const char *path,
			    const char *const *headers, const char *body, char **reply,
			    size_t *replylen, int nf, char *err, size_t errlen)
{
	struct xc_reply_body b = { 0 };
	char *url = xc_url(x, path);
	xc_setup(x, url);
	free(url);
	curl_easy_setopt(x->h, CURLOPT_CUSTOMREQUEST, method);
	if (headers) {
		for (int i = 0; headers[i]; i++)
			x->list = curl_slist_append(x->list, headers[i]);
		curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, x->list);
	}
	if (body) {
		curl_easy_setopt(x->h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(x->h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, xc_collect);
	curl_easy_setopt(x->h, CURLOPT_WRITEDATA, &b);
	int rc = xc_result(x, xc_perform(x), nf, path, err, errlen);
	/* The handle must not point at this frame once it returns. */
	curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, xc_discard);
	curl_easy_setopt(x->h, CURLOPT_WRITEDATA, x);
	if (rc != XS_OK) {
		free(b.p);
		b.p = NULL;
		b.n = 0;
	}
	*reply = b.p ? b.p : util_strdup("");
	*replylen = b.n;
	return rc;
}

void xfer_curl_quote_start(struct xfer_curl *x)
{
	char *root = xc_url(x, "/");
	xc_setup(x, root);
	free(root);
}

void xfer_curl_quote_add(struct xfer_curl *x, const char *verb, const char *p1, const char *p2)
{
	char *cmd = xc_cmd(x, verb, p1, p2);
	x->list = curl_slist_append(x->list, cmd);
	free(cmd);
}

int xfer_curl_quote_run(struct xfer_curl *x, const char *path, int nf, char *err, size_t errlen)
{
	return xc_run_quote(x, path, nf, err, errlen);
}

int xfer_curl_quote(struct xfer_curl *x, const char *verb, const char *path, const char *path2,
		    int nf, char *err, size_t errlen)
{
	return xc_quote1(x, verb, path, path2, nf, err, errlen);
}

int xfer_curl_reply_code(const struct xfer_curl *x)
{
	return x->reply_code;
}

const char *xfer_curl_reply(const struct xfer_curl *x)
{
	return x->reply;
}

long xfer_curl_http_code(struct xfer_curl *x)
{
	return xc_http_code(x);
}

const char *xfer_curl_base(const struct xfer_curl *x)
{
	return x->base;
}

int xfer_curl_allowed(struct xfer_curl *x, const char *url, char *err, size_t errlen)
{
	if (!x->allow)
		return XS_OK;
	char why[1024];
	if (x->allow(x->allow_arg, url, why, sizeof why) == 0)
		return XS_OK;
	snprintf(err, errlen, "%s", why);
	xc_scrub(x, err);
	return XS_PERMANENT;
}

void *xfer_curl_extra(struct xfer_curl *x)
{
	return x->extra;
}

void xfer_curl_set_extra(struct xfer_curl *x, void *extra, void (*extra_free)(void *extra))
{
	if (x->extra_free)
		x->extra_free(x->extra);
	x->extra = extra;
	x->extra_free = extra_free;
}

int xfer_curl_list_links(struct xfer_curl *x, const char *dir, int with_links,
			 struct xfer_entry **entries, int *n, char *err, size_t errlen)
{
	*entries = NULL;
	*n = 0;
	x->with_links = with_links;
	int rc = xc_list(x, dir, err, errlen);
	if (rc == XS_OK) {
		*entries = x->ents;
		*n = x->nents;
		x->ents = NULL;
		x->nents = x->capents = 0;
	}
	return rc;
}

int xfer_curl_stage_list(struct xfer_curl *x, const char *dir, struct xfer_entry **entries,
			 int *n, char *err, size_t errlen)
{
	return xfer_curl_list_links(x, dir, 1, entries, n, err, errlen);
}

char *xfer_curl_slash(const char *path)
{
	return xc_slash(path);
}

char *xfer_curl_noslash(const char *path)
{
	return xc_noslash(path);
}

int xfer_curl_global_init(char *err, size_t errlen)
{
	CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
	if (rc != CURLE_OK) {
		snprintf(err, errlen, "cannot initialise libcurl: %s", curl_easy_strerror(rc));
		return -1;
	}
	return 0;
}

void xfer_curl_global_cleanup(void)
{
	curl_global_cleanup();
}

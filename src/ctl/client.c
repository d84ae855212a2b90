/*
 * client.c - apubictl's SOAP client of any APUBI endpoint: load, purge and
 * status, and --wait.
 *
 * It is built on gSOAP client stubs generated from the same WSDL as the
 * server. It speaks HTTP or HTTPS (the server checked against the system
 * store or --cacert, an optional client certificate), and Basic or Digest
 * authentication through gSOAP's httpda plugin: the first call goes out
 * without credentials, and only a 401 makes apubictl answer the server's
 * challenge (Digest when offered, else Basic), so a password never
 * travels where no one asked for it.
 *
 * --wait polls GetTaskStatus until the task is final, and shows what the
 * task is doing meanwhile (state, bytes and files, rate, time left): from
 * the local store when one is named (-c, --store), else from the task's
 * JSON view, GET /tasks/ID.json at the root of the endpoint's server, over
 * the same connection, TLS and credentials as the SOAP calls. When the task
 * fails, its reason comes from the same place. A server without the view
 * (another APUBI implementation, an older apubid) answers the SOAP calls
 * all the same: --wait then shows the status and the time only.
 *
 * Invariants: one gSOAP context in one thread; what a call answers is
 * copied out of gSOAP's memory before soap_end; passwords are wiped
 * before they are freed and never printed (URLs go through url_mask);
 * text from the network goes through display_safe.
 */
#include "ctl.h"

#include "soapH.h"
#include "APUBIBinding.nsmap"
#include "httpda.h"

#include <errno.h>
#include <jansson.h>
#include <inttypes.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

static void client_sleep(double seconds)
{
	struct timespec ts = { (time_t)seconds,
			       (long)((seconds - (double)(time_t)seconds) * 1e9) };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

struct client {
	struct soap *soap;
	const char *url;
	const char *user;
	char *password;
	int auth_method; /* AUTH_BASIC or AUTH_DIGEST when forced, else 0 */
	struct http_da_info da; /* credentials once a server asked for them */
	int authed;
	/* The last answer, copied out of gSOAP's memory. */
	char *task_id;
	int status; /* enum ns__StatusType */
	char *dest;
	char *view;       /* the body of the last OP_VIEW */
	char *last_error; /* what a quiet call did not say */
};

/* The three calls, each leaving its answer in the client, and the GET of a
 * task's view (a: its URL). */
enum { OP_LOAD, OP_PURGE, OP_STATUS, OP_VIEW };
struct client_request {
	int op;
	const char *a, *b;
};

/* The challenges of the last 401 (AUTH_BASIC | AUTH_DIGEST), seen by a
 * header hook in front of the plugin's. apubictl has one context, in one
 * thread. */
static int client_offered;
static int (*client_parsehdr_next)(struct soap *, const char *, const char *);

static int client_parsehdr(struct soap *soap, const char *key, const char *val)
{
	if (!soap_tag_cmp(key, "WWW-Authenticate")) {
		if (!soap_tag_cmp(val, "Digest *"))
			client_offered |= AUTH_DIGEST;
		else if (!soap_tag_cmp(val, "Basic *"))
			client_offered |= AUTH_BASIC;
	}
	return client_parsehdr_next(soap, key, val);
}

static int client_call_once(struct client *cl, const struct client_request *c)
{
	struct soap *soap = cl->soap;
	int rc;
	client_offered = 0;
	if (c->op == OP_LOAD) {
		struct _ns__LoadAsset req = { (char *)c->a, (char *)c->b, NULL };
		struct _ns__LoadAssetResponse resp = { NULL };
		rc = soap_call___ns__LoadAsset(soap, cl->url, NULL, &req, &resp);
		if (rc == SOAP_OK) {
			free(cl->task_id);
			cl->task_id = util_strdup(resp.TaskId ? resp.TaskId : "");
		}
	} else if (c->op == OP_PURGE) {
		struct _ns__PurgeAsset req = { (char *)c->a, NULL };
		struct _ns__PurgeAssetResponse resp = { NULL };
		rc = soap_call___ns__PurgeAsset(soap, cl->url, NULL, &req, &resp);
		if (rc == SOAP_OK) {
			free(cl->task_id);
			cl->task_id = util_strdup(resp.TaskId ? resp.TaskId : "");
		}
	} else if (c->op == OP_VIEW) {
		/* gSOAP's own HTTP GET, so the view goes through the context's
		 * TLS, keep-alive connection and httpda plugin like the calls. */
		char *body = NULL;
		size_t len = 0;
		rc = soap_GET(soap, c->a, NULL);
		if (rc == SOAP_OK)
			rc = soap_begin_recv(soap);
		if (rc == SOAP_OK && soap->status != 200)
			rc = soap->status >= 100 && soap->status < 600 ? soap->status : SOAP_ERR;
		if (rc == SOAP_OK && !(body = soap_http_get_body(soap, &len)))
			rc = soap->error ? soap->error : SOAP_ERR;
		if (rc == SOAP_OK)
			rc = soap_end_recv(soap);
		if (rc == SOAP_OK) {
			free(cl->view);
			cl->view = util_strndup(body, len);
			soap_closesock(soap);
		} else {
			/* An error answer's body may be left unread: the next
			 * request must not find it on the connection. */
			soap_force_closesock(soap);
		}
	} else {
		struct _ns__GetTaskStatus req = { (char *)c->a };
		struct _ns__GetTaskStatusResponse resp;
		memset(&resp, 0, sizeof resp);
		rc = soap_call___ns__GetTaskStatus(soap, cl->url, NULL, &req, &resp);
		if (rc == SOAP_OK) {
			cl->status = resp.Status;
			free(cl->dest);
			cl->dest = util_strdup(resp.DestinationAsset);
		}
	}
	return rc;
}

/* The text of detail/ExceptionWS/message, or NULL. */
static const char *client_fault_message(struct soap *soap)
{
	if (!soap->fault)
		return NULL;
	struct SOAP_ENV__Detail *d = soap->fault->detail ? soap->fault->detail
							  : soap->fault->SOAP_ENV__Detail;
	if (d && d->ns__ExceptionWS && d->ns__ExceptionWS->message)
		return d->ns__ExceptionWS->message;
	return NULL;
}

/* Says on `out` what went wrong with a call and returns the exit status
 * for it. */
static int client_report(struct client *cl, int rc, FILE *out)
{
	struct soap *soap = cl->soap;
	char *url = url_mask(cl->url);
	const char *fs = *soap_faultstring(soap);
	const char **fd = soap_faultdetail(soap);
	const char *detail = fd && *fd ? *fd : NULL;
	int code;
	if (rc == SOAP_FAULT || (rc > 0 && rc < 100 && soap->fault && soap->status >= 400 &&
				 soap->status < 600 && client_fault_message(soap))) {
		/* The server itself refused: what it said is the message. */
		const char *msg = client_fault_message(soap);
		const char **fc = soap_faultcode(soap);
		char *s1 = display_safe(fs ? fs : "(no faultstring)");
		fprintf(out, "apubictl: fault from %s (HTTP %d, %s): %s\n", url, soap->status,
			fc && *fc ? *fc : "no faultcode", s1);
		if (msg && (!fs || strcmp(msg, fs) != 0)) {
			char *s2 = display_safe(msg);
			fprintf(out, "apubictl: detail: %s\n", s2);
			free(s2);
		}
		free(s1);
		code = CTL_FAULT;
	} else if (rc == 401) {
		if (cl->user)
			fprintf(out, "apubictl: %s: authentication failed for user %s "
					"(HTTP 401)\n", url, cl->user);
		else
			fprintf(out, "apubictl: %s: authentication required (HTTP 401): "
					"use --user with $APUBICTL_PASSWORD or --password-file\n",
				url);
		code = CTL_TRANSPORT;
	} else if (rc >= 100 && rc < 600) {
		/* gSOAP reads no body with these statuses; say what they
		 * usually mean with apubid. A 503 (queue full, stopping) is
		 * worth trying again later, like a refused connection. */
		const char *why = rc == 404   ? ": no endpoint there (check the URL's path)"
				  : rc == 503 ? ": the queue is full or the server is stopping; "
						"try again later"
				  : rc == 413 ? ": the request is too large for the server"
				  : rc == 405 ? ": the URL does not take SOAP requests"
					      : "";
		fprintf(out, "apubictl: %s: HTTP %d without a SOAP answer%s\n", url, rc, why);
		code = CTL_TRANSPORT;
	} else {
		char *s1 = display_safe(fs ? fs : "transport error");
		char *s2 = detail ? display_safe(detail) : NULL;
		fprintf(out, "apubictl: %s: %s%s%s\n", url, s1, s2 ? ": " : "", s2 ? s2 : "");
		free(s1);
		free(s2);
		code = CTL_TRANSPORT;
	}
	free(url);
	return code;
}

static struct client *client_clear_error(struct client *cl)
{
	free(cl->last_error);
	cl->last_error = NULL;
	return cl;
}

static void client_forget_credentials(struct client *cl)
{
	if (!cl->authed)
		return;
	if (cl->da.passwd)
		explicit_bzero(cl->da.passwd, strlen(cl->da.passwd));
	http_da_release(cl->soap, &cl->da);
	cl->authed = 0;
}

/* Answers the challenge of the 401 just received with `method` and makes
 * the call again. The plugin sends Digest when it holds a nonce from the
 * challenge, Basic otherwise. */
static int client_answer(struct client *cl, const struct client_request *c, int method)
{
	struct soap *soap = cl->soap;
	char *realm = util_strdup(soap->authrealm ? soap->authrealm : "");
	client_forget_credentials(cl);
	http_da_save(soap, &cl->da, realm, cl->user, cl->password);
	free(realm);
	if (method == AUTH_BASIC) {
		free(cl->da.nonce);
		cl->da.nonce = NULL;
	}
	cl->authed = 1;
	soap_destroy(soap);
	soap_end(soap);
	http_da_restore(soap, &cl->da);
	return client_call_once(cl, c);
}

/* One call with authentication as the server asks: on a 401, answer its
 * challenge (Digest when offered, else Basic, unless --auth says) and try
 * again; when a Digest answer is refused and Basic was offered too, try
 * Basic (the user may be in the server's Basic file only). The same
 * happens later when a nonce went stale. Returns an exit status, with the
 * answer in the client on CTL_OK. `quiet` CLIENT_KEEP leaves transport
 * errors unreported but kept in last_error (the caller retries),
 * CLIENT_SILENT reports nothing at all. */
enum { CLIENT_REPORT = 0, CLIENT_KEEP = 1, CLIENT_SILENT = 2 };
static int client_call(struct client *cl, const struct client_request *c, int quiet,
		       int *transport)
{
	struct soap *soap = cl->soap;
	if (cl->authed)
		http_da_restore(soap, &cl->da);
	int rc = client_call_once(cl, c);
	if (rc == 401 && cl->user) {
		int offered = client_offered;
		int method = cl->auth_method     ? cl->auth_method
			     : offered & AUTH_DIGEST ? AUTH_DIGEST
						     : AUTH_BASIC;
		if (offered & method)
			rc = client_answer(cl, c, method);
		if (rc == 401 && !cl->auth_method && method == AUTH_DIGEST &&
		    (offered & AUTH_BASIC))
			rc = client_answer(cl, c, AUTH_BASIC);
	}
	int code = CTL_OK;
	if (transport)
		*transport = 0;
	if (rc != SOAP_OK) {
		int is_transport = rc != SOAP_FAULT && rc != 401 && !(rc >= 100 && rc < 600);
		if (transport)
			*transport = is_transport;
		if (quiet == CLIENT_SILENT) {
			code = is_transport ? CTL_TRANSPORT : CTL_FAULT;
		} else if (quiet == CLIENT_KEEP && is_transport) {
			/* Kept for later: the fault goes with soap_end. */
			size_t len;
			FILE *m = open_memstream(&client_clear_error(cl)->last_error, &len);
			code = m ? client_report(cl, rc, m) : CTL_TRANSPORT;
			if (m)
				fclose(m);
		} else {
			code = client_report(cl, rc, stderr);
		}
	}
	soap_destroy(soap);
	soap_end(soap);
	return code;
}

static int client_init(struct client *cl, const struct ctl_opts *o, const char *url)
{
	memset(cl, 0, sizeof *cl);
	cl->url = url;
	int https = strncasecmp(url, "https://", 8) == 0;
	if (!https && strncasecmp(url, "http://", 7) != 0)
		return ctl_usage_error("--url %s: not an http:// or https:// URL", url);
	if (!https && (o->cacert || o->cert || o->key || o->insecure))
		return ctl_usage_error("--cacert, --cert, --key and --insecure need an https:// URL");
	if (o->key && !o->cert)
		return ctl_usage_error("--key needs --cert");
	if (o->password_file && !o->user)
		return ctl_usage_error("--password-file needs --user");
	if (o->user) {
		if (o->password_file) {
			cl->password = ctl_read_password(o->password_file);
			if (!cl->password)
				return CTL_USAGE;
		} else if (getenv("APUBICTL_PASSWORD")) {
			cl->password = util_strdup(getenv("APUBICTL_PASSWORD"));
		} else {
			return ctl_usage_error("--user %s needs a password: set APUBICTL_PASSWORD "
					       "or give --password-file", o->user);
		}
		cl->user = o->user;
		cl->auth_method = o->auth_method;
	} else if (o->auth_method) {
		return ctl_usage_error("--auth needs --user");
	}

	cl->soap = soap_new1(SOAP_IO_KEEPALIVE | SOAP_C_UTFSTRING | SOAP_XML_TREE);
	if (!cl->soap) {
		fprintf(stderr, "apubictl: out of memory\n");
		return CTL_TRANSPORT;
	}
	struct soap *soap = cl->soap;
	soap_set_namespaces(soap, namespaces);
	soap->connect_timeout = 15;
	soap->recv_timeout = 60;
	soap->send_timeout = 60;
	soap->transfer_timeout = 120;
	if (cl->user) {
		if (soap_register_plugin(soap, http_da)) {
			fprintf(stderr, "apubictl: cannot set up HTTP authentication\n");
			return CTL_TRANSPORT;
		}
		client_parsehdr_next = soap->fparsehdr;
		soap->fparsehdr = client_parsehdr;
	}
	if (https) {
		unsigned short flags = SOAP_TLSv1_2 | SOAP_TLSv1_3;
		if (o->insecure)
			flags |= SOAP_SSL_NO_AUTHENTICATION;
		else
			flags |= SOAP_SSL_DEFAULT;
		if (o->cacert)
			flags |= SOAP_SSL_NO_DEFAULT_CA_PATH;
		if (soap_ssl_client_context(soap, flags, NULL, NULL, o->cacert, NULL, NULL)) {
			char buf[512];
			soap_sprint_fault(soap, buf, sizeof buf);
			fprintf(stderr, "apubictl: TLS set-up: %s\n", buf);
			return o->cacert ? CTL_USAGE : CTL_TRANSPORT;
		}
		if (o->cert) {
			/* gSOAP takes one PEM holding both; apubictl accepts them
			 * apart, like curl, so it loads them itself. */
			const char *key = o->key ? o->key : o->cert;
			SSL_CTX *ctx = soap->ctx;
			if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, o->cert) != 1) {
				fprintf(stderr, "apubictl: --cert %s: cannot load the certificate\n",
					o->cert);
				return CTL_USAGE;
			}
			if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
			    SSL_CTX_check_private_key(ctx) != 1) {
				fprintf(stderr, "apubictl: --key %s: cannot load the private key "
						"matching --cert\n", key);
				return CTL_USAGE;
			}
		}
	}
	return CTL_OK;
}

static void client_free(struct client *cl)
{
	if (cl->soap) {
		client_forget_credentials(cl);
		soap_destroy(cl->soap);
		soap_end(cl->soap);
		soap_free(cl->soap);
	}
	if (cl->password) {
		explicit_bzero(cl->password, strlen(cl->password));
		free(cl->password);
	}
	free(cl->task_id);
	free(cl->dest);
	free(cl->view);
	free(cl->last_error);
}

static const char *client_status_name(int status)
{
	switch (status) {
	case ns__StatusType__IN_USCOREPROGRESS:
		return "IN_PROGRESS";
	case ns__StatusType__SUCCESS:
		return "SUCCESS";
	case ns__StatusType__FAILED:
		return "FAILED";
	default:
		return "UNKNOWN";
	}
}

/* What --wait shows of a task between two polls, from the local store or
 * from the task's view on the server. */
struct client_progress {
	int known;        /* 0: nothing was read (no store, no view) */
	char *state;      /* "running", ...; malloc'ed */
	int attempts;
	int64_t bytes_done, bytes_total;
	int files_done, files_total;
	char *reason;     /* malloc'ed, or NULL */
};

static void client_progress_clear(struct client_progress *p)
{
	free(p->state);
	free(p->reason);
	memset(p, 0, sizeof *p);
}

/* The task as the local store holds it: 0, or -1 when it cannot be read. */
static int client_progress_store(struct store *s, const char *id, struct client_progress *p)
{
	struct task t;
	if (store_get(s, id, &t) != 0)
		return -1;
	client_progress_clear(p);
	p->known = 1;
	p->state = util_strdup(task_state_name(t.state));
	p->attempts = t.attempts;
	p->bytes_done = t.bytes_done;
	p->bytes_total = t.bytes_total;
	p->files_done = t.files_done;
	p->files_total = t.files_total;
	p->reason = util_strdup(t.reason);
	task_clear(&t);
	return 0;
}

/* The URL of a task's JSON view: the endpoint's scheme, host and port,
 * then /tasks/ID.json. NULL when the id is not a TaskId (it goes into the
 * URL) or the endpoint has no host. malloc'ed. */
static char *client_view_url(const struct client *cl, const char *id)
{
	char tid[TASKID_LEN];
	if (util_taskid_parse(id, strlen(id), tid) < 0)
		return NULL;
	const char *host = strstr(cl->url, "://");
	if (!host || !host[3])
		return NULL;
	size_t root = (size_t)(host + 3 - cl->url) + strcspn(host + 3, "/?#");
	return util_printf("%.*s/tasks/%s.json", (int)root, cl->url, tid);
}

/* The integer member `key` of `o`, or `dflt` when it is absent or not an
 * integer. */
static int64_t client_json_int(json_t *o, const char *key, int64_t dflt)
{
	json_t *v = json_object_get(o, key);
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

/* The task as its view at `url` shows it: 0; 1 when the server has no such
 * view (an HTTP error, not JSON, not this task: the caller stops asking);
 * -1 when the server did not answer (try again at the next poll). */
static int client_progress_view(struct client *cl, const char *url, const char *id,
				struct client_progress *p)
{
	struct client_request c = { OP_VIEW, url, NULL };
	int transport;
	if (client_call(cl, &c, CLIENT_SILENT, &transport) != CTL_OK)
		return transport ? -1 : 1;
	json_error_t jerr;
	json_t *root = json_loads(cl->view, 0, &jerr);
	json_t *jid = json_object_get(root, "id");
	json_t *state = json_object_get(root, "state");
	json_t *prog = json_object_get(root, "progress");
	if (!json_is_object(root) || !json_is_string(jid) || !json_is_string(state) ||
	    strcasecmp(json_string_value(jid), id) != 0) {
		json_decref(root);
		return 1;
	}
	client_progress_clear(p);
	p->known = 1;
	p->state = util_strdup(json_string_value(state));
	p->attempts = (int)client_json_int(root, "attempts", 0);
	p->bytes_done = client_json_int(prog, "bytes_done", 0);
	p->bytes_total = client_json_int(prog, "bytes_total", 0);
	p->files_done = (int)client_json_int(prog, "files_done", 0);
	p->files_total = (int)client_json_int(prog, "files_total", 0);
	json_t *reason = json_object_get(root, "reason");
	if (json_is_string(reason))
		p->reason = util_strdup(json_string_value(reason));
	json_decref(root);
	return 0;
}

/* How fast the bytes of a task move: measured from the first poll of an
 * attempt that saw bytes moving, so that one slow poll does not swing it. */
struct client_rate {
	int attempt;
	int64_t t0, b0;   /* the first sample of the attempt, ms and bytes */
	double per_s;     /* bytes per second, 0 while unknown */
};

static void client_rate_add(struct client_rate *r, const struct client_progress *p,
			    int64_t now)
{
	if (!p->known || strcmp(p->state, "running") != 0) {
		r->t0 = 0;
		r->per_s = 0;
		return;
	}
	if (!r->t0 || p->attempts != r->attempt || p->bytes_done < r->b0) {
		r->attempt = p->attempts;
		r->t0 = now;
		r->b0 = p->bytes_done;
		r->per_s = 0;
		return;
	}
	if (now - r->t0 >= 1000 && p->bytes_done > r->b0)
		r->per_s = (double)(p->bytes_done - r->b0) * 1000 / (double)(now - r->t0);
}

/* "running, attempt 1, 1.5 MiB/4.0 MiB, 0/1 files, 64.0 KiB/s, 40 s left";
 * the sizes once the task knows them, the rate and the time left once
 * bytes have moved for a second. malloc'ed. */
static char *client_progress_text(const struct client_progress *p, const struct client_rate *r)
{
	char a[32], b[32];
	struct util_buf out = { 0 };
	char *st = display_safe(p->state);
	util_buf_addf(&out, "%s, attempt %d", st, p->attempts);
	free(st);
	if (p->bytes_total > 0 || p->files_total > 0)
		util_buf_addf(&out, ", %s/%s, %d/%d files",
			      display_bytes(p->bytes_done, a, sizeof a),
			      display_bytes(p->bytes_total, b, sizeof b), p->files_done, p->files_total);
	if (r->per_s > 0) {
		util_buf_addf(&out, ", %s/s", display_bytes((int64_t)r->per_s, a, sizeof a));
		if (p->bytes_total > p->bytes_done)
			util_buf_addf(&out, ", %s left",
				      display_duration((double)(p->bytes_total - p->bytes_done) /
						       r->per_s, a, sizeof a));
	}
	return out.p;
}

/* How long --wait without --timeout waits out a daemon that does not
 * answer (a restart: a stop lets the tasks in flight reach a safe point). */
#define CLIENT_OUTAGE_MS 60000
/* Without a terminal, a line at least this often while bytes move. */
#define CLIENT_LOG_MS 30000

/* Where --wait reads a task's progress: the store `s` when there is one,
 * else the view at `view_url` (NULL: none) until it proves absent. */
struct client_source {
	struct store *s;
	char *view_url;
	int view_absent;
};

/* Reads the task's progress into *p from where `src` says; 0, or -1 when
 * nothing could be read (p keeps what it had). */
static int client_source_read(struct client *cl, struct client_source *src, const char *id,
			      struct client_progress *p)
{
	if (src->s)
		return client_progress_store(src->s, id, p);
	if (!src->view_url || src->view_absent)
		return -1;
	int rc = client_progress_view(cl, src->view_url, id, p);
	if (rc == 1)
		src->view_absent = 1;
	return rc == 0 ? 0 : -1;
}

/* Polls GetTaskStatus until the task is final. On a terminal, one line
 * that updates in place; otherwise one line on stderr per change (status,
 * state, attempt, files, sizes becoming known) and one every CLIENT_LOG_MS
 * while bytes move. A daemon that does not answer is polled again, until
 * --timeout or, without one, for CLIENT_OUTAGE_MS; a fault or a 401 ends
 * the wait at once. *p holds the task's last progress read. */
static int client_wait(struct client *cl, const struct ctl_opts *o, struct client_source *src,
		       const char *id, struct client_progress *p)
{
	int tty = isatty(STDERR_FILENO);
	int64_t start = util_mono_ms(), outage = 0, last_line = 0;
	int last_status = -1;
	struct client_progress last = { 0 };
	struct client_rate rate = { 0 };
	double interval = o->interval > 0 ? o->interval : 1.0;
	for (;;) {
		struct client_request c = { OP_STATUS, id, NULL };
		int transport;
		int code = client_call(cl, &c, CLIENT_KEEP, &transport);
		int64_t now = util_mono_ms(), elapsed = now - start;
		int outage_began = 0;
		if (code == CTL_OK) {
			outage = 0;
		} else {
			if (transport && !outage) {
				outage = now;
				outage_began = 1;
			}
			if (!transport ||
			    (o->timeout > 0 ? elapsed >= (int64_t)(o->timeout * 1000)
					    : now - outage >= CLIENT_OUTAGE_MS)) {
				if (tty)
					fputs("\r\033[K", stderr);
				if (transport && cl->last_error)
					fputs(cl->last_error, stderr);
				client_progress_clear(&last);
				return code;
			}
		}
		if (code == CTL_OK && cl->status != ns__StatusType__IN_USCOREPROGRESS) {
			if (tty)
				fputs("\r\033[K", stderr);
			/* The final word, with the reason of a failure. */
			client_source_read(cl, src, id, p);
			client_progress_clear(&last);
			return CTL_OK;
		}

		int have = code == CTL_OK && client_source_read(cl, src, id, p) == 0;
		if (have)
			client_rate_add(&rate, p, now);
		char *prog = have ? client_progress_text(p, &rate) : NULL;
		char *what = util_printf("%s%s%s",
					 code == CTL_OK ? client_status_name(cl->status)
							: "no answer, retrying",
					 prog ? " - " : "", prog ? prog : "");
		int news = code != CTL_OK ? outage_began
			   : cl->status != last_status || have != last.known ||
				     (have && (strcmp(p->state, last.state) != 0 ||
					       p->attempts != last.attempts ||
					       p->files_done != last.files_done ||
					       p->files_total != last.files_total ||
					       p->bytes_total != last.bytes_total ||
					       (p->bytes_done != last.bytes_done &&
						now - last_line >= CLIENT_LOG_MS)));
		if (tty) {
			/* One line that never wraps, or \r would not go back to
			 * it; the TaskId is on stdout already. */
			char *shown = util_printf("%s (%" PRId64 " s)", what, elapsed / 1000);
			struct winsize ws;
			size_t cols = ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1
					      ? ws.ws_col - 1 : 79;
			if (strlen(shown) > cols)
				shown[cols] = '\0';
			fprintf(stderr, "\r\033[K%s", shown);
			fflush(stderr);
			free(shown);
		} else if (news) {
			/* A log: one line per change, and one when an outage
			 * begins. */
			fprintf(stderr, "task %s: %s\n", id, what);
			last_line = now;
		}
		free(what);
		free(prog);
		/* After an outage, the next answer is news again. */
		last_status = code == CTL_OK ? cl->status : -1;
		if (!tty && news) {
			client_progress_clear(&last);
			if (have) {
				last = *p;
				last.state = util_strdup(p->state);
				last.reason = util_strdup(p->reason);
			}
		}

		if (o->timeout > 0 && elapsed >= (int64_t)(o->timeout * 1000)) {
			if (tty)
				fputs("\r\033[K", stderr);
			fprintf(stderr, "apubictl: task %s still in progress after %g s\n", id,
				o->timeout);
			client_progress_clear(&last);
			return CTL_TIMEOUT;
		}
		double left = o->timeout > 0 ? o->timeout - (double)elapsed / 1000 : interval;
		client_sleep(left < interval ? (left > 0 ? left : 0) : interval);
	}
}

/* Where client commands go: --url, $APUBICTL_URL, the listen address of
 * an explicit -c FILE, or the default. */
char *client_endpoint(const struct ctl_opts *o, const struct config *cfg)
{
	if (o->url)
		return util_strdup(o->url);
	const char *env = getenv("APUBICTL_URL");
	if (env && *env)
		return util_strdup(env);
	if (cfg) {
		const char *h = cfg->listen_host;
		if (!strcmp(h, "0.0.0.0") || !*h)
			h = "127.0.0.1";
		else if (!strcmp(h, "::"))
			h = "::1";
		int v6 = strchr(h, ':') != NULL;
		return util_printf("%s://%s%s%s:%d%s", cfg->tls_cert_file ? "https" : "http",
				   v6 ? "[" : "", h, v6 ? "]" : "", cfg->listen_port, cfg->endpoint);
	}
	return util_strdup(CTL_DEFAULT_URL);
}

int client_command(int cmd, const struct ctl_opts *o, char **args)
{
	struct config cfg;
	int have_cfg = 0, code;
	if (o->config) {
		if ((code = ctl_config(o, &cfg)) != CTL_OK)
			return code;
		have_cfg = 1;
	}
	char *url = client_endpoint(o, have_cfg ? &cfg : NULL);
	struct client cl;
	struct store *s = NULL;
	code = client_init(&cl, o, url);
	if (code != CTL_OK)
		goto out;

	if (cmd == CMD_STATUS) {
		struct client_request c = { OP_STATUS, args[0], NULL };
		code = client_call(&cl, &c, 0, NULL);
		if (code == CTL_OK) {
			printf("%s\n", client_status_name(cl.status));
			if (cl.dest) {
				char *d = display_safe(cl.dest);
				printf("%s\n", d);
				free(d);
			}
		}
		goto out;
	}

	/* A relative local source means the file here, as for cp(1): the
	 * daemon, which may run elsewhere, accepts absolute ones only. */
	char *src = NULL;
	if (cmd == CMD_LOAD && !url_is_absolute(args[0]) && args[0][0] != '/') {
		char *cwd = getcwd(NULL, 0);
		if (cwd)
			src = util_printf("%s/%s", cwd, args[0]);
		free(cwd);
	}
	struct client_request c = { cmd == CMD_LOAD ? OP_LOAD : OP_PURGE, src ? src : args[0],
			      cmd == CMD_LOAD ? args[1] : NULL };
	code = client_call(&cl, &c, 0, NULL);
	free(src);
	if (code != CTL_OK)
		goto out;
	char *id = display_safe(cl.task_id);
	printf("%s\n", id);
	fflush(stdout);
	if (o->wait) {
		/* The local store, when named, adds progress to the display. */
		if (have_cfg || o->store) {
			struct config dcfg;
			const struct config *pc = have_cfg ? &cfg : NULL;
			if (!pc && config_load(&dcfg, NULL, NULL, 0) == 0)
				pc = &dcfg;
			if (pc && admin_store_open(o, pc, &s) != CTL_OK)
				s = NULL;
			if (pc == &dcfg)
				config_free(&dcfg);
		}
		/* Progress from the local store when one is named, else from
		 * the task's view on the server. */
		struct client_source src = { s, s ? NULL : client_view_url(&cl, id), 0 };
		struct client_progress p = { 0 };
		code = client_wait(&cl, o, &src, id, &p);
		if (code == CTL_OK && cl.status == ns__StatusType__SUCCESS) {
			if (cl.dest) {
				char *d = display_safe(cl.dest);
				printf("%s\n", d);
				free(d);
			}
		} else if (code == CTL_OK) {
			fprintf(stderr, "apubictl: task %s FAILED", id);
			if (p.known && p.reason) {
				char *r = display_safe(p.reason);
				fprintf(stderr, ": %s", r);
				free(r);
			}
			if (!s && p.known) {
				char *v = url_mask(src.view_url);
				fprintf(stderr, "\n(the whole task: %s, or apubictl show %s on the "
						"daemon's host)\n", v, id);
				free(v);
			} else {
				fprintf(stderr, "\n(on the daemon's host: apubictl show %s)\n", id);
			}
			code = CTL_TASK_FAILED;
		}
		client_progress_clear(&p);
		free(src.view_url);
	}
	free(id);
out:
	store_close(s);
	client_free(&cl);
	free(url);
	if (have_cfg)
		config_free(&cfg);
	return code;
}

/*
 * svc.c - the three APUBI operations: LoadAsset, PurgeAsset, GetTaskStatus.
 *
 * Each operation trims its inputs (the WFM's samples carry stray
 * whitespace), validates them against the configuration, and for the two
 * that create work commits a task to the store before answering its TaskId.
 * Everything kept beyond the request is copied out of gSOAP's memory into
 * the task; gSOAP frees its own at the end of the request.
 *
 * Faults: Client (Sender) for anything the caller got wrong, Server
 * (Receiver) for apubid's own trouble and for an unknown TaskId, exactly as
 * the contract's sample. The HTTP status is chosen in server.c.
 *
 * [staging] rules (rules.c), when enabled, are consulted once a
 * submission is valid: a fault rule answers its scripted fault (Client for
 * a 4xx status, Server for a 5xx) and records nothing; any other rule is
 * copied onto the task before it is committed. GetTaskStatus spends a
 * rule's scripted IN_PROGRESS answers (store_take_poll) before telling
 * the task's real status.
 *
 * A submission is refused with a Server fault, HTTP 503 and Retry-After,
 * never answered a TaskId, while the store cannot be trusted to keep it:
 * when its last write failed (a full disk), or when its file is not the one
 * apubid opened (deleted or replaced: SQLite would go on writing into the
 * deleted file, and the task would be gone at the next start). The check
 * (store_check) is one stat and a flag, made before the insert; the insert
 * itself fails when its commit fails or when the file was replaced while
 * it ran.
 */
#include "apubid.h"

#include "soapH.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* How long a client is asked to wait when the queue is full. */
#define SVC_RETRY_AFTER 5

/* Gives the fault an ExceptionWS detail carrying the faultstring; with
 * `replace`, over any detail an earlier fault of the same request left. */
static void svc_detail(struct soap *soap, int replace)
{
	const char **s = soap_faultstring(soap);
	(void)soap_faultdetail(soap); /* allocates the detail for the current version */
	struct SOAP_ENV__Detail *d =
		soap->version == 2 ? soap->fault->SOAP_ENV__Detail : soap->fault->detail;
	if (!d || (!replace && (d->ns__ExceptionWS || d->__any || d->fault)))
		return;
	struct _ns__ExceptionWS *ex = soap_new__ns__ExceptionWS(soap, 1);
	if (!ex)
		return;
	ex->message = (char *)(s && *s ? *s : "internal error");
	d->ns__ExceptionWS = ex;
	d->__any = NULL;
	d->fault = NULL;
	d->__type = 0;
}

void svc_fault_detail(struct soap *soap)
{
	svc_detail(soap, 0);
}

int svc_fault(struct soap *soap, int sender, const char *msg)
{
	if (soap->version == 0)
		soap_set_version(soap, 1);
	/* Messages quote what the client sent, percent-decoded: keep the
	 * fault well-formed whatever bytes that produced. */
	char *m = soap_strdup(soap, msg);
	util_utf8_sanitize(m);
	if (sender)
		soap_sender_fault(soap, m, NULL);
	else
		soap_receiver_fault(soap, m, NULL);
	svc_detail(soap, 1);
	return SOAP_FAULT;
}

/* A required string element: trimmed in place, NULL when missing or empty. */
static char *svc_required(char *v)
{
	v = util_trim(v);
	return v && *v ? v : NULL;
}

/* The source's own name, ready to append to `dst`: the last segment of
 * its local path, percent-encoded when `dst` is a URL (asset_destination
 * decodes URL paths, never relative ones). */
static char *svc_basename(const char *local, const char *dst)
{
	size_t end = strlen(local);
	while (end > 0 && local[end - 1] == '/')
		end--;
	size_t start = end;
	while (start > 0 && local[start - 1] != '/')
		start--;
	char *base = util_strndup(local + start, end - start);
	if (!url_is_absolute(dst))
		return base;
	char *enc = url_encode_path(base);
	free(base);
	return enc;
}

/* Where a load lands. A destination ending in '/' names a directory: a
 * directory source becomes that directory, a file source goes inside it
 * under its own name. A destination that is the root itself (the docs'
 * "ftp://CDN:21/data/cdn/") receives the source under its own name. An
 * HLS or DASH package counts as a directory source: its manifest's
 * directory. */
static int svc_load_destination(const struct config *c, const char *dst, const char *local,
				int src_is_dir, char **rel, char *err, size_t errlen)
{
	int dst_is_dir;
	size_t n = strlen(dst);
	int ends_slash = n > 0 && dst[n - 1] == '/';
	if (ends_slash && !src_is_dir) {
		char *base = svc_basename(local, dst);
		char *full = util_printf("%s%s", dst, base);
		int rc = asset_destination(c, full, rel, &dst_is_dir, err, errlen);
		free(base);
		free(full);
		return rc;
	}
	if (asset_destination(c, dst, rel, &dst_is_dir, err, errlen) == 0)
		return 0;
	if (!ends_slash)
		return -1;
	/* Appending one valid segment can only cure "this is the root". */
	char *base = svc_basename(local, dst);
	char *full = util_printf("%s%s/", dst, base);
	char err2[512];
	int rc = *base ? asset_destination(c, full, rel, &dst_is_dir, err2, sizeof err2) : -1;
	free(base);
	free(full);
	return rc;
}

/* Applies the [staging] rule a submission matches, if any: a fault rule
 * answers its fault now (returning the HTTP status, nothing recorded);
 * any other rule is copied onto the task (returning 0), so that a reload
 * of the rules never changes a task once accepted. The delay is set by
 * svc_submit, which knows when the task is created. */
static int svc_rule(struct soap *soap, struct task *t, int64_t *delay_ms)
{
	struct conn *cn = soap->user;
	*delay_ms = 0;
	if (!cn->cfg->staging_enabled)
		return 0;
	const struct rules *rs = rules_current();
	const struct rule *r = rules_match(rs, t->kind == TASK_LOAD ? RULE_LOAD : RULE_PURGE,
					   t->source, t->destination);
	int status = 0;
	if (r && r->fault_status) {
		char msg[160];
		snprintf(msg, sizeof msg, "refused by rule %s", r->name);
		log_info("%s refused by rule %s: HTTP %d", cn->op, r->name, r->fault_status);
		svc_fault(soap, r->fault_status < 500, r->faultstring ? r->faultstring : msg);
		status = r->fault_status;
	} else if (r) {
		t->rule = util_strdup(r->name);
		t->rule_fail = util_strdup(r->fail);
		t->rule_result = util_strdup(r->destination);
		t->rule_polls = r->polls;
		*delay_ms = r->delay_ms;
	}
	rules_release(rs);
	return status;
}

/* Refuses a request the store cannot serve now (a database that went
 * away, a full disk): a Server fault with HTTP 503 and Retry-After. The
 * reason goes to the log (store_check's names the store), the client gets
 * a short one. */
static int svc_store_unavailable(struct soap *soap, const char *why, const char *msg)
{
	struct conn *cn = soap->user;
	log_debug("%s refused: %s", cn->op, why);
	cn->retry_after = SVC_RETRY_AFTER;
	svc_fault(soap, 0, msg);
	return 503;
}

static int svc_store_refused(struct soap *soap, const char *why)
{
	return svc_store_unavailable(soap, why,
				     "the task store cannot take new tasks now; try again later");
}

/* Commits a task and answers its TaskId; 503 when too much is unfinished
 * or the store cannot take it. */
static int svc_submit(struct soap *soap, struct task *t, char **task_id)
{
	struct conn *cn = soap->user;
	int64_t delay_ms;
	int status = svc_rule(soap, t, &delay_ms);
	if (status)
		return status;
	if (pool_active() >= cn->cfg->queue_limit) {
		char msg[160];
		snprintf(msg, sizeof msg,
			 "too many unfinished tasks (queue_limit %d); try again later",
			 cn->cfg->queue_limit);
		cn->retry_after = SVC_RETRY_AFTER;
		svc_fault(soap, 0, msg);
		return 503;
	}
	char why[512];
	if (store_check(cn->store, why, sizeof why) < 0)
		return svc_store_refused(soap, why);
	util_uuid(t->id);
	t->created_ms = util_now_ms();
	/* Workers claim no task before its next_attempt_ms. */
	if (delay_ms)
		t->next_attempt_ms = delay_ms < 0 ? INT64_MAX : t->created_ms + delay_ms;
	if (store_insert(cn->store, t) < 0)
		return svc_store_refused(soap, "the task could not be recorded");
	if (t->rule)
		log_info("task %s: %s shaped by rule %s", t->id, cn->op, t->rule);
	pool_add_active(1);
	pool_wake();
	memcpy(cn->taskid, t->id, TASKID_LEN);
	*task_id = soap_strdup(soap, t->id);
	return SOAP_OK;
}

int __ns__LoadAsset(struct soap *soap, struct _ns__LoadAsset *in,
		    struct _ns__LoadAssetResponse *out)
{
	struct conn *cn = soap->user;
	char err[1024];
	cn->op = "LoadAsset";
	char *src = in ? svc_required(in->SourceAssetUrl) : NULL;
	char *dst = in ? svc_required(in->DestinationAsset) : NULL;
	if (!src)
		return svc_fault(soap, 1, "SourceAssetUrl is missing or empty");
	if (!dst)
		return svc_fault(soap, 1, "DestinationAsset is missing or empty");

	char *local = NULL, *rel = NULL;
	int is_dir = 0;
	if (asset_source(cn->cfg, src, &local, &is_dir, err, sizeof err) < 0)
		return svc_fault(soap, 1, err);
	/* An HLS or DASH manifest loaded into a directory is the whole
	 * package: it lands like a directory source named after the
	 * manifest's own directory. */
	size_t dlen = strlen(dst);
	if (!is_dir && dlen > 0 && dst[dlen - 1] == '/' && asset_package(src)) {
		char *slash = strrchr(local, '/');
		if (slash)
			*slash = '\0';
		is_dir = 1;
	}
	if (svc_load_destination(cn->cfg, dst, local, is_dir, &rel, err, sizeof err) < 0) {
		free(local);
		return svc_fault(soap, 1, err);
	}
	struct task t = { .kind = TASK_LOAD, .state = TS_QUEUED, .dest_is_dir = is_dir };
	t.source = util_strdup(src);
	t.destination = util_strdup(dst);
	t.dest_path = rel;
	free(local);
	int rc = svc_submit(soap, &t, &out->TaskId);
	task_clear(&t);
	return rc;
}

int __ns__PurgeAsset(struct soap *soap, struct _ns__PurgeAsset *in,
		     struct _ns__PurgeAssetResponse *out)
{
	struct conn *cn = soap->user;
	char err[1024];
	cn->op = "PurgeAsset";
	char *dst = in ? svc_required(in->DestinationAsset) : NULL;
	if (!dst)
		return svc_fault(soap, 1, "DestinationAsset is missing or empty");
	char *rel = NULL;
	int is_dir = 0;
	if (asset_destination(cn->cfg, dst, &rel, &is_dir, err, sizeof err) < 0)
		return svc_fault(soap, 1, err);
	struct task t = { .kind = TASK_PURGE, .state = TS_QUEUED, .dest_is_dir = is_dir };
	t.destination = util_strdup(dst);
	t.dest_path = rel;
	int rc = svc_submit(soap, &t, &out->TaskId);
	task_clear(&t);
	return rc;
}

int __ns__GetTaskStatus(struct soap *soap, struct _ns__GetTaskStatus *in,
			struct _ns__GetTaskStatusResponse *out)
{
	struct conn *cn = soap->user;
	cn->op = "GetTaskStatus";
	char *id = in ? svc_required(in->TaskId) : NULL;
	if (!id)
		return svc_fault(soap, 1, "TaskId is missing or empty");
	/* TaskIds are issued as upper-case UUIDs and read in any case; no
	 * other value can name a task. */
	char tid[TASKID_LEN];
	int known_shape = util_taskid_parse(id, strlen(id), tid) == 0;
	snprintf(cn->taskid, sizeof cn->taskid, "%s", known_shape ? tid : id);
	if (!known_shape)
		return svc_fault(soap, 0, "Task Id does not exist");
	id = tid;

	struct task t;
	int rc = store_get(cn->store, id, &t);
	if (rc == 1)
		return svc_fault(soap, 0, "Task Id does not exist");
	if (rc < 0)
		return svc_store_unavailable(soap, "the task store cannot be read",
					     "the task store cannot be read now; try again later");
	/* A [staging] rule with polls answers IN_PROGRESS, whatever the
	 * task's state, until its polls are used up. */
	if (t.rule_polls != 0) {
		int take = store_take_poll(cn->store, id);
		if (take < 0) {
			task_clear(&t);
			return svc_store_unavailable(soap, "the task store cannot be read",
						     "the task store cannot be read now; try again later");
		}
		if (take == 1) {
			task_clear(&t);
			out->Status = ns__StatusType__IN_USCOREPROGRESS;
			return SOAP_OK;
		}
	}
	const char *status = task_apubi_status(t.state);
	if (strcmp(status, "SUCCESS") == 0)
		out->Status = ns__StatusType__SUCCESS;
	else if (strcmp(status, "FAILED") == 0)
		out->Status = ns__StatusType__FAILED;
	else
		out->Status = ns__StatusType__IN_USCOREPROGRESS;
	if (t.kind == TASK_LOAD && t.state == TS_SUCCEEDED && t.result)
		out->DestinationAsset = soap_strdup(soap, t.result);
	task_clear(&t);
	return SOAP_OK;
}

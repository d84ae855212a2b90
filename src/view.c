/*
 * view.c - what a task looks like to an operator: one task, or a page of
 * tasks, as JSON or XML, for the GET routes of web.c, for apubictl and for
 * the notifications POSTed when a task ends.
 *
 * Every view is first built as one jansson tree; the JSON text is that tree
 * dumped, and the XML text is the same tree walked by a small writer, so
 * the two formats always carry the same fields under the same names. The
 * XML mapping: an object becomes an element of its key's name (a task's
 * "id" becomes an attribute of <task>), an array becomes an element whose
 * children take the singular name (items -> item, history -> event,
 * attempt_log -> attempt), null members are left out, booleans read
 * "true"/"false".
 *
 * A task shaped by a [staging] rule says so in its "rule" member (null
 * otherwise), in lists too: a tester reading a view must never mistake a
 * scripted outcome for a real one.
 *
 * Invariants: no secret reaches a view (source, destination and result go
 * through url_mask; errors were masked where they were made); every string
 * from the store is made valid UTF-8 without control characters
 * (util_utf8_sanitize) before it enters the tree, so no stored byte can
 * break either document; the XML writer escapes the five markup characters
 * and writes tab, CR and LF as character references (so attribute values
 * survive normalisation) and replaces U+FFFE and U+FFFF, which XML 1.0
 * forbids. Times are ISO 8601 UTC with milliseconds; a time that is zero
 * (never happened) is left out.
 */
#include "apubid.h"

#include <jansson.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* jansson returns NULL only when it cannot allocate: like util_malloc,
 * give up rather than hand out half a view. */
static json_t *view_need(json_t *j)
{
	if (!j) {
		log_error("out of memory building a task view");
		abort();
	}
	return j;
}

static void view_set(json_t *obj, const char *key, json_t *value)
{
	if (json_object_set_new(obj, key, view_need(value)) != 0) {
		log_error("out of memory building a task view");
		abort();
	}
}

/* A stored string as JSON: null for NULL, else valid UTF-8 (bad bytes and
 * control characters but tab, CR and LF become '?'). */
static json_t *view_str(const char *s)
{
	if (!s)
		return json_null();
	char *copy = util_utf8_sanitize(util_strdup(s));
	json_t *j = json_string(copy);
	free(copy);
	return view_need(j);
}

/* A URL that may carry a password, masked, as JSON. */
static json_t *view_url(const char *s)
{
	if (!s)
		return json_null();
	char *masked = url_mask(s);
	json_t *j = view_str(masked);
	free(masked);
	return j;
}

/* "2026-11-22T12:00:00.123Z" into buf (at least 32 bytes). */
static void view_time_text(int64_t ms, char *buf, size_t len)
{
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

/* Sets obj[key] to the time, or leaves it out when it is zero. */
static void view_set_time(json_t *obj, const char *key, int64_t ms)
{
	if (ms <= 0)
		return;
	char buf[48];
	view_time_text(ms, buf, sizeof buf);
	view_set(obj, key, json_string(buf));
}

/* The [staging] rule that shaped a task, or null: its name, the failure
 * and the DestinationAsset it scripts, the IN_PROGRESS answers it still
 * owes (-1: for ever), and, while the task waits for its delay, when it
 * may start ("never" for a delay of forever). */
static json_t *view_rule(const struct task *t)
{
	if (!t->rule)
		return json_null();
	json_t *r = view_need(json_object());
	view_set(r, "name", view_str(t->rule));
	view_set(r, "fail", view_str(t->rule_fail));
	view_set(r, "destination", view_url(t->rule_result));
	view_set(r, "polls_left", json_integer(t->rule_polls));
	if (t->state == TS_QUEUED && t->next_attempt_ms > t->created_ms) {
		if (t->next_attempt_ms == INT64_MAX)
			view_set(r, "delayed_until", json_string("never"));
		else
			view_set_time(r, "delayed_until", t->next_attempt_ms);
	}
	return r;
}

/* The fields of a task that a list shows too. */
static json_t *view_summary(const struct task *t)
{
	json_t *o = view_need(json_object());
	view_set(o, "id", view_str(t->id));
	view_set(o, "kind", json_string(task_kind_name(t->kind)));
	view_set(o, "status", json_string(task_apubi_status(t->state)));
	view_set(o, "state", json_string(task_state_name(t->state)));
	view_set(o, "source", view_url(t->source));
	view_set(o, "destination", view_url(t->destination));
	view_set(o, "destination_asset", view_url(t->result));
	view_set(o, "reason", view_str(t->reason));
	view_set(o, "note", view_str(t->note));
	view_set_time(o, "created", t->created_ms);
	view_set_time(o, "updated", t->updated_ms);
	view_set_time(o, "first_started", t->first_started_ms);
	/* Only a task waiting to run again has a next attempt worth showing. */
	if (t->state == TS_RETRY)
		view_set_time(o, "next_attempt", t->next_attempt_ms);
	view_set(o, "attempts", json_integer(t->attempts));
	view_set(o, "rule", view_rule(t));
	json_t *p = view_need(json_object());
	view_set(p, "bytes_done", json_integer(t->bytes_done));
	view_set(p, "bytes_total", json_integer(t->bytes_total));
	view_set(p, "files_done", json_integer(t->files_done));
	view_set(p, "files_total", json_integer(t->files_total));
	view_set(o, "progress", p);
	return o;
}

static const char *view_item_state(int state)
{
	return state == ITEM_DONE ? "done" : state == ITEM_FAILED ? "failed" : "pending";
}

/* The whole task: the summary, then attempts, history, items and the
 * notification. Returns NULL when the store fails. */
static json_t *view_full(struct store *s, const struct task *t)
{
	struct attempt *att = NULL;
	struct task_event *ev = NULL;
	struct item *items = NULL;
	int natt = 0, nev = 0, nitems = 0;
	json_t *o = NULL;
	if (store_attempts(s, t->id, &att, &natt) < 0 || store_events(s, t->id, &ev, &nev) < 0 ||
	    store_items(s, t->id, &items, &nitems) < 0)
		goto done;

	o = view_summary(t);
	/* A task the ordering rule holds names the task it waits for. */
	char ahead[TASKID_LEN];
	int held = t->state == TS_QUEUED || t->state == TS_RETRY
			   ? store_waiting_for(s, t->id, ahead) : 1;
	if (held < 0) {
		json_decref(o);
		o = NULL;
		goto done;
	}
	view_set(o, "waiting_for", held == 0 ? view_str(ahead) : json_null());
	json_t *a = view_need(json_array());
	for (int i = 0; i < natt; i++) {
		json_t *e = view_need(json_object());
		view_set(e, "n", json_integer(att[i].n));
		view_set_time(e, "started", att[i].started_ms);
		view_set_time(e, "ended", att[i].ended_ms);
		view_set(e, "error", view_str(att[i].error));
		json_array_append_new(a, e);
	}
	view_set(o, "attempt_log", a);

	json_t *h = view_need(json_array());
	for (int i = 0; i < nev; i++) {
		json_t *e = view_need(json_object());
		view_set_time(e, "at", ev[i].at_ms);
		view_set(e, "state", json_string(task_state_name(ev[i].state)));
		view_set(e, "detail", view_str(ev[i].detail));
		json_array_append_new(h, e);
	}
	view_set(o, "history", h);

	json_t *it = view_need(json_array());
	for (int i = 0; i < nitems; i++) {
		json_t *e = view_need(json_object());
		view_set(e, "path", view_str(items[i].path));
		view_set(e, "is_dir", json_boolean(items[i].is_dir));
		view_set(e, "size", items[i].size >= 0 ? json_integer(items[i].size) : json_null());
		view_set(e, "state", json_string(view_item_state(items[i].state)));
		view_set(e, "sha256", view_str(items[i].sha256));
		view_set(e, "error", view_str(items[i].error));
		json_array_append_new(it, e);
	}
	view_set(o, "items", it);

	json_t *n = view_need(json_object());
	view_set(n, "state", json_string(task_notify_name(t->notify_state)));
	view_set(n, "attempts", json_integer(t->notify_attempts));
	view_set(n, "last_error", view_str(t->notify_error));
	if (t->notify_state == NOTIFY_DELIVERED)
		view_set_time(n, "delivered_at", t->notify_ms);
	if (t->notify_state == NOTIFY_PENDING)
		view_set_time(n, "next_attempt", t->notify_next_ms);
	view_set(o, "notification", n);
done:
	attempt_free_all(att, natt);
	task_event_free_all(ev, nev);
	item_free_all(items, nitems);
	return o;
}

/* ---- the XML writer ---------------------------------------------------- */

/* Escaped text for element content and attribute values. The input is
 * valid UTF-8 without control characters but tab, CR and LF (it went
 * through view_str). */
static void view_add_escaped(struct util_buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		size_t run = 0;
		while (p[run] && !strchr("&<>\"'\t\r\n\xef", p[run]))
			run++;
		util_buf_add(b, (const char *)p, run);
		p += run;
		switch (*p) {
		case '\0':
			return;
		case '&':
			util_buf_adds(b, "&amp;");
			break;
		case '<':
			util_buf_adds(b, "&lt;");
			break;
		case '>':
			util_buf_adds(b, "&gt;");
			break;
		case '"':
			util_buf_adds(b, "&quot;");
			break;
		case '\'':
			util_buf_adds(b, "&apos;");
			break;
		case '\t':
			util_buf_adds(b, "&#9;");
			break;
		case '\n':
			util_buf_adds(b, "&#10;");
			break;
		case '\r':
			util_buf_adds(b, "&#13;");
			break;
		default:
			/* 0xEF leads U+F000..U+FFFF: U+FFFE and U+FFFF are
			 * not XML characters. */
			if (p[1] == 0xbf && (p[2] == 0xbe || p[2] == 0xbf)) {
				util_buf_adds(b, "?");
				p += 3;
				continue;
			}
			util_buf_add(b, (const char *)p, 1);
			break;
		}
		p++;
	}
}

/* The element name for one member of an array called `key`. */
static const char *view_singular(const char *key)
{
	if (strcmp(key, "history") == 0)
		return "event";
	if (strcmp(key, "attempt_log") == 0)
		return "attempt";
	if (strcmp(key, "items") == 0)
		return "item";
	if (strcmp(key, "tasks") == 0)
		return "task";
	return "value";
}

static void view_xml_object(struct util_buf *b, const char *name, json_t *obj);

static void view_xml_member(struct util_buf *b, const char *key, json_t *v)
{
	char num[32];
	switch (json_typeof(v)) {
	case JSON_NULL:
		return;
	case JSON_OBJECT:
		view_xml_object(b, key, v);
		return;
	case JSON_ARRAY: {
		size_t i;
		json_t *e;
		util_buf_adds(b, "<");
		util_buf_adds(b, key);
		util_buf_adds(b, ">");
		json_array_foreach (v, i, e)
			view_xml_member(b, view_singular(key), e);
		util_buf_adds(b, "</");
		util_buf_adds(b, key);
		util_buf_adds(b, ">");
		return;
	}
	default:
		break;
	}
	util_buf_adds(b, "<");
	util_buf_adds(b, key);
	util_buf_adds(b, ">");
	if (json_is_string(v)) {
		view_add_escaped(b, json_string_value(v));
	} else if (json_is_integer(v)) {
		snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
		util_buf_adds(b, num);
	} else if (json_is_real(v)) {
		snprintf(num, sizeof num, "%.17g", json_real_value(v));
		util_buf_adds(b, num);
	} else {
		util_buf_adds(b, json_is_true(v) ? "true" : "false");
	}
	util_buf_adds(b, "</");
	util_buf_adds(b, key);
	util_buf_adds(b, ">");
}

static void view_xml_object(struct util_buf *b, const char *name, json_t *obj)
{
	json_t *id = json_object_get(obj, "id");
	util_buf_adds(b, "<");
	util_buf_adds(b, name);
	if (json_is_string(id)) {
		util_buf_adds(b, " id=\"");
		view_add_escaped(b, json_string_value(id));
		util_buf_adds(b, "\"");
	}
	util_buf_adds(b, ">");
	const char *key;
	json_t *v;
	json_object_foreach (obj, key, v)
		if (v != id)
			view_xml_member(b, key, v);
	util_buf_adds(b, "</");
	util_buf_adds(b, name);
	util_buf_adds(b, ">");
}

#define VIEW_XML_DECL "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"

/* Renders a tree as the format asked for; consumes `j`. */
static char *view_render(json_t *j, const char *xml_root, int format)
{
	char *out;
	if (format == VIEW_XML) {
		struct util_buf b = { 0 };
		util_buf_adds(&b, VIEW_XML_DECL);
		view_xml_object(&b, xml_root, j);
		util_buf_adds(&b, "\n");
		out = b.p;
	} else {
		char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		if (!text) {
			log_error("out of memory rendering a task view");
			abort();
		}
		/* jansson allocates with malloc by default, but the caller
		 * frees with free(): copy so that holds whatever jansson's
		 * allocator is. */
		out = util_printf("%s\n", text);
		free(text);
	}
	json_decref(j);
	return out;
}

int view_task(struct store *s, const char *id, int format, int status_only, char **out)
{
	struct task t;
	*out = NULL;
	memset(&t, 0, sizeof t);
	int rc = store_get(s, id, &t);
	if (rc != 0)
		return rc;
	json_t *j;
	if (status_only) {
		j = view_need(json_object());
		view_set(j, "id", view_str(t.id));
		view_set(j, "status", json_string(task_apubi_status(t.state)));
	} else {
		j = view_full(s, &t);
	}
	task_clear(&t);
	if (!j)
		return -1;
	*out = view_render(j, "task", format);
	return 0;
}

int view_list(struct store *s, const struct task_filter *f, int format, char **out)
{
	struct task *tasks = NULL;
	int n = 0;
	*out = NULL;
	if (store_list(s, f, &tasks, &n) < 0)
		return -1;
	int limit = f->limit > 0 ? f->limit : 100;
	int64_t next = 0;
	if (n > 0 && n >= limit) {
		/* A full page: the cursor is worth giving only when something
		 * lies beyond it. */
		struct task_filter more = *f;
		struct task *probe = NULL;
		int np = 0;
		more.before_seq = tasks[n - 1].seq;
		more.limit = 1;
		if (store_list(s, &more, &probe, &np) < 0) {
			task_free_all(tasks, n);
			return -1;
		}
		if (np > 0)
			next = tasks[n - 1].seq;
		task_free_all(probe, np);
	}

	json_t *arr = view_need(json_array());
	for (int i = 0; i < n; i++)
		json_array_append_new(arr, view_summary(&tasks[i]));
	task_free_all(tasks, n);

	if (format == VIEW_XML) {
		struct util_buf b = { 0 };
		char attr[48] = "";
		if (next)
			snprintf(attr, sizeof attr, " next=\"%lld\"", (long long)next);
		util_buf_adds(&b, VIEW_XML_DECL "<tasks");
		util_buf_adds(&b, attr);
		util_buf_adds(&b, ">");
		size_t i;
		json_t *e;
		json_array_foreach (arr, i, e)
			view_xml_object(&b, "task", e);
		util_buf_adds(&b, "</tasks>\n");
		json_decref(arr);
		*out = b.p;
		return 0;
	}
	json_t *j = view_need(json_object());
	view_set(j, "tasks", arr);
	if (next) {
		char cur[32];
		snprintf(cur, sizeof cur, "%lld", (long long)next);
		view_set(j, "next", json_string(cur));
	} else {
		view_set(j, "next", json_null());
	}
	*out = view_render(j, "tasks", format);
	return 0;
}

char *view_error(int format, const char *msg)
{
	json_t *j = view_need(json_object());
	view_set(j, "error", view_str(msg));
	if (format != VIEW_XML)
		return view_render(j, "error", format);
	struct util_buf b = { 0 };
	util_buf_adds(&b, VIEW_XML_DECL "<error>");
	view_add_escaped(&b, json_string_value(json_object_get(j, "error")));
	util_buf_adds(&b, "</error>\n");
	json_decref(j);
	return b.p;
}

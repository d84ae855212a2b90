/*
 * test_view.c - task views: the JSON view carries every field with
 * passwords masked and stored bytes made valid UTF-8; the XML view escapes
 * markup and characters XML forbids; status_only is the bare status; an
 * unknown task is 1; a list pages through every task once, and its cursor
 * is null exactly when nothing remains.
 */
#include "apubid.h"
#include "harness.h"

#include <jansson.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];
static char path[128];

static struct store *fresh_store(void)
{
	char side[160];
	unlink(path);
	snprintf(side, sizeof side, "%.120s-wal", path);
	unlink(side);
	snprintf(side, sizeof side, "%.120s-shm", path);
	unlink(side);
	char err[256];
	struct config c = { .store_path = path };
	return store_open(&c, err, sizeof err);
}

static void insert(struct store *s, struct task *t, int kind, const char *src, const char *dst)
{
	memset(t, 0, sizeof *t);
	util_uuid(t->id);
	t->kind = kind;
	t->source = (char *)src;
	t->destination = (char *)dst;
	t->dest_path = (char *)dst;
	t->created_ms = util_now_ms();
	store_insert(s, t);
}

/* A load that failed once on a.ts and then succeeded, with two items. */
static void run_load(struct store *s, char id[TASKID_LEN])
{
	struct task t, c;
	insert(s, &t, TASK_LOAD, "ftp://user:pw@127.0.0.1/in/pkg/", "pkg/");
	memcpy(id, t.id, TASKID_LEN);
	store_claim(s, &c);
	struct item items[2] = {
		{ .seq = 0, .path = "a.ts", .size = 3 },
		{ .seq = 1, .path = "b\xff.ts", .size = 5 },
	};
	store_set_items(s, id, items, 2);
	store_item_failed(s, id, 0, "a.ts: 426 transfer aborted");
	store_attempt(s, id, 1, c.first_started_ms, "a.ts: 426 transfer aborted");
	store_retry(s, id, 0, "a.ts: 426 transfer aborted");
	task_clear(&c);
	store_claim(s, &c);
	store_item_done(s, id, 0, 3, "aa11");
	store_item_done(s, id, 1, 5, "bb22");
	store_attempt(s, id, 2, c.updated_ms, NULL);
	store_finish(s, id, TS_SUCCEEDED, "file:///cdn/pkg/", NULL, "note <&>\"' \xef\xbf\xbf\x01", 0);
	task_clear(&c);
}

static void test_json_view_has_every_field_masked_and_valid(void)
{
	struct store *s = fresh_store();
	CHECK(s);
	char id[TASKID_LEN];
	run_load(s, id);
	char *out = NULL;
	CHECK(view_task(s, id, VIEW_JSON, 0, &out) == 0);
	json_error_t e;
	json_t *j = json_loads(out, 0, &e);
	CHECK(j);
	CHECK(strstr(out, "pw") == NULL);
	CHECK_STR(json_string_value(json_object_get(j, "id")), id);
	CHECK_STR(json_string_value(json_object_get(j, "kind")), "load");
	CHECK_STR(json_string_value(json_object_get(j, "status")), "SUCCESS");
	CHECK_STR(json_string_value(json_object_get(j, "state")), "succeeded");
	CHECK_STR(json_string_value(json_object_get(j, "source")),
		  "ftp://user:***@127.0.0.1/in/pkg/");
	CHECK_STR(json_string_value(json_object_get(j, "destination_asset")), "file:///cdn/pkg/");
	CHECK(json_integer_value(json_object_get(j, "attempts")) == 2);
	CHECK(json_is_null(json_object_get(j, "reason")));
	const char *created = json_string_value(json_object_get(j, "created"));
	CHECK(created && strlen(created) == 24 && created[10] == 'T' && created[23] == 'Z');
	CHECK(json_object_get(j, "next_attempt") == NULL);
	json_t *p = json_object_get(j, "progress");
	CHECK(json_integer_value(json_object_get(p, "files_done")) == 2);
	CHECK(json_integer_value(json_object_get(p, "files_total")) == 2);
	CHECK(json_integer_value(json_object_get(p, "bytes_total")) == 8);
	json_t *a = json_object_get(j, "attempt_log");
	CHECK(json_array_size(a) == 2);
	CHECK_STR(json_string_value(json_object_get(json_array_get(a, 0), "error")),
		  "a.ts: 426 transfer aborted");
	CHECK(json_is_null(json_object_get(json_array_get(a, 1), "error")));
	json_t *h = json_object_get(j, "history");
	const char *want[] = { "queued", "running", "retry", "running", "succeeded" };
	CHECK(json_array_size(h) == 5);
	for (int i = 0; i < 5; i++)
		CHECK_STR(json_string_value(json_object_get(json_array_get(h, (size_t)i), "state")),
			  want[i]);
	json_t *it = json_object_get(j, "items");
	CHECK(json_array_size(it) == 2);
	CHECK_STR(json_string_value(json_object_get(json_array_get(it, 1), "path")), "b?.ts");
	CHECK_STR(json_string_value(json_object_get(json_array_get(it, 1), "sha256")), "bb22");
	CHECK_STR(json_string_value(json_object_get(json_array_get(it, 0), "state")), "done");
	CHECK(json_is_false(json_object_get(json_array_get(it, 0), "is_dir")));
	CHECK_STR(json_string_value(json_object_get(json_object_get(j, "notification"), "state")),
		  "none");
	json_decref(j);
	free(out);
	store_close(s);
}

static void test_xml_view_escapes_markup_and_forbidden_characters(void)
{
	struct store *s = fresh_store();
	CHECK(s);
	char id[TASKID_LEN];
	run_load(s, id);
	char *out = NULL;
	CHECK(view_task(s, id, VIEW_XML, 0, &out) == 0);
	const char *head = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<task id=\"";
	CHECK(strncmp(out, head, strlen(head)) == 0);
	CHECK(strstr(out, "<note>note &lt;&amp;&gt;&quot;&apos; ?" "?</note>") != NULL);
	CHECK(strstr(out, "<path>b?.ts</path>") != NULL);
	CHECK(strstr(out, "<is_dir>false</is_dir>") != NULL);
	CHECK(strstr(out, "<attempt_log><attempt><n>1</n>") != NULL);
	CHECK(strstr(out, "<history><event>") != NULL);
	CHECK(strstr(out, "<reason>") == NULL);
	CHECK(strstr(out, "pw@") == NULL);
	free(out);
	store_close(s);
}

static void test_status_only_is_the_bare_status(void)
{
	struct store *s = fresh_store();
	CHECK(s);
	struct task t;
	insert(s, &t, TASK_PURGE, NULL, "x.ts");
	char *out = NULL, want[200];
	CHECK(view_task(s, t.id, VIEW_JSON, 1, &out) == 0);
	json_t *j = json_loads(out, 0, NULL);
	CHECK(j && json_object_size(j) == 2);
	CHECK_STR(json_string_value(json_object_get(j, "status")), "IN_PROGRESS");
	json_decref(j);
	free(out);
	CHECK(view_task(s, t.id, VIEW_XML, 1, &out) == 0);
	snprintf(want, sizeof want,
		 "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		 "<task id=\"%s\"><status>IN_PROGRESS</status></task>\n", t.id);
	CHECK_STR(out, want);
	free(out);
	store_close(s);
}

static void test_unknown_task_is_one(void)
{
	struct store *s = fresh_store();
	CHECK(s);
	char *out = (char *)"x";
	CHECK(view_task(s, "00000000-0000-0000-0000-000000000000", VIEW_JSON, 0, &out) == 1);
	CHECK(out == NULL);
	store_close(s);
}

/* Pages through `ntasks` tasks `limit` at a time: every task once, and
 * the last page has a null cursor. */
static int pages_cover(int ntasks, int limit)
{
	struct store *s = fresh_store();
	if (!s)
		return 0;
	char ids[20][TASKID_LEN];
	for (int i = 0; i < ntasks; i++) {
		struct task t;
		insert(s, &t, TASK_PURGE, NULL, "x.ts");
		memcpy(ids[i], t.id, TASKID_LEN);
	}
	int seen[20] = { 0 }, total = 0, pages = 0, ok = 1;
	struct task_filter f = { .state = -1, .limit = limit };
	for (;;) {
		char *out;
		if (view_list(s, &f, VIEW_JSON, &out) < 0 || ++pages > 20) {
			ok = 0;
			break;
		}
		json_t *j = json_loads(out, 0, NULL);
		free(out);
		json_t *arr = json_object_get(j, "tasks");
		size_t i;
		json_t *e;
		json_array_foreach (arr, i, e) {
			const char *id = json_string_value(json_object_get(e, "id"));
			for (int k = 0; k < ntasks; k++)
				if (strcmp(ids[k], id) == 0 && seen[k]++)
					ok = 0;
			total++;
		}
		json_t *next = json_object_get(j, "next");
		if (json_is_null(next)) {
			json_decref(j);
			break;
		}
		if ((int)json_array_size(arr) != limit)
			ok = 0;
		f.before_seq = strtoll(json_string_value(next), NULL, 10);
		json_decref(j);
	}
	store_close(s);
	return ok && total == ntasks && pages == (ntasks + limit - 1) / limit + (ntasks == 0);
}

static void test_list_pages_cover_every_task_once(void)
{
	CHECK(pages_cover(5, 2));
	CHECK(pages_cover(4, 2)); /* a full last page still ends with null */
	CHECK(pages_cover(3, 10));
	CHECK(pages_cover(0, 3));
}

static void test_list_xml_has_the_cursor_as_attribute(void)
{
	struct store *s = fresh_store();
	CHECK(s);
	struct task t;
	for (int i = 0; i < 3; i++)
		insert(s, &t, TASK_PURGE, NULL, "x.ts");
	struct task_filter f = { .state = -1, .limit = 2 };
	char *out;
	CHECK(view_list(s, &f, VIEW_XML, &out) == 0);
	CHECK(strstr(out, "<tasks next=\"") != NULL);
	CHECK(strstr(out, "</task><task id=") != NULL);
	free(out);
	store_close(s);
}

static void test_error_document_in_both_formats(void)
{
	char *out = view_error(VIEW_XML, "bad <x>");
	CHECK_STR(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<error>bad &lt;x&gt;</error>\n");
	free(out);
	out = view_error(VIEW_JSON, "bad \xff");
	json_t *j = json_loads(out, 0, NULL);
	free(out);
	CHECK(j);
	CHECK_STR(json_string_value(json_object_get(j, "error")), "bad ?");
	json_decref(j);
}

int main(void)
{
	snprintf(dir, sizeof dir, "/tmp/apubid-test-view-XXXXXX");
	if (!mkdtemp(dir))
		return 2;
	snprintf(path, sizeof path, "%s/t.db", dir);
	log_set_level(LOG_ERROR);
	RUN(test_json_view_has_every_field_masked_and_valid);
	RUN(test_xml_view_escapes_markup_and_forbidden_characters);
	RUN(test_status_only_is_the_bare_status);
	RUN(test_unknown_task_is_one);
	RUN(test_list_pages_cover_every_task_once);
	RUN(test_list_xml_has_the_cursor_as_attribute);
	RUN(test_error_document_in_both_formats);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return HARNESS_END("test_view");
}

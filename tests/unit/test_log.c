/*
 * test_log.c - the shapes of a log line: text, JSON whose every line
 * parses whatever bytes the message holds, structured fields as members,
 * and the syslog priority prefix when stderr is the journal's stream.
 * Each test sends the log to a file of its own with log_open and reads it
 * back; stderr is given back at the end of each.
 */
#include "apubid.h"
#include "harness.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char path[] = "/tmp/apubid-test-log-XXXXXX";

/* Starts a fresh log file; the caller ends with log_done. */
static int log_start(int format)
{
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	close(fd);
	char err[256];
	log_set_level(LOG_DEBUG);
	log_set_format(format);
	return log_open(path, err, sizeof err);
}

/* Gives stderr back and returns what was logged (malloc'ed). */
static char *log_done(void)
{
	char err[256];
	log_open(NULL, err, sizeof err);
	log_set_format(LOG_TEXT);
	FILE *f = fopen(path, "r");
	char *text = calloc(1, 65536);
	if (f) {
		size_t n = fread(text, 1, 65535, f);
		text[n] = '\0';
		fclose(f);
	}
	unlink(path);
	strcpy(path, "/tmp/apubid-test-log-XXXXXX");
	return text;
}

static void test_text_line_has_timestamp_level_and_message(void)
{
	CHECK(log_start(LOG_TEXT) == 0);
	log_warn("disk %s", "full");
	char *t = log_done();
	int ok = strlen(t) > 25 && t[4] == '-' && t[10] == 'T' && t[23] == 'Z' &&
		 strcmp(t + 24, " warn  disk full\n") == 0;
	free(t);
	CHECK(ok);
}

static void test_json_line_parses_even_with_invalid_utf8_and_controls(void)
{
	CHECK(log_start(LOG_JSON) == 0);
	log_info("bad \xff\xfe bytes \"quoted\" tab\there \x1b[31m line\nbreak \xc3\xa9");
	char *t = log_done();
	json_error_t e;
	json_t *o = json_loads(t, JSON_REJECT_DUPLICATES, &e);
	int lines = 0;
	for (const char *p = t; *p; p++)
		lines += *p == '\n';
	free(t);
	CHECK(lines == 1);
	CHECK(o != NULL);
	const char *msg = json_string_value(json_object_get(o, "message"));
	const char *lvl = json_string_value(json_object_get(o, "level"));
	const char *tm = json_string_value(json_object_get(o, "time"));
	int ok = msg && strcmp(msg, "bad ?? bytes \"quoted\" tab?here ?[31m line break \xc3\xa9") == 0 &&
		 lvl && strcmp(lvl, "info") == 0 && tm && strlen(tm) == 24 && tm[23] == 'Z';
	json_decref(o);
	CHECK(ok);
}

static void test_event_fields_become_members_in_json(void)
{
	CHECK(log_start(LOG_JSON) == 0);
	struct log_field f[] = {
		{ "op", "LoadAsset", 0, 0 },
		{ "status", NULL, 200, 0 },
		{ "ms", NULL, 5, 0 },
		{ "fault", "it \"broke\" \xff", 0, 1 },
	};
	log_event(LOG_INFO, "request", f, 4);
	char *t = log_done();
	json_t *o = json_loads(t, 0, NULL);
	free(t);
	CHECK(o != NULL);
	const char *msg = json_string_value(json_object_get(o, "message"));
	int ok = msg && strcmp(msg, "request op=LoadAsset status=200 ms=5 fault=\"it \"broke\" ?\"") == 0 &&
		 json_is_integer(json_object_get(o, "status")) &&
		 json_integer_value(json_object_get(o, "status")) == 200 &&
		 json_integer_value(json_object_get(o, "ms")) == 5 &&
		 strcmp(json_string_value(json_object_get(o, "op")), "LoadAsset") == 0 &&
		 strcmp(json_string_value(json_object_get(o, "fault")), "it \"broke\" ?") == 0;
	json_decref(o);
	CHECK(ok);
}

static void test_event_reads_as_before_in_text(void)
{
	CHECK(log_start(LOG_TEXT) == 0);
	struct log_field f[] = {
		{ "op", "GetTaskStatus", 0, 0 },
		{ "status", NULL, 500, 0 },
		{ "user", "alice", 0, 1 },
	};
	log_event(LOG_WARN, "request", f, 3);
	char *t = log_done();
	int ok = strstr(t, " warn  request op=GetTaskStatus status=500 user=\"alice\"\n") != NULL;
	free(t);
	CHECK(ok);
}

/* The journal's stream is told by the device and inode JOURNAL_STREAM
 * names; here the log file plays that stream. */
static void test_journal_stream_gets_priority_prefix_without_timestamp(void)
{
	struct stat st;
	char err[256], js[64];
	CHECK(log_start(LOG_TEXT) == 0);
	CHECK(stat(path, &st) == 0);
	snprintf(js, sizeof js, "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", js, 1);
	CHECK(log_open(path, err, sizeof err) == 0); /* looks at descriptor 2 again */
	log_error("e");
	log_warn("w");
	log_info("i");
	log_debug("d");
	log_set_format(LOG_JSON);
	log_warn("j");
	char *t = log_done();
	unsetenv("JOURNAL_STREAM");
	const char *want = "<3>error e\n<4>warn  w\n<6>info  i\n<7>debug d\n<4>{\"time\":";
	int ok = strncmp(t, want, strlen(want)) == 0;
	free(t);
	CHECK(ok);
}

static void test_other_stream_gets_no_prefix(void)
{
	char err[256];
	setenv("JOURNAL_STREAM", "1:2", 1);
	CHECK(log_start(LOG_TEXT) == 0);
	CHECK(log_open(path, err, sizeof err) == 0);
	log_info("i");
	char *t = log_done();
	unsetenv("JOURNAL_STREAM");
	int ok = t[0] != '<' && strstr(t, " info  i\n") != NULL;
	free(t);
	CHECK(ok);
}

int main(void)
{
	RUN(test_text_line_has_timestamp_level_and_message);
	RUN(test_json_line_parses_even_with_invalid_utf8_and_controls);
	RUN(test_event_fields_become_members_in_json);
	RUN(test_event_reads_as_before_in_text);
	RUN(test_journal_stream_gets_priority_prefix_without_timestamp);
	RUN(test_other_stream_gets_no_prefix);
	return HARNESS_END("test_log");
}

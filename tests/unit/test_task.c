/*
 * test_task.c - the task state machine: which moves are allowed, which
 * states are final, and what the WFM reads for each state.
 */
#include "apubid.h"
#include "harness.h"

#include <stdlib.h>
#include <string.h>

static const int all_states[] = { TS_QUEUED, TS_RUNNING, TS_RETRY,
				  TS_SUCCEEDED, TS_FAILED, TS_CANCELLED };
#define NSTATES ((int)(sizeof all_states / sizeof all_states[0]))

static void test_unfinished_states_read_in_progress(void)
{
	CHECK_STR(task_apubi_status(TS_QUEUED), "IN_PROGRESS");
	CHECK_STR(task_apubi_status(TS_RUNNING), "IN_PROGRESS");
	CHECK_STR(task_apubi_status(TS_RETRY), "IN_PROGRESS");
}

static void test_succeeded_reads_success(void)
{
	CHECK_STR(task_apubi_status(TS_SUCCEEDED), "SUCCESS");
}

static void test_failed_and_cancelled_read_failed(void)
{
	CHECK_STR(task_apubi_status(TS_FAILED), "FAILED");
	CHECK_STR(task_apubi_status(TS_CANCELLED), "FAILED");
}

static void test_only_succeeded_failed_and_cancelled_are_final(void)
{
	CHECK(!task_is_final(TS_QUEUED));
	CHECK(!task_is_final(TS_RUNNING));
	CHECK(!task_is_final(TS_RETRY));
	CHECK(task_is_final(TS_SUCCEEDED));
	CHECK(task_is_final(TS_FAILED));
	CHECK(task_is_final(TS_CANCELLED));
}

static void test_final_states_go_nowhere_but_an_operators_retry(void)
{
	for (int i = 0; i < NSTATES; i++) {
		if (!task_is_final(all_states[i]))
			continue;
		for (int j = 0; j < NSTATES; j++) {
			int retry = all_states[i] != TS_SUCCEEDED && all_states[j] == TS_QUEUED;
			CHECK(task_can_move(all_states[i], all_states[j]) == retry);
		}
	}
}

static void test_names_parse_back(void)
{
	for (int i = 0; i < NSTATES; i++)
		CHECK(task_state_parse(task_state_name(all_states[i])) == all_states[i]);
	CHECK(task_state_parse("done") == -1);
	CHECK(task_kind_parse("load") == TASK_LOAD);
	CHECK(task_kind_parse("purge") == TASK_PURGE);
	CHECK(task_kind_parse("Load") == -1);
	CHECK(strcmp(task_notify_name(NOTIFY_PENDING), "pending") == 0);
	CHECK(strcmp(task_notify_name(NOTIFY_DELIVERED), "delivered") == 0);
	CHECK(strcmp(task_notify_name(NOTIFY_FAILED), "failed") == 0);
	CHECK(strcmp(task_notify_name(7), "unknown") == 0);
}

static void test_queued_task_can_start_or_be_cancelled(void)
{
	CHECK(task_can_move(TS_QUEUED, TS_RUNNING));
	CHECK(task_can_move(TS_QUEUED, TS_CANCELLED));
	CHECK(!task_can_move(TS_QUEUED, TS_QUEUED));
	CHECK(!task_can_move(TS_QUEUED, TS_RETRY));
	CHECK(!task_can_move(TS_QUEUED, TS_SUCCEEDED));
	CHECK(!task_can_move(TS_QUEUED, TS_FAILED));
}

static void test_running_task_ends_retries_or_is_requeued(void)
{
	CHECK(task_can_move(TS_RUNNING, TS_SUCCEEDED));
	CHECK(task_can_move(TS_RUNNING, TS_FAILED));
	CHECK(task_can_move(TS_RUNNING, TS_RETRY));
	CHECK(task_can_move(TS_RUNNING, TS_QUEUED));
	CHECK(!task_can_move(TS_RUNNING, TS_RUNNING));
}

static void test_retry_waits_to_run_again_or_is_cancelled(void)
{
	CHECK(task_can_move(TS_RETRY, TS_RUNNING));
	CHECK(task_can_move(TS_RETRY, TS_CANCELLED));
	CHECK(!task_can_move(TS_RETRY, TS_QUEUED));
	CHECK(!task_can_move(TS_RETRY, TS_RETRY));
	CHECK(!task_can_move(TS_RETRY, TS_SUCCEEDED));
	CHECK(!task_can_move(TS_RETRY, TS_FAILED));
}

static void test_unknown_states_go_nowhere(void)
{
	CHECK(!task_can_move(-1, TS_RUNNING));
	CHECK(!task_can_move(99, TS_RUNNING));
	CHECK(!task_is_final(-1));
	CHECK(!task_is_final(99));
}

static void test_every_state_and_kind_has_a_name(void)
{
	CHECK_STR(task_state_name(TS_QUEUED), "queued");
	CHECK_STR(task_state_name(TS_RUNNING), "running");
	CHECK_STR(task_state_name(TS_RETRY), "retry");
	CHECK_STR(task_state_name(TS_SUCCEEDED), "succeeded");
	CHECK_STR(task_state_name(TS_FAILED), "failed");
	CHECK_STR(task_state_name(TS_CANCELLED), "cancelled");
	CHECK_STR(task_kind_name(TASK_LOAD), "load");
	CHECK_STR(task_kind_name(TASK_PURGE), "purge");
}

static void test_clear_frees_and_zeroes(void)
{
	struct task t = { .kind = TASK_LOAD, .state = TS_FAILED, .attempts = 3 };
	t.source = util_strdup("file:///srv/ingest/a.ts");
	t.destination = util_strdup("a.ts");
	t.dest_path = util_strdup("a.ts");
	t.reason = util_strdup("source asset does not exist");
	task_clear(&t);
	CHECK(t.source == NULL && t.destination == NULL && t.dest_path == NULL);
	CHECK(t.reason == NULL && t.result == NULL && t.note == NULL);
	CHECK(t.kind == 0 && t.state == 0 && t.attempts == 0);
	task_clear(&t);
}

int main(void)
{
	RUN(test_unfinished_states_read_in_progress);
	RUN(test_succeeded_reads_success);
	RUN(test_failed_and_cancelled_read_failed);
	RUN(test_only_succeeded_failed_and_cancelled_are_final);
	RUN(test_final_states_go_nowhere_but_an_operators_retry);
	RUN(test_names_parse_back);
	RUN(test_queued_task_can_start_or_be_cancelled);
	RUN(test_running_task_ends_retries_or_is_requeued);
	RUN(test_retry_waits_to_run_again_or_is_cancelled);
	RUN(test_unknown_states_go_nowhere);
	RUN(test_every_state_and_kind_has_a_name);
	RUN(test_clear_frees_and_zeroes);
	return HARNESS_END("test_task");
}

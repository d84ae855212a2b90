/*
 * task.c - the task state machine and what the WFM sees of it.
 *
 * Internally a task is queued, running, waiting to retry, or final
 * (succeeded, failed, cancelled). APUBI knows only IN_PROGRESS, SUCCESS and
 * FAILED; the mapping lives here and nowhere else.
 */
#include "apubid.h"

#include <stdlib.h>
#include <string.h>

const char *task_apubi_status(int state)
{
	switch (state) {
	case TS_SUCCEEDED:
		return "SUCCESS";
	case TS_FAILED:
	case TS_CANCELLED:
		return "FAILED";
	default:
		return "IN_PROGRESS";
	}
}

const char *task_state_name(int state)
{
	static const char *const names[] = { "queued", "running", "retry",
					     "succeeded", "failed", "cancelled" };
	if (state < 0 || state > TS_CANCELLED)
		return "unknown";
	return names[state];
}

const char *task_kind_name(int kind)
{
	return kind == TASK_LOAD ? "load" : kind == TASK_PURGE ? "purge" : "unknown";
}

int task_state_parse(const char *name)
{
	for (int i = TS_QUEUED; i <= TS_CANCELLED; i++)
		if (strcmp(name, task_state_name(i)) == 0)
			return i;
	return -1;
}

int task_kind_parse(const char *name)
{
	if (strcmp(name, "load") == 0)
		return TASK_LOAD;
	if (strcmp(name, "purge") == 0)
		return TASK_PURGE;
	return -1;
}

const char *task_notify_name(int notify_state)
{
	static const char *const names[] = { "none", "pending", "delivered", "failed" };
	if (notify_state < NOTIFY_NONE || notify_state > NOTIFY_FAILED)
		return "unknown";
	return names[notify_state];
}

int task_is_final(int state)
{
	return state == TS_SUCCEEDED || state == TS_FAILED || state == TS_CANCELLED;
}

int task_can_move(int from, int to)
{
	switch (from) {
	case TS_QUEUED:
		return to == TS_RUNNING || to == TS_CANCELLED;
	case TS_RUNNING:
		return to == TS_SUCCEEDED || to == TS_FAILED || to == TS_RETRY ||
		       to == TS_QUEUED || to == TS_CANCELLED;
	case TS_RETRY:
		return to == TS_RUNNING || to == TS_CANCELLED;
	case TS_FAILED:
	case TS_CANCELLED:
		return to == TS_QUEUED;
	default:
		return 0;
	}
}

void task_clear(struct task *t)
{
	free(t->source);
	free(t->destination);
	free(t->dest_path);
	free(t->result);
	free(t->reason);
	free(t->note);
	free(t->notify_error);
	free(t->rule);
	free(t->rule_fail);
	free(t->rule_result);
	memset(t, 0, sizeof *t);
}

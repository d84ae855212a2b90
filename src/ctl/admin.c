/*
 * admin.c - apubictl's store commands: tasks, show, retry, cancel, prune.
 *
 * They open the SQLite store named by an apubid.conf (-c) or --store
 * through the daemon's own store_* functions, beside a running daemon:
 * the store is WAL and every write is one transaction, so nothing here
 * needs the daemon's cooperation. A queued task changed here is seen by
 * the daemon's workers within a second; a running task that is cancelled
 * is stopped by its worker, which polls the flag.
 *
 * Invariants: a store is opened, never created (admin_store_open); text
 * read from it is printed through display_safe, so a hostile task cannot
 * drive the operator's terminal, and URLs through url_mask; a refused
 * action says why and exits 7 (no such task) or 8 (not in this state).
 */
#include "ctl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Opens the store of the configuration, or the one --store names (a
 * SQLite file, or a PostgreSQL URL). A SQLite store must exist already: a
 * typo in a path must not leave an empty store behind. */
int admin_store_open(const struct ctl_opts *o, const struct config *cfg, struct store **s)
{
	struct config sc = *cfg;
	if (o->store) {
		int url = strncmp(o->store, "postgresql://", 13) == 0 ||
			  strncmp(o->store, "postgres://", 11) == 0;
		sc.store_url = url ? (char *)o->store : NULL;
		sc.store_path = url ? cfg->store_path : (char *)o->store;
	}
	char err[1024];
	if (sc.store_url) {
		*s = store_open(&sc, err, sizeof err);
		if (!*s) {
			fprintf(stderr, "apubictl: %s\n", err);
			return CTL_STORE;
		}
		return CTL_OK;
	}
	const char *path = sc.store_path;
	struct stat st;
	if (stat(path, &st) < 0) {
		fprintf(stderr, "apubictl: store %s: %s\n", path, strerror(errno));
		return CTL_STORE;
	}
	if (!S_ISREG(st.st_mode)) {
		fprintf(stderr, "apubictl: store %s: not a regular file\n", path);
		return CTL_STORE;
	}
	*s = store_open(&sc, err, sizeof err);
	if (!*s) {
		fprintf(stderr, "apubictl: store %s: %s\n", path, err);
		return CTL_STORE;
	}
	return CTL_OK;
}

static int admin_tasks(struct store *s, const struct ctl_opts *o)
{
	struct task_filter f = { o->state, o->kind, o->older_ms > 0 ? o->older_ms : 0,
				 o->newer_ms > 0 ? o->newer_ms : 0, o->before, o->limit };
	if (o->json) {
		char *out = NULL;
		if (view_list(s, &f, VIEW_JSON, &out) < 0) {
			fprintf(stderr, "apubictl: cannot list the tasks\n");
			return CTL_STORE;
		}
		fputs(out, stdout);
		if (*out && out[strlen(out) - 1] != '\n')
			putchar('\n');
		free(out);
		return CTL_OK;
	}
	struct task *t = NULL;
	int n = 0;
	if (store_list(s, &f, &t, &n) < 0) {
		fprintf(stderr, "apubictl: cannot list the tasks\n");
		return CTL_STORE;
	}
	printf("%-36s  %-5s  %-9s  %-11s  %-20s  %3s  %-30s  %s\n", "ID", "KIND", "STATE",
	       "STATUS", "CREATED", "ATT", "DESTINATION", "REASON");
	for (int i = 0; i < n; i++) {
		char c[40];
		char *m = url_mask(t[i].destination ? t[i].destination : "");
		char *d = display_safe(m);
		char *r = display_safe(t[i].reason ? t[i].reason : t[i].note ? t[i].note : "");
		/* Truncate on a UTF-8 boundary. */
		if (strlen(r) > 60) {
			size_t k = 57;
			while (k > 0 && ((unsigned char)r[k] & 0xc0) == 0x80)
				k--;
			strcpy(r + k, "...");
		}
		printf("%-36s  %-5s  %-9s  %-11s  %-20s  %3d  %-30s  %s\n", t[i].id,
		       task_kind_name(t[i].kind), task_state_name(t[i].state),
		       task_apubi_status(t[i].state), display_time(t[i].created_ms, 0, c, sizeof c),
		       t[i].attempts, d, r);
		free(m);
		free(d);
		free(r);
	}
	int limit = o->limit > 0 ? o->limit : 100;
	if (n == limit && n > 0)
		fprintf(stderr, "(more may follow: --before %" PRId64 ")\n", t[n - 1].seq);
	task_free_all(t, n);
	return CTL_OK;
}

static int admin_show(struct store *s, const struct ctl_opts *o, const char *id)
{
	if (o->json) {
		char *out = NULL;
		int rc = view_task(s, id, VIEW_JSON, 0, &out);
		if (rc == 1) {
			fprintf(stderr, "apubictl: no task %s in the store\n", id);
			return CTL_NO_TASK;
		}
		if (rc < 0) {
			fprintf(stderr, "apubictl: cannot read task %s\n", id);
			return CTL_STORE;
		}
		fputs(out, stdout);
		if (*out && out[strlen(out) - 1] != '\n')
			putchar('\n');
		free(out);
		return CTL_OK;
	}
	struct task t;
	int rc = store_get(s, id, &t);
	if (rc == 1) {
		fprintf(stderr, "apubictl: no task %s in the store\n", id);
		return CTL_NO_TASK;
	}
	if (rc < 0) {
		fprintf(stderr, "apubictl: cannot read task %s\n", id);
		return CTL_STORE;
	}
	struct task_event *ev = NULL;
	struct attempt *at = NULL;
	struct item *it = NULL;
	int nev = 0, nat = 0, nit = 0;
	if (store_events(s, id, &ev, &nev) < 0 || store_attempts(s, id, &at, &nat) < 0 ||
	    store_items(s, id, &it, &nit) < 0) {
		fprintf(stderr, "apubictl: cannot read the history of task %s\n", id);
		task_event_free_all(ev, nev);
		attempt_free_all(at, nat);
		item_free_all(it, nit);
		task_clear(&t);
		return CTL_STORE;
	}

	char b1[40], b2[40];
	printf("Task %s\n", t.id);
	display_field("kind:", task_kind_name(t.kind), 0);
	char *seq = util_printf("%" PRId64, t.seq);
	display_field("seq:", seq, 0);
	free(seq);
	char *st = util_printf("%s (state %s%s)", task_apubi_status(t.state),
			       task_state_name(t.state),
			       t.cancel_requested && t.state == TS_RUNNING ? ", cancel requested" : "");
	display_field("status:", st, 0);
	free(st);
	if (t.kind == TASK_LOAD)
		display_field("source:", t.source, 1);
	display_field("destination:", t.destination, 1);
	if (t.dest_path) {
		char *dp = util_printf("%s%s (under the destination root)", t.dest_path,
				       t.dest_is_dir ? "/" : "");
		display_field("path:", dp, 0);
		free(dp);
	}
	display_field("result:", t.result, 1);
	display_field("reason:", t.reason, 0);
	display_field("note:", t.note, 0);
	display_field("created:", display_time(t.created_ms, 1, b1, sizeof b1), 0);
	display_field("updated:", display_time(t.updated_ms, 1, b1, sizeof b1), 0);
	display_field("first start:", display_time(t.first_started_ms, 1, b1, sizeof b1), 0);
	if (t.state == TS_RETRY)
		display_field("next attempt:", display_time(t.next_attempt_ms, 1, b1, sizeof b1), 0);
	char ahead[TASKID_LEN];
	if ((t.state == TS_QUEUED || t.state == TS_RETRY) && store_waiting_for(s, id, ahead) == 0) {
		char *w = util_printf("%s (accepted earlier, on an overlapping destination)",
				      ahead);
		display_field("waiting for:", w, 0);
		free(w);
	}
	char *att = t.attempt_base > 0
			    ? util_printf("%d (%d before an operator's retry)", t.attempts,
					  t.attempt_base)
			    : util_printf("%d", t.attempts);
	display_field("attempts:", att, 0);
	free(att);
	if (t.kind == TASK_LOAD) {
		char *p = util_printf("%s of %s, %d of %d files",
				      display_bytes(t.bytes_done, b1, sizeof b1),
				      display_bytes(t.bytes_total, b2, sizeof b2), t.files_done,
				      t.files_total);
		display_field("progress:", p, 0);
		free(p);
	}
	char *nt;
	if (t.notify_state == NOTIFY_NONE)
		nt = util_strdup("none");
	else if (t.notify_state == NOTIFY_PENDING)
		nt = util_printf("pending, %d attempt%s made, next at %s", t.notify_attempts,
				 t.notify_attempts == 1 ? "" : "s",
				 display_time(t.notify_next_ms, 1, b1, sizeof b1));
	else
		nt = util_printf("%s at %s after %d attempt%s", task_notify_name(t.notify_state),
				 display_time(t.notify_ms, 1, b1, sizeof b1), t.notify_attempts,
				 t.notify_attempts == 1 ? "" : "s");
	display_field("notification:", nt, 0);
	free(nt);
	if (t.notify_error)
		display_field("notify error:", t.notify_error, 1);
	if (t.rule) {
		/* A [staging] rule shaped this task: say how. */
		char polls[64] = "";
		if (t.rule_polls < 0)
			snprintf(polls, sizeof polls, ", IN_PROGRESS for ever");
		else if (t.rule_polls > 0)
			snprintf(polls, sizeof polls, ", %d IN_PROGRESS answer%s left", t.rule_polls,
				 t.rule_polls == 1 ? "" : "s");
		char *r = util_printf("%s%s%s%s%s%s", t.rule, t.rule_fail ? ", fails: " : "",
				      t.rule_fail ? t.rule_fail : "",
				      t.rule_result ? ", answers DestinationAsset \"" : "",
				      t.rule_result ? t.rule_result : "", t.rule_result ? "\"" : "");
		char *full = util_printf("%s%s", r, polls);
		display_field("staging rule:", full, 1);
		free(full);
		free(r);
	}

	printf("\nHistory:\n");
	if (nev == 0)
		printf("  (none recorded)\n");
	for (int i = 0; i < nev; i++) {
		char *d = display_safe(ev[i].detail ? ev[i].detail : "");
		printf("  %s  %-9s  %s\n", display_time(ev[i].at_ms, 1, b1, sizeof b1),
		       task_state_name(ev[i].state), d);
		free(d);
	}

	printf("\nAttempts:\n");
	if (nat == 0)
		printf("  (none yet)\n");
	for (int i = 0; i < nat; i++) {
		char *e = display_safe(at[i].error ? at[i].error : "ok");
		char dur[32] = "";
		if (at[i].ended_ms > 0 && at[i].started_ms > 0)
			snprintf(dur, sizeof dur, " (%.1f s)",
				 (double)(at[i].ended_ms - at[i].started_ms) / 1000);
		printf("  #%-3d %s%s  %s\n", at[i].n, display_time(at[i].started_ms, 1, b1, sizeof b1),
		       dur, e);
		free(e);
	}

	if (t.kind == TASK_LOAD) {
		printf("\nItems:\n");
		if (nit == 0)
			printf("  (none listed yet)\n");
		static const char *const istates[] = { "pending", "done", "failed" };
		for (int i = 0; i < nit; i++) {
			char *p = display_safe(*it[i].path ? it[i].path : "(the asset itself)");
			printf("  %-4d %-7s %10s  %s%s\n", it[i].seq,
			       it[i].state >= 0 && it[i].state <= 2 ? istates[it[i].state] : "?",
			       it[i].is_dir ? "dir" : display_bytes(it[i].size, b1, sizeof b1), p,
			       it[i].is_dir ? "/" : "");
			if (it[i].sha256)
				printf("       sha256 %s\n", it[i].sha256);
			if (it[i].error) {
				char *e = display_safe(it[i].error);
				printf("       error: %s\n", e);
				free(e);
			}
			free(p);
		}
	}
	task_event_free_all(ev, nev);
	attempt_free_all(at, nat);
	item_free_all(it, nit);
	task_clear(&t);
	return CTL_OK;
}

/* After a refused operator action: a task in a state that does not allow
 * it (exit 8), or trouble with the store (exit 6). */
static int admin_refused(struct store *s, int cmd, const char *id, const char *err)
{
	struct task t;
	int rc = store_get(s, id, &t);
	char *e = display_safe(err);
	fprintf(stderr, "apubictl: %s\n", e);
	free(e);
	if (rc == 1)
		return CTL_NO_TASK;
	if (rc < 0)
		return CTL_STORE;
	int refused = cmd == CMD_RETRY ? t.state != TS_FAILED && t.state != TS_CANCELLED
				       : task_is_final(t.state);
	task_clear(&t);
	return refused ? CTL_REFUSED : CTL_STORE;
}

int admin_command(int cmd, const struct ctl_opts *o, char **args)
{
	/* show, retry and cancel name a task: read its TaskId as SOAP and the
	 * task views do, in any case. */
	char id[TASKID_LEN];
	if (cmd == CMD_SHOW || cmd == CMD_RETRY || cmd == CMD_CANCEL) {
		if (util_taskid_parse(args[0], strlen(args[0]), id) < 0) {
			char *e = display_safe(args[0]);
			int rc = ctl_usage_error("%s: not a TaskId (a UUID such as "
						 "3F2B8C1E-6A0D-4C55-9E1B-0D7A2C4F9B10)", e);
			free(e);
			return rc;
		}
		args[0] = id;
	}
	struct config cfg;
	int code = ctl_config(o, &cfg);
	if (code != CTL_OK)
		return code;
	struct store *s = NULL;
	if ((code = admin_store_open(o, &cfg, &s)) != CTL_OK) {
		config_free(&cfg);
		return code;
	}
	char err[1024] = "";
	int rc;
	switch (cmd) {
	case CMD_TASKS:
		code = admin_tasks(s, o);
		break;
	case CMD_SHOW:
		code = admin_show(s, o, args[0]);
		break;
	case CMD_RETRY:
		rc = store_admin_retry(s, args[0], err, sizeof err);
		if (rc == 0) {
			printf("task %s queued again\n", args[0]);
		} else if (rc == 1) {
			fprintf(stderr, "apubictl: no task %s in the store\n", args[0]);
			code = CTL_NO_TASK;
		} else {
			code = admin_refused(s, cmd, args[0], err);
		}
		break;
	case CMD_CANCEL: {
		int was_running = 0;
		rc = store_admin_cancel(s, args[0],
					o->reason ? o->reason : "cancelled by an operator",
					cfg.notify_url != NULL, &was_running, err, sizeof err);
		if (rc == 0 && was_running)
			printf("task %s is running: apubid stops it within about a second "
			       "and records it cancelled\n", args[0]);
		else if (rc == 0)
			printf("task %s cancelled\n", args[0]);
		else if (rc == 1) {
			fprintf(stderr, "apubictl: no task %s in the store\n", args[0]);
			code = CTL_NO_TASK;
		} else {
			code = admin_refused(s, cmd, args[0], err);
		}
		break;
	}
	case CMD_PRUNE: {
		int64_t age = o->older_ms;
		if (age < 0) {
			if (cfg.retention_days <= 0) {
				code = ctl_usage_error("[store] retention_days is 0 (keep every "
						       "task): give --older-than");
				break;
			}
			age = (int64_t)cfg.retention_days * 86400000;
		}
		int64_t n = store_prune(s, util_now_ms() - age);
		if (n < 0) {
			fprintf(stderr, "apubictl: pruning failed\n");
			code = CTL_STORE;
		} else {
			printf("pruned %" PRId64 " finished task%s\n", n, n == 1 ? "" : "s");
		}
		break;
	}
	}
	store_close(s);
	config_free(&cfg);
	return code;
}

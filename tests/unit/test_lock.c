/*
 * test_lock.c - lock.c: one process at a time holds a store's lock.
 *
 * POSIX record locks belong to a process (a second lock_take in the same
 * process would succeed), so the contender is a forked child, which
 * reports through its exit status and a pipe.
 */
#include "apubid.h"
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64], store[128], lockfile[160];

/* Runs lock_take in a child: 0 when it got the lock, 1 when refused (the
 * reason in msg), -1 when the child could not run. */
static int contend(char *msg, size_t msglen)
{
	int fd[2];
	if (pipe(fd) < 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		/* The child starts with the parent's descriptor but not its
		 * lock: forget the descriptor (closing it in the child leaves
		 * the parent's lock alone). */
		lock_release();
		char err[512] = "";
		int rc = lock_take(store, err, sizeof err);
		if (write(fd[1], err, strlen(err)) < 0)
			_exit(3);
		_exit(rc == 0 ? 0 : 1);
	}
	close(fd[1]);
	ssize_t n = read(fd[0], msg, msglen - 1);
	msg[n > 0 ? n : 0] = '\0';
	close(fd[0]);
	int st;
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) > 1)
		return -1;
	return WEXITSTATUS(st);
}

static void test_a_second_process_is_refused_with_the_holders_pid(void)
{
	char err[512], msg[512], want[512];
	CHECK(lock_take(store, err, sizeof err) == 0);
	CHECK(contend(msg, sizeof msg) == 1);
	snprintf(want, sizeof want, "store %s is in use by apubid pid %ld (lock %s)", store,
		 (long)getpid(), lockfile);
	CHECK_STR(msg, want);
	/* The holder's pid is in the file, for people. */
	FILE *f = fopen(lockfile, "r");
	CHECK(f);
	long pid = 0;
	CHECK(fscanf(f, "%ld", &pid) == 1);
	fclose(f);
	CHECK(pid == (long)getpid());
	lock_release();
	CHECK(contend(msg, sizeof msg) == 0);
}

static void test_the_lock_file_is_never_followed_through_a_link(void)
{
	char target[160], err[512];
	lock_release();
	snprintf(target, sizeof target, "%s/target", dir);
	FILE *f = fopen(target, "w");
	CHECK(f);
	fputs("keep me\n", f);
	fclose(f);
	unlink(lockfile);
	CHECK(symlink(target, lockfile) == 0);
	CHECK(lock_take(store, err, sizeof err) == -1);
	CHECK(strstr(err, lockfile) != NULL);
	f = fopen(target, "r");
	CHECK(f);
	char buf[32] = "";
	CHECK(fgets(buf, sizeof buf, f) != NULL);
	fclose(f);
	CHECK_STR(buf, "keep me\n");
	unlink(lockfile);
}

int main(void)
{
	snprintf(dir, sizeof dir, "/tmp/apubid-test-lock-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	snprintf(store, sizeof store, "%s/apubid.db", dir);
	snprintf(lockfile, sizeof lockfile, "%s.lock", store);
	log_set_level(LOG_ERROR);
	RUN(test_a_second_process_is_refused_with_the_holders_pid);
	RUN(test_the_lock_file_is_never_followed_through_a_link);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
	return HARNESS_END("test_lock");
}

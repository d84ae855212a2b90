/*
 * test_xfer_file.c - the local-filesystem transfer backend, as the WFM
 * would see it through the published tree: packages arrive whole and
 * byte-identical, republishing replaces, purging removes, nothing is
 * written or removed outside the root, and no side file (temp, staging,
 * purge) outlives a task whatever its outcome.
 *
 * Each test gets fresh directories under /tmp: an ingest area (sources),
 * the destination root, and an "outside" directory that symbolic links
 * point at and that must stay untouched.
 */
#include "apubid.h"
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define TASKID "0F1E2D3C-4B5A-4978-8695-A4B3C2D1E0F0"

static char ingest[64], root[64], outside[64];
static char err[1024];
static volatile sig_atomic_t no_stop;

/* ---- helpers ---------------------------------------------------------- */

/* Formats a path into one of a few rotating buffers, so a test can hold a
 * handful of paths at once without freeing them. */
static const char *P(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *P(const char *fmt, ...)
{
	static char bufs[8][4096];
	static int next;
	char *b = bufs[next++ % 8];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(b, sizeof bufs[0], fmt, ap);
	va_end(ap);
	return b;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	remove(path);
	return 0;
}

static void rm_rf(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void fx_teardown(void)
{
	if (ingest[0])
		rm_rf(ingest);
	if (root[0])
		rm_rf(root);
	if (outside[0])
		rm_rf(outside);
	ingest[0] = root[0] = outside[0] = '\0';
}

/* Each test starts from fresh directories; the previous test's are removed
 * here, so a test that stops at a failed CHECK still gets cleaned up. */
static int fx_setup(void)
{
	fx_teardown();
	strcpy(ingest, "/tmp/apubid-xf-in-XXXXXX");
	strcpy(root, "/tmp/apubid-xf-root-XXXXXX");
	strcpy(outside, "/tmp/apubid-xf-out-XXXXXX");
	err[0] = '\0';
	return mkdtemp(ingest) && mkdtemp(root) && mkdtemp(outside) ? 0 : -1;
}

static int write_bytes(const char *path, const void *data, size_t n)
{
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	if (fd < 0)
		return -1;
	ssize_t w = write(fd, data, n);
	close(fd);
	return w == (ssize_t)n ? 0 : -1;
}

static int write_text(const char *path, const char *text)
{
	return write_bytes(path, text, strlen(text));
}

/* A file of `n` pseudo-random bytes (xorshift), so a copy that drops or
 * reorders a block cannot match by accident. */
static int write_random(const char *path, size_t n, uint64_t seed)
{
	unsigned char *b = malloc(n ? n : 1);
	if (!b)
		return -1;
	uint64_t x = seed | 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		b[i] = (unsigned char)(x >> 24);
	}
	int rc = write_bytes(path, b, n);
	free(b);
	return rc;
}

/* Reads a whole file; *n receives its size. NULL when it cannot. */
static unsigned char *slurp(const char *path, size_t *n)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW);
	if (fd < 0)
		return NULL;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return NULL;
	}
	unsigned char *b = malloc((size_t)st.st_size + 1);
	size_t got = 0;
	while (b && got < (size_t)st.st_size) {
		ssize_t r = read(fd, b + got, (size_t)st.st_size - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	if (!b || got != (size_t)st.st_size) {
		free(b);
		return NULL;
	}
	b[got] = '\0';
	*n = got;
	return b;
}

static int same_file(const char *a, const char *b)
{
	size_t na, nb;
	unsigned char *x = slurp(a, &na), *y = slurp(b, &nb);
	int same = x && y && na == nb && memcmp(x, y, na) == 0;
	free(x);
	free(y);
	return same;
}

static int file_is(const char *path, const char *text)
{
	size_t n;
	unsigned char *b = slurp(path, &n);
	int same = b && n == strlen(text) && memcmp(b, text, n) == 0;
	free(b);
	return same;
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* 1 when both trees hold the same names, types and bytes, and nothing
 * else (no links, no special files). */
static int same_tree(const char *a, const char *b)
{
	if (count_entries(a) != count_entries(b) || count_entries(a) < 0)
		return 0;
	DIR *d = opendir(a);
	if (!d)
		return 0;
	int same = 1;
	struct dirent *de;
	while (same && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char pa[4096], pb[4096];
		if ((size_t)snprintf(pa, sizeof pa, "%s/%s", a, de->d_name) >= sizeof pa ||
		    (size_t)snprintf(pb, sizeof pb, "%s/%s", b, de->d_name) >= sizeof pb) {
			same = 0;
			break;
		}
		struct stat sa, sb;
		if (lstat(pa, &sa) < 0 || lstat(pb, &sb) < 0 ||
		    (sa.st_mode & S_IFMT) != (sb.st_mode & S_IFMT))
			same = 0;
		else if (S_ISDIR(sa.st_mode))
			same = same_tree(pa, pb);
		else if (S_ISREG(sa.st_mode))
			same = same_file(pa, pb);
		else
			same = 0;
	}
	closedir(d);
	return same;
}

/* How many names in `dir` and below look like apubid's side files
 * (".<name>.apubid-<taskid>.tmp|.stage|.purge|.old"). */
static int leftovers(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (strstr(de->d_name, ".apubid-")) {
			fprintf(stderr, "  leftover: %s/%s\n", dir, de->d_name);
			n++;
		}
		char p[4096];
		struct stat st;
		if ((size_t)snprintf(p, sizeof p, "%s/%s", dir, de->d_name) < sizeof p &&
		    lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
			n += leftovers(p);
	}
	closedir(d);
	return n;
}

static int exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

static int is_dir(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int load(const char *src, const char *rel)
{
	return xfer_file_load(src, root, rel, TASKID, &no_stop, err, sizeof err);
}

/* A small package: two files, a nested one with a non-ASCII UTF-8 name, and
 * two empty directories (one nested). */
static int make_package(const char *where)
{
	char dir[4096]; /* P's buffers rotate; keep our own copy */
	snprintf(dir, sizeof dir, "%s", where);
	if (mkdir(dir, 0755) < 0 || mkdir(P("%s/video", dir), 0755) < 0 ||
	    mkdir(P("%s/video/empty", dir), 0755) < 0 || mkdir(P("%s/empty", dir), 0755) < 0)
		return -1;
	return write_text(P("%s/manifest.mpd", dir), "<MPD/>\n") ||
	       write_random(P("%s/video/café-日本.ts", dir), 300000, 7) ||
	       write_random(P("%s/video/seg-001.ts", dir), 188 * 1000, 8) ||
	       write_bytes(P("%s/video/zero.ts", dir), "", 0);
}

/* ---- loads ------------------------------------------------------------ */

static void test_publish_file_is_byte_identical(void)
{
	CHECK(fx_setup() == 0);
	/* A few MiB and an odd tail, so both whole chunks and a short last
	 * one are copied. */
	CHECK(write_random(P("%s/movie.ts", ingest), 3 * 1024 * 1024 + 123, 42) == 0);
	CHECK(load(P("%s/movie.ts", ingest), "dir/sub/movie.ts") == XFER_OK);
	CHECK_STR(err, "");
	CHECK(same_file(P("%s/movie.ts", ingest), P("%s/dir/sub/movie.ts", root)));
	CHECK(count_entries(P("%s/dir/sub", root)) == 1);
	CHECK(leftovers(root) == 0);
}

static void test_publish_across_file_systems_is_byte_identical(void)
{
	CHECK(fx_setup() == 0);
	/* /dev/shm is usually tmpfs while /tmp is not: the kernel then refuses
	 * copy_file_range (EXDEV) and the read/write path does the copy. Where
	 * both are one file system this is just another publish. */
	char shm[] = "/dev/shm/apubid-xf-XXXXXX";
	if (!mkdtemp(shm))
		return;
	const char *src = P("%s/movie.ts", shm);
	int made = write_random(src, 2 * 1024 * 1024 + 7, 11);
	int rc = made == 0 ? load(src, "movie.ts") : XFER_FAILED;
	int same = rc == XFER_OK && same_file(src, P("%s/movie.ts", root));
	rm_rf(shm);
	CHECK(made == 0);
	CHECK(rc == XFER_OK);
	CHECK(same);
	CHECK(leftovers(root) == 0);
}

static void test_publish_empty_file(void)
{
	CHECK(fx_setup() == 0);
	CHECK(write_bytes(P("%s/empty.ts", ingest), "", 0) == 0);
	CHECK(load(P("%s/empty.ts", ingest), "empty.ts") == XFER_OK);
	CHECK(file_is(P("%s/empty.ts", root), ""));
	CHECK(leftovers(root) == 0);
}

static void test_publish_nested_directory_is_byte_identical(void)
{
	CHECK(fx_setup() == 0);
	CHECK(make_package(P("%s/pkg", ingest)) == 0);
	CHECK(load(P("%s/pkg", ingest), "vod/pkg") == XFER_OK);
	CHECK(same_tree(P("%s/pkg", ingest), P("%s/vod/pkg", root)));
	CHECK(is_dir(P("%s/vod/pkg/empty", root)));
	CHECK(is_dir(P("%s/vod/pkg/video/empty", root)));
	CHECK(exists(P("%s/vod/pkg/video/café-日本.ts", root)));
	CHECK(count_entries(P("%s/vod", root)) == 1);
	CHECK(leftovers(root) == 0);
}

static void test_publish_source_given_with_trailing_slash(void)
{
	CHECK(fx_setup() == 0);
	CHECK(make_package(P("%s/pkg", ingest)) == 0);
	CHECK(load(P("%s/pkg/", ingest), "pkg") == XFER_OK);
	CHECK(same_tree(P("%s/pkg", ingest), P("%s/pkg", root)));
}

static void test_republish_replaces_file(void)
{
	CHECK(fx_setup() == 0);
	CHECK(write_text(P("%s/a.ts", ingest), "first version\n") == 0);
	CHECK(load(P("%s/a.ts", ingest), "a.ts") == XFER_OK);
	CHECK(write_text(P("%s/a.ts", ingest), "second\n") == 0);
	CHECK(load(P("%s/a.ts", ingest), "a.ts") == XFER_OK);
	CHECK(file_is(P("%s/a.ts", root), "second\n"));
	CHECK(count_entries(root) == 1);
}

static void test_republish_directory_removes_files_not_in_new_package(void)
{
	CHECK(fx_setup() == 0);
	CHECK(make_package(P("%s/v1", ingest)) == 0);
	CHECK(load(P("%s/v1", ingest), "pkg") == XFER_OK);
	CHECK(mkdir(P("%s/v2", ingest), 0755) == 0);
	CHECK(write_text(P("%s/v2/manifest.mpd", ingest), "<MPD v2/>\n") == 0);
	CHECK(load(P("%s/v2", ingest), "pkg") == XFER_OK);
	CHECK(same_tree(P("%s/v2", ingest), P("%s/pkg", root)));
	CHECK(!exists(P("%s/pkg/video", root)));
	CHECK(count_entries(root) == 1);
	CHECK(leftovers(root) == 0);
}

static void test_republish_directory_over_empty_directory(void)
{
	CHECK(fx_setup() == 0);
	CHECK(mkdir(P("%s/pkg", root), 0755) == 0);
	CHECK(make_package(P("%s/pkg", ingest)) == 0);
	CHECK(load(P("%s/pkg", ingest), "pkg") == XFER_OK);
	CHECK(same_tree(P("%s/pkg", ingest), P("%s/pkg", root)));
	CHECK(leftovers(root) == 0);
}

static void test_file_replaces_directory(void)
{
	CHECK(fx_setup() == 0);
	CHECK(make_package(P("%s/pkg", ingest)) == 0);
	CHECK(load(P("%s/pkg", ingest), "asset") == XFER_OK);
	CHECK(write_text(P("%s/asset.ts", ingest), "now a file\n") == 0);
	CHECK(load(P("%s/asset.ts", ingest), "asset") == XFER_OK);
	CHECK(file_is(P("%s/asset", root), "now a file\n"));
	CHECK(count_entries(root) == 1);
	CHECK(leftovers(root) == 0);
}

static void test_directory_replaces_file(void)
{
	CHECK(fx_setup() == 0);
	CHECK(write_text(P("%s/asset.ts", ingest), "a file first\n") == 0);
	CHECK(load(P("%s/asset.ts", ingest), "asset") == XFER_OK);
	CHECK(make_package(P("%s/pkg", ingest)) == 0);
	CHECK(load(P("%s/pkg", ingest), "asset") == XFER_OK);
	CHECK(same_tree(P("%s/pkg", ingest), P("%s/asset", root)));
	CHECK(count_entries(root) == 1);
	CHECK(leftovers(root) == 0);
}

static void test_stale_side_files_of_a_crashed_attempt_are_replaced(void)
{
	CHECK(fx_setup() == 0);
	/* What a crash in the middle of this same task would have left. */
	CHECK(mkdir(P("%s/.pkg.apubid-%s.stage", root, TASKID), 0755) == 0);
	CHECK(write_text(P("%s/.pkg.apubid-%s.stage/half.ts", root, TASKID), "half") == 0);
	CHECK(write_text(P("%s/.a.ts.apubid-%s.tmp", root, TASKID), "half") == 0);
	CHECK(make_package(P("%s/pkg", ingest)) == 0);
	CHECK(write_text(P("%s/a.ts", ingest), "whole\n") == 0);
	CHECK(load(P("%s/pkg", ingest), "pkg") == XFER_OK);
	CHECK(load(P("%s/a.ts", ingest), "a.ts") == XFER_OK);
	CHECK(same_tree(P("%s/pkg", ingest), P("%s/pkg", root)));
	CHECK(file_is(P("%s/a.ts", root), "whole\n"));
	CHECK(leftovers(root) == 0);
}

/* ---- loads that must fail, and leave nothing behind ------------------- */

static void test_missing_source_fails_with_reason(void)
{
	CHECK(fx_setup() == 0);
	const char *src = P("%s/gone.ts", ingest);
	CHECK(load(src, "dir/gone.ts") == XFER_FAILED);
	CHECK_STR(err, P("source asset does not exist: %s", src));
	/* Nothing was created for an asset that cannot come. */
	CHECK(count_entries(root) == 0);
}

static void test_failed_write_leaves_no_temp_file_and_keeps_old_asset(void)
{
	CHECK(fx_setup() == 0);
	CHECK(write_text(P("%s/big.ts", ingest), "old\n") == 0);
	CHECK(load(P("%s/big.ts", ingest), "big.ts") == XFER_OK);
	CHECK(write_random(P("%s/big.ts", ingest), 3 * 1024 * 1024, 9) == 0);
	/* A file-size limit makes the kernel refuse the write with EFBIG, the
	 * same way a full disk refuses it with ENOSPC. */
	struct rlimit old, small = { 1024 * 1024, 1024 * 1024 };
	CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0);
	small.rlim_max = old.rlim_max;
	void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
	CHECK(setrlimit(RLIMIT_FSIZE, &small) == 0);
	int rc = load(P("%s/big.ts", ingest), "big.ts");
	setrlimit(RLIMIT_FSIZE, &old);
	signal(SIGXFSZ, prev);
	CHECK(rc == XFER_FAILED);
	CHECK_STR(err, "cannot write big.ts: File too large");
	CHECK(file_is(P("%s/big.ts", root), "old\n"));
	CHECK(count_entries(root) == 1);
}

static void test_failed_directory_publish_leaves_no_staging_and_keeps_old_asset(void)
{
	CHECK(fx_setup() == 0);
	CHECK(make_package(P("%s/v1", ingest)) == 0);
	CHECK(load(P("%s/v1", ingest), "pkg") == XFER_OK);
	CHECK(make_package(P("%s/v2", ingest)) == 0);
	CHECK(write_random(P("%s/v2/video/huge.ts", ingest), 2 * 1024 * 1024, 10) == 0);
	struct rlimit old, small = { 1024 * 1024, 1024 * 1024 };
	CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0);
	small.rlim_max = old.rlim_max;
	void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
	CHECK(setrlimit(RLIMIT_FSIZE, &small) == 0);
	int rc = load(P("%s/v2", ingest), "pkg");
	setrlimit(RLIMIT_FSIZE, &old);
	signal(SIGXFSZ, prev);
	CHECK(rc == XFER_FAILED);
	CHECK_STR(err, "cannot write pkg/video/huge.ts: File too large");
	CHECK(same_tree(P("%s/v1", ingest), P("%s/pkg", root)));
	CHECK(count_entries(root) == 1);
}

static void test_symlink_in_destination_path_is_refused(void)
{
	CHECK(fx_setup() == 0);
	CHECK(write_text(P("%s/x.ts", ingest), "payload\n") == 0);
	CHECK(symlink(outside, P("%s/evil", root)) == 0);
	CHECK(load(P("%s/x.ts", ingest), "evil/x.ts") == XFER_FAILED);
	CHECK_STR(err, "destination path crosses a symbolic link: evil");
	CHECK(count_entries(outside) == 0);
	/* Deeper down too, and for directory packages. */
	CHECK(mkdir(P("%s/a", root), 0755) == 0);
	CHECK(symlink(outside, P("%s/a/link", root)) == 0);
	CHECK(make_package(P("%s/pkg", ingest)) == 0);
	CHECK(load(P("%s/pkg", ingest), "a/link/b/pkg") == XFER_FAILED);
	CHECK_STR(err, "destination path crosses a symbolic link: a/link");
	CHECK(count_entries(outside) == 0);
}

static void test_symlink_at_destination_name_is_replaced_not_followed(void)
{
	CHECK(fx_setup() == 0);
	CHECK(write_text(P("%s/target.ts", outside), "outside\n") == 0);
	CHECK(symlink(P("%s/target.ts", outside), P("%s/a.ts", root)) == 0);
	CHECK(symlink(outside, P("%s/pkg", root)) == 0);
	CHECK(write_text(P("%s/a.ts", ingest), "inside\n") == 0);
	CHECK(make_package(P("%s/pkg", ingest)) == 0);
	CHECK(load(P("%s/a.ts", ingest), "a.ts") == XFER_OK);
	CHECK(load(P("%s/pkg", ingest), "pkg") == XFER_OK);
	CHECK(file_is(P("%s/a.ts", root), "inside\n"));
	CHECK(same_tree(P("%s/pkg", ingest), P("%s/pkg", root)));
	CHECK(file_is(P("%s/target.ts", outside), "outside\n"));
	CHECK(count_entries(outside) == 1);
	CHECK(leftovers(root) == 0);
}

static void test_symlink_in_source_tree_is_refused(void)
{
	CHECK(fx_setup() == 0);
	CHECK(make_package(P("%s/pkg", ingest)) == 0);
	CHECK(mkdir(P("%s/pkg/sub", ingest), 0755) == 0);
	CHECK(symlink("/etc/passwd", P("%s/pkg/sub/x", ingest)) == 0);
	CHECK(load(P("%s/pkg", ingest), "pkg") == XFER_FAILED);
	CHECK_STR(err, "source contains a symbolic link: sub/x");
	CHECK(count_entries(root) == 0);
}

static void test_source_that_is_a_symlink_is_refused(void)
{
	CHECK(fx_setup() == 0);
	CHECK(write_text(P("%s/real.ts", ingest), "x") == 0);
	CHECK(symlink(P("%s/real.ts", ingest), P("%s/link.ts", ingest)) == 0);
	CHECK(load(P("%s/link.ts", ingest), "a.ts") == XFER_FAILED);
	CHECK_STR(err, P("source asset is a symbolic link: %s/link.ts", ingest));
	CHECK(count_entries(root) == 0);
}

static void test_special_file_in_source_tree_is_refused(void)
{
	CHECK(fx_setup() == 0);
	CHECK(make_package(P("%s/pkg", ingest)) == 0);
	CHECK(mkfifo(P("%s/pkg/video/pipe", ingest), 0644) == 0);
	CHECK(load(P("%s/pkg", ingest), "pkg") == XFER_FAILED);
	CHECK_STR(err, "source contains a special file: video/pipe");
	CHECK(count_entries(root) == 0);
	/* A FIFO as the whole source must not hang the worker either. */
	CHECK(load(P("%s/pkg/video/pipe", ingest), "pipe") == XFER_FAILED);
	CHECK_STR(err, P("source asset is not a file or a directory: %s/pkg/video/pipe", ingest));
}

static void test_source_containing_the_destination_is_refused(void)
{
	CHECK(fx_setup() == 0);
	CHECK(make_package(P("%s/pkg", root)) == 0);
	CHECK(load(P("%s/pkg", root), "pkg/copy") == XFER_FAILED);
	CHECK(strstr(err, "source contains the destination") != NULL);
	CHECK(!exists(P("%s/pkg/copy", root)));
	CHECK(leftovers(root) == 0);
}

static void test_invalid_destination_paths_are_refused(void)
{
	CHECK(fx_setup() == 0);
	CHECK(write_text(P("%s/a.ts", ingest), "x") == 0);
	const char *bad[] = { "", "../a.ts", "a/../../a.ts", "a//b.ts", "/a.ts", "a/", ".", "a/./b" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK(load(P("%s/a.ts", ingest), bad[i]) == XFER_FAILED);
		CHECK(strncmp(err, "invalid destination path", 24) == 0);
	}
	CHECK(xfer_file_load(P("%s/a.ts", ingest), root, "a.ts", "../x", &no_stop, err,
			     sizeof err) == XFER_FAILED);
	CHECK(count_entries(root) == 0);
}

static void test_stop_before_start_returns_stopped_and_leaves_nothing(void)
{
	CHECK(fx_setup() == 0);
	volatile sig_atomic_t stop = 1;
	CHECK(make_package(P("%s/pkg", ingest)) == 0);
	CHECK(write_text(P("%s/a.ts", ingest), "x") == 0);
	CHECK(xfer_file_load(P("%s/pkg", ingest), root, "vod/pkg", TASKID, &stop, err,
			     sizeof err) == XFER_STOPPED);
	CHECK(xfer_file_load(P("%s/a.ts", ingest), root, "a.ts", TASKID, &stop, err,
			     sizeof err) == XFER_STOPPED);
	CHECK(count_entries(root) == 0);
	/* Stopped with an older version in place: it stays as it was. */
	CHECK(make_package(P("%s/old", ingest)) == 0);
	CHECK(load(P("%s/old", ingest), "pkg") == XFER_OK);
	CHECK(xfer_file_load(P("%s/pkg", ingest), root, "pkg", TASKID, &stop, err,
			     sizeof err) == XFER_STOPPED);
	CHECK(same_tree(P("%s/old", ingest), P("%s/pkg", root)));
	CHECK(leftovers(root) == 0);
}

/* ---- purges ----------------------------------------------------------- */

static void test_purge_of_file_removes_it(void)
{
	CHECK(fx_setup() == 0);
	CHECK(mkdir(P("%s/dir", root), 0755) == 0);
	CHECK(write_text(P("%s/dir/a.ts", root), "x") == 0);
	CHECK(write_text(P("%s/dir/keep.ts", root), "y") == 0);
	char *note = (char *)"unset";
	CHECK(xfer_file_purge(root, "dir/a.ts", TASKID, &note, err, sizeof err) == XFER_OK);
	CHECK(note == NULL);
	CHECK(!exists(P("%s/dir/a.ts", root)));
	CHECK(file_is(P("%s/dir/keep.ts", root), "y"));
}

static void test_purge_of_directory_removes_whole_tree(void)
{
	CHECK(fx_setup() == 0);
	CHECK(make_package(P("%s/pkg", ingest)) == 0);
	CHECK(load(P("%s/pkg", ingest), "vod/pkg") == XFER_OK);
	CHECK(write_text(P("%s/vod/other.ts", root), "stays") == 0);
	char *note = NULL;
	CHECK(xfer_file_purge(root, "vod/pkg", TASKID, &note, err, sizeof err) == XFER_OK);
	CHECK(note == NULL);
	CHECK(!exists(P("%s/vod/pkg", root)));
	CHECK(file_is(P("%s/vod/other.ts", root), "stays"));
	CHECK(count_entries(P("%s/vod", root)) == 1);
}

static void test_purge_of_absent_asset_succeeds_with_note(void)
{
	CHECK(fx_setup() == 0);
	char *note = NULL;
	CHECK(xfer_file_purge(root, "vod/none.ts", TASKID, &note, err, sizeof err) == XFER_OK);
	CHECK_STR(note, "nothing to purge: vod/none.ts was not there");
	free(note);
	note = NULL;
	CHECK(mkdir(P("%s/vod", root), 0755) == 0);
	CHECK(xfer_file_purge(root, "vod/none.ts", TASKID, &note, err, sizeof err) == XFER_OK);
	CHECK_STR(note, "nothing to purge: vod/none.ts was not there");
	free(note);
	note = NULL;
	/* A file where a directory of the path should be: nothing below it. */
	CHECK(write_text(P("%s/vod/file", root), "x") == 0);
	CHECK(xfer_file_purge(root, "vod/file/none.ts", TASKID, &note, err, sizeof err) ==
	      XFER_OK);
	CHECK_STR(note, "nothing to purge: vod/file/none.ts was not there");
	free(note);
	CHECK(file_is(P("%s/vod/file", root), "x"));
}

static void test_purge_does_not_follow_symlink(void)
{
	CHECK(fx_setup() == 0);
	CHECK(write_text(P("%s/precious.ts", outside), "keep me\n") == 0);
	CHECK(mkdir(P("%s/sub", outside), 0755) == 0);
	CHECK(symlink(outside, P("%s/link", root)) == 0);
	char *note = NULL;
	/* "link/" normalises to "link": the link itself is the asset. */
	CHECK(xfer_file_purge(root, "link", TASKID, &note, err, sizeof err) == XFER_OK);
	CHECK(note == NULL);
	CHECK(!exists(P("%s/link", root)));
	CHECK(file_is(P("%s/precious.ts", outside), "keep me\n"));
	CHECK(is_dir(P("%s/sub", outside)));
}

static void test_purge_through_symlinked_directory_is_refused(void)
{
	CHECK(fx_setup() == 0);
	CHECK(write_text(P("%s/precious.ts", outside), "keep me\n") == 0);
	CHECK(symlink(outside, P("%s/link", root)) == 0);
	char *note = NULL;
	CHECK(xfer_file_purge(root, "link/precious.ts", TASKID, &note, err, sizeof err) ==
	      XFER_FAILED);
	CHECK_STR(err, "destination path crosses a symbolic link: link");
	CHECK(note == NULL);
	CHECK(file_is(P("%s/precious.ts", outside), "keep me\n"));
}

static void test_purge_of_tree_does_not_follow_links_inside_it(void)
{
	CHECK(fx_setup() == 0);
	CHECK(write_text(P("%s/precious.ts", outside), "keep me\n") == 0);
	CHECK(mkdir(P("%s/pkg", root), 0755) == 0);
	CHECK(mkdir(P("%s/pkg/sub", root), 0755) == 0);
	CHECK(symlink(outside, P("%s/pkg/sub/to-dir", root)) == 0);
	CHECK(symlink(P("%s/precious.ts", outside), P("%s/pkg/to-file", root)) == 0);
	char *note = NULL;
	CHECK(xfer_file_purge(root, "pkg", TASKID, &note, err, sizeof err) == XFER_OK);
	CHECK(!exists(P("%s/pkg", root)));
	CHECK(file_is(P("%s/precious.ts", outside), "keep me\n"));
	CHECK(count_entries(outside) == 1);
	CHECK(count_entries(root) == 0);
}

static void test_purge_finishes_what_a_crashed_attempt_left(void)
{
	CHECK(fx_setup() == 0);
	CHECK(mkdir(P("%s/.pkg.apubid-%s.purge", root, TASKID), 0755) == 0);
	CHECK(write_text(P("%s/.pkg.apubid-%s.purge/rest.ts", root, TASKID), "x") == 0);
	CHECK(make_package(P("%s/pkg", root)) == 0);
	char *note = NULL;
	CHECK(xfer_file_purge(root, "pkg", TASKID, &note, err, sizeof err) == XFER_OK);
	CHECK(note == NULL);
	CHECK(count_entries(root) == 0);
}

int main(void)
{
	/* Reasons quote strerror texts; without setlocale they are the C
	 * locale's, which the expected strings below spell out. */
	RUN(test_publish_file_is_byte_identical);
	RUN(test_publish_across_file_systems_is_byte_identical);
	RUN(test_publish_empty_file);
	RUN(test_publish_nested_directory_is_byte_identical);
	RUN(test_publish_source_given_with_trailing_slash);
	RUN(test_republish_replaces_file);
	RUN(test_republish_directory_removes_files_not_in_new_package);
	RUN(test_republish_directory_over_empty_directory);
	RUN(test_file_replaces_directory);
	RUN(test_directory_replaces_file);
	RUN(test_stale_side_files_of_a_crashed_attempt_are_replaced);
	RUN(test_missing_source_fails_with_reason);
	RUN(test_failed_write_leaves_no_temp_file_and_keeps_old_asset);
	RUN(test_failed_directory_publish_leaves_no_staging_and_keeps_old_asset);
	RUN(test_symlink_in_destination_path_is_refused);
	RUN(test_symlink_at_destination_name_is_replaced_not_followed);
	RUN(test_symlink_in_source_tree_is_refused);
	RUN(test_source_that_is_a_symlink_is_refused);
	RUN(test_special_file_in_source_tree_is_refused);
	RUN(test_source_containing_the_destination_is_refused);
	RUN(test_invalid_destination_paths_are_refused);
	RUN(test_stop_before_start_returns_stopped_and_leaves_nothing);
	RUN(test_purge_of_file_removes_it);
	RUN(test_purge_of_directory_removes_whole_tree);
	RUN(test_purge_of_absent_asset_succeeds_with_note);
	RUN(test_purge_does_not_follow_symlink);
	RUN(test_purge_through_symlinked_directory_is_refused);
	RUN(test_purge_of_tree_does_not_follow_links_inside_it);
	RUN(test_purge_finishes_what_a_crashed_attempt_left);
	fx_teardown();
	return HARNESS_END("test_xfer_file");
}

/*
 * test_xfer_local.c - the local-filesystem transfer backend, as the WFM
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

/* ---- the load, as a worker runs it ------------------------------------- */

/* What a load reports, kept in memory the way the task store keeps it, so
 * that a second attempt of the same task sees what the first recorded. */
static struct item *rep_items;
static int rep_n;

static int rep_get(void *arg, struct item **v, int *n)
{
	(void)arg;
	*v = util_calloc((size_t)rep_n + 1, sizeof **v);
	for (int i = 0; i < rep_n; i++) {
		(*v)[i] = rep_items[i];
		(*v)[i].path = util_strdup(rep_items[i].path);
		(*v)[i].sha256 = util_strdup(rep_items[i].sha256);
		(*v)[i].error = util_strdup(rep_items[i].error);
		(*v)[i].version = util_strdup(rep_items[i].version);
	}
	*n = rep_n;
	return 0;
}

static int rep_set(void *arg, const struct item *v, int n)
{
	(void)arg;
	item_free_all(rep_items, rep_n);
	rep_items = util_calloc((size_t)n + 1, sizeof *rep_items);
	for (int i = 0; i < n; i++) {
		rep_items[i] = v[i];
		rep_items[i].path = util_strdup(v[i].path);
		rep_items[i].sha256 = util_strdup(v[i].sha256);
		rep_items[i].error = NULL;
		rep_items[i].version = util_strdup(v[i].version);
	}
	rep_n = n;
	return 0;
}

static int rep_version(void *arg, int seq, const char *version)
{
	(void)arg;
	free(rep_items[seq].version);
	rep_items[seq].version = util_strdup(version);
	return 0;
}

static int rep_done(void *arg, int seq, int64_t size, const char *sha256)
{
	(void)arg;
	rep_items[seq].state = ITEM_DONE;
	rep_items[seq].size = size;
	free(rep_items[seq].sha256);
	rep_items[seq].sha256 = util_strdup(sha256);
	return 0;
}

static void rep_failed(void *arg, int seq, const char *error)
{
	(void)arg, (void)seq, (void)error;
}

static void rep_progress(void *arg, int64_t bytes, int last)
{
	(void)arg, (void)bytes, (void)last;
}

static const struct xfer_report report = {
	.items = rep_get,
	.set_items = rep_set,
	.item_version = rep_version,
	.item_done = rep_done,
	.item_failed = rep_failed,
	.progress = rep_progress,
};

/* One task (fresh: nothing recorded) loading `src` as `rel` below the
 * root, with the worker's `stop` flag: a directory source publishes a
 * directory, as DestinationAsset "rel/" would ask. */
static int load_as(const char *src, const char *rel, const char *taskid,
		   volatile sig_atomic_t *stop)
{
	struct config c;
	memset(&c, 0, sizeof c);
	c.dest_root_path = root;
	c.max_per_host = 4;
	c.parallel = 1;
	struct task t;
	memset(&t, 0, sizeof t);
	snprintf(t.id, sizeof t.id, "%s", taskid);
	t.kind = TASK_LOAD;
	t.source = (char *)src;
	t.dest_path = (char *)rel;
	struct stat st;
	t.dest_is_dir = stat(src, &st) == 0 && S_ISDIR(st.st_mode);
	item_free_all(rep_items, rep_n);
	rep_items = NULL;
	rep_n = 0;
	return xfer_load(&c, &t, &report, stop, err, sizeof err);
}

static int load(const char *src, const char *rel)
{
	return load_as(src, rel, TASKID, &no_stop);
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
	CHECK_STR(err, "write error at byte 1048576: File too large");
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
	CHECK_STR(err, "file video/huge.ts: write error at byte 1048576: File too large");
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
	CHECK(load_as(P("%s/a.ts", ingest), "a.ts", "../x", &no_stop) == XFER_FAILED);
	CHECK(count_entries(root) == 0);
}

static void test_stop_before_start_returns_stopped_and_leaves_nothing(void)
{
	CHECK(fx_setup() == 0);
	volatile sig_atomic_t stop = 1;
	CHECK(make_package(P("%s/pkg", ingest)) == 0);
	CHECK(write_text(P("%s/a.ts", ingest), "x") == 0);
	CHECK(load_as(P("%s/pkg", ingest), "vod/pkg", TASKID, &stop) == XFER_STOPPED);
	CHECK(load_as(P("%s/a.ts", ingest), "a.ts", TASKID, &stop) == XFER_STOPPED);
	CHECK(count_entries(root) == 0);
	/* Stopped with an older version in place: it stays as it was. */
	CHECK(make_package(P("%s/old", ingest)) == 0);
	CHECK(load(P("%s/old", ingest), "pkg") == XFER_OK);
	CHECK(load_as(P("%s/pkg", ingest), "pkg", TASKID, &stop) == XFER_STOPPED);
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
	CHECK(xfer_local_purge(root, "dir/a.ts", TASKID, &note, err, sizeof err) == XFER_OK);
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
	CHECK(xfer_local_purge(root, "vod/pkg", TASKID, &note, err, sizeof err) == XFER_OK);
	CHECK(note == NULL);
	CHECK(!exists(P("%s/vod/pkg", root)));
	CHECK(file_is(P("%s/vod/other.ts", root), "stays"));
	CHECK(count_entries(P("%s/vod", root)) == 1);
}

static void test_purge_of_absent_asset_succeeds_with_note(void)
{
	CHECK(fx_setup() == 0);
	char *note = NULL;
	CHECK(xfer_local_purge(root, "vod/none.ts", TASKID, &note, err, sizeof err) == XFER_OK);
	CHECK_STR(note, "nothing to purge: vod/none.ts was not there");
	free(note);
	note = NULL;
	CHECK(mkdir(P("%s/vod", root), 0755) == 0);
	CHECK(xfer_local_purge(root, "vod/none.ts", TASKID, &note, err, sizeof err) == XFER_OK);
	CHECK_STR(note, "nothing to purge: vod/none.ts was not there");
	free(note);
	note = NULL;
	/* A file where a directory of the path should be: nothing below it. */
	CHECK(write_text(P("%s/vod/file", root), "x") == 0);
	CHECK(xfer_local_purge(root, "vod/file/none.ts", TASKID, &note, err, sizeof err) ==
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
	CHECK(xfer_local_purge(root, "link", TASKID, &note, err, sizeof err) == XFER_OK);
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
	CHECK(xfer_local_purge(root, "link/precious.ts", TASKID, &note, err, sizeof err) ==
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
	CHECK(xfer_local_purge(root, "pkg", TASKID, &note, err, sizeof err) == XFER_OK);
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
	CHECK(xfer_local_purge(root, "pkg", TASKID, &note, err, sizeof err) == XFER_OK);
	CHECK(note == NULL);
	CHECK(count_entries(root) == 0);
}

/* ---- the stage: assembling an asset piece by piece --------------------- */

#define STAGE_OF(name) P("%s/.%s.apubid-%s.stage", root, (name), TASKID)
#define TMP_OF(name) P("%s/.%s.apubid-%s.tmp", root, (name), TASKID)

static struct xfer_local_stage *stage_open(const char *rel, int is_dir, int resume)
{
	struct xfer_local_stage *st = NULL;
	if (xfer_local_stage_open(root, rel, TASKID, is_dir, resume, &st, err, sizeof err) != XFER_OK)
		return NULL;
	return st;
}

static int write_fd(int fd, const char *text)
{
	size_t n = strlen(text);
	return write(fd, text, n) == (ssize_t)n ? 0 : -1;
}

/* Writes one whole file of a stage the way the orchestrator does: open,
 * write, done, close. */
static int stage_put_file(struct xfer_local_stage *st, const char *path, const char *text)
{
	int fd;
	int64_t size;
	if (xfer_local_stage_file(st, path, &fd, &size, err, sizeof err) != XFER_OK)
		return -1;
	int rc = write_fd(fd, text) == 0 &&
			 xfer_local_stage_done_file(st, fd, err, sizeof err) == XFER_OK
		 ? 0
		 : -1;
	close(fd);
	return rc;
}

static void test_stage_resumed_after_close_keeps_its_partial_file_and_returns_its_size(void)
{
	CHECK(fx_setup() == 0);
	struct xfer_local_stage *st = stage_open("vod/pkg", 1, 0);
	CHECK(st != NULL);
	int fd;
	int64_t size = -1;
	CHECK(xfer_local_stage_file(st, "video/a.ts", &fd, &size, err, sizeof err) == XFER_OK);
	CHECK(size == 0);
	CHECK(write_fd(fd, "hello ") == 0);
	close(fd);
	/* The attempt ends here (a dropped connection): the handle goes, the
	 * partial file stays. */
	xfer_local_stage_close(st);
	CHECK(file_is(P("%s/vod/.pkg.apubid-%s.stage/video/a.ts", root, TASKID), "hello "));
	CHECK(!exists(P("%s/vod/pkg", root)));

	st = stage_open("vod/pkg", 1, 1);
	CHECK(st != NULL);
	CHECK(xfer_local_stage_file(st, "video/a.ts", &fd, &size, err, sizeof err) == XFER_OK);
	CHECK(size == 6);
	CHECK(lseek(fd, 0, SEEK_CUR) == 6);
	int wrote = write_fd(fd, "world\n");
	int done = xfer_local_stage_done_file(st, fd, err, sizeof err);
	close(fd);
	int committed = xfer_local_stage_commit(st, err, sizeof err);
	xfer_local_stage_close(st);
	CHECK(wrote == 0);
	CHECK(done == XFER_OK);
	CHECK(committed == XFER_OK);
	CHECK(file_is(P("%s/vod/pkg/video/a.ts", root), "hello world\n"));
	CHECK(leftovers(root) == 0);
}

static void test_single_file_stage_resumed_after_close_continues_at_its_size(void)
{
	CHECK(fx_setup() == 0);
	struct xfer_local_stage *st = stage_open("dir/a.ts", 0, 0);
	CHECK(st != NULL);
	int fd;
	int64_t size = -1;
	CHECK(xfer_local_stage_file(st, "", &fd, &size, err, sizeof err) == XFER_OK);
	CHECK(size == 0);
	CHECK(write_fd(fd, "first half, ") == 0);
	close(fd);
	xfer_local_stage_close(st);
	CHECK(file_is(P("%s/dir/.a.ts.apubid-%s.tmp", root, TASKID), "first half, "));

	st = stage_open("dir/a.ts", 0, 1);
	CHECK(st != NULL);
	CHECK(xfer_local_stage_file(st, "", &fd, &size, err, sizeof err) == XFER_OK);
	CHECK(size == 12);
	CHECK(lseek(fd, 0, SEEK_CUR) == 12);
	int wrote = write_fd(fd, "second half\n");
	int done = xfer_local_stage_done_file(st, fd, err, sizeof err);
	close(fd);
	int committed = xfer_local_stage_commit(st, err, sizeof err);
	xfer_local_stage_close(st);
	CHECK(wrote == 0 && done == XFER_OK && committed == XFER_OK);
	CHECK(file_is(P("%s/dir/a.ts", root), "first half, second half\n"));
	CHECK(count_entries(P("%s/dir", root)) == 1);
}

static void test_stage_open_without_resume_removes_a_stale_stage(void)
{
	CHECK(fx_setup() == 0);
	CHECK(mkdir(STAGE_OF("pkg"), 0755) == 0);
	CHECK(write_text(P("%s/half.ts", STAGE_OF("pkg")), "half") == 0);
	CHECK(write_text(TMP_OF("a.ts"), "half") == 0);

	struct xfer_local_stage *st = stage_open("pkg", 1, 0);
	CHECK(st != NULL);
	int empty = count_entries(STAGE_OF("pkg"));
	xfer_local_stage_close(st);
	CHECK(empty == 0);

	st = stage_open("a.ts", 0, 0);
	CHECK(st != NULL);
	int gone = !exists(TMP_OF("a.ts"));
	int fd = -1;
	int64_t size = -1;
	int rc = xfer_local_stage_file(st, "", &fd, &size, err, sizeof err);
	if (fd >= 0)
		close(fd);
	xfer_local_stage_close(st);
	CHECK(gone);
	CHECK(rc == XFER_OK);
	CHECK(size == 0);
}

static void test_stage_file_refuses_dotdot_and_empty_segments(void)
{
	CHECK(fx_setup() == 0);
	struct xfer_local_stage *st = stage_open("pkg", 1, 0);
	CHECK(st != NULL);
	const char *bad[] = { "", "..", "../x.ts", "a/../../x.ts", "a//b.ts", "/a.ts", "a/", ".",
			      "a/./b.ts" };
	int refused = 0;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int fd = -1;
		int64_t size;
		if (xfer_local_stage_file(st, bad[i], &fd, &size, err, sizeof err) == XFER_FAILED &&
		    fd == -1 && strncmp(err, "invalid destination path", 24) == 0)
			refused++;
		else
			fprintf(stderr, "  accepted \"%s\" (%s)\n", bad[i], err);
		if (xfer_local_stage_mkdir(st, bad[i], err, sizeof err) == XFER_FAILED &&
		    strncmp(err, "invalid destination path", 24) == 0)
			refused++;
		else
			fprintf(stderr, "  mkdir accepted \"%s\" (%s)\n", bad[i], err);
	}
	int inside = count_entries(STAGE_OF("pkg"));
	xfer_local_stage_close(st);
	CHECK(refused == 2 * (int)(sizeof bad / sizeof bad[0]));
	CHECK(inside == 0);
	CHECK(count_entries(root) == 1); /* the stage only */

	/* A single-file asset has no inner paths. */
	st = stage_open("a.ts", 0, 0);
	CHECK(st != NULL);
	int fd = -1;
	int64_t size;
	int rc = xfer_local_stage_file(st, "x.ts", &fd, &size, err, sizeof err);
	xfer_local_stage_close(st);
	CHECK(rc == XFER_FAILED);
	CHECK(fd == -1);
}

static void test_stage_file_refuses_a_symlink_placed_inside_the_stage(void)
{
	CHECK(fx_setup() == 0);
	CHECK(write_text(P("%s/target.ts", outside), "outside\n") == 0);
	struct xfer_local_stage *st = stage_open("pkg", 1, 0);
	CHECK(st != NULL);
	/* Someone with access to the root plants links inside the stage. */
	CHECK(symlink(outside, P("%s/link", STAGE_OF("pkg"))) == 0);
	CHECK(symlink(P("%s/target.ts", outside), P("%s/evil.ts", STAGE_OF("pkg"))) == 0);
	int fd = -1;
	int64_t size;
	int through_dir = xfer_local_stage_file(st, "link/a.ts", &fd, &size, err, sizeof err);
	char err1[1024];
	snprintf(err1, sizeof err1, "%s", err);
	int at_leaf = xfer_local_stage_file(st, "evil.ts", &fd, &size, err, sizeof err);
	char err2[1024];
	snprintf(err2, sizeof err2, "%s", err);
	int as_dir = xfer_local_stage_mkdir(st, "link/sub", err, sizeof err);
	xfer_local_stage_close(st);
	CHECK(through_dir == XFER_FAILED);
	CHECK_STR(err1, "destination path crosses a symbolic link: pkg/link");
	CHECK(at_leaf == XFER_FAILED);
	CHECK_STR(err2, "destination path crosses a symbolic link: pkg/evil.ts");
	CHECK(as_dir == XFER_FAILED);
	CHECK(fd == -1);
	CHECK(file_is(P("%s/target.ts", outside), "outside\n"));
	CHECK(count_entries(outside) == 1);
}

static void test_stage_file_never_writes_into_a_file_linked_from_elsewhere(void)
{
	CHECK(fx_setup() == 0);
	/* A hard link is no symbolic link, but writing through it would
	 * change the file outside the root just the same. */
	CHECK(write_text(P("%s/target.ts", outside), "outside\n") == 0);
	CHECK(mkdir(STAGE_OF("pkg"), 0755) == 0);
	CHECK(link(P("%s/target.ts", outside), P("%s/a.ts", STAGE_OF("pkg"))) == 0);
	struct xfer_local_stage *st = stage_open("pkg", 1, 1);
	CHECK(st != NULL);
	int fd = -1;
	int64_t size = -1;
	int rc = xfer_local_stage_file(st, "a.ts", &fd, &size, err, sizeof err);
	int wrote = rc == XFER_OK ? write_fd(fd, "inside\n") : -1;
	if (fd >= 0)
		close(fd);
	xfer_local_stage_close(st);
	CHECK(rc == XFER_OK);
	CHECK(size == 0);
	CHECK(wrote == 0);
	CHECK(file_is(P("%s/target.ts", outside), "outside\n"));
	CHECK(file_is(P("%s/a.ts", STAGE_OF("pkg")), "inside\n"));
}

static void test_stage_truncate_restarts_a_resumed_file_from_the_given_offset(void)
{
	CHECK(fx_setup() == 0);
	CHECK(write_text(TMP_OF("a.ts"), "goodBAD-TAIL") == 0);
	struct xfer_local_stage *st = stage_open("a.ts", 0, 1);
	CHECK(st != NULL);
	int fd;
	int64_t size = -1;
	CHECK(xfer_local_stage_file(st, "", &fd, &size, err, sizeof err) == XFER_OK);
	int rc = size == 12 ? xfer_fd_truncate(fd, 4, err, sizeof err) : XFER_FAILED;
	/* The next write lands right after the kept bytes, not at the old
	 * end. */
	off_t at = lseek(fd, 0, SEEK_CUR);
	int wrote = write_fd(fd, "-rest\n");
	int done = xfer_local_stage_done_file(st, fd, err, sizeof err);
	close(fd);
	int committed = xfer_local_stage_commit(st, err, sizeof err);
	xfer_local_stage_close(st);
	CHECK(size == 12);
	CHECK(rc == XFER_OK);
	CHECK(at == 4);
	CHECK(wrote == 0 && done == XFER_OK && committed == XFER_OK);
	CHECK(file_is(P("%s/a.ts", root), "good-rest\n"));
}

static void test_commit_of_directory_stage_over_existing_package_replaces_it_and_leaves_nothing_behind(void)
{
	CHECK(fx_setup() == 0);
	CHECK(make_package(P("%s/v1", ingest)) == 0);
	CHECK(load(P("%s/v1", ingest), "vod/pkg") == XFER_OK);
	struct xfer_local_stage *st = stage_open("vod/pkg", 1, 0);
	CHECK(st != NULL);
	int a = stage_put_file(st, "manifest.mpd", "<MPD v2/>\n");
	int b = stage_put_file(st, "video/hd/seg-001.ts", "segment\n");
	int c = xfer_local_stage_mkdir(st, "subtitles/empty", err, sizeof err);
	/* Until the commit, readers still see the old package. */
	int old_visible = same_tree(P("%s/v1", ingest), P("%s/vod/pkg", root));
	int committed = xfer_local_stage_commit(st, err, sizeof err);
	/* A discard after a commit (the caller failed later) must not touch
	 * the published asset; it only frees the handle. */
	xfer_local_stage_discard(st);
	CHECK(a == 0 && b == 0 && c == XFER_OK);
	CHECK(old_visible);
	CHECK(committed == XFER_OK);
	CHECK(file_is(P("%s/vod/pkg/manifest.mpd", root), "<MPD v2/>\n"));
	CHECK(file_is(P("%s/vod/pkg/video/hd/seg-001.ts", root), "segment\n"));
	CHECK(is_dir(P("%s/vod/pkg/subtitles/empty", root)));
	CHECK(count_entries(P("%s/vod/pkg", root)) == 3);
	CHECK(count_entries(P("%s/vod/pkg/video", root)) == 1);
	CHECK(count_entries(P("%s/vod", root)) == 1);
	CHECK(leftovers(root) == 0);
}

static void test_commit_of_a_resumed_stage_keeps_files_finished_by_an_earlier_attempt(void)
{
	CHECK(fx_setup() == 0);
	/* The first attempt finished a.ts and stopped inside b.ts. */
	struct xfer_local_stage *st = stage_open("pkg", 1, 0);
	CHECK(st != NULL);
	int a = stage_put_file(st, "a.ts", "a\n");
	int fd;
	int64_t size = -1;
	int b = xfer_local_stage_file(st, "sub/b.ts", &fd, &size, err, sizeof err);
	if (b == XFER_OK) {
		b = write_fd(fd, "first ");
		close(fd);
	}
	xfer_local_stage_close(st);
	CHECK(a == 0 && b == 0);

	/* The retry skips a.ts, which its records say is done. */
	st = stage_open("pkg", 1, 1);
	CHECK(st != NULL);
	int rc = xfer_local_stage_file(st, "sub/b.ts", &fd, &size, err, sizeof err);
	if (rc == XFER_OK) {
		rc = write_fd(fd, "second\n") == 0 ? xfer_local_stage_done_file(st, fd, err, sizeof err)
						   : XFER_FAILED;
		close(fd);
	}
	int committed = rc == XFER_OK ? xfer_local_stage_commit(st, err, sizeof err) : XFER_FAILED;
	xfer_local_stage_close(st);
	CHECK(rc == XFER_OK);
	CHECK(size == 6);
	CHECK(committed == XFER_OK);
	CHECK(file_is(P("%s/pkg/a.ts", root), "a\n"));
	CHECK(file_is(P("%s/pkg/sub/b.ts", root), "first second\n"));
	CHECK(count_entries(P("%s/pkg", root)) == 2);
	CHECK(leftovers(root) == 0);
}

static void test_commit_refuses_a_stage_holding_a_planted_symlink(void)
{
	CHECK(fx_setup() == 0);
	CHECK(write_text(P("%s/secret.ts", outside), "secret\n") == 0);
	CHECK(mkdir(P("%s/pkg", root), 0755) == 0);
	CHECK(write_text(P("%s/pkg/old.ts", root), "old\n") == 0);
	struct xfer_local_stage *st = stage_open("pkg", 1, 0);
	CHECK(st != NULL);
	int a = stage_put_file(st, "video/a.ts", "a\n");
	/* Publishing this link would let the CDN serve a file from outside
	 * the root. */
	CHECK(symlink(P("%s/secret.ts", outside), P("%s/video/evil.ts", STAGE_OF("pkg"))) == 0);
	int committed = xfer_local_stage_commit(st, err, sizeof err);
	xfer_local_stage_discard(st);
	CHECK(a == 0);
	CHECK(committed == XFER_FAILED);
	CHECK_STR(err, "staged package holds a symbolic link: pkg/video/evil.ts");
	CHECK(file_is(P("%s/pkg/old.ts", root), "old\n"));
	CHECK(count_entries(P("%s/pkg", root)) == 1);
	CHECK(count_entries(root) == 1);
	CHECK(file_is(P("%s/secret.ts", outside), "secret\n"));
}

static void test_commit_of_an_empty_directory_stage_publishes_an_empty_directory(void)
{
	CHECK(fx_setup() == 0);
	struct xfer_local_stage *st = stage_open("pkg", 1, 0);
	CHECK(st != NULL);
	int committed = xfer_local_stage_commit(st, err, sizeof err);
	xfer_local_stage_close(st);
	CHECK(committed == XFER_OK);
	CHECK(is_dir(P("%s/pkg", root)));
	CHECK(count_entries(P("%s/pkg", root)) == 0);
	CHECK(count_entries(root) == 1);
}

static void test_side_names_a_resume_cannot_continue_are_removed_at_open(void)
{
	CHECK(fx_setup() == 0);
	/* A crash right after the exchange leaves the old package under the
	 * swap name; it must not become part of the next package. */
	CHECK(mkdir(P("%s/.pkg.apubid-%s.swap", root, TASKID), 0755) == 0);
	CHECK(write_text(P("%s/.pkg.apubid-%s.swap/old.ts", root, TASKID), "old") == 0);
	/* The last attempt saw a single file where there is a directory now. */
	CHECK(write_text(TMP_OF("pkg"), "half") == 0);
	struct xfer_local_stage *st = stage_open("pkg", 1, 1);
	CHECK(st != NULL);
	int a = stage_put_file(st, "new.ts", "new\n");
	int committed = xfer_local_stage_commit(st, err, sizeof err);
	xfer_local_stage_close(st);
	CHECK(a == 0 && committed == XFER_OK);
	CHECK(file_is(P("%s/pkg/new.ts", root), "new\n"));
	CHECK(count_entries(P("%s/pkg", root)) == 1);
	CHECK(count_entries(root) == 1);
}

static void test_discard_removes_everything_the_stage_holds(void)
{
	CHECK(fx_setup() == 0);
	struct xfer_local_stage *st = stage_open("pkg", 1, 0);
	CHECK(st != NULL);
	int a = stage_put_file(st, "video/a.ts", "a\n");
	int b = xfer_local_stage_mkdir(st, "empty", err, sizeof err);
	xfer_local_stage_discard(st);
	CHECK(a == 0 && b == XFER_OK);
	CHECK(count_entries(root) == 0);

	st = stage_open("a.ts", 0, 0);
	CHECK(st != NULL);
	a = stage_put_file(st, "", "partial");
	xfer_local_stage_discard(st);
	CHECK(a == 0);
	CHECK(count_entries(root) == 0);
}

static void test_single_file_stage_commit_replaces_an_existing_file(void)
{
	CHECK(fx_setup() == 0);
	CHECK(mkdir(P("%s/dir", root), 0755) == 0);
	CHECK(write_text(P("%s/dir/a.ts", root), "old version\n") == 0);
	struct xfer_local_stage *st = stage_open("dir/a.ts", 0, 0);
	CHECK(st != NULL);
	int a = stage_put_file(st, "", "new version\n");
	int old_visible = file_is(P("%s/dir/a.ts", root), "old version\n");
	int committed = xfer_local_stage_commit(st, err, sizeof err);
	xfer_local_stage_close(st);
	CHECK(a == 0);
	CHECK(old_visible);
	CHECK(committed == XFER_OK);
	CHECK(file_is(P("%s/dir/a.ts", root), "new version\n"));
	CHECK(count_entries(P("%s/dir", root)) == 1);
}

static void test_single_file_stage_commit_replaces_a_directory(void)
{
	CHECK(fx_setup() == 0);
	CHECK(make_package(P("%s/asset", root)) == 0);
	struct xfer_local_stage *st = stage_open("asset", 0, 0);
	CHECK(st != NULL);
	int a = stage_put_file(st, "", "now a file\n");
	int committed = xfer_local_stage_commit(st, err, sizeof err);
	xfer_local_stage_close(st);
	CHECK(a == 0 && committed == XFER_OK);
	CHECK(file_is(P("%s/asset", root), "now a file\n"));
	CHECK(count_entries(root) == 1);
}

static void test_stage_open_refuses_a_symlink_in_the_destination_path(void)
{
	CHECK(fx_setup() == 0);
	CHECK(symlink(outside, P("%s/evil", root)) == 0);
	struct xfer_local_stage *st = (struct xfer_local_stage *)&st;
	CHECK(xfer_local_stage_open(root, "evil/pkg", TASKID, 1, 0, &st, err, sizeof err) ==
	      XFER_FAILED);
	CHECK(st == NULL);
	CHECK_STR(err, "destination path crosses a symbolic link: evil");
	CHECK(xfer_local_stage_open(root, "pkg", "../x", 1, 0, &st, err, sizeof err) ==
	      XFER_FAILED);
	CHECK(count_entries(outside) == 0);
	CHECK(count_entries(root) == 1);
}

/* ---- listing and opening a local source ------------------------------- */

static void test_list_gives_directories_before_their_content_and_file_sizes(void)
{
	CHECK(fx_setup() == 0);
	CHECK(make_package(P("%s/pkg", ingest)) == 0);
	struct xfer_entry *items = NULL;
	int n = -1;
	CHECK(xfer_local_list(P("%s/pkg/", ingest), &items, &n, err, sizeof err) == XFER_OK);
	const struct xfer_entry want[] = {
		{ "empty", 1, 0 },
		{ "manifest.mpd", 0, 7 },
		{ "video", 1, 0 },
		{ "video/café-日本.ts", 0, 300000 },
		{ "video/empty", 1, 0 },
		{ "video/seg-001.ts", 0, 188 * 1000 },
		{ "video/zero.ts", 0, 0 },
	};
	int same = n == (int)(sizeof want / sizeof want[0]);
	for (int i = 0; same && i < n; i++) {
		same = strcmp(items[i].name, want[i].name) == 0 &&
		       items[i].is_dir == want[i].is_dir && items[i].size == want[i].size;
		if (!same)
			fprintf(stderr, "  item %d: %s %d %lld\n", i, items[i].name, items[i].is_dir,
				(long long)items[i].size);
	}
	xfer_curl_free_entries(items, n);
	CHECK(same);
}

static void test_list_of_a_file_is_one_item_with_an_empty_path(void)
{
	CHECK(fx_setup() == 0);
	CHECK(write_random(P("%s/movie.ts", ingest), 12345, 3) == 0);
	struct xfer_entry *items = NULL;
	int n = -1;
	CHECK(xfer_local_list(P("%s/movie.ts", ingest), &items, &n, err, sizeof err) == XFER_OK);
	int ok = n == 1 && strcmp(items[0].name, "") == 0 && !items[0].is_dir &&
		 items[0].size == 12345;
	xfer_curl_free_entries(items, n);
	CHECK(ok);
	/* An empty directory lists as nothing at all. */
	CHECK(mkdir(P("%s/empty", ingest), 0755) == 0);
	CHECK(xfer_local_list(P("%s/empty", ingest), &items, &n, err, sizeof err) == XFER_OK);
	CHECK(n == 0);
	xfer_curl_free_entries(items, n);
}

static void test_list_refuses_symlinks_and_special_files(void)
{
	CHECK(fx_setup() == 0);
	CHECK(make_package(P("%s/pkg", ingest)) == 0);
	CHECK(mkdir(P("%s/pkg/sub", ingest), 0755) == 0);
	CHECK(symlink("/etc/passwd", P("%s/pkg/sub/x", ingest)) == 0);
	struct xfer_entry *items = (struct xfer_entry *)&items;
	int n = -1;
	CHECK(xfer_local_list(P("%s/pkg", ingest), &items, &n, err, sizeof err) == XFER_FAILED);
	CHECK_STR(err, "source contains a symbolic link: sub/x");
	CHECK(items == NULL && n == 0);
	CHECK(unlink(P("%s/pkg/sub/x", ingest)) == 0);
	CHECK(mkfifo(P("%s/pkg/sub/pipe", ingest), 0644) == 0);
	CHECK(xfer_local_list(P("%s/pkg", ingest), &items, &n, err, sizeof err) == XFER_FAILED);
	CHECK_STR(err, "source contains a special file: sub/pipe");
	CHECK(symlink(P("%s/pkg", ingest), P("%s/link", ingest)) == 0);
	CHECK(xfer_local_list(P("%s/link/", ingest), &items, &n, err, sizeof err) == XFER_FAILED);
	CHECK_STR(err, P("source asset is a symbolic link: %s/link", ingest));
	CHECK(xfer_local_list(P("%s/none", ingest), &items, &n, err, sizeof err) == XFER_FAILED);
	CHECK_STR(err, P("source asset does not exist: %s/none", ingest));
}

static void test_open_source_gives_a_nested_file_and_its_size(void)
{
	CHECK(fx_setup() == 0);
	CHECK(make_package(P("%s/pkg", ingest)) == 0);
	int fd = -1;
	int64_t size = -1;
	CHECK(xfer_local_open_source(P("%s/pkg", ingest), "video/seg-001.ts", &fd, &size, err,
				    sizeof err) == XFER_OK);
	char b[1];
	ssize_t r = read(fd, b, 1);
	int flags = fcntl(fd, F_GETFL);
	close(fd);
	CHECK(size == 188 * 1000);
	CHECK(r == 1);
	CHECK((flags & O_NONBLOCK) == 0);
	CHECK(xfer_local_open_source(P("%s/pkg/manifest.mpd", ingest), "", &fd, &size, err,
				    sizeof err) == XFER_OK);
	close(fd);
	CHECK(size == 7);
	/* A directory is not something to read bytes from. */
	CHECK(xfer_local_open_source(P("%s/pkg", ingest), "video", &fd, &size, err, sizeof err) ==
	      XFER_FAILED);
	CHECK_STR(err, P("cannot read %s/pkg/video: Is a directory", ingest));
	CHECK(fd == -1);
}

static void test_open_source_refuses_a_symlinked_component(void)
{
	CHECK(fx_setup() == 0);
	CHECK(make_package(P("%s/pkg", ingest)) == 0);
	CHECK(write_text(P("%s/secret.ts", outside), "secret\n") == 0);
	CHECK(symlink(outside, P("%s/pkg/sub", ingest)) == 0);
	CHECK(symlink(P("%s/secret.ts", outside), P("%s/pkg/video/link.ts", ingest)) == 0);
	int fd = -1;
	int64_t size;
	CHECK(xfer_local_open_source(P("%s/pkg", ingest), "sub/secret.ts", &fd, &size, err,
				    sizeof err) == XFER_FAILED);
	CHECK_STR(err, "source contains a symbolic link: sub");
	CHECK(xfer_local_open_source(P("%s/pkg", ingest), "video/link.ts", &fd, &size, err,
				    sizeof err) == XFER_FAILED);
	CHECK_STR(err, "source contains a symbolic link: video/link.ts");
	CHECK(xfer_local_open_source(P("%s/pkg", ingest), "video/../../pkg/manifest.mpd", &fd,
				    &size, err, sizeof err) == XFER_FAILED);
	CHECK(strncmp(err, "invalid path inside the source", 30) == 0);
	CHECK(fd == -1);
}

/* ---- copying ---------------------------------------------------------- */

static int open_rw(const char *path)
{
	return open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
}

/* Copies `src` to `dst` in two calls split at `at`, the way a resumed
 * transfer continues after the bytes it already has. */
static int copy_in_two(const char *src, const char *dst, int64_t at)
{
	int in = open(src, O_RDONLY | O_CLOEXEC), out = open_rw(dst);
	struct stat st;
	int rc = -1;
	if (in >= 0 && out >= 0 && fstat(in, &st) == 0 &&
	    xfer_fd_copy(in, 0, out, 0, at, NULL, NULL, &no_stop, err, sizeof err) == XFER_OK &&
	    xfer_fd_copy(in, at, out, at, st.st_size - at, NULL, NULL, &no_stop, err,
			sizeof err) == XFER_OK &&
	    lseek(in, 0, SEEK_CUR) == 0 && lseek(out, 0, SEEK_CUR) == 0)
		rc = 0;
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return rc;
}

static void test_copy_with_offsets_resumes_byte_identical(void)
{
	CHECK(fx_setup() == 0);
	/* More than one 16 MiB chunk, and a split at an odd offset. */
	CHECK(write_random(P("%s/movie.ts", ingest), 17 * 1024 * 1024 + 321, 5) == 0);
	CHECK(copy_in_two(P("%s/movie.ts", ingest), P("%s/copy.ts", root), 1234567) == 0);
	CHECK(same_file(P("%s/movie.ts", ingest), P("%s/copy.ts", root)));
}

static void test_copy_with_offsets_across_file_systems_is_byte_identical(void)
{
	CHECK(fx_setup() == 0);
	/* tmpfs to /tmp: copy_file_range refuses, pread/pwrite copies. */
	char shm[] = "/dev/shm/apubid-xf-XXXXXX";
	if (!mkdtemp(shm))
		return;
	const char *src = P("%s/movie.ts", shm);
	int made = write_random(src, 3 * 1024 * 1024 + 7, 13);
	int rc = made == 0 ? copy_in_two(src, P("%s/copy.ts", root), 1024 * 1024 + 1) : -1;
	int same = rc == 0 && same_file(src, P("%s/copy.ts", root));
	rm_rf(shm);
	CHECK(made == 0);
	CHECK(rc == 0);
	CHECK(same);
}

struct seen {
	unsigned char *buf;
	size_t n, cap;
};

static int collect(void *arg, const char *buf, size_t n)
{
	struct seen *s = arg;
	if (s->n + n > s->cap)
		return -1;
	memcpy(s->buf + s->n, buf, n);
	s->n += n;
	return 0;
}

static void test_copy_shows_every_byte_to_on_data(void)
{
	CHECK(fx_setup() == 0);
	size_t total = 2 * 1024 * 1024 + 99;
	CHECK(write_random(P("%s/movie.ts", ingest), total, 21) == 0);
	struct seen s = { .buf = malloc(total), .cap = total };
	CHECK(s.buf != NULL);
	int in = open(P("%s/movie.ts", ingest), O_RDONLY | O_CLOEXEC);
	int out = open_rw(P("%s/copy.ts", root));
	int rc = xfer_fd_copy(in, 100, out, 100, (int64_t)total - 100, collect, &s, &no_stop,
			     err, sizeof err);
	close(in);
	close(out);
	size_t n;
	unsigned char *orig = slurp(P("%s/movie.ts", ingest), &n);
	int same = orig && s.n == total - 100 && memcmp(orig + 100, s.buf, s.n) == 0;
	free(orig);
	free(s.buf);
	CHECK(rc == XFER_OK);
	CHECK(same);
}

static void test_copy_stops_when_stop_is_set(void)
{
	CHECK(fx_setup() == 0);
	CHECK(write_random(P("%s/movie.ts", ingest), 1024 * 1024, 17) == 0);
	volatile sig_atomic_t stop = 1;
	int in = open(P("%s/movie.ts", ingest), O_RDONLY | O_CLOEXEC);
	int out = open_rw(P("%s/copy.ts", root));
	int rc = xfer_fd_copy(in, 0, out, 0, 1024 * 1024, NULL, NULL, &stop, err, sizeof err);
	struct stat st;
	int sized = fstat(out, &st) == 0 && st.st_size == 0;
	close(in);
	close(out);
	CHECK(rc == XFER_STOPPED);
	CHECK(sized);
}

static void test_copy_of_a_source_shorter_than_asked_fails(void)
{
	CHECK(fx_setup() == 0);
	CHECK(write_text(P("%s/short.ts", ingest), "0123456789") == 0);
	int in = open(P("%s/short.ts", ingest), O_RDONLY | O_CLOEXEC);
	int out = open_rw(P("%s/copy.ts", root));
	int rc = xfer_fd_copy(in, 4, out, 0, 10, NULL, NULL, &no_stop, err, sizeof err);
	close(in);
	close(out);
	CHECK(rc == XFER_FAILED);
	CHECK_STR(err, "the source ended at byte 10, 4 bytes short");
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
	RUN(test_stage_resumed_after_close_keeps_its_partial_file_and_returns_its_size);
	RUN(test_single_file_stage_resumed_after_close_continues_at_its_size);
	RUN(test_stage_open_without_resume_removes_a_stale_stage);
	RUN(test_stage_file_refuses_dotdot_and_empty_segments);
	RUN(test_stage_file_refuses_a_symlink_placed_inside_the_stage);
	RUN(test_stage_file_never_writes_into_a_file_linked_from_elsewhere);
	RUN(test_stage_truncate_restarts_a_resumed_file_from_the_given_offset);
	RUN(test_commit_of_directory_stage_over_existing_package_replaces_it_and_leaves_nothing_behind);
	RUN(test_commit_of_a_resumed_stage_keeps_files_finished_by_an_earlier_attempt);
	RUN(test_commit_refuses_a_stage_holding_a_planted_symlink);
	RUN(test_commit_of_an_empty_directory_stage_publishes_an_empty_directory);
	RUN(test_side_names_a_resume_cannot_continue_are_removed_at_open);
	RUN(test_discard_removes_everything_the_stage_holds);
	RUN(test_single_file_stage_commit_replaces_an_existing_file);
	RUN(test_single_file_stage_commit_replaces_a_directory);
	RUN(test_stage_open_refuses_a_symlink_in_the_destination_path);
	RUN(test_list_gives_directories_before_their_content_and_file_sizes);
	RUN(test_list_of_a_file_is_one_item_with_an_empty_path);
	RUN(test_list_refuses_symlinks_and_special_files);
	RUN(test_open_source_gives_a_nested_file_and_its_size);
	RUN(test_open_source_refuses_a_symlinked_component);
	RUN(test_copy_with_offsets_resumes_byte_identical);
	RUN(test_copy_with_offsets_across_file_systems_is_byte_identical);
	RUN(test_copy_shows_every_byte_to_on_data);
	RUN(test_copy_stops_when_stop_is_set);
	RUN(test_copy_of_a_source_shorter_than_asked_fails);
	fx_teardown();
	return HARNESS_END("test_xfer_local");
}

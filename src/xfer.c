/*
 * xfer.c - carrying out a task: the orchestration of a load or a purge over
 * two ends, a source and a destination, each behind struct xfer_end_ops
 * (xfer.h): a path on this machine (xfer_local.c) or a server
 * (xfer_remote.c, through its protocol's table). Nothing here asks which
 * kind an end is, only what it can do: an end that hands out descriptors
 * (XFER_BY_FD) is read or written through them, a server through its get
 * and put, and a stage is checked by listing where the end can list it.
 *
 * A load runs in four steps, each safe to repeat, so that a task retried
 * after a transient error, or resumed after a crash or a shutdown,
 * continues where it stopped:
 *   1. plan: list the source into items (one per file or directory),
 *      ordered directories first and manifests (.m3u8, .mpd) last, and
 *      record them on the task; a task that has items already keeps them;
 *   2. stage: prepare a staging area beside the final name (a hidden
 *      ".NAME.apubid-TASKID.stage" directory, or ".NAME.apubid-TASKID.tmp"
 *      for a single file), reusing what an earlier attempt left;
 *   3. copy every item not yet done into the stage, resuming a partial
 *      file, hashing every byte with SHA-256 as it streams, checking sizes;
 *   4. commit: the stage is checked against the plan (a local stage
 *      walked, a server's listed once per directory) and whatever the
 *      plan does not name is removed; then one rename puts the asset at
 *      its final name (an asset already there is swapped out and
 *      removed).
 * Nothing is ever visible at the final name before step 4, and what
 * becomes visible is exactly the plan. A local stage is durable only at
 * the commit's barrier, so a resume into one reads back every file
 * recorded done before it trusts the record (xfer_stage_recheck).
 *
 * What a changing source gets: a file is published only if its source
 * still is what was read. Before each file's copy its version is taken
 * (a local file: size, modification and status change times in
 * nanoseconds, device and inode, with fstat on the descriptor the copy
 * reads; SFTP: size and modification time; FTP: SIZE and MDTM; HTTP:
 * Content-Length, ETag and Last-Modified of a HEAD) and, for a file of
 * 1 MiB or more, recorded on the item before the first byte is written (a
 * smaller file is always copied from its first byte, which costs less
 * than that store write); after the copy it is taken again
 * (a local file twice: its descriptor, for a file appended to, cut or
 * rewritten in place, and its path, for a file replaced or removed) and
 * an HTTP download is refused outright when its own answer carries
 * another ETag or Last-Modified. Any difference makes the file's attempt
 * fail as XS_CHANGED, a transient failure: its partial copy is emptied,
 * and the next attempt copies it from its first byte. A partial file an
 * attempt left (cut connection, shutdown) is continued only when the
 * source's version is the very one recorded for it, so a resume never
 * joins two versions. A source that keeps changing until `[transfer]
 * retries` are spent fails with "source changed during the copy: " and
 * what changed ("size 419430400 -> 471859200", "ETag ... -> ...") and the
 * file. The SHA-256 kept on the item is always that of the published
 * bytes: it is computed on what is written (read back from the
 * destination when the kernel copies), the resumed prefix from the
 * partial file itself. A check is only as fine as the protocol: FTP and
 * SFTP times count whole seconds, so a same-size rewrite within the
 * second a copy starts is not seen there.
 *
 * The task's items are reported as they change through the worker's
 * struct xfer_report: the worker owns the task store and decides how hard
 * to try (a store that cannot take a write holds the job up rather than
 * failing it, persist.c); a report it could not record before being
 * stopped ends the job as stopped. Progress is reported now and then.
 *
 * Between two servers a file passes through a spool file beside the
 * store, so memory never grows with file size and both halves can resume;
 * a spool file, like a local stage's, is continued only within the boot
 * that wrote it.
 *
 * Connections: the media files of a package are copied `parallel` at a
 * time, each lane with one session per server end for the whole task
 * (reused across its files), and at most max_per_host sessions to one
 * server across all workers; a task takes the slots of both its ends at
 * once, and an extra lane starts only when a slot is free, so two tasks
 * can never wait on each other.
 */
#include "xfer.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define XFER_PROGRESS_EVERY_MS 1000
#define XFER_MAX_HOSTS 256

/* ---- per-host connection slots --------------------------------------- */

static pthread_mutex_t xfer_hosts_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t xfer_hosts_cond = PTHREAD_COND_INITIALIZER;
static struct {
	char *key;
	int used;
} xfer_hosts[XFER_MAX_HOSTS];

static int xfer_host_index(const char *key, int create)
{
	int free_slot = -1;
	for (int i = 0; i < XFER_MAX_HOSTS; i++) {
		if (xfer_hosts[i].key && strcmp(xfer_hosts[i].key, key) == 0)
			return i;
		if (free_slot < 0 && (!xfer_hosts[i].key || xfer_hosts[i].used == 0))
			free_slot = i;
	}
	if (!create || free_slot < 0)
		return -1;
	free(xfer_hosts[free_slot].key);
	xfer_hosts[free_slot].key = util_strdup(key);
	xfer_hosts[free_slot].used = 0;
	return free_slot;
}

/* Takes one slot for each key (NULL keys are local ends), all or none,
 * waiting while any server is at its limit. Returns -1 when *stop. */
static int xfer_hosts_acquire(const char *a, const char *b, int limit,
			      volatile sig_atomic_t *stop)
{
	int need_a = a != NULL, need_b = b != NULL, same = a && b && strcmp(a, b) == 0;
	pthread_mutex_lock(&xfer_hosts_lock);
	for (;;) {
		int ia = need_a ? xfer_host_index(a, 1) : -1;
		int ib = need_b ? xfer_host_index(b, 1) : -1;
		int ok = (ia < 0 && need_a) || (ib < 0 && need_b) ? 0 : 1;
		if (ok && same)
			ok = xfer_hosts[ia].used + 2 <= limit || limit < 2;
		else if (ok)
			ok = (!need_a || xfer_hosts[ia].used < limit) &&
			     (!need_b || xfer_hosts[ib].used < limit);
		if (ok) {
			if (need_a)
				xfer_hosts[ia].used++;
			if (need_b)
				xfer_hosts[ib].used++;
			pthread_mutex_unlock(&xfer_hosts_lock);
			return 0;
		}
		if (*stop) {
			pthread_mutex_unlock(&xfer_hosts_lock);
			return -1;
		}
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += 200 * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&xfer_hosts_cond, &xfer_hosts_lock, &until);
	}
}

/* Takes one more slot for each key, at once or not at all: 0, or -1 when
 * a server is at its limit. */
static int xfer_hosts_try(const char *a, const char *b, int limit)
{
	int rc = -1;
	pthread_mutex_lock(&xfer_hosts_lock);
	int ia = a ? xfer_host_index(a, 1) : -1;
	int ib = b ? xfer_host_index(b, 1) : -1;
	int same = ia >= 0 && ia == ib;
	if ((!a || ia >= 0) && (!b || ib >= 0) &&
	    (same ? xfer_hosts[ia].used + 2 <= limit
		  : (!a || xfer_hosts[ia].used < limit) && (!b || xfer_hosts[ib].used < limit))) {
		if (a)
			xfer_hosts[ia].used++;
		if (b)
			xfer_hosts[ib].used++;
		rc = 0;
	}
	pthread_mutex_unlock(&xfer_hosts_lock);
	return rc;
}

static void xfer_hosts_release(const char *a, const char *b)
{
	pthread_mutex_lock(&xfer_hosts_lock);
	const char *keys[2] = { a, b };
	for (int k = 0; k < 2; k++) {
		int i = keys[k] ? xfer_host_index(keys[k], 0) : -1;
		if (i >= 0 && xfer_hosts[i].used > 0)
			xfer_hosts[i].used--;
	}
	pthread_cond_broadcast(&xfer_hosts_cond);
	pthread_mutex_unlock(&xfer_hosts_lock);
}

/* ---- the two ends ----------------------------------------------------- */

static void xfer_strip_slashes(char *p)
{
	size_t n = strlen(p);
	while (n > 1 && p[n - 1] == '/')
		p[--n] = '\0';
}

/* An end from a source or a root: a plain path or a file: URL is a path on
 * this machine, any other URL a server. */
static int xfer_end_init(const struct config *c, struct xfer_end *e, const char *where,
			 int is_source, char *err, size_t errlen)
{
	memset(e, 0, sizeof *e);
	if (!url_is_absolute(where)) {
		e->ops = &xfer_local_end;
		e->path = util_strdup(where);
		xfer_strip_slashes(e->path);
		return e->ops->init(c, e, NULL, is_source, err, errlen) == XS_OK ? 0 : -1;
	}
	struct url u;
	if (url_parse(where, &u, err, errlen) < 0)
		return -1;
	e->ops = strcmp(u.scheme, "file") == 0 ? &xfer_local_end : &xfer_remote_end;
	e->path = util_strdup(u.path);
	xfer_strip_slashes(e->path);
	int rc = e->ops->init(c, e, &u, is_source, err, errlen);
	url_free(&u);
	return rc == XS_OK ? 0 : -1;
}

/* The destination end: the root, a path or a server. */
static int xfer_dest_end(const struct config *c, struct xfer_end *e, char *err, size_t errlen)
{
	return xfer_end_init(c, e,
			     c->dest_root_path   ? c->dest_root_path
			     : c->dest_root_auth ? c->dest_root_auth
						 : c->dest_root,
			     0, err, errlen);
}

static void xfer_end_free(struct xfer_end *e)
{
	if (!e->ops)
		return;
	e->ops->disconnect(e);
	e->ops->release(e);
	free(e->path);
	free(e->show);
	free(e->key);
	memset(e, 0, sizeof *e);
}

/* ---- the job ----------------------------------------------------------- */

/* What the lanes of one load share (see xfer_copy_files). */
struct xfer_shared {
	pthread_mutex_t lock;
	int next, end;               /* items [next, end) still to hand out */
	int rc;                      /* the first failure, XS_OK while none */
	char err[2048];              /* and its reason */
	int64_t bytes;               /* bytes of the items done */
	const struct xfer_report *real;
	struct xfer_report locked;   /* `real`, one call at a time */
};

struct xfer_job {
	const struct config *c;
	const struct xfer_report *r;
	const struct task *t;
	volatile sig_atomic_t *stop;
	struct xfer_end src, dst;
	struct item *items;
	int nitems;
	char *spool;    /* spool directory between two servers */
	/* Progress. */
	struct xfer_shared *sh;
	int64_t bytes_cur;  /* bytes of the current item */
	int64_t last_progress;
	EVP_MD_CTX *md;
	int fresh; /* planned by this attempt: nothing staged before counts */
	char *err;
	size_t errlen;
};

static int xfer_is_manifest(const char *path)
{
	const char *dot = strrchr(path, '.');
	return dot && (strcasecmp(dot, ".m3u8") == 0 || strcasecmp(dot, ".mpd") == 0 ||
		       strcasecmp(dot, ".m3u") == 0 || strcasecmp(dot, ".ism") == 0);
}

static int xfer_depth(const char *path)
{
	int d = 0;
	for (; *path; path++)
		d += *path == '/';
	return d;
}

/* Transfer order: directories (shallow first), then media files, then
 * manifests, deepest first, so a player never finds a manifest whose
 * segments or variant playlists are not there yet. */
static int xfer_item_rank(const struct item *it)
{
	return it->is_dir ? 0 : xfer_is_manifest(it->path) ? 2 : 1;
}

static int xfer_item_cmp(const void *pa, const void *pb)
{
	const struct item *a = pa, *b = pb;
	int ra = xfer_item_rank(a), rb = xfer_item_rank(b);
	if (ra != rb)
		return ra - rb;
	int da = xfer_depth(a->path), db = xfer_depth(b->path);
	if (ra == 0 && da != db)
		return da - db;
	if (ra == 2 && da != db)
		return db - da;
	return strcmp(a->path, b->path);
}

static void xfer_add_item(struct item **v, int *n, int *cap, const char *path, int is_dir,
			  int64_t size)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		struct item *nv = util_calloc((size_t)*cap, sizeof *nv);
		if (*v)
			memcpy(nv, *v, (size_t)*n * sizeof *nv);
		free(*v);
		*v = nv;
	}
	struct item *it = &(*v)[(*n)++];
	memset(it, 0, sizeof *it);
	it->path = util_strdup(path);
	it->is_dir = is_dir;
	it->size = size;
}

/* The items of a package its source's planner lists (struct xfer_end_ops
 * plan): each file, and before it every directory its path implies. */
static int xfer_plan_package(struct xfer_job *j, const char *manifest, struct item **v, int *n,
			     int *cap)
{
	struct xfer_entry *e = NULL;
	int ne = 0;
	int rc = j->src.ops->plan(&j->src, manifest, &e, &ne, j->err, j->errlen);
	for (int i = 0; rc == XS_OK && i < ne; i++) {
		for (const char *p = strchr(e[i].name, '/'); p; p = strchr(p + 1, '/')) {
			char *dir = util_strndup(e[i].name, (size_t)(p - e[i].name));
			int seen = 0;
			for (int k = 0; k < *n && !seen; k++)
				seen = (*v)[k].is_dir && strcmp((*v)[k].path, dir) == 0;
			if (!seen)
				xfer_add_item(v, n, cap, dir, 1, -1);
			free(dir);
		}
		xfer_add_item(v, n, cap, e[i].name, 0, e[i].size);
	}
	xfer_curl_free_entries(e, ne);
	return rc;
}

/* Replaces the task's items: XS_OK once the worker recorded them, or
 * XS_STOPPED when it is being stopped first. */
static int xfer_record_items(struct xfer_job *j, const struct item *v, int n)
{
	if (j->r->set_items(j->r->arg, v, n) < 0) {
		snprintf(j->err, j->errlen, "stopped while the task's items could not be recorded");
		return XS_STOPPED;
	}
	return XS_OK;
}

/* Sorts a plan into transfer order (xfer_item_cmp); a package's top
 * manifest, which names the others, goes after all of them. */
static void xfer_sort_plan(struct item *v, int n, const char *top)
{
	qsort(v, (size_t)n, sizeof *v, xfer_item_cmp);
	for (int i = 0; top && i < n; i++)
		if (!v[i].is_dir && strcmp(v[i].path, top) == 0) {
			struct item t = v[i];
			memmove(&v[i], &v[i + 1], (size_t)(n - i - 1) * sizeof *v);
			v[n - 1] = t;
			break;
		}
}

/* Whether a package planned again names the files, directories and
 * manifest sizes the task recorded. */
static int xfer_same_plan(const struct item *rec, int nrec, const struct item *v, int n)
{
	if (nrec != n)
		return 0;
	for (int i = 0; i < n; i++)
		if (rec[i].is_dir != v[i].is_dir || strcmp(rec[i].path, v[i].path) != 0 ||
		    (v[i].size >= 0 && rec[i].size != v[i].size))
			return 0;
	return 1;
}

/* Step 1: the items of the task, from the store or from a fresh listing. */
static int xfer_plan(struct xfer_job *j)
{
	/* A package a planner names (an HTTP source naming its manifest, with
	 * a directory as DestinationAsset) is fetched from the manifest's
	 * directory, and planned again on every attempt: the manifests are
	 * published from the bytes this attempt parsed, and a package whose
	 * manifests now name other files starts over from a fresh plan. */
	char *manifest = NULL, *top = NULL;
	struct item *v = NULL;
	int n = 0, cap = 0, rc = XS_OK, package = 0;
	if (j->t->dest_is_dir && (j->src.caps & XFER_PLANS)) {
		package = 1;
		manifest = util_strdup(j->src.path);
		char *slash = strrchr(j->src.path, '/');
		top = util_strdup(slash ? slash + 1 : j->src.path);
		if (slash)
			slash[slash == j->src.path ? 1 : 0] = '\0';
		rc = xfer_plan_package(j, manifest, &v, &n, &cap);
		free(manifest);
		if (rc != XS_OK) {
			item_free_all(v, n);
			free(top);
			return rc;
		}
		xfer_sort_plan(v, n, top);
		free(top);
	}
	if (j->r->items(j->r->arg, &j->items, &j->nitems) < 0) {
		snprintf(j->err, j->errlen, "internal error: the task's items cannot be read");
		item_free_all(v, n);
		return XS_TRANSIENT;
	}
	if (j->nitems > 0 && (!package || xfer_same_plan(j->items, j->nitems, v, n))) {
		item_free_all(v, n);
		return XS_OK;
	}
	if (j->nitems > 0)
		log_info("task %s: the package's manifests name other files than its recorded "
			 "plan: it is copied again from a fresh plan", j->t->id);
	item_free_all(j->items, j->nitems);
	j->items = NULL;
	j->nitems = 0;
	j->fresh = 1;
	if (!package) {
		struct xfer_entry *e = NULL;
		int ne = 0;
		rc = j->src.ops->list(&j->src, j->t->dest_is_dir, &e, &ne, j->err, j->errlen);
		for (int i = 0; rc == XS_OK && i < ne; i++)
			xfer_add_item(&v, &n, &cap, e[i].name, e[i].is_dir, e[i].size);
		xfer_curl_free_entries(e, ne);
	}
	if (rc != XS_OK) {
		item_free_all(v, n);
		return rc;
	}
	if (!package)
		qsort(v, (size_t)n, sizeof *v, xfer_item_cmp);
	for (int i = 0; i < n; i++)
		v[i].seq = i;
	if ((rc = xfer_record_items(j, v, n)) != XS_OK) {
		item_free_all(v, n);
		return rc;
	}
	j->items = v;
	j->nitems = n;
	return XS_OK;
}

/* When the stage an earlier attempt filled is not there any more (it was
 * committed just before a crash, or lost), every item is done again: the
 * store must not claim files the stage does not hold. */
static int xfer_forget_done(struct xfer_job *j)
{
	int any = 0;
	for (int i = 0; i < j->nitems; i++) {
		any |= j->items[i].state != ITEM_PENDING;
		j->items[i].state = ITEM_PENDING;
	}
	return any ? xfer_record_items(j, j->items, j->nitems) : XS_OK;
}

/* The SHA-256 of the first `len` bytes of fd, read back; -1 on a read
 * error or an early end of file. */
static int xfer_read_sha256(int fd, int64_t len, char out[65])
{
	static const size_t bufsize = 1 << 20;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	char *buf = util_malloc(bufsize);
	int64_t off = 0;
	int rc = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) ? 0 : -1;
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	while (rc == 0 && off < len) {
		size_t want = (size_t)(len - off) < bufsize ? (size_t)(len - off) : bufsize;
		ssize_t got = pread(fd, buf, want, off);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			rc = -1;
		else {
			EVP_DigestUpdate(ctx, buf, (size_t)got);
			off += got;
		}
	}
	if (rc == 0 && EVP_DigestFinal_ex(ctx, md, &mdlen))
		for (unsigned int i = 0; i < mdlen && i < 32; i++)
			snprintf(out + 2 * i, 3, "%02x", md[i]);
	else
		rc = -1;
	free(buf);
	EVP_MD_CTX_free(ctx);
	return rc;
}

/*
 * A local stage holds its files durably only from the barrier at commit:
 * after a power cut or a machine crash, a file the store records done can
 * be missing, short or zero-filled in the stage an earlier attempt left.
 * So a resume into a local stage trusts no record: every file recorded
 * done is read back and its size and SHA-256 compared with the record;
 * one that differs is emptied and copied again. Reading a file back costs
 * a fraction of copying it (the kernel reads at disk speed, without the
 * source's latency, and SHA-256 runs at ~2 GB/s), where a barrier taken
 * before each record would cost every first attempt a wait for the disk;
 * a resume is the rare case, so it pays.
 */
static int xfer_stage_recheck(struct xfer_job *j)
{
	int changed = 0;
	for (int i = 0; i < j->nitems; i++) {
		struct item *it = &j->items[i];
		if (it->is_dir || it->state != ITEM_DONE)
			continue;
		int fd = -1;
		int64_t have = 0;
		int rc = j->dst.ops->create(&j->dst, it->path, &fd, &have, j->err, j->errlen);
		if (rc != XS_OK)
			return rc;
		char hex[65] = "";
		const char *why = NULL;
		if (it->size >= 0 && have != it->size)
			why = "its size differs";
		else if (xfer_read_sha256(fd, have, hex) < 0)
			why = "it cannot be read back";
		else if (!it->sha256 || strcmp(hex, it->sha256) != 0)
			why = "its SHA-256 differs";
		if (why) {
			log_warn("task %s: the staged copy of %s is not what was recorded (%s): "
				 "copying it again",
				 j->t->id, *it->path ? it->path : j->t->dest_path, why);
			if (xfer_fd_truncate(fd, 0, j->err, j->errlen) < 0)
				rc = XS_PERMANENT;
			it->state = ITEM_PENDING;
			changed = 1;
		}
		char e2[256];
		int f = rc == XS_OK ? j->dst.ops->finish(&j->dst, fd, j->err, j->errlen)
				    : j->dst.ops->finish(&j->dst, fd, e2, sizeof e2);
		if (rc == XS_OK)
			rc = f;
		close(fd);
		if (rc != XS_OK)
			return rc;
	}
	return changed ? xfer_record_items(j, j->items, j->nitems) : XS_OK;
}

/* Step 2: the staging area. A stage is continued only by the attempt
 * after the one that recorded the plan it was filled from. */
static int xfer_stage(struct xfer_job *j)
{
	int found = 0;
	int rc = j->dst.ops->stage(&j->dst, j->t, !j->fresh, &j->src, &found, j->err, j->errlen);
	if (rc != XS_OK)
		return rc;
	if (!found)
		return xfer_forget_done(j);
	return j->dst.caps & XFER_BY_FD ? xfer_stage_recheck(j) : XS_OK;
}

/* Counts and hashes every byte that passes; writes progress now and then. */
static int xfer_on_data(void *arg, const char *buf, size_t n)
{
	struct xfer_job *j = arg;
	EVP_DigestUpdate(j->md, buf, n);
	j->bytes_cur += (int64_t)n;
	int64_t now = util_mono_ms();
	if (now - j->last_progress >= XFER_PROGRESS_EVERY_MS) {
		j->last_progress = now;
		j->r->progress(j->r->arg,
			       __atomic_load_n(&j->sh->bytes, __ATOMIC_RELAXED) + j->bytes_cur, 0);
	}
	return 0;
}

/* Hashes bytes [0, len) of fd into the job's digest (a resumed file's
 * first part, transferred by an earlier attempt). */
static int xfer_hash_prefix(struct xfer_job *j, int fd, int64_t len)
{
	static const size_t bufsize = 1 << 20;
	char *buf = util_malloc(bufsize);
	int64_t off = 0;
	int rc = 0;
	while (off < len) {
		size_t want = (size_t)(len - off) < bufsize ? (size_t)(len - off) : bufsize;
		ssize_t got = pread(fd, buf, want, off);
		if (got <= 0) {
			snprintf(j->err, j->errlen, "cannot read back a partial file: %s",
				 got < 0 ? strerror(errno) : "unexpected end of file");
			rc = -1;
			break;
		}
		EVP_DigestUpdate(j->md, buf, (size_t)got);
		off += got;
	}
	free(buf);
	return rc;
}

static void xfer_digest_hex(struct xfer_job *j, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	EVP_DigestFinal_ex(j->md, md, &len);
	for (unsigned int i = 0; i < len && i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* ---- source versions -------------------------------------------------- */

/* "2026-11-22T12:00:00Z", with nine digits of fraction when `frac`. */
static void xfer_time_text(int64_t ns, int frac, char *out, size_t outlen)
{
	time_t sec = (time_t)(ns / 1000000000);
	long nsec = (long)(ns % 1000000000);
	if (nsec < 0) {
		sec--;
		nsec += 1000000000;
	}
	struct tm tm;
	gmtime_r(&sec, &tm);
	char day[32];
	strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
	if (frac)
		snprintf(out, outlen, "%s.%09ldZ", day, nsec);
	else
		snprintf(out, outlen, "%sZ", day);
}

static void xfer_diff_add(char *what, size_t whatlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void xfer_diff_add(char *what, size_t whatlen, const char *fmt, ...)
{
	size_t n = strlen(what);
	if (n + 2 >= whatlen)
		return;
	if (n) {
		snprintf(what + n, whatlen - n, ", ");
		n += 2;
	}
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what + n, whatlen - n, fmt, ap);
	va_end(ap);
}

static void xfer_diff_time(char *what, size_t whatlen, const char *name, int64_t a, int64_t b)
{
	int frac = a % 1000000000 != 0 || b % 1000000000 != 0;
	char ta[48], tb[48];
	xfer_time_text(a, frac, ta, sizeof ta);
	xfer_time_text(b, frac, tb, sizeof tb);
	xfer_diff_add(what, whatlen, "%s %s -> %s", name, ta, tb);
}

int xfer_version_diff(const struct xfer_version *a, const struct xfer_version *b, char *what,
		      size_t whatlen)
{
	*what = '\0';
	if ((a->known | b->known) & XV_GONE) {
		if ((a->known & XV_GONE) != (b->known & XV_GONE))
			xfer_diff_add(what, whatlen, "%s",
				      b->known & XV_GONE ? "the file was removed" : "the file appeared");
		return *what != '\0';
	}
	unsigned both = a->known & b->known;
	if ((both & XV_INODE) && a->dev != b->dev)
		xfer_diff_add(what, whatlen, "device %llu -> %llu", (unsigned long long)a->dev,
			      (unsigned long long)b->dev);
	if ((both & XV_INODE) && a->ino != b->ino)
		xfer_diff_add(what, whatlen, "inode %llu -> %llu", (unsigned long long)a->ino,
			      (unsigned long long)b->ino);
	if ((both & XV_SIZE) && a->size != b->size)
		xfer_diff_add(what, whatlen, "size %lld -> %lld", (long long)a->size,
			      (long long)b->size);
	if ((both & XV_MTIME) && a->mtime_ns != b->mtime_ns)
		xfer_diff_time(what, whatlen, "modification time", a->mtime_ns, b->mtime_ns);
	if ((both & XV_ETAG) && strcmp(a->etag, b->etag) != 0)
		xfer_diff_add(what, whatlen, "ETag %s -> %s", a->etag, b->etag);
	if ((both & XV_MODIFIED) && strcmp(a->modified, b->modified) != 0)
		xfer_diff_add(what, whatlen, "Last-Modified %s -> %s", a->modified, b->modified);
	/* The status change time alone catches a rewrite that put the
	 * modification time back (cp -p, rsync -t, touch -r); next to a
	 * change already named it would only repeat it. */
	if (!*what && (both & XV_CTIME) && a->ctime_ns != b->ctime_ns)
		xfer_diff_time(what, whatlen, "status change time", a->ctime_ns, b->ctime_ns);
	return *what != '\0';
}

char *xfer_version_text(const struct xfer_version *v)
{
	struct util_buf b = { 0 };
	util_buf_adds(&b, "");
	if (v->known & XV_GONE)
		util_buf_adds(&b, "gone ");
	if (v->known & XV_SIZE)
		util_buf_addf(&b, "size=%lld ", (long long)v->size);
	if (v->known & XV_MTIME)
		util_buf_addf(&b, "mtime=%lld ", (long long)v->mtime_ns);
	if (v->known & XV_CTIME)
		util_buf_addf(&b, "ctime=%lld ", (long long)v->ctime_ns);
	if (v->known & XV_INODE)
		util_buf_addf(&b, "dev=%llu ino=%llu ", (unsigned long long)v->dev,
			      (unsigned long long)v->ino);
	if (v->known & XV_ETAG)
		util_buf_addf(&b, "etag=%s ", v->etag);
	if (v->known & XV_MODIFIED)
		util_buf_addf(&b, "modified=%s ", v->modified);
	if (b.len)
		b.p[--b.len] = '\0';
	return b.p;
}

/* The version of an item's source now: of the descriptor `in` its copy
 * reads, or of what its path names when `in` < 0. */
static int xfer_source_version(struct xfer_job *j, const struct item *it, int in,
			       struct xfer_version *v)
{
	return j->src.ops->version(&j->src, it->path, in, v, j->err, j->errlen);
}

/* Files smaller than this are never resumed: copying one again costs less
 * than the store write that would let its partial copy be continued (one
 * transaction per file, which a package of a thousand small segments
 * would pay a thousand times). */
#define XFER_RESUME_MIN (1 << 20)

/* Before a copy: records `v` as the version the item's copy starts from.
 * *keep says whether a partial copy an earlier attempt left may be
 * continued: only when that attempt started from this very version. A
 * small file (XFER_RESUME_MIN) always starts from its first byte, and its
 * version is not recorded; a version an earlier attempt recorded for it is
 * cleared, so nothing can be continued from it later. */
static int xfer_version_start(struct xfer_job *j, struct item *it, const struct xfer_version *v,
			      int *keep)
{
	char *text = xfer_version_text(v);
	if ((v->known & XV_SIZE) && v->size < XFER_RESUME_MIN) {
		*keep = 0;
		free(text);
		if (!it->version)
			return XS_OK;
		text = NULL;
	} else {
		*keep = it->version && strcmp(it->version, text) == 0;
	}
	if (*keep) {
		free(text);
		return XS_OK;
	}
	if (it->version && text)
		log_info("task %s: the source of %s is not the version an earlier attempt "
			 "copied from: starting it again from its first byte",
			 j->t->id, *it->path ? it->path : "the file");
	if (j->r->item_version(j->r->arg, it->seq, text) < 0) {
		free(text);
		snprintf(j->err, j->errlen,
			 "stopped while a file's source version could not be recorded");
		return XS_STOPPED;
	}
	free(it->version);
	it->version = text;
	return XS_OK;
}

/* The reason for a source that changed while the item was copied. */
static int xfer_changed(struct xfer_job *j, const struct item *it, const char *what)
{
	char *w = util_strdup(what);
	char *file = util_printf("%s%s%s%s", j->src.show, j->src.path, *it->path ? "/" : "",
				 it->path);
	snprintf(j->err, j->errlen, "source changed during the copy: %s; file %s", w, file);
	log_warn("task %s: %s", j->t->id, j->err);
	free(file);
	free(w);
	return XS_CHANGED;
}

/* After a copy: whether the source is still the version it started from
 * (`before`). A file read through a descriptor is asked twice: the
 * descriptor (appended to, cut, rewritten in place) and its path
 * (replaced by another file, or removed). XS_OK, XS_CHANGED, or the error
 * of asking. */
static int xfer_version_check(struct xfer_job *j, const struct item *it, int in,
			      const struct xfer_version *before)
{
	struct xfer_version now;
	char what[512];
	int rc = xfer_source_version(j, it, in, &now);
	if (rc == XS_NOTFOUND) {
		memset(&now, 0, sizeof now);
		now.known = XV_GONE;
		rc = XS_OK;
	}
	if (rc != XS_OK)
		return rc;
	int changed = xfer_version_diff(before, &now, what, sizeof what);
	if (!changed && in >= 0) {
		if ((rc = xfer_source_version(j, it, -1, &now)) != XS_OK)
			return rc;
		changed = xfer_version_diff(before, &now, what, sizeof what);
	}
	return changed ? xfer_changed(j, it, what) : XS_OK;
}

/* The outcome of a copy that ended with `rc`, once the source has been
 * asked again: a change wins over anything; a failure to ask fails a copy
 * that had gone through; otherwise the copy's own outcome stands, with its
 * own message. */
static int xfer_version_after(struct xfer_job *j, const struct item *it, int in,
			      const struct xfer_version *before, int rc)
{
	char why[1024];
	snprintf(why, sizeof why, "%s", j->err);
	int c = xfer_version_check(j, it, in, before);
	if (c == XS_CHANGED || (c != XS_OK && rc == XS_OK))
		return c;
	if (rc != XS_OK)
		snprintf(j->err, j->errlen, "%s", why);
	return rc;
}

/* Prefixes err with the file it concerns. */
static void xfer_blame(struct xfer_job *j, const struct item *it)
{
	char *msg = util_strdup(j->err);
	if (*it->path)
		snprintf(j->err, j->errlen, "file %s: %s", it->path, msg);
	free(msg);
}

static int xfer_size_check(struct xfer_job *j, int64_t got, int64_t want, const char *where)
{
	if (want >= 0 && got != want) {
		snprintf(j->err, j->errlen, "short transfer to %s: %lld of %lld bytes", where,
			 (long long)got, (long long)want);
		return XS_TRANSIENT;
	}
	return XS_OK;
}

/* Copies one file into a stage that hands out descriptors (XFER_BY_FD),
 * from a source that does too (a copy between descriptors) or from a
 * server (a download). The source's version is taken before the first
 * byte is read and checked again after the last: a copy of a source that
 * changed meanwhile is emptied and reported as XS_CHANGED. */
static int xfer_item_into_fd(struct xfer_job *j, struct item *it, int64_t *size_out)
{
	int out = -1, in = -1, rc, keep = 0;
	int64_t have = 0, size = it->size;
	struct xfer_version before;
	int by_fd = (j->src.caps & XFER_BY_FD) != 0;
	if ((rc = j->dst.ops->create(&j->dst, it->path, &out, &have, j->err, j->errlen)) != XS_OK)
		return rc;
	if (by_fd && (rc = j->src.ops->open(&j->src, it->path, &in, &size, j->err, j->errlen)) !=
			     XS_OK)
		goto out;
	if ((rc = xfer_source_version(j, it, in, &before)) != XS_OK ||
	    (rc = xfer_version_start(j, it, &before, &keep)) != XS_OK)
		goto out;
	if (!by_fd && (before.known & XV_SIZE))
		size = before.size;
	/* Continued only if its bytes cannot have been lost to a crash (the
	 * file is marked as written in this boot either way). */
	int this_boot = xfer_fd_claim(out);
	if (!keep || (size >= 0 && have > size) || !this_boot)
		have = 0;
	if (have == 0 && xfer_fd_truncate(out, 0, j->err, j->errlen) < 0) {
		rc = XS_PERMANENT;
		goto out;
	}
	if (lseek(out, have, SEEK_SET) < 0 || xfer_hash_prefix(j, out, have) < 0) {
		rc = XS_PERMANENT;
		goto out;
	}
	j->bytes_cur = have;
	if (by_fd) {
		int r = xfer_fd_copy(in, have, out, have, size - have, xfer_on_data, j, j->stop,
				     j->err, j->errlen);
		rc = r == XFER_OK ? XS_OK : r == XFER_STOPPED ? XS_STOPPED : XS_PERMANENT;
	} else {
		rc = j->src.ops->get(&j->src, it->path, out, have, &before, xfer_on_data, j, j->err,
				     j->errlen);
		if (rc == XS_CHANGED)
			rc = xfer_changed(j, it, j->err);
	}
	if (rc == XS_OK) {
		struct stat st;
		if (fstat(out, &st) < 0) {
			snprintf(j->err, j->errlen, "cannot check the size of %s: %s",
				 *it->path ? it->path : j->t->dest_path, strerror(errno));
			rc = XS_PERMANENT;
		} else {
			rc = xfer_size_check(j, st.st_size, size, "the destination");
			*size_out = st.st_size;
		}
	}
	if (rc == XS_OK)
		rc = j->dst.ops->finish(&j->dst, out, j->err, j->errlen);
	/* A source read through a descriptor is asked again even after a
	 * failed copy: a read that ended early is what a source cut during
	 * the copy looks like. A server is asked only after a copy that went
	 * through: after a failure, the next attempt compares versions before
	 * it resumes. */
	if (rc != XS_STOPPED && rc != XS_CHANGED && (rc == XS_OK || by_fd))
		rc = xfer_version_after(j, it, in, &before, rc);
	if (rc == XS_CHANGED) {
		char e[256];
		xfer_fd_truncate(out, 0, e, sizeof e);
	}
out:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return rc;
}

/* Uploads `size` bytes of fd `in` to `rel` in the stage, resuming an
 * earlier partial upload where the protocol allows and `fresh` is 0. */
static int xfer_upload(struct xfer_job *j, int in, int64_t size, const char *rel, int fresh)
{
	int64_t have = 0;
	if ((j->dst.caps & XFER_PUT_RESUMES) && !fresh) {
		int64_t rsize = 0;
		int is_dir = 0;
		if (j->dst.ops->stat(&j->dst, rel, &is_dir, &rsize, j->err, j->errlen) == XS_OK &&
		    !is_dir && rsize > 0 && rsize <= size)
			have = rsize;
	}
	if (xfer_hash_prefix(j, in, have) < 0)
		return XS_PERMANENT;
	j->bytes_cur = have;
	/* The upload counts what it sends and fails short of `size`; what the
	 * server kept is checked once for the whole stage (xfer_verify). */
	return j->dst.ops->put(&j->dst, rel, in, have, size, xfer_on_data, j, j->err, j->errlen);
}

/* Copies one file to a server's stage, from a source read through a
 * descriptor, or from another server through a spool file. The source's
 * version is checked as in xfer_item_into_fd: around the upload of a
 * file read through a descriptor, around the download into the spool of
 * a server's. */
static int xfer_item_put(struct xfer_job *j, struct item *it, int64_t *size_out)
{
	int in = -1, rc, keep = 0;
	int64_t size = it->size;
	char *spool = NULL;
	struct xfer_version before;
	if (j->src.caps & XFER_BY_FD) {
		if ((rc = j->src.ops->open(&j->src, it->path, &in, &size, j->err, j->errlen)) !=
		    XS_OK)
			goto out;
		if ((rc = xfer_source_version(j, it, in, &before)) != XS_OK ||
		    (rc = xfer_version_start(j, it, &before, &keep)) != XS_OK)
			goto out;
		rc = xfer_upload(j, in, size, it->path, !keep);
		if (rc != XS_STOPPED)
			rc = xfer_version_after(j, it, in, &before, rc);
		if (rc == XS_OK)
			*size_out = size;
		goto out;
	}
	/* Download into the spool (resuming), then upload from it. */
	spool = util_printf("%s/%d", j->spool, it->seq);
	in = open(spool, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	struct stat st;
	if (in < 0 || fstat(in, &st) < 0) {
		snprintf(j->err, j->errlen, "cannot open spool file %s: %s", spool, strerror(errno));
		rc = XS_PERMANENT;
		goto out;
	}
	if ((rc = xfer_source_version(j, it, -1, &before)) != XS_OK ||
	    (rc = xfer_version_start(j, it, &before, &keep)) != XS_OK)
		goto out;
	if (before.known & XV_SIZE)
		size = before.size;
	/* As a local stage's file: bytes written before a crash may be zeros
	 * on the disk, so a spool file is continued, and the upload it fed,
	 * only within the boot that wrote it. */
	if (!xfer_fd_claim(in))
		keep = 0;
	int64_t have = !keep || (size >= 0 && st.st_size > size) ? 0 : st.st_size;
	if (have == 0 && ftruncate(in, 0) < 0) {
		rc = XS_PERMANENT;
		goto out;
	}
	EVP_MD_CTX *hold = j->md;
	j->md = EVP_MD_CTX_new();
	EVP_DigestInit_ex(j->md, EVP_sha256(), NULL);
	rc = lseek(in, have, SEEK_SET) < 0
		     ? XS_PERMANENT
		     : j->src.ops->get(&j->src, it->path, in, have, &before, xfer_on_data, j,
				       j->err, j->errlen);
	EVP_MD_CTX_free(j->md);
	j->md = hold;
	if (rc == XS_CHANGED)
		rc = xfer_changed(j, it, j->err);
	if (rc == XS_OK && fstat(in, &st) == 0)
		rc = xfer_size_check(j, st.st_size, size, "the spool");
	if (rc == XS_OK)
		rc = xfer_version_check(j, it, -1, &before);
	if (rc == XS_CHANGED && ftruncate(in, 0) < 0)
		log_warn("task %s: cannot empty spool file %s: %s", j->t->id, spool,
			 strerror(errno));
	if (rc != XS_OK)
		goto out;
	size = st.st_size;
	j->bytes_cur = 0;
	/* An upload an earlier attempt left holds bytes of the spool as it
	 * was then: continued only when the spool was. */
	rc = xfer_upload(j, in, size, it->path, !keep);
	if (rc == XS_OK)
		*size_out = size;
out:
	if (in >= 0)
		close(in);
	if (rc == XS_OK && spool)
		unlink(spool);
	free(spool);
	return rc;
}

/* Step 3 for one item. */
static int xfer_item(struct xfer_job *j, struct item *it)
{
	if (it->is_dir)
		return j->dst.ops->mkdir(&j->dst, it->path, j->err, j->errlen);
	j->md = EVP_MD_CTX_new();
	if (!j->md || !EVP_DigestInit_ex(j->md, EVP_sha256(), NULL)) {
		snprintf(j->err, j->errlen, "internal error: SHA-256 is not available");
		EVP_MD_CTX_free(j->md);
		j->md = NULL;
		return XS_PERMANENT;
	}
	int64_t size = 0;
	j->bytes_cur = 0;
	int rc = j->dst.caps & XFER_BY_FD ? xfer_item_into_fd(j, it, &size)
					  : xfer_item_put(j, it, &size);
	if (rc == XS_OK) {
		char hex[65] = "";
		xfer_digest_hex(j, hex);
		if (j->r->item_done(j->r->arg, it->seq, size, hex) < 0) {
			/* The file is in the stage; the next attempt does it
			 * again. */
			snprintf(j->err, j->errlen, "stopped while a file done could not be recorded");
			rc = XS_STOPPED;
		}
		if (rc == XS_OK) {
			/* The job's copy of the items is what a later
			 * xfer_record_items writes back whole (a stage found
			 * short, a new plan): it must hold what the store was
			 * just told, or a file done in this attempt would lose
			 * its recorded SHA-256. */
			free(it->sha256);
			it->sha256 = util_strdup(hex);
			it->state = ITEM_DONE;
			it->size = size;
			metrics_file(size);
			__atomic_add_fetch(&j->sh->bytes, size, __ATOMIC_RELAXED);
			j->bytes_cur = 0;
		}
	}
	EVP_MD_CTX_free(j->md);
	j->md = NULL;
	return rc;
}

/* ---- step 3: the copy, several files at once ---------------------------- */

/* The worker's report, one call at a time whichever lane makes it. */
static int xfer_locked_items(void *arg, struct item **v, int *n)
{
	struct xfer_shared *sh = arg;
	pthread_mutex_lock(&sh->lock);
	int rc = sh->real->items(sh->real->arg, v, n);
	pthread_mutex_unlock(&sh->lock);
	return rc;
}

static int xfer_locked_set_items(void *arg, const struct item *v, int n)
{
	struct xfer_shared *sh = arg;
	pthread_mutex_lock(&sh->lock);
	int rc = sh->real->set_items(sh->real->arg, v, n);
	pthread_mutex_unlock(&sh->lock);
	return rc;
}

static int xfer_locked_item_version(void *arg, int seq, const char *version)
{
	struct xfer_shared *sh = arg;
	pthread_mutex_lock(&sh->lock);
	int rc = sh->real->item_version(sh->real->arg, seq, version);
	pthread_mutex_unlock(&sh->lock);
	return rc;
}

static int xfer_locked_item_done(void *arg, int seq, int64_t size, const char *sha256)
{
	struct xfer_shared *sh = arg;
	pthread_mutex_lock(&sh->lock);
	int rc = sh->real->item_done(sh->real->arg, seq, size, sha256);
	pthread_mutex_unlock(&sh->lock);
	return rc;
}

static void xfer_locked_item_failed(void *arg, int seq, const char *error)
{
	struct xfer_shared *sh = arg;
	pthread_mutex_lock(&sh->lock);
	sh->real->item_failed(sh->real->arg, seq, error);
	pthread_mutex_unlock(&sh->lock);
}

static void xfer_locked_progress(void *arg, int64_t bytes, int last)
{
	struct xfer_shared *sh = arg;
	pthread_mutex_lock(&sh->lock);
	sh->real->progress(sh->real->arg, bytes, last);
	pthread_mutex_unlock(&sh->lock);
}

/* Copies items [sh->next, sh->end) that are not done yet, taking them one
 * at a time, until they run out, the stop flag is raised or a lane
 * fails; the first failure (and its reason) is kept in sh. */
static void xfer_lane_run(struct xfer_job *j)
{
	struct xfer_shared *sh = j->sh;
	for (;;) {
		pthread_mutex_lock(&sh->lock);
		int i = sh->rc == XS_OK && sh->next < sh->end ? sh->next++ : -1;
		pthread_mutex_unlock(&sh->lock);
		if (i < 0)
			return;
		struct item *it = &j->items[i];
		if (it->state == ITEM_DONE)
			continue;
		int rc = *j->stop ? XS_STOPPED : xfer_item(j, it);
		if (rc == XS_OK)
			continue;
		if (rc != XS_STOPPED) {
			if (rc == XS_NOTFOUND)
				rc = XS_PERMANENT;
			/* A changed source's reason names its file already. */
			if (rc != XS_CHANGED)
				xfer_blame(j, it);
			j->r->item_failed(j->r->arg, it->seq, j->err);
		}
		pthread_mutex_lock(&sh->lock);
		if (sh->rc == XS_OK) {
			sh->rc = rc;
			snprintf(sh->err, sizeof sh->err, "%s", j->err);
		}
		pthread_mutex_unlock(&sh->lock);
		return;
	}
}

/* One extra lane: its own connections (one session per server, kept
 * for all the files it copies), its own digest and messages; the items,
 * the stage and the report are shared. */
struct xfer_lane {
	struct xfer_job j;
	pthread_t thread;
	int started;
	char err[2048];
};

static void *xfer_lane_main(void *arg)
{
	struct xfer_lane *l = arg;
	char why[512];
	int rc = l->j.src.ops->connect(l->j.c, &l->j.src, l->j.stop, 1, why, sizeof why);
	if (rc == XS_OK)
		rc = l->j.dst.ops->connect(l->j.c, &l->j.dst, l->j.stop, 0, why, sizeof why);
	/* A lane that cannot connect leaves its files to the others. */
	if (rc == XS_OK)
		xfer_lane_run(&l->j);
	else
		log_debug("task %s: a parallel connection failed: %s", l->j.t->id, why);
	return NULL;
}

/* The session of an end copied for a lane: the same server and paths, no
 * connection yet. */
static void xfer_end_share(struct xfer_end *to, const struct xfer_end *from)
{
	*to = *from;
	to->conn = NULL;
}

/* Copies items [from, to) with up to `lanes` files in flight: this thread
 * is one lane, each other lane a thread with its own connections, started
 * only when every server involved has a connection to spare within
 * max_per_host (a lane never waits for one, so tasks cannot wait on each
 * other). */
static int xfer_copy_range(struct xfer_job *j, int from, int to, int lanes)
{
	struct xfer_shared *sh = j->sh;
	int todo = 0;
	for (int i = from; i < to; i++)
		todo += j->items[i].state != ITEM_DONE;
	if (lanes > todo)
		lanes = todo;
	sh->next = from;
	sh->end = to;
	sh->rc = XS_OK;
	struct xfer_lane *extra = lanes > 1 ? util_calloc((size_t)lanes - 1, sizeof *extra) : NULL;
	int nextra = 0;
	for (int k = 0; k + 1 < lanes; k++) {
		if (xfer_hosts_try(j->src.key, j->dst.key, j->c->max_per_host) < 0)
			break;
		struct xfer_lane *l = &extra[nextra];
		l->j = *j;
		xfer_end_share(&l->j.src, &j->src);
		xfer_end_share(&l->j.dst, &j->dst);
		l->j.md = NULL;
		l->j.bytes_cur = 0;
		l->j.err = l->err;
		l->j.errlen = sizeof l->err;
		if (pthread_create(&l->thread, NULL, xfer_lane_main, l) != 0) {
			xfer_hosts_release(j->src.key, j->dst.key);
			break;
		}
		l->started = 1;
		nextra++;
	}
	xfer_lane_run(j);
	for (int k = 0; k < nextra; k++) {
		pthread_join(extra[k].thread, NULL);
		extra[k].j.src.ops->disconnect(&extra[k].j.src);
		extra[k].j.dst.ops->disconnect(&extra[k].j.dst);
		xfer_hosts_release(j->src.key, j->dst.key);
	}
	free(extra);
	if (sh->rc != XS_OK)
		snprintf(j->err, j->errlen, "%s", sh->err);
	return sh->rc;
}

/* Step 3: directories first, one at a time and shallow first, so that a
 * file's directory is there before it; then the media files, `parallel`
 * at a time; then the manifests one at a time, deepest first, so that a
 * player never finds a manifest whose segments or variant playlists are
 * not there yet (xfer_item_cmp). */
static int xfer_copy(struct xfer_job *j)
{
	j->sh->locked = (struct xfer_report){
		.arg = j->sh,
		.items = xfer_locked_items,
		.set_items = xfer_locked_set_items,
		.item_version = xfer_locked_item_version,
		.item_done = xfer_locked_item_done,
		.item_failed = xfer_locked_item_failed,
		.progress = xfer_locked_progress,
	};
	const struct xfer_report *own = j->r;
	j->r = &j->sh->locked;
	int files = 0, manifests = j->nitems;
	while (files < j->nitems && xfer_item_rank(&j->items[files]) == 0)
		files++;
	while (manifests > files && xfer_item_rank(&j->items[manifests - 1]) == 2)
		manifests--;
	int parallel = j->c->parallel > 0 ? j->c->parallel : 1;
	int rc = xfer_copy_range(j, 0, files, 1);
	if (rc == XS_OK)
		rc = xfer_copy_range(j, files, manifests, parallel);
	if (rc == XS_OK)
		rc = xfer_copy_range(j, manifests, j->nitems, 1);
	j->r = own;
	return rc;
}

/* A package's items sorted by path, for the check of a stage. */
static int xfer_cmp_item_paths(const void *a, const void *b)
{
	return strcmp((*(struct item *const *)a)->path, (*(struct item *const *)b)->path);
}

static int xfer_find_item_path(const void *key, const void *elem)
{
	return strcmp(key, (*(struct item *const *)elem)->path);
}

/* The item `it` and, for a directory, every item below it go back to
 * pending (the next attempt copies them again) and are marked `removed`. */
static void xfer_unplan_below(struct xfer_job *j, const struct item *it, char *removed)
{
	size_t len = strlen(it->path);
	for (int i = 0; i < j->nitems; i++) {
		struct item *o = &j->items[i];
		if (o == it || (it->is_dir && strncmp(o->path, it->path, len) == 0 &&
				o->path[len] == '/')) {
			o->state = ITEM_PENDING;
			removed[i] = 1;
		}
	}
}

/* Lists the staged directory `dir` (relative to the stage) and checks each
 * entry against the plan: a file with its planned size is marked in
 * `seen`; anything the plan does not name is removed, so the commit
 * publishes exactly the plan; an entry of the wrong kind is removed and
 * its item copied again. */
static int xfer_verify_dir(struct xfer_job *j, struct item **byname, int n, char *seen,
			   char *removed, const char *dir, int *bad)
{
	struct xfer_entry *e = NULL;
	int ne = 0;
	int rc = j->dst.ops->stage_list(&j->dst, dir, &e, &ne, j->err, j->errlen);
	for (int k = 0; rc == XS_OK && k < ne; k++) {
		char *rel = *dir ? util_printf("%s/%s", dir, e[k].name) : util_strdup(e[k].name);
		struct item **hit = bsearch(rel, byname, (size_t)n, sizeof *byname,
					    xfer_find_item_path);
		struct item *it = hit ? *hit : NULL;
		if (it && it->is_dir == e[k].is_dir) {
			if (!it->is_dir) {
				seen[hit - byname] = 1;
				if (e[k].size >= 0 && it->size >= 0 && e[k].size != it->size) {
					log_warn("task %s: short transfer to %s: %lld of %lld bytes; "
						 "file %s",
						 j->t->id, j->dst.show, (long long)e[k].size,
						 (long long)it->size, it->path);
					it->state = ITEM_PENDING;
					if (*bad < 0)
						*bad = (int)(it - j->items);
				}
			}
			free(rel);
			continue;
		}
		log_warn("task %s: %s in the stage on %s is %s: removed before the commit", j->t->id,
			 rel, j->dst.show,
			 it ? (it->is_dir ? "a file where the plan has a directory"
				          : "a directory where the plan has a file")
			    : "not in the task's plan");
		rc = j->dst.ops->remove(&j->dst, rel, e[k].is_dir, j->err, j->errlen);
		if (rc == XS_NOTFOUND)
			rc = XS_OK;
		if (it) {
			xfer_unplan_below(j, it, removed);
			if (*bad < 0)
				*bad = (int)(it - j->items);
		}
		free(rel);
	}
	xfer_curl_free_entries(e, ne);
	return rc;
}

/* Before the commit, what a server's stage holds is checked against the
 * plan in one listing per directory (FTP and SFTP: XFER_STAGE_LISTS; a
 * WebDAV server lists nothing here, and its PUT answers stand; a local
 * stage is pruned by its own commit): a file the server kept short, or
 * lost, is copied again by the next attempt, and whatever the plan does
 * not name (left by an attempt that recorded no plan, from an earlier
 * listing of a source that has changed since, or put there by hand) is
 * removed, so the commit publishes exactly the plan. */
static int xfer_verify(struct xfer_job *j)
{
	if (!(j->dst.caps & XFER_STAGE_LISTS))
		return XS_OK;
	/* A single file's stage holds that file only; where the protocol
	 * cannot list (WebDAV), a HEAD would be a request per task for what
	 * the PUT's answer and byte count already say. */
	if (!j->t->dest_is_dir && !(j->dst.caps & XFER_CAN_LIST))
		return XS_OK;
	int rc = XS_OK, bad = -1;
	int64_t got = -1;
	if (!j->t->dest_is_dir) {
		int is_dir = 0;
		rc = j->dst.ops->stat(&j->dst, "", &is_dir, &got, j->err, j->errlen);
		if (rc == XS_OK && j->nitems == 1 && got >= 0 && j->items[0].size >= 0 &&
		    got != j->items[0].size) {
			bad = 0;
			j->items[0].state = ITEM_PENDING;
		}
		if (rc == XS_NOTFOUND)
			rc = XS_TRANSIENT;
		if (rc != XS_OK || bad < 0)
			return rc;
		snprintf(j->err, j->errlen, "short transfer to %s: %lld of %lld bytes", j->dst.show,
			 (long long)got, (long long)j->items[0].size);
		log_warn("task %s: %s", j->t->id, j->err);
		return xfer_record_items(j, j->items, j->nitems) == XS_OK ? XS_TRANSIENT
									 : XS_STOPPED;
	}
	struct item **byname = util_malloc(sizeof *byname * (size_t)(j->nitems + 1));
	char *seen = util_calloc((size_t)j->nitems + 1, 1);
	char *removed = util_calloc((size_t)j->nitems + 1, 1);
	int n = 0;
	for (int i = 0; i < j->nitems; i++)
		if (*j->items[i].path)
			byname[n++] = &j->items[i];
	qsort(byname, (size_t)n, sizeof *byname, xfer_cmp_item_paths);
	/* The stage itself, then each planned directory still standing
	 * (items list a directory before what it holds). */
	rc = xfer_verify_dir(j, byname, n, seen, removed, "", &bad);
	for (int i = 0; i < j->nitems && rc == XS_OK; i++)
		if (j->items[i].is_dir && *j->items[i].path && !removed[i])
			rc = xfer_verify_dir(j, byname, n, seen, removed, j->items[i].path, &bad);
	for (int k = 0; k < n && rc == XS_OK; k++)
		if (!byname[k]->is_dir && !seen[k] && byname[k]->state == ITEM_DONE) {
			log_warn("task %s: the staged copy of %s is missing on %s", j->t->id,
				 byname[k]->path, j->dst.show);
			byname[k]->state = ITEM_PENDING;
			if (bad < 0)
				bad = (int)(byname[k] - j->items);
		}
	free(byname);
	free(seen);
	free(removed);
	if (rc == XS_NOTFOUND)
		rc = XS_TRANSIENT;
	if (rc != XS_OK || bad < 0)
		return rc;
	snprintf(j->err, j->errlen, "the staged copy of %s on %s was not what was sent; it is "
		 "copied again", j->items[bad].path, j->dst.show);
	return xfer_record_items(j, j->items, j->nitems) == XS_OK ? XS_TRANSIENT : XS_STOPPED;
}

/* Step 4: the asset goes in place. */
static int xfer_commit(struct xfer_job *j, char **note)
{
	int rc = j->dst.ops->commit(&j->dst, j->items, j->nitems, note, j->err, j->errlen);
	if (*note)
		log_warn("task %s: %s", j->t->id, *note);
	return rc;
}

static int xfer_verdict(int xs)
{
	switch (xs) {
	case XS_OK:
		return XFER_OK;
	case XS_TRANSIENT:
		return XFER_RETRY;
	case XS_CHANGED:
		return XFER_CHANGED;
	case XS_STOPPED:
		return XFER_STOPPED;
	default:
		return XFER_FAILED;
	}
}

int xfer_load(const struct config *c, const struct task *t, const struct xfer_report *r,
	      volatile sig_atomic_t *stop, char *err, size_t errlen)
{
	struct xfer_shared sh = { .real = r };
	struct xfer_job j = { .c = c, .r = r, .t = t, .stop = stop, .err = err, .errlen = errlen,
			      .sh = &sh };
	int rc, held = 0;
	char *note = NULL;
	*err = '\0';
	if (*stop)
		return XFER_STOPPED;
	pthread_mutex_init(&sh.lock, NULL);
	if (xfer_end_init(c, &j.src, t->source, 1, err, errlen) < 0 ||
	    xfer_dest_end(c, &j.dst, err, errlen) < 0) {
		rc = XS_PERMANENT;
		goto out;
	}
	if (xfer_hosts_acquire(j.src.key, j.dst.key, c->max_per_host, stop) < 0) {
		rc = XS_STOPPED;
		goto out;
	}
	held = 1;
	if ((rc = j.src.ops->connect(c, &j.src, stop, 1, err, errlen)) != XS_OK ||
	    (rc = j.dst.ops->connect(c, &j.dst, stop, 0, err, errlen)) != XS_OK)
		goto out;
	/* Between two ends that hand out no descriptors, a file passes
	 * through a spool file. */
	if (!(j.src.caps & XFER_BY_FD) && !(j.dst.caps & XFER_BY_FD)) {
		j.spool = util_printf("%s/spool-%s", c->spool_dir ? c->spool_dir : ".", t->id);
		if (mkdir(j.spool, 0700) < 0 && errno != EEXIST) {
			snprintf(err, errlen, "cannot create spool directory %s: %s", j.spool,
				 strerror(errno));
			rc = XS_PERMANENT;
			goto out;
		}
	}
	rc = xfer_plan(&j);
	if (rc == XS_NOTFOUND) {
		if (strncmp(err, "source asset does not exist", 27) != 0) {
			char *m = util_printf("source asset does not exist: %s", err);
			snprintf(err, errlen, "%s", m);
			free(m);
		}
		rc = XS_PERMANENT;
	}
	if (rc != XS_OK || (rc = xfer_stage(&j)) != XS_OK)
		goto out;
	for (int i = 0; i < j.nitems; i++)
		if (j.items[i].state == ITEM_DONE && j.items[i].size > 0)
			sh.bytes += j.items[i].size;
	rc = xfer_copy(&j);
	if (rc == XS_OK)
		rc = xfer_verify(&j);
	if (rc == XS_OK)
		rc = xfer_commit(&j, &note);
	if (rc == XS_OK) {
		/* The last word on progress: the view of a finished task shows
		 * every byte. The asset is in place whatever happens here. */
		r->progress(r->arg, sh.bytes, 1);
	}
out:
	/* A stage is kept for the next attempt unless the task failed for
	 * good. */
	if (j.dst.stage)
		j.dst.ops->unstage(&j.dst, rc == XS_PERMANENT);
	if (j.spool && (rc == XS_OK || rc == XS_PERMANENT)) {
		for (int i = 0; i < j.nitems; i++) {
			char *f = util_printf("%s/%d", j.spool, j.items[i].seq);
			unlink(f);
			free(f);
		}
		rmdir(j.spool);
	}
	/* The connections close before their places under max_per_host are
	 * given back, or another task could connect while they are still
	 * open. */
	if (j.src.ops)
		j.src.ops->disconnect(&j.src);
	if (j.dst.ops)
		j.dst.ops->disconnect(&j.dst);
	if (held)
		xfer_hosts_release(j.src.key, j.dst.key);
	item_free_all(j.items, j.nitems);
	xfer_end_free(&j.src);
	xfer_end_free(&j.dst);
	free(j.spool);
	free(note);
	pthread_mutex_destroy(&sh.lock);
	return xfer_verdict(rc);
}

void xfer_abandon(const struct config *c, const struct task *t)
{
	struct xfer_end dst;
	char err[512];
	volatile sig_atomic_t never = 0;
	if (t->kind != TASK_LOAD || xfer_dest_end(c, &dst, err, sizeof err) < 0)
		return;
	if (xfer_hosts_acquire(dst.key, NULL, c->max_per_host, &never) == 0) {
		if (dst.ops->connect(c, &dst, &never, 0, err, sizeof err) == XS_OK)
			dst.ops->abandon(&dst, t);
		dst.ops->disconnect(&dst);
		xfer_hosts_release(dst.key, NULL);
	}
	xfer_end_free(&dst);
}

int xfer_purge(const struct config *c, const struct task *t, volatile sig_atomic_t *stop,
	       char **note, char *err, size_t errlen)
{
	struct xfer_end dst;
	*err = '\0';
	if (xfer_dest_end(c, &dst, err, errlen) < 0)
		return XFER_FAILED;
	if (xfer_hosts_acquire(dst.key, NULL, c->max_per_host, stop) < 0) {
		xfer_end_free(&dst);
		return XFER_STOPPED;
	}
	int rc = dst.ops->connect(c, &dst, stop, 0, err, errlen);
	if (rc == XS_OK)
		rc = dst.ops->purge(&dst, t, note, err, errlen);
	dst.ops->disconnect(&dst);
	xfer_hosts_release(dst.key, NULL);
	xfer_end_free(&dst);
	return xfer_verdict(rc);
}

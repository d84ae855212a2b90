/*
 * xfer.h - the tables of operations behind which the transfer ends sit,
 * and the libcurl plumbing (xfer_curl.c) the servers' protocols share.
 * Only the transfer files include it.
 *
 * Two levels. xfer.c, the orchestrator, plans, stages, copies, checks and
 * commits over two ends, each behind struct xfer_end_ops: a path on this
 * machine (xfer_local.c) or a server (xfer_remote.c). It never asks which
 * kind an end is, only what it can do (struct xfer_end.caps): an end
 * that hands out descriptors (XFER_BY_FD) is read and written through
 * them, a server through its get and put, and between two servers a file
 * passes through a spool file.
 *
 * A server's end drives its protocol through struct xfer_ops, one file
 * per protocol sharing the stem (xfer_ftp.c, xfer_sftp.c, xfer_dav.c,
 * xfer_http.c). What a protocol decides is what differs between servers:
 * how a path is told to be a file or a directory (FTP: SIZE then CWD;
 * SFTP: open, then list; HTTP: HEAD, then "path/"), how a directory is
 * made, how a name is moved, how a tree is removed, and what the protocol
 * can do at all (list a directory, continue an upload). What is the same
 * everywhere (a download into a descriptor, an upload from one, a listing,
 * the version of a file, the sorting of failures into enum xfer_status)
 * stays in xfer_curl.c. A new protocol over libcurl is one new file with
 * one table, and one line in xfer_curl.c's table of schemes; a new kind of
 * end is one new file with one struct xfer_end_ops.
 *
 * Every operation returns an enum xfer_status and writes its reason into
 * err, credentials masked.
 */
#ifndef XFER_H
#define XFER_H

#include "apubid.h"

/* What a protocol can do (struct xfer_ops.caps). */
#define XFER_CAN_LIST 1    /* list a directory: packages as sources, verify a stage */
#define XFER_CAN_WRITE 2   /* be a destination root: put, mkdir, rename, remove */
#define XFER_PUT_RESUMES 4 /* continue a partial upload (FTP APPE, SFTP append) */
/* What else an end can do (struct xfer_end.caps, which also carries the
 * protocol's bits above). */
#define XFER_PLANS 8        /* a source that plans a package from its manifest */
#define XFER_BY_FD 16       /* a path on this machine: files are read and staged
			     * through descriptors; its stage is durable from the
			     * commit's barrier only, so a resume reads back what
			     * the store records done */
#define XFER_STAGE_LISTS 32 /* a destination whose stage is listed and checked
			     * against the plan before the commit */

struct xfer_ops {
	const char *name; /* "ftp", "sftp", "webdav", "http", for messages */
	unsigned caps;    /* XFER_ bits */
	/* The transfers proper, the same libcurl calls for every protocol
	 * (xfer_curl.c; see apubid.h): a directory's entries (NULL where
	 * the protocol lists nothing), a file's version, a download into a
	 * descriptor from an offset, an upload from one. */
	int (*list)(struct xfer_curl *x, const char *dir, struct xfer_entry **entries, int *n,
		    char *err, size_t errlen);
	int (*version)(struct xfer_curl *x, const char *path, struct xfer_version *v, char *err,
		       size_t errlen);
	int (*get)(struct xfer_curl *x, const char *path, int fd, int64_t offset,
		   const struct xfer_version *expect,
		   int (*on_data)(void *arg, const char *buf, size_t n), void *arg, char *err,
		   size_t errlen);
	int (*put)(struct xfer_curl *x, const char *path, int fd, int64_t offset, int64_t size,
		   int (*on_data)(void *arg, const char *buf, size_t n), void *arg, char *err,
		   size_t errlen);
	/* What a stage's directory `dir` holds, every entry: symbolic links
	 * and special files as files (so the check before a commit removes
	 * them like any file the plan does not name); NULL where a stage
	 * cannot be listed. */
	int (*stage_list)(struct xfer_curl *x, const char *dir, struct xfer_entry **entries,
			  int *n, char *err, size_t errlen);
	/* For a source that lists nothing: the files of the package that the
	 * file `path` describes (an HLS or DASH manifest), as paths relative
	 * to the directory that holds `path` (the manifest itself among them),
	 * each with its size or -1; NULL where the protocol has no such
	 * planner. xfer.c plans again on every attempt, adds the directories
	 * the paths imply and fetches each file from that directory; a
	 * planner may keep what it read on the session (xfer_curl_set_extra)
	 * and answer get and version for those files from it (xfer_http.c
	 * keeps the manifests' bytes). *entries is malloc'ed
	 * (xfer_curl_free_entries). */
	int (*plan)(struct xfer_curl *x, const char *path, struct xfer_entry **entries, int *n,
		    char *err, size_t errlen);
	/* Whether `path` is a file (with its size, -1 when the server does
	 * not tell) or a directory; a path ending in '/' must be a
	 * directory. XS_NOTFOUND when there is neither. */
	int (*stat)(struct xfer_curl *x, const char *path, int *is_dir, int64_t *size, char *err,
		    size_t errlen);
	/* Makes the directory `dir` (one level); one that is there already is
	 * fine. */
	int (*mkdir)(struct xfer_curl *x, const char *dir, char *err, size_t errlen);
	/* Moves `from` to `to`, replacing a file at `to`. */
	int (*rename)(struct xfer_curl *x, const char *from, const char *to, char *err,
		      size_t errlen);
	/* Removes a file, or a directory tree when is_dir (or when the path
	 * turns out to be one). XS_NOTFOUND when nothing is there. */
	int (*remove)(struct xfer_curl *x, const char *path, int is_dir, char *err, size_t errlen);
};

extern const struct xfer_ops xfer_ftp_ops, xfer_sftp_ops, xfer_dav_ops, xfer_http_ops;

/* The table of a session (its scheme's; an http(s) session is WebDAV's,
 * which can also do everything HTTP's can). */
const struct xfer_ops *xfer_curl_ops(const struct xfer_curl *x);

/* ---- the ends of a transfer: xfer.c drives them ------------------------ */

struct xfer_end_ops;

/* One end of a task: its source, or the destination root. The lanes of a
 * task (xfer.c) each take a copy with a connection of their own; the rest
 * is shared. */
struct xfer_end {
	const struct xfer_end_ops *ops;
	unsigned caps;  /* XFER_ bits */
	char *path;     /* the source, or the root: a path without a trailing '/' */
	char *show;     /* what names the end before `path` in messages: the
			 * server, credentials masked; "" on this machine */
	char *key;      /* "scheme://host:port", the server's place under
			 * max_per_host; NULL on this machine */
	void *site;     /* the end's own state, set by init, freed by release */
	void *conn;     /* one lane's connection (connect, disconnect) */
	void *stage;    /* a destination's stage (stage, unstage) */
};

/* Paths below: `rel` is relative to the source's path (a source) or to the
 * stage (a destination), "" for the file itself. An operation an end's
 * caps rule out is NULL. */
struct xfer_end_ops {
	/* Fills e from the source or root `u` (NULL: e->path is a plain
	 * local path, already set). */
	int (*init)(const struct config *c, struct xfer_end *e, const struct url *u,
		    int is_source, char *err, size_t errlen);
	void (*release)(struct xfer_end *e);
	int (*connect)(const struct config *c, struct xfer_end *e, volatile sig_atomic_t *stop,
		       int is_source, char *err, size_t errlen);
	void (*disconnect)(struct xfer_end *e);

	/* A source. Its files: the tree below a directory (is_dir), each
	 * entry named by its relative path, directories before what they
	 * hold; or the file itself, as one entry named "". XS_NOTFOUND when
	 * there is nothing. */
	int (*list)(struct xfer_end *e, int is_dir, struct xfer_entry **entries, int *n,
		    char *err, size_t errlen);
	/* XFER_PLANS: the files of the package the manifest `path` describes,
	 * relative to its directory (struct xfer_ops plan). */
	int (*plan)(struct xfer_end *e, const char *path, struct xfer_entry **entries, int *n,
		    char *err, size_t errlen);
	/* XFER_BY_FD: a file opened for reading, with its size. */
	int (*open)(struct xfer_end *e, const char *rel, int *fd, int64_t *size, char *err,
		    size_t errlen);
	/* The version of a file: of the descriptor `fd` from open, or what
	 * the path names now when fd < 0. XS_NOTFOUND when it is gone. */
	int (*version)(struct xfer_end *e, const char *rel, int fd, struct xfer_version *v,
		       char *err, size_t errlen);
	/* Not XFER_BY_FD: a download into fd from `offset`, refused with
	 * XS_CHANGED when the answer is not the version `expect`. */
	int (*get)(struct xfer_end *e, const char *rel, int fd, int64_t offset,
		   const struct xfer_version *expect,
		   int (*on_data)(void *arg, const char *buf, size_t n), void *arg, char *err,
		   size_t errlen);

	/* A destination. Prepares the stage of task t (its hidden name beside
	 * the final one, the directories above it); with `resume`, what an
	 * earlier attempt staged is kept and *found says whether there was
	 * any; without, it is cleared. `src` is the task's other end. */
	int (*stage)(struct xfer_end *e, const struct task *t, int resume,
		     const struct xfer_end *src, int *found, char *err, size_t errlen);
	int (*mkdir)(struct xfer_end *e, const char *rel, char *err, size_t errlen);
	/* XFER_BY_FD: a staged file opened for writing, not truncated, *have
	 * its size; finish when it is written whole (the caller then closes
	 * fd). Both may be called from several lanes at once. */
	int (*create)(struct xfer_end *e, const char *rel, int *fd, int64_t *have, char *err,
		      size_t errlen);
	int (*finish)(struct xfer_end *e, int fd, char *err, size_t errlen);
	/* Not XFER_BY_FD: an upload of bytes [offset, size) of fd, and what
	 * the stage holds at `rel` (a partial upload to continue, the check of
	 * a single file's stage). */
	int (*put)(struct xfer_end *e, const char *rel, int fd, int64_t offset, int64_t size,
		   int (*on_data)(void *arg, const char *buf, size_t n), void *arg, char *err,
		   size_t errlen);
	int (*stat)(struct xfer_end *e, const char *rel, int *is_dir, int64_t *size, char *err,
		    size_t errlen);
	/* XFER_STAGE_LISTS: a staged directory's every entry, and the removal
	 * of one the plan does not name. */
	int (*stage_list)(struct xfer_end *e, const char *rel, struct xfer_entry **entries,
			  int *n, char *err, size_t errlen);
	int (*remove)(struct xfer_end *e, const char *rel, int is_dir, char *err, size_t errlen);
	/* Puts the stage in place: exactly the plan `items` (what the stage
	 * holds beyond it goes first), the asset it replaces removed after;
	 * *note says what could not be tidied. */
	int (*commit)(struct xfer_end *e, const struct item *items, int nitems, char **note,
		      char *err, size_t errlen);
	/* Lets go of the stage; `discard` (a task failed for good) removes it. */
	void (*unstage)(struct xfer_end *e, int discard);
	/* Removes the asset of purge task t; *note when nothing was there. */
	int (*purge)(struct xfer_end *e, const struct task *t, char **note, char *err,
		     size_t errlen);
	/* Removes whatever the attempts of load task t left. */
	void (*abandon)(struct xfer_end *e, const struct task *t);
};

extern const struct xfer_end_ops xfer_local_end, xfer_remote_end;

/* ---- xfer_curl.c: the plumbing the protocols share -------------------- */

int xfer_curl_fail(struct xfer_curl *x, int status, const char *path, char *err, size_t errlen,
		   const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* XS_OK for an absolute path without control characters. */
int xfer_curl_check_path(struct xfer_curl *x, const char *path, char *err, size_t errlen);
/* A request for `path` without its body (HTTP HEAD, FTP SIZE, SFTP open);
 * *size (NULL allowed) is what the server said, -1 if nothing. */
int xfer_curl_head(struct xfer_curl *x, const char *path, int64_t *size, char *err,
		   size_t errlen);
/* A request for `path` whose answer is dropped (SFTP: a directory URL is
 * read as a listing). */
int xfer_curl_touch(struct xfer_curl *x, const char *path, char *err, size_t errlen);
/* An HTTP request without a body of ours, e.g. MKCOL, MOVE, DELETE;
 * `headers` extra header lines (NULL-terminated, or NULL), `nf` whether a
 * 404 is an answer (XS_NOTFOUND) or a failure. */
int xfer_curl_request(struct xfer_curl *x, const char *method, const char *path,
		      const char *const *headers, int nf, char *err, size_t errlen);
/* The same with a request body (NULL for none), keeping the reply's body
 * (at most 64 MiB): *reply is malloc'ed, "" on a failure. */
int xfer_curl_request_reply(struct xfer_curl *x, const char *method, const char *path,
			    const char *const *headers, const char *body, char **reply,
			    size_t *replylen, int nf, char *err, size_t errlen);
/* Commands without a transfer (FTP MKD, RNFR...; SFTP mkdir, rename...):
 * start a batch, add commands ("VERB path [path2]", quoted as the
 * protocol reads them), run them in order. */
void xfer_curl_quote_start(struct xfer_curl *x);
void xfer_curl_quote_add(struct xfer_curl *x, const char *verb, const char *p1, const char *p2);
int xfer_curl_quote_run(struct xfer_curl *x, const char *path, int nf, char *err, size_t errlen);
/* One command, as a batch of one. */
int xfer_curl_quote(struct xfer_curl *x, const char *verb, const char *path, const char *path2,
		    int nf, char *err, size_t errlen);
/* The last answer: FTP reply code (>= 400 only) and line, HTTP status. */
int xfer_curl_reply_code(const struct xfer_curl *x);
const char *xfer_curl_reply(const struct xfer_curl *x);
long xfer_curl_http_code(struct xfer_curl *x);
/* "http://host:port", no credentials: the base of a WebDAV Destination. */
const char *xfer_curl_base(const struct xfer_curl *x);
/* Lists `dir` keeping symbolic links as files when with_links (a removal
 * takes the link, never what it points to). */
int xfer_curl_list_links(struct xfer_curl *x, const char *dir, int with_links,
			 struct xfer_entry **entries, int *n, char *err, size_t errlen);
/* A directory's every entry, links as files: a stage_list. */
int xfer_curl_stage_list(struct xfer_curl *x, const char *dir, struct xfer_entry **entries,
			 int *n, char *err, size_t errlen);
/* Removes the tree `dir` with the protocol's commands for a file and for
 * an empty directory, depth first, the files of a directory in one batch. */
int xfer_curl_rmtree(struct xfer_curl *x, const char *dir, const char *rm_file,
		     const char *rm_dir, char *err, size_t errlen);
/* A protocol's stat, and its one try at a rename (struct xfer_ops). */
typedef int (*xfer_stat_fn)(struct xfer_curl *x, const char *path, int *is_dir, int64_t *size,
			    char *err, size_t errlen);
typedef int (*xfer_rename_fn)(struct xfer_curl *x, const char *from, const char *to,
			      char *err, size_t errlen);
/* A remove for protocols of commands (FTP, SFTP): a file with rm_file; a
 * tree with xfer_curl_rmtree when is_dir, or when rm_file is refused and
 * `stat` finds a directory; XS_NOTFOUND when nothing is there. */
int xfer_curl_remove_with(struct xfer_curl *x, const char *path, int is_dir,
			  const char *rm_file, const char *rm_dir, xfer_stat_fn stat, char *err,
			  size_t errlen);
/* A rename for the same: rename_once, and when the server refuses it,
 * XS_NOTFOUND for a missing `from`, or a file in the way at `to` removed
 * with rm_file and rename_once tried again. */
int xfer_curl_rename_with(struct xfer_curl *x, const char *from, const char *to,
			  xfer_rename_fn rename_once, const char *rm_file, xfer_stat_fn stat,
			  char *err, size_t errlen);
/* XS_OK when `url` passes the source rules the session was opened with
 * (struct xfer_curl_opts allow), else XS_PERMANENT with their reason. */
int xfer_curl_allowed(struct xfer_curl *x, const char *url, char *err, size_t errlen);
/* The protocol's own state on a session (NULL until set); a new one
 * frees the old, and the session frees the last with extra_free. */
void *xfer_curl_extra(struct xfer_curl *x);
void xfer_curl_set_extra(struct xfer_curl *x, void *extra, void (*extra_free)(void *extra));
/* `path` with a trailing '/', and without (but "/" stays "/"); malloc'ed. */
char *xfer_curl_slash(const char *path);
char *xfer_curl_noslash(const char *path);

#endif

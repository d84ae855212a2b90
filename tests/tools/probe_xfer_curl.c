/*
 * probe_xfer_curl.c - a command-line driver for xfer_curl.c, used by
 * tests/integration/test_xfer_curl.py against real FTP, SFTP and WebDAV
 * servers. It speaks only apubid.h's API (no libcurl header: libcurl
 * initialises itself on the first session, which is safe in this
 * single-threaded program).
 *
 *   probe_xfer_curl [options] COMMAND ARGS...
 *     list   URLDIR                 one "d|f<TAB>size<TAB>name" line per entry
 *     stat   URL                    "dir" or "file SIZE"
 *     get    URL LOCALFILE [OFFSET] "bytes N sha256 HEX" (bytes seen by on_data)
 *     put    LOCALFILE URL [OFFSET] "bytes N sha256 HEX"
 *     size   URL                    "size N"
 *     version URL                   one "field value" line per field known:
 *                                   size, mtime (ns), etag, modified
 *     mkdir  URLDIR
 *     rename URL NEWPATH            NEWPATH: a raw absolute server path
 *     rm     URL [dir]
 *   options: --ca FILE  --key FILE  --pub FILE  --known-hosts FILE
 *            --stall N  --connect N  --stop-after BYTES (sets the stop flag
 *            once on_data has seen that many bytes)  --debug
 *
 * Every URL is the whole thing, credentials included:
 * "ftp://user:pw@127.0.0.1:2121/dir/a%20b.ts"; the probe opens a session
 * on its server part and passes the decoded path. The exit status is the
 * xfer_status (0 ok, 1 transient, 2 permanent, 3 not found, 4 stopped,
 * 5 changed),
 * 64 for a usage error; on failure "error: <message>" goes to stderr.
 */
#include "apubid.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PROBE_USAGE 64

static volatile sig_atomic_t probe_stop;

struct probe_data {
	EVP_MD_CTX *md;
	int64_t bytes;
	int64_t stop_after; /* -1: never */
};

static int probe_on_data(void *arg, const char *buf, size_t n)
{
	struct probe_data *d = arg;
	EVP_DigestUpdate(d->md, buf, n);
	d->bytes += (int64_t)n;
	if (d->stop_after >= 0 && d->bytes >= d->stop_after)
		probe_stop = 1;
	return 0;
}

static void probe_print_digest(struct probe_data *d)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	EVP_DigestFinal_ex(d->md, md, &len);
	printf("bytes %lld sha256 ", (long long)d->bytes);
	for (unsigned int i = 0; i < len; i++)
		printf("%02x", md[i]);
	printf("\n");
}

static int usage(void)
{
	fprintf(stderr,
		"usage: probe_xfer_curl [--ca F] [--key F] [--pub F] [--known-hosts F]\n"
		"                       [--stall N] [--connect N] [--stop-after BYTES] [--debug]\n"
		"                       list URLDIR | stat URL | get URL FILE [OFFSET] |\n"
		"                       put FILE URL [OFFSET] | size URL | mkdir URLDIR |\n"
		"                       rename URL NEWPATH | rm URL [dir]\n");
	return PROBE_USAGE;
}

/* Splits a full URL into its session part ("scheme://userinfo@host:port/")
 * and the decoded path. */
static int probe_split(const char *url, char **session, char **path)
{
	struct url u;
	char err[256];
	if (url_parse(url, &u, err, sizeof err) < 0) {
		fprintf(stderr, "error: bad URL: %s\n", err);
		return -1;
	}
	const char *auth = strstr(url, "://") + 3;
	const char *slash = strchr(auth, '/');
	size_t n = slash ? (size_t)(slash - url) : strlen(url);
	*session = util_printf("%.*s/", (int)n, url);
	*path = util_strdup(*u.path ? u.path : "/");
	url_free(&u);
	return 0;
}

int main(int argc, char **argv)
{
	struct xfer_curl_opts o = { .connect_timeout = 10, .stall_timeout = 30,
				    .stop = &probe_stop };
	int64_t stop_after = -1;
	int i = 1;
	for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		const char *opt = argv[i];
		if (strcmp(opt, "--debug") == 0) {
			log_set_level(LOG_DEBUG);
			continue;
		}
		if (i + 1 >= argc)
			return usage();
		const char *val = argv[++i];
		if (strcmp(opt, "--ca") == 0)
			o.ca_file = val;
		else if (strcmp(opt, "--key") == 0)
			o.ssh_private_key = val;
		else if (strcmp(opt, "--pub") == 0)
			o.ssh_public_key = val;
		else if (strcmp(opt, "--known-hosts") == 0)
			o.ssh_known_hosts = val;
		else if (strcmp(opt, "--stall") == 0)
			o.stall_timeout = atoi(val);
		else if (strcmp(opt, "--connect") == 0)
			o.connect_timeout = atoi(val);
		else if (strcmp(opt, "--stop-after") == 0)
			stop_after = atoll(val);
		else
			return usage();
	}
	if (i >= argc)
		return usage();
	const char *cmd = argv[i++];
	int nargs = argc - i;
	char **args = argv + i;

	/* Which argument is the URL. */
	const char *url = NULL;
	if (strcmp(cmd, "put") == 0) {
		if (nargs < 2 || nargs > 3)
			return usage();
		url = args[1];
	} else {
		if (nargs < 1)
			return usage();
		url = args[0];
	}

	char *session, *path;
	if (probe_split(url, &session, &path) < 0)
		return PROBE_USAGE;
	char err[2048] = "";
	struct xfer_curl *x = xfer_curl_open(session, &o, err, sizeof err);
	if (!x) {
		fprintf(stderr, "error: %s\n", err);
		return XS_PERMANENT;
	}

	struct probe_data d = { .md = EVP_MD_CTX_new(), .stop_after = stop_after };
	EVP_DigestInit_ex(d.md, EVP_sha256(), NULL);
	int rc;
	if (strcmp(cmd, "list") == 0 && nargs == 1) {
		struct xfer_entry *e;
		int n;
		rc = xfer_curl_list(x, path, &e, &n, err, sizeof err);
		for (int k = 0; rc == XS_OK && k < n; k++)
			printf("%s\t%lld\t%s\n", e[k].is_dir ? "d" : "f", (long long)e[k].size,
			       e[k].name);
		if (rc == XS_OK)
			xfer_curl_free_entries(e, n);
	} else if (strcmp(cmd, "stat") == 0 && nargs == 1) {
		int is_dir;
		int64_t size;
		rc = xfer_curl_stat(x, path, &is_dir, &size, err, sizeof err);
		if (rc == XS_OK && is_dir)
			printf("dir\n");
		else if (rc == XS_OK)
			printf("file %lld\n", (long long)size);
	} else if (strcmp(cmd, "size") == 0 && nargs == 1) {
		int64_t size;
		rc = xfer_curl_size(x, path, &size, err, sizeof err);
		if (rc == XS_OK)
			printf("size %lld\n", (long long)size);
	} else if (strcmp(cmd, "version") == 0 && nargs == 1) {
		struct xfer_version v;
		rc = xfer_curl_version(x, path, &v, err, sizeof err);
		if (rc == XS_OK && (v.known & XV_SIZE))
			printf("size %lld\n", (long long)v.size);
		if (rc == XS_OK && (v.known & XV_MTIME))
			printf("mtime %lld\n", (long long)v.mtime_ns);
		if (rc == XS_OK && (v.known & XV_ETAG))
			printf("etag %s\n", v.etag);
		if (rc == XS_OK && (v.known & XV_MODIFIED))
			printf("modified %s\n", v.modified);
	} else if (strcmp(cmd, "get") == 0 && (nargs == 2 || nargs == 3)) {
		int64_t off = nargs == 3 ? atoll(args[2]) : 0;
		int fd = open(args[1], O_WRONLY | O_CREAT | (off ? 0 : O_TRUNC), 0644);
		if (fd < 0 || lseek(fd, off, SEEK_SET) < 0) {
			perror(args[1]);
			return PROBE_USAGE;
		}
		rc = xfer_curl_get(x, path, fd, off, NULL, probe_on_data, &d, err, sizeof err);
		close(fd);
		probe_print_digest(&d);
	} else if (strcmp(cmd, "put") == 0) {
		int64_t off = nargs == 3 ? atoll(args[2]) : 0;
		int fd = open(args[0], O_RDONLY);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) < 0) {
			perror(args[0]);
			return PROBE_USAGE;
		}
		rc = xfer_curl_put(x, path, fd, off, st.st_size, probe_on_data, &d, err,
				   sizeof err);
		close(fd);
		probe_print_digest(&d);
	} else if (strcmp(cmd, "mkdir") == 0 && nargs == 1) {
		rc = xfer_curl_mkdir(x, path, err, sizeof err);
	} else if (strcmp(cmd, "rename") == 0 && nargs == 2) {
		rc = xfer_curl_rename(x, path, args[1], err, sizeof err);
	} else if (strcmp(cmd, "rm") == 0 && (nargs == 1 || nargs == 2)) {
		int is_dir = nargs == 2 && strcmp(args[1], "dir") == 0;
		rc = xfer_curl_remove(x, path, is_dir, err, sizeof err);
	} else {
		return usage();
	}
	if (rc != XS_OK)
		fprintf(stderr, "error: %s\n", err);
	EVP_MD_CTX_free(d.md);
	xfer_curl_close(x);
	free(session);
	free(path);
	return rc;
}

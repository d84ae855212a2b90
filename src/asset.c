/*
 * asset.c - turning what the WFM sends into what apubid touches.
 *
 * A SourceAssetUrl is checked against the [source] allow prefixes: a local
 * one becomes an absolute path that exists, a remote one (ftp, ftps, sftp,
 * http, https) is only checked for shape, since whether it exists is for
 * the worker to find out on the server; a DestinationAsset becomes a path
 * relative to the destination root, local or remote; and a published
 * asset's relative path becomes the DestinationAsset that GetTaskStatus
 * answers. These three functions are the whole boundary between client
 * input and the filesystem or servers apubid writes to, so the rules live
 * here and nowhere else:
 *
 * - No value escapes the root: ".." segments are refused after
 *   percent-decoding (so "%2e%2e" and "..%2F" are caught too), and control
 *   characters, raw or encoded, never get through.
 * - URL forms are percent-decoded (by url_parse); relative and absolute
 *   local paths are taken literally, since a file may well be called
 *   "50%25.ts".
 * - Prefixes are compared on parsed URLs: scheme and host ignoring case,
 *   the effective port (an absent port is the scheme's default), userinfo
 *   ignored, and the path only at a '/' boundary, so "/data/cdn/" never
 *   matches "/data/cdnx/".
 * - Every error message names the offending value with its password masked
 *   and control characters replaced, fit for a fault string and a log line.
 * - Nothing here reads dest_root_auth: what apubid answers is built from
 *   dest_root and public_url, which carry no credentials.
 *
 * An HLS or DASH package on an HTTP(S) origin is named by its manifest
 * (asset_package): the source is the .m3u8 or .mpd file, and a directory
 * DestinationAsset says the whole presentation is meant. Any other HTTP
 * source naming a directory is refused, since an HTTP server lists
 * nothing apubid could walk.
 *
 * asset_public is the inverse of asset_destination for the values apubid
 * hands out: whatever it returns maps back to the same relative path.
 */
#include "apubid.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* A value as it may be shown back: password masked, and control
 * characters replaced so a CRLF in a request cannot forge a log line. */
static char *asset_show(const char *v)
{
	char *m = url_mask(v);
	for (char *p = m; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return m;
}

static int asset_has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

static int asset_has_dotdot(const char *path)
{
	const char *p = path;
	while (*p) {
		const char *e = strchrnul(p, '/');
		if (e - p == 2 && p[0] == '.' && p[1] == '.')
			return 1;
		p = *e ? e + 1 : e;
	}
	return 0;
}

/* The remote schemes a source may use: the ones xfer_curl.c speaks. */
static int asset_is_remote(const char *scheme)
{
	static const char *const remote[] = { "ftp", "ftps", "sftp", "http", "https" };
	for (size_t i = 0; i < sizeof remote / sizeof remote[0]; i++)
		if (strcmp(scheme, remote[i]) == 0)
			return 1;
	return 0;
}

/* For file URLs "localhost" and "" name the same machine. */
static const char *asset_host(const struct url *u)
{
	if (strcmp(u->scheme, "file") == 0 && strcmp(u->host, "localhost") == 0)
		return "";
	return u->host;
}

/* When `u` lies at or below the canonical prefix URL `prefix`, returns the
 * length of the prefix's path, else -1. `path` is u's normalised path with
 * a trailing '/' (the prefix path has one too), so the root of the prefix
 * itself matches with an empty remainder. */
static int asset_match(const char *prefix, const struct url *u, const char *path)
{
	struct url p;
	int n = -1;
	if (!prefix || url_parse(prefix, &p, NULL, 0) < 0)
		return -1;
	if (strcmp(p.scheme, u->scheme) == 0 && strcasecmp(asset_host(&p), asset_host(u)) == 0 &&
	    url_default_port(&p) == url_default_port(u) && strncmp(path, p.path, strlen(p.path)) == 0)
		n = (int)strlen(p.path);
	url_free(&p);
	return n;
}

/* Normalises an absolute path into "/a/b/" (always with a trailing '/',
 * "/" for the root) for prefix matching. */
static int asset_abs_path(const char *path, char **out, int *is_dir, char *err, size_t errlen)
{
	char *norm;
	if (url_path_normalize(path, &norm, is_dir, err, errlen) < 0)
		return -1;
	*out = *norm ? util_printf("/%s/", norm) : util_strdup("/");
	free(norm);
	return 0;
}

/* 1 when the fully resolved `path` is, or lies below, the resolved
 * directory of one of the file:// source prefixes: a symbolic link placed in
 * the source area must not lead out of it. */
static int asset_real_under(const struct config *c, const char *path)
{
	char *real = realpath(path, NULL);
	int ok = 0;
	if (!real)
		return 0;
	for (int i = 0; i < c->nsource_allow && !ok; i++) {
		struct url p;
		if (url_parse(c->source_allow[i], &p, NULL, 0) < 0)
			continue;
		char *rp = strcmp(p.scheme, "file") == 0 ? realpath(p.path, NULL) : NULL;
		if (rp) {
			size_t n = strlen(rp);
			if (strcmp(rp, "/") == 0)
				ok = real[1] != '\0';
			else
				ok = strncmp(real, rp, n) == 0 && (real[n] == '/' || real[n] == '\0');
		}
		free(rp);
		url_free(&p);
	}
	free(real);
	return ok;
}

int asset_source(const struct config *c, const char *src, char **local_path, int *is_dir,
		 char *err, size_t errlen)
{
	struct url u = { 0 };
	char e[256];
	char *show = NULL, *path = NULL;
	int dir = 0, rc = -1;
	struct stat st;

	*local_path = NULL;
	*is_dir = 0;
	if (!src || !*src) {
		util_error(err, errlen, "source asset URL is empty");
		return -1;
	}
	show = asset_show(src);
	if (src[0] == '/') {
		/* An absolute path is file:// without the decoding. */
		if (asset_has_ctl(src)) {
			util_error(err, errlen, "source contains a control character: %s", show);
			goto out;
		}
		u.scheme = util_strdup("file");
		u.host = util_strdup("");
		u.path = util_strdup(src);
	} else if (url_is_absolute(src)) {
		if (url_parse(src, &u, e, sizeof e) < 0) {
			util_error(err, errlen, "source URL is not valid (%s): %s", e, show);
			goto out;
		}
	} else {
		util_error(err, errlen, "source must be an absolute URL or an absolute path: %s",
			    show);
		goto out;
	}

	int local = strcmp(u.scheme, "file") == 0;
	if (!local && !asset_is_remote(u.scheme)) {
		util_error(err, errlen,
			    "unsupported source scheme '%s' (supported: file, ftp, ftps, sftp, http, "
			    "https)",
			    u.scheme);
		goto out;
	}
	if (local && *asset_host(&u)) {
		util_error(err, errlen, "a file:// source cannot name a remote host: %s", show);
		goto out;
	}
	if (!local && !*u.host) {
		/* url_parse refuses this already; checked again because an
		 * empty host would reach libcurl as "the local machine". */
		util_error(err, errlen, "source URL names no host: %s", show);
		goto out;
	}
	if (u.path[0] != '/') {
		util_error(err, errlen, "source URL names no path: %s", show);
		goto out;
	}
	if (asset_has_dotdot(u.path)) {
		util_error(err, errlen, "source path must not contain '..': %s", show);
		goto out;
	}
	if (asset_abs_path(u.path + 1, &path, &dir, e, sizeof e) < 0) {
		util_error(err, errlen, "source path is not valid (%s): %s", e, show);
		goto out;
	}

	/* Under a prefix, or the prefix itself: allowing a directory allows
	 * publishing all of it (the docs' own example loads a whole
	 * "ftp://CIS:21/repository/"). */
	int under = 0;
	for (int i = 0; i < c->nsource_allow && !under; i++)
		under = asset_match(c->source_allow[i], &u, path) >= 0;
	if (!under) {
		util_error(err, errlen, "source is not under an allowed source prefix: %s", show);
		goto out;
	}

	if (strlen(path) > 1)
		path[strlen(path) - 1] = '\0'; /* the local path has no trailing '/' */

	/* A remote source is not looked up here: a server may be slow or
	 * briefly down, and the worker, which retries, finds out whether the
	 * asset exists. Only what the URL itself says is checked. */
	if (!local) {
		/* HTTP has no directory listing apubid could walk: a package
		 * on an origin is named by its manifest (asset_package). */
		if (dir && (strcmp(u.scheme, "http") == 0 || strcmp(u.scheme, "https") == 0)) {
			util_error(err, errlen,
				    "a directory source is not supported over http (an HTTP server "
				    "lists nothing: name the package's .m3u8 or .mpd manifest, with a "
				    "directory as DestinationAsset): %s",
				    show);
			goto out;
		}
		*is_dir = dir;
		*local_path = path;
		path = NULL;
		rc = 0;
		goto out;
	}
	if (stat(path, &st) < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			util_error(err, errlen, "source asset does not exist: %s", path);
		else
			util_error(err, errlen, "source asset is not accessible: %s: %s", path,
				    strerror(errno));
		goto out;
	}
	if (dir && !S_ISDIR(st.st_mode)) {
		util_error(err, errlen, "source is not a directory: %s", path);
		goto out;
	}
	if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
		util_error(err, errlen, "source is neither a file nor a directory: %s", path);
		goto out;
	}
	if (!asset_real_under(c, path)) {
		util_error(err, errlen,
			    "source resolves outside the allowed source prefixes: %s", path);
		goto out;
	}
	*is_dir = S_ISDIR(st.st_mode);
	*local_path = path;
	path = NULL;
	rc = 0;
out:
	free(path);
	free(show);
	url_free(&u);
	return rc;
}

int asset_package(const char *src)
{
	struct url u;
	if (!src || !url_is_absolute(src) || url_parse(src, &u, NULL, 0) < 0)
		return 0;
	const char *dot = strrchr(u.path, '.');
	int yes = (strcmp(u.scheme, "http") == 0 || strcmp(u.scheme, "https") == 0) && dot &&
		  !strchr(dot, '/') && (strcasecmp(dot, ".m3u8") == 0 || strcasecmp(dot, ".mpd") == 0);
	url_free(&u);
	return yes;
}

int asset_destination(const struct config *c, const char *dst, char **rel, int *is_dir,
		      char *err, size_t errlen)
{
	struct url u = { 0 };
	char e[256];
	char *show = NULL, *path = NULL;
	int dir = 0, rc = -1;
	size_t skip = 0; /* bytes of `path` that name the root */

	*rel = NULL;
	*is_dir = 0;
	if (!dst || !*dst) {
		util_error(err, errlen, "destination is empty");
		return -1;
	}
	show = asset_show(dst);
	if (asset_has_ctl(dst)) {
		util_error(err, errlen, "destination contains a control character: %s", show);
		goto out;
	}

	if (url_is_absolute(dst)) {
		if (url_parse(dst, &u, e, sizeof e) < 0) {
			util_error(err, errlen, "destination URL is not valid (%s): %s", e, show);
			goto out;
		}
		if (asset_has_dotdot(u.path)) {
			util_error(err, errlen, "destination path must not contain '..': %s", show);
			goto out;
		}
		if (asset_abs_path(*u.path == '/' ? u.path + 1 : u.path, &path, &dir, e,
				   sizeof e) < 0) {
			util_error(err, errlen, "destination path is not valid (%s): %s", e, show);
			goto out;
		}
		/* The longest matching prefix wins: with allow prefixes
		 * ftp://cdn/data/ and ftp://cdn/data/cdn/, the more specific
		 * one says what the remainder is relative to. */
		int best = asset_match(c->dest_root, &u, path);
		int n = asset_match(c->public_url, &u, path);
		best = n > best ? n : best;
		for (int i = 0; i < c->ndest_allow; i++) {
			n = asset_match(c->dest_allow[i], &u, path);
			best = n > best ? n : best;
		}
		if (best < 0) {
			util_error(err, errlen, "destination is outside the allowed destinations: %s",
				    show);
			goto out;
		}
		skip = (size_t)best;
	} else {
		if (asset_has_dotdot(dst)) {
			util_error(err, errlen, "destination path must not contain '..': %s", show);
			goto out;
		}
		if (asset_abs_path(*dst == '/' ? dst + 1 : dst, &path, &dir, e, sizeof e) < 0) {
			util_error(err, errlen, "destination path is not valid (%s): %s", e, show);
			goto out;
		}
		if (*dst == '/') {
			/* An absolute local path is accepted only below the
			 * root directory itself. */
			size_t n = c->dest_root_path ? strlen(c->dest_root_path) : 0;
			if (!n || strncmp(path, c->dest_root_path, n) != 0 || path[n] != '/') {
				util_error(err, errlen,
					    "destination is outside the destination root: %s", show);
				goto out;
			}
			skip = n + 1;
		} else {
			skip = 1; /* asset_abs_path added a leading '/' */
		}
	}

	if (path[skip] == '\0') {
		util_error(err, errlen,
			    "destination must name an asset below the root, not the root itself");
		goto out;
	}
	*rel = util_strndup(path + skip, strlen(path + skip) - 1);
	*is_dir = dir;
	rc = 0;
out:
	free(path);
	free(show);
	url_free(&u);
	return rc;
}

char *asset_public(const struct config *c, const char *rel, int is_dir)
{
	const char *base = c->public_url ? c->public_url : c->dest_root;
	char *enc = url_encode_path(rel);
	char *out = util_printf("%s%s%s", base, enc, is_dir && *rel ? "/" : "");
	free(enc);
	return out;
}

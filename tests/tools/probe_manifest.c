/*
 * probe_manifest.c - prints the plan manifest_plan makes for a package, for
 * the integration tests (tests/integration/test_manifest_plan.py).
 *
 *   probe_manifest URL ROOT
 *
 * The fetch function serves a URL's path (percent-decoded, query and
 * fragment dropped) from the file of that path under ROOT, as a static
 * origin whose document root is ROOT would: a missing file is a permanent
 * failure ("404"), like the engine's answer to a 404. Each item of the plan
 * is one line on stdout, "M" (manifest) or "F" (media file), the published
 * path and the URL, tab-separated, in publishing order; a manifest's line is
 * followed by no other output, but the probe checks that the bytes the plan
 * hands back are the file's. On failure the reason goes to stderr and the
 * exit status is 2 (permanent) or 3 (transient).
 */
#include "apubid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *probe_root;

static int probe_hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The file under ROOT that serves `url`, malloc'ed. */
static char *probe_file(const char *url)
{
	const char *p = strstr(url, "://");
	p = p ? strchr(p + 3, '/') : NULL;
	if (!p)
		p = "/";
	size_t n = strcspn(p, "?#");
	struct util_buf b = { 0 };
	util_buf_adds(&b, probe_root);
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '%' && i + 2 < n && probe_hex(p[i + 1]) >= 0 && probe_hex(p[i + 2]) >= 0) {
			char c = (char)(probe_hex(p[i + 1]) * 16 + probe_hex(p[i + 2]));
			util_buf_add(&b, &c, 1);
			i += 2;
		} else {
			util_buf_add(&b, &p[i], 1);
		}
	}
	return b.p;
}

static int probe_read(const char *path, char **body, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	struct util_buf b = { 0 };
	char buf[65536];
	size_t r;
	while ((r = fread(buf, 1, sizeof buf, f)) > 0)
		util_buf_add(&b, buf, r);
	fclose(f);
	*body = b.p ? b.p : util_strdup("");
	*len = b.len;
	return 0;
}

static int probe_fetch(void *arg, const char *url, char **body, size_t *len, char *err,
		       size_t errlen)
{
	(void)arg;
	char *path = probe_file(url);
	int rc = probe_read(path, body, len);
	free(path);
	if (rc < 0) {
		util_error(err, errlen, "HTTP 404");
		return MANIFEST_PERMANENT;
	}
	return MANIFEST_OK;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: probe_manifest URL ROOT\n");
		return 1;
	}
	probe_root = argv[2];
	struct manifest_item *items;
	int n;
	char err[1024];
	int rc = manifest_plan(argv[1], probe_fetch, NULL, &items, &n, err, sizeof err);
	if (rc != MANIFEST_OK) {
		fprintf(stderr, "%s\n", err);
		return rc == MANIFEST_TRANSIENT ? 3 : 2;
	}
	int status = 0;
	for (int i = 0; i < n; i++) {
		printf("%c\t%s\t%s\n", items[i].is_manifest ? 'M' : 'F', items[i].path, items[i].url);
		if (!items[i].is_manifest)
			continue;
		char *path = probe_file(items[i].url), *body;
		size_t len;
		if (!items[i].body || probe_read(path, &body, &len) < 0) {
			fprintf(stderr, "%s: no bytes handed back\n", items[i].path);
			status = 1;
		} else {
			if (len != items[i].len || memcmp(body, items[i].body, len) != 0) {
				fprintf(stderr, "%s: bytes differ from the file\n", items[i].path);
				status = 1;
			}
			free(body);
		}
		free(path);
	}
	manifest_free_items(items, n);
	return status;
}

/*
 * fuzz_manifest.c - a libFuzzer target for the HLS and DASH planner: each
 * input is a top manifest and, after the first "\n#--\n", the manifest
 * served for every nested one a master names. The input's first byte picks
 * the top URL's name (.m3u8, .mpd, or neither, so the bytes decide) and
 * whether nested fetches fail (transiently or for good) instead.
 *
 * Every plan that succeeds is checked for what manifest_plan promises:
 * each path once, under the top's directory (no "..", no leading '/'),
 * media before manifests, the top manifest last with its own bytes.
 *
 * Build and run: make fuzz-manifest FUZZ_SECONDS=N (clang, libFuzzer,
 * ASan, UBSan). Seeds are tests/fuzz/manifests/; an input that crashes
 * (build-fuzz/manifest-crash-*) goes there too, so every later run replays
 * it.
 */
#include "apubid.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fuzz_source {
	const uint8_t *top, *nested;
	size_t top_len, nested_len;
	int fail; /* 0 serve, 1 transient, 2 permanent (nested only) */
	int fetches;
};

static int fuzz_fetch(void *arg, const char *url, char **body, size_t *len, char *err,
		      size_t errlen)
{
	struct fuzz_source *s = arg;
	const uint8_t *p = s->fetches ? s->nested : s->top;
	size_t n = s->fetches ? s->nested_len : s->top_len;
	s->fetches++;
	if (s->fetches > 1 && s->fail) {
		util_error(err, errlen, "HTTP %d", s->fail == 1 ? 503 : 404);
		return s->fail == 1 ? MANIFEST_TRANSIENT : MANIFEST_PERMANENT;
	}
	(void)url;
	*body = util_malloc(n);
	memcpy(*body, p, n);
	*len = n;
	return MANIFEST_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	static const char *const tops[] = {
		"http://origin.test/vod/movie/index.m3u8",
		"https://user:secret@origin.test:8443/vod/movie/manifest.mpd",
		"http://origin.test/vod/movie/package",
		"http://origin.test/vod/mo%20vie/master.m3u8?token=abc",
	};
	struct fuzz_source s = { 0 };
	const char *url = tops[data[0] & 3];
	s.fail = (data[0] >> 2) % 3;
	data++;
	size--;
	s.top = data;
	s.top_len = size;
	s.nested = data;
	s.nested_len = size;
	for (size_t i = 0; i + 5 <= size; i++)
		if (memcmp(data + i, "\n#--\n", 5) == 0) {
			s.top_len = i + 1;
			s.nested = data + i + 5;
			s.nested_len = size - i - 5;
			break;
		}
	struct manifest_item *items;
	int n;
	char err[512];
	int rc = manifest_plan(url, fuzz_fetch, &s, &items, &n, err, sizeof err);
	if (rc != MANIFEST_OK) {
		/* The top URL's password never shows (the input may say
		 * "secret" itself, in a reference the reason quotes). */
		if (items || n || !err[0] ||
		    (strstr(err, "secret") && !memmem(data, size, "secret", 6)))
			abort();
		return 0;
	}
	if (n < 1 || !items[n - 1].is_manifest || items[n - 1].len != s.top_len ||
	    memcmp(items[n - 1].body, s.top, s.top_len) != 0)
		abort();
	int seen_manifest = 0;
	for (int i = 0; i < n; i++) {
		const char *p = items[i].path;
		if (!p[0] || p[0] == '/' || strstr(p, "//") || !strncmp(p, "../", 3) ||
		    strstr(p, "/../") || strstr(p, "/./") || strchr(p, '?'))
			abort();
		if (items[i].is_manifest)
			seen_manifest = 1;
		else if (seen_manifest)
			abort();
		/* No dot segment in the URL's path (its query may hold any). */
		char *u = strdup(items[i].url);
		u[strcspn(u, "?")] = '\0';
		if (strncmp(u, "http", 4) != 0 || strstr(u, "/../") || strstr(u, "/./"))
			abort();
		free(u);
		for (int j = 0; j < i && n < 2000; j++)
			if (strcmp(items[j].path, p) == 0)
				abort();
	}
	manifest_free_items(items, n);
	return 0;
}

/*
 * test_manifest.c - manifest_plan: the files an HLS or DASH package is
 * made of, in publishing order, and the manifests it refuses. Manifests are
 * served from memory by a fetch function; the packages ffmpeg makes are
 * checked by tests/integration/test_manifest_plan.py, so the cases here are
 * mostly those ffmpeg cannot make.
 */
#include "apubid.h"
#include "harness.h"

#include <stdlib.h>

/* ---- a memory origin ------------------------------------------------- */

struct origin_file {
	const char *url;
	const char *body; /* or ANSWER_503, ANSWER_404: the fetch fails */
};
static const char ANSWER_503[] = "503", ANSWER_404[] = "404";

static struct origin_file *origin;
static int fetches[16]; /* per file of the origin */
static char err[1024];
static struct manifest_item *items;
static int n;

static int origin_fetch(void *arg, const char *url, char **body, size_t *len, char *e,
			size_t elen)
{
	(void)arg;
	for (struct origin_file *f = origin; f && f->url; f++) {
		if (strcmp(f->url, url) != 0)
			continue;
		fetches[f - origin]++;
		if (f->body == ANSWER_503 || f->body == ANSWER_404) {
			util_error(e, elen, "HTTP %s", f->body);
			return f->body == ANSWER_503 ? MANIFEST_TRANSIENT : MANIFEST_PERMANENT;
		}
		*len = strlen(f->body);
		*body = util_strdup(f->body);
		return MANIFEST_OK;
	}
	util_error(e, elen, "HTTP 404");
	return MANIFEST_PERMANENT;
}

/* Plans `url` against the files `o`; the previous plan is freed. */
static int plan(struct origin_file *o, const char *url)
{
	manifest_free_items(items, n);
	items = NULL;
	n = 0;
	origin = o;
	memset(fetches, 0, sizeof fetches);
	err[0] = '\0';
	return manifest_plan(url, origin_fetch, NULL, &items, &n, err, sizeof err);
}

/* The plan as one string: "F path, F path, M path" in order. */
static const char *listed(void)
{
	static char out[8192];
	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		size_t l = strlen(out);
		snprintf(out + l, sizeof out - l, "%s%c %s", i ? ", " : "",
			 items[i].is_manifest ? 'M' : 'F', items[i].path);
	}
	return out;
}

/* The URL of the item at `path`, or NULL. */
static const char *url_of(const char *path)
{
	for (int i = 0; i < n; i++)
		if (strcmp(items[i].path, path) == 0)
			return items[i].url;
	return NULL;
}

#define TOP "http://origin.test/vod/movie/"

/* ---- URL resolution (RFC 3986 5.4) ----------------------------------- */

static void test_references_resolve_as_rfc_3986_says(void)
{
	static const char *const cases[][2] = {
		{ "g", "http://a/b/c/g" },         { "./g", "http://a/b/c/g" },
		{ "g/", "http://a/b/c/g/" },       { "/g", "http://a/g" },
		{ "//g", "http://g" },             { "?y", "http://a/b/c/d;p?y" },
		{ "g?y", "http://a/b/c/g?y" },     { "#s", "http://a/b/c/d;p?q" },
		{ "g#s", "http://a/b/c/g" },       { "", "http://a/b/c/d;p?q" },
		{ ".", "http://a/b/c/" },          { "..", "http://a/b/" },
		{ "../g", "http://a/b/g" },        { "../..", "http://a/" },
		{ "../../g", "http://a/g" },       { "../../../g", "http://a/g" },
		{ "/./g", "http://a/g" },          { "/../g", "http://a/g" },
		{ "g.", "http://a/b/c/g." },       { "..g", "http://a/b/c/..g" },
		{ "./../g", "http://a/b/g" },      { "./g/.", "http://a/b/c/g/" },
		{ "g/./h", "http://a/b/c/g/h" },   { "g/../h", "http://a/b/c/h" },
		{ "g;x=1/../y", "http://a/b/c/y" }, { "g?y/../x", "http://a/b/c/g?y/../x" },
		{ "https://x/y", "https://x/y" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char *r = manifest_resolve("http://a/b/c/d;p?q", cases[i][0]);
		if (!r || strcmp(r, cases[i][1]) != 0)
			fprintf(stderr, "  resolve(\"%s\") = %s, want %s\n", cases[i][0],
				r ? r : "(null)", cases[i][1]);
		int ok = r && strcmp(r, cases[i][1]) == 0;
		free(r);
		CHECK(ok);
	}
}

/* ---- HLS ------------------------------------------------------------- */

#define VOD_HEAD "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:4\n#EXT-X-PLAYLIST-TYPE:VOD\n"

static void test_media_playlist_lists_its_segments_then_itself(void)
{
	struct origin_file o[] = {
		{ TOP "index.m3u8", VOD_HEAD "#EXTINF:4,\nseg0.ts\r\n#EXTINF:4,\nseg1.ts\n"
				     "#EXT-X-ENDLIST\n" },
		{ NULL, NULL }
	};
	CHECK(plan(o, TOP "index.m3u8") == MANIFEST_OK);
	CHECK_STR(listed(), "F seg0.ts, F seg1.ts, M index.m3u8");
	CHECK_STR(url_of("seg1.ts"), TOP "seg1.ts");
	CHECK(items[2].body && items[2].len == strlen(o[0].body));
	CHECK(memcmp(items[2].body, o[0].body, items[2].len) == 0);
	CHECK(items[0].body == NULL);
}

static void test_master_lists_media_then_media_playlists_then_itself(void)
{
	struct origin_file o[] = {
		{ TOP "master.m3u8",
		  "#EXTM3U\n"
		  "#EXT-X-STREAM-INF:BANDWIDTH=800000,CODECS=\"avc1.4d401f,mp4a.40.2\"\n"
		  "low/index.m3u8\n"
		  "#EXT-X-STREAM-INF:BANDWIDTH=2400000\n"
		  "high/index.m3u8\n" },
		{ TOP "low/index.m3u8", VOD_HEAD "#EXTINF:4,\na.ts\n#EXT-X-ENDLIST\n" },
		{ TOP "high/index.m3u8", VOD_HEAD "#EXTINF:4,\na.ts\n#EXTINF:4,\n../low/a.ts\n"
					 "#EXT-X-ENDLIST\n" },
		{ NULL, NULL }
	};
	CHECK(plan(o, TOP "master.m3u8") == MANIFEST_OK);
	CHECK_STR(listed(), "F low/a.ts, F high/a.ts, M low/index.m3u8, M high/index.m3u8, "
			    "M master.m3u8");
	CHECK(items[2].body && items[3].body && items[4].body);
}

static void test_init_section_with_byterange_and_byterange_segments_name_one_file_once(void)
{
	struct origin_file o[] = {
		{ TOP "index.m3u8", VOD_HEAD "#EXT-X-MAP:URI=\"main.mp4\",BYTERANGE=\"720@0\"\n"
				     "#EXTINF:4,\n#EXT-X-BYTERANGE:1000@720\nmain.mp4\n"
				     "#EXTINF:4,\n#EXT-X-BYTERANGE:1000\nmain.mp4\n"
				     "#EXT-X-ENDLIST\n" },
		{ NULL, NULL }
	};
	CHECK(plan(o, TOP "index.m3u8") == MANIFEST_OK);
	CHECK_STR(listed(), "F main.mp4, M index.m3u8");
}

static void test_keys_are_files_unless_method_none_drm_or_inline(void)
{
	struct origin_file o[] = {
		{ TOP "index.m3u8",
		  VOD_HEAD "#EXT-X-KEY:METHOD=AES-128,URI=\"keys/k1.key\",IV=0x0000000000000001\n"
			   "#EXTINF:4,\na.ts\n"
			   "#EXT-X-KEY:METHOD=NONE\n#EXTINF:4,\nb.ts\n"
			   "#EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"skd://licence/42\","
			   "KEYFORMAT=\"com.apple.streamingkeydelivery\",KEYFORMATVERSIONS=\"1\"\n"
			   "#EXT-X-KEY:METHOD=AES-128,URI=\"data:text/plain;base64,AAAA\"\n"
			   "#EXT-X-KEY:METHOD=AES-128,URI=\"keys/k2.key\",KEYFORMAT=\"identity\"\n"
			   "#EXTINF:4,\nc.ts\n#EXT-X-ENDLIST\n" },
		{ NULL, NULL }
	};
	CHECK(plan(o, TOP "index.m3u8") == MANIFEST_OK);
	CHECK_STR(listed(), "F keys/k1.key, F a.ts, F b.ts, F keys/k2.key, F c.ts, M index.m3u8");
}

static void test_key_with_method_but_no_uri_is_refused(void)
{
	struct origin_file o[] = {
		{ TOP "index.m3u8", VOD_HEAD "#EXT-X-KEY:METHOD=AES-128\n#EXTINF:4,\na.ts\n"
				     "#EXT-X-ENDLIST\n" },
		{ NULL, NULL }
	};
	CHECK(plan(o, TOP "index.m3u8") == MANIFEST_PERMANENT);
	CHECK(strstr(err, "line 5") && strstr(err, "no URI"));
	CHECK(items == NULL && n == 0);
}

static void test_alternate_renditions_and_iframe_playlists_are_planned(void)
{
	struct origin_file o[] = {
		{ TOP "master.m3u8",
		  "#EXTM3U\n"
		  "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aac\",NAME=\"en\",DEFAULT=YES,"
		  "URI=\"audio/en.m3u8\"\n"
		  "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aac\",NAME=\"muxed\"\n"
		  "#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"fr\",URI=\"subs/fr.m3u8\"\n"
		  "#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID=\"cc\",NAME=\"cc1\","
		  "INSTREAM-ID=\"CC1\"\n"
		  "#EXT-X-STREAM-INF:BANDWIDTH=1000000,AUDIO=\"aac\",SUBTITLES=\"subs\"\n"
		  "video/index.m3u8\n"
		  "#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=90000,URI=\"video/iframes.m3u8\"\n" },
		{ TOP "audio/en.m3u8", VOD_HEAD "#EXTINF:4,\na0.aac\n#EXT-X-ENDLIST\n" },
		{ TOP "subs/fr.m3u8", VOD_HEAD "#EXTINF:4,\nfr0.vtt\n#EXT-X-ENDLIST\n" },
		{ TOP "video/index.m3u8", VOD_HEAD "#EXTINF:4,\nv0.ts\n#EXT-X-ENDLIST\n" },
		{ TOP "video/iframes.m3u8", VOD_HEAD "#EXT-X-I-FRAMES-ONLY\n"
					    "#EXTINF:4,\n#EXT-X-BYTERANGE:564@376\nv0.ts\n"
					    "#EXT-X-ENDLIST\n" },
		{ NULL, NULL }
	};
	CHECK(plan(o, TOP "master.m3u8") == MANIFEST_OK);
	CHECK_STR(listed(), "F audio/a0.aac, F subs/fr0.vtt, F video/v0.ts, M audio/en.m3u8, "
			    "M subs/fr.m3u8, M video/index.m3u8, M video/iframes.m3u8, "
			    "M master.m3u8");
}

static void test_playlist_named_twice_is_fetched_and_listed_once(void)
{
	struct origin_file o[] = {
		{ TOP "master.m3u8",
		  "#EXTM3U\n"
		  "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"a\",URI=\"audio.m3u8\"\n"
		  "#EXT-X-STREAM-INF:BANDWIDTH=1,AUDIO=\"a\"\nvideo.m3u8\n"
		  "#EXT-X-STREAM-INF:BANDWIDTH=2,AUDIO=\"a\"\naudio.m3u8\n" },
		{ TOP "audio.m3u8", VOD_HEAD "#EXTINF:4,\na.aac\n#EXT-X-ENDLIST\n" },
		{ TOP "video.m3u8", VOD_HEAD "#EXTINF:4,\nv.ts\n#EXT-X-ENDLIST\n" },
		{ NULL, NULL }
	};
	CHECK(plan(o, TOP "master.m3u8") == MANIFEST_OK);
	CHECK_STR(listed(), "F a.aac, F v.ts, M audio.m3u8, M video.m3u8, M master.m3u8");
	CHECK(fetches[0] == 1 && fetches[1] == 1 && fetches[2] == 1);
}

static void test_gap_segments_are_skipped_and_variables_refused(void)
{
	struct origin_file o[] = {
		{ TOP "index.m3u8", VOD_HEAD "#EXTINF:4,\na.ts\n#EXT-X-GAP\n#EXTINF:4,\nmissing.ts\n"
				     "#EXTINF:4,\nb.ts\n#EXT-X-ENDLIST\n" },
		{ TOP "vars.m3u8", VOD_HEAD "#EXT-X-DEFINE:NAME=\"p\",VALUE=\"x\"\n"
				    "#EXTINF:4,\n{$p}.ts\n#EXT-X-ENDLIST\n" },
		{ NULL, NULL }
	};
	CHECK(plan(o, TOP "index.m3u8") == MANIFEST_OK);
	CHECK_STR(listed(), "F a.ts, F b.ts, M index.m3u8");
	CHECK(plan(o, TOP "vars.m3u8") == MANIFEST_PERMANENT);
	CHECK(strstr(err, "EXT-X-DEFINE"));
}

static void test_live_playlist_is_refused_with_its_reason(void)
{
	struct origin_file o[] = {
		{ TOP "live.m3u8", "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:7\n"
				    "#EXTINF:4,\ns7.ts\n#EXTINF:4,\ns8.ts\n" },
		{ NULL, NULL }
	};
	CHECK(plan(o, TOP "live.m3u8") == MANIFEST_PERMANENT);
	CHECK(strstr(err, "live.m3u8 is live") && strstr(err, "no #EXT-X-ENDLIST"));
}

static void test_live_variant_of_a_master_is_refused_naming_it(void)
{
	struct origin_file o[] = {
		{ TOP "master.m3u8", "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nvod.m3u8\n"
				      "#EXT-X-STREAM-INF:BANDWIDTH=2\nevent.m3u8\n" },
		{ TOP "vod.m3u8", VOD_HEAD "#EXTINF:4,\na.ts\n#EXT-X-ENDLIST\n" },
		{ TOP "event.m3u8", "#EXTM3U\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXTINF:4,\nb.ts\n" },
		{ NULL, NULL }
	};
	CHECK(plan(o, TOP "master.m3u8") == MANIFEST_PERMANENT);
	CHECK(strstr(err, "event.m3u8 is live"));
}

static void test_master_naming_a_master_is_refused(void)
{
	struct origin_file o[] = {
		{ TOP "master.m3u8", "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nother.m3u8\n" },
		{ TOP "other.m3u8", "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nx.m3u8\n" },
		{ NULL, NULL }
	};
	CHECK(plan(o, TOP "master.m3u8") == MANIFEST_PERMANENT);
	CHECK(strstr(err, "other.m3u8") && strstr(err, "master playlist named by another"));
}

static void test_missing_media_playlist_fails_permanent_or_transient_as_fetched(void)
{
	struct origin_file o[] = {
		{ TOP "master.m3u8", "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n" },
		{ TOP "v.m3u8", ANSWER_503 },
		{ NULL, NULL }
	};
	CHECK(plan(o, TOP "master.m3u8") == MANIFEST_TRANSIENT);
	CHECK(strstr(err, TOP "v.m3u8") && strstr(err, "503"));
	o[1].body = ANSWER_404;
	CHECK(plan(o, TOP "master.m3u8") == MANIFEST_PERMANENT);
	CHECK(strstr(err, "404"));
	CHECK(plan(o, TOP "absent.m3u8") == MANIFEST_PERMANENT);
	CHECK(strstr(err, "absent.m3u8") && strstr(err, "404"));
}

/* One reference in an otherwise valid playlist at TOP. */
static int plan_ref(const char *ref)
{
	static char body[4096];
	static struct origin_file o[2];
	snprintf(body, sizeof body, VOD_HEAD "#EXTINF:4,\n%s\n#EXT-X-ENDLIST\n", ref);
	memset(o, 0, sizeof o);
	o[0].url = TOP "index.m3u8";
	o[0].body = body;
	return plan(o, TOP "index.m3u8");
}

static void test_references_leaving_the_directory_are_refused_naming_them(void)
{
	CHECK(plan_ref("../other/seg.ts") == MANIFEST_PERMANENT);
	CHECK(strstr(err, "\"../other/seg.ts\"") && strstr(err, "leaves the manifest's directory"));
	CHECK(strstr(err, "index.m3u8 line 6"));
	CHECK(plan_ref("sub/../../seg.ts") == MANIFEST_PERMANENT);
	CHECK(plan_ref("/vod/seg.ts") == MANIFEST_PERMANENT);
	CHECK(plan_ref("/vod/movie2/seg.ts") == MANIFEST_PERMANENT);
	CHECK(plan_ref("http://origin.test/vod/other/seg.ts") == MANIFEST_PERMANENT);
	CHECK(strstr(err, "leaves the manifest's directory"));
}

static void test_references_leaving_the_origin_are_refused_naming_them(void)
{
	CHECK(plan_ref("http://evil.test/vod/movie/seg.ts") == MANIFEST_PERMANENT);
	CHECK(strstr(err, "evil.test") && strstr(err, "leaves the manifest's origin"));
	CHECK(plan_ref("//evil.test/vod/movie/seg.ts") == MANIFEST_PERMANENT);
	CHECK(plan_ref("https://origin.test/vod/movie/seg.ts") == MANIFEST_PERMANENT);
	CHECK(plan_ref("http://origin.test:8080/vod/movie/seg.ts") == MANIFEST_PERMANENT);
	CHECK(plan_ref("file:///vod/movie/seg.ts") == MANIFEST_PERMANENT);
	CHECK(plan_ref("ftp://origin.test/vod/movie/seg.ts") == MANIFEST_PERMANENT);
}

static void test_references_within_directory_and_origin_are_taken_however_written(void)
{
	CHECK(plan_ref("HTTP://Origin.TEST:80/vod/movie/a/seg.ts") == MANIFEST_OK);
	CHECK_STR(listed(), "F a/seg.ts, M index.m3u8");
	CHECK(plan_ref("/vod/movie/a/seg.ts") == MANIFEST_OK);
	CHECK_STR(listed(), "F a/seg.ts, M index.m3u8");
	CHECK(plan_ref("./a/./b/../seg.ts") == MANIFEST_OK);
	CHECK_STR(listed(), "F a/seg.ts, M index.m3u8");
	CHECK(plan_ref("../movie/a/seg.ts#t=10") == MANIFEST_OK);
	CHECK_STR(listed(), "F a/seg.ts, M index.m3u8");
	CHECK_STR(url_of("a/seg.ts"), TOP "a/seg.ts");
	/* The origin as the task names it, credentials included: a manifest
	 * cannot choose them. */
	struct origin_file o[] = {
		{ "http://u:pw@origin.test/vod/movie/index.m3u8",
		  VOD_HEAD "#EXTINF:4,\nHTTP://x:y@ORIGIN.test:80/vod/movie/a.ts\n#EXT-X-ENDLIST\n" },
		{ NULL, NULL }
	};
	CHECK(plan(o, "http://u:pw@origin.test/vod/movie/index.m3u8") == MANIFEST_OK);
	CHECK_STR(url_of("a.ts"), "http://u:pw@origin.test/vod/movie/a.ts");
}

static void test_percent_encoding_is_decoded_in_names_and_canonical_in_urls(void)
{
	CHECK(plan_ref("seg%201%C3%A9.ts") == MANIFEST_OK);
	CHECK_STR(items[0].path, "seg 1\xc3\xa9.ts");
	CHECK_STR(items[0].url, TOP "seg%201%C3%A9.ts");
	CHECK(plan_ref("seg 2.ts") == MANIFEST_OK);
	CHECK_STR(items[0].path, "seg 2.ts");
	CHECK_STR(items[0].url, TOP "seg%202.ts");
	/* One file spelt two ways is one item. */
	struct origin_file o[] = {
		{ TOP "index.m3u8", VOD_HEAD "#EXTINF:4,\nseg%31.ts\n#EXTINF:4,\nseg1.ts\n"
				     "#EXTINF:4,\n%73eg1.ts\n#EXT-X-ENDLIST\n" },
		{ NULL, NULL }
	};
	CHECK(plan(o, TOP "index.m3u8") == MANIFEST_OK);
	CHECK_STR(listed(), "F seg1.ts, M index.m3u8");
	CHECK_STR(url_of("seg1.ts"), TOP "seg1.ts");
}

static void test_ambiguous_encodings_are_refused(void)
{
	CHECK(plan_ref("%2e%2e/other/seg.ts") == MANIFEST_PERMANENT);
	CHECK(strstr(err, "\"%2e%2e/other/seg.ts\""));
	CHECK(plan_ref("a/%2E/seg.ts") == MANIFEST_PERMANENT);
	CHECK(plan_ref("a%2Fb.ts") == MANIFEST_PERMANENT);
	CHECK(strstr(err, "encoded '/'"));
	CHECK(plan_ref("a%00b.ts") == MANIFEST_PERMANENT);
	CHECK(plan_ref("a%0ab.ts") == MANIFEST_PERMANENT);
	CHECK(plan_ref("a%zzb.ts") == MANIFEST_PERMANENT);
	CHECK(plan_ref("a%4") == MANIFEST_PERMANENT);
	CHECK(plan_ref("a\\b.ts") == MANIFEST_PERMANENT);
	CHECK(plan_ref("a//b.ts") == MANIFEST_PERMANENT);
	CHECK(strstr(err, "empty path segment"));
	CHECK(plan_ref("dir/") == MANIFEST_PERMANENT);
	CHECK(plan_ref("a\tb.ts") == MANIFEST_PERMANENT);
}

static void test_query_is_kept_in_the_url_and_dropped_from_the_name(void)
{
	CHECK(plan_ref("seg.ts?token=a%2Fb&x=1 2") == MANIFEST_OK);
	CHECK_STR(items[0].path, "seg.ts");
	CHECK_STR(items[0].url, TOP "seg.ts?token=a%2Fb&x=1%202");
	struct origin_file o[] = {
		{ TOP "index.m3u8", VOD_HEAD "#EXTINF:4,\nseg.ts?v=1\n#EXTINF:4,\nseg.ts?v=2\n"
				     "#EXT-X-ENDLIST\n" },
		{ NULL, NULL }
	};
	CHECK(plan(o, TOP "index.m3u8") == MANIFEST_PERMANENT);
	CHECK(strstr(err, "\"seg.ts?v=2\"") && strstr(err, "same name"));
}

static void test_top_url_query_stays_in_its_url_and_relative_references_keep_none(void)
{
	struct origin_file o[] = {
		{ TOP "index.m3u8?auth=1", VOD_HEAD "#EXTINF:4,\nseg.ts\n#EXT-X-ENDLIST\n" },
		{ NULL, NULL }
	};
	CHECK(plan(o, TOP "index.m3u8?auth=1") == MANIFEST_OK);
	CHECK_STR(listed(), "F seg.ts, M index.m3u8");
	CHECK_STR(url_of("index.m3u8"), TOP "index.m3u8?auth=1");
	CHECK_STR(url_of("seg.ts"), TOP "seg.ts");
}

static void test_nested_reference_back_to_the_top_is_refused(void)
{
	struct origin_file o[] = {
		{ TOP "master.m3u8", "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n" },
		{ TOP "v.m3u8", VOD_HEAD "#EXTINF:4,\nmaster.m3u8\n#EXT-X-ENDLIST\n" },
		{ NULL, NULL }
	};
	CHECK(plan(o, TOP "master.m3u8") == MANIFEST_PERMANENT);
	CHECK(strstr(err, "both as a manifest and as a media file"));
}

static void test_passwords_never_show_in_reasons(void)
{
	struct origin_file o[] = {
		{ "http://u:s3cret@origin.test/vod/movie/index.m3u8",
		  VOD_HEAD "#EXTINF:4,\n../x.ts\n#EXTINF:4,\n" },
		{ NULL, NULL }
	};
	CHECK(plan(o, "http://u:s3cret@origin.test/vod/movie/index.m3u8") == MANIFEST_PERMANENT);
	CHECK(strstr(err, "u:***@origin.test") && !strstr(err, "s3cret"));
	CHECK(plan(o, "http://u:s3cret@origin.test/vod/movie/absent.m3u8") == MANIFEST_PERMANENT);
	CHECK(err[0] && !strstr(err, "s3cret"));
}

static void test_what_is_not_a_manifest_is_refused(void)
{
	struct origin_file o[] = {
		{ TOP "movie.ts", "G@\x11\x10 not a playlist" },
		{ TOP "bad.m3u8", "EXTM3U\nseg.ts\n" },
		{ TOP "nul.m3u8", "#EXTM3U\n#EXT-X-ENDLIST\n" },
		{ NULL, NULL }
	};
	CHECK(plan(o, TOP "movie.ts") == MANIFEST_PERMANENT);
	CHECK(strstr(err, "neither an HLS playlist"));
	CHECK(plan(o, TOP "bad.m3u8") == MANIFEST_PERMANENT);
	CHECK(strstr(err, "#EXTM3U"));
	CHECK(plan(o, "not a url") == MANIFEST_PERMANENT);
	CHECK(plan(o, "http://origin.test:99999/x.m3u8") == MANIFEST_PERMANENT);
}

static void test_format_is_sniffed_when_the_name_does_not_say(void)
{
	struct origin_file o[] = {
		{ TOP "play", "\xef\xbb\xbf#EXTM3U\n#EXTINF:4,\na.ts\n#EXT-X-ENDLIST\n" },
		{ TOP "dash", "<?xml version=\"1.0\"?><MPD type=\"static\"><Period>"
			      "<AdaptationSet><Representation id=\"r\"><BaseURL>r.mp4</BaseURL>"
			      "<SegmentBase indexRange=\"0-100\"/></Representation></AdaptationSet>"
			      "</Period></MPD>" },
		{ NULL, NULL }
	};
	CHECK(plan(o, TOP "play") == MANIFEST_OK);
	CHECK_STR(listed(), "F a.ts, M play");
	CHECK(plan(o, TOP "dash") == MANIFEST_OK);
	CHECK_STR(listed(), "F r.mp4, M dash");
}

static void test_limits_hold_against_a_hostile_playlist(void)
{
	/* One file more than a plan may hold. */
	struct util_buf b = { 0 };
	util_buf_adds(&b, VOD_HEAD);
	for (int i = 0; i < MANIFEST_MAX_ITEMS; i++)
		util_buf_addf(&b, "#EXTINF:1,\ns%d.ts\n", i);
	util_buf_adds(&b, "#EXT-X-ENDLIST\n");
	struct origin_file o[] = { { TOP "big.m3u8", b.p }, { NULL, NULL } };
	CHECK(plan(o, TOP "big.m3u8") == MANIFEST_PERMANENT);
	CHECK(strstr(err, "more than 100000 files"));
	free(b.p);
	/* A manifest past 16 MiB. */
	size_t big = MANIFEST_MAX_BYTES + 1;
	char *huge = util_malloc(big + 1);
	memset(huge, '#', big);
	memcpy(huge, "#EXTM3U\n", 8);
	huge[big] = '\0';
	o[0].body = huge;
	CHECK(plan(o, TOP "big.m3u8") == MANIFEST_PERMANENT);
	CHECK(strstr(err, "16 MiB"));
	free(huge);
	/* A reference longer than a URL may be. */
	char *lng = util_malloc(MANIFEST_MAX_URL + 2);
	memset(lng, 'a', MANIFEST_MAX_URL + 1);
	lng[MANIFEST_MAX_URL + 1] = '\0';
	struct util_buf p = { 0 };
	util_buf_addf(&p, VOD_HEAD "#EXTINF:4,\n%s\n#EXT-X-ENDLIST\n", lng);
	o[0].body = p.p;
	CHECK(plan(o, TOP "big.m3u8") == MANIFEST_PERMANENT);
	CHECK(strstr(err, "too long"));
	free(lng);
	free(p.p);
}

/* ---- DASH ------------------------------------------------------------ */

/* An MPD at TOP "m.mpd" with `body` inside MPD (static, 8 s). */
static int plan_mpd(const char *attrs, const char *body)
{
	static char text[32768];
	static struct origin_file o[2];
	snprintf(text, sizeof text,
		 "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
		 "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" "
		 "xmlns:xlink=\"http://www.w3.org/1999/xlink\" %s>%s</MPD>\n",
		 attrs ? attrs : "type=\"static\" mediaPresentationDuration=\"PT8S\"", body);
	memset(o, 0, sizeof o);
	o[0].url = TOP "m.mpd";
	o[0].body = text;
	return plan(o, TOP "m.mpd");
}

static void test_template_number_with_width_and_start_number_over_a_timeline(void)
{
	CHECK(plan_mpd(NULL, "<Period><AdaptationSet><Representation id=\"v1\" bandwidth=\"500\">"
			     "<SegmentTemplate timescale=\"1000\" startNumber=\"5\" "
			     "initialization=\"$RepresentationID$/init.mp4\" "
			     "media=\"$RepresentationID$/$Number%05d$.m4s\">"
			     "<SegmentTimeline><S t=\"0\" d=\"2000\" r=\"2\"/><S d=\"2000\"/>"
			     "</SegmentTimeline></SegmentTemplate></Representation>"
			     "</AdaptationSet></Period>") == MANIFEST_OK);
	CHECK_STR(listed(), "F v1/init.mp4, F v1/00005.m4s, F v1/00006.m4s, F v1/00007.m4s, "
			    "F v1/00008.m4s, M m.mpd");
}

static void test_template_time_repeats_to_the_period_end_with_r_minus_one(void)
{
	/* 8 s at 90 kHz in segments of 3 s: 0, 270000, 540000 (the last
	 * one short). */
	CHECK(plan_mpd(NULL, "<Period><AdaptationSet><Representation id=\"a\">"
			     "<SegmentTemplate timescale=\"90000\" media=\"t$Time$.ts\">"
			     "<SegmentTimeline><S t=\"0\" d=\"270000\" r=\"-1\"/></SegmentTimeline>"
			     "</SegmentTemplate></Representation></AdaptationSet></Period>") ==
	      MANIFEST_OK);
	CHECK_STR(listed(), "F t0.ts, F t270000.ts, F t540000.ts, M m.mpd");
	/* With a presentationTimeOffset, the timeline's times are offset too. */
	CHECK(plan_mpd(NULL, "<Period duration=\"PT4S\"><AdaptationSet><Representation id=\"a\">"
			     "<SegmentTemplate timescale=\"10\" presentationTimeOffset=\"100\" "
			     "media=\"t$Time$.ts\"><SegmentTimeline>"
			     "<S t=\"100\" d=\"20\" r=\"-1\"/></SegmentTimeline></SegmentTemplate>"
			     "</Representation></AdaptationSet></Period>") == MANIFEST_OK);
	CHECK_STR(listed(), "F t100.ts, F t120.ts, M m.mpd");
}

static void test_r_minus_one_repeats_until_the_next_s_time(void)
{
	CHECK(plan_mpd(NULL, "<Period><AdaptationSet><Representation id=\"a\">"
			     "<SegmentTemplate media=\"$Time$-$Number$.m4s\"><SegmentTimeline>"
			     "<S t=\"10\" d=\"2\" r=\"-1\"/><S t=\"16\" d=\"1\"/><S d=\"1\" r=\"1\"/>"
			     "</SegmentTimeline></SegmentTemplate></Representation>"
			     "</AdaptationSet></Period>") == MANIFEST_OK);
	CHECK_STR(listed(), "F 10-1.m4s, F 12-2.m4s, F 14-3.m4s, F 16-4.m4s, F 17-5.m4s, "
			    "F 18-6.m4s, M m.mpd");
}

static void test_r_minus_one_without_a_known_end_is_refused(void)
{
	CHECK(plan_mpd("type=\"static\"", "<Period><AdaptationSet><Representation id=\"a\">"
					  "<SegmentTemplate media=\"$Time$.m4s\"><SegmentTimeline>"
					  "<S t=\"0\" d=\"2\" r=\"-1\"/></SegmentTimeline>"
					  "</SegmentTemplate></Representation></AdaptationSet>"
					  "</Period>") == MANIFEST_PERMANENT);
	CHECK(strstr(err, "r=-1") && strstr(err, "Representation 1 (id a)"));
}

static void test_duration_template_counts_segments_from_the_period_duration(void)
{
	/* 8 s at 3 s a segment: 3 segments, the last one short. */
	CHECK(plan_mpd(NULL, "<Period><AdaptationSet><Representation id=\"v\" bandwidth=\"128000\">"
			     "<SegmentTemplate timescale=\"48000\" duration=\"144000\" "
			     "startNumber=\"0\" initialization=\"init-$Bandwidth$.mp4\" "
			     "media=\"seg-$Bandwidth%08d$-$Number$.m4s\"/></Representation>"
			     "</AdaptationSet></Period>") == MANIFEST_OK);
	CHECK_STR(listed(), "F init-128000.mp4, F seg-00128000-0.m4s, F seg-00128000-1.m4s, "
			    "F seg-00128000-2.m4s, M m.mpd");
	/* Exactly divisible: no extra segment from rounding (3.2 s at 0.8 s). */
	CHECK(plan_mpd("type=\"static\" mediaPresentationDuration=\"PT3.2S\"",
		       "<Period><AdaptationSet><Representation id=\"v\">"
		       "<SegmentTemplate timescale=\"10\" duration=\"8\" media=\"$Number$.m4s\"/>"
		       "</Representation></AdaptationSet></Period>") == MANIFEST_OK);
	CHECK_STR(listed(), "F 1.m4s, F 2.m4s, F 3.m4s, F 4.m4s, M m.mpd");
	/* Without any duration the count is unknown. */
	CHECK(plan_mpd("type=\"static\"", "<Period><AdaptationSet><Representation id=\"v\">"
					  "<SegmentTemplate duration=\"2\" media=\"$Number$.m4s\"/>"
					  "</Representation></AdaptationSet></Period>") ==
	      MANIFEST_PERMANENT);
	CHECK(strstr(err, "cannot count"));
}

static void test_periods_take_their_durations_from_starts_and_the_total(void)
{
	CHECK(plan_mpd("type=\"static\" mediaPresentationDuration=\"PT1M\"",
		       "<Period id=\"p1\" start=\"PT0S\"><BaseURL>p1/</BaseURL><AdaptationSet>"
		       "<SegmentTemplate duration=\"20\" media=\"$RepresentationID$-$Number$.m4s\"/>"
		       "<Representation id=\"x\"/></AdaptationSet></Period>"
		       "<Period id=\"p2\" start=\"PT20S\"><BaseURL>p2/</BaseURL><AdaptationSet>"
		       "<SegmentTemplate duration=\"20\" media=\"$RepresentationID$-$Number$.m4s\"/>"
		       "<Representation id=\"y\"/></AdaptationSet></Period>") == MANIFEST_OK);
	CHECK_STR(listed(), "F p1/x-1.m4s, F p2/y-1.m4s, F p2/y-2.m4s, M m.mpd");
}

static void test_base_urls_compose_from_mpd_to_representation(void)
{
	CHECK(plan_mpd(NULL, "<BaseURL>media/</BaseURL><Period><BaseURL>p/</BaseURL>"
			     "<AdaptationSet><BaseURL>video/</BaseURL>"
			     "<Representation id=\"hi\"><BaseURL>hi/</BaseURL>"
			     "<SegmentTemplate timescale=\"1\" duration=\"4\" "
			     "initialization=\"init.mp4\" media=\"$Number$.m4s\"/>"
			     "</Representation>"
			     "<Representation id=\"lo\"><BaseURL>"
			     "http://origin.test/vod/movie/media/p/video/lo/</BaseURL>"
			     "<SegmentTemplate timescale=\"1\" duration=\"8\" media=\"$Number$.m4s\"/>"
			     "</Representation></AdaptationSet></Period>") == MANIFEST_OK);
	CHECK_STR(listed(), "F media/p/video/hi/init.mp4, F media/p/video/hi/1.m4s, "
			    "F media/p/video/hi/2.m4s, F media/p/video/lo/1.m4s, M m.mpd");
}

static void test_base_url_leaving_the_directory_is_refused_naming_the_file(void)
{
	CHECK(plan_mpd(NULL, "<BaseURL>../common/</BaseURL><Period><AdaptationSet>"
			     "<Representation id=\"r\"><BaseURL>r.mp4</BaseURL><SegmentBase/>"
			     "</Representation></AdaptationSet></Period>") == MANIFEST_PERMANENT);
	CHECK(strstr(err, "common/r.mp4") && strstr(err, "leaves the manifest's directory"));
	CHECK(plan_mpd(NULL, "<BaseURL>http://cdn2.test/vod/movie/</BaseURL><Period>"
			     "<AdaptationSet><Representation id=\"r\"><BaseURL>r.mp4</BaseURL>"
			     "</Representation></AdaptationSet></Period>") == MANIFEST_PERMANENT);
	CHECK(strstr(err, "leaves the manifest's origin"));
}

static void test_template_is_inherited_from_the_adaptation_set(void)
{
	CHECK(plan_mpd(NULL, "<Period><AdaptationSet>"
			     "<SegmentTemplate timescale=\"1\" duration=\"4\" "
			     "media=\"$RepresentationID$/$Number$.m4s\" "
			     "initialization=\"$RepresentationID$/i.mp4\"/>"
			     "<Representation id=\"a\"/>"
			     "<Representation id=\"b\"><SegmentTemplate startNumber=\"10\"/>"
			     "</Representation></AdaptationSet></Period>") == MANIFEST_OK);
	CHECK_STR(listed(), "F a/i.mp4, F a/1.m4s, F a/2.m4s, F b/i.mp4, F b/10.m4s, F b/11.m4s, "
			    "M m.mpd");
}

static void test_template_identifiers_that_cannot_be_filled_are_refused(void)
{
	CHECK(plan_mpd(NULL, "<Period><AdaptationSet><Representation id=\"a\">"
			     "<SegmentTemplate duration=\"4\" media=\"$SubNumber$.m4s\"/>"
			     "</Representation></AdaptationSet></Period>") == MANIFEST_PERMANENT);
	CHECK(strstr(err, "$SubNumber$.m4s"));
	CHECK(plan_mpd(NULL, "<Period><AdaptationSet><Representation id=\"a\">"
			     "<SegmentTemplate duration=\"4\" media=\"$Number%5x$.m4s\"/>"
			     "</Representation></AdaptationSet></Period>") == MANIFEST_PERMANENT);
	CHECK(plan_mpd(NULL, "<Period><AdaptationSet><Representation id=\"a\">"
			     "<SegmentTemplate duration=\"4\" initialization=\"$Number$.mp4\" "
			     "media=\"$Number$.m4s\"/></Representation></AdaptationSet></Period>") ==
	      MANIFEST_PERMANENT);
	/* $$ is a dollar sign. */
	CHECK(plan_mpd(NULL, "<Period><AdaptationSet><Representation id=\"a\">"
			     "<SegmentTemplate duration=\"8\" media=\"$$$Number$.m4s\"/>"
			     "</Representation></AdaptationSet></Period>") == MANIFEST_OK);
	CHECK_STR(listed(), "F $1.m4s, M m.mpd");
}

static void test_segment_list_names_its_files_and_ranges_of_one_file_once(void)
{
	CHECK(plan_mpd(NULL, "<Period><AdaptationSet><Representation id=\"a\">"
			     "<SegmentList duration=\"4\"><Initialization sourceURL=\"a/init.mp4\"/>"
			     "<SegmentURL media=\"a/1.m4s\"/><SegmentURL media=\"a/2.m4s\"/>"
			     "</SegmentList></Representation>"
			     "<Representation id=\"b\"><BaseURL>b.mp4</BaseURL>"
			     "<SegmentList duration=\"4\"><Initialization range=\"0-99\"/>"
			     "<SegmentURL mediaRange=\"100-199\"/><SegmentURL mediaRange=\"200-299\"/>"
			     "</SegmentList></Representation></AdaptationSet></Period>") ==
	      MANIFEST_OK);
	CHECK_STR(listed(), "F a/init.mp4, F a/1.m4s, F a/2.m4s, F b.mp4, M m.mpd");
}

static void test_segment_base_is_the_representation_file(void)
{
	CHECK(plan_mpd(NULL, "<Period><AdaptationSet><Representation id=\"v\">"
			     "<BaseURL>video/v.mp4</BaseURL>"
			     "<SegmentBase indexRange=\"800-1200\"><Initialization range=\"0-799\"/>"
			     "</SegmentBase></Representation>"
			     "<Representation id=\"w\"><BaseURL>video/w.mp4</BaseURL>"
			     "<SegmentBase indexRange=\"0-9\"><Initialization sourceURL=\"w-init.mp4\"/>"
			     "</SegmentBase></Representation>"
			     "<Representation id=\"x\"><BaseURL>x.mp4</BaseURL></Representation>"
			     "</AdaptationSet></Period>") == MANIFEST_OK);
	CHECK_STR(listed(), "F video/v.mp4, F video/w-init.mp4, F video/w.mp4, F x.mp4, M m.mpd");
	/* Without a BaseURL there is no file to name. */
	CHECK(plan_mpd(NULL, "<Period><AdaptationSet><Representation id=\"v\"><SegmentBase/>"
			     "</Representation></AdaptationSet></Period>") == MANIFEST_PERMANENT);
	CHECK(strstr(err, "no BaseURL"));
}

static void test_dynamic_mpd_is_refused_as_live(void)
{
	CHECK(plan_mpd("type=\"dynamic\" availabilityStartTime=\"2026-01-01T00:00:00Z\"",
		       "<Period start=\"PT0S\"/>") == MANIFEST_PERMANENT);
	CHECK(strstr(err, "m.mpd is live"));
}

static void test_remote_elements_dtds_and_bad_xml_are_refused(void)
{
	CHECK(plan_mpd(NULL, "<Period xlink:href=\"http://origin.test/vod/movie/p.xml\" "
			     "xlink:actuate=\"onLoad\"/>") == MANIFEST_PERMANENT);
	CHECK(strstr(err, "xlink:href on Period"));
	struct origin_file o[] = {
		{ TOP "m.mpd", "<?xml version=\"1.0\"?><!DOCTYPE MPD [<!ENTITY a \"aaaa\">]>"
			       "<MPD type=\"static\">&a;</MPD>" },
		{ TOP "bad.mpd", "<MPD type=\"static\"><Period></MPD>" },
		{ TOP "root.mpd", "<?xml version=\"1.0\"?><NotMPD/>" },
		{ NULL, NULL }
	};
	CHECK(plan(o, TOP "m.mpd") == MANIFEST_PERMANENT);
	CHECK(strstr(err, "DTD"));
	CHECK(plan(o, TOP "bad.mpd") == MANIFEST_PERMANENT);
	CHECK(strstr(err, "not well-formed XML"));
	CHECK(plan(o, TOP "root.mpd") == MANIFEST_PERMANENT);
	CHECK(strstr(err, "root element"));
}

static void test_segment_counts_past_the_limit_are_refused_before_expansion(void)
{
	CHECK(plan_mpd("type=\"static\" mediaPresentationDuration=\"P400D\"",
		       "<Period><AdaptationSet><Representation id=\"a\">"
		       "<SegmentTemplate duration=\"1\" media=\"$Number$.m4s\"/>"
		       "</Representation></AdaptationSet></Period>") == MANIFEST_PERMANENT);
	CHECK(strstr(err, "more than 100000 segments"));
	CHECK(plan_mpd(NULL, "<Period><AdaptationSet><Representation id=\"a\">"
			     "<SegmentTemplate media=\"$Number$.m4s\"><SegmentTimeline>"
			     "<S d=\"1\" r=\"999999999999\"/></SegmentTimeline>"
			     "</SegmentTemplate></Representation></AdaptationSet></Period>") ==
	      MANIFEST_PERMANENT);
	CHECK(strstr(err, "more than 100000 segments"));
	/* The same file named over and over is bounded too. */
	CHECK(plan_mpd("type=\"static\" mediaPresentationDuration=\"PT99999S\"",
		       "<Period><AdaptationSet>"
		       "<SegmentTemplate duration=\"1\" media=\"same.m4s\"/>"
		       "<Representation id=\"a\"/><Representation id=\"b\"/>"
		       "<Representation id=\"c\"/><Representation id=\"d\"/>"
		       "<Representation id=\"e\"/><Representation id=\"f\"/>"
		       "<Representation id=\"g\"/><Representation id=\"h\"/>"
		       "<Representation id=\"i\"/><Representation id=\"j\"/>"
		       "<Representation id=\"k\"/></AdaptationSet></Period>") ==
	      MANIFEST_PERMANENT);
	CHECK(strstr(err, "more than 400000 references"));
	/* A BaseURL longer than a URL may be, before any segment is named. */
	char *lng = util_malloc(MANIFEST_MAX_URL + 2);
	memset(lng, 'b', MANIFEST_MAX_URL + 1);
	lng[MANIFEST_MAX_URL + 1] = '\0';
	char *body = util_printf("<BaseURL>%s/</BaseURL><Period><AdaptationSet>"
				 "<Representation id=\"a\"><SegmentTemplate duration=\"1\" "
				 "media=\"$Number$.m4s\"/></Representation></AdaptationSet>"
				 "</Period>", lng);
	free(lng);
	int rc = plan_mpd(NULL, body);
	free(body);
	CHECK(rc == MANIFEST_PERMANENT);
	CHECK(strstr(err, "BaseURL") && strstr(err, "too long"));
}

int main(void)
{
	log_set_level(LOG_ERROR);
	RUN(test_references_resolve_as_rfc_3986_says);
	RUN(test_media_playlist_lists_its_segments_then_itself);
	RUN(test_master_lists_media_then_media_playlists_then_itself);
	RUN(test_init_section_with_byterange_and_byterange_segments_name_one_file_once);
	RUN(test_keys_are_files_unless_method_none_drm_or_inline);
	RUN(test_key_with_method_but_no_uri_is_refused);
	RUN(test_alternate_renditions_and_iframe_playlists_are_planned);
	RUN(test_playlist_named_twice_is_fetched_and_listed_once);
	RUN(test_gap_segments_are_skipped_and_variables_refused);
	RUN(test_live_playlist_is_refused_with_its_reason);
	RUN(test_live_variant_of_a_master_is_refused_naming_it);
	RUN(test_master_naming_a_master_is_refused);
	RUN(test_missing_media_playlist_fails_permanent_or_transient_as_fetched);
	RUN(test_references_leaving_the_directory_are_refused_naming_them);
	RUN(test_references_leaving_the_origin_are_refused_naming_them);
	RUN(test_references_within_directory_and_origin_are_taken_however_written);
	RUN(test_percent_encoding_is_decoded_in_names_and_canonical_in_urls);
	RUN(test_ambiguous_encodings_are_refused);
	RUN(test_query_is_kept_in_the_url_and_dropped_from_the_name);
	RUN(test_top_url_query_stays_in_its_url_and_relative_references_keep_none);
	RUN(test_nested_reference_back_to_the_top_is_refused);
	RUN(test_passwords_never_show_in_reasons);
	RUN(test_what_is_not_a_manifest_is_refused);
	RUN(test_format_is_sniffed_when_the_name_does_not_say);
	RUN(test_limits_hold_against_a_hostile_playlist);
	RUN(test_template_number_with_width_and_start_number_over_a_timeline);
	RUN(test_template_time_repeats_to_the_period_end_with_r_minus_one);
	RUN(test_r_minus_one_repeats_until_the_next_s_time);
	RUN(test_r_minus_one_without_a_known_end_is_refused);
	RUN(test_duration_template_counts_segments_from_the_period_duration);
	RUN(test_periods_take_their_durations_from_starts_and_the_total);
	RUN(test_base_urls_compose_from_mpd_to_representation);
	RUN(test_base_url_leaving_the_directory_is_refused_naming_the_file);
	RUN(test_template_is_inherited_from_the_adaptation_set);
	RUN(test_template_identifiers_that_cannot_be_filled_are_refused);
	RUN(test_segment_list_names_its_files_and_ranges_of_one_file_once);
	RUN(test_segment_base_is_the_representation_file);
	RUN(test_dynamic_mpd_is_refused_as_live);
	RUN(test_remote_elements_dtds_and_bad_xml_are_refused);
	RUN(test_segment_counts_past_the_limit_are_refused_before_expansion);
	manifest_free_items(items, n);
	return HARNESS_END("test_manifest");
}

/*
 * test_asset.c - asset_source, asset_destination and asset_public against
 * a real directory tree under /tmp and against remote servers named in the
 * configuration: which values are accepted, what they map to, that nothing
 * escapes the root, that no password shows in an error or an answer, and
 * that what apubid answers maps back to the same asset.
 */
#include "apubid.h"
#include "harness.h"

#include <ftw.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char base[] = "/tmp/apubid-asset-XXXXXX";
static struct config conf;     /* root, allow prefixes, no public_url */
static struct config pubconf;  /* the same with a public_url */
static struct config rconf;    /* a remote (FTP) root with credentials */
static char err[512];
static char buf[1024];

/* Formats a string with the temp directory in it: P("%s/ingest/a.ts"). */
#define P(fmt) (snprintf(buf, sizeof buf, (fmt), base), buf)

static int make_file(const char *rel)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/%s", base, rel);
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	fputs("x", f);
	return fclose(f);
}

static int make_dir(const char *rel)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/%s", base, rel);
	return mkdir(path, 0755);
}

static int setup(void)
{
	if (!mkdtemp(base))
		return -1;
	if (make_dir("ingest") || make_dir("ingest2") || make_dir("cdn") || make_dir("cdnx") ||
	    make_dir("ingest/pkg") || make_file("ingest/a.ts") || make_file("ingest2/a.ts") ||
	    make_file("ingest/pkg/index.m3u8") || make_file("ingest/\xc3\xa9t\xc3\xa9 1.ts") ||
	    make_file("ingest/50%25.ts") || make_file("secret.ts"))
		return -1;
	char *text = util_printf("[source]\n"
				 "allow = %s/ingest\n"
				 "allow = ftp://cis:21/repository/\n"
				 "allow = ftps://vault/secure/\n"
				 "allow = sftp://ingest.example:22/media/\n"
				 "allow = https://origin.example/assets/\n"
				 "allow = http://plain.example:8080/assets/\n"
				 "[destination]\n"
				 "root = %s/cdn/\n"
				 "allow = ftp://cdn:21/data/cdn/\n"
				 "allow = ftp://cdn:21/data/\n"
				 "allow = ftp://[::1]:2121/pub/\n",
				 base, base);
	char *pubtext = util_printf("%spublic_url = http://CDN.example.com/vod/\n", text);
	int rc = config_parse(&conf, text, "conf", err, sizeof err);
	if (rc == 0)
		rc = config_parse(&pubconf, pubtext, "pubconf", err, sizeof err);
	if (rc == 0)
		rc = config_parse(&rconf,
				  "[destination]\n"
				  "root = ftp://publisher:s3cret@CDN:21/data/cdn\n"
				  "allow = https://dav.example/upload/\n",
				  "rconf", err, sizeof err);
	free(text);
	free(pubtext);
	return rc;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void teardown(void)
{
	config_free(&conf);
	config_free(&pubconf);
	config_free(&rconf);
	nftw(base, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- sources ---- */

/* Runs asset_source expecting success; returns the local path in buf. */
static int source_ok(const char *src, int *is_dir)
{
	char *local = NULL;
	int rc = asset_source(&conf, src, &local, is_dir, err, sizeof err);
	if (rc != 0) {
		fprintf(stderr, "  asset_source(%s): %s\n", src, err);
		return 0;
	}
	snprintf(buf, sizeof buf, "%s", local);
	free(local);
	return 1;
}

/* Runs asset_source expecting the exact refusal `want`, or any refusal
 * when `want` is NULL. */
static int source_refused(const char *src, const char *want)
{
	char *local = (char *)1;
	int dir = 7;
	int rc = asset_source(&conf, src, &local, &dir, err, sizeof err);
	if (rc != -1 || local != NULL || dir != 0 || (want && strcmp(err, want) != 0)) {
		fprintf(stderr, "  asset_source(%s) gave rc %d, \"%s\"; wanted \"%s\"\n", src, rc,
			err, want ? want : "a refusal");
		if (rc == 0)
			free(local);
		return 0;
	}
	return 1;
}

static void test_absolute_path_source_under_allow_is_accepted(void)
{
	int dir;
	char src[1024], want[1024];
	snprintf(src, sizeof src, "%s/ingest/a.ts", base);
	snprintf(want, sizeof want, "%s/ingest/a.ts", base);
	CHECK(source_ok(src, &dir));
	CHECK_STR(buf, want);
	CHECK(dir == 0);
}

static void test_file_url_source_is_accepted(void)
{
	int dir;
	char src[1024], want[1024];
	snprintf(src, sizeof src, "file://%s/ingest//./a.ts", base);
	snprintf(want, sizeof want, "%s/ingest/a.ts", base);
	CHECK(source_ok(src, &dir));
	CHECK_STR(buf, want);
	snprintf(src, sizeof src, "FILE://LocalHost%s/ingest/a.ts", base);
	CHECK(source_ok(src, &dir));
	CHECK_STR(buf, want);
}

static void test_source_url_is_percent_decoded(void)
{
	int dir;
	char src[1024], want[1024];
	snprintf(src, sizeof src, "file://%s/ingest/%%C3%%A9t%%C3%%A9%%201.ts", base);
	snprintf(want, sizeof want, "%s/ingest/\xc3\xa9t\xc3\xa9 1.ts", base);
	CHECK(source_ok(src, &dir));
	CHECK_STR(buf, want);
}

static void test_source_path_is_not_percent_decoded(void)
{
	int dir;
	char src[1024];
	snprintf(src, sizeof src, "%s/ingest/50%%25.ts", base);
	CHECK(source_ok(src, &dir));
	CHECK_STR(buf, src);
}

static void test_directory_source_with_trailing_slash(void)
{
	int dir;
	char src[1024], want[1024];
	snprintf(src, sizeof src, "%s/ingest/pkg/", base);
	snprintf(want, sizeof want, "%s/ingest/pkg", base);
	CHECK(source_ok(src, &dir));
	CHECK_STR(buf, want);
	CHECK(dir == 1);
}

static void test_directory_source_without_trailing_slash_is_a_directory(void)
{
	int dir;
	char src[1024];
	snprintf(src, sizeof src, "file://%s/ingest/pkg", base);
	CHECK(source_ok(src, &dir));
	CHECK(dir == 1);
}

static void test_file_source_with_trailing_slash_is_not_a_directory(void)
{
	char want[1024];
	snprintf(want, sizeof want, "source is not a directory: %s/ingest/a.ts", base);
	CHECK(source_refused(P("%s/ingest/a.ts/"), want));
}

static void test_missing_source_does_not_exist(void)
{
	char want[1024];
	snprintf(want, sizeof want, "source asset does not exist: %s/ingest/nope.ts", base);
	CHECK(source_refused(P("%s/ingest/nope.ts"), want));
	CHECK(source_refused(P("file://%s/ingest/nope.ts"), want));
	snprintf(want, sizeof want, "source asset does not exist: %s/ingest/a.ts/x", base);
	CHECK(source_refused(P("%s/ingest/a.ts/x"), want));
}

static void test_symlink_out_of_the_source_area_is_refused(void)
{
	char link[1024], target[1024], want[1024];
	snprintf(link, sizeof link, "%s/ingest/escape", base);
	snprintf(target, sizeof target, "%s", base); /* holds secret.ts */
	CHECK(symlink(target, link) == 0);
	snprintf(want, sizeof want,
		 "source resolves outside the allowed source prefixes: %s/ingest/escape/secret.ts",
		 base);
	int ok = source_refused(P("%s/ingest/escape/secret.ts"), want);
	unlink(link);
	CHECK(ok);
}

static void test_source_outside_allow_is_refused(void)
{
	char want[1024];
	snprintf(want, sizeof want, "source is not under an allowed source prefix: %s/secret.ts",
		 base);
	CHECK(source_refused(P("%s/secret.ts"), want));
	CHECK(source_refused("/etc/passwd",
			     "source is not under an allowed source prefix: /etc/passwd"));
}

static void test_source_prefix_ends_at_a_slash(void)
{
	char want[1024];
	snprintf(want, sizeof want, "source is not under an allowed source prefix: %s/ingest2/a.ts",
		 base);
	CHECK(source_refused(P("%s/ingest2/a.ts"), want));
}

static void test_source_allow_prefix_itself_is_a_directory_source(void)
{
	int is_dir = 0;
	CHECK(source_ok(P("%s/ingest/"), &is_dir));
	CHECK(is_dir == 1);
	char want[1024];
	snprintf(want, sizeof want, "%s/ingest", base);
	CHECK_STR(buf, want);
}

static void test_source_dotdot_is_refused(void)
{
	char want[1024];
	snprintf(want, sizeof want, "source path must not contain '..': %s/ingest/../secret.ts", base);
	CHECK(source_refused(P("%s/ingest/../secret.ts"), want));
	snprintf(want, sizeof want, "source path must not contain '..': file://%s/ingest/%%2e%%2E/secret.ts",
		 base);
	CHECK(source_refused(P("file://%s/ingest/%%2e%%2E/secret.ts"), want));
	snprintf(want, sizeof want, "source path must not contain '..': file://%s/ingest/..%%2Fsecret.ts",
		 base);
	CHECK(source_refused(P("file://%s/ingest/..%%2Fsecret.ts"), want));
}

static void test_unknown_source_scheme_is_unsupported(void)
{
	CHECK(source_refused("gopher://user:password@cis/repository/movie.ts",
			     "unsupported source scheme 'gopher' (supported: file, ftp, ftps, sftp, "
			     "http, https)"));
	CHECK(source_refused("SCP://cis/repository/x.ts",
			     "unsupported source scheme 'scp' (supported: file, ftp, ftps, sftp, "
			     "http, https)"));
}

/* ---- remote sources ---- */

static void test_remote_source_under_allow_is_accepted(void)
{
	int dir = -1;
	CHECK(source_ok("ftp://user:password@CIS:21/repository/movie.ts", &dir));
	CHECK_STR(buf, "/repository/movie.ts");
	CHECK(dir == 0);
	CHECK(source_ok("sftp://ingest.example:22/media/2015/clip.mp4", &dir));
	CHECK_STR(buf, "/media/2015/clip.mp4");
	CHECK(source_ok("HTTPS://Origin.Example/assets/a.mp4", &dir));
	CHECK_STR(buf, "/assets/a.mp4");
	CHECK(source_ok("http://plain.example:8080/assets/b.ts", &dir));
	CHECK_STR(buf, "/assets/b.ts");
}

static void test_remote_source_is_not_looked_up(void)
{
	int dir;
	/* Nothing answers on these hosts: the worker finds out, not the
	 * request. */
	CHECK(source_ok("ftps://vault/secure/does/not/exist.ts", &dir));
	CHECK_STR(buf, "/secure/does/not/exist.ts");
}

static void test_remote_source_path_is_decoded_and_normalised(void)
{
	int dir;
	CHECK(source_ok("ftp://cis/repository//%C3%A9t%C3%A9%201/./m.ts", &dir));
	CHECK_STR(buf, "/repository/\xc3\xa9t\xc3\xa9 1/m.ts");
}

static void test_remote_directory_source_ends_in_slash(void)
{
	int dir = -1;
	CHECK(source_ok("ftp://u:pw@cis:21/repository/pkg/", &dir));
	CHECK_STR(buf, "/repository/pkg");
	CHECK(dir == 1);
	CHECK(source_ok("sftp://ingest.example/media/pkg//", &dir));
	CHECK_STR(buf, "/media/pkg");
	CHECK(dir == 1);
	/* Without the '/' nothing says it is a directory until the worker
	 * looks. */
	CHECK(source_ok("ftps://vault/secure/pkg", &dir));
	CHECK(dir == 0);
}

static void test_directory_source_over_http_is_refused(void)
{
	CHECK(source_refused("https://user:s3cret@origin.example/assets/pkg/",
			     "a directory source is not supported over http (an HTTP server "
			     "lists nothing: name the package's .m3u8 or .mpd manifest, with a "
			     "directory as DestinationAsset): "
			     "https://user:***@origin.example/assets/pkg/"));
	CHECK(source_refused("http://plain.example:8080/assets/pkg/",
			     "a directory source is not supported over http (an HTTP server "
			     "lists nothing: name the package's .m3u8 or .mpd manifest, with a "
			     "directory as DestinationAsset): "
			     "http://plain.example:8080/assets/pkg/"));
}

static void test_package_is_an_http_manifest(void)
{
	CHECK(asset_package("http://origin.example/vod/a/master.m3u8") == 1);
	CHECK(asset_package("https://u:pw@origin.example:8443/vod/a/Manifest.MPD") == 1);
	/* A manifest elsewhere is a file like any other: FTP and SFTP list
	 * their directories. */
	CHECK(asset_package("ftp://cis/vod/a/master.m3u8") == 0);
	CHECK(asset_package("/srv/ingest/a/master.m3u8") == 0);
	CHECK(asset_package("http://origin.example/vod/a/seg1.ts") == 0);
	CHECK(asset_package("http://origin.example/vod/a.m3u8/") == 0);
	CHECK(asset_package("http://origin.example/vod/a.m3u8.d/x") == 0);
	CHECK(asset_package("not a url") == 0);
}

static void test_ftps_and_sftp_absent_port_is_the_default(void)
{
	int dir;
	/* ftps is explicit TLS: it starts on FTP's port 21, not 990. */
	CHECK(source_ok("ftps://vault:21/secure/x.ts", &dir));
	CHECK(source_refused("ftps://vault:990/secure/x.ts",
			     "source is not under an allowed source prefix: "
			     "ftps://vault:990/secure/x.ts"));
	CHECK(source_ok("sftp://ingest.example/media/x.ts", &dir));
	CHECK(source_refused("sftp://ingest.example:2222/media/x.ts", NULL));
	CHECK(source_ok("https://origin.example:443/assets/x.ts", &dir));
	CHECK(source_refused("http://plain.example/assets/x.ts", NULL));
	CHECK(source_ok("ftp://cis/repository/x.ts", &dir));
}

static void test_remote_source_outside_allow_is_refused(void)
{
	CHECK(source_refused("ftp://user:s3cret@other:21/repository/movie.ts",
			     "source is not under an allowed source prefix: "
			     "ftp://user:***@other:21/repository/movie.ts"));
	CHECK(source_refused("ftp://cis/repositoryx/movie.ts", NULL));
	CHECK(source_refused("ftp://cis/movie.ts", NULL));
	/* The scheme is part of the prefix: ftp is not ftps. */
	CHECK(source_refused("ftp://vault/secure/x.ts", NULL));
	CHECK(source_refused("sftp://cis/repository/x.ts", NULL));
	/* The userinfo is not the host. */
	CHECK(source_refused("ftp://cis:21@evil/repository/x.ts",
			     "source is not under an allowed source prefix: "
			     "ftp://cis:***@evil/repository/x.ts"));
}

static void test_remote_allow_prefix_itself_is_a_directory_source(void)
{
	int is_dir = 0;
	CHECK(source_ok("ftp://user:pw@CIS:21/repository/", &is_dir));
	CHECK(is_dir == 1);
	CHECK_STR(buf, "/repository");
	CHECK(source_refused("ftp://cis:21/repo/", NULL));
}

static void test_remote_source_dotdot_is_refused(void)
{
	CHECK(source_refused("ftp://u:s3cret@cis/repository/../etc/passwd",
			     "source path must not contain '..': "
			     "ftp://u:***@cis/repository/../etc/passwd"));
	CHECK(source_refused("sftp://ingest.example/media/%2E%2e/etc/passwd", NULL));
	CHECK(source_refused("https://origin.example/assets/..%2Fsecret", NULL));
}

static void test_remote_source_without_a_path_is_refused(void)
{
	CHECK(source_refused("ftp://u:s3cret@cis", "source URL names no path: ftp://u:***@cis"));
	CHECK(source_refused("https://origin.example/", NULL));
}

static void test_remote_source_without_a_host_is_refused(void)
{
	CHECK(source_refused("ftp:///repository/x.ts", NULL));
	CHECK(strstr(err, "no host") != NULL);
}

static void test_remote_source_credentials_are_masked_in_every_error(void)
{
	const char *bad[] = {
		"ftp://user:s3cret@cis:99999/repository/x.ts",
		"ftp://user:s3cret@other/repository/x.ts",
		"ftp://user:s3cret@cis/repository/../x.ts",
		"ftp://user:s3cret@cis/repository/%00.ts",
		"ftp://user:s3cret@cis/repository/x.ts?a=1",
		"ftp://user:s3cret@cis/repository/x.ts\r\n",
		"ftp://user:s3cret@cis",
		"https://user:s3cret@origin.example/assets/dir/",
		"sftp://user:s3cret@ingest.example:2222/media/x.ts",
		"gopher://user:s3cret@cis/x.ts",
		"ftp://user:s3/cret@cis/repository/x.ts",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK(source_refused(bad[i], NULL));
		if (strstr(err, "s3cret") || strstr(err, "cret@")) {
			fprintf(stderr, "  asset_source(%s) showed the password: %s\n", bad[i], err);
			CHECK(0);
		}
	}
}

static void test_relative_source_is_refused(void)
{
	CHECK(source_refused("ingest/a.ts",
			     "source must be an absolute URL or an absolute path: ingest/a.ts"));
	CHECK(source_refused("", "source asset URL is empty"));
}

static void test_unparseable_source_url_is_refused_and_masked(void)
{
	CHECK(source_refused("ftp://user:secret@cis:99999/x.ts",
			     "source URL is not valid (bad port (expected 1 to 65535)): "
			     "ftp://user:***@cis:99999/x.ts"));
	CHECK(source_refused(P("file://%s/ingest/a%%00.ts"), NULL));
	CHECK(strstr(err, "%00") != NULL);
}

static void test_file_source_on_a_remote_host_is_refused(void)
{
	CHECK(source_refused("file://otherhost/srv/a.ts",
			     "a file:// source cannot name a remote host: file://otherhost/srv/a.ts"));
}

static void test_crlf_in_source_is_refused_and_not_echoed(void)
{
	char src[1024], want[1024];
	snprintf(src, sizeof src, "%s/ingest/a.ts\r\nINFO forged", base);
	snprintf(want, sizeof want, "source contains a control character: %s/ingest/a.ts??INFO forged",
		 base);
	CHECK(source_refused(src, want));
	snprintf(src, sizeof src, "file://%s/ingest/a.ts\r\n", base);
	CHECK(source_refused(src, NULL));
	CHECK(strchr(err, '\r') == NULL && strchr(err, '\n') == NULL);
}

static void test_source_credentials_are_masked_in_errors(void)
{
	CHECK(source_refused("file://u:secret@localhost/etc/passwd",
			     "source is not under an allowed source prefix: "
			     "file://u:***@localhost/etc/passwd"));
}

/* ---- destinations ---- */

static int dest_ok(const struct config *c, const char *dst, const char *want_rel, int want_dir)
{
	char *rel = NULL;
	int dir = -1;
	if (asset_destination(c, dst, &rel, &dir, err, sizeof err) != 0) {
		fprintf(stderr, "  asset_destination(%s): %s\n", dst, err);
		return 0;
	}
	int ok = strcmp(rel, want_rel) == 0 && dir == want_dir;
	if (!ok)
		fprintf(stderr, "  asset_destination(%s) = \"%s\" dir %d; wanted \"%s\" dir %d\n", dst,
			rel, dir, want_rel, want_dir);
	free(rel);
	return ok;
}

static int dest_refused(const struct config *c, const char *dst, const char *want)
{
	char *rel = (char *)1;
	int dir = 7;
	int rc = asset_destination(c, dst, &rel, &dir, err, sizeof err);
	if (rc != -1 || rel != NULL || dir != 0 || (want && strcmp(err, want) != 0)) {
		fprintf(stderr, "  asset_destination(%s) gave rc %d, \"%s\"; wanted \"%s\"\n", dst,
			rc, err, want ? want : "a refusal");
		if (rc == 0)
			free(rel);
		return 0;
	}
	return 1;
}

static const char root_itself[] =
	"destination must name an asset below the root, not the root itself";

static void test_relative_destination_lands_under_root(void)
{
	CHECK(dest_ok(&conf, "dir/movie.ts", "dir/movie.ts", 0));
	CHECK(dest_ok(&conf, "Test_Encryption_GenericAssetContent_01/TestAsset_1080p.mp4",
		      "Test_Encryption_GenericAssetContent_01/TestAsset_1080p.mp4", 0));
}

static void test_relative_directory_destination_ends_in_slash(void)
{
	CHECK(dest_ok(&conf, "Test_Encryption_GenericAssetContent_01/",
		      "Test_Encryption_GenericAssetContent_01", 1));
}

static void test_relative_destination_is_normalised(void)
{
	CHECK(dest_ok(&conf, "./a//b/./c.ts", "a/b/c.ts", 0));
}

static void test_relative_destination_is_not_percent_decoded(void)
{
	CHECK(dest_ok(&conf, "a%20b/%2e%2e/c%2Fd.ts", "a%20b/%2e%2e/c%2Fd.ts", 0));
}

static void test_dotdot_segment_is_refused(void)
{
	CHECK(dest_refused(&conf, "a/../../etc/passwd",
			   "destination path must not contain '..': a/../../etc/passwd"));
	CHECK(dest_refused(&conf, "..", "destination path must not contain '..': .."));
	CHECK(dest_refused(&conf, "a/..", NULL));
}

static void test_encoded_dotdot_in_url_is_refused(void)
{
	CHECK(dest_refused(&conf, "ftp://cdn:21/data/cdn/%2e%2e/%2E%2E/etc/x",
			   "destination path must not contain '..': "
			   "ftp://cdn:21/data/cdn/%2e%2e/%2E%2E/etc/x"));
	CHECK(dest_refused(&conf, "ftp://cdn:21/data/cdn/..%2F..%2Fetc", NULL));
	CHECK(dest_refused(&conf, P("file://%s/cdn/%%2e%%2e/secret.ts"), NULL));
}

static void test_encoded_slash_in_url_separates_segments(void)
{
	CHECK(dest_ok(&conf, "ftp://cdn:21/data/cdn/a%2Fb.ts", "a/b.ts", 0));
}

static void test_encoded_nul_and_control_characters_are_refused(void)
{
	CHECK(dest_refused(&conf, "ftp://cdn:21/data/cdn/a%00.ts", NULL));
	CHECK(strstr(err, "%00") != NULL);
	CHECK(dest_refused(&conf, "ftp://cdn:21/data/cdn/a%0D%0A.ts", NULL));
}

static void test_crlf_in_destination_is_refused_and_not_echoed(void)
{
	CHECK(dest_refused(&conf, "dir/movie.ts\r\nERROR forged",
			   "destination contains a control character: dir/movie.ts??ERROR forged"));
	CHECK(dest_refused(&conf, "ftp://u:pw@cdn/data/cdn/x\n",
			   "destination contains a control character: ftp://u:***@cdn/data/cdn/x?"));
}

static void test_root_url_destination_maps_to_relative_path(void)
{
	CHECK(dest_ok(&conf, P("file://%s/cdn/dir/movie.ts"), "dir/movie.ts", 0));
	CHECK(dest_ok(&conf, P("file://localhost%s/cdn/pkg/"), "pkg", 1));
}

static void test_destination_allow_prefix_ignores_userinfo(void)
{
	CHECK(dest_ok(&conf, "ftp://user:password@CDN:21/data/cdn/movie_01072015100045.ts",
		      "movie_01072015100045.ts", 0));
	CHECK(dest_ok(&conf, "ftp://other:pw@cdn:21/data/cdn/dir/", "dir", 1));
}

static void test_absent_port_is_the_scheme_default(void)
{
	CHECK(dest_ok(&conf, "ftp://cdn/data/cdn/movie.ts", "movie.ts", 0));
	CHECK(dest_refused(&conf, "ftp://cdn:2121/data/cdn/movie.ts", NULL));
}

static void test_longest_allow_prefix_wins(void)
{
	CHECK(dest_ok(&conf, "ftp://cdn:21/data/cdn/m.ts", "m.ts", 0));
	CHECK(dest_ok(&conf, "ftp://cdn:21/data/other/m.ts", "other/m.ts", 0));
}

static void test_ipv6_allow_prefix(void)
{
	CHECK(dest_ok(&conf, "ftp://u:p@[::1]:2121/pub/x.ts", "x.ts", 0));
}

static void test_userinfo_that_looks_like_the_host_is_refused(void)
{
	CHECK(dest_refused(&conf, "ftp://CDN:21@evil/data/cdn/m.ts",
			   "destination is outside the allowed destinations: "
			   "ftp://CDN:***@evil/data/cdn/m.ts"));
	CHECK(dest_refused(&conf, "ftp://cdn:21@evil:21/data/cdn/m.ts", NULL));
}

static void test_other_host_is_refused_with_password_masked(void)
{
	CHECK(dest_refused(&conf, "ftp://user:pw@other:21/x",
			   "destination is outside the allowed destinations: ftp://user:***@other:21/x"));
	CHECK(dest_refused(&conf, "sftp://cdn/data/cdn/x", NULL));
}

static void test_allow_prefix_ends_at_a_slash(void)
{
	CHECK(dest_refused(&conf, "ftp://cdn:21/datax/m.ts",
			   "destination is outside the allowed destinations: ftp://cdn:21/datax/m.ts"));
	CHECK(dest_refused(&conf, P("file://%s/cdnx/m.ts"), NULL));
}

static void test_absolute_local_path_under_root_is_accepted(void)
{
	CHECK(dest_ok(&conf, P("%s/cdn/dir/movie.ts"), "dir/movie.ts", 0));
	CHECK(dest_ok(&conf, P("%s//cdn/./pkg/"), "pkg", 1));
}

static void test_absolute_local_path_is_not_percent_decoded(void)
{
	CHECK(dest_ok(&conf, P("%s/cdn/a%%20b.ts"), "a%20b.ts", 0));
}

static void test_absolute_local_path_outside_root_is_refused(void)
{
	CHECK(dest_refused(&conf, "/etc/passwd",
			   "destination is outside the destination root: /etc/passwd"));
	CHECK(dest_refused(&conf, P("%s/cdnx/m.ts"), NULL));
	CHECK(dest_refused(&conf, P("%s/secret.ts"), NULL));
	CHECK(dest_refused(&conf, "/movie.ts", NULL));
}

static void test_root_itself_is_refused(void)
{
	CHECK(dest_refused(&conf, ".", root_itself));
	CHECK(dest_refused(&conf, "./", root_itself));
	CHECK(dest_refused(&conf, ".//./", root_itself));
	CHECK(dest_refused(&conf, P("%s/cdn"), root_itself));
	CHECK(dest_refused(&conf, P("%s/cdn/"), root_itself));
	CHECK(dest_refused(&conf, P("file://%s/cdn/"), root_itself));
	CHECK(dest_refused(&conf, "ftp://cdn:21/data/cdn/", root_itself));
	CHECK(dest_refused(&conf, "ftp://cdn:21/data/cdn", root_itself));
	CHECK(dest_refused(&pubconf, "http://cdn.example.com/vod/", root_itself));
	CHECK(dest_refused(&conf, "", "destination is empty"));
}

static void test_query_in_destination_url_is_refused(void)
{
	CHECK(dest_refused(&conf, "ftp://cdn:21/data/cdn/m.ts?x=1", NULL));
	CHECK(strstr(err, "query") != NULL);
}

static void test_public_url_destination_maps_back(void)
{
	CHECK(dest_ok(&pubconf, "http://cdn.example.com/vod/dir/m.ts", "dir/m.ts", 0));
	CHECK(dest_ok(&pubconf, "HTTP://CDN.EXAMPLE.COM:80/vod/dir/", "dir", 1));
	CHECK(dest_refused(&pubconf, "https://cdn.example.com/vod/dir/m.ts", NULL));
	CHECK(dest_refused(&conf, "http://cdn.example.com/vod/dir/m.ts", NULL));
}

/* ---- a remote destination root ---- */

static void test_remote_root_destination_maps_to_relative_path(void)
{
	CHECK(dest_ok(&rconf, "ftp://user:pw@cdn:21/data/cdn/x.ts", "x.ts", 0));
	CHECK(dest_ok(&rconf, "ftp://publisher:s3cret@CDN/data/cdn/dir/m.ts", "dir/m.ts", 0));
	CHECK(dest_ok(&rconf, "ftp://cdn/data/cdn/pkg/", "pkg", 1));
	CHECK(dest_ok(&rconf, "dir/movie.ts", "dir/movie.ts", 0));
	CHECK(dest_ok(&rconf, "https://u:p@dav.example/upload/a.ts", "a.ts", 0));
}

static void test_remote_root_refuses_other_servers_with_password_masked(void)
{
	CHECK(dest_refused(&rconf, "ftp://publisher:s3cret@cdn:2121/data/cdn/x.ts",
			   "destination is outside the allowed destinations: "
			   "ftp://publisher:***@cdn:2121/data/cdn/x.ts"));
	CHECK(dest_refused(&rconf, "ftps://cdn:21/data/cdn/x.ts", NULL));
	CHECK(dest_refused(&rconf, "ftp://cdn/data/cdnx/x.ts", NULL));
	CHECK(dest_refused(&rconf, "ftp://cdn/data/cdn/%2e%2e/x.ts", NULL));
	CHECK(dest_refused(&rconf, "ftp://u:s3cret@cdn/data/cdn/", root_itself));
}

static void test_absolute_local_path_is_refused_with_a_remote_root(void)
{
	CHECK(dest_refused(&rconf, "/data/cdn/x.ts",
			   "destination is outside the destination root: /data/cdn/x.ts"));
	CHECK(dest_refused(&rconf, P("%s/cdn/x.ts"), NULL));
}

static void test_webdav_root_destination_maps_to_relative_path(void)
{
	struct config c;
	CHECK(config_parse(&c, "[destination]\nroot = https://dav:s3cret@Dav.Example/vod/\n", "x",
			   err, sizeof err) == 0);
	int ok = dest_ok(&c, "https://dav.example:443/vod/a.ts", "a.ts", 0) &&
		 dest_ok(&c, "HTTPS://x:y@DAV.EXAMPLE/vod/dir/", "dir", 1) &&
		 dest_refused(&c, "http://dav.example/vod/a.ts", NULL);
	config_free(&c);
	CHECK(ok);
}

/* ---- what GetTaskStatus answers ---- */

static void test_public_answer_uses_public_url(void)
{
	char *s = asset_public(&pubconf, "dir/m.ts", 0);
	CHECK_STR(s, "http://cdn.example.com/vod/dir/m.ts");
	free(s);
	s = asset_public(&pubconf, "pkg", 1);
	CHECK_STR(s, "http://cdn.example.com/vod/pkg/");
	free(s);
}

static void test_public_answer_without_public_url_is_the_root_url(void)
{
	char want[1024];
	char *s = asset_public(&conf, "dir/m.ts", 0);
	snprintf(want, sizeof want, "file://%s/cdn/dir/m.ts", base);
	CHECK_STR(s, want);
	free(s);
}

/* Checks that asset_public(rel) is URL-safe and maps back to rel. */
static int round_trip(const struct config *c, const char *rel, int is_dir)
{
	char *pub = asset_public(c, rel, is_dir);
	for (const char *p = pub; *p; p++) {
		if ((unsigned char)*p >= 0x80 || *p <= ' ' || strchr("\"<>\\^`{|}?#", *p)) {
			fprintf(stderr, "  asset_public(%s) = \"%s\" is not URL-safe\n", rel, pub);
			free(pub);
			return 0;
		}
	}
	int ok = dest_ok(c, pub, rel, is_dir);
	free(pub);
	return ok;
}

static void test_public_url_round_trip(void)
{
	const char *rels[] = { "m.ts", "dir/m.ts", "\xc3\xa9t\xc3\xa9/\xe6\x98\xa0\xe7\x94\xbb 1.ts",
			       "a%20b.ts", "50%.ts", "q?x#y.ts", "semi;colon,comma+plus&amp=eq.ts",
			       "'quotes\" <angle>", "~tilde_under-dash.dot" };
	for (size_t i = 0; i < sizeof rels / sizeof rels[0]; i++) {
		CHECK(round_trip(&pubconf, rels[i], 0));
		CHECK(round_trip(&pubconf, rels[i], 1));
		CHECK(round_trip(&conf, rels[i], 0));
		CHECK(round_trip(&conf, rels[i], 1));
	}
}

static void test_public_answer_with_a_remote_root_carries_no_credentials(void)
{
	char *s = asset_public(&rconf, "dir/m.ts", 0);
	int clean = s && !strstr(s, "s3cret") && !strstr(s, "publisher") && !strchr(s, '@');
	CHECK_STR(s, "ftp://cdn:21/data/cdn/dir/m.ts");
	free(s);
	CHECK(clean);
	s = asset_public(&rconf, "pkg", 1);
	CHECK_STR(s, "ftp://cdn:21/data/cdn/pkg/");
	free(s);
	CHECK(round_trip(&rconf, "\xc3\xa9t\xc3\xa9/m 1.ts", 0));
	CHECK(round_trip(&rconf, "pkg", 1));
}

static void test_public_answer_percent_encodes_non_ascii(void)
{
	char *s = asset_public(&pubconf, "\xc3\xa9 1.ts", 0);
	CHECK_STR(s, "http://cdn.example.com/vod/%C3%A9%201.ts");
	free(s);
}

int main(void)
{
	if (setup() < 0) {
		fprintf(stderr, "test_asset: setup failed: %s\n", err);
		teardown();
		return 1;
	}
	RUN(test_absolute_path_source_under_allow_is_accepted);
	RUN(test_file_url_source_is_accepted);
	RUN(test_source_url_is_percent_decoded);
	RUN(test_source_path_is_not_percent_decoded);
	RUN(test_directory_source_with_trailing_slash);
	RUN(test_directory_source_without_trailing_slash_is_a_directory);
	RUN(test_file_source_with_trailing_slash_is_not_a_directory);
	RUN(test_missing_source_does_not_exist);
	RUN(test_source_outside_allow_is_refused);
	RUN(test_symlink_out_of_the_source_area_is_refused);
	RUN(test_source_prefix_ends_at_a_slash);
	RUN(test_source_allow_prefix_itself_is_a_directory_source);
	RUN(test_source_dotdot_is_refused);
	RUN(test_unknown_source_scheme_is_unsupported);
	RUN(test_relative_source_is_refused);
	RUN(test_unparseable_source_url_is_refused_and_masked);
	RUN(test_file_source_on_a_remote_host_is_refused);
	RUN(test_crlf_in_source_is_refused_and_not_echoed);
	RUN(test_source_credentials_are_masked_in_errors);
	RUN(test_remote_source_under_allow_is_accepted);
	RUN(test_remote_source_is_not_looked_up);
	RUN(test_remote_source_path_is_decoded_and_normalised);
	RUN(test_remote_directory_source_ends_in_slash);
	RUN(test_directory_source_over_http_is_refused);
	RUN(test_package_is_an_http_manifest);
	RUN(test_ftps_and_sftp_absent_port_is_the_default);
	RUN(test_remote_source_outside_allow_is_refused);
	RUN(test_remote_allow_prefix_itself_is_a_directory_source);
	RUN(test_remote_source_dotdot_is_refused);
	RUN(test_remote_source_without_a_path_is_refused);
	RUN(test_remote_source_without_a_host_is_refused);
	RUN(test_remote_source_credentials_are_masked_in_every_error);
	RUN(test_relative_destination_lands_under_root);
	RUN(test_relative_directory_destination_ends_in_slash);
	RUN(test_relative_destination_is_normalised);
	RUN(test_relative_destination_is_not_percent_decoded);
	RUN(test_dotdot_segment_is_refused);
	RUN(test_encoded_dotdot_in_url_is_refused);
	RUN(test_encoded_slash_in_url_separates_segments);
	RUN(test_encoded_nul_and_control_characters_are_refused);
	RUN(test_crlf_in_destination_is_refused_and_not_echoed);
	RUN(test_root_url_destination_maps_to_relative_path);
	RUN(test_destination_allow_prefix_ignores_userinfo);
	RUN(test_absent_port_is_the_scheme_default);
	RUN(test_longest_allow_prefix_wins);
	RUN(test_ipv6_allow_prefix);
	RUN(test_userinfo_that_looks_like_the_host_is_refused);
	RUN(test_other_host_is_refused_with_password_masked);
	RUN(test_allow_prefix_ends_at_a_slash);
	RUN(test_absolute_local_path_under_root_is_accepted);
	RUN(test_absolute_local_path_is_not_percent_decoded);
	RUN(test_absolute_local_path_outside_root_is_refused);
	RUN(test_root_itself_is_refused);
	RUN(test_query_in_destination_url_is_refused);
	RUN(test_public_url_destination_maps_back);
	RUN(test_remote_root_destination_maps_to_relative_path);
	RUN(test_remote_root_refuses_other_servers_with_password_masked);
	RUN(test_absolute_local_path_is_refused_with_a_remote_root);
	RUN(test_webdav_root_destination_maps_to_relative_path);
	RUN(test_public_answer_uses_public_url);
	RUN(test_public_answer_without_public_url_is_the_root_url);
	RUN(test_public_url_round_trip);
	RUN(test_public_answer_with_a_remote_root_carries_no_credentials);
	RUN(test_public_answer_percent_encodes_non_ascii);
	teardown();
	return HARNESS_END("test_asset");
}

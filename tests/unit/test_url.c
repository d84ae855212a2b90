/*
 * test_url.c - url_parse, url_mask, url_is_absolute and url_path_normalize:
 * what a URL means, what is refused, and that secrets never show.
 */
#include "apubid.h"
#include "harness.h"

#include <stdlib.h>

static char err[256];

/* Parses `s` expecting a refusal, and checks the struct is left empty. */
static int refused(const char *s)
{
	struct url u;
	err[0] = '\0';
	int rc = url_parse(s, &u, err, sizeof err);
	int empty = !u.scheme && !u.user && !u.password && !u.host && !u.path && !u.port;
	url_free(&u);
	return rc == -1 && empty && err[0] != '\0';
}

static void test_docs_sample_url_is_split_into_its_parts(void)
{
	struct url u;
	CHECK(url_parse("ftp://user:password@CIS:21/repository/movie.ts", &u, err, sizeof err) == 0);
	CHECK_STR(u.scheme, "ftp");
	CHECK_STR(u.user, "user");
	CHECK_STR(u.password, "password");
	CHECK_STR(u.host, "cis");
	CHECK(u.port == 21);
	CHECK_STR(u.path, "/repository/movie.ts");
	url_free(&u);
}

static void test_scheme_and_host_are_lower_cased_but_path_is_not(void)
{
	struct url u;
	CHECK(url_parse("HTTP://CDN.Example.COM/VOD/Movie.TS", &u, err, sizeof err) == 0);
	CHECK_STR(u.scheme, "http");
	CHECK_STR(u.host, "cdn.example.com");
	CHECK(u.port == 0);
	CHECK(u.user == NULL && u.password == NULL);
	CHECK_STR(u.path, "/VOD/Movie.TS");
	url_free(&u);
}

static void test_userinfo_is_percent_decoded(void)
{
	struct url u;
	CHECK(url_parse("ftp://us%40er:p%3Aw%2Fd@host/x", &u, err, sizeof err) == 0);
	CHECK_STR(u.user, "us@er");
	CHECK_STR(u.password, "p:w/d");
	CHECK_STR(u.host, "host");
	url_free(&u);
}

static void test_user_without_password_has_null_password(void)
{
	struct url u;
	CHECK(url_parse("ftp://anonymous@host/x", &u, err, sizeof err) == 0);
	CHECK_STR(u.user, "anonymous");
	CHECK(u.password == NULL);
	url_free(&u);
}

static void test_last_at_separates_userinfo_from_host(void)
{
	struct url u;
	CHECK(url_parse("ftp://user:p@ss@host:21/x", &u, err, sizeof err) == 0);
	CHECK_STR(u.user, "user");
	CHECK_STR(u.password, "p@ss");
	CHECK_STR(u.host, "host");
	CHECK(u.port == 21);
	url_free(&u);
}

static void test_userinfo_that_looks_like_a_host_is_not_the_host(void)
{
	/* "CDN:21@" is userinfo: the host is "evil", whatever it looks like. */
	struct url u;
	CHECK(url_parse("ftp://CDN:21@evil/data/cdn/x.ts", &u, err, sizeof err) == 0);
	CHECK_STR(u.host, "evil");
	CHECK_STR(u.user, "CDN");
	CHECK_STR(u.password, "21");
	CHECK(u.port == 0);
	url_free(&u);
}

static void test_ipv6_literal_in_brackets(void)
{
	struct url u;
	CHECK(url_parse("ftp://[::1]:21/x", &u, err, sizeof err) == 0);
	CHECK_STR(u.host, "::1");
	CHECK(u.port == 21);
	CHECK_STR(u.path, "/x");
	url_free(&u);
	CHECK(url_parse("http://u:p@[2001:DB8::A]/", &u, err, sizeof err) == 0);
	CHECK_STR(u.host, "2001:db8::a");
	CHECK(u.port == 0);
	CHECK_STR(u.password, "p");
	url_free(&u);
}

static void test_bad_ipv6_literals_are_refused(void)
{
	CHECK(refused("ftp://::1/x"));
	CHECK(refused("ftp://[::1/x"));
	CHECK(refused("ftp://[::1]x/y"));
	CHECK(refused("ftp://[zz::1]/y"));
	CHECK(refused("ftp://[1.2.3.4]/y"));
	CHECK(refused("ftp://[::1]:/y"));
}

static void test_bad_ports_are_refused(void)
{
	CHECK(refused("ftp://host:0/x"));
	CHECK(refused("ftp://host:65536/x"));
	CHECK(refused("ftp://host:99999999999/x"));
	CHECK(refused("ftp://host:abc/x"));
	CHECK(refused("ftp://host:-21/x"));
	CHECK(refused("ftp://host:+21/x"));
	CHECK(refused("ftp://host:/x"));
	CHECK(refused("ftp://host:21:22/x"));
}

static void test_highest_port_is_accepted(void)
{
	struct url u;
	CHECK(url_parse("ftp://host:65535", &u, err, sizeof err) == 0);
	CHECK(u.port == 65535);
	CHECK_STR(u.path, "");
	url_free(&u);
}

static void test_file_url_has_empty_host(void)
{
	struct url u;
	CHECK(url_parse("file:///abs/path", &u, err, sizeof err) == 0);
	CHECK_STR(u.scheme, "file");
	CHECK_STR(u.host, "");
	CHECK_STR(u.path, "/abs/path");
	url_free(&u);
	CHECK(url_parse("file://localhost/x", &u, err, sizeof err) == 0);
	CHECK_STR(u.host, "localhost");
	CHECK_STR(u.path, "/x");
	url_free(&u);
}

static void test_other_schemes_need_a_host(void)
{
	CHECK(refused("ftp:///x"));
	CHECK(refused("http://:80/x"));
	CHECK(refused("ftp://user:pw@/x"));
}

static void test_bad_host_characters_are_refused(void)
{
	CHECK(refused("ftp://ho st/x"));
	CHECK(refused("ftp://ho%73t/x"));
	CHECK(refused("ftp://h\\ost/x"));
	CHECK(refused("ftp://h\xc3\xa9st/x"));
}

static void test_path_is_percent_decoded(void)
{
	struct url u;
	CHECK(url_parse("ftp://h/a%20b/%2e%2e/c%2Fd/%C3%A9", &u, err, sizeof err) == 0);
	CHECK_STR(u.path, "/a b/../c/d/\xc3\xa9");
	url_free(&u);
}

static void test_raw_space_and_utf8_in_path_are_kept(void)
{
	struct url u;
	CHECK(url_parse("file:///srv/a b/\xc3\xa9.ts", &u, err, sizeof err) == 0);
	CHECK_STR(u.path, "/srv/a b/\xc3\xa9.ts");
	url_free(&u);
}

static void test_encoded_nul_is_refused(void)
{
	CHECK(refused("file:///srv/a%00.ts"));
	CHECK(strstr(err, "%00") != NULL);
	CHECK(refused("ftp://u:p%00w@h/x"));
	CHECK(refused("ftp://u%00:pw@h/x"));
}

static void test_bad_escapes_are_refused(void)
{
	CHECK(refused("file:///srv/a%4"));
	CHECK(refused("file:///srv/a%"));
	CHECK(refused("file:///srv/a%zz"));
	CHECK(refused("file:///srv/a%g0"));
	CHECK(refused("ftp://u:p%4@h/x"));
}

static void test_control_characters_are_refused(void)
{
	CHECK(refused("file:///srv/a\r\n.ts"));
	CHECK(refused("file:///srv/a.ts\n"));
	CHECK(refused("file:///srv/a\t.ts"));
	CHECK(refused("file:///srv/a\x7f.ts"));
	CHECK(refused("ftp://u:p\r\nDELE x@h/x"));
}

static void test_encoded_control_characters_are_refused(void)
{
	CHECK(refused("file:///srv/a%0d%0a.ts"));
	CHECK(refused("file:///srv/a%7F.ts"));
	CHECK(refused("ftp://u:p%0d%0aDELE%20x@h/x"));
}

static void test_query_and_fragment_are_refused(void)
{
	CHECK(refused("http://h/x?a=1"));
	CHECK(refused("http://h/x#frag"));
	CHECK(refused("http://h?x"));
	CHECK(refused("http://h:80#x"));
}

static void test_question_mark_in_password_is_tolerated(void)
{
	struct url u;
	CHECK(url_parse("ftp://u:p?#w@h/x", &u, err, sizeof err) == 0);
	CHECK_STR(u.password, "p?#w");
	CHECK_STR(u.host, "h");
	url_free(&u);
}

static void test_non_urls_are_refused(void)
{
	CHECK(refused(""));
	CHECK(refused("movie.ts"));
	CHECK(refused("/srv/cdn/movie.ts"));
	CHECK(refused("ftp:/host/x"));
	CHECK(refused("1ftp://host/x"));
	CHECK(refused("://host/x"));
	CHECK(refused("f_p://host/x"));
}

static void test_scheme_may_hold_plus_dash_and_dot(void)
{
	struct url u;
	CHECK(url_parse("Svn+SSH.x-y://h/x", &u, err, sizeof err) == 0);
	CHECK_STR(u.scheme, "svn+ssh.x-y");
	url_free(&u);
}

static void test_url_free_twice_is_harmless(void)
{
	struct url u;
	CHECK(url_parse("ftp://u:p@h/x", &u, err, sizeof err) == 0);
	url_free(&u);
	url_free(&u);
	url_free(NULL);
}

static void check_mask(const char *in, const char *want, int *ok)
{
	char *m = url_mask(in);
	*ok = m && strcmp(m, want) == 0;
	if (!*ok)
		fprintf(stderr, "  url_mask(\"%s\") = \"%s\", want \"%s\"\n", in, m, want);
	free(m);
}

#define CHECK_MASK(in, want)                                                   \
	do {                                                                   \
		int ok_;                                                       \
		check_mask((in), (want), &ok_);                                \
		CHECK(ok_);                                                    \
	} while (0)

static void test_password_is_masked(void)
{
	CHECK_MASK("ftp://user:password@CDN:21/data/cdn/movie.ts",
		   "ftp://user:***@CDN:21/data/cdn/movie.ts");
	CHECK_MASK("ftp://user:pw@host", "ftp://user:***@host");
	CHECK_MASK("ftp://user:@host/x", "ftp://user:***@host/x");
}

static void test_password_with_colon_is_masked(void)
{
	CHECK_MASK("ftp://user:pa:ss:wd@host/x", "ftp://user:***@host/x");
}

static void test_password_with_at_is_masked(void)
{
	CHECK_MASK("ftp://user:p@ss@host/x", "ftp://user:***@host/x");
}

static void test_password_with_unencoded_slash_is_masked(void)
{
	char *m = url_mask("ftp://user:pa/ss@host/x");
	CHECK(m != NULL);
	CHECK(strstr(m, "pa") == NULL && strstr(m, "ss") == NULL);
	free(m);
}

static void test_unparseable_url_is_still_masked(void)
{
	CHECK_MASK("ftp://user:secret@host:99999/x\r\n", "ftp://user:***@host:99999/x\r\n");
}

static void test_user_without_password_is_unchanged(void)
{
	CHECK_MASK("ftp://anonymous@host/x", "ftp://anonymous@host/x");
}

static void test_url_without_userinfo_is_unchanged(void)
{
	CHECK_MASK("http://host:8080/a@b:c", "http://host:8080/a@b:c");
	CHECK_MASK("ftp://[::1]:21/x", "ftp://[::1]:21/x");
	CHECK_MASK("file:///srv/a:b@c", "file:///srv/a:b@c");
}

static void test_non_url_is_unchanged_by_mask(void)
{
	CHECK_MASK("dir/movie.ts", "dir/movie.ts");
	CHECK_MASK("user:pw@host", "user:pw@host");
	CHECK_MASK("", "");
	CHECK(url_mask(NULL) == NULL);
}

static void test_is_absolute_wants_scheme_and_two_slashes(void)
{
	CHECK(url_is_absolute("ftp://h/x") == 1);
	CHECK(url_is_absolute("file:///x") == 1);
	CHECK(url_is_absolute("/srv/x") == 0);
	CHECK(url_is_absolute("dir/x") == 0);
	CHECK(url_is_absolute("c:/x") == 0);
	CHECK(url_is_absolute("mailto:a@b") == 0);
	CHECK(url_is_absolute("") == 0);
	CHECK(url_is_absolute(NULL) == 0);
}

static void test_normalize_drops_empty_and_dot_segments(void)
{
	char *out;
	int dir;
	CHECK(url_path_normalize("/a//./b/./c", &out, &dir, err, sizeof err) == 0);
	CHECK_STR(out, "a/b/c");
	CHECK(dir == 0);
	free(out);
}

static void test_normalize_trailing_slash_means_directory(void)
{
	char *out;
	int dir;
	CHECK(url_path_normalize("Test_Encryption_GenericAssetContent_01/", &out, &dir, err,
				 sizeof err) == 0);
	CHECK_STR(out, "Test_Encryption_GenericAssetContent_01");
	CHECK(dir == 1);
	free(out);
}

static void test_normalize_may_leave_nothing(void)
{
	char *out;
	int dir;
	CHECK(url_path_normalize("./", &out, &dir, err, sizeof err) == 0);
	CHECK_STR(out, "");
	CHECK(dir == 1);
	free(out);
	CHECK(url_path_normalize("", &out, &dir, err, sizeof err) == 0);
	CHECK_STR(out, "");
	CHECK(dir == 0);
	free(out);
}

static void test_dotdot_segment_is_refused(void)
{
	const char *bad[] = { "..", "../x", "a/../b", "a/..", "a/../", "/..//x" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char *out = (char *)1;
		int dir;
		CHECK(url_path_normalize(bad[i], &out, &dir, err, sizeof err) == -1);
		CHECK(out == NULL);
		CHECK(strstr(err, "..") != NULL);
	}
}

static void test_names_that_merely_contain_dots_are_kept(void)
{
	char *out;
	int dir;
	CHECK(url_path_normalize("...//..a/b../.hidden", &out, &dir, err, sizeof err) == 0);
	CHECK_STR(out, ".../..a/b../.hidden");
	free(out);
}

static void test_normalize_refuses_control_characters(void)
{
	char *out;
	int dir;
	CHECK(url_path_normalize("a/b\r\n", &out, &dir, err, sizeof err) == -1);
	CHECK(out == NULL);
	CHECK(url_path_normalize("a\x7f", &out, &dir, err, sizeof err) == -1);
}

int main(void)
{
	RUN(test_docs_sample_url_is_split_into_its_parts);
	RUN(test_scheme_and_host_are_lower_cased_but_path_is_not);
	RUN(test_userinfo_is_percent_decoded);
	RUN(test_user_without_password_has_null_password);
	RUN(test_last_at_separates_userinfo_from_host);
	RUN(test_userinfo_that_looks_like_a_host_is_not_the_host);
	RUN(test_ipv6_literal_in_brackets);
	RUN(test_bad_ipv6_literals_are_refused);
	RUN(test_bad_ports_are_refused);
	RUN(test_highest_port_is_accepted);
	RUN(test_file_url_has_empty_host);
	RUN(test_other_schemes_need_a_host);
	RUN(test_bad_host_characters_are_refused);
	RUN(test_path_is_percent_decoded);
	RUN(test_raw_space_and_utf8_in_path_are_kept);
	RUN(test_encoded_nul_is_refused);
	RUN(test_bad_escapes_are_refused);
	RUN(test_control_characters_are_refused);
	RUN(test_encoded_control_characters_are_refused);
	RUN(test_query_and_fragment_are_refused);
	RUN(test_question_mark_in_password_is_tolerated);
	RUN(test_non_urls_are_refused);
	RUN(test_scheme_may_hold_plus_dash_and_dot);
	RUN(test_url_free_twice_is_harmless);
	RUN(test_password_is_masked);
	RUN(test_password_with_colon_is_masked);
	RUN(test_password_with_at_is_masked);
	RUN(test_password_with_unencoded_slash_is_masked);
	RUN(test_unparseable_url_is_still_masked);
	RUN(test_user_without_password_is_unchanged);
	RUN(test_url_without_userinfo_is_unchanged);
	RUN(test_non_url_is_unchanged_by_mask);
	RUN(test_is_absolute_wants_scheme_and_two_slashes);
	RUN(test_normalize_drops_empty_and_dot_segments);
	RUN(test_normalize_trailing_slash_means_directory);
	RUN(test_normalize_may_leave_nothing);
	RUN(test_dotdot_segment_is_refused);
	RUN(test_names_that_merely_contain_dots_are_kept);
	RUN(test_normalize_refuses_control_characters);
	return HARNESS_END("test_url");
}

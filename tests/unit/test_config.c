/*
 * test_config.c - config_parse and config_load: the defaults, every kind
 * of value, how prefixes are normalised, and that every refusal says which
 * file and line.
 */
#include "apubid.h"
#include "harness.h"

#include <stdlib.h>
#include <unistd.h>

static char err[512];
static char cwd[4096];

/* A minimal valid file with `extra` appended (which may open sections). */
static int parse_with(struct config *c, const char *extra)
{
	char *text = util_printf("[destination]\nroot = /srv/cdn\n%s", extra);
	err[0] = '\0';
	int rc = config_parse(c, text, "apubid.conf", err, sizeof err);
	free(text);
	return rc;
}

/* Parses `extra` expecting a refusal whose message contains `want`. */
static int refused(const char *extra, const char *want)
{
	struct config c;
	int rc = parse_with(&c, extra);
	config_free(&c);
	if (rc == 0 || !strstr(err, want)) {
		fprintf(stderr, "  [%s] gave rc %d, \"%s\"; wanted \"%s\"\n", extra, rc, err, want);
		return 0;
	}
	return 1;
}

static void test_builtin_defaults_without_file(void)
{
	struct config c;
	char want[5000];
	CHECK(config_load(&c, NULL, err, sizeof err) == 0);
	CHECK_STR(c.listen_host, "127.0.0.1");
	CHECK(c.listen_port == 8080);
	CHECK_STR(c.endpoint, "/apubi");
	CHECK(c.threads == 16);
	CHECK(c.max_request_size == 1048576);
	CHECK(c.client_fault_status == 500);
	CHECK(c.recv_timeout == 10 && c.send_timeout == 10);
	CHECK(c.request_timeout == 30);
	CHECK(c.keepalive_timeout == 15);
	CHECK(c.max_keepalive_requests == 1000);
	CHECK_STR(c.store_path, "var/apubid.db");
	CHECK(c.retention_days == 30);
	CHECK(c.workers == 4);
	CHECK(c.queue_limit == 10000);
	CHECK(c.nsource_allow == 1);
	snprintf(want, sizeof want, "file://%s/var/ingest/", cwd);
	CHECK_STR(c.source_allow[0], want);
	snprintf(want, sizeof want, "file://%s/var/cdn/", cwd);
	CHECK_STR(c.dest_root, want);
	snprintf(want, sizeof want, "%s/var/cdn", cwd);
	CHECK_STR(c.dest_root_path, want);
	CHECK(c.ndest_allow == 0);
	CHECK(c.public_url == NULL);
	CHECK(c.log_level == LOG_INFO);
	config_free(&c);
}

static void test_every_setting_can_be_set(void)
{
	struct config c;
	CHECK(parse_with(&c, "public_url = https://cdn.example.com/vod\n"
			     "allow = ftp://cdn:21/data/cdn/\n"
			     "[server]\n"
			     "listen = 0.0.0.0:9000\n"
			     "endpoint = /svc/apubi\n"
			     "threads = 4\n"
			     "max_request_size = 512K\n"
			     "client_fault_status = 400\n"
			     "recv_timeout = 1\n"
			     "send_timeout = 2\n"
			     "request_timeout = 3\n"
			     "keepalive_timeout = 4\n"
			     "max_keepalive_requests = 5\n"
			     "[store]\n"
			     "path = /var/lib/apubid/tasks.db\n"
			     "retention_days = 0\n"
			     "[workers]\n"
			     "count = 8\n"
			     "queue_limit = 50\n"
			     "[source]\n"
			     "allow = /srv/ingest\n"
			     "[log]\n"
			     "level = debug\n") == 0);
	CHECK_STR(c.listen_host, "0.0.0.0");
	CHECK(c.listen_port == 9000);
	CHECK_STR(c.endpoint, "/svc/apubi");
	CHECK(c.threads == 4);
	CHECK(c.max_request_size == 512 * 1024);
	CHECK(c.client_fault_status == 400);
	CHECK(c.recv_timeout == 1 && c.send_timeout == 2 && c.request_timeout == 3);
	CHECK(c.keepalive_timeout == 4 && c.max_keepalive_requests == 5);
	CHECK_STR(c.store_path, "/var/lib/apubid/tasks.db");
	CHECK(c.retention_days == 0);
	CHECK(c.workers == 8 && c.queue_limit == 50);
	CHECK(c.nsource_allow == 1);
	CHECK_STR(c.source_allow[0], "file:///srv/ingest/");
	CHECK_STR(c.dest_root, "file:///srv/cdn/");
	CHECK_STR(c.dest_root_path, "/srv/cdn");
	CHECK(c.ndest_allow == 1);
	CHECK_STR(c.dest_allow[0], "ftp://cdn:21/data/cdn/");
	CHECK_STR(c.public_url, "https://cdn.example.com/vod/");
	CHECK(c.log_level == LOG_DEBUG);
	config_free(&c);
}

static void test_unknown_key_reports_file_and_line(void)
{
	struct config c;
	CHECK(parse_with(&c, "[server]\n\nfoo = 1\n") == -1);
	CHECK_STR(err, "apubid.conf:5: unknown key 'foo' in [server]");
	config_free(&c);
}

static void test_unknown_section_is_refused(void)
{
	CHECK(refused("[serv]\n", "apubid.conf:3: unknown section [serv]"));
	CHECK(refused("[server\n", "apubid.conf:3: a section header must end with ']'"));
	CHECK(refused("[]\n", "apubid.conf:3: unknown section []"));
}

static void test_key_outside_any_section_is_refused(void)
{
	struct config c;
	CHECK(config_parse(&c, "# comment\nthreads = 4\n", "x.conf", err, sizeof err) == -1);
	CHECK_STR(err, "x.conf:2: 'threads' is outside any section");
	config_free(&c);
}

static void test_line_without_equals_is_refused(void)
{
	CHECK(refused("[server]\nthreads 4\n", "apubid.conf:4: expected 'key = value'"));
}

static void test_missing_root_is_required(void)
{
	struct config c;
	CHECK(config_parse(&c, "[server]\nthreads = 2\n", "x.conf", err, sizeof err) == -1);
	CHECK_STR(err, "x.conf: [destination] root is required");
	config_free(&c);
	CHECK(config_parse(&c, "", "empty.conf", err, sizeof err) == -1);
	CHECK_STR(err, "empty.conf: [destination] root is required");
	config_free(&c);
}

static void test_key_set_twice_is_refused(void)
{
	CHECK(refused("[server]\nthreads = 2\nthreads = 3\n",
		      "apubid.conf:5: 'threads' is set twice in [server] (first on line 4)"));
	CHECK(refused("root = /srv/other\n", "apubid.conf:3: 'root' is set twice"));
}

static void test_repeated_allow_accumulates(void)
{
	struct config c;
	CHECK(parse_with(&c, "allow = ftp://a/x/\nallow = ftp://b/y/\n"
			     "[source]\nallow = /srv/a\nallow = /srv/b\nallow = ftp://cis:21/repo/\n") == 0);
	CHECK(c.ndest_allow == 2);
	CHECK_STR(c.dest_allow[1], "ftp://b/y/");
	CHECK(c.nsource_allow == 3);
	CHECK_STR(c.source_allow[0], "file:///srv/a/");
	CHECK_STR(c.source_allow[1], "file:///srv/b/");
	CHECK_STR(c.source_allow[2], "ftp://cis:21/repo/");
	config_free(&c);
}

static void test_too_many_prefixes_are_refused(void)
{
	char text[4096] = "[source]\n";
	for (int i = 0; i <= CONFIG_MAX_PREFIXES; i++)
		snprintf(text + strlen(text), sizeof text - strlen(text), "allow = /srv/%d\n", i);
	CHECK(refused(text, "apubid.conf:36: [source] allow: at most 32 prefixes"));
}

static void test_blank_lines_and_comments_are_ignored(void)
{
	struct config c;
	CHECK(parse_with(&c, "\n   \n# a comment\n; another\n\t# indented\n[server]\n"
			     "  threads   =   7  \n") == 0);
	CHECK(c.threads == 7);
	config_free(&c);
}

static void test_crlf_line_endings_are_accepted(void)
{
	struct config c;
	CHECK(config_parse(&c, "[destination]\r\nroot = /srv/cdn/\r\n[server]\r\nthreads = 3\r\n",
			   "crlf.conf", err, sizeof err) == 0);
	CHECK(c.threads == 3);
	CHECK_STR(c.dest_root, "file:///srv/cdn/");
	config_free(&c);
}

static void test_utf8_bom_is_skipped(void)
{
	struct config c;
	CHECK(config_parse(&c, "\xef\xbb\xbf[destination]\nroot = /srv/cdn\n", "bom.conf", err,
			   sizeof err) == 0);
	config_free(&c);
}

static void test_hash_inside_value_is_part_of_it(void)
{
	struct config c;
	CHECK(parse_with(&c, "[store]\npath = var/a#b.db # not a comment\n") == 0);
	CHECK_STR(c.store_path, "var/a#b.db # not a comment");
	config_free(&c);
}

static void test_control_character_in_value_is_refused(void)
{
	CHECK(refused("[store]\npath = a\rb\n", "apubid.conf:4: control character in the value of 'path'"));
	CHECK(refused("[store]\npath = a\tb\n", "control character"));
}

static void test_empty_value_is_refused(void)
{
	CHECK(refused("[store]\npath =\n", "apubid.conf:4: 'path' has an empty value"));
}

static void test_ipv6_listen_address(void)
{
	struct config c;
	CHECK(parse_with(&c, "[server]\nlisten = [::1]:8443\n") == 0);
	CHECK_STR(c.listen_host, "::1");
	CHECK(c.listen_port == 8443);
	config_free(&c);
	CHECK(parse_with(&c, "[server]\nlisten = [::]:80\n") == 0);
	CHECK_STR(c.listen_host, "::");
	config_free(&c);
}

static void test_listen_host_name_is_accepted(void)
{
	struct config c;
	CHECK(parse_with(&c, "[server]\nlisten = localhost:1\n") == 0);
	CHECK_STR(c.listen_host, "localhost");
	CHECK(c.listen_port == 1);
	config_free(&c);
}

static void test_bad_listen_values_are_refused(void)
{
	CHECK(refused("[server]\nlisten = 127.0.0.1:0\n", "port from 1 to 65535"));
	CHECK(refused("[server]\nlisten = 127.0.0.1:65536\n", "port from 1 to 65535"));
	CHECK(refused("[server]\nlisten = 127.0.0.1:http\n", "port from 1 to 65535"));
	CHECK(refused("[server]\nlisten = 127.0.0.1:\n", "port from 1 to 65535"));
	CHECK(refused("[server]\nlisten = 127.0.0.1\n", "host:port"));
	CHECK(refused("[server]\nlisten = :8080\n", "bad host"));
	CHECK(refused("[server]\nlisten = ::1:8080\n", "brackets"));
	CHECK(refused("[server]\nlisten = [::1]8080\n", "host:port"));
	CHECK(refused("[server]\nlisten = [::1:8080\n", "host:port"));
	CHECK(refused("[server]\nlisten = [g::1]:8080\n", "bad host"));
	CHECK(refused("[server]\nlisten = ho st:8080\n", "bad host"));
}

static void test_endpoint_must_be_a_plain_path(void)
{
	CHECK(refused("[server]\nendpoint = apubi\n", "'endpoint' must be a path"));
	CHECK(refused("[server]\nendpoint = /apubi?wsdl\n", "'endpoint' must be a path"));
	CHECK(refused("[server]\nendpoint = /a pubi\n", "'endpoint' must be a path"));
}

static void test_size_suffixes_are_powers_of_1024(void)
{
	struct config c;
	CHECK(parse_with(&c, "[server]\nmax_request_size = 1024\n") == 0);
	CHECK(c.max_request_size == 1024);
	config_free(&c);
	CHECK(parse_with(&c, "[server]\nmax_request_size = 2m\n") == 0);
	CHECK(c.max_request_size == 2 * 1024 * 1024);
	config_free(&c);
	CHECK(parse_with(&c, "[server]\nmax_request_size = 1G\n") == 0);
	CHECK(c.max_request_size == 1024LL * 1024 * 1024);
	config_free(&c);
}

static void test_bad_sizes_are_refused(void)
{
	const char *bad[] = { "1023", "0", "2G", "1025M", "1T", "1.5M", "M", "1MB", "-1K",
			      "99999999999999999999G" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char line[128];
		snprintf(line, sizeof line, "[server]\nmax_request_size = %s\n", bad[i]);
		CHECK(refused(line, "apubid.conf:4: 'max_request_size' must be a size"));
	}
}

static void test_numbers_out_of_range_are_refused(void)
{
	CHECK(refused("[server]\nthreads = 0\n",
		      "apubid.conf:4: 'threads' must be a whole number from 1 to 1024, not '0'"));
	CHECK(refused("[server]\nthreads = 1025\n", "from 1 to 1024"));
	CHECK(refused("[server]\nthreads = 4x\n", "from 1 to 1024"));
	CHECK(refused("[server]\nthreads = +4\n", "from 1 to 1024"));
	CHECK(refused("[server]\nrecv_timeout = 3601\n", "from 1 to 3600"));
	CHECK(refused("[server]\nmax_keepalive_requests = 1000001\n", "from 1 to 1000000"));
	CHECK(refused("[store]\nretention_days = -1\n", "from 0 to 36500"));
	CHECK(refused("[store]\nretention_days = 36501\n", "from 0 to 36500"));
	CHECK(refused("[workers]\ncount = 257\n", "from 1 to 256"));
	CHECK(refused("[workers]\nqueue_limit = 0\n", "from 1 to 100000000"));
	CHECK(refused("[workers]\nqueue_limit = 99999999999999999999\n", "from 1 to 100000000"));
}

static void test_client_fault_status_is_400_or_500(void)
{
	CHECK(refused("[server]\nclient_fault_status = 200\n", "must be 400 or 500"));
	CHECK(refused("[server]\nclient_fault_status = 0400\n", "must be 400 or 500"));
}

static void test_log_level_names(void)
{
	struct config c;
	CHECK(parse_with(&c, "[log]\nlevel = error\n") == 0);
	CHECK(c.log_level == LOG_ERROR);
	config_free(&c);
	CHECK(refused("[log]\nlevel = verbose\n", "error, warn, info or debug"));
}

static void test_relative_prefix_is_made_absolute_against_cwd(void)
{
	struct config c;
	char want[5000];
	CHECK(config_parse(&c, "[destination]\nroot = out//cdn/./\n[source]\nallow = in\n", "x",
			   err, sizeof err) == 0);
	snprintf(want, sizeof want, "file://%s/out/cdn/", cwd);
	CHECK_STR(c.dest_root, want);
	snprintf(want, sizeof want, "%s/out/cdn", cwd);
	CHECK_STR(c.dest_root_path, want);
	snprintf(want, sizeof want, "file://%s/in/", cwd);
	CHECK_STR(c.source_allow[0], want);
	config_free(&c);
}

static void test_prefix_ends_with_exactly_one_slash(void)
{
	struct config c;
	CHECK(config_parse(&c, "[destination]\nroot = /srv/cdn///\nallow = ftp://cdn\n"
			       "allow = ftp://cdn/data//\n",
			   "x", err, sizeof err) == 0);
	CHECK_STR(c.dest_root, "file:///srv/cdn/");
	CHECK_STR(c.dest_root_path, "/srv/cdn");
	CHECK_STR(c.dest_allow[0], "ftp://cdn/");
	CHECK_STR(c.dest_allow[1], "ftp://cdn/data/");
	config_free(&c);
}

static void test_url_prefix_is_normalised_without_credentials(void)
{
	struct config c;
	CHECK(parse_with(&c, "allow = FTP://User:Secret@CDN.Example:21/Data/%41%20b/\n"
			     "allow = ftp://[2001:DB8::1]:2121/x\n") == 0);
	CHECK_STR(c.dest_allow[0], "ftp://cdn.example:21/Data/A%20b/");
	CHECK_STR(c.dest_allow[1], "ftp://[2001:db8::1]:2121/x/");
	config_free(&c);
}

static void test_file_url_prefixes(void)
{
	struct config c;
	CHECK(config_parse(&c, "[destination]\nroot = file://localhost/srv/my%20cdn\n"
			       "[source]\nallow = FILE:///srv/ingest\n",
			   "x", err, sizeof err) == 0);
	CHECK_STR(c.dest_root, "file:///srv/my%20cdn/");
	CHECK_STR(c.dest_root_path, "/srv/my cdn");
	CHECK_STR(c.source_allow[0], "file:///srv/ingest/");
	config_free(&c);
}

static void test_local_path_prefix_is_not_percent_decoded(void)
{
	struct config c;
	CHECK(config_parse(&c, "[destination]\nroot = /srv/50%25 cdn\n", "x", err, sizeof err) == 0);
	CHECK_STR(c.dest_root_path, "/srv/50%25 cdn");
	CHECK_STR(c.dest_root, "file:///srv/50%2525%20cdn/");
	config_free(&c);
}

static void test_dotdot_in_prefix_is_refused(void)
{
	CHECK(refused("[source]\nallow = /srv/../etc\n", "apubid.conf:4: [source] allow: path must not contain '..'"));
	CHECK(refused("[source]\nallow = file:///srv/%2e%2e/etc/\n", "'..'"));
	CHECK(refused("allow = ftp://cdn/a/../b/\n", "[destination] allow: path must not contain '..'"));
}

static void test_file_prefix_cannot_name_a_remote_host(void)
{
	CHECK(refused("[source]\nallow = file://relative/path\n", "cannot name a remote host"));
}

static void test_bad_prefix_url_is_refused(void)
{
	CHECK(refused("allow = ftp://cdn:99999/x/\n", "apubid.conf:3: [destination] allow: bad port"));
	CHECK(refused("allow = ftp://cdn/x/?a=1\n", "query"));
}

static void test_only_file_roots_are_supported(void)
{
	struct config c;
	CHECK(config_parse(&c, "[destination]\nroot = ftp://user:pw@cdn/data/\n", "x.conf", err,
			   sizeof err) == -1);
	CHECK_STR(err, "x.conf:2: destination root: only file:// roots are supported");
	config_free(&c);
}

static void test_filesystem_root_cannot_be_the_root(void)
{
	struct config c;
	CHECK(config_parse(&c, "[destination]\nroot = /\n", "x.conf", err, sizeof err) == -1);
	CHECK(strstr(err, "x.conf:2: destination root: '/'") == err);
	config_free(&c);
	CHECK(config_parse(&c, "[destination]\nroot = file:///./\n", "x.conf", err, sizeof err) == -1);
	config_free(&c);
}

static void test_public_url_must_be_http_or_https(void)
{
	CHECK(refused("public_url = ftp://cdn/vod/\n", "public_url must be an http:// or https:// URL"));
	CHECK(refused("public_url = cdn.example.com/vod/\n", "absolute http:// or https:// URL"));
	CHECK(refused("public_url = /vod/\n", "absolute http:// or https:// URL"));
	CHECK(refused("public_url = https://u:p@cdn/vod/\n", "must not carry credentials"));
}

static void test_public_url_keeps_port_and_path_case(void)
{
	struct config c;
	CHECK(parse_with(&c, "public_url = HTTP://CDN:8080/Vod\n") == 0);
	CHECK_STR(c.public_url, "http://cdn:8080/Vod/");
	config_free(&c);
}

static void test_failed_parse_leaves_nothing_to_free(void)
{
	struct config c;
	CHECK(parse_with(&c, "allow = ftp://a/\n[source]\nallow = /x\n[server]\nbogus = 1\n") == -1);
	CHECK(c.dest_root == NULL && c.listen_host == NULL && c.nsource_allow == 0);
	config_free(&c);
}

static void test_missing_file_names_path_and_reason(void)
{
	struct config c;
	CHECK(config_load(&c, "/nonexistent/apubid.conf", err, sizeof err) == -1);
	CHECK_STR(err, "cannot read /nonexistent/apubid.conf: No such file or directory");
	config_free(&c);
	CHECK(config_load(&c, "/tmp", err, sizeof err) == -1);
	CHECK_STR(err, "cannot read /tmp: Is a directory");
	config_free(&c);
}

static void test_file_is_read_and_named_in_errors(void)
{
	char path[] = "/tmp/apubid-conf-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	const char text[] = "[destination]\nroot = /srv/cdn\n[workers]\ncount = 0\n";
	CHECK(write(fd, text, sizeof text - 1) == (ssize_t)(sizeof text - 1));
	close(fd);
	struct config c;
	int rc = config_load(&c, path, err, sizeof err);
	char want[256];
	snprintf(want, sizeof want, "%s:4: 'count' must be", path);
	unlink(path);
	CHECK(rc == -1);
	CHECK(strncmp(err, want, strlen(want)) == 0);
	config_free(&c);
}

static void test_file_with_nul_byte_is_refused(void)
{
	char path[] = "/tmp/apubid-conf-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	CHECK(write(fd, "[log]\0\n", 7) == 7);
	close(fd);
	struct config c;
	int rc = config_load(&c, path, err, sizeof err);
	unlink(path);
	CHECK(rc == -1);
	CHECK(strstr(err, "NUL byte") != NULL);
	config_free(&c);
}

/* The shipped sample must always be a valid configuration. Unit tests run
 * from the top of the tree. */
static void test_sample_config_parses(void)
{
	struct config c;
	CHECK(config_load(&c, "etc/apubid.conf", err, sizeof err) == 0);
	CHECK(c.listen_port == 8080);
	CHECK(c.dest_root != NULL);
	config_free(&c);
}

int main(void)
{
	if (!getcwd(cwd, sizeof cwd))
		return 1;
	RUN(test_builtin_defaults_without_file);
	RUN(test_every_setting_can_be_set);
	RUN(test_unknown_key_reports_file_and_line);
	RUN(test_unknown_section_is_refused);
	RUN(test_key_outside_any_section_is_refused);
	RUN(test_line_without_equals_is_refused);
	RUN(test_missing_root_is_required);
	RUN(test_key_set_twice_is_refused);
	RUN(test_repeated_allow_accumulates);
	RUN(test_too_many_prefixes_are_refused);
	RUN(test_blank_lines_and_comments_are_ignored);
	RUN(test_crlf_line_endings_are_accepted);
	RUN(test_utf8_bom_is_skipped);
	RUN(test_hash_inside_value_is_part_of_it);
	RUN(test_control_character_in_value_is_refused);
	RUN(test_empty_value_is_refused);
	RUN(test_ipv6_listen_address);
	RUN(test_listen_host_name_is_accepted);
	RUN(test_bad_listen_values_are_refused);
	RUN(test_endpoint_must_be_a_plain_path);
	RUN(test_size_suffixes_are_powers_of_1024);
	RUN(test_bad_sizes_are_refused);
	RUN(test_numbers_out_of_range_are_refused);
	RUN(test_client_fault_status_is_400_or_500);
	RUN(test_log_level_names);
	RUN(test_relative_prefix_is_made_absolute_against_cwd);
	RUN(test_prefix_ends_with_exactly_one_slash);
	RUN(test_url_prefix_is_normalised_without_credentials);
	RUN(test_file_url_prefixes);
	RUN(test_local_path_prefix_is_not_percent_decoded);
	RUN(test_dotdot_in_prefix_is_refused);
	RUN(test_file_prefix_cannot_name_a_remote_host);
	RUN(test_bad_prefix_url_is_refused);
	RUN(test_only_file_roots_are_supported);
	RUN(test_filesystem_root_cannot_be_the_root);
	RUN(test_public_url_must_be_http_or_https);
	RUN(test_public_url_keeps_port_and_path_case);
	RUN(test_failed_parse_leaves_nothing_to_free);
	RUN(test_missing_file_names_path_and_reason);
	RUN(test_file_is_read_and_named_in_errors);
	RUN(test_file_with_nul_byte_is_refused);
	RUN(test_sample_config_parses);
	return HARNESS_END("test_config");
}

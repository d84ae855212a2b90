/*
 * test_config.c - config_parse and config_load: the defaults, every kind
 * of value, how prefixes are normalised, remote destination roots and
 * credentials, and that every refusal says which file and line and never
 * repeats a password.
 */
#include "apubid.h"
#include "harness.h"

#include <stdlib.h>
#include <sys/stat.h>
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
	CHECK_STR(c.dest_root_auth, c.dest_root);
	CHECK(c.retries == 5);
	CHECK(c.retry_delay == 2);
	CHECK(c.retry_max_delay == 60);
	CHECK(c.retry_max_time == 600);
	CHECK(c.connect_timeout == 15);
	CHECK(c.stall_timeout == 30);
	CHECK(c.task_timeout == 3600);
	CHECK(c.max_per_host == 4);
	CHECK(c.ca_file == NULL && c.ssh_private_key == NULL);
	CHECK(c.ssh_public_key == NULL && c.ssh_known_hosts == NULL);
	CHECK(c.ncredentials == 0);
	CHECK(c.log_level == LOG_INFO);
	config_free(&c);
}

static void test_transfer_defaults_apply_to_a_file_without_transfer_section(void)
{
	struct config c;
	CHECK(parse_with(&c, "") == 0);
	CHECK(c.retries == 5 && c.retry_delay == 2 && c.retry_max_delay == 60);
	CHECK(c.retry_max_time == 600 && c.connect_timeout == 15 && c.stall_timeout == 30);
	CHECK(c.task_timeout == 3600 && c.max_per_host == 4);
	CHECK(c.ca_file == NULL && c.ssh_known_hosts == NULL && c.ncredentials == 0);
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

/* A readable file for the path settings; the caller unlinks it. */
static int temp_file(char *path)
{
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static void test_every_transfer_setting_can_be_set(void)
{
	char ca[] = "/tmp/apubid-ca-XXXXXX", key[] = "/tmp/apubid-key-XXXXXX";
	char pub[] = "/tmp/apubid-pub-XXXXXX", known[] = "/tmp/apubid-known-XXXXXX";
	CHECK(temp_file(ca) == 0 && temp_file(key) == 0 && temp_file(pub) == 0 &&
	      temp_file(known) == 0);
	char *text = util_printf("[transfer]\n"
				 "retries = 1\n"
				 "retry_delay = 0\n"
				 "retry_max_delay = 86400\n"
				 "retry_max_time = 0\n"
				 "connect_timeout = 600\n"
				 "stall_timeout = 1\n"
				 "task_timeout = 604800\n"
				 "max_per_host = 256\n"
				 "ca_file = %s\n"
				 "ssh_private_key = %s\n"
				 "ssh_public_key = %s\n"
				 "ssh_known_hosts = %s\n",
				 ca, key, pub, known);
	struct config c;
	int rc = parse_with(&c, text);
	free(text);
	unlink(ca);
	unlink(key);
	unlink(pub);
	unlink(known);
	CHECK(rc == 0);
	CHECK(c.retries == 1 && c.retry_delay == 0 && c.retry_max_delay == 86400);
	CHECK(c.retry_max_time == 0 && c.connect_timeout == 600 && c.stall_timeout == 1);
	CHECK(c.task_timeout == 604800 && c.max_per_host == 256);
	CHECK_STR(c.ca_file, ca);
	CHECK_STR(c.ssh_private_key, key);
	CHECK_STR(c.ssh_public_key, pub);
	CHECK_STR(c.ssh_known_hosts, known);
	config_free(&c);
}

static void test_transfer_numbers_out_of_range_are_refused(void)
{
	static const struct {
		const char *line, *want;
	} bad[] = {
		{ "retries = 0", "'retries' must be a whole number from 1 to 100, not '0'" },
		{ "retries = 101", "'retries' must be a whole number from 1 to 100, not '101'" },
		{ "retry_delay = -1", "'retry_delay' must be a whole number from 0 to 3600" },
		{ "retry_delay = 3601", "'retry_delay' must be a whole number from 0 to 3600" },
		{ "retry_max_delay = 0", "'retry_max_delay' must be a whole number from 1 to 86400" },
		{ "retry_max_delay = 86401", "'retry_max_delay' must be a whole number from 1 to 86400" },
		{ "retry_max_time = -1", "'retry_max_time' must be a whole number from 0 to 604800" },
		{ "retry_max_time = 604801", "'retry_max_time' must be a whole number from 0 to 604800" },
		{ "connect_timeout = 0", "'connect_timeout' must be a whole number from 1 to 600" },
		{ "connect_timeout = 601", "'connect_timeout' must be a whole number from 1 to 600" },
		{ "stall_timeout = 0", "'stall_timeout' must be a whole number from 1 to 3600" },
		{ "stall_timeout = 3601", "'stall_timeout' must be a whole number from 1 to 3600" },
		{ "task_timeout = 0", "'task_timeout' must be a whole number from 1 to 604800" },
		{ "task_timeout = 604801", "'task_timeout' must be a whole number from 1 to 604800" },
		{ "max_per_host = 0", "'max_per_host' must be a whole number from 1 to 256" },
		{ "max_per_host = 257", "'max_per_host' must be a whole number from 1 to 256" },
		{ "retries = five", "'retries' must be a whole number from 1 to 100, not 'five'" },
		{ "stall_timeout = 30s", "'stall_timeout' must be a whole number from 1 to 3600" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char text[256], want[256];
		snprintf(text, sizeof text, "[transfer]\n\n%s\n", bad[i].line);
		snprintf(want, sizeof want, "apubid.conf:5: %s", bad[i].want);
		CHECK(refused(text, want));
	}
}

static void test_transfer_key_set_twice_is_refused(void)
{
	CHECK(refused("[transfer]\nretries = 2\nretries = 3\n",
		      "apubid.conf:5: 'retries' is set twice in [transfer] (first on line 4)"));
}

static void test_missing_transfer_files_report_file_line_and_reason(void)
{
	const char *keys[] = { "ca_file", "ssh_private_key", "ssh_public_key", "ssh_known_hosts" };
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		char text[256], want[256];
		snprintf(text, sizeof text, "[transfer]\n%s = /nonexistent/file.pem\n", keys[i]);
		snprintf(want, sizeof want,
			 "apubid.conf:4: cannot read %s /nonexistent/file.pem: No such file or directory",
			 keys[i]);
		CHECK(refused(text, want));
	}
}

static void test_directory_is_not_a_readable_ca_file(void)
{
	CHECK(refused("[transfer]\nca_file = /tmp\n",
		      "apubid.conf:4: cannot read ca_file /tmp: Is a directory"));
}

static void test_unreadable_ca_file_is_refused(void)
{
	char path[] = "/tmp/apubid-ca-XXXXXX", text[256], want[256];
	CHECK(temp_file(path) == 0);
	CHECK(chmod(path, 0) == 0);
	snprintf(text, sizeof text, "[transfer]\nca_file = %s\n", path);
	snprintf(want, sizeof want, "apubid.conf:4: cannot read ca_file %s: Permission denied", path);
	/* root reads any file whatever its mode: there the refusal cannot be
	 * provoked this way. */
	int ok = geteuid() == 0 || refused(text, want);
	unlink(path);
	CHECK(ok);
}

static void test_relative_transfer_file_is_made_absolute_against_cwd(void)
{
	struct config c;
	char want[5000];
	/* Unit tests run from the top of the tree, which holds etc/apubid.conf. */
	CHECK(parse_with(&c, "[transfer]\nssh_known_hosts = etc/apubid.conf\n") == 0);
	snprintf(want, sizeof want, "%s/etc/apubid.conf", cwd);
	CHECK_STR(c.ssh_known_hosts, want);
	config_free(&c);
	snprintf(want, sizeof want, "apubid.conf:4: cannot read ca_file %s/etc/nope.pem: No such", cwd);
	CHECK(refused("[transfer]\nca_file = etc/nope.pem\n", want));
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

/* Parses a file whose only setting is `root`. */
static int parse_root(struct config *c, const char *root)
{
	char *text = util_printf("[destination]\nroot = %s\n", root);
	err[0] = '\0';
	int rc = config_parse(c, text, "x.conf", err, sizeof err);
	free(text);
	return rc;
}

static void test_remote_root_keeps_credentials_only_in_dest_root_auth(void)
{
	static const struct {
		const char *root, *dest_root, *auth;
	} roots[] = {
		{ "ftp://user:pw@cdn:21/data/cdn/", "ftp://cdn:21/data/cdn/",
		  "ftp://user:pw@cdn:21/data/cdn/" },
		{ "FTPS://User:PW@CDN/data//cdn", "ftps://cdn/data/cdn/", "ftps://User:PW@cdn/data/cdn/" },
		{ "sftp://publisher@cdn.example:2222/srv/cdn", "sftp://cdn.example:2222/srv/cdn/",
		  "sftp://publisher@cdn.example:2222/srv/cdn/" },
		{ "http://dav:secret@[2001:DB8::1]:8080/vod/", "http://[2001:db8::1]:8080/vod/",
		  "http://dav:secret@[2001:db8::1]:8080/vod/" },
		{ "https://origin.example/My%20Vod/", "https://origin.example/My%20Vod/",
		  "https://origin.example/My%20Vod/" },
	};
	for (size_t i = 0; i < sizeof roots / sizeof roots[0]; i++) {
		struct config c;
		CHECK(parse_root(&c, roots[i].root) == 0);
		int ok = c.dest_root_path == NULL && strcmp(c.dest_root, roots[i].dest_root) == 0 &&
			 strcmp(c.dest_root_auth, roots[i].auth) == 0;
		if (!ok)
			fprintf(stderr, "  root %s: dest_root %s, dest_root_auth %s, path %s\n",
				roots[i].root, c.dest_root, c.dest_root_auth,
				c.dest_root_path ? c.dest_root_path : "(null)");
		config_free(&c);
		CHECK(ok);
	}
}

static void test_remote_root_userinfo_is_reencoded_so_it_parses_back(void)
{
	struct config c;
	struct url u;
	/* A raw '@' in the password is tolerated by url_parse (the last '@'
	 * ends the userinfo); the stored form encodes it. */
	CHECK(parse_root(&c, "ftp://us%3Aer:p@ss%2Fw0rd@cdn/data/") == 0);
	CHECK_STR(c.dest_root, "ftp://cdn/data/");
	CHECK_STR(c.dest_root_auth, "ftp://us%3Aer:p%40ss%2Fw0rd@cdn/data/");
	CHECK(url_parse(c.dest_root_auth, &u, NULL, 0) == 0);
	int ok = strcmp(u.user, "us:er") == 0 && strcmp(u.password, "p@ss/w0rd") == 0 &&
		 strcmp(u.host, "cdn") == 0 && strcmp(u.path, "/data/") == 0;
	url_free(&u);
	config_free(&c);
	CHECK(ok);
}

static void test_remote_root_may_be_the_server_root(void)
{
	struct config c;
	CHECK(parse_root(&c, "ftp://publisher:pw@cdn") == 0);
	CHECK_STR(c.dest_root, "ftp://cdn/");
	CHECK_STR(c.dest_root_auth, "ftp://publisher:pw@cdn/");
	CHECK(c.dest_root_path == NULL);
	config_free(&c);
}

static void test_file_root_auth_is_the_root(void)
{
	struct config c;
	CHECK(parse_root(&c, "file://localhost/srv/cdn") == 0);
	CHECK_STR(c.dest_root, "file:///srv/cdn/");
	CHECK_STR(c.dest_root_auth, "file:///srv/cdn/");
	CHECK_STR(c.dest_root_path, "/srv/cdn");
	config_free(&c);
}

static void test_unsupported_root_scheme_is_refused_without_its_password(void)
{
	struct config c;
	CHECK(parse_root(&c, "scp://user:s3cret@cdn/data/") == -1);
	CHECK_STR(err, "x.conf:2: destination root: unsupported scheme 'scp' (supported: file, ftp, "
		       "ftps, sftp, http, https)");
	config_free(&c);
	CHECK(parse_root(&c, "GOPHER://cdn/data/") == -1);
	CHECK(strstr(err, "unsupported scheme 'gopher'") != NULL);
	config_free(&c);
	CHECK(parse_root(&c, "ftp://user:s3cret@cdn:0/data/") == -1);
	CHECK_STR(err, "x.conf:2: destination root: bad port (expected 1 to 65535)");
	config_free(&c);
	CHECK(parse_root(&c, "ftp://user:s3cret@cdn/a/../b/") == -1);
	CHECK(strstr(err, "'..'") != NULL && strstr(err, "s3cret") == NULL);
	config_free(&c);
}

static void test_remote_allow_prefixes_normalise_like_ftp(void)
{
	struct config c;
	CHECK(parse_with(&c, "[source]\n"
			     "allow = FTPS://Vault/secure\n"
			     "allow = SFTP://u:pw@Ingest.Example:22/media//\n"
			     "allow = https://origin.example:443/assets/./\n"
			     "allow = HTTP://[2001:DB8::2]/x%20y\n") == 0);
	CHECK(c.nsource_allow == 4);
	CHECK_STR(c.source_allow[0], "ftps://vault/secure/");
	CHECK_STR(c.source_allow[1], "sftp://ingest.example:22/media/");
	CHECK_STR(c.source_allow[2], "https://origin.example:443/assets/");
	CHECK_STR(c.source_allow[3], "http://[2001:db8::2]/x%20y/");
	config_free(&c);
}

/* ---- [credentials] ---- */

static void test_credentials_are_kept_as_written(void)
{
	struct config c;
	CHECK(parse_with(&c, "[credentials]\n"
			     "url = ftp://publisher:pa%40ss@CDN:21/\n"
			     "url = sftp://ingest@cis.example\n"
			     "url = https://dav:pw@[2001:db8::1]:8443/\n"
			     "url = ftps://a:b@vault/\n") == 0);
	CHECK(c.ncredentials == 4);
	CHECK_STR(c.credentials[0], "ftp://publisher:pa%40ss@CDN:21/");
	CHECK_STR(c.credentials[1], "sftp://ingest@cis.example");
	CHECK_STR(c.credentials[2], "https://dav:pw@[2001:db8::1]:8443/");
	CHECK_STR(c.credentials[3], "ftps://a:b@vault/");
	config_free(&c);
}

static void test_credentials_without_a_user_are_refused(void)
{
	const char want[] = "apubid.conf:4: [credentials] url: needs a user "
			    "(scheme://user:password@host[:port]/)";
	CHECK(refused("[credentials]\nurl = ftp://cdn/\n", want));
	CHECK(refused("[credentials]\nurl = ftp://:s3cret@cdn/\n", want));
	CHECK(strstr(err, "s3cret") == NULL);
}

static void test_credentials_with_an_unsupported_scheme_are_refused(void)
{
	CHECK(refused("[credentials]\nurl = file://u:s3cret@localhost/\n",
		      "apubid.conf:4: [credentials] url: unsupported scheme 'file' "
		      "(supported: ftp, ftps, sftp, http, https)"));
	CHECK(refused("[credentials]\nurl = scp://u:s3cret@cdn/\n", "unsupported scheme 'scp'"));
	CHECK(refused("[credentials]\nurl = u:s3cret@cdn\n",
		      "apubid.conf:4: [credentials] url: not an absolute URL"));
	CHECK(refused("[credentials]\nurl = ftp://u:s3cret@cdn:99999/\n",
		      "apubid.conf:4: [credentials] url: bad port"));
	CHECK(strstr(err, "s3cret") == NULL);
}

static void test_credentials_name_a_server_not_a_path(void)
{
	CHECK(refused("[credentials]\nurl = ftp://u:s3cret@cdn/data/cdn/\n",
		      "apubid.conf:4: [credentials] url: names a server, not a path"));
	CHECK(strstr(err, "s3cret") == NULL);
}

static void test_second_credentials_for_one_server_are_refused(void)
{
	CHECK(refused("[credentials]\nurl = ftp://a:s3cret@cdn/\nurl = ftp://b:s3cret@CDN:21/\n",
		      "apubid.conf:5: [credentials] url: a second entry for ftp://cdn:21/"));
	CHECK(strstr(err, "s3cret") == NULL);
	CHECK(refused("[credentials]\nurl = ftps://a:x@vault:21/\nurl = ftps://b:y@vault/\n",
		      "a second entry for ftps://vault:21/"));
	CHECK(refused("[credentials]\nurl = sftp://a@[::1]/\nurl = sftp://b@[::1]:22\n",
		      "a second entry for sftp://[::1]:22/"));
}

static void test_credentials_for_other_ports_and_schemes_are_separate(void)
{
	struct config c;
	CHECK(parse_with(&c, "[credentials]\nurl = ftp://a:x@cdn/\nurl = ftp://b:y@cdn:2121/\n"
			     "url = ftps://c:z@cdn/\nurl = sftp://d@cdn/\n") == 0);
	CHECK(c.ncredentials == 4);
	config_free(&c);
}

static void test_too_many_credentials_are_refused(void)
{
	char text[4096] = "[credentials]\n";
	for (int i = 0; i <= CONFIG_MAX_PREFIXES; i++)
		snprintf(text + strlen(text), sizeof text - strlen(text),
			 "url = ftp://u:pw@host%d/\n", i);
	CHECK(refused(text, "apubid.conf:36: [credentials] url: at most 32 entries"));
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
	CHECK(config_parse(&c, "[destination]\nroot = ftp://u:pw@cdn/x/\n[transfer]\n"
			       "ca_file = etc/apubid.conf\n[credentials]\nurl = ftp://u:pw@cdn/\n"
			       "url = bogus\n",
			   "x.conf", err, sizeof err) == -1);
	CHECK(c.dest_root_auth == NULL && c.ca_file == NULL && c.ncredentials == 0);
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

static void test_operations_defaults(void)
{
	struct config c;
	CHECK(parse_with(&c, "") == 0);
	CHECK(c.prune_interval == 600);
	CHECK(c.log_file == NULL);
	CHECK(c.notify_url == NULL);
	CHECK(c.notify_retries == 10 && c.notify_retry_delay == 2);
	CHECK(c.notify_retry_max_delay == 300 && c.notify_timeout == 10);
	config_free(&c);
}

static void test_operations_settings_can_be_set(void)
{
	struct config c;
	CHECK(parse_with(&c, "[store]\nprune_interval = 1\n"
			     "[log]\nfile = /var/log/apubid.log\n"
			     "[notify]\nurl = https://hooks.example/apubid/done\n"
			     "retries = 2\nretry_delay = 0\nretry_max_delay = 1\ntimeout = 600\n") == 0);
	CHECK(c.prune_interval == 1);
	CHECK_STR(c.log_file, "/var/log/apubid.log");
	CHECK_STR(c.notify_url, "https://hooks.example/apubid/done");
	CHECK(c.notify_retries == 2 && c.notify_retry_delay == 0);
	CHECK(c.notify_retry_max_delay == 1 && c.notify_timeout == 600);
	config_free(&c);
}

static void test_relative_log_file_is_made_absolute_against_cwd(void)
{
	struct config c;
	char want[5000];
	CHECK(parse_with(&c, "[log]\nfile = var/apubid.log\n") == 0);
	snprintf(want, sizeof want, "%s/var/apubid.log", cwd);
	CHECK_STR(c.log_file, want);
	config_free(&c);
}

static void test_operations_numbers_out_of_range_are_refused(void)
{
	CHECK(refused("[store]\nprune_interval = 0\n", "apubid.conf:4: 'prune_interval' must be"));
	CHECK(refused("[store]\nprune_interval = 86401\n", "from 1 to 86400"));
	CHECK(refused("[notify]\nretries = 0\n", "'retries' must be a whole number from 1 to 100"));
	CHECK(refused("[notify]\nretries = 101\n", "from 1 to 100"));
	CHECK(refused("[notify]\nretry_delay = -1\n", "from 0 to 3600"));
	CHECK(refused("[notify]\nretry_max_delay = 0\n", "from 1 to 86400"));
	CHECK(refused("[notify]\ntimeout = 0\n", "from 1 to 600"));
	CHECK(refused("[notify]\ntimeout = 601\n", "from 1 to 600"));
}

static void test_notify_url_must_be_http_or_https(void)
{
	CHECK(refused("[notify]\nurl = ftp://hooks/x\n", "apubid.conf:4: [notify] url must be an http:// or https:// URL"));
	CHECK(refused("[notify]\nurl = /var/hook\n", "[notify] url: not an absolute URL"));
	CHECK(refused("[notify]\nurl = http://hooks/x?token=1\n", "query strings"));
	CHECK(refused("[notify]\nurl = http:///x\n", "[notify] url:"));
}

static void test_notify_url_keeps_userinfo_and_never_repeats_it(void)
{
	struct config c;
	CHECK(parse_with(&c, "[notify]\nurl = https://wfm:s3cret@hooks.example:8443/done\n") == 0);
	CHECK_STR(c.notify_url, "https://wfm:s3cret@hooks.example:8443/done");
	config_free(&c);
	CHECK(refused("[notify]\nurl = ftp://wfm:s3cret@hooks/x\n", "[notify] url must be"));
	CHECK(strstr(err, "s3cret") == NULL);
	CHECK(refused("[notify]\nurl = http://wfm:s3cret@hooks:99999/x\n", "bad port"));
	CHECK(strstr(err, "s3cret") == NULL);
}

/* Two configurations for config_reload: the running one and the file as
 * read again. */
static int reload_pair(struct config *live, const char *a, struct config *fresh, const char *b)
{
	if (parse_with(live, a) < 0)
		return -1;
	if (parse_with(fresh, b) < 0) {
		config_free(live);
		return -1;
	}
	return 0;
}

static void test_reload_applies_what_may_change_at_run_time(void)
{
	struct config live, fresh;
	char applied[512], restart[512];
	CHECK(reload_pair(&live, "[log]\nlevel = info\n",
			  &fresh, "[log]\nlevel = debug\nfile = /tmp/a.log\n"
				  "[store]\nretention_days = 1\nprune_interval = 5\n"
				  "[transfer]\nretries = 9\nstall_timeout = 7\n"
				  "[notify]\nurl = http://127.0.0.1:9/hook\ntimeout = 3\n") == 0);
	int n = config_reload(&live, &fresh, applied, sizeof applied, restart, sizeof restart);
	config_free(&fresh);
	CHECK(n == 8);
	CHECK_STR(applied, "store.retention_days, store.prune_interval, transfer.retries, "
			   "transfer.stall_timeout, log.level, log.file, notify.url, notify.timeout");
	CHECK_STR(restart, "");
	CHECK(live.log_level == LOG_DEBUG);
	CHECK_STR(live.log_file, "/tmp/a.log");
	CHECK(live.retention_days == 1 && live.prune_interval == 5);
	CHECK(live.retries == 9 && live.stall_timeout == 7);
	CHECK_STR(live.notify_url, "http://127.0.0.1:9/hook");
	CHECK(live.notify_timeout == 3);
	config_free(&live);
}

static void test_reload_names_restart_only_settings_and_keeps_them(void)
{
	struct config live, fresh;
	char applied[512], restart[512];
	CHECK(reload_pair(&live, "[server]\nlisten = 127.0.0.1:8080\n[workers]\ncount = 4\n",
			  &fresh, "[server]\nlisten = 127.0.0.1:9090\n[workers]\ncount = 8\n"
				  "[source]\nallow = /srv/other/\n") == 0);
	int n = config_reload(&live, &fresh, applied, sizeof applied, restart, sizeof restart);
	config_free(&fresh);
	CHECK(n == 0);
	CHECK_STR(applied, "");
	CHECK_STR(restart, "server.listen, workers.count, source.allow");
	CHECK(live.listen_port == 8080 && live.workers == 4 && live.nsource_allow == 0);
	config_free(&live);
}

static void test_reload_of_an_unchanged_file_changes_nothing(void)
{
	struct config live, fresh;
	char applied[512] = "x", restart[512] = "x";
	const char *text = "allow = ftp://cdn:21/data/cdn/\n[notify]\nurl = http://h/x\n"
			   "[credentials]\nurl = ftp://u:p@cis/\n[source]\nallow = /srv/in/\n";
	CHECK(reload_pair(&live, text, &fresh, text) == 0);
	CHECK(config_reload(&live, &fresh, applied, sizeof applied, restart, sizeof restart) == 0);
	config_free(&fresh);
	CHECK_STR(applied, "");
	CHECK_STR(restart, "");
	config_free(&live);
}

/* Another thread may still hold the old string: it must stay readable
 * until config_free. */
static void test_reload_keeps_replaced_strings_alive(void)
{
	struct config live, fresh, again;
	char applied[512], restart[512];
	CHECK(reload_pair(&live, "[notify]\nurl = http://h/first\n[log]\nfile = /tmp/one.log\n",
			  &fresh, "[log]\nfile = /tmp/two.log\n") == 0);
	const char *old_url = live.notify_url, *old_file = live.log_file;
	config_reload(&live, &fresh, applied, sizeof applied, restart, sizeof restart);
	config_free(&fresh);
	CHECK(live.notify_url == NULL);
	CHECK_STR(live.log_file, "/tmp/two.log");
	CHECK_STR(old_url, "http://h/first");
	CHECK_STR(old_file, "/tmp/one.log");
	CHECK(parse_with(&again, "[notify]\nurl = http://h/third\n") == 0);
	config_reload(&live, &again, applied, sizeof applied, restart, sizeof restart);
	config_free(&again);
	CHECK_STR(applied, "log.file, notify.url");
	CHECK(live.log_file == NULL);
	CHECK_STR(live.notify_url, "http://h/third");
	CHECK_STR(old_file, "/tmp/one.log");
	config_free(&live);
}

static void test_reload_reports_names_never_values(void)
{
	struct config live, fresh;
	char applied[512], restart[512];
	CHECK(reload_pair(&live, "[notify]\nurl = https://u:0ld-s3cret@h/x\n",
			  &fresh, "[notify]\nurl = https://u:n3w-s3cret@h/x\n"
				  "[credentials]\nurl = ftp://u:cr3d-s3cret@cis/\n") == 0);
	CHECK(config_reload(&live, &fresh, applied, sizeof applied, restart, sizeof restart) == 1);
	config_free(&fresh);
	CHECK_STR(applied, "notify.url");
	CHECK_STR(restart, "credentials.url");
	CHECK_STR(live.notify_url, "https://u:n3w-s3cret@h/x");
	config_free(&live);
}

/* Read again at run time, a file only a restart would open is not
 * opened: apubid may no longer have the rights to read it. */
static void test_reread_leaves_restart_only_files_unopened(void)
{
	struct config c;
	char path[] = "/tmp/apubid-test-reread-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	dprintf(fd, "[destination]\nroot = /srv/cdn\n[transfer]\nca_file = /nonexistent/ca.pem\n"
		    "[auth]\nusers_file = /nonexistent/users\n");
	close(fd);
	int rc = config_load(&c, path, err, sizeof err);
	config_free(&c);
	CHECK(rc == -1 && strstr(err, "/nonexistent/ca.pem") != NULL);
	rc = config_reread(&c, path, err, sizeof err);
	unlink(path);
	CHECK(rc == 0);
	CHECK_STR(c.ca_file, "/nonexistent/ca.pem");
	CHECK_STR(c.auth_users_file, "/nonexistent/users");
	CHECK(c.auth == NULL && c.auth_methods == AUTH_BASIC);
	config_free(&c);
}

static void test_reread_still_refuses_a_broken_file(void)
{
	struct config c;
	char path[] = "/tmp/apubid-test-reread-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	dprintf(fd, "[destination]\nroot = /srv/cdn\n[log]\nlevel = loud\n");
	close(fd);
	int rc = config_reread(&c, path, err, sizeof err);
	unlink(path);
	CHECK(rc == -1);
	CHECK(strstr(err, ":4: 'level' must be") != NULL);
	config_free(&c);
}

/* Reads a file whole into a malloc'ed string (NULL when unreadable). */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char *buf = util_malloc(1 << 20);
	size_t n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

struct doc_check {
	char *man, *sample;
	int missing;
};

/* The text of `doc` from the header of `section` to the next header. */
static char *doc_section(const char *doc, const char *header_fmt, const char *section)
{
	char *h = util_printf(header_fmt, section);
	const char *p = strstr(doc, h);
	char *out = NULL;
	if (p) {
		const char *end = strstr(p + strlen(h), header_fmt[0] == '[' ? "\n[" : "\n.SS");
		out = util_strndup(p, end ? (size_t)(end - p) : strlen(p));
	}
	free(h);
	return out;
}

static void doc_check_one(void *arg, const char *section, const char *key, const char *type,
			  const char *range, const char *def, int reloads)
{
	struct doc_check *d = arg;
	char *ms = doc_section(d->man, ".SS \"[%s]\"", section);
	char *ss = doc_section(d->sample, "[%s]\n", section);
	char *tag = util_printf("\n.TP\n.B %s\n", key);
	char *line = util_printf("%s = ", key);
	const char *entry = ms ? strstr(ms, tag) : NULL;
	char *para = NULL;
	if (entry) {
		const char *end = strstr(entry + strlen(tag), "\n.TP");
		para = util_strndup(entry, end ? (size_t)(end - entry) : strlen(entry));
	}
	if (!para) {
		fprintf(stderr, "  apubid.conf.5 does not describe [%s] %s\n", section, key);
		d->missing++;
	} else {
		char *want_def = *def ? util_printf("default \\fB%s\\fR", def) : util_strdup("no default");
		const char *want_sighup = reloads ? "reloaded on SIGHUP" : "needs a restart";
		const char *not_sighup = reloads ? "needs a restart" : "reloaded on SIGHUP";
		if (!strstr(para, want_def) || !strstr(para, want_sighup) || strstr(para, not_sighup) ||
		    (*range && !strstr(para, range)) || !strstr(para, type)) {
			fprintf(stderr, "  apubid.conf.5 [%s] %s lacks \"%s\", \"%s\", \"%s\" or \"%s\"\n",
				section, key, type, range, want_def, want_sighup);
			d->missing++;
		}
		free(want_def);
	}
	if (!ss || !strstr(ss, line)) {
		fprintf(stderr, "  etc/apubid.conf does not show [%s] %s\n", section, key);
		d->missing++;
	}
	free(para);
	free(tag);
	free(line);
	free(ms);
	free(ss);
}

/* Both the sample file and apubid.conf(5) describe every setting of the
 * table, the man page with its type, range, default and whether SIGHUP
 * reloads it. */
static void test_every_setting_is_documented(void)
{
	struct doc_check d = { slurp("etc/man/apubid.conf.5"), slurp("etc/apubid.conf"), 0 };
	CHECK(d.man != NULL && d.sample != NULL);
	config_each(doc_check_one, &d);
	free(d.man);
	free(d.sample);
	CHECK(d.missing == 0);
}

/* The shipped sample must always be a valid configuration. Unit tests run
 * from the top of the tree. */
static void test_sample_config_parses(void)
{
	struct config c;
	CHECK(config_load(&c, "etc/apubid.conf", err, sizeof err) == 0);
	CHECK(c.listen_port == 8080);
	CHECK(c.dest_root != NULL);
	CHECK(c.retries == 5 && c.retry_delay == 2 && c.retry_max_delay == 60);
	CHECK(c.retry_max_time == 600 && c.connect_timeout == 15 && c.stall_timeout == 30);
	CHECK(c.task_timeout == 3600 && c.max_per_host == 4);
	CHECK(c.ca_file == NULL && c.ncredentials == 0);
	config_free(&c);
}

static void test_staging_is_off_by_default(void)
{
	struct config c;
	CHECK(parse_with(&c, "") == 0);
	CHECK(c.staging_enabled == 0);
	CHECK(c.rules == NULL);
	config_free(&c);
}

static void test_staging_rules_accumulate_in_file_order(void)
{
	struct config c;
	CHECK(parse_with(&c, "[staging]\nenabled = yes\n"
			     "rule = name=slow op=LoadAsset dest=slow/* delay=2s\n"
			     "rule = name=busy op=* fault=503 faultstring=\"CDN busy\"\n") == 0);
	CHECK(c.staging_enabled == 1);
	CHECK(c.rules && c.rules->n == 2);
	CHECK_STR(c.rules->v[0].name, "slow");
	CHECK(c.rules->v[0].delay_ms == 2000);
	CHECK_STR(c.rules->v[1].faultstring, "CDN busy");
	config_free(&c);
	/* enabled may come after the rules. */
	CHECK(parse_with(&c, "[staging]\nrule = name=a op=*\nenabled = yes\n") == 0);
	CHECK(c.rules && c.rules->n == 1);
	config_free(&c);
}

static void test_staging_rule_without_enabled_is_refused_naming_its_line(void)
{
	CHECK(refused("[staging]\n\nrule = name=a op=*\nrule = name=b op=*\n",
		      "apubid.conf:5: [staging] rule needs 'enabled = yes' in [staging]"));
	CHECK(refused("[staging]\nenabled = no\nrule = name=a op=*\n",
		      "apubid.conf:5: [staging] rule needs 'enabled = yes'"));
	/* Enabled without a rule is fine: every task runs for real. */
	struct config c;
	CHECK(parse_with(&c, "[staging]\nenabled = yes\n") == 0);
	CHECK(c.rules == NULL);
	config_free(&c);
}

static void test_bad_staging_rule_reports_file_line_and_rule(void)
{
	CHECK(refused("[staging]\nenabled = yes\nrule = name=a op=*\nrule = name=b op=* dst=x\n",
		      "apubid.conf:6: rule b: unknown key \"dst\""));
	CHECK(refused("[staging]\nenabled = yes\nrule = name=a op=*\nrule = name=a op=*\n",
		      "apubid.conf:6: rule a: a rule of that name is already defined"));
	CHECK(refused("[staging]\nenabled = yes\nrule = op=*\n",
		      "apubid.conf:5: rule 1: name= is required"));
	CHECK(refused("[staging]\nenabled = maybe\n", "apubid.conf:4: 'enabled' must be yes or no"));
}

static void test_reload_applies_new_staging_rules(void)
{
	struct config live, fresh, same;
	char applied[512], restart[512];
	CHECK(reload_pair(&live, "[staging]\nenabled = yes\nrule = name=a op=* delay=1s\n", &fresh,
			  "[staging]\nenabled = yes\nrule = name=a op=* delay=1s\n"
			  "rule = name=b op=PurgeAsset fail=no\n") == 0);
	int n = config_reload(&live, &fresh, applied, sizeof applied, restart, sizeof restart);
	CHECK(n == 1);
	CHECK_STR(applied, "staging.rule");
	CHECK_STR(restart, "");
	CHECK(live.rules && live.rules->n == 2 && live.rules != fresh.rules);
	CHECK(rules_same(live.rules, fresh.rules));
	config_free(&fresh);
	CHECK_STR(live.rules->v[1].fail, "no"); /* a copy: still readable */
	/* The same rules again change nothing. */
	CHECK(parse_with(&same, "[staging]\nenabled = yes\nrule = name=a op=* delay=1s\n"
				"rule = name=b op=PurgeAsset fail=no\n") == 0);
	CHECK(config_reload(&live, &same, applied, sizeof applied, restart, sizeof restart) == 0);
	config_free(&same);
	/* Switching staging off drops the rules. */
	CHECK(parse_with(&same, "") == 0);
	n = config_reload(&live, &same, applied, sizeof applied, restart, sizeof restart);
	config_free(&same);
	CHECK(n == 2);
	CHECK_STR(applied, "staging.enabled, staging.rule");
	CHECK(live.staging_enabled == 0 && live.rules == NULL);
	config_free(&live);
}

/* paths.c names the line of the setting behind each directory it checks. */
static void test_lines_of_checked_paths_are_recorded(void)
{
	struct config c;
	CHECK(parse_with(&c, "[source]\nallow = /srv/a/\n\nallow = ftp://h/x/\n"
			     "[store]\npath = /var/lib/apubid/apubid.db\n") == 0);
	int ok = c.dest_root_line == 2 && c.source_allow_line[0] == 4 &&
		 c.source_allow_line[1] == 6 && c.store_path_line == 8 && c.name &&
		 strcmp(c.name, "apubid.conf") == 0;
	config_free(&c);
	CHECK(ok);
	/* A setting left at its default has no line. */
	CHECK(parse_with(&c, "") == 0);
	ok = c.store_path_line == 0 && strcmp(c.store_path, "var/apubid.db") == 0;
	config_free(&c);
	CHECK(ok);
}

int main(void)
{
	if (!getcwd(cwd, sizeof cwd))
		return 1;
	RUN(test_builtin_defaults_without_file);
	RUN(test_transfer_defaults_apply_to_a_file_without_transfer_section);
	RUN(test_every_setting_can_be_set);
	RUN(test_every_transfer_setting_can_be_set);
	RUN(test_transfer_numbers_out_of_range_are_refused);
	RUN(test_transfer_key_set_twice_is_refused);
	RUN(test_missing_transfer_files_report_file_line_and_reason);
	RUN(test_directory_is_not_a_readable_ca_file);
	RUN(test_unreadable_ca_file_is_refused);
	RUN(test_relative_transfer_file_is_made_absolute_against_cwd);
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
	RUN(test_remote_root_keeps_credentials_only_in_dest_root_auth);
	RUN(test_remote_root_userinfo_is_reencoded_so_it_parses_back);
	RUN(test_remote_root_may_be_the_server_root);
	RUN(test_file_root_auth_is_the_root);
	RUN(test_unsupported_root_scheme_is_refused_without_its_password);
	RUN(test_remote_allow_prefixes_normalise_like_ftp);
	RUN(test_credentials_are_kept_as_written);
	RUN(test_credentials_without_a_user_are_refused);
	RUN(test_credentials_with_an_unsupported_scheme_are_refused);
	RUN(test_credentials_name_a_server_not_a_path);
	RUN(test_second_credentials_for_one_server_are_refused);
	RUN(test_credentials_for_other_ports_and_schemes_are_separate);
	RUN(test_too_many_credentials_are_refused);
	RUN(test_filesystem_root_cannot_be_the_root);
	RUN(test_public_url_must_be_http_or_https);
	RUN(test_public_url_keeps_port_and_path_case);
	RUN(test_failed_parse_leaves_nothing_to_free);
	RUN(test_missing_file_names_path_and_reason);
	RUN(test_file_is_read_and_named_in_errors);
	RUN(test_file_with_nul_byte_is_refused);
	RUN(test_operations_defaults);
	RUN(test_operations_settings_can_be_set);
	RUN(test_relative_log_file_is_made_absolute_against_cwd);
	RUN(test_operations_numbers_out_of_range_are_refused);
	RUN(test_notify_url_must_be_http_or_https);
	RUN(test_notify_url_keeps_userinfo_and_never_repeats_it);
	RUN(test_reload_applies_what_may_change_at_run_time);
	RUN(test_reload_names_restart_only_settings_and_keeps_them);
	RUN(test_reload_of_an_unchanged_file_changes_nothing);
	RUN(test_reload_keeps_replaced_strings_alive);
	RUN(test_reload_reports_names_never_values);
	RUN(test_reread_leaves_restart_only_files_unopened);
	RUN(test_reread_still_refuses_a_broken_file);
	RUN(test_staging_is_off_by_default);
	RUN(test_staging_rules_accumulate_in_file_order);
	RUN(test_staging_rule_without_enabled_is_refused_naming_its_line);
	RUN(test_bad_staging_rule_reports_file_line_and_rule);
	RUN(test_reload_applies_new_staging_rules);
	RUN(test_every_setting_is_documented);
	RUN(test_sample_config_parses);
	RUN(test_lines_of_checked_paths_are_recorded);
	return HARNESS_END("test_config");
}

/*
 * config.c - the settings apubid runs with, read from an INI file.
 *
 * One table, config_settings[], names every setting: its section and key,
 * the function that parses and checks a value (which is its type), where
 * the value goes in struct config, the accepted range, and the default as
 * it would be written in the file. Defaults go through the same parser as
 * the file, so a default can never be a value the file would refuse, and
 * adding a setting is one line in the table plus a field in apubid.h.
 *
 * The format is deliberately small: "[section]", "key = value", and whole
 * comment lines starting with '#' or ';'. There are no inline comments: a
 * '#' inside a value belongs to the value, since '#' is a legal character
 * in a path. A key set twice is refused (it is nearly always a mistake)
 * except for the repeatable allow lists, credentials and [staging] rules,
 * which accumulate.
 *
 * Prefixes ([source] allow, [destination] root and allow, public_url) are
 * stored in one canonical shape, so that asset.c can compare them without
 * guessing: "scheme://host[:port]/path/", scheme and host lower-case, the
 * path normalised and percent-encoded, ending in exactly one '/', without
 * userinfo (prefixes are matched with userinfo ignored, so keeping a
 * password here would only risk printing it). A plain path is a local
 * directory and becomes "file:///absolute/path/". A port is kept as
 * written: "ftp://cdn/" and "ftp://cdn:21/" are stored apart but compared
 * as the same server.
 *
 * Secrets: the destination root's userinfo is kept in one place only,
 * dest_root_auth, and [credentials] entries are kept as written; neither
 * is ever put into an error message. Messages about them name the line
 * and what is wrong, never the value.
 *
 * Files the transfers will need (ca_file, the SSH keys, known_hosts) are
 * opened here, at start-up, so that a typo is reported by `apubid -n`
 * rather than by the first task that reaches a remote server. So are the
 * [tls] files, and the [auth] credentials files are read whole (auth.c):
 * this happens before apubid drops its privileges, so they may belong to
 * root. The TLS key password, like the credentials, is never repeated in a
 * message.
 *
 * Reloading (SIGHUP): the file is read again whole by config_reread, and
 * config_reload copies into the running configuration every changed
 * setting flagged CONFIG_RELOAD in the table; the other changes are only
 * named, for a warning that a restart applies them. The flag is allowed on
 * numbers, plain strings and the [staging] rules only: a number is one
 * store, a string is swapped and the old one kept (config_grave) until
 * config_free, since the threads that read the configuration take no
 * lock; the rules here are read by no other thread (requests use the copy
 * main.c installs with rules_set), so they are simply replaced. A file
 * that no longer parses changes nothing. Nothing here logs or acts on a
 * change: main.c does (log level, log file, notifications, rules).
 */
#include "apubid.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONFIG_REQUIRED 1 /* missing from the file is an error */
#define CONFIG_REPEAT 2   /* may appear several times; values accumulate */
#define CONFIG_RELOAD 4   /* SIGHUP applies a change while apubid runs */

#define CONFIG_MAX_FILE (1024 * 1024)

struct config_setting;
/* Parses `v` (trimmed, non-empty, free of control characters) into *c, or
 * returns -1 with a reason in err (the caller adds "name:line: "). */
typedef int (*config_setter)(struct config *c, const struct config_setting *s,
			     const char *v, char *err, size_t errlen);

struct config_setting {
	const char *section;
	const char *key;
	config_setter set;
	size_t offset;    /* field in struct config the setter writes */
	int64_t min, max; /* accepted range for numbers and sizes */
	const char *def;  /* default, written as in the file; NULL for none */
	int flags;        /* CONFIG_REQUIRED, CONFIG_REPEAT, CONFIG_RELOAD */
};

/* A string config_reload took out of the running configuration: another
 * thread may still be reading it, so it lives until config_free. */
struct config_grave {
	struct config_grave *next;
	char *s;
};

static int config_set_int(struct config *, const struct config_setting *, const char *, char *,
			  size_t);
static int config_set_size(struct config *, const struct config_setting *, const char *, char *,
			   size_t);
static int config_set_bool(struct config *, const struct config_setting *, const char *, char *,
			   size_t);
static int config_set_string(struct config *, const struct config_setting *, const char *,
			     char *, size_t);
static int config_set_listen(struct config *, const struct config_setting *, const char *,
			     char *, size_t);
static int config_set_public_endpoint(struct config *, const struct config_setting *,
				      const char *, char *, size_t);
static int config_set_endpoint(struct config *, const struct config_setting *, const char *,
			       char *, size_t);
static int config_set_status(struct config *, const struct config_setting *, const char *,
			     char *, size_t);
static int config_set_level(struct config *, const struct config_setting *, const char *, char *,
			    size_t);
static int config_set_log_format(struct config *, const struct config_setting *, const char *,
				 char *, size_t);
static int config_set_source_allow(struct config *, const struct config_setting *, const char *,
				   char *, size_t);
static int config_set_dest_root(struct config *, const struct config_setting *, const char *,
				char *, size_t);
static int config_set_dest_allow(struct config *, const struct config_setting *, const char *,
				 char *, size_t);
static int config_set_public_url(struct config *, const struct config_setting *, const char *,
				 char *, size_t);
static int config_set_file(struct config *, const struct config_setting *, const char *, char *,
			   size_t);
static int config_set_credentials(struct config *, const struct config_setting *, const char *,
				  char *, size_t);
static int config_set_user(struct config *, const struct config_setting *, const char *, char *,
			   size_t);
static int config_set_secret(struct config *, const struct config_setting *, const char *, char *,
			     size_t);
static int config_set_realm(struct config *, const struct config_setting *, const char *, char *,
			    size_t);
static int config_set_methods(struct config *, const struct config_setting *, const char *,
			      char *, size_t);
static int config_set_log_file(struct config *, const struct config_setting *, const char *,
			       char *, size_t);
static int config_set_notify_url(struct config *, const struct config_setting *, const char *,
				 char *, size_t);
static int config_set_rule(struct config *, const struct config_setting *, const char *, char *,
			   size_t);
static int config_set_store_url(struct config *, const struct config_setting *, const char *,
				char *, size_t);

#define F(field) offsetof(struct config, field)
#define KIB 1024LL
#define GIB (1024LL * 1024 * 1024)
#define R CONFIG_RELOAD

static const struct config_setting config_settings[] = {
	{ "server", "listen", config_set_listen, 0, 0, 0, "127.0.0.1:8080", 0 },
	{ "server", "endpoint", config_set_endpoint, F(endpoint), 0, 0, "/apubi", 0 },
	{ "server", "public_endpoint", config_set_public_endpoint, F(public_endpoint), 0, 0, NULL,
	  0 },
	{ "server", "threads", config_set_int, F(threads), 1, 1024, "16", 0 },
	{ "server", "max_request_size", config_set_size, F(max_request_size), KIB, GIB, "1M", 0 },
	{ "server", "client_fault_status", config_set_status, F(client_fault_status), 0, 0, "500", 0 },
	{ "server", "recv_timeout", config_set_int, F(recv_timeout), 1, 3600, "10", 0 },
	{ "server", "send_timeout", config_set_int, F(send_timeout), 1, 3600, "10", 0 },
	{ "server", "request_timeout", config_set_int, F(request_timeout), 1, 3600, "30", 0 },
	{ "server", "header_timeout", config_set_int, F(header_timeout), 1, 3600, "10", 0 },
	{ "server", "max_connections", config_set_int, F(max_connections), 1, 1000000, "10000", 0 },
	{ "server", "max_connections_per_address", config_set_int, F(max_connections_per_address), 1,
	  1000000, "256", 0 },
	{ "server", "keepalive_timeout", config_set_int, F(keepalive_timeout), 1, 3600, "15", 0 },
	{ "server", "max_keepalive_requests", config_set_int, F(max_keepalive_requests), 1, 1000000,
	  "1000", 0 },
	{ "store", "path", config_set_string, F(store_path), 0, 0, "var/apubid.db", 0 },
	{ "store", "url", config_set_store_url, F(store_url), 0, 0, NULL, 0 },
	{ "store", "spool", config_set_string, F(spool_dir), 0, 0, NULL, 0 },
	{ "store", "lease_timeout", config_set_int, F(lease_timeout), 3, 3600, "30", 0 },
	{ "store", "retention_days", config_set_int, F(retention_days), 0, 36500, "30", R },
	{ "store", "prune_interval", config_set_int, F(prune_interval), 1, 86400, "600", R },
	{ "workers", "count", config_set_int, F(workers), 1, 256, "4", 0 },
	{ "workers", "queue_limit", config_set_int, F(queue_limit), 1, 100000000, "10000", R },
	{ "source", "allow", config_set_source_allow, 0, 0, 0, NULL, CONFIG_REPEAT },
	{ "destination", "root", config_set_dest_root, F(dest_root_auth), 0, 0, NULL,
	  CONFIG_REQUIRED },
	{ "destination", "allow", config_set_dest_allow, 0, 0, 0, NULL, CONFIG_REPEAT },
	{ "destination", "public_url", config_set_public_url, F(public_url), 0, 0, NULL, 0 },
	{ "transfer", "retries", config_set_int, F(retries), 1, 100, "5", R },
	{ "transfer", "retry_delay", config_set_int, F(retry_delay), 0, 3600, "2", R },
	{ "transfer", "retry_max_delay", config_set_int, F(retry_max_delay), 1, 86400, "60", R },
	{ "transfer", "retry_max_time", config_set_int, F(retry_max_time), 0, 604800, "600", R },
	{ "transfer", "connect_timeout", config_set_int, F(connect_timeout), 1, 600, "15", R },
	{ "transfer", "stall_timeout", config_set_int, F(stall_timeout), 1, 3600, "30", R },
	{ "transfer", "task_timeout", config_set_int, F(task_timeout), 1, 604800, "3600", R },
	{ "transfer", "max_per_host", config_set_int, F(max_per_host), 1, 256, "4", 0 },
	{ "transfer", "parallel", config_set_int, F(parallel), 1, 64, "4", 0 },
	{ "transfer", "refuse_private_sources", config_set_bool, F(refuse_private_sources), 0, 1,
	  "no", 0 },
	{ "transfer", "ca_file", config_set_file, F(ca_file), 0, 0, NULL, 0 },
	{ "transfer", "ssh_private_key", config_set_file, F(ssh_private_key), 0, 0, NULL, 0 },
	{ "transfer", "ssh_public_key", config_set_file, F(ssh_public_key), 0, 0, NULL, 0 },
	{ "transfer", "ssh_known_hosts", config_set_file, F(ssh_known_hosts), 0, 0, NULL, 0 },
	{ "credentials", "url", config_set_credentials, 0, 0, 0, NULL, CONFIG_REPEAT },
	{ "log", "level", config_set_level, F(log_level), 0, 0, "info", R },
	{ "log", "file", config_set_log_file, F(log_file), 0, 0, NULL, R },
	{ "log", "format", config_set_log_format, F(log_format), 0, 0, "text", R },
	{ "notify", "url", config_set_notify_url, F(notify_url), 0, 0, NULL, R },
	{ "notify", "retries", config_set_int, F(notify_retries), 1, 100, "10", R },
	{ "notify", "retry_delay", config_set_int, F(notify_retry_delay), 0, 3600, "2", R },
	{ "notify", "retry_max_delay", config_set_int, F(notify_retry_max_delay), 1, 86400, "300",
	  R },
	{ "notify", "timeout", config_set_int, F(notify_timeout), 1, 600, "10", R },
	{ "server", "user", config_set_user, F(user), 0, 0, NULL, 0 },
	{ "tls", "cert_file", config_set_file, F(tls_cert_file), 0, 0, NULL, 0 },
	{ "tls", "key_file", config_set_file, F(tls_key_file), 0, 0, NULL, 0 },
	{ "tls", "key_password", config_set_secret, F(tls_key_password), 0, 0, NULL, 0 },
	{ "tls", "client_ca", config_set_file, F(tls_client_ca), 0, 0, NULL, 0 },
	{ "auth", "users_file", config_set_file, F(auth_users_file), 0, 0, NULL, 0 },
	{ "auth", "digest_file", config_set_file, F(auth_digest_file), 0, 0, NULL, 0 },
	{ "auth", "realm", config_set_realm, F(auth_realm), 0, 0, "apubid", 0 },
	{ "auth", "methods", config_set_methods, F(auth_methods), 0, 0, NULL, 0 },
	{ "staging", "enabled", config_set_bool, F(staging_enabled), 0, 1, "no", R },
	{ "staging", "rule", config_set_rule, F(rules), 0, 0, NULL, CONFIG_REPEAT | R },
};

#undef R

#define CONFIG_NSETTINGS (sizeof config_settings / sizeof config_settings[0])

const char config_default_text[] =
	"# apubid built-in configuration, used when no -f is given.\n"
	"[server]\n"
	"listen = 127.0.0.1:8080\n"
	"endpoint = /apubi\n"
	"[store]\n"
	"path = var/apubid.db\n"
	"[source]\n"
	"allow = var/ingest/\n"
	"[destination]\n"
	"root = var/cdn/\n"
	"[log]\n"
	"level = info\n";

static void *config_field(struct config *c, const struct config_setting *s)
{
	return (char *)c + s->offset;
}

/* Parses an optionally negative decimal number that fills the whole string.
 * Negative numbers are read so that "-1" is reported as out of range
 * rather than as not a number. */
static int config_number(const char *v, const char **end, int64_t *out)
{
	int neg = *v == '-';
	const char *p = v + neg;
	int64_t n = 0;
	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (n > (INT64_MAX - 9) / 10)
			return -1;
		n = n * 10 + (*p - '0');
	}
	*end = p;
	*out = neg ? -n : n;
	return 0;
}

static int config_set_int(struct config *c, const struct config_setting *s, const char *v,
			  char *err, size_t errlen)
{
	const char *end;
	int64_t n;
	if (config_number(v, &end, &n) < 0 || *end || n < s->min || n > s->max) {
		util_error(err, errlen, "'%s' must be a whole number from %lld to %lld, not '%s'",
			     s->key, (long long)s->min, (long long)s->max, v);
		return -1;
	}
	*(int *)config_field(c, s) = (int)n;
	return 0;
}

static int config_set_bool(struct config *c, const struct config_setting *s, const char *v,
			   char *err, size_t errlen)
{
	int *field = config_field(c, s);
	if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "on") || !strcmp(v, "1"))
		*field = 1;
	else if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "off") || !strcmp(v, "0"))
		*field = 0;
	else {
		util_error(err, errlen, "'%s' must be yes or no, not '%s'", s->key, v);
		return -1;
	}
	return 0;
}

static int config_set_size(struct config *c, const struct config_setting *s, const char *v,
			   char *err, size_t errlen)
{
	const char *end;
	int64_t n, mult = 1;
	int ok = config_number(v, &end, &n) == 0;
	if (ok && *end) {
		if (*end == 'K' || *end == 'k')
			mult = KIB;
		else if (*end == 'M' || *end == 'm')
			mult = KIB * KIB;
		else if (*end == 'G' || *end == 'g')
			mult = GIB;
		else
			ok = 0;
		ok = ok && end[1] == '\0';
	}
	/* Range-check before multiplying so a huge number cannot overflow. */
	if (!ok || n < 0 || n > s->max / mult || n * mult < s->min) {
		util_error(err, errlen,
			     "'%s' must be a size from 1K to 1G (bytes, or with a K, M or G suffix), not '%s'",
			     s->key, v);
		return -1;
	}
	*(int64_t *)config_field(c, s) = n * mult;
	return 0;
}

static int config_set_string(struct config *c, const struct config_setting *s, const char *v,
			     char *err, size_t errlen)
{
	char **field = config_field(c, s);
	free(*field);
	*field = util_strdup(v);
	return 0;
}

static int config_is_host_char(int ch, int ipv6)
{
	if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F'))
		return 1;
	if (ipv6)
		return ch == ':' || ch == '.';
	return (ch >= 'g' && ch <= 'z') || (ch >= 'G' && ch <= 'Z') || ch == '.' || ch == '-';
}

/* "host:port" or "[v6]:port"; the host is not resolved here (binding
 * does that and reports what the resolver says). */
static int config_set_listen(struct config *c, const struct config_setting *s, const char *v,
			     char *err, size_t errlen)
{
	const char *host = v, *hend, *portp;
	int ipv6 = *v == '[';
	if (ipv6) {
		host = v + 1;
		hend = strchr(host, ']');
		if (!hend || hend[1] != ':') {
			util_error(err, errlen, "'listen' must be host:port or [ipv6]:port, not '%s'", v);
			return -1;
		}
		portp = hend + 2;
	} else {
		hend = strrchr(v, ':');
		if (!hend) {
			util_error(err, errlen, "'listen' must be host:port or [ipv6]:port, not '%s'", v);
			return -1;
		}
		if (memchr(v, ':', (size_t)(hend - v))) {
			util_error(err, errlen,
				     "'listen': an IPv6 address goes in brackets, e.g. [::1]:8080, not '%s'", v);
			return -1;
		}
		portp = hend + 1;
	}
	int ok = hend > host;
	for (const char *p = host; ok && p < hend; p++)
		ok = config_is_host_char((unsigned char)*p, ipv6);
	if (!ok) {
		util_error(err, errlen, "'listen' has a bad host in '%s'", v);
		return -1;
	}
	const char *end;
	int64_t port;
	if (config_number(portp, &end, &port) < 0 || *end || port < 1 || port > 65535) {
		util_error(err, errlen, "'listen' needs a port from 1 to 65535, not '%s'", v);
		return -1;
	}
	free(c->listen_host);
	c->listen_host = util_strndup(host, (size_t)(hend - host));
	c->listen_port = (int)port;
	return 0;
}

/* The address clients outside a proxy or load balancer use: an absolute
 * http(s) URL with a host, no query, fragment, userinfo or characters that
 * would need escaping in XML, since it is written into the WSDL as is. */
static int config_set_public_endpoint(struct config *c, const struct config_setting *s,
				      const char *v, char *err, size_t errlen)
{
	const char *rest = strncmp(v, "https://", 8) == 0  ? v + 8
			   : strncmp(v, "http://", 7) == 0 ? v + 7
							   : NULL;
	int ok = rest && *rest && *rest != '/' && !strpbrk(v, "?#@<>&\"'` \t\\");
	for (const char *p = v; ok && *p; p++)
		if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
			ok = 0;
	if (!ok) {
		util_error(err, errlen,
			   "'public_endpoint' must be an http:// or https:// URL with a host and no "
			   "query, fragment, user or spaces, such as https://publish.example.com/apubi, "
			   "not '%s'",
			   v);
		return -1;
	}
	return config_set_string(c, s, v, err, errlen);
}

static int config_set_endpoint(struct config *c, const struct config_setting *s, const char *v,
			       char *err, size_t errlen)
{
	if (v[0] != '/' || strpbrk(v, "?# \t")) {
		util_error(err, errlen,
			     "'endpoint' must be a path starting with '/' without '?', '#' or spaces, not '%s'",
			     v);
		return -1;
	}
	return config_set_string(c, s, v, err, errlen);
}

static int config_set_status(struct config *c, const struct config_setting *s, const char *v,
			     char *err, size_t errlen)
{
	if (strcmp(v, "400") != 0 && strcmp(v, "500") != 0) {
		util_error(err, errlen, "'client_fault_status' must be 400 or 500, not '%s'", v);
		return -1;
	}
	c->client_fault_status = atoi(v);
	return 0;
}

static int config_set_level(struct config *c, const struct config_setting *s, const char *v,
			    char *err, size_t errlen)
{
	int level = log_parse_level(v);
	if (level < 0) {
		util_error(err, errlen, "'level' must be error, warn, info or debug, not '%s'", v);
		return -1;
	}
	c->log_level = level;
	return 0;
}

static int config_set_log_format(struct config *c, const struct config_setting *s,
				 const char *v, char *err, size_t errlen)
{
	int format = log_parse_format(v);
	if (format < 0) {
		util_error(err, errlen, "'format' must be text or json, not '%s'", v);
		return -1;
	}
	c->log_format = format;
	return 0;
}

/* The schemes apubid can reach a remote server with (xfer_curl.c). */
static const char *const config_remote_schemes[] = { "ftp", "ftps", "sftp", "http", "https" };

static int config_is_remote(const char *scheme)
{
	for (size_t i = 0; i < sizeof config_remote_schemes / sizeof config_remote_schemes[0]; i++)
		if (strcmp(scheme, config_remote_schemes[i]) == 0)
			return 1;
	return 0;
}

/* Makes a local path absolute against the working directory; the path is
 * otherwise kept as written. Returns a malloc'ed string, or NULL with err
 * starting with `what`. */
static char *config_absolute(const char *what, const char *v, char *err, size_t errlen)
{
	char cwd[4096];
	if (v[0] == '/')
		return util_strdup(v);
	if (!getcwd(cwd, sizeof cwd)) {
		util_error(err, errlen, "%s: cannot resolve '%s' against the working directory: %s",
			     what, v, strerror(errno));
		return NULL;
	}
	return util_printf("%s/%s", cwd, v);
}

/* Writes a parsed URL whose path is already normalised in the canonical
 * shape; with `userinfo`, its user and password (re-encoded) are kept. */
static char *config_url(const struct url *u, int userinfo)
{
	char *enc = url_encode_path(u->path);
	char *ui = NULL, port[16] = "";
	if (userinfo && u->user) {
		char *user = url_encode_userinfo(u->user);
		char *pw = u->password ? url_encode_userinfo(u->password) : NULL;
		ui = pw ? util_printf("%s:%s@", user, pw) : util_printf("%s@", user);
		free(user);
		free(pw);
	}
	if (u->port)
		snprintf(port, sizeof port, ":%d", u->port);
	int v6 = strchr(u->host, ':') != NULL;
	char *out = util_printf("%s://%s%s%s%s%s%s", u->scheme, ui ? ui : "", v6 ? "[" : "",
				u->host, v6 ? "]" : "", port, enc);
	free(ui);
	free(enc);
	return out;
}

/* Brings a prefix to its canonical shape (see the top of the file). On
 * success *out is the canonical URL and *u its parse, with u->path the
 * decoded normalised path ending in '/' (its user and password are kept
 * for the caller to check, but never reach *out); on failure both are
 * empty and err starts with `what`. */
static int config_prefix(const char *what, const char *v, char **out, struct url *u, char *err,
			 size_t errlen)
{
	char e[256];
	char *norm = NULL;
	int dir;
	*out = NULL;
	memset(u, 0, sizeof *u);
	if (url_is_absolute(v)) {
		if (url_parse(v, u, e, sizeof e) < 0) {
			util_error(err, errlen, "%s: %s", what, e);
			return -1;
		}
		if (strcmp(u->scheme, "file") == 0) {
			if (*u->host && strcmp(u->host, "localhost") != 0) {
				util_error(err, errlen, "%s: a file:// URL cannot name a remote host ('%s')",
					     what, u->host);
				goto fail;
			}
			if (u->path[0] != '/') {
				util_error(err, errlen, "%s: a file:// URL needs an absolute path", what);
				goto fail;
			}
			u->host[0] = '\0'; /* file://localhost/x is file:///x */
		}
	} else {
		char *abs = config_absolute(what, v, err, errlen);
		if (!abs)
			return -1;
		u->scheme = util_strdup("file");
		u->host = util_strdup("");
		u->path = abs;
	}
	if (url_path_normalize(u->path[0] == '/' ? u->path + 1 : u->path, &norm, &dir, e,
			       sizeof e) < 0) {
		util_error(err, errlen, "%s: %s", what, e);
		goto fail;
	}
	free(u->path);
	u->path = *norm ? util_printf("/%s/", norm) : util_strdup("/");
	free(norm);
	*out = config_url(u, 0);
	return 0;

fail:
	url_free(u);
	return -1;
}

static int config_add_prefix(const char *what, char **list, int *n, const char *v, char *err,
			     size_t errlen)
{
	struct url u;
	char *p;
	if (*n >= CONFIG_MAX_PREFIXES) {
		util_error(err, errlen, "%s: at most %d prefixes are allowed", what,
			     CONFIG_MAX_PREFIXES);
		return -1;
	}
	if (config_prefix(what, v, &p, &u, err, errlen) < 0)
		return -1;
	url_free(&u);
	list[(*n)++] = p;
	return 0;
}

static int config_set_source_allow(struct config *c, const struct config_setting *s,
				   const char *v, char *err, size_t errlen)
{
	return config_add_prefix("[source] allow", c->source_allow, &c->nsource_allow, v, err,
				 errlen);
}

static int config_set_dest_allow(struct config *c, const struct config_setting *s,
				 const char *v, char *err, size_t errlen)
{
	return config_add_prefix("[destination] allow", c->dest_allow, &c->ndest_allow, v, err,
				 errlen);
}

static int config_set_dest_root(struct config *c, const struct config_setting *s, const char *v,
				char *err, size_t errlen)
{
	struct url u;
	char *p;
	if (config_prefix("destination root", v, &p, &u, err, errlen) < 0)
		return -1;
	/* A root that no backend can write to must be refused at start-up,
	 * not discovered by the first task. */
	int local = strcmp(u.scheme, "file") == 0;
	if (!local && !config_is_remote(u.scheme)) {
		util_error(err, errlen,
			     "destination root: unsupported scheme '%s' (supported: file, ftp, ftps, "
			     "sftp, http, https)",
			     u.scheme);
		goto fail;
	}
	/* Publishing into a machine's filesystem root is refused; on a remote
	 * server "/" is often the account's own (chrooted) home, a sensible
	 * root. */
	if (local && strcmp(u.path, "/") == 0) {
		util_error(err, errlen, "destination root: '/' cannot be the root");
		goto fail;
	}
	free(c->dest_root);
	free(c->dest_root_path);
	free(c->dest_root_auth);
	c->dest_root = p;
	c->dest_root_path = local ? util_strndup(u.path, strlen(u.path) - 1) : NULL;
	c->dest_root_auth = local ? util_strdup(p) : config_url(&u, 1);
	url_free(&u);
	return 0;
fail:
	free(p);
	url_free(&u);
	return -1;
}

static int config_set_public_url(struct config *c, const struct config_setting *s,
				 const char *v, char *err, size_t errlen)
{
	struct url u;
	char *p;
	if (!url_is_absolute(v)) {
		util_error(err, errlen, "public_url must be an absolute http:// or https:// URL, not '%s'",
			     v);
		return -1;
	}
	if (config_prefix("public_url", v, &p, &u, err, errlen) < 0)
		return -1;
	if (strcmp(u.scheme, "http") != 0 && strcmp(u.scheme, "https") != 0) {
		util_error(err, errlen, "public_url must be an http:// or https:// URL");
		goto fail;
	}
	/* The public URL is handed to every client: credentials in it would
	 * be published with each asset. */
	if (u.user) {
		util_error(err, errlen, "public_url must not carry credentials");
		goto fail;
	}
	free(c->public_url);
	c->public_url = p;
	url_free(&u);
	return 0;
fail:
	free(p);
	url_free(&u);
	return -1;
}

/* A file the transfers will open: a relative path is made absolute against
 * the working directory, like every other path in the file, and the file
 * is opened once, so that a missing or unreadable file fails `apubid -n`
 * instead of the first remote task. */
static int config_set_file(struct config *c, const struct config_setting *s, const char *v,
			   char *err, size_t errlen)
{
	char **field = config_field(c, s);
	struct stat st;
	char *path = config_absolute(s->key, v, err, errlen);
	if (!path)
		return -1;
	if (c->reread && !(s->flags & CONFIG_RELOAD)) {
		/* Only a restart opens it again (see config_reread). */
		free(*field);
		*field = path;
		return 0;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	int e = fd < 0 ? errno : 0;
	if (fd >= 0 && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode))
		e = EISDIR;
	if (fd >= 0)
		close(fd);
	if (e) {
		util_error(err, errlen, "cannot read %s %s: %s", s->key, path, strerror(e));
		free(path);
		return -1;
	}
	free(*field);
	*field = path;
	return 0;
}

/* One [credentials] url: the user (and password) apubid logs in with on
 * one server, named by scheme, host and port. Kept as written, since only
 * the transfers read it; no message here repeats the value, as it holds a
 * password. */
static int config_set_credentials(struct config *c, const struct config_setting *s,
				  const char *v, char *err, size_t errlen)
{
	const char *what = "[credentials] url";
	struct url u, o;
	char e[256];
	int rc = -1;
	if (c->ncredentials >= CONFIG_MAX_PREFIXES) {
		util_error(err, errlen, "%s: at most %d entries are allowed", what,
			     CONFIG_MAX_PREFIXES);
		return -1;
	}
	if (url_parse(v, &u, e, sizeof e) < 0) {
		util_error(err, errlen, "%s: %s", what, e);
		return -1;
	}
	if (!config_is_remote(u.scheme)) {
		util_error(err, errlen,
			     "%s: unsupported scheme '%s' (supported: ftp, ftps, sftp, http, https)",
			     what, u.scheme);
		goto out;
	}
	if (!u.user || !*u.user) {
		util_error(err, errlen, "%s: needs a user (scheme://user:password@host[:port]/)",
			     what);
		goto out;
	}
	/* The entry is matched on the server alone: a path would look like
	 * it narrows the entry down, and it would not. */
	if (*u.path && strcmp(u.path, "/") != 0) {
		util_error(err, errlen,
			     "%s: names a server, not a path (scheme://user:password@host[:port]/)",
			     what);
		goto out;
	}
	for (int i = 0; i < c->ncredentials; i++) {
		if (url_parse(c->credentials[i], &o, NULL, 0) < 0)
			continue;
		int same = strcmp(o.scheme, u.scheme) == 0 && strcmp(o.host, u.host) == 0 &&
			   url_default_port(&o) == url_default_port(&u);
		url_free(&o);
		if (same) {
			int v6 = strchr(u.host, ':') != NULL;
			util_error(err, errlen, "%s: a second entry for %s://%s%s%s:%d/", what,
				     u.scheme, v6 ? "[" : "", u.host, v6 ? "]" : "", url_default_port(&u));
			goto out;
		}
	}
	c->credentials[c->ncredentials++] = util_strdup(v);
	rc = 0;
out:
	url_free(&u);
	return rc;
}

/* The account apubid drops to after binding: it must exist now, so that
 * `apubid -n` catches a typo. */
static int config_set_user(struct config *c, const struct config_setting *s, const char *v,
			   char *err, size_t errlen)
{
	errno = 0;
	struct passwd *pw = getpwnam(v);
	if (!pw) {
		util_error(err, errlen, "user '%s' does not exist%s%s", v, errno ? ": " : "",
			     errno ? strerror(errno) : "");
		return -1;
	}
	if (pw->pw_uid == 0) {
		util_error(err, errlen, "user '%s' is root: name the account apubid should run as", v);
		return -1;
	}
	return config_set_string(c, s, v, err, errlen);
}

/* A password: kept as written, never repeated in a message. */
static int config_set_secret(struct config *c, const struct config_setting *s, const char *v,
			     char *err, size_t errlen)
{
	return config_set_string(c, s, v, err, errlen);
}

/* A PostgreSQL connection URI (libpq's own syntax; libpq reads the rest).
 * It may hold a password, so a refusal does not repeat it. */
static int config_set_store_url(struct config *c, const struct config_setting *s, const char *v,
				char *err, size_t errlen)
{
	if (strncmp(v, "postgresql://", 13) != 0 && strncmp(v, "postgres://", 11) != 0) {
		util_error(err, errlen,
			   "'url' must be a PostgreSQL connection URI (postgresql://user@host/db)");
		return -1;
	}
	return config_set_string(c, s, v, err, errlen);
}

/* The realm goes into quoted WWW-Authenticate parameters and the
 * "user:realm:HA1" lines of the digest file. */
static int config_set_realm(struct config *c, const struct config_setting *s, const char *v,
			    char *err, size_t errlen)
{
	int ok = strlen(v) <= 64;
	for (const char *p = v; ok && *p; p++)
		ok = (unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f && !strchr("\"\\:", *p);
	if (!ok) {
		util_error(err, errlen,
			     "'realm' must be up to 64 printable ASCII characters without '\"', '\\' "
			     "or ':', not '%s'",
			     v);
		return -1;
	}
	return config_set_string(c, s, v, err, errlen);
}

/* "basic", "digest" or both, separated by commas or spaces. */
static int config_set_methods(struct config *c, const struct config_setting *s, const char *v,
			      char *err, size_t errlen)
{
	int m = 0;
	const char *p = v;
	while (*p) {
		size_t n = strcspn(p, ", \t");
		if (n == 6 && strncasecmp(p, "digest", 6) == 0)
			m |= AUTH_DIGEST;
		else if (n == 5 && strncasecmp(p, "basic", 5) == 0)
			m |= AUTH_BASIC;
		else if (n) {
			util_error(err, errlen, "'methods' lists basic and/or digest, not '%s'", v);
			return -1;
		}
		p += n;
		p += strspn(p, ", \t");
	}
	if (!m) {
		util_error(err, errlen, "'methods' lists basic and/or digest, not '%s'", v);
		return -1;
	}
	c->auth_methods = m;
	return 0;
}

/* [log] file: a relative path is made absolute like every other path.
 * The file is opened by main (log_open), after the configuration is
 * checked, so that `apubid -n` creates nothing. */
static int config_set_log_file(struct config *c, const struct config_setting *s, const char *v,
			       char *err, size_t errlen)
{
	char **field = config_field(c, s);
	char *path = config_absolute("[log] file", v, err, errlen);
	if (!path)
		return -1;
	free(*field);
	*field = path;
	return 0;
}

/* [notify] url: an http or https URL with a host, kept as written (its
 * userinfo, if any, is what libcurl authenticates with). It may hold a
 * password, so no message repeats it. */
static int config_set_notify_url(struct config *c, const struct config_setting *s,
				 const char *v, char *err, size_t errlen)
{
	struct url u;
	char e[256];
	if (url_parse(v, &u, e, sizeof e) < 0) {
		util_error(err, errlen, "[notify] url: %s", e);
		return -1;
	}
	int ok = strcmp(u.scheme, "http") == 0 || strcmp(u.scheme, "https") == 0;
	url_free(&u);
	if (!ok) {
		util_error(err, errlen, "[notify] url must be an http:// or https:// URL");
		return -1;
	}
	return config_set_string(c, s, v, err, errlen);
}

/* [staging] rule: one scripted outcome, parsed by rules.c (whose
 * messages name the rule); `enabled` is checked once the whole file is
 * read, since it may come after the rules. */
static int config_set_rule(struct config *c, const struct config_setting *s, const char *v,
			   char *err, size_t errlen)
{
	return rules_add(&c->rules, v, err, errlen);
}

/* Checks what no single setting can: settings that only make sense
 * together, then loads the credentials files. */
static int config_finish(struct config *c, char *err, size_t errlen)
{
	/* Copies between two remote ends are spooled beside the SQLite store
	 * unless told otherwise. */
	if (!c->spool_dir && c->store_path) {
		const char *slash = strrchr(c->store_path, '/');
		c->spool_dir = slash ? util_strndup(c->store_path, slash == c->store_path
									? 1
									: (size_t)(slash - c->store_path))
				     : util_strdup(".");
	}
	if (!c->tls_cert_file && (c->tls_key_file || c->tls_key_password || c->tls_client_ca)) {
		util_error(err, errlen, "[tls] %s needs cert_file",
			     c->tls_key_file ? "key_file" : c->tls_key_password ? "key_password" : "client_ca");
		return -1;
	}
	int files = (c->auth_users_file ? AUTH_BASIC : 0) | (c->auth_digest_file ? AUTH_DIGEST : 0);
	if (!c->auth_methods) {
		c->auth_methods = files;
	} else if (c->auth_methods != files) {
		int m = c->auth_methods;
		util_error(err, errlen, "[auth] %s",
			     (m & AUTH_BASIC) && !(files & AUTH_BASIC)   ? "methods has basic but users_file is not set"
			     : (m & AUTH_DIGEST) && !(files & AUTH_DIGEST) ? "methods has digest but digest_file is not set"
			     : (files & AUTH_BASIC) && !(m & AUTH_BASIC)   ? "users_file is set but methods has no basic"
									   : "digest_file is set but methods has no digest");
		return -1;
	}
	/* A configuration read again at run time leaves the files to the
	 * next restart (config_reread). */
	if (c->auth_methods && !c->reread) {
		char e[768];
		c->auth = auth_load(c->auth_users_file, c->auth_digest_file, c->auth_realm,
				    c->auth_methods, e, sizeof e);
		if (!c->auth) {
			util_error(err, errlen, "[auth] %s", e);
			return -1;
		}
	}
	return 0;
}

static char *config_trim(char *s)
{
	char *e = s + strlen(s);
	while (*s == ' ' || *s == '\t' || *s == '\r')
		s++;
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		e--;
	*e = '\0';
	return s;
}

static const struct config_setting *config_find(const char *section, const char *key)
{
	for (size_t i = 0; i < CONFIG_NSETTINGS; i++)
		if (strcmp(config_settings[i].section, section) == 0 &&
		    (!key || strcmp(config_settings[i].key, key) == 0))
			return &config_settings[i];
	return NULL;
}

/* Parses one "key = value" line of `section`; `seen` records the line each
 * setting was first set on. */
static int config_line(struct config *c, const char *section, char *l, int line, int *seen,
		       char *err, size_t errlen)
{
	char *eq = strchr(l, '=');
	if (!eq) {
		util_error(err, errlen, "expected 'key = value' or '[section]'");
		return -1;
	}
	*eq = '\0';
	char *key = config_trim(l), *v = config_trim(eq + 1);
	if (!section) {
		util_error(err, errlen, "'%s' is outside any section", key);
		return -1;
	}
	const struct config_setting *s = config_find(section, key);
	if (!s) {
		util_error(err, errlen, "unknown key '%s' in [%s]", key, section);
		return -1;
	}
	size_t i = (size_t)(s - config_settings);
	if (seen[i] && !(s->flags & CONFIG_REPEAT)) {
		util_error(err, errlen, "'%s' is set twice in [%s] (first on line %d)", key,
			     section, seen[i]);
		return -1;
	}
	if (!*v) {
		util_error(err, errlen, "'%s' has an empty value", key);
		return -1;
	}
	for (const char *p = v; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			util_error(err, errlen, "control character in the value of '%s'", key);
			return -1;
		}
	}
	if (!seen[i])
		seen[i] = line;
	if (s->set(c, s, v, err, errlen) < 0)
		return -1;
	/* For paths.c's messages about the directories these name. */
	if (s->set == config_set_source_allow)
		c->source_allow_line[c->nsource_allow - 1] = line;
	else if (s->set == config_set_dest_root)
		c->dest_root_line = line;
	else if (s->offset == F(store_path) && s->set == config_set_string)
		c->store_path_line = line;
	else if (s->offset == F(spool_dir) && s->set == config_set_string)
		c->spool_line = line;
	return 0;
}

/* config_parse, or with `reread` the variant config_reread needs. */
static int config_parse_text(struct config *c, const char *text, const char *name, int reread,
			     char *err, size_t errlen)
{
	int seen[CONFIG_NSETTINGS] = { 0 };
	char e[512];
	const char *section = NULL;
	int line = 0;

	memset(c, 0, sizeof *c);
	c->reread = reread;
	c->name = util_strdup(name);
	for (size_t i = 0; i < CONFIG_NSETTINGS; i++) {
		const struct config_setting *s = &config_settings[i];
		if (s->def && s->set(c, s, s->def, e, sizeof e) < 0) {
			util_error(err, errlen, "%s: built-in default: %s", name, e);
			goto fail;
		}
	}

	const char *p = text;
	if (strncmp(p, "\xef\xbb\xbf", 3) == 0) /* a UTF-8 BOM some editors add */
		p += 3;
	while (*p) {
		const char *nl = strchrnul(p, '\n');
		char *buf = util_strndup(p, (size_t)(nl - p));
		char *l = config_trim(buf);
		int rc = 0;
		p = *nl ? nl + 1 : nl;
		line++;
		if (*l == '\0' || *l == '#' || *l == ';') {
			/* a blank line or a comment */
		} else if (*l == '[') {
			size_t n = strlen(l);
			const struct config_setting *s = NULL;
			char *inner = l + 1;
			if (l[n - 1] != ']') {
				util_error(e, sizeof e, "a section header must end with ']'");
				rc = -1;
			} else {
				l[n - 1] = '\0';
				inner = config_trim(inner);
				s = config_find(inner, NULL);
				if (!s) {
					util_error(e, sizeof e, "unknown section [%s]", inner);
					rc = -1;
				} else {
					section = s->section;
				}
			}
		} else {
			rc = config_line(c, section, l, line, seen, e, sizeof e);
		}
		free(buf);
		if (rc < 0) {
			util_error(err, errlen, "%s:%d: %s", name, line, e);
			goto fail;
		}
	}

	for (size_t i = 0; i < CONFIG_NSETTINGS; i++) {
		const struct config_setting *s = &config_settings[i];
		if ((s->flags & CONFIG_REQUIRED) && !seen[i]) {
			util_error(err, errlen, "%s: [%s] %s is required", name, s->section, s->key);
			goto fail;
		}
	}
	/* Scripted outcomes make apubid lie to its client on purpose: they
	 * must never be switched on by a stray line in production. */
	if (c->rules && !c->staging_enabled) {
		size_t i = (size_t)(config_find("staging", "rule") - config_settings);
		util_error(err, errlen,
			     "%s:%d: [staging] rule needs 'enabled = yes' in [staging]: scripted "
			     "outcomes are for staging and certification only",
			     name, seen[i]);
		goto fail;
	}
	if (config_finish(c, e, sizeof e) < 0) {
		util_error(err, errlen, "%s: %s", name, e);
		goto fail;
	}
	return 0;

fail:
	config_free(c);
	return -1;
}

int config_parse(struct config *c, const char *text, const char *name, char *err, size_t errlen)
{
	return config_parse_text(c, text, name, 0, err, errlen);
}

static int config_read(struct config *c, const char *path, int reread, char *err, size_t errlen)
{
	if (!path)
		return config_parse_text(c, config_default_text, "(built-in defaults)", reread, err,
					 errlen);

	memset(c, 0, sizeof *c);
	FILE *f = fopen(path, "r");
	if (!f) {
		util_error(err, errlen, "cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	char *text = util_malloc(CONFIG_MAX_FILE + 1);
	size_t n = fread(text, 1, CONFIG_MAX_FILE + 1, f);
	int rc = -1;
	if (ferror(f))
		util_error(err, errlen, "cannot read %s: %s", path, strerror(errno));
	else if (n > CONFIG_MAX_FILE)
		util_error(err, errlen, "%s: larger than %d bytes", path, CONFIG_MAX_FILE);
	else if (memchr(text, '\0', n))
		util_error(err, errlen, "%s: contains a NUL byte (not a text file?)", path);
	else
		rc = 0;
	fclose(f);
	if (rc == 0) {
		text[n] = '\0';
		rc = config_parse_text(c, text, path, reread, err, errlen);
	}
	free(text);
	return rc;
}

int config_load(struct config *c, const char *path, char *err, size_t errlen)
{
	return config_read(c, path, 0, err, errlen);
}

int config_reread(struct config *c, const char *path, char *err, size_t errlen)
{
	return config_read(c, path, 1, err, errlen);
}

/* How a setting's value is stored, told by its setter: what config_same
 * compares, config_reload copies and config_each calls its type. */
enum config_kind {
	CK_INT,      /* an int at the offset */
	CK_SIZE,     /* an int64_t at the offset */
	CK_STRING,   /* a char * at the offset, NULL when unset */
	CK_LISTEN,   /* listen_host and listen_port */
	CK_SOURCES,  /* source_allow[] */
	CK_DESTS,    /* dest_allow[] */
	CK_CREDS,    /* credentials[] */
	CK_RULES,    /* rules, a struct rules * */
};

static enum config_kind config_kind(const struct config_setting *s)
{
	if (s->set == config_set_int || s->set == config_set_bool || s->set == config_set_status ||
	    s->set == config_set_level || s->set == config_set_methods ||
	    s->set == config_set_log_format)
		return CK_INT;
	if (s->set == config_set_size)
		return CK_SIZE;
	if (s->set == config_set_listen)
		return CK_LISTEN;
	if (s->set == config_set_source_allow)
		return CK_SOURCES;
	if (s->set == config_set_dest_allow)
		return CK_DESTS;
	if (s->set == config_set_credentials)
		return CK_CREDS;
	if (s->set == config_set_rule)
		return CK_RULES;
	return CK_STRING; /* the root is compared through dest_root_auth */
}

static int config_same_str(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

static int config_same_list(char *const *a, int na, char *const *b, int nb)
{
	if (na != nb)
		return 0;
	for (int i = 0; i < na; i++)
		if (strcmp(a[i], b[i]) != 0)
			return 0;
	return 1;
}

/* 1 when setting `s` has the same value in both configurations. */
static int config_same(const struct config *a, const struct config *b,
		       const struct config_setting *s)
{
	const char *pa = (const char *)a + s->offset, *pb = (const char *)b + s->offset;
	switch (config_kind(s)) {
	case CK_INT:
		return *(const int *)pa == *(const int *)pb;
	case CK_SIZE:
		return *(const int64_t *)pa == *(const int64_t *)pb;
	case CK_STRING:
		return config_same_str(*(char *const *)pa, *(char *const *)pb);
	case CK_LISTEN:
		return a->listen_port == b->listen_port &&
		       config_same_str(a->listen_host, b->listen_host);
	case CK_SOURCES:
		return config_same_list(a->source_allow, a->nsource_allow, b->source_allow,
					b->nsource_allow);
	case CK_DESTS:
		return config_same_list(a->dest_allow, a->ndest_allow, b->dest_allow,
					b->ndest_allow);
	case CK_CREDS:
		return config_same_list(a->credentials, a->ncredentials, b->credentials,
					b->ncredentials);
	case CK_RULES:
		return rules_same(a->rules, b->rules);
	}
	return 1;
}

/* Appends "section.key" to a comma-separated list in buf. */
static void config_name_add(char *buf, size_t len, const struct config_setting *s)
{
	size_t n = strlen(buf);
	if (n + 1 < len)
		snprintf(buf + n, len - n, "%s%s.%s", n ? ", " : "", s->section, s->key);
}

int config_reload(struct config *live, const struct config *fresh, char *applied,
		  size_t appliedlen, char *restart, size_t restartlen)
{
	int n = 0;
	if (appliedlen)
		applied[0] = '\0';
	if (restartlen)
		restart[0] = '\0';
	for (size_t i = 0; i < CONFIG_NSETTINGS; i++) {
		const struct config_setting *s = &config_settings[i];
		if (config_same(live, fresh, s))
			continue;
		enum config_kind k = config_kind(s);
		if (!(s->flags & CONFIG_RELOAD) || (k != CK_INT && k != CK_STRING && k != CK_RULES)) {
			config_name_add(restart, restartlen, s);
			continue;
		}
		if (k == CK_RULES) {
			/* No other thread reads live->rules: requests use the
			 * set main.c installs with rules_set, so the old one
			 * can go at once. */
			rules_free(live->rules);
			live->rules = rules_copy(fresh->rules);
			config_name_add(applied, appliedlen, s);
			n++;
			continue;
		}
		void *field = config_field(live, s);
		const void *from = (const char *)fresh + s->offset;
		/* Other threads read these fields without a lock: each is
		 * replaced by one atomic store, and an old string is kept
		 * until exit for a reader that still holds it. */
		if (k == CK_INT) {
			__atomic_store_n((int *)field, *(const int *)from, __ATOMIC_RELEASE);
		} else {
			char *old = *(char **)field;
			__atomic_store_n((char **)field, util_strdup(*(char *const *)from),
					 __ATOMIC_RELEASE);
			if (old) {
				struct config_grave *g = util_malloc(sizeof *g);
				g->s = old;
				g->next = live->grave;
				live->grave = g;
			}
		}
		config_name_add(applied, appliedlen, s);
		n++;
	}
	return n;
}

void config_each(void (*fn)(void *arg, const char *section, const char *key, const char *type,
			    const char *range, const char *def, int reloads),
		 void *arg)
{
	for (size_t i = 0; i < CONFIG_NSETTINGS; i++) {
		const struct config_setting *s = &config_settings[i];
		char range[64] = "";
		const char *type;
		switch (config_kind(s)) {
		case CK_INT:
			type = s->set == config_set_bool     ? "boolean"
			       : s->set == config_set_level  ? "level"
			       : s->set == config_set_log_format ? "format"
			       : s->set == config_set_status ? "status"
			       : s->set == config_set_methods ? "methods"
							      : "integer";
			if (s->set == config_set_int)
				snprintf(range, sizeof range, "%lld to %lld", (long long)s->min,
					 (long long)s->max);
			break;
		case CK_SIZE:
			type = "size";
			snprintf(range, sizeof range, "1K to 1G");
			break;
		case CK_LISTEN:
			type = "address";
			break;
		case CK_STRING:
			type = s->set == config_set_file || s->set == config_set_log_file ? "path"
			       : s->offset == F(store_path) || s->offset == F(spool_dir)     ? "path"
			       : s->set == config_set_dest_root                              ? "prefix"
			       : s->set == config_set_public_url || s->set == config_set_notify_url ||
					 s->set == config_set_public_endpoint ||
					 s->set == config_set_store_url
				       ? "URL"
				       : "string";
			break;
		case CK_SOURCES:
		case CK_DESTS:
			type = "prefix";
			break;
		case CK_RULES:
			type = "rule";
			break;
		default:
			type = "URL";
			break;
		}
		fn(arg, s->section, s->key, type, range, s->def ? s->def : "",
		   (s->flags & CONFIG_RELOAD) != 0);
	}
}

void config_free(struct config *c)
{
	if (!c)
		return;
	free(c->listen_host);
	free(c->endpoint);
	free(c->public_endpoint);
	free(c->store_path);
	free(c->store_url);
	free(c->spool_dir);
	for (int i = 0; i < c->nsource_allow; i++)
		free(c->source_allow[i]);
	free(c->dest_root);
	free(c->dest_root_path);
	free(c->dest_root_auth);
	for (int i = 0; i < c->ndest_allow; i++)
		free(c->dest_allow[i]);
	free(c->public_url);
	free(c->ca_file);
	free(c->ssh_private_key);
	free(c->ssh_public_key);
	free(c->ssh_known_hosts);
	for (int i = 0; i < c->ncredentials; i++)
		free(c->credentials[i]);
	free(c->user);
	free(c->tls_cert_file);
	free(c->tls_key_file);
	if (c->tls_key_password)
		memset(c->tls_key_password, 0, strlen(c->tls_key_password));
	free(c->tls_key_password);
	free(c->tls_client_ca);
	free(c->auth_users_file);
	free(c->auth_digest_file);
	free(c->auth_realm);
	auth_free(c->auth);
	free(c->log_file);
	/* The notification URL may hold a password. */
	if (c->notify_url)
		memset(c->notify_url, 0, strlen(c->notify_url));
	free(c->notify_url);
	rules_free(c->rules);
	free(c->name);
	while (c->grave) {
		struct config_grave *g = c->grave;
		c->grave = g->next;
		memset(g->s, 0, strlen(g->s));
		free(g->s);
		free(g);
	}
	memset(c, 0, sizeof *c);
}

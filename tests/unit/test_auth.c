/*
 * test_auth.c - auth.c and the [auth], [tls] and [server] user settings:
 * what the credentials files may hold and who may read them, Basic
 * against crypt(3) hashes, Digest (SHA-256, qop auth) with its nonces,
 * counts and stale answers, the challenges of a 401, and the refusals of
 * settings that only make sense together.
 */
#include "apubid.h"
#include "harness.h"

#include <crypt.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

static char dir[] = "/tmp/apubid-test-auth-XXXXXX";
static char err[1024];

/* The password "pa:ss w0rd" hashed by `openssl passwd -6 -salt Zs8GfJ3r`. */
static const char *sha512_hash =
	"$6$Zs8GfJ3r$8zr//1ED.uLnBTRCgooOT8mL91tySFzdLDtxkKOyck5EY.8oriMaAAWGD.lDsXqm5mJKqLlqAwGHL7df6x2S0/";

/* Writes `text` to dir/name with `mode`; returns the malloc'ed path. */
static char *file(const char *name, const char *text, mode_t mode)
{
	char *path = util_printf("%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
	return path;
}

static char *yescrypt(const char *password)
{
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data cd;
	memset(&cd, 0, sizeof cd);
	if (!crypt_gensalt_rn("$y$", 0, NULL, 0, salt, sizeof salt))
		return NULL;
	const char *h = crypt_rn(password, salt, &cd, sizeof cd);
	return h ? util_strdup(h) : NULL;
}

static void sha256_hex(const char *s, char out[65])
{
	unsigned char md[32];
	unsigned int n;
	EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL);
	for (int i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
}

static char *ha1_line(const char *user, const char *realm, const char *password)
{
	char *in = util_printf("%s:%s:%s", user, realm, password);
	char hex[65];
	sha256_hex(in, hex);
	free(in);
	return util_printf("%s:%s:%s\n", user, realm, hex);
}

static char *basic_header(const char *userpass)
{
	unsigned char out[512];
	int n = EVP_EncodeBlock(out, (const unsigned char *)userpass, (int)strlen(userpass));
	return util_printf("Basic %.*s", n, out);
}

/* Collected challenges of one 401. */
static char challenges[4][512];
static int nchallenges;

static int collect(void *arg, const char *value)
{
	(void)arg;
	if (nchallenges < 4)
		snprintf(challenges[nchallenges++], sizeof challenges[0], "%s", value);
	return 0;
}

/* The value of name="..." in a challenge, copied into out. */
static int param(const char *challenge, const char *name, char *out, size_t len)
{
	char *key = util_printf("%s=\"", name);
	const char *p = strstr(challenge, key);
	size_t kl = strlen(key);
	free(key);
	if (!p)
		return -1;
	p += kl;
	size_t n = strcspn(p, "\"");
	snprintf(out, len, "%.*s", (int)n, p);
	return 0;
}

static char *digest_header(const char *user, const char *realm, const char *password,
			   const char *nonce, const char *opaque, const char *nc, const char *method,
			   const char *uri, const char *algorithm)
{
	char ha1[65], ha2[65], resp[65];
	char *s = util_printf("%s:%s:%s", user, realm, password);
	sha256_hex(s, ha1);
	free(s);
	s = util_printf("%s:%s", method, uri);
	sha256_hex(s, ha2);
	free(s);
	s = util_printf("%s:%s:%s:%s:%s:%s", ha1, nonce, nc, "0a4f113b", "auth", ha2);
	sha256_hex(s, resp);
	free(s);
	return util_printf("Digest username=\"%s\", realm=\"%s\", nonce=\"%s\", uri=\"%s\", "
			   "algorithm=%s, qop=auth, nc=%s, cnonce=\"0a4f113b\", "
			   "response=\"%s\", opaque=\"%s\"",
			   user, realm, nonce, uri, algorithm, nc, resp, opaque);
}

/* Loads a users file with one entry `line`, expecting a refusal mentioning `want`. */
static int users_refused(const char *text, mode_t mode, const char *want)
{
	char *path = file("users", text, mode);
	struct auth *a = auth_load(path, NULL, "apubid", AUTH_BASIC, err, sizeof err);
	free(path);
	auth_free(a);
	if (a || !strstr(err, want)) {
		fprintf(stderr, "  [%s] gave \"%s\"; wanted \"%s\"\n", text, a ? "(loaded)" : err, want);
		return 0;
	}
	return 1;
}

static void test_crypt_verify_matches_only_the_password(void)
{
	CHECK(auth_crypt_verify("pa:ss w0rd", sha512_hash));
	CHECK(!auth_crypt_verify("pa:ss w0rd ", sha512_hash));
	CHECK(!auth_crypt_verify("", sha512_hash));
	char *y = yescrypt("secret");
	CHECK(y && strncmp(y, "$y$", 3) == 0);
	CHECK(auth_crypt_verify("secret", y));
	CHECK(!auth_crypt_verify("Secret", y));
	CHECK(!auth_crypt_verify("secret", "*"));
	free(y);
}

static void test_users_file_must_be_private(void)
{
	char *text = util_printf("alice:%s\n", sha512_hash);
	CHECK(users_refused(text, 0644, "open to other users (mode 644)"));
	CHECK(users_refused(text, 0604, "open to other users"));
	CHECK(users_refused(text, 0660, "open to other users"));
	char *path = file("users", text, 0640);
	struct auth *a = auth_load(path, NULL, "apubid", AUTH_BASIC, err, sizeof err);
	CHECK(a != NULL);
	auth_free(a);
	free(path);
	free(text);
}

static void test_users_file_refuses_bad_lines_and_weak_hashes(void)
{
	CHECK(users_refused("alice\n", 0600, "line 1: expected user:hash"));
	CHECK(users_refused("# only a comment\n\n", 0600, "has no user"));
	CHECK(users_refused(":$6$x$y\n", 0600, "line 1: expected user:hash"));
	/* DES and MD5 crypt are legacy methods. */
	CHECK(users_refused("alice:abJnggxhB/yWI\n", 0600, "DES and MD5 are refused"));
	CHECK(users_refused("alice:$1$abc$Ikl3c3y6eWZkq1O8ByN2a/\n", 0600, "DES and MD5 are refused"));
	CHECK(users_refused("alice:plaintext\n", 0600, "not a crypt(3) hash"));
	char *two = util_printf("# users\nalice:%s\r\nalice:%s\n", sha512_hash, sha512_hash);
	CHECK(users_refused(two, 0600, "line 3: user 'alice' appears twice"));
	free(two);
	/* A refusal never repeats the hash. */
	CHECK(users_refused("bob:$1$abc$Ikl3c3y6eWZkq1O8ByN2a/\n", 0600, "user 'bob'"));
	CHECK(!strstr(err, "Ikl3c3y6"));
}

static void test_basic_accepts_the_right_password_only(void)
{
	char *y = yescrypt("s3cret");
	char *text = util_printf("# comment\nalice:%s\nbob:%s\n", sha512_hash, y);
	char *path = file("users", text, 0600);
	struct auth *a = auth_load(path, NULL, "apubid", AUTH_BASIC, err, sizeof err);
	CHECK(a != NULL);
	char user[AUTH_USER_MAX], why[160];
	char *h = basic_header("alice:pa:ss w0rd");
	CHECK(auth_check(a, h, "POST", "/apubi", user, sizeof user, why, sizeof why) == AUTH_OK);
	CHECK_STR(user, "alice");
	/* Again: now from the cache, same answer. */
	CHECK(auth_check(a, h, "POST", "/apubi", user, sizeof user, why, sizeof why) == AUTH_OK);
	free(h);
	h = basic_header("bob:s3cret");
	CHECK(auth_check(a, h, "GET", "/apubi?wsdl", user, sizeof user, why, sizeof why) == AUTH_OK);
	free(h);
	h = basic_header("alice:pa:ss w0rD");
	CHECK(auth_check(a, h, "POST", "/apubi", user, sizeof user, why, sizeof why) == AUTH_FAILED);
	CHECK_STR(user, "alice");
	CHECK_STR(why, "wrong password");
	free(h);
	h = basic_header("mallory:pa:ss w0rd");
	CHECK(auth_check(a, h, "POST", "/apubi", user, sizeof user, why, sizeof why) == AUTH_FAILED);
	CHECK_STR(why, "unknown user");
	free(h);
	h = basic_header("eve\nlevel=error:x");
	CHECK(auth_check(a, h, "POST", "/apubi", user, sizeof user, why, sizeof why) == AUTH_FAILED);
	CHECK_STR(user, "eve?level=error"); /* safe for a log line */
	free(h);
	CHECK(auth_check(a, NULL, "POST", "/apubi", user, sizeof user, why, sizeof why) == AUTH_MISSING);
	CHECK(auth_check(a, "", "POST", "/apubi", user, sizeof user, why, sizeof why) == AUTH_MISSING);
	CHECK(auth_check(a, "Basic !!!!", "POST", "/apubi", user, sizeof user, why, sizeof why) ==
	      AUTH_FAILED);
	CHECK(auth_check(a, "Basic YWxpY2U=", "POST", "/apubi", user, sizeof user, why,
			 sizeof why) == AUTH_FAILED); /* "alice", no colon */
	CHECK(auth_check(a, "Bearer abc", "POST", "/apubi", user, sizeof user, why, sizeof why) ==
	      AUTH_FAILED);
	CHECK(auth_check(a, "Digest username=\"alice\"", "POST", "/apubi", user, sizeof user, why,
			 sizeof why) == AUTH_FAILED);
	CHECK_STR(why, "Digest authentication is not enabled");
	auth_free(a);
	free(path);
	free(text);
	free(y);
}

static char *hash_with(const char *prefix, unsigned long count, const char *password)
{
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data cd;
	memset(&cd, 0, sizeof cd);
	if (!crypt_gensalt_rn(prefix, count, NULL, 0, salt, sizeof salt))
		return NULL;
	const char *h = crypt_rn(password, salt, &cd, sizeof cd);
	return h ? util_strdup(h) : NULL;
}

/* Each Basic check hashes once per setting in the file, with the user's
 * own hash for the user's setting: whatever the order and the sharing of
 * settings, each user's own password is the one that counts. */
static void test_basic_with_mixed_settings_checks_each_user_own_hash(void)
{
	static const struct {
		const char *user, *prefix;
		unsigned long count;
	} u[] = {
		{ "ann", "$6$", 0 },    { "ben", "$2b$", 5 }, { "cid", "$6$", 0 },
		{ "dee", "$6$", 1000 }, { "eva", "$y$", 1 },  { "fay", "$2b$", 4 },
	};
	enum { N = sizeof u / sizeof u[0] };
	char *hash[N];
	struct util_buf text = { 0 };
	for (int i = 0; i < N; i++) {
		char *pw = util_printf("pw of %s", u[i].user);
		hash[i] = hash_with(u[i].prefix, u[i].count, pw);
		CHECK(hash[i] != NULL);
		util_buf_addf(&text, "%s:%s\n", u[i].user, hash[i] ? hash[i] : "*");
		free(pw);
	}
	char *path = file("mixed", text.p, 0600);
	struct auth *a = auth_load(path, NULL, "apubid", AUTH_BASIC, err, sizeof err);
	CHECK(a != NULL);
	char user[AUTH_USER_MAX], why[160];
	for (int i = 0; a && i < N; i++) {
		for (int j = 0; j < N; j++) {
			char *h = util_printf("%s:pw of %s", u[i].user, u[j].user);
			char *hdr = basic_header(h);
			int rc = auth_check(a, hdr, "POST", "/apubi", user, sizeof user, why, sizeof why);
			CHECK(rc == (i == j ? AUTH_OK : AUTH_FAILED));
			free(hdr);
			free(h);
		}
	}
	auth_free(a);
	free(path);
	free(text.p);
	for (int i = 0; i < N; i++)
		free(hash[i]);
}

static void test_challenges_name_the_enabled_methods(void)
{
	char *users = util_printf("alice:%s\n", sha512_hash);
	char *upath = file("users", users, 0600);
	char *d = ha1_line("bob", "apubid", "s3cret");
	char *dpath = file("digest", d, 0600);
	struct auth *a = auth_load(upath, NULL, "apubid", AUTH_BASIC, err, sizeof err);
	CHECK(a != NULL);
	nchallenges = 0;
	CHECK(auth_challenges(a, 0, collect, NULL) == 0);
	CHECK(nchallenges == 1);
	CHECK_STR(challenges[0], "Basic realm=\"apubid\", charset=\"UTF-8\"");
	auth_free(a);
	a = auth_load(upath, dpath, "apubid", AUTH_BASIC | AUTH_DIGEST, err, sizeof err);
	CHECK(a != NULL);
	nchallenges = 0;
	CHECK(auth_challenges(a, 1, collect, NULL) == 0);
	CHECK(nchallenges == 2);
	const char *digest = "Digest realm=\"apubid\", qop=\"auth\", algorithm=SHA-256, nonce=\"";
	CHECK(strncmp(challenges[0], digest, strlen(digest)) == 0);
	CHECK(strstr(challenges[0], ", stale=true") != NULL);
	CHECK(strncmp(challenges[1], "Basic ", 6) == 0);
	/* Two challenges never share a nonce. */
	char n1[64], n2[64];
	CHECK(param(challenges[0], "nonce", n1, sizeof n1) == 0 && strlen(n1) == 32);
	nchallenges = 0;
	auth_challenges(a, 0, collect, NULL);
	CHECK(param(challenges[0], "nonce", n2, sizeof n2) == 0);
	CHECK(strcmp(n1, n2) != 0);
	CHECK(strstr(challenges[0], "stale") == NULL);
	auth_free(a);
	free(users);
	free(upath);
	free(d);
	free(dpath);
}

static void test_digest_verifies_sha256_answers_and_refuses_replays(void)
{
	char *d = ha1_line("bob", "apubid", "s3cret");
	char *dpath = file("digest", d, 0600);
	struct auth *a = auth_load(NULL, dpath, "apubid", AUTH_DIGEST, err, sizeof err);
	CHECK(a != NULL);
	char nonce[64], opaque[64], user[AUTH_USER_MAX], why[160];
	nchallenges = 0;
	auth_challenges(a, 0, collect, NULL);
	CHECK(nchallenges == 1);
	CHECK(param(challenges[0], "nonce", nonce, sizeof nonce) == 0);
	CHECK(param(challenges[0], "opaque", opaque, sizeof opaque) == 0);

	char *h = digest_header("bob", "apubid", "s3cret", nonce, opaque, "00000001", "POST",
				"/apubi", "SHA-256");
	CHECK(auth_check(a, h, "POST", "/apubi", user, sizeof user, why, sizeof why) == AUTH_OK);
	CHECK_STR(user, "bob");
	/* The same nonce count again is a replay. */
	CHECK(auth_check(a, h, "POST", "/apubi", user, sizeof user, why, sizeof why) == AUTH_FAILED);
	CHECK(strstr(why, "replayed") != NULL);
	free(h);
	h = digest_header("bob", "apubid", "s3cret", nonce, opaque, "00000002", "POST", "/apubi",
			  "SHA-256");
	/* gSOAP strips the closing quote of the last value. */
	h[strlen(h) - 1] = '\0';
	CHECK(auth_check(a, h, "POST", "/apubi", user, sizeof user, why, sizeof why) == AUTH_OK);
	free(h);
	/* The answer covers the method and the request target. */
	h = digest_header("bob", "apubid", "s3cret", nonce, opaque, "00000003", "POST", "/apubi",
			  "SHA-256");
	CHECK(auth_check(a, h, "GET", "/apubi", user, sizeof user, why, sizeof why) == AUTH_FAILED);
	CHECK(auth_check(a, h, "POST", "/other", user, sizeof user, why, sizeof why) == AUTH_FAILED);
	free(h);
	h = digest_header("bob", "apubid", "wrong", nonce, opaque, "00000004", "POST", "/apubi",
			  "SHA-256");
	CHECK(auth_check(a, h, "POST", "/apubi", user, sizeof user, why, sizeof why) == AUTH_FAILED);
	CHECK_STR(why, "wrong password");
	free(h);
	h = digest_header("carol", "apubid", "s3cret", nonce, opaque, "00000005", "POST", "/apubi",
			  "SHA-256");
	CHECK(auth_check(a, h, "POST", "/apubi", user, sizeof user, why, sizeof why) == AUTH_FAILED);
	CHECK_STR(why, "unknown user");
	free(h);
	h = digest_header("bob", "apubid", "s3cret", nonce, opaque, "00000006", "POST", "/apubi",
			  "MD5");
	CHECK(auth_check(a, h, "POST", "/apubi", user, sizeof user, why, sizeof why) == AUTH_FAILED);
	free(h);
	h = digest_header("bob", "apubid", "s3cret", nonce, "00000000", "00000007", "POST",
			  "/apubi", "SHA-256");
	CHECK(auth_check(a, h, "POST", "/apubi", user, sizeof user, why, sizeof why) == AUTH_FAILED);
	free(h);
	/* A right answer to a nonce apubid never gave (or forgot) is stale. */
	h = digest_header("bob", "apubid", "s3cret", "0123456789abcdef0123456789abcdef", opaque,
			  "00000001", "POST", "/apubi", "SHA-256");
	CHECK(auth_check(a, h, "POST", "/apubi", user, sizeof user, why, sizeof why) == AUTH_STALE);
	free(h);
	/* ... but a wrong one is a failure, not an invitation to retry. */
	h = digest_header("bob", "apubid", "nope", "0123456789abcdef0123456789abcdef", opaque,
			  "00000001", "POST", "/apubi", "SHA-256");
	CHECK(auth_check(a, h, "POST", "/apubi", user, sizeof user, why, sizeof why) == AUTH_FAILED);
	free(h);
	CHECK(auth_check(a, "Digest username=\"bob\", realm=\"apubid\"", "POST", "/apubi", user,
			 sizeof user, why, sizeof why) == AUTH_FAILED);
	CHECK(auth_check(a, "Digest username=\"bob\" realm", "POST", "/apubi", user, sizeof user,
			 why, sizeof why) == AUTH_FAILED);
	h = basic_header("bob:s3cret");
	CHECK(auth_check(a, h, "POST", "/apubi", user, sizeof user, why, sizeof why) == AUTH_FAILED);
	CHECK_STR(why, "Basic authentication is not enabled");
	free(h);
	auth_free(a);
	free(d);
	free(dpath);
}

static void test_digest_file_entries_belong_to_the_realm(void)
{
	char *d = ha1_line("bob", "elsewhere", "s3cret");
	char *path = file("digest", d, 0600);
	struct auth *a = auth_load(NULL, path, "apubid", AUTH_DIGEST, err, sizeof err);
	CHECK(a == NULL);
	CHECK(strstr(err, "line 1: user 'bob' is for realm 'elsewhere', not [auth] realm 'apubid'"));
	free(path);
	path = file("digest", "bob:apubid:1234\n", 0600);
	CHECK(auth_load(NULL, path, "apubid", AUTH_DIGEST, err, sizeof err) == NULL);
	CHECK(strstr(err, "HA1 must be 64 hex digits"));
	free(path);
	path = file("digest", d, 0644);
	CHECK(auth_load(NULL, path, "elsewhere", AUTH_DIGEST, err, sizeof err) == NULL);
	CHECK(strstr(err, "open to other users"));
	free(path);
	free(d);
}

/* [auth], [tls] and [server] user through config_parse. */
static int config_refused(const char *extra, const char *want)
{
	struct config c;
	char *text = util_printf("[destination]\nroot = /srv/cdn\n%s", extra);
	int rc = config_parse(&c, text, "apubid.conf", err, sizeof err);
	free(text);
	config_free(&c);
	if (rc == 0 || !strstr(err, want)) {
		fprintf(stderr, "  [%s] gave rc %d, \"%s\"; wanted \"%s\"\n", extra, rc, err, want);
		return 0;
	}
	return 1;
}

static void test_config_auth_and_tls_settings(void)
{
	struct config c;
	char *users = util_printf("alice:%s\n", sha512_hash);
	char *upath = file("users", users, 0600);
	char *d = ha1_line("bob", "apubid", "s3cret");
	char *dpath = file("digest", d, 0600);
	char *text = util_printf("[destination]\nroot = /srv/cdn\n[auth]\nusers_file = %s\n"
				 "digest_file = %s\n",
				 upath, dpath);
	CHECK(config_parse(&c, text, "apubid.conf", err, sizeof err) == 0);
	CHECK(c.auth != NULL);
	CHECK(c.auth_methods == (AUTH_BASIC | AUTH_DIGEST));
	CHECK_STR(c.auth_realm, "apubid");
	config_free(&c);
	free(text);
	/* Without [auth], nothing is required. */
	CHECK(config_parse(&c, "[destination]\nroot = /srv/cdn\n", "x", err, sizeof err) == 0);
	CHECK(c.auth == NULL && c.auth_methods == 0 && c.user == NULL && c.tls_cert_file == NULL);
	config_free(&c);

	text = util_printf("[auth]\nmethods = basic, digest\nusers_file = %s\n", upath);
	CHECK(config_refused(text, "apubid.conf: [auth] methods has digest but digest_file is not set"));
	free(text);
	text = util_printf("[auth]\nmethods = digest\nusers_file = %s\ndigest_file = %s\n", upath,
			   dpath);
	CHECK(config_refused(text, "users_file is set but methods has no basic"));
	free(text);
	CHECK(config_refused("[auth]\nmethods = ntlm\n", "apubid.conf:4: 'methods' lists basic and/or digest"));
	CHECK(config_refused("[auth]\nrealm = a\"b\n", "apubid.conf:4: 'realm' must be"));
	CHECK(config_refused("[auth]\nusers_file = /nonexistent/users\n", "cannot read users_file"));
	char *open_file = file("open", users, 0644);
	text = util_printf("[auth]\nusers_file = %s\n", open_file);
	CHECK(config_refused(text, "open to other users"));
	free(text);
	free(open_file);

	CHECK(config_refused("[tls]\nkey_password = hunter2\n", "[tls] key_password needs cert_file"));
	CHECK(!strstr(err, "hunter2"));
	CHECK(config_refused("[tls]\ncert_file = /nonexistent/cert.pem\n", "cannot read cert_file"));
	text = util_printf("[destination]\nroot = /srv/cdn\n[tls]\ncert_file = %s\nkey_password = hunter2\n", upath);
	CHECK(config_parse(&c, text, "x", err, sizeof err) == 0);
	CHECK_STR(c.tls_cert_file, upath);
	CHECK_STR(c.tls_key_password, "hunter2");
	config_free(&c);
	free(text);

	CHECK(config_refused("[server]\nuser = no-such-user-apubid\n", "user 'no-such-user-apubid' does not exist"));
	CHECK(config_refused("[server]\nuser = root\n", "is root"));
	CHECK(config_parse(&c, "[destination]\nroot = /srv/cdn\n[server]\nuser = nobody\n", "x", err,
			   sizeof err) == 0);
	CHECK_STR(c.user, "nobody");
	config_free(&c);
	free(users);
	free(upath);
	free(d);
	free(dpath);
}

int main(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_crypt_verify_matches_only_the_password);
	RUN(test_users_file_must_be_private);
	RUN(test_users_file_refuses_bad_lines_and_weak_hashes);
	RUN(test_basic_accepts_the_right_password_only);
	RUN(test_basic_with_mixed_settings_checks_each_user_own_hash);
	RUN(test_challenges_name_the_enabled_methods);
	RUN(test_digest_verifies_sha256_answers_and_refuses_replays);
	RUN(test_digest_file_entries_belong_to_the_realm);
	RUN(test_config_auth_and_tls_settings);
	char *cmd = util_printf("rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	free(cmd);
	return HARNESS_END("test_auth");
}

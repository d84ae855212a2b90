/*
 * auth.c - who may call apubid: HTTP Basic and Digest authentication
 * against credentials files read once at start-up.
 *
 * Two files, because the two methods need different secrets. Basic sends
 * the password itself, so the server can keep only a slow salted hash of
 * it: [auth] users_file holds "user:hash" lines made by crypt(3) (yescrypt
 * "$y$" from `mkpasswd -m yescrypt`, SHA-512 "$6$" from `openssl passwd
 * -6`, ...). Digest never sends the password: the client proves it knows
 * HA1 = H(user:realm:password), so the server must hold HA1, and no salted
 * slow hash can stand in for it. [auth] digest_file therefore holds
 * "user:realm:HA1" lines (Apache's htdigest format with SHA-256 instead of
 * MD5). An HA1 is as good as the password for Digest in that realm (not
 * for Basic, not elsewhere): the file is guarded like a private key, and
 * both files are refused when other users can read them.
 *
 * Basic: crypt_rn, then a constant-time comparison. Neither the 401 nor
 * its timing may tell whether a user exists, and the file may mix methods
 * whose costs differ more than tenfold (SHA-512 at 5000 rounds takes a
 * few milliseconds, yescrypt's default tens). No single stand-in hash for
 * an unknown user can then take as long as a wrong password of every user.
 * So the hashes are sorted at load into settings: the method and its cost
 * parameters, without salt ("$y$j9T$", "$6$", "$6$rounds=10000$",
 * "$2b$12$"), each with a stand-in hash made from a random password. Every
 * Basic check, whoever it names, hashes the password once per setting: the
 * user's own hash for the user's setting, the stand-in for the others. An
 * unknown user, a wrong password and a right one thus cost the same: the
 * sum of the settings' costs, which is one hash when the file keeps to one
 * recipe. A successful check is remembered for AUTH_CACHE_TTL_MS as an HMAC
 * of user and password under a key drawn at start-up, so a keep-alive
 * client polling GetTaskStatus does not pay a deliberately slow hash per
 * request. The cache is searched for every claim, known user or not, and
 * holds only pairs that were right: a hit tells a client nothing the 200
 * would not.
 *
 * Digest (RFC 7616): SHA-256 only, qop "auth" only (no auth-int, no
 * userhash, no MD5). For an unknown user the expected answer is computed
 * all the same, from an HA1 no answer can match, and compared in constant
 * time. Nonces are 128 random bits, kept in a table of AUTH_NONCES with
 * the highest nonce count seen, for AUTH_NONCE_TTL_MS: a count that does
 * not grow is a replay. A correct answer to a nonce that expired (or was
 * pushed out of the table) is AUTH_STALE, so the 401 can say stale=true
 * and the client retries without asking for the password.
 *
 * Locking: one mutex guards the cache and the nonce table; hashing runs
 * outside it. The user lists never change after auth_load.
 */
#include "apubid.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#define AUTH_MAX_FILE (4 << 20)
#define AUTH_MAX_HEADER 4096
#define AUTH_CACHE_SIZE 64
#define AUTH_CACHE_TTL_MS (5 * 60 * 1000)
#define AUTH_NONCES 1024
#define AUTH_NONCE_TTL_MS (5 * 60 * 1000)
#define AUTH_NONCE_HEX 32 /* 16 random bytes */
#define AUTH_HEX 64       /* a SHA-256 in hex */

struct auth_user {
	char *name;
	char *hash;  /* crypt(3) output */
	int setting; /* index in auth.settings */
};

/* A method with its cost parameters, shared by one or more users. */
struct auth_setting {
	char *prefix; /* "$y$j9T$": the hash up to its salt */
	char *dummy;  /* a hash of a random password with this setting */
};

struct auth_digest {
	char *name;
	char ha1[AUTH_HEX + 1]; /* lower-case hex */
};

struct auth_cached {
	unsigned char mac[32];
	int64_t until_ms; /* monotonic; 0: empty */
};

struct auth_nonce {
	char value[AUTH_NONCE_HEX + 1];
	int64_t created_ms; /* monotonic; 0: empty */
	unsigned long nc;   /* highest nonce count accepted */
};

struct auth {
	char *realm;
	int methods;
	struct auth_user *users;
	int nusers;
	struct auth_setting *settings;
	int nsettings;
	struct auth_digest *digests;
	int ndigests;
	unsigned char key[32];            /* for the cache's MACs */
	char opaque[AUTH_NONCE_HEX + 1];  /* one per process */
	pthread_mutex_t lock;
	struct auth_cached cache[AUTH_CACHE_SIZE];
	int cache_next;
	struct auth_nonce nonces[AUTH_NONCES];
};

static void auth_hex(const unsigned char *in, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[in[i] >> 4];
		out[2 * i + 1] = hex[in[i] & 15];
	}
	out[2 * n] = '\0';
}

/* out = lower-case hex SHA-256 of s. */
static void auth_sha256_hex(const char *s, char out[AUTH_HEX + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	if (!EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL) || n != 32) {
		/* Cannot happen with a working libcrypto; make the result
		 * match nothing a client can send. */
		memset(out, 'x', AUTH_HEX);
		out[AUTH_HEX] = '\0';
		return;
	}
	auth_hex(md, 32, out);
}

static int auth_random_hex(char *out, size_t nbytes)
{
	unsigned char buf[64];
	if (nbytes > sizeof buf || RAND_bytes(buf, (int)nbytes) != 1)
		return -1;
	auth_hex(buf, nbytes, out);
	OPENSSL_cleanse(buf, sizeof buf);
	return 0;
}

/* Copies a claimed user name for a log line: control characters, quotes
 * and backslashes become '?', and it is cut at userlen - 1 bytes. */
static void auth_copy_user(char *user, size_t userlen, const char *s, size_t n)
{
	size_t i = 0;
	if (!user || !userlen)
		return;
	for (; i < n && i + 1 < userlen; i++) {
		unsigned char ch = (unsigned char)s[i];
		user[i] = ch < 0x20 || ch == 0x7f || ch == '"' || ch == '\\' ? '?' : (char)ch;
	}
	user[i] = '\0';
}

int auth_crypt_verify(const char *password, const char *hash)
{
	struct crypt_data *cd = calloc(1, sizeof *cd);
	if (!cd)
		return 0;
	size_t n = strlen(hash);
	const char *out = crypt_rn(password, hash, cd, (int)sizeof *cd);
	/* A failed crypt_rn gives NULL or a string starting with '*', which
	 * is never a valid hash. The lengths are those of the method, not a
	 * secret. */
	int ok = out && out[0] != '*' && strlen(out) == n && CRYPTO_memcmp(out, hash, n) == 0;
	OPENSSL_cleanse(cd, sizeof *cd);
	free(cd);
	return ok;
}

/* ---- loading ------------------------------------------------------- */

/* The length of the part of a crypt(3) hash that names its method and
 * cost, without salt and checksum: bcrypt "$2b$12$" (salt and checksum
 * follow in one field), scrypt "$7$" and 11 characters of parameters,
 * otherwise everything up to the '$' before the salt ("$y$j9T$",
 * "$6$rounds=10000$"). A hash of an unknown shape is a setting of its
 * own, which costs a hash per check more but still the same for all. */
static size_t auth_setting_len(const char *hash)
{
	size_t n = strlen(hash);
	if (n > 7 && hash[1] == '2' && hash[3] == '$' && hash[6] == '$')
		return 7;
	if (n > 14 && strncmp(hash, "$7$", 3) == 0)
		return 14;
	const char *last = strrchr(hash, '$');
	const char *salt = last;
	while (salt > hash && *--salt != '$')
		;
	return salt > hash ? (size_t)(salt - hash) + 1 : n;
}

/* Sorts the users of `path` into settings, and makes each setting's
 * stand-in. */
static int auth_settings(struct auth *a, const char *path, char *err, size_t errlen)
{
	a->settings = util_calloc((size_t)a->nusers, sizeof *a->settings);
	for (int i = 0; i < a->nusers; i++) {
		struct auth_user *u = &a->users[i];
		size_t n = auth_setting_len(u->hash);
		int k = 0;
		while (k < a->nsettings && !(strlen(a->settings[k].prefix) == n &&
					     strncmp(a->settings[k].prefix, u->hash, n) == 0))
			k++;
		u->setting = k;
		if (k < a->nsettings)
			continue;
		char pw[AUTH_NONCE_HEX + 1];
		struct crypt_data *cd = util_calloc(1, sizeof *cd);
		const char *out = auth_random_hex(pw, AUTH_NONCE_HEX / 2) == 0
					  ? crypt_rn(pw, u->hash, cd, (int)sizeof *cd)
					  : NULL;
		if (out && out[0] != '*')
			a->settings[k].dummy = util_strdup(out);
		OPENSSL_cleanse(pw, sizeof pw);
		OPENSSL_cleanse(cd, sizeof *cd);
		free(cd);
		if (!a->settings[k].dummy) {
			util_error(err, errlen, "users_file %s: cannot hash with the setting of user '%s'",
				   path, u->name);
			return -1;
		}
		a->settings[k].prefix = util_strndup(u->hash, n);
		a->nsettings++;
	}
	return 0;
}

/* Reads a credentials file whole, refusing one that other users could
 * read or change. Returns malloc'ed text or NULL with err set. */
static char *auth_read(const char *what, const char *path, char *err, size_t errlen)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		util_error(err, errlen, "cannot read %s %s: %s", what, path, strerror(errno));
		return NULL;
	}
	char *text = NULL;
	if (fstat(fd, &st) < 0) {
		util_error(err, errlen, "cannot read %s %s: %s", what, path, strerror(errno));
	} else if (!S_ISREG(st.st_mode)) {
		util_error(err, errlen, "%s %s is not a regular file", what, path);
	} else if (st.st_mode & 027) {
		util_error(err, errlen,
			   "%s %s is open to other users (mode %03o): make it readable by "
			   "apubid only (chmod 600, or 640 with apubid's group)",
			   what, path, (unsigned)(st.st_mode & 0777));
	} else if (st.st_size > AUTH_MAX_FILE) {
		util_error(err, errlen, "%s %s is larger than %d bytes", what, path, AUTH_MAX_FILE);
	} else {
		size_t len = (size_t)st.st_size, got = 0;
		text = util_malloc(len + 1);
		while (got < len) {
			ssize_t r = read(fd, text + got, len - got);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			got += (size_t)r;
		}
		if (got != len || memchr(text, '\0', len)) {
			util_error(err, errlen, "cannot read %s %s: %s", what, path,
				   got != len ? "short read" : "contains a NUL byte");
			free(text);
			text = NULL;
		} else {
			text[len] = '\0';
		}
	}
	close(fd);
	return text;
}

/* A user name from a file: 1 to AUTH_USER_MAX - 1 bytes, no control
 * character (':' already split off). */
static int auth_name_ok(const char *s, size_t n)
{
	if (n == 0 || n >= AUTH_USER_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

/* Splits `text` into lines, skipping blank ones and comments, and calls
 * `line` for each (NUL-terminated, CR stripped) with its number. */
static int auth_lines(char *text, int (*line)(struct auth *, char *, int, char *, size_t),
		      struct auth *a, char *err, size_t errlen)
{
	int no = 0;
	for (char *p = text; *p;) {
		char *nl = strchrnul(p, '\n');
		char *next = *nl ? nl + 1 : nl;
		*nl = '\0';
		no++;
		size_t n = strlen(p);
		if (n && p[n - 1] == '\r')
			p[--n] = '\0';
		char *s = p;
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s && *s != '#' && line(a, s, no, err, errlen) < 0)
			return -1;
		p = next;
	}
	return 0;
}

static int auth_user_line(struct auth *a, char *l, int no, char *err, size_t errlen)
{
	char *colon = strchr(l, ':');
	if (!colon || !auth_name_ok(l, (size_t)(colon - l))) {
		util_error(err, errlen, "line %d: expected user:hash", no);
		return -1;
	}
	*colon = '\0';
	const char *hash = colon + 1;
	for (const char *p = hash; *p; p++) {
		if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
			util_error(err, errlen, "line %d: user '%s': the hash contains a space or a control character",
				   no, l);
			return -1;
		}
	}
	if (hash[0] != '$' || crypt_checksalt(hash) != CRYPT_SALT_OK) {
		util_error(err, errlen,
			   "line %d: user '%s': not a crypt(3) hash of a method apubid accepts "
			   "(yescrypt $y$, SHA-512 $6$, bcrypt $2b$; DES and MD5 are refused)",
			   no, l);
		return -1;
	}
	for (int i = 0; i < a->nusers; i++) {
		if (strcmp(a->users[i].name, l) == 0) {
			util_error(err, errlen, "line %d: user '%s' appears twice", no, l);
			return -1;
		}
	}
	a->users = realloc(a->users, (size_t)(a->nusers + 1) * sizeof *a->users);
	if (!a->users)
		abort();
	a->users[a->nusers].name = util_strdup(l);
	a->users[a->nusers].hash = util_strdup(hash);
	a->nusers++;
	return 0;
}

static int auth_digest_line(struct auth *a, char *l, int no, char *err, size_t errlen)
{
	char *c1 = strchr(l, ':');
	char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
	if (!c1 || !c2 || strchr(c2 + 1, ':') || !auth_name_ok(l, (size_t)(c1 - l))) {
		util_error(err, errlen, "line %d: expected user:realm:HA1", no);
		return -1;
	}
	*c1 = '\0';
	*c2 = '\0';
	const char *realm = c1 + 1, *ha1 = c2 + 1;
	if (strcmp(realm, a->realm) != 0) {
		util_error(err, errlen, "line %d: user '%s' is for realm '%s', not [auth] realm '%s'",
			   no, l, realm, a->realm);
		return -1;
	}
	if (strlen(ha1) != AUTH_HEX || strspn(ha1, "0123456789abcdefABCDEF") != AUTH_HEX) {
		util_error(err, errlen,
			   "line %d: user '%s': HA1 must be 64 hex digits, the SHA-256 of user:realm:password",
			   no, l);
		return -1;
	}
	for (int i = 0; i < a->ndigests; i++) {
		if (strcmp(a->digests[i].name, l) == 0) {
			util_error(err, errlen, "line %d: user '%s' appears twice", no, l);
			return -1;
		}
	}
	a->digests = realloc(a->digests, (size_t)(a->ndigests + 1) * sizeof *a->digests);
	if (!a->digests)
		abort();
	struct auth_digest *d = &a->digests[a->ndigests++];
	d->name = util_strdup(l);
	for (int i = 0; i <= AUTH_HEX; i++)
		d->ha1[i] = (char)(ha1[i] >= 'A' && ha1[i] <= 'F' ? ha1[i] - 'A' + 'a' : ha1[i]);
	return 0;
}

static int auth_load_file(struct auth *a, const char *what, const char *path,
			  int (*line)(struct auth *, char *, int, char *, size_t), const int *count,
			  char *err, size_t errlen)
{
	char e[512];
	char *text = auth_read(what, path, err, errlen);
	if (!text)
		return -1;
	int rc = auth_lines(text, line, a, e, sizeof e);
	OPENSSL_cleanse(text, strlen(text));
	free(text);
	if (rc < 0) {
		util_error(err, errlen, "%s %s: %s", what, path, e);
		return -1;
	}
	if (*count == 0) {
		util_error(err, errlen, "%s %s has no user", what, path);
		return -1;
	}
	return 0;
}

struct auth *auth_load(const char *users_file, const char *digest_file, const char *realm,
		       int methods, char *err, size_t errlen)
{
	struct auth *a = util_calloc(1, sizeof *a);
	pthread_mutex_init(&a->lock, NULL);
	a->realm = util_strdup(realm);
	a->methods = methods;
	if (RAND_bytes(a->key, sizeof a->key) != 1 ||
	    auth_random_hex(a->opaque, AUTH_NONCE_HEX / 2) < 0) {
		util_error(err, errlen, "cannot draw random bytes for authentication");
		goto fail;
	}
	if ((methods & AUTH_BASIC) &&
	    (!users_file ||
	     auth_load_file(a, "users_file", users_file, auth_user_line, &a->nusers, err, errlen) < 0 ||
	     auth_settings(a, users_file, err, errlen) < 0)) {
		if (!users_file)
			util_error(err, errlen, "Basic authentication needs a users_file");
		goto fail;
	}
	if ((methods & AUTH_DIGEST) &&
	    (!digest_file || auth_load_file(a, "digest_file", digest_file, auth_digest_line,
					    &a->ndigests, err, errlen) < 0)) {
		if (!digest_file)
			util_error(err, errlen, "Digest authentication needs a digest_file");
		goto fail;
	}
	return a;
fail:
	auth_free(a);
	return NULL;
}

void auth_free(struct auth *a)
{
	if (!a)
		return;
	for (int i = 0; i < a->nusers; i++) {
		free(a->users[i].name);
		OPENSSL_cleanse(a->users[i].hash, strlen(a->users[i].hash));
		free(a->users[i].hash);
	}
	free(a->users);
	for (int i = 0; i < a->nsettings; i++) {
		free(a->settings[i].prefix);
		free(a->settings[i].dummy);
	}
	free(a->settings);
	for (int i = 0; i < a->ndigests; i++)
		free(a->digests[i].name);
	free(a->digests);
	free(a->realm);
	pthread_mutex_destroy(&a->lock);
	OPENSSL_cleanse(a, sizeof *a);
	free(a);
}

/* ---- Basic --------------------------------------------------------- */

/* The cache key of a user and password: HMAC-SHA256 under a->key. */
static void auth_mac(const struct auth *a, const char *user, const char *password,
		     unsigned char mac[32])
{
	size_t ul = strlen(user), pl = strlen(password);
	char *buf = util_malloc(ul + pl + 2);
	memcpy(buf, user, ul + 1);
	memcpy(buf + ul + 1, password, pl + 1);
	unsigned int n = 0;
	if (!HMAC(EVP_sha256(), a->key, sizeof a->key, (unsigned char *)buf, ul + pl + 2, mac, &n))
		memset(mac, 0, 32);
	OPENSSL_cleanse(buf, ul + pl + 2);
	free(buf);
}

static int auth_cache_hit(struct auth *a, const unsigned char mac[32])
{
	int64_t now = util_mono_ms();
	int hit = 0;
	pthread_mutex_lock(&a->lock);
	for (int i = 0; i < AUTH_CACHE_SIZE; i++)
		if (a->cache[i].until_ms > now && CRYPTO_memcmp(a->cache[i].mac, mac, 32) == 0)
			hit = 1;
	pthread_mutex_unlock(&a->lock);
	return hit;
}

static void auth_cache_put(struct auth *a, const unsigned char mac[32])
{
	pthread_mutex_lock(&a->lock);
	struct auth_cached *c = &a->cache[a->cache_next];
	a->cache_next = (a->cache_next + 1) % AUTH_CACHE_SIZE;
	memcpy(c->mac, mac, 32);
	c->until_ms = util_mono_ms() + AUTH_CACHE_TTL_MS;
	pthread_mutex_unlock(&a->lock);
}

static int auth_basic(struct auth *a, const char *b64, char *user, size_t userlen, char *why,
		      size_t whylen)
{
	while (*b64 == ' ' || *b64 == '\t')
		b64++;
	size_t n = strcspn(b64, " \t");
	if (b64[n] || n == 0 || n % 4 || n > AUTH_MAX_HEADER) {
		util_error(why, whylen, "malformed Basic credentials");
		return AUTH_FAILED;
	}
	unsigned char *raw = util_malloc(n / 4 * 3 + 1);
	int len = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)n);
	if (len >= 0) /* EVP_DecodeBlock counts the padding as zero bytes */
		len -= (b64[n - 1] == '=') + (b64[n - 2] == '=');
	char *colon = len > 0 ? memchr(raw, ':', (size_t)len) : NULL;
	int rc = AUTH_FAILED;
	if (!colon || memchr(raw, '\0', (size_t)len)) {
		util_error(why, whylen, "malformed Basic credentials");
		goto out;
	}
	raw[len] = '\0';
	*colon = '\0';
	const char *name = (const char *)raw, *password = colon + 1;
	auth_copy_user(user, userlen, name, strlen(name));
	const struct auth_user *u = NULL;
	for (int i = 0; i < a->nusers; i++)
		if (strcmp(a->users[i].name, name) == 0)
			u = &a->users[i];
	unsigned char mac[32];
	auth_mac(a, name, password, mac);
	if (auth_cache_hit(a, mac) && u) {
		rc = AUTH_OK;
		goto out;
	}
	/* One hash per setting, whoever the user (see the top of the file):
	 * the time taken must not tell whether the user exists. */
	int match = 0;
	for (int i = 0; i < a->nsettings; i++) {
		int own = u && u->setting == i;
		int m = auth_crypt_verify(password, own ? u->hash : a->settings[i].dummy);
		if (own)
			match = m;
	}
	if (!u) {
		util_error(why, whylen, "unknown user");
	} else if (!match) {
		util_error(why, whylen, "wrong password");
	} else {
		auth_cache_put(a, mac);
		rc = AUTH_OK;
	}
out:
	OPENSSL_cleanse(raw, n / 4 * 3 + 1);
	free(raw);
	return rc;
}

/* ---- Digest -------------------------------------------------------- */

struct auth_params {
	const char *username, *realm, *nonce, *uri, *response, *algorithm, *qop, *nc, *cnonce,
		*opaque, *userhash;
};

/* Parses the auth-params of a Digest header in place: name=token or
 * name="quoted string" (backslash escapes), separated by commas. The
 * closing quote of the last value may be missing (gSOAP strips a final
 * quote from header values). Unknown names are ignored; a name given
 * twice is an error. */
static int auth_parse_params(char *s, struct auth_params *p)
{
	memset(p, 0, sizeof *p);
	for (;;) {
		while (*s == ' ' || *s == '\t' || *s == ',')
			s++;
		if (!*s)
			return 0;
		char *name = s;
		while (*s && *s != '=' && *s != ' ' && *s != '\t' && *s != ',')
			s++;
		char *name_end = s;
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s != '=')
			return -1;
		*name_end = '\0';
		s++;
		while (*s == ' ' || *s == '\t')
			s++;
		char *value = s;
		if (*s == '"') {
			char *o = value;
			s++;
			while (*s && *s != '"') {
				if (*s == '\\' && s[1])
					s++;
				*o++ = *s++;
			}
			if (*s == '"')
				s++;
			*o = '\0';
			while (*s == ' ' || *s == '\t')
				s++;
			if (*s && *s != ',')
				return -1;
			if (*s)
				s++;
		} else {
			while (*s && *s != ',' && *s != ' ' && *s != '\t')
				s++;
			char *end = s;
			while (*s == ' ' || *s == '\t')
				s++;
			if (*s && *s != ',')
				return -1;
			if (*s)
				s++;
			*end = '\0';
		}
		static const struct {
			const char *name;
			size_t off;
		} known[] = {
			{ "username", offsetof(struct auth_params, username) },
			{ "realm", offsetof(struct auth_params, realm) },
			{ "nonce", offsetof(struct auth_params, nonce) },
			{ "uri", offsetof(struct auth_params, uri) },
			{ "response", offsetof(struct auth_params, response) },
			{ "algorithm", offsetof(struct auth_params, algorithm) },
			{ "qop", offsetof(struct auth_params, qop) },
			{ "nc", offsetof(struct auth_params, nc) },
			{ "cnonce", offsetof(struct auth_params, cnonce) },
			{ "opaque", offsetof(struct auth_params, opaque) },
			{ "userhash", offsetof(struct auth_params, userhash) },
		};
		for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
			if (strcasecmp(name, known[i].name) == 0) {
				const char **field = (const char **)((char *)p + known[i].off);
				if (*field)
					return -1;
				*field = value;
			}
		}
	}
}

/* Checks a nonce the client answered correctly, and records its count. */
static int auth_nonce_use(struct auth *a, const char *nonce, unsigned long nc, char *why,
			  size_t whylen)
{
	int64_t now = util_mono_ms();
	int rc = AUTH_STALE;
	pthread_mutex_lock(&a->lock);
	for (int i = 0; i < AUTH_NONCES; i++) {
		struct auth_nonce *n = &a->nonces[i];
		if (!n->created_ms || strcmp(n->value, nonce) != 0)
			continue;
		if (now - n->created_ms > AUTH_NONCE_TTL_MS) {
			n->created_ms = 0;
			break;
		}
		if (nc <= n->nc) {
			rc = AUTH_FAILED;
			util_error(why, whylen, "replayed nonce count %lu", nc);
		} else {
			n->nc = nc;
			rc = AUTH_OK;
		}
		break;
	}
	pthread_mutex_unlock(&a->lock);
	if (rc == AUTH_STALE)
		util_error(why, whylen, "expired or unknown nonce");
	return rc;
}

static int auth_digest(struct auth *a, char *params, const char *method, const char *uri,
		       char *user, size_t userlen, char *why, size_t whylen)
{
	struct auth_params p;
	if (auth_parse_params(params, &p) < 0) {
		util_error(why, whylen, "malformed Digest credentials");
		return AUTH_FAILED;
	}
	if (p.username)
		auth_copy_user(user, userlen, p.username, strlen(p.username));
	if (!p.username || !p.realm || !p.nonce || !p.uri || !p.response || !p.qop || !p.nc ||
	    !p.cnonce) {
		util_error(why, whylen, "incomplete Digest credentials");
		return AUTH_FAILED;
	}
	if (p.userhash && strcasecmp(p.userhash, "false") != 0) {
		util_error(why, whylen, "Digest userhash is not supported");
		return AUTH_FAILED;
	}
	if (!p.algorithm || strcasecmp(p.algorithm, "SHA-256") != 0) {
		util_error(why, whylen, "Digest algorithm %.20s refused (SHA-256 only)",
			   p.algorithm ? p.algorithm : "MD5");
		return AUTH_FAILED;
	}
	if (strcmp(p.qop, "auth") != 0) {
		util_error(why, whylen, "Digest qop must be auth");
		return AUTH_FAILED;
	}
	if (strcmp(p.realm, a->realm) != 0) {
		util_error(why, whylen, "wrong realm");
		return AUTH_FAILED;
	}
	if (strcmp(p.uri, uri) != 0) {
		util_error(why, whylen, "Digest uri does not match the request");
		return AUTH_FAILED;
	}
	if (p.opaque && strcmp(p.opaque, a->opaque) != 0) {
		util_error(why, whylen, "wrong Digest opaque");
		return AUTH_FAILED;
	}
	char *end;
	errno = 0;
	unsigned long nc = strtoul(p.nc, &end, 16);
	if (strlen(p.nc) != 8 || *end || errno || nc == 0 || strlen(p.nonce) != AUTH_NONCE_HEX ||
	    strlen(p.response) != AUTH_HEX || strlen(p.cnonce) > 256) {
		util_error(why, whylen, "malformed Digest credentials");
		return AUTH_FAILED;
	}
	const struct auth_digest *d = NULL;
	for (int i = 0; i < a->ndigests; i++)
		if (strcmp(a->digests[i].name, p.username) == 0)
			d = &a->digests[i];
	/* An unknown user is computed against a value no one can match, so
	 * it takes the same time as a known one. */
	static const char nobody[AUTH_HEX + 1] =
		"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz";
	char ha2[AUTH_HEX + 1], want[AUTH_HEX + 1], got[AUTH_HEX + 1];
	char *a2 = util_printf("%s:%s", method, uri);
	auth_sha256_hex(a2, ha2);
	free(a2);
	char *kd = util_printf("%s:%s:%s:%s:%s:%s", d ? d->ha1 : nobody, p.nonce, p.nc, p.cnonce,
			       p.qop, ha2);
	auth_sha256_hex(kd, want);
	OPENSSL_cleanse(kd, strlen(kd));
	free(kd);
	for (int i = 0; i <= AUTH_HEX; i++)
		got[i] = (char)(p.response[i] >= 'A' && p.response[i] <= 'F'
					? p.response[i] - 'A' + 'a'
					: p.response[i]);
	int match = CRYPTO_memcmp(want, got, AUTH_HEX) == 0;
	if (!d) {
		util_error(why, whylen, "unknown user");
		return AUTH_FAILED;
	}
	if (!match) {
		util_error(why, whylen, "wrong password");
		return AUTH_FAILED;
	}
	return auth_nonce_use(a, p.nonce, nc, why, whylen);
}

int auth_check(struct auth *a, const char *authorization, const char *method, const char *uri,
	       char *user, size_t userlen, char *why, size_t whylen)
{
	if (user && userlen)
		user[0] = '\0';
	if (why && whylen)
		why[0] = '\0';
	if (!authorization || !*authorization) {
		util_error(why, whylen, "no credentials");
		return AUTH_MISSING;
	}
	if (strlen(authorization) > AUTH_MAX_HEADER) {
		util_error(why, whylen, "Authorization header too long");
		return AUTH_FAILED;
	}
	if (strncasecmp(authorization, "Basic ", 6) == 0) {
		if (!(a->methods & AUTH_BASIC)) {
			util_error(why, whylen, "Basic authentication is not enabled");
			return AUTH_FAILED;
		}
		return auth_basic(a, authorization + 6, user, userlen, why, whylen);
	}
	if (strncasecmp(authorization, "Digest ", 7) == 0) {
		if (!(a->methods & AUTH_DIGEST)) {
			util_error(why, whylen, "Digest authentication is not enabled");
			return AUTH_FAILED;
		}
		char *params = util_strdup(authorization + 7);
		int rc = auth_digest(a, params, method, uri, user, userlen, why, whylen);
		free(params);
		return rc;
	}
	util_error(why, whylen, "unsupported authentication scheme");
	return AUTH_FAILED;
}

/* Registers a fresh nonce, replacing an expired one or the oldest. */
static int auth_nonce_new(struct auth *a, char out[AUTH_NONCE_HEX + 1])
{
	if (auth_random_hex(out, AUTH_NONCE_HEX / 2) < 0)
		return -1;
	int64_t now = util_mono_ms();
	pthread_mutex_lock(&a->lock);
	struct auth_nonce *slot = &a->nonces[0];
	for (int i = 0; i < AUTH_NONCES; i++) {
		struct auth_nonce *n = &a->nonces[i];
		if (!n->created_ms || now - n->created_ms > AUTH_NONCE_TTL_MS) {
			slot = n;
			break;
		}
		if (n->created_ms < slot->created_ms)
			slot = n;
	}
	memcpy(slot->value, out, AUTH_NONCE_HEX + 1);
	slot->created_ms = now > 0 ? now : 1;
	slot->nc = 0;
	pthread_mutex_unlock(&a->lock);
	return 0;
}

int auth_challenges(struct auth *a, int stale, int (*emit)(void *arg, const char *value),
		    void *arg)
{
	int rc = 0;
	char nonce[AUTH_NONCE_HEX + 1];
	if ((a->methods & AUTH_DIGEST) && auth_nonce_new(a, nonce) == 0) {
		char *v = util_printf("Digest realm=\"%s\", qop=\"auth\", algorithm=SHA-256, "
				      "nonce=\"%s\", opaque=\"%s\"%s",
				      a->realm, nonce, a->opaque, stale ? ", stale=true" : "");
		rc = emit(arg, v);
		free(v);
		if (rc)
			return rc;
	}
	if (a->methods & AUTH_BASIC) {
		char *v = util_printf("Basic realm=\"%s\", charset=\"UTF-8\"", a->realm);
		rc = emit(arg, v);
		free(v);
	}
	return rc;
}

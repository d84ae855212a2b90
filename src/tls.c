/*
 * tls.c - TLS for the listener ([tls]): the server context, and each
 * connection's handshake, reads and writes, all non-blocking.
 *
 * The certificate and key are loaded into the master gSOAP context's
 * SSL_CTX by server_bind, while apubid still has the privileges to read
 * them. TLS 1.2 and 1.3 only; with client_ca, a client must present a
 * certificate chaining to that CA alone (the system's CAs are not
 * consulted), which the handshake itself enforces.
 *
 * Connections do not use gSOAP's TLS: the event loop (loop.c) runs each
 * handshake with SSL_accept on a non-blocking socket, a step at a time as
 * the client's bytes arrive, so a client that stalls in the handshake
 * holds no thread; reads happen in the loop too, writes in the serving
 * thread that owns the connection at the time and then in the loop (see
 * server.h on ownership). A partial write must be retried with the same
 * bytes; SSL_MODE_ENABLE_PARTIAL_WRITE and
 * SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER let the retry come from another
 * thread, the buffer's address unchanged or not. SSL_MODE_RELEASE_BUFFERS
 * frees a connection's record buffers whenever they are empty, so an idle
 * TLS keep-alive connection keeps its session state only (15 KiB of
 * apubid's memory each instead of 24, measured with 2,000 of them). Every OpenSSL type and
 * error code stays in this file.
 */
#include "server.h"

#include "soapH.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Returns OpenSSL's oldest queued error as text (and clears the queue). */
static const char *tls_error(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();
	if (e)
		ERR_error_string_n(e, buf, len);
	else
		snprintf(buf, len, "unknown error");
	ERR_clear_error();
	return buf;
}

/* A key password without a terminal to ask on: the configured one, or
 * none (so an encrypted key without key_password fails instead of
 * prompting). */
static int tls_password(char *buf, int size, int rwflag, void *u)
{
	(void)rwflag;
	if (!u || size <= 0)
		return 0;
	size_t n = strlen(u);
	if (n >= (size_t)size)
		return 0;
	memcpy(buf, u, n);
	return (int)n;
}

/* The engine's description of its last error on one line. */
static void tls_fault_line(struct soap *soap, char *buf, size_t len)
{
	const char **fs = soap_faultstring(soap);
	if (fs && *fs)
		snprintf(buf, len, "%s", *fs);
	else
		soap_sprint_fault(soap, buf, len);
	for (char *p = buf; *p; p++)
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
}

/* The TLS 1.2 suites offered: key exchange with forward secrecy (ECDHE)
 * and authenticated encryption (GCM, ChaCha20-Poly1305) only, for ECDSA
 * and RSA certificates, as in Mozilla's "intermediate" profile without its
 * DHE suites (they would need DH parameters). Static RSA key exchange and
 * CBC suites are not offered. TLS 1.3 keeps OpenSSL's default suites,
 * which all have both properties. */
#define TLS12_CIPHERS                                                     \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"      \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"      \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

int tls_init(struct soap *master, const struct config *c)
{
	char e[256];
	unsigned short flags = SOAP_TLSv1_2 | SOAP_TLSv1_3 | SOAP_SSL_NO_DEFAULT_CA_PATH;
	/* Without client_ca: SOAP_SSL_NO_AUTHENTICATION (0), since
	 * SOAP_SSL_DEFAULT would ask every client for a certificate. */
	if (c->tls_client_ca)
		flags |= SOAP_SSL_REQUIRE_CLIENT_AUTHENTICATION;
	/* The certificate and key are loaded below rather than by gSOAP,
	 * which insists on both being in one file. */
	if (soap_ssl_server_context(master, flags, NULL, NULL, c->tls_client_ca, NULL, NULL, NULL,
				    NULL)) {
		tls_fault_line(master, e, sizeof e);
		log_error("TLS: %s%s%s", e, c->tls_client_ca ? "; client_ca " : "",
			  c->tls_client_ca ? c->tls_client_ca : "");
		return -1;
	}
	SSL_CTX *ctx = master->ctx;
	if (SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1) {
		log_error("TLS: cannot set the cipher suites: %s", tls_error(e, sizeof e));
		return -1;
	}
	const char *key = c->tls_key_file ? c->tls_key_file : c->tls_cert_file;
	SSL_CTX_set_default_passwd_cb(ctx, tls_password);
	SSL_CTX_set_default_passwd_cb_userdata(ctx, c->tls_key_password);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				      SSL_MODE_RELEASE_BUFFERS);
	int rc = -1;
	if (SSL_CTX_use_certificate_chain_file(ctx, c->tls_cert_file) != 1)
		log_error("TLS: cannot load the certificate chain from %s: %s", c->tls_cert_file,
			  tls_error(e, sizeof e));
	else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
		log_error("TLS: cannot load the private key from %s: %s%s", key,
			  tls_error(e, sizeof e),
			  c->tls_key_password ? "" : " (an encrypted key needs key_password)");
	else if (SSL_CTX_check_private_key(ctx) != 1)
		log_error("TLS: the private key in %s does not match the certificate in %s", key,
			  c->tls_cert_file);
	else
		rc = 0;
	/* The password is not needed once the key is loaded. */
	SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL);
	return rc;
}

struct ssl_st *tls_new(struct soap *master, int fd)
{
	char e[256];
	SSL *ssl = SSL_new(master->ctx);
	if (!ssl || SSL_set_fd(ssl, fd) != 1) {
		log_warn("TLS: cannot start a connection: %s", tls_error(e, sizeof e));
		SSL_free(ssl);
		return NULL;
	}
	SSL_set_accept_state(ssl);
	return ssl;
}

int tls_handshake(struct ssl_st *ssl, char *why, size_t len)
{
	ERR_clear_error();
	int rc = SSL_accept(ssl);
	if (rc == 1)
		return 1;
	int err = SSL_get_error(ssl, rc);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
		return 0;
	if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
		snprintf(why, len, "%s", rc == 0 || errno == 0 ? "the client closed the connection"
							 : strerror(errno));
	else
		tls_error(why, len);
	long v = SSL_get_verify_result(ssl);
	if (v != X509_V_OK) {
		size_t n = strlen(why);
		snprintf(why + n, len - n, " (certificate: %s)", X509_verify_cert_error_string(v));
	}
	return -1;
}

static long tls_result(struct ssl_st *ssl, int rc)
{
	if (rc > 0)
		return rc;
	int err = SSL_get_error(ssl, rc);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
		return -1;
	ERR_clear_error();
	return err == SSL_ERROR_ZERO_RETURN ? 0 : -2;
}

long tls_read(struct ssl_st *ssl, char *buf, size_t len)
{
	ERR_clear_error();
	int rc = SSL_read(ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
	long r = tls_result(ssl, rc);
	/* A close without close_notify ends the stream all the same. */
	return r == -2 && rc == 0 ? 0 : r;
}

long tls_write(struct ssl_st *ssl, const char *buf, size_t len)
{
	ERR_clear_error();
	return tls_result(ssl, SSL_write(ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len));
}

void tls_free(struct ssl_st *ssl, int send_close_notify)
{
	if (send_close_notify) {
		ERR_clear_error();
		SSL_shutdown(ssl);
	}
	ERR_clear_error();
	SSL_free(ssl);
}

void tls_log(struct ssl_st *ssl, const char *peer)
{
	if (!log_enabled(LOG_DEBUG))
		return;
	char subject[256] = "";
	X509 *cert = SSL_get1_peer_certificate(ssl);
	if (cert) {
		X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof subject);
		X509_free(cert);
	}
	log_debug("TLS with %s: %s %s%s%s", peer, SSL_get_version(ssl), SSL_get_cipher_name(ssl),
		  subject[0] ? ", client certificate " : "", subject);
}

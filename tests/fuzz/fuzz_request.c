/*
 * fuzz_request.c - a libFuzzer target: each input is the raw bytes a client
 * sends on one connection (HTTP request line, headers, body, possibly
 * several pipelined requests), served in-process through apubid's real
 * request path: the serve loop, the engine's HTTP and XML parsing, the
 * three operations, validation and the store. The bytes go through a
 * socketpair, so the socket code (poll, limits, lingering close) runs too.
 *
 * Build and run: make fuzz FUZZ_SECONDS=N (clang, libFuzzer, ASan, UBSan).
 * The seed corpus is made from tests/fixtures/ by tests/fuzz/seeds.sh. A
 * crash found becomes a file in tests/fuzz/regressions/, replayed against
 * the daemon by tests/integration/test_fuzz_regressions.py.
 */
#include "apubid.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static struct config fuzz_cfg;
static volatile sig_atomic_t fuzz_stop;

static void fuzz_write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	static char dir[] = "/tmp/apubid-fuzz-XXXXXX";
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		exit(1);
	}
	char path[256];
	snprintf(path, sizeof path, "%s/ingest", dir);
	mkdir(path, 0755);
	snprintf(path, sizeof path, "%s/ingest/movie.ts", dir);
	fuzz_write_file(path, "ts");
	snprintf(path, sizeof path, "%s/cdn", dir);
	mkdir(path, 0755);
	char *text = util_printf("[server]\nlisten = 127.0.0.1:1\nrecv_timeout = 1\n"
				 "request_timeout = 2\nkeepalive_timeout = 1\n"
				 "max_request_size = 64K\n"
				 "[store]\npath = %s/fuzz.db\n"
				 "[source]\nallow = %s/ingest/\n"
				 "[destination]\nroot = %s/cdn/\nallow = ftp://cdn:21/data/cdn/\n"
				 "allow = ftp://origin:21/srv/vod/\n"
				 "[log]\nlevel = error\n",
				 dir, dir, dir);
	char err[512];
	if (config_parse(&fuzz_cfg, text, "fuzz.conf", err, sizeof err) < 0) {
		fprintf(stderr, "fuzz: %s\n", err);
		exit(1);
	}
	free(text);
	log_set_level(LOG_ERROR);
	if (server_fuzz_init(&fuzz_cfg, &fuzz_stop) < 0)
		exit(1);
	return 0;
}

/* Reads and drops the answers, as a client would: many pipelined requests
 * can answer more than a socket buffer holds. */
static void *fuzz_drain(void *arg)
{
	int fd = *(int *)arg;
	char buf[65536];
	while (read(fd, buf, sizeof buf) > 0)
		;
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	/* Room for the whole input (capped by -max_len) before the server
	 * reads any of it; the answers are drained by a thread. */
	int big = 1 << 20;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
	setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
	setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
	size_t off = 0;
	while (off < size) {
		ssize_t n = write(sv[0], data + off, size - off);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	shutdown(sv[0], SHUT_WR);
	pthread_t reader;
	int drain = pthread_create(&reader, NULL, fuzz_drain, &sv[0]) == 0;
	server_fuzz_serve(sv[1]); /* closes sv[1], so the reader sees EOF */
	if (drain)
		pthread_join(reader, NULL);
	close(sv[0]);
	return 0;
}

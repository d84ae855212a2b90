# apubid - build, run and test.
#
# `make run` installs what is missing (Debian packages), builds and starts
# apubid in the foreground with its embedded default configuration.
# `make check` runs the whole test suite: C unit tests, then integration
# tests that drive the real binary over loopback.

CC      ?= cc
PKGS    := gsoapssl sqlite3 uuid libcurl libxcrypt jansson
DEPS    := gcc make pkg-config gsoap libgsoap-dev libsqlite3-dev uuid-dev libcrypt-dev \
           libssl-dev zlib1g-dev libcurl4-openssl-dev libjansson-dev curl openssl python3 python3-zeep python3-pytest \
           python3-pyftpdlib python3-openssl openssh-server openssh-client nginx valgrind
CFLAGS  ?= -O2 -g
XCFLAGS := -std=gnu11 -D_GNU_SOURCE -pthread -Igenerated -Isrc \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
WARN    := -Wall -Wextra -Werror -Wno-unused-parameter
LDLIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lssl -lcrypto -lz -pthread
PYTEST  ?= /usr/bin/python3 -m pytest
# B is the build directory and BIN the daemon: the sanitizer builds below
# use their own, so they never mix objects with the normal build.
B       ?= build
BIN     ?= apubid
SANITIZE := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
            -fno-sanitize-recover=undefined

SRC     := $(wildcard src/*.c)
OBJ     := $(patsubst src/%.c,$(B)/%.o,$(SRC))
LIBOBJ  := $(filter-out $(B)/main.o,$(OBJ)) $(B)/soapC.o $(B)/soapServer.o
GENSRC  := generated/soapC.c generated/soapServer.c generated/soapH.h \
           generated/soapStub.h generated/APUBIBinding.nsmap
UNIT    := $(patsubst tests/unit/%.c,$(B)/%,$(wildcard tests/unit/test_*.c))

.DELETE_ON_ERROR:

all: $(BIN)

$(BIN): $(OBJ) $(B)/soapC.o $(B)/soapServer.o
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The stubs are generated from the WSDL at build time: they compile only
# against the gSOAP version installed, so they are never committed.
generated/apubi.h: wsdl/APUBI.wsdl wsdl/APUBI.xsd wsdl/typemap.dat
	@mkdir -p generated
	wsdl2h -c -t wsdl/typemap.dat -o $@ wsdl/APUBI.wsdl >/dev/null
$(GENSRC) &: generated/apubi.h
	soapcpp2 -c -S -L -x -w -d generated generated/apubi.h >/dev/null

$(B)/%.o: src/%.c src/apubid.h $(GENSRC)
	@mkdir -p $(B)
	$(CC) $(CFLAGS) $(XCFLAGS) $(WARN) -c -o $@ $<
# embed.c pulls wsdl/ and db/ into the binary with .incbin.
$(B)/embed.o: src/embed.c $(wildcard wsdl/*) $(wildcard db/*.sql)
	@mkdir -p $(B)
	$(CC) $(CFLAGS) $(XCFLAGS) $(WARN) -c -o $@ $<
# Generated code gets its own relaxed rule.
$(B)/soap%.o: generated/soap%.c $(GENSRC)
	@mkdir -p $(B)
	$(CC) $(CFLAGS) $(XCFLAGS) -w -c -o $@ $<

$(B)/test_%: tests/unit/test_%.c tests/unit/harness.h $(LIBOBJ)
	$(CC) $(CFLAGS) $(XCFLAGS) $(WARN) -Itests/unit -o $@ $< $(LIBOBJ) $(LDLIBS)

# Command-line drivers of one module, for the integration tests.
$(B)/probe_%: tests/tools/probe_%.c $(LIBOBJ)
	$(CC) $(CFLAGS) $(XCFLAGS) $(WARN) -o $@ $< $(LIBOBJ) $(LDLIBS)

deps:
	@missing=$$(for p in $(DEPS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	  | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

run: deps
	$(MAKE) apubid
	@mkdir -p var/ingest var/cdn
	./apubid

unit: $(UNIT)
	@sh tests/unit/run.sh $(UNIT)

integration: $(BIN) $(B)/probe_xfer_curl
	APUBID=$(abspath $(BIN)) PROBE_XFER_CURL=$(abspath $(B)/probe_xfer_curl) \
	  $(PYTEST) -q tests/integration

check: deps
	$(MAKE) $(BIN)
	$(MAKE) unit
	$(MAKE) integration

# The whole suite under AddressSanitizer and UndefinedBehaviorSanitizer: any
# report makes the process exit non-zero, which fails the test that ran it.
check-asan: deps
	$(MAKE) B=build-asan BIN=build-asan/apubid CFLAGS="$(SANITIZE)" \
	  LDFLAGS="-fsanitize=address,undefined" \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=99 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=99 \
	  build-asan/apubid unit integration

# Memcheck on the unit tests and on one integration file against the daemon.
check-valgrind: deps $(BIN) $(UNIT)
	@for t in $(UNIT); do \
	  valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
	    $$t >/dev/null || { echo "valgrind: $$t failed"; exit 1; }; \
	done; echo "valgrind: $(words $(UNIT)) unit programs clean"
	APUBID=$(abspath tests/tools/valgrind-apubid) APUBID_REAL=$(abspath $(BIN)) \
	  APUBID_START_TIMEOUT=60 $(PYTEST) -q tests/integration/test_publish.py

# libFuzzer on the real request path (tests/fuzz/fuzz_request.c), with
# ASan and UBSan, from a seed corpus made of the fixtures. A crash leaves its
# input as build-fuzz/crash-*: copy it into tests/fuzz/regressions/.
FUZZ_SECONDS ?= 60
FUZZ_DEPS := clang libclang-rt-14-dev
fuzz: deps
	@$(MAKE) DEPS="$(FUZZ_DEPS)" deps
	$(MAKE) B=build-fuzz BIN=build-fuzz/apubid CC=clang \
	  CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined" \
	  build-fuzz/fuzz_request
	sh tests/fuzz/seeds.sh build-fuzz/seeds
	@mkdir -p build-fuzz/corpus
	build-fuzz/fuzz_request -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=10 \
	  -rss_limit_mb=2048 -artifact_prefix=build-fuzz/ -print_final_stats=1 \
	  build-fuzz/corpus build-fuzz/seeds tests/fuzz/regressions

$(B)/fuzz_request: tests/fuzz/fuzz_request.c $(LIBOBJ)
	$(CC) $(CFLAGS) $(XCFLAGS) $(WARN) -fsanitize=fuzzer -o $@ $< $(LIBOBJ) $(LDLIBS)

clean:
	rm -rf build build-asan build-fuzz generated apubid

.PHONY: all deps run unit integration check check-asan check-valgrind fuzz clean

# apubid - build, run and test.
#
# `make run` installs the Debian packages building and running need (DEPS),
# builds apubid and apubictl and starts apubid in the foreground with its
# embedded default configuration.
# `make check` adds the test packages (CHECK_DEPS) and runs the whole test
# suite: C unit tests, then integration tests that drive the real binary
# over loopback. `make bench` adds the benchmark's (BENCH_DEPS).
# `make` builds the daemon, apubid, and the operator's tool, apubictl;
# `make install` puts both, the configuration, the systemd unit and
# the manual pages under PREFIX (and DESTDIR, for packaging); `make deb`
# builds the same as a Debian package, apubid_VERSION_ARCH.deb.

CC      ?= cc
PKGS    := gsoapssl sqlite3 libpq uuid libcurl libxcrypt jansson libxml-2.0
# Debian packages by purpose, each list in one place. DEPS: building and
# running (curl for the README's examples). CHECK_DEPS: what the tests add
# (servers they start on loopback, tools they call, valgrind for
# check-valgrind). BENCH_DEPS: what the benchmark adds (tests/bench/run.sh).
DEPS    := gcc make pkg-config gsoap libgsoap-dev libsqlite3-dev uuid-dev libcrypt-dev \
           libssl-dev zlib1g-dev libcurl4-openssl-dev libjansson-dev libxml2-dev libpq-dev curl
CHECK_DEPS := openssl python3 python3-zeep python3-pytest python3-pyftpdlib python3-openssl \
           openssh-server openssh-client nginx valgrind groff-base man-db ffmpeg postgresql \
           libnginx-mod-http-dav-ext
BENCH_DEPS := python3 nginx wrk openssl postgresql
# The transfer section (tests/bench/transfer.py): the reference tools and
# the servers it publishes to (the dav-ext module gives nginx the PROPFIND
# rclone needs), GNU time for the references' CPU and memory.
BENCH_DEPS += rclone lftp curl time python3-pyftpdlib openssh-server openssh-client \
           openssl libnginx-mod-http-dav-ext strace linux-perf
# DEB_DEPS: building the Debian package (make deb) and checking it with
# lintian, which test_deb.py does in make check.
DEB_DEPS := dpkg-dev debhelper lintian
CFLAGS  ?= -O2 -g
XCFLAGS := -std=gnu11 -D_GNU_SOURCE -pthread -Igenerated -Isrc \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
WARN    := -Wall -Wextra -Werror -Wno-unused-parameter
LDLIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lssl -lcrypto -lz -pthread
PYTEST  ?= /usr/bin/python3 -m pytest
# B is the build directory, BIN the daemon and CTL apubictl beside it: the
# sanitizer builds below use their own, so they never mix objects with the
# normal build.
B       ?= build
BIN     ?= apubid
CTL     ?= $(patsubst ./%,%,$(dir $(BIN))apubictl)
SANITIZE := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
            -fno-sanitize-recover=undefined

# Every src/*.c goes into the daemon; apubictl's own files are in src/ctl/.
CTLSRC  := $(wildcard src/ctl/*.c)
SRC     := $(wildcard src/*.c)
OBJ     := $(patsubst src/%.c,$(B)/%.o,$(SRC))
LIBOBJ  := $(filter-out $(B)/main.o,$(OBJ)) $(B)/soapC.o $(B)/soapServer.o
GENSRC  := generated/soapC.c generated/soapServer.c generated/soapClient.c \
           generated/soapH.h generated/soapStub.h generated/APUBIBinding.nsmap
# apubictl links only the modules it uses (not the server, whose svc.c holds
# the namespace table apubictl defines itself), the client stubs, and
# gSOAP's Digest authentication plugin, which Debian ships as source.
GSOAP_PLUGIN := /usr/share/gsoap/plugin
CTLMODS := util log url config auth rules order store store_sqlite store_pg task view embed
CTLOBJ  := $(patsubst src/ctl/%.c,$(B)/ctl/%.o,$(CTLSRC)) $(patsubst %,$(B)/%.o,$(CTLMODS)) \
           $(B)/soapC.o $(B)/soapClient.o \
           $(B)/plugin_httpda.o $(B)/plugin_smdevp.o $(B)/plugin_threads.o
UNIT    := $(patsubst tests/unit/%.c,$(B)/%,$(wildcard tests/unit/test_*.c))

.DELETE_ON_ERROR:

all: $(BIN) $(CTL)

$(BIN): $(OBJ) $(B)/soapC.o $(B)/soapServer.o
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(CTL): $(CTLOBJ)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The stubs are generated from the WSDL at build time: they compile only
# against the gSOAP version installed, so they are never committed.
generated/apubi.h: wsdl/APUBI.wsdl wsdl/APUBI.xsd wsdl/typemap.dat
	@mkdir -p generated
	wsdl2h -c -t wsdl/typemap.dat -o $@ wsdl/APUBI.wsdl >/dev/null
# Server and client stubs in one run (soapC.c is the same for both).
$(GENSRC) &: generated/apubi.h
	soapcpp2 -c -L -x -w -d generated generated/apubi.h >/dev/null

$(B)/%.o: src/%.c src/apubid.h src/server.h src/store.h src/xfer.h $(GENSRC)
	@mkdir -p $(B)
	$(CC) $(CFLAGS) $(XCFLAGS) $(WARN) -c -o $@ $<
$(B)/ctl/%.o: src/ctl/%.c src/ctl/ctl.h src/apubid.h $(GENSRC)
	@mkdir -p $(B)/ctl
	$(CC) $(CFLAGS) $(XCFLAGS) $(WARN) -c -o $@ $<
# embed.c pulls wsdl/ and db/ into the binary with .incbin.
$(B)/embed.o: src/embed.c $(wildcard wsdl/*) $(wildcard db/*/*.sql)
	@mkdir -p $(B)
	$(CC) $(CFLAGS) $(XCFLAGS) $(WARN) -c -o $@ $<
# Generated code gets its own relaxed rule, and so do gSOAP's plugins.
$(B)/soap%.o: generated/soap%.c $(GENSRC)
	@mkdir -p $(B)
	$(CC) $(CFLAGS) $(XCFLAGS) -w -c -o $@ $<
$(B)/plugin_%.o: $(GSOAP_PLUGIN)/%.c
	@mkdir -p $(B)
	$(CC) $(CFLAGS) $(XCFLAGS) -I$(GSOAP_PLUGIN) -w -c -o $@ $<
$(B)/ctl/client.o: XCFLAGS += -I$(GSOAP_PLUGIN)
# apubictl conform reads answers with libxml2, a parser independent of the
# gSOAP the server is built on; only apubictl links it.
$(B)/ctl/conform.o: XCFLAGS += $(shell pkg-config --cflags libxml-2.0 2>/dev/null)
$(CTL): LDLIBS += $(shell pkg-config --libs libxml-2.0 2>/dev/null)

$(B)/test_%: tests/unit/test_%.c tests/unit/harness.h tests/unit/backends.h $(LIBOBJ)
	$(CC) $(CFLAGS) $(XCFLAGS) $(WARN) -Itests/unit -o $@ $< $(LIBOBJ) $(LDLIBS)

# Command-line drivers of one module, for the integration tests.
$(B)/probe_%: tests/tools/probe_%.c $(LIBOBJ)
	$(CC) $(CFLAGS) $(XCFLAGS) $(WARN) -o $@ $< $(LIBOBJ) $(LDLIBS)

# Installs the packages of the list $(1) that are missing, with apt-get
# (through sudo when not root).
APT_INSTALL = missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	  | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

deps:
	@$(call APT_INSTALL,$(DEPS))

deps-check:
	@$(call APT_INSTALL,$(DEPS) $(CHECK_DEPS) $(DEB_DEPS))

deps-bench:
	@$(call APT_INSTALL,$(DEPS) $(BENCH_DEPS))

run: deps
	$(MAKE) $(BIN) $(CTL)
	@mkdir -p var/ingest var/cdn
	./apubid

unit: $(UNIT)
	@sh tests/unit/with_pg.sh sh tests/unit/run.sh $(UNIT)

integration: $(BIN) $(CTL) $(B)/probe_xfer_curl $(B)/probe_manifest
	APUBID=$(abspath $(BIN)) APUBICTL=$(abspath $(CTL)) \
	  PROBE_XFER_CURL=$(abspath $(B)/probe_xfer_curl) PROBE_MANIFEST=$(abspath $(B)/probe_manifest) \
	  $(PYTEST) -q tests/integration

check: deps-check
	$(MAKE) $(BIN)
	$(MAKE) unit
	$(MAKE) integration

# The whole suite under AddressSanitizer and UndefinedBehaviorSanitizer: any
# report makes the process exit non-zero, which fails the test that ran it.
# The sanitizers' own memory (shadow, quarantine) gets a larger RSS budget
# in the streaming tests (APUBID_RSS_LIMIT_MIB).
check-asan: deps-check
	$(MAKE) B=build-asan BIN=build-asan/apubid CFLAGS="$(SANITIZE)" \
	  LDFLAGS="-fsanitize=address,undefined" \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=99 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=99 \
	  APUBID_RSS_LIMIT_MIB=128 \
	  build-asan/apubid build-asan/apubictl unit integration

# Memcheck on the unit tests and on one integration file against the daemon.
check-valgrind: deps-check $(BIN) $(UNIT)
	@sh tests/unit/with_pg.sh sh -c 'for t in $(UNIT); do \
	  valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
	    $$t >/dev/null || { echo "valgrind: $$t failed"; exit 1; }; \
	done' && echo "valgrind: $(words $(UNIT)) unit programs clean"
	APUBID=$(abspath tests/tools/valgrind-apubid) APUBID_REAL=$(abspath $(BIN)) \
	  APUBID_START_TIMEOUT=60 $(PYTEST) -q tests/integration/test_publish.py

# libFuzzer on the real request path (tests/fuzz/fuzz_request.c), with
# ASan and UBSan, from a seed corpus made of tests/fixtures/. A crash leaves its
# input as build-fuzz/crash-*: copy it into tests/fuzz/regressions/.
FUZZ_SECONDS ?= 60
FUZZ_DEPS := clang libclang-rt-14-dev
fuzz:
	@$(call APT_INSTALL,$(DEPS) $(FUZZ_DEPS))
	$(MAKE) B=build-fuzz BIN=build-fuzz/apubid CC=clang \
	  CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined" \
	  build-fuzz/fuzz_request
	sh tests/fuzz/seeds.sh build-fuzz/seeds tests/fixtures
	@mkdir -p build-fuzz/corpus
	build-fuzz/fuzz_request -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=10 \
	  -rss_limit_mb=2048 -artifact_prefix=build-fuzz/ -print_final_stats=1 \
	  build-fuzz/corpus build-fuzz/seeds tests/fuzz/regressions

$(B)/fuzz_request: tests/fuzz/fuzz_request.c $(LIBOBJ)
	$(CC) $(CFLAGS) $(XCFLAGS) $(WARN) -fsanitize=fuzzer -o $@ $< $(LIBOBJ) $(LDLIBS)

# libFuzzer on the HLS and DASH planner (tests/fuzz/fuzz_manifest.c), the
# same build, seeded from tests/fuzz/manifests/ (where a crash's input goes).
FUZZ_MANIFEST_OBJ := $(patsubst %,$(B)/%.o,manifest manifest_hls manifest_dash url util log)
FUZZ_MANIFEST_LIBS := $(shell pkg-config --libs uuid jansson libxml-2.0 2>/dev/null) -pthread
fuzz-manifest:
	@$(call APT_INSTALL,$(DEPS) $(FUZZ_DEPS))
	$(MAKE) B=build-fuzz BIN=build-fuzz/apubid CC=clang \
	  CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined" \
	  build-fuzz/fuzz_manifest
	@mkdir -p build-fuzz/corpus-manifest
	build-fuzz/fuzz_manifest -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=10 \
	  -rss_limit_mb=2048 -artifact_prefix=build-fuzz/manifest- -print_final_stats=1 \
	  build-fuzz/corpus-manifest tests/fuzz/manifests

$(B)/fuzz_manifest: tests/fuzz/fuzz_manifest.c $(FUZZ_MANIFEST_OBJ)
	$(CC) $(CFLAGS) $(XCFLAGS) $(WARN) -fsanitize=fuzzer -o $@ $< $(FUZZ_MANIFEST_OBJ) \
	  $(FUZZ_MANIFEST_LIBS)

# The benchmark (tests/bench/bench.py): apubid beside an nginx reference,
# driven by wrk over loopback; prints the table and writes it to
# $(B)/bench.md. BENCH_QUICK=1 checks the harness in about 30 s. The
# transfer section (tests/bench/transfer.py) follows, its table in
# $(B)/bench-transfer.md; BENCH_ONLY=serving or BENCH_ONLY=transfer runs one.
bench: deps-bench
	$(MAKE) $(BIN)
	APUBID=$(abspath $(BIN)) BENCH_OUT=$(abspath $(B))/bench.md tests/bench/run.sh

# Installation. PREFIX and SYSCONFDIR as usual, DESTDIR for staging (a
# package build). The unit's ExecStart and configuration path are rewritten
# to where the files go. An existing apubid.conf is never overwritten: the
# new one then goes beside it as apubid.conf.new. INSTALL_BIN and INSTALL_CTL
# name the binaries to install (default: the ones this build makes).
# The installed apubid.conf is the sample made to fit the unit: user =
# apubid, the store in STOREDIR, the destination root CDNDIR and sources
# under INGESTDIR; the unit may write STOREDIR and CDNDIR (ReadWritePaths).
PREFIX     ?= /usr/local
SYSCONFDIR ?= /etc
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
DOCDIR     ?= $(PREFIX)/share/doc/apubid
UNITDIR    ?= $(PREFIX)/lib/systemd/system
INSTALL_BIN ?= $(BIN)
INSTALL_CTL ?= $(CTL)
STOREDIR   ?= /var/lib/apubid
CDNDIR     ?= /srv/cdn
INGESTDIR  ?= /srv/ingest
MAN8    := etc/man/apubid.8 etc/man/apubictl.8
MAN5    := etc/man/apubid.conf.5
# The README's reference parts, installed beside it as it names them.
DOCS    := $(wildcard docs/*.md)
INSTALL_CONF_SED := -e '1a \# Installed: user and paths (store, sources, root) set to fit the systemd unit.' \
	-e 's|^path = var/apubid\.db$$|path = $(STOREDIR)/apubid.db|' \
	-e 's|^allow = var/ingest/$$|allow = $(INGESTDIR)/|' \
	-e 's|^root = var/cdn/$$|root = $(CDNDIR)/|' \
	-e 's|^\# user = apubid$$|user = apubid|'

install: $(INSTALL_BIN) $(INSTALL_CTL) $(MAN8) $(MAN5) etc/apubid.conf etc/apubid.service
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5 \
	  $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR) $(DESTDIR)$(SYSCONFDIR)/apubid
	install -m 755 $(INSTALL_BIN) $(DESTDIR)$(SBINDIR)/apubid
	install -m 755 $(INSTALL_CTL) $(DESTDIR)$(SBINDIR)/apubictl
	install -m 644 $(MAN8) $(DESTDIR)$(MANDIR)/man8/
	install -m 644 $(MAN5) $(DESTDIR)$(MANDIR)/man5/
	install -m 644 README.md $(DESTDIR)$(DOCDIR)/README.md
	install -d $(DESTDIR)$(DOCDIR)/docs
	install -m 644 $(DOCS) $(DESTDIR)$(DOCDIR)/docs/
	sed -e 's|^ExecStart=[^ ]*|ExecStart=$(SBINDIR)/apubid|' \
	    -e 's|/usr/local/bin/apubid|$(SBINDIR)/apubid|g' \
	    -e 's|/etc/apubid/|$(SYSCONFDIR)/apubid/|g' \
	    -e 's|/usr/local/share/doc/apubid/|$(DOCDIR)/|g' \
	    -e 's|^ReadWritePaths=.*|ReadWritePaths=$(STOREDIR) $(CDNDIR)|' \
	    etc/apubid.service >$(DESTDIR)$(UNITDIR)/apubid.service.tmp
	chmod 644 $(DESTDIR)$(UNITDIR)/apubid.service.tmp
	mv -f $(DESTDIR)$(UNITDIR)/apubid.service.tmp $(DESTDIR)$(UNITDIR)/apubid.service
	@conf=$(DESTDIR)$(SYSCONFDIR)/apubid/apubid.conf; \
	sed $(INSTALL_CONF_SED) etc/apubid.conf >$$conf.tmp && chmod 640 $$conf.tmp || exit 1; \
	if [ -e $$conf ]; then \
	  mv -f $$conf.tmp $$conf.new; \
	  echo "$$conf exists: kept it, the new one is $$conf.new"; \
	else \
	  mv -f $$conf.tmp $$conf; echo "installed $$conf"; \
	fi

# Removes what install put in place but the configuration, which is the
# operator's (apubid.conf.new, a sample, goes too).
uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/apubid $(DESTDIR)$(SBINDIR)/apubictl \
	  $(addprefix $(DESTDIR)$(MANDIR)/man8/,$(notdir $(MAN8))) \
	  $(addprefix $(DESTDIR)$(MANDIR)/man5/,$(notdir $(MAN5))) \
	  $(DESTDIR)$(UNITDIR)/apubid.service $(DESTDIR)$(DOCDIR)/README.md \
	  $(addprefix $(DESTDIR)$(DOCDIR)/docs/,$(notdir $(DOCS))) \
	  $(DESTDIR)$(SYSCONFDIR)/apubid/apubid.conf.new
	rmdir $(DESTDIR)$(DOCDIR)/docs $(DESTDIR)$(DOCDIR) 2>/dev/null || true
	@echo "kept $(DESTDIR)$(SYSCONFDIR)/apubid/apubid.conf"

# The Debian package, made with Debian's tools (dpkg-buildpackage and
# debhelper, from debian/) in a copy of the sources under build/deb/, so
# that nothing is written outside the clone; the .deb is moved up here.
# This make's settings (a sanitizer build's B, BIN, CFLAGS...) stay out:
# debian/rules sets the build flags.
DEB_SRC := Makefile README.md LICENSE src db wsdl etc debian docs
deb:
	@$(call APT_INSTALL,$(DEPS) $(DEB_DEPS))
	rm -rf build/deb apubid_*.deb
	mkdir -p build/deb/apubid
	cp -a $(DEB_SRC) build/deb/apubid/
	cd build/deb/apubid && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u B -u BIN -u CTL \
	  dpkg-buildpackage -b -us -uc --jobs-try=auto
	mv -f build/deb/apubid_*.deb .
	@ls apubid_*.deb

clean:
	rm -rf build build-asan build-fuzz generated apubid apubictl apubid_*.deb

.PHONY: all deps deps-check deps-bench run unit integration check check-asan check-valgrind fuzz fuzz-manifest bench clean \
	install uninstall deb

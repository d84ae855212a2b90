# apubid - build, run and test.
#
# `make run` installs what is missing (Debian packages), builds and starts
# apubid in the foreground with its embedded default configuration.
# `make check` runs the whole test suite: C unit tests, then integration
# tests that drive the real binary over loopback.

CC      ?= cc
PKGS    := gsoapssl sqlite3 uuid libcurl libxcrypt
DEPS    := gcc make pkg-config gsoap libgsoap-dev libsqlite3-dev uuid-dev libcrypt-dev \
           libssl-dev zlib1g-dev libcurl4-openssl-dev curl openssl python3 python3-zeep python3-pytest \
           python3-pyftpdlib python3-openssl openssh-server openssh-client nginx
CFLAGS  ?= -O2 -g
XCFLAGS := -std=gnu11 -D_GNU_SOURCE -pthread -Igenerated -Isrc \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
WARN    := -Wall -Wextra -Werror -Wno-unused-parameter
LDLIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lssl -lcrypto -lz -pthread
PYTEST  ?= /usr/bin/python3 -m pytest

SRC     := $(wildcard src/*.c)
OBJ     := $(patsubst src/%.c,build/%.o,$(SRC))
LIBOBJ  := $(filter-out build/main.o,$(OBJ)) build/soapC.o build/soapServer.o
GENSRC  := generated/soapC.c generated/soapServer.c generated/soapH.h \
           generated/soapStub.h generated/APUBIBinding.nsmap
UNIT    := $(patsubst tests/unit/%.c,build/%,$(wildcard tests/unit/test_*.c))

.DELETE_ON_ERROR:

all: apubid

apubid: $(OBJ) build/soapC.o build/soapServer.o
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The stubs are generated from the WSDL at build time: they compile only
# against the gSOAP version installed, so they are never committed.
generated/apubi.h: wsdl/APUBI.wsdl wsdl/APUBI.xsd wsdl/typemap.dat
	@mkdir -p generated
	wsdl2h -c -t wsdl/typemap.dat -o $@ wsdl/APUBI.wsdl >/dev/null
$(GENSRC) &: generated/apubi.h
	soapcpp2 -c -S -L -x -w -d generated generated/apubi.h >/dev/null

build/%.o: src/%.c src/apubid.h $(GENSRC)
	@mkdir -p build
	$(CC) $(CFLAGS) $(XCFLAGS) $(WARN) -c -o $@ $<
# embed.c pulls wsdl/ and db/ into the binary with .incbin.
build/embed.o: src/embed.c $(wildcard wsdl/*) $(wildcard db/*.sql)
	@mkdir -p build
	$(CC) $(CFLAGS) $(XCFLAGS) $(WARN) -c -o $@ $<
# Generated code gets its own relaxed rule.
build/soap%.o: generated/soap%.c $(GENSRC)
	@mkdir -p build
	$(CC) $(CFLAGS) $(XCFLAGS) -w -c -o $@ $<

build/test_%: tests/unit/test_%.c tests/unit/harness.h $(LIBOBJ)
	$(CC) $(CFLAGS) $(XCFLAGS) $(WARN) -Itests/unit -o $@ $< $(LIBOBJ) $(LDLIBS)

# Command-line drivers of one module, for the integration tests.
build/probe_%: tests/tools/probe_%.c $(LIBOBJ)
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

integration: apubid build/probe_xfer_curl
	$(PYTEST) -q tests/integration

check: deps
	$(MAKE) apubid
	$(MAKE) unit
	$(MAKE) integration

clean:
	rm -rf build generated apubid

.PHONY: all deps run unit integration check clean

#!/bin/sh
# Writes the fuzzer's seed corpus into $1: every request fixture as an HTTP
# POST (SOAP 1.1 and 1.2 framings, Content-Length and chunked), plus GETs.
# The fixtures are tests/fixtures/ of this repository unless $2 names others.
set -eu
out=$1
fixtures=${2:-$(dirname "$0")/../fixtures}
mkdir -p "$out"
i=0
for f in "$fixtures"/*.xml; do
	case "$f" in *response-*) continue ;; esac
	len=$(wc -c < "$f")
	for ct in 'text/xml; charset=utf-8' 'application/soap+xml; charset=utf-8'; do
		i=$((i + 1))
		{ printf 'POST /apubi HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: %s\r\nSOAPAction: ""\r\nContent-Length: %d\r\n\r\n' "$ct" "$len"
		  cat "$f"; } > "$out/seed-$i"
	done
	i=$((i + 1))
	{ printf 'POST /apubi HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n' "$len"
	  cat "$f"; printf '\r\n0\r\n\r\n'; } > "$out/seed-$i"
done
printf 'GET /apubi?wsdl HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /apubi?xsd HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n' > "$out/seed-get"
printf 'PUT /nope HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc' > "$out/seed-put"

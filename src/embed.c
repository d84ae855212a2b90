/*
 * embed.c - files built into the binary: the WSDL and XSD served at
 * ?wsdl, and the store's schema migrations, one series per backend. They are pulled in with the
 * assembler's .incbin at build time, so the daemon needs nothing from the
 * source tree at run time. Each blob is NUL-terminated.
 */
#include "apubid.h"

#define EMBED(sym, file)                                                       \
	__asm__(".section .rodata\n"                                           \
		".global " #sym "\n"                                           \
		".type " #sym ", @object\n"                                    \
		".balign 16\n" #sym ":\n"                                      \
		".incbin \"" file "\"\n"                                       \
		".byte 0\n"                                                    \
		".size " #sym ", . - " #sym "\n"                               \
		".previous\n")

EMBED(embed_wsdl, "wsdl/APUBI.wsdl");
EMBED(embed_xsd, "wsdl/APUBI.xsd");
EMBED(embed_sqlite_v1, "db/sqlite/001_init.sql");
EMBED(embed_sqlite_v2, "db/sqlite/002_transfer.sql");
EMBED(embed_sqlite_v3, "db/sqlite/003_operations.sql");
EMBED(embed_sqlite_v4, "db/sqlite/004_rules.sql");
EMBED(embed_sqlite_v5, "db/sqlite/005_order.sql");
EMBED(embed_sqlite_v6, "db/sqlite/006_source_version.sql");
EMBED(embed_pg_v1, "db/postgresql/001_init.sql");
EMBED(embed_pg_v2, "db/postgresql/002_accept_event.sql");

/*
 * backends.h - the store the unit tests open, on either backend: a SQLite
 * file (store_test_cfg.store_path), or the PostgreSQL server whose URL
 * APUBID_TEST_PG_URL names (store_test_cfg.store_url; make unit starts
 * one with tests/unit/with_pg.sh). store_test_fresh gives an empty store
 * each time: a new file, or the tables emptied (the first time on a
 * backend, the schema dropped and made again by store_open).
 */
#ifndef BACKENDS_H
#define BACKENDS_H

#include "apubid.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <unistd.h>

static struct config store_test_cfg;
static int store_test_schema_fresh;

static struct store *store_test_open(void)
{
	char err[512];
	struct store *s = store_open(&store_test_cfg, err, sizeof err);
	if (!s)
		fprintf(stderr, "  store_open: %s\n", err);
	return s;
}

static void store_test_quiet(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* Runs SQL on the test database directly, as its administrator: 0 or -1. */
static int store_test_sql(const char *sql)
{
	PGconn *c = PQconnectdb(store_test_cfg.store_url);
	PQsetNoticeProcessor(c, store_test_quiet, NULL);
	PGresult *r = PQstatus(c) == CONNECTION_OK ? PQexec(c, sql) : NULL;
	int ok = r && (PQresultStatus(r) == PGRES_COMMAND_OK ||
		       PQresultStatus(r) == PGRES_TUPLES_OK);
	if (!ok)
		fprintf(stderr, "  %s: %s\n", sql, PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
	return ok ? 0 : -1;
}

/* Switches the tests to PostgreSQL (url) or back to SQLite (NULL). */
static void store_test_use(const char *url)
{
	store_test_cfg.store_url = url ? (char *)url : NULL;
	store_test_schema_fresh = 0;
}

static struct store *store_test_fresh(void)
{
	if (store_test_cfg.store_url) {
		const char *sql = store_test_schema_fresh
					  ? "TRUNCATE task, item, attempt, event, health"
					  : "DROP SCHEMA public CASCADE; CREATE SCHEMA public";
		if (store_test_sql(sql) < 0)
			return NULL;
		store_test_schema_fresh = 1;
		return store_test_open();
	}
	const char *path = store_test_cfg.store_path;
	char side[600];
	unlink(path);
	snprintf(side, sizeof side, "%.500s-wal", path);
	unlink(side);
	snprintf(side, sizeof side, "%.500s-shm", path);
	unlink(side);
	return store_test_open();
}

#endif

/*
 * order.c - the ordering rule: one order per destination.
 *
 * What: the CDN must end exactly as if every task had run alone, one after
 * another, in the order apubid accepted them. Tasks whose destinations do
 * not touch can run side by side; tasks whose destinations overlap must
 * not. Two destinations overlap when they are the same path, or one is a
 * directory that holds the other: "show" and "show/v1/seg1.ts" overlap,
 * "show" and "show2" do not.
 *
 * How: every destination gets a key, "/" + its normalised relative path +
 * "/" ("/show/", "/show/v1/seg1.ts/"; the root itself is "/"). Overlap is
 * then a prefix test on bytes, in either direction, and the trailing '/'
 * keeps "/show/" from being a prefix of "/show2/". Paths are compared as
 * apubid stores them, after percent-decoding and normalisation, so
 * "show%20a/" and "show a" are one destination, and names are bytes:
 * non-ASCII names compare exactly, case included.
 *
 * The store keeps the key on each task and its claim applies the rule in
 * one statement (store.c), so it holds across worker threads, restarts and
 * processes sharing the store. This file holds the same rule in C: the key
 * the store writes, and a one-pass counter of held tasks for the metrics
 * (a per-task query would make that count quadratic in the backlog: 10 s
 * for 10,000 queued tasks, against milliseconds here).
 */
#include "apubid.h"

#include <stdlib.h>
#include <string.h>

char *order_key(const char *rel)
{
	size_t n = strlen(rel);
	char *k = util_malloc(n + 3);
	k[0] = '/';
	memcpy(k + 1, rel, n);
	if (n)
		k[++n] = '/';
	k[n + 1] = '\0';
	return k;
}

/* ---- the held counter ------------------------------------------------- */

/* A set of byte strings, open addressing with linear probing; it only
 * grows, and is freed whole. */
struct order_set {
	char **v;
	size_t *len;
	size_t cap, n;
};

struct order_held {
	struct order_set keys;     /* the keys of the tasks seen so far */
	struct order_set prefixes; /* every key seen, and each of its directories */
};

static uint64_t order_hash(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ULL;
	}
	return h;
}

/* The slot holding s, or the empty slot where it would go. */
static size_t order_slot(const struct order_set *set, const char *s, size_t n)
{
	size_t i = order_hash(s, n) & (set->cap - 1);
	while (set->v[i] && !(set->len[i] == n && memcmp(set->v[i], s, n) == 0))
		i = (i + 1) & (set->cap - 1);
	return i;
}

static int order_set_has(const struct order_set *set, const char *s, size_t n)
{
	return set->cap && set->v[order_slot(set, s, n)] != NULL;
}

static void order_set_add(struct order_set *set, const char *s, size_t n)
{
	if (2 * (set->n + 1) > set->cap) {
		struct order_set bigger = { 0 };
		bigger.cap = set->cap ? 2 * set->cap : 64;
		bigger.v = util_calloc(bigger.cap, sizeof *bigger.v);
		bigger.len = util_calloc(bigger.cap, sizeof *bigger.len);
		for (size_t i = 0; i < set->cap; i++)
			if (set->v[i]) {
				size_t j = order_slot(&bigger, set->v[i], set->len[i]);
				bigger.v[j] = set->v[i];
				bigger.len[j] = set->len[i];
			}
		bigger.n = set->n;
		free(set->v);
		free(set->len);
		*set = bigger;
	}
	size_t i = order_slot(set, s, n);
	if (set->v[i])
		return;
	set->v[i] = util_strndup(s, n);
	set->len[i] = n;
	set->n++;
}

static void order_set_free(struct order_set *set)
{
	for (size_t i = 0; i < set->cap; i++)
		free(set->v[i]);
	free(set->v);
	free(set->len);
}

struct order_held *order_held_new(void)
{
	return util_calloc(1, sizeof(struct order_held));
}

int order_held_next(struct order_held *h, const char *key, size_t len)
{
	/* Held when an earlier key equals this one or lies below it (this key
	 * is one of the prefixes seen), or lies above it (one of this key's
	 * directories, itself included, is an earlier key). */
	int held = order_set_has(&h->prefixes, key, len);
	for (size_t i = 1; !held && i <= len; i++)
		if (key[i - 1] == '/')
			held = order_set_has(&h->keys, key, i);
	order_set_add(&h->keys, key, len);
	for (size_t i = 1; i <= len; i++)
		if (key[i - 1] == '/')
			order_set_add(&h->prefixes, key, i);
	return held;
}

void order_held_free(struct order_held *h)
{
	if (!h)
		return;
	order_set_free(&h->keys);
	order_set_free(&h->prefixes);
	free(h);
}

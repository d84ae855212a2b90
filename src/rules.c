/*
 * rules.c - scripted outcomes for staging and certification.
 *
 * What: a WFM integrator needs apubid to answer in ways a healthy server
 * rarely does - a task that stays IN_PROGRESS for a while, one that fails
 * with a given reason, a submission refused with a given HTTP status, a
 * success that answers an odd DestinationAsset. [staging] rule lines
 * (config.c) describe those answers; this file parses them, picks the rule
 * a submission matches, and keeps the set in force.
 *
 * Syntax of one rule (the value of one `rule` line): whitespace-separated
 * key=value tokens, a value optionally in double quotes with \" and \\
 * inside (a quoted value may hold spaces and be empty). name= and op= are
 * required; see apubid.h for every key. What a rule may not mean is
 * refused here rather than ignored at run time: a fault with any other
 * outcome (a refused submission records nothing to shape), fail with
 * destination (a failed load has no DestinationAsset), destination or src=
 * on a rule that only matches PurgeAsset (a purge has neither).
 *
 * Invariants: a parsed set is never changed once installed (svc.c reads it
 * without a lock while holding a reference); rules_set installs a new set
 * and frees the old one when the last reference is dropped, so a
 * submission that began under the old rules finishes under them. The
 * chosen rule is copied onto the task by svc.c, so a reload never changes
 * a task already accepted.
 */
#include "apubid.h"

#include <fnmatch.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RULES_MAX 1000            /* rules in one configuration */
#define RULES_NAME_MAX 64         /* characters in a rule's name */
#define RULES_MAX_DELAY_MS (30LL * 86400 * 1000) /* 30 days */
#define RULES_MAX_POLLS 1000000

/* One key=value token of a rule line. */
struct rules_token {
	char *key, *value;
};

/* Splits a rule line into tokens; 0, or -1 with the reason in err. The
 * caller frees the tokens (rules_tokens_free) in both cases. */
static int rules_tokenize(const char *line, struct rules_token **out, int *n, char *err,
			  size_t errlen)
{
	const char *p = line;
	*out = NULL;
	*n = 0;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			return 0;
		const char *k = p;
		while (*p && *p != '=' && *p != ' ' && *p != '\t' && *p != '"')
			p++;
		if (*p != '=' || p == k) {
			size_t len = strcspn(k, " \t");
			util_error(err, errlen, "expected key=value, not \"%.*s\"", (int)len, k);
			return -1;
		}
		char *key = util_strndup(k, (size_t)(p - k));
		p++; /* '=' */
		char *value;
		if (*p == '"') {
			/* Quoted: \" and \\ are the only escapes. */
			size_t cap = strlen(p) + 1, len = 0;
			value = util_malloc(cap);
			p++;
			while (*p && *p != '"') {
				if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
					p++;
				value[len++] = *p++;
			}
			value[len] = '\0';
			if (*p != '"') {
				util_error(err, errlen, "%s: the quoted value is not closed", key);
				free(key);
				free(value);
				return -1;
			}
			p++;
			if (*p && *p != ' ' && *p != '\t') {
				util_error(err, errlen, "%s: a space must follow the closing quote", key);
				free(key);
				free(value);
				return -1;
			}
		} else {
			const char *v = p;
			while (*p && *p != ' ' && *p != '\t' && *p != '"')
				p++;
			if (*p == '"') {
				util_error(err, errlen,
					     "%s: a value with a quote in it must be quoted whole (\"...\\\"...\")",
					     key);
				free(key);
				return -1;
			}
			value = util_strndup(v, (size_t)(p - v));
		}
		struct rules_token *grown = util_malloc((size_t)(*n + 1) * sizeof *grown);
		if (*n)
			memcpy(grown, *out, (size_t)*n * sizeof *grown);
		free(*out);
		*out = grown;
		(*out)[*n].key = key;
		(*out)[*n].value = value;
		(*n)++;
	}
}

static void rules_tokens_free(struct rules_token *t, int n)
{
	for (int i = 0; i < n; i++) {
		free(t[i].key);
		free(t[i].value);
	}
	free(t);
}

static void rules_rule_clear(struct rule *r)
{
	free(r->name);
	free(r->dest_glob);
	free(r->src_glob);
	free(r->fail);
	free(r->faultstring);
	free(r->destination);
	memset(r, 0, sizeof *r);
}

void rules_free(struct rules *rs)
{
	if (!rs)
		return;
	for (int i = 0; i < rs->n; i++)
		rules_rule_clear(&rs->v[i]);
	free(rs->v);
	free(rs);
}

static int rules_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > RULES_NAME_MAX)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.'))
			return 0;
	return 1;
}

/* A whole non-negative decimal number up to `max`; -1 otherwise. */
static int64_t rules_number(const char *s, const char **end, int64_t max)
{
	int64_t n = 0;
	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		n = n * 10 + (*s - '0');
		if (n > max)
			return -1;
	}
	*end = s;
	return n;
}

/* "forever", or a number with ms, s, m or h (seconds without a unit). */
static int rules_duration(const char *v, int64_t *ms)
{
	const char *end;
	if (strcmp(v, "forever") == 0) {
		*ms = -1;
		return 0;
	}
	int64_t n = rules_number(v, &end, RULES_MAX_DELAY_MS);
	if (n < 0)
		return -1;
	int64_t mult = strcmp(end, "ms") == 0			 ? 1
		       : strcmp(end, "s") == 0 || *end == '\0' ? 1000
		       : strcmp(end, "m") == 0			 ? 60 * 1000
		       : strcmp(end, "h") == 0			 ? 3600 * 1000
								 : 0;
	if (!mult || n > RULES_MAX_DELAY_MS / mult)
		return -1;
	*ms = n * mult;
	return 0;
}

/* Which of the rule's keys the tokens set; the first error wins. */
static int rules_fill(struct rule *r, const struct rules_token *t, int n, const char *label,
		      char *err, size_t errlen)
{
	int have_op = 0, have_delay = 0, have_polls = 0, have_fault = 0;
	for (int i = 0; i < n; i++) {
		for (int j = 0; j < i; j++)
			if (strcmp(t[i].key, t[j].key) == 0) {
				util_error(err, errlen, "rule %s: %s is given twice", label, t[i].key);
				return -1;
			}
		const char *k = t[i].key, *v = t[i].value, *end;
		if (strcmp(k, "name") == 0) {
			r->name = util_strdup(v); /* checked by the caller */
		} else if (strcmp(k, "op") == 0) {
			have_op = 1;
			if (strcasecmp(v, "LoadAsset") == 0)
				r->ops = RULE_LOAD;
			else if (strcasecmp(v, "PurgeAsset") == 0)
				r->ops = RULE_PURGE;
			else if (strcmp(v, "*") == 0)
				r->ops = RULE_LOAD | RULE_PURGE;
			else {
				util_error(err, errlen,
					     "rule %s: op must be LoadAsset, PurgeAsset or *, not \"%s\"",
					     label, v);
				return -1;
			}
		} else if (strcmp(k, "dest") == 0 || strcmp(k, "src") == 0) {
			if (!*v) {
				util_error(err, errlen, "rule %s: %s needs a pattern", label, k);
				return -1;
			}
			if (*k == 'd')
				r->dest_glob = util_strdup(v);
			else
				r->src_glob = util_strdup(v);
		} else if (strcmp(k, "delay") == 0) {
			have_delay = 1;
			if (rules_duration(v, &r->delay_ms) < 0) {
				util_error(err, errlen,
					     "rule %s: delay must be a duration such as 500ms, 30s, 5m, 1h "
					     "(at most 30 days) or forever, not \"%s\"",
					     label, v);
				return -1;
			}
		} else if (strcmp(k, "polls") == 0) {
			have_polls = 1;
			int64_t p = strcmp(v, "forever") == 0 ? -1 : rules_number(v, &end, RULES_MAX_POLLS);
			if (strcmp(v, "forever") != 0 && (p < 0 || *end)) {
				util_error(err, errlen,
					     "rule %s: polls must be a number from 0 to %d or forever, not \"%s\"",
					     label, RULES_MAX_POLLS, v);
				return -1;
			}
			r->polls = (int)p;
		} else if (strcmp(k, "fail") == 0) {
			if (!*v) {
				util_error(err, errlen, "rule %s: fail needs a reason", label);
				return -1;
			}
			r->fail = util_strdup(v);
		} else if (strcmp(k, "fault") == 0) {
			have_fault = 1;
			int64_t s = rules_number(v, &end, 999);
			if (s < 400 || s > 599 || *end) {
				util_error(err, errlen,
					     "rule %s: fault must be an HTTP status from 400 to 599, not \"%s\"",
					     label, v);
				return -1;
			}
			r->fault_status = (int)s;
		} else if (strcmp(k, "faultstring") == 0) {
			if (!*v) {
				util_error(err, errlen, "rule %s: faultstring needs a message", label);
				return -1;
			}
			r->faultstring = util_strdup(v);
		} else if (strcmp(k, "destination") == 0) {
			r->destination = util_strdup(v);
		} else {
			util_error(err, errlen, "rule %s: unknown key \"%s\"", label, k);
			return -1;
		}
	}
	if (!have_op) {
		util_error(err, errlen, "rule %s: op= is required (LoadAsset, PurgeAsset or *)", label);
		return -1;
	}
	if (r->faultstring && !have_fault) {
		util_error(err, errlen, "rule %s: faultstring needs fault=STATUS", label);
		return -1;
	}
	if (have_fault && (have_delay || have_polls || r->fail || r->destination)) {
		util_error(err, errlen,
			     "rule %s: fault cannot be combined with delay, polls, fail or destination "
			     "(a refused submission records no task)",
			     label);
		return -1;
	}
	if (r->fail && r->destination) {
		util_error(err, errlen,
			     "rule %s: fail and destination cannot be combined (a failed load has no "
			     "DestinationAsset)",
			     label);
		return -1;
	}
	if (r->ops == RULE_PURGE && r->destination) {
		util_error(err, errlen,
			     "rule %s: destination applies to LoadAsset only (a purge answers none)", label);
		return -1;
	}
	if (r->ops == RULE_PURGE && r->src_glob) {
		util_error(err, errlen,
			     "rule %s: src never matches a PurgeAsset (it has no SourceAssetUrl)", label);
		return -1;
	}
	return 0;
}

int rules_add(struct rules **rs, const char *line, char *err, size_t errlen)
{
	struct rules_token *t = NULL;
	int n = 0, rc = -1;
	struct rule r;
	char label[RULES_NAME_MAX + 8];
	char e[512];
	memset(&r, 0, sizeof r);
	/* Until its name is known, a rule is called by its position. */
	snprintf(label, sizeof label, "%d", (*rs ? (*rs)->n : 0) + 1);
	if ((*rs ? (*rs)->n : 0) >= RULES_MAX) {
		util_error(err, errlen, "at most %d rules are allowed", RULES_MAX);
		return -1;
	}
	if (rules_tokenize(line, &t, &n, e, sizeof e) < 0) {
		util_error(err, errlen, "rule %s: %s", label, e);
		goto out;
	}
	const char *name = NULL;
	for (int i = 0; i < n; i++)
		if (strcmp(t[i].key, "name") == 0 && !name)
			name = t[i].value;
	if (!name) {
		util_error(err, errlen, "rule %s: name= is required", label);
		goto out;
	}
	if (!rules_name_ok(name)) {
		util_error(err, errlen,
			     "rule %s: the name must be 1 to %d letters, digits, '-', '_' or '.', not \"%s\"",
			     label, RULES_NAME_MAX, name);
		goto out;
	}
	snprintf(label, sizeof label, "%s", name);
	for (int i = 0; *rs && i < (*rs)->n; i++)
		if (strcmp((*rs)->v[i].name, name) == 0) {
			util_error(err, errlen, "rule %s: a rule of that name is already defined", label);
			goto out;
		}
	if (rules_fill(&r, t, n, label, err, errlen) < 0)
		goto out;
	if (!*rs)
		*rs = util_calloc(1, sizeof **rs);
	struct rule *grown = util_malloc((size_t)((*rs)->n + 1) * sizeof *grown);
	if ((*rs)->n)
		memcpy(grown, (*rs)->v, (size_t)(*rs)->n * sizeof *grown);
	free((*rs)->v);
	(*rs)->v = grown;
	(*rs)->v[(*rs)->n++] = r;
	memset(&r, 0, sizeof r);
	rc = 0;
out:
	rules_rule_clear(&r);
	rules_tokens_free(t, n);
	return rc;
}

const struct rule *rules_match(const struct rules *rs, int op, const char *src, const char *dst)
{
	if (!rs)
		return NULL;
	for (int i = 0; i < rs->n; i++) {
		const struct rule *r = &rs->v[i];
		if (!(r->ops & op))
			continue;
		if (r->dest_glob && fnmatch(r->dest_glob, dst ? dst : "", 0) != 0)
			continue;
		if (r->src_glob && (!src || fnmatch(r->src_glob, src, 0) != 0))
			continue;
		return r;
	}
	return NULL;
}

static int rules_same_str(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

int rules_same(const struct rules *a, const struct rules *b)
{
	int na = a ? a->n : 0, nb = b ? b->n : 0;
	if (na != nb)
		return 0;
	for (int i = 0; i < na; i++) {
		const struct rule *x = &a->v[i], *y = &b->v[i];
		if (!rules_same_str(x->name, y->name) || x->ops != y->ops ||
		    !rules_same_str(x->dest_glob, y->dest_glob) ||
		    !rules_same_str(x->src_glob, y->src_glob) || x->delay_ms != y->delay_ms ||
		    x->polls != y->polls || !rules_same_str(x->fail, y->fail) ||
		    x->fault_status != y->fault_status ||
		    !rules_same_str(x->faultstring, y->faultstring) ||
		    !rules_same_str(x->destination, y->destination))
			return 0;
	}
	return 1;
}

struct rules *rules_copy(const struct rules *rs)
{
	if (!rs)
		return NULL;
	struct rules *c = util_calloc(1, sizeof *c);
	c->v = util_calloc(rs->n ? (size_t)rs->n : 1, sizeof *c->v);
	c->n = rs->n;
	for (int i = 0; i < rs->n; i++) {
		const struct rule *r = &rs->v[i];
		struct rule *d = &c->v[i];
		*d = *r;
		d->name = util_strdup(r->name);
		d->dest_glob = util_strdup(r->dest_glob);
		d->src_glob = util_strdup(r->src_glob);
		d->fail = util_strdup(r->fail);
		d->faultstring = util_strdup(r->faultstring);
		d->destination = util_strdup(r->destination);
	}
	return c;
}

/* ---- the set in force ---------------------------------------------------
 *
 * A set and the references held on it. The current set is rules_live; a
 * set replaced while referenced waits on rules_retired until its last
 * reference goes. One mutex guards both lists and every count: it is held
 * for a few instructions per submission, never while a rule is used.
 */
struct rules_ref {
	struct rules *rs;
	int refs;
	struct rules_ref *next;
};

static pthread_mutex_t rules_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rules_ref *rules_live;
static struct rules_ref *rules_retired;

const struct rules *rules_current(void)
{
	const struct rules *rs = NULL;
	pthread_mutex_lock(&rules_lock);
	if (rules_live) {
		rules_live->refs++;
		rs = rules_live->rs;
	}
	pthread_mutex_unlock(&rules_lock);
	return rs;
}

void rules_release(const struct rules *rs)
{
	if (!rs)
		return;
	pthread_mutex_lock(&rules_lock);
	if (rules_live && rules_live->rs == rs) {
		rules_live->refs--;
	} else {
		for (struct rules_ref **pp = &rules_retired; *pp; pp = &(*pp)->next) {
			struct rules_ref *ref = *pp;
			if (ref->rs != rs)
				continue;
			if (--ref->refs == 0) {
				*pp = ref->next;
				rules_free(ref->rs);
				free(ref);
			}
			break;
		}
	}
	pthread_mutex_unlock(&rules_lock);
}

void rules_set(struct rules *rs)
{
	struct rules_ref *ref = NULL;
	if (rs) {
		ref = util_calloc(1, sizeof *ref);
		ref->rs = rs;
	}
	pthread_mutex_lock(&rules_lock);
	struct rules_ref *old = rules_live;
	rules_live = ref;
	if (old && old->refs > 0) {
		old->next = rules_retired;
		rules_retired = old;
		old = NULL;
	}
	pthread_mutex_unlock(&rules_lock);
	if (old) {
		rules_free(old->rs);
		free(old);
	}
}

/*
 * test_rules.c - [staging] rules: parsing every key, quoting, every
 * refusal, matching on the operation and the globs (the first rule that
 * matches wins), and the set in force across rules_set.
 */
#include "apubid.h"
#include "harness.h"

#include <stdlib.h>

static char err[512];

/* Parses one line into a fresh set; the set, or NULL with err. */
static struct rules *parse(const char *line)
{
	struct rules *rs = NULL;
	err[0] = '\0';
	if (rules_add(&rs, line, err, sizeof err) < 0) {
		rules_free(rs);
		return NULL;
	}
	return rs;
}

/* 1 when `line` is refused with a message containing `want`. */
static int refused(const char *line, const char *want)
{
	struct rules *rs = parse(line);
	if (rs || !strstr(err, want)) {
		fprintf(stderr, "  [%s] gave %s \"%s\"; wanted \"%s\"\n", line,
			rs ? "success" : "error", err, want);
		rules_free(rs);
		return 0;
	}
	return 1;
}

static void test_every_key_is_parsed(void)
{
	struct rules *rs = parse("name=slow op=LoadAsset dest=movies/* src=\"ftp://in/*.ts\" "
				 "delay=2s polls=3 destination=http://cdn.example/x");
	CHECK(rs && rs->n == 1);
	const struct rule *r = &rs->v[0];
	CHECK_STR(r->name, "slow");
	CHECK(r->ops == RULE_LOAD);
	CHECK_STR(r->dest_glob, "movies/*");
	CHECK_STR(r->src_glob, "ftp://in/*.ts");
	CHECK(r->delay_ms == 2000);
	CHECK(r->polls == 3);
	CHECK(r->fail == NULL && r->fault_status == 0 && r->faultstring == NULL);
	CHECK_STR(r->destination, "http://cdn.example/x");
	rules_free(rs);

	rs = parse("name=refuse op=* fault=503 faultstring=\"come back later\"");
	CHECK(rs);
	CHECK(rs->v[0].ops == (RULE_LOAD | RULE_PURGE));
	CHECK(rs->v[0].fault_status == 503);
	CHECK_STR(rs->v[0].faultstring, "come back later");
	CHECK(rs->v[0].dest_glob == NULL && rs->v[0].src_glob == NULL);
	rules_free(rs);

	rs = parse("op=PurgeAsset name=gone fail=\"disk on fire\" delay=forever polls=forever");
	CHECK(rs);
	CHECK(rs->v[0].ops == RULE_PURGE);
	CHECK_STR(rs->v[0].fail, "disk on fire");
	CHECK(rs->v[0].delay_ms == -1 && rs->v[0].polls == -1);
	rules_free(rs);
}

static void test_durations_take_units(void)
{
	static const struct {
		const char *v;
		int64_t ms;
	} d[] = { { "500ms", 500 }, { "30s", 30000 }, { "30", 30000 }, { "5m", 300000 },
		  { "1h", 3600000 }, { "0s", 0 }, { "forever", -1 } };
	for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
		char *line = util_printf("name=d op=* delay=%s", d[i].v);
		struct rules *rs = parse(line);
		free(line);
		CHECK(rs);
		CHECK(rs->v[0].delay_ms == d[i].ms);
		rules_free(rs);
	}
	CHECK(refused("name=d op=* delay=2d", "rule d: delay must be a duration"));
	CHECK(refused("name=d op=* delay=-1s", "delay must be"));
	CHECK(refused("name=d op=* delay=31000h", "at most 30 days"));
	CHECK(refused("name=d op=* delay=", "delay must be"));
}

static void test_quoted_values_keep_spaces_escapes_and_may_be_empty(void)
{
	struct rules *rs = parse("name=q op=LoadAsset fail=\"say \\\"no\\\" \\\\ twice\"");
	CHECK(rs);
	CHECK_STR(rs->v[0].fail, "say \"no\" \\ twice");
	rules_free(rs);
	rs = parse("name=empty op=LoadAsset destination=\"\"");
	CHECK(rs);
	CHECK_STR(rs->v[0].destination, "");
	rules_free(rs);
	/* An unquoted empty value is empty too. */
	rs = parse("name=empty op=LoadAsset destination=");
	CHECK(rs);
	CHECK_STR(rs->v[0].destination, "");
	rules_free(rs);
	/* '=' belongs to the value after the first one; a backslash before
	 * anything but '"' or '\' stays. */
	rs = parse("name=eq\top=*   faultstring=\"a=b \\n\" fault=400");
	CHECK(rs);
	CHECK_STR(rs->v[0].faultstring, "a=b \\n");
	rules_free(rs);
}

static void test_bad_rules_are_refused_with_the_rule_named(void)
{
	CHECK(refused("op=*", "rule 1: name= is required"));
	CHECK(refused("name=x", "rule x: op= is required"));
	CHECK(refused("name=x op=Load", "rule x: op must be LoadAsset, PurgeAsset or *, not \"Load\""));
	CHECK(refused("name=x op=* dst=a", "rule x: unknown key \"dst\""));
	CHECK(refused("name=x op=* polls=many", "rule x: polls must be a number"));
	CHECK(refused("name=x op=* polls=-2", "polls must be"));
	CHECK(refused("name=x op=* fault=302", "rule x: fault must be an HTTP status from 400 to 599"));
	CHECK(refused("name=x op=* fault=600", "fault must be"));
	CHECK(refused("name=x op=* faultstring=oops", "rule x: faultstring needs fault=STATUS"));
	CHECK(refused("name=x op=* fault=503 delay=1s", "fault cannot be combined"));
	CHECK(refused("name=x op=* fault=503 fail=no", "fault cannot be combined"));
	CHECK(refused("name=x op=LoadAsset fail=a destination=b", "fail and destination cannot"));
	CHECK(refused("name=x op=PurgeAsset destination=b", "destination applies to LoadAsset only"));
	CHECK(refused("name=x op=PurgeAsset src=*", "src never matches a PurgeAsset"));
	CHECK(refused("name=x op=* fail=", "rule x: fail needs a reason"));
	CHECK(refused("name=x op=* dest=\"\"", "rule x: dest needs a pattern"));
	CHECK(refused("name=x op=* op=*", "rule x: op is given twice"));
	CHECK(refused("name=\"a b\" op=*", "the name must be"));
	CHECK(refused("name=x op=* fail=\"open", "rule 1: fail: the quoted value is not closed"));
	CHECK(refused("name=x op=* fail=\"a\"b", "a space must follow the closing quote"));
	CHECK(refused("name=x op=* fail=a\"b\"", "must be quoted whole"));
	CHECK(refused("name=x op=* junk", "expected key=value, not \"junk\""));
	CHECK(refused("name=x op=* =v", "expected key=value"));
	CHECK(refused("", "rule 1: name= is required"));
}

static void test_names_are_unique_and_errors_number_the_rule(void)
{
	struct rules *rs = NULL;
	CHECK(rules_add(&rs, "name=a op=*", err, sizeof err) == 0);
	CHECK(rules_add(&rs, "name=b op=LoadAsset", err, sizeof err) == 0);
	CHECK(rules_add(&rs, "name=a op=PurgeAsset", err, sizeof err) < 0);
	CHECK_STR(err, "rule a: a rule of that name is already defined");
	CHECK(rules_add(&rs, "op=PurgeAsset", err, sizeof err) < 0);
	CHECK_STR(err, "rule 3: name= is required");
	CHECK(rs->n == 2);
	rules_free(rs);
}

static void test_a_rule_without_outcome_only_tags(void)
{
	struct rules *rs = parse("name=tag op=*");
	CHECK(rs);
	const struct rule *r = &rs->v[0];
	CHECK(r->delay_ms == 0 && r->polls == 0 && !r->fail && !r->fault_status && !r->destination);
	rules_free(rs);
}

static void test_matching_on_op_and_globs_first_wins(void)
{
	struct rules *rs = NULL;
	const char *lines[] = {
		"name=purges op=PurgeAsset dest=old/*",
		"name=ts op=LoadAsset src=*.ts",
		"name=movies op=* dest=movies/*",
		"name=deep op=LoadAsset dest=*/x/*",
		"name=any-load op=LoadAsset dest=special",
	};
	for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
		CHECK(rules_add(&rs, lines[i], err, sizeof err) == 0);
	const struct rule *r;
	r = rules_match(rs, RULE_PURGE, NULL, "old/a.mp4");
	CHECK(r && strcmp(r->name, "purges") == 0);
	/* The op decides before the pattern does. */
	r = rules_match(rs, RULE_LOAD, "file:///in/a.mp4", "old/a.mp4");
	CHECK(r == NULL);
	/* First match wins: "ts" comes before "movies". */
	r = rules_match(rs, RULE_LOAD, "file:///in/a.ts", "movies/a.ts");
	CHECK(r && strcmp(r->name, "ts") == 0);
	r = rules_match(rs, RULE_LOAD, "file:///in/a.mp4", "movies/a.mp4");
	CHECK(r && strcmp(r->name, "movies") == 0);
	/* src= never matches a purge. */
	r = rules_match(rs, RULE_PURGE, NULL, "x.ts");
	CHECK(r == NULL);
	r = rules_match(rs, RULE_PURGE, NULL, "movies/a.mp4");
	CHECK(r && strcmp(r->name, "movies") == 0);
	/* '*' crosses '/'. */
	r = rules_match(rs, RULE_LOAD, "file:///in/a.mp4", "a/b/x/c/d");
	CHECK(r && strcmp(r->name, "deep") == 0);
	/* A glob matches the whole value, not a part of it. */
	r = rules_match(rs, RULE_LOAD, "file:///in/a.mp4", "special/too");
	CHECK(r == NULL);
	r = rules_match(rs, RULE_LOAD, "file:///in/a.mp4", "special");
	CHECK(r && strcmp(r->name, "any-load") == 0);
	CHECK(rules_match(NULL, RULE_LOAD, "a", "b") == NULL);
	rules_free(rs);
}

static void test_copies_compare_equal_and_changes_do_not(void)
{
	struct rules *a = NULL, *b = NULL;
	CHECK(rules_add(&a, "name=a op=* delay=1s", err, sizeof err) == 0);
	CHECK(rules_add(&a, "name=b op=LoadAsset destination=\"\"", err, sizeof err) == 0);
	struct rules *c = rules_copy(a);
	CHECK(rules_same(a, c));
	CHECK(c->v[1].destination && c->v[1].destination != a->v[1].destination);
	CHECK(rules_add(&b, "name=a op=* delay=2s", err, sizeof err) == 0);
	CHECK(rules_add(&b, "name=b op=LoadAsset destination=\"\"", err, sizeof err) == 0);
	CHECK(!rules_same(a, b));
	CHECK(!rules_same(a, NULL));
	CHECK(rules_same(NULL, NULL));
	CHECK(rules_copy(NULL) == NULL);
	rules_free(a);
	rules_free(b);
	rules_free(c);
}

/* A set replaced while a reference is held stays readable until released. */
static void test_the_set_in_force_outlives_a_reload_while_referenced(void)
{
	CHECK(rules_current() == NULL);
	struct rules *one = NULL, *two = NULL;
	CHECK(rules_add(&one, "name=one op=*", err, sizeof err) == 0);
	CHECK(rules_add(&two, "name=two op=*", err, sizeof err) == 0);
	rules_set(one);
	const struct rules *held = rules_current();
	CHECK(held == one);
	rules_set(two);
	CHECK_STR(held->v[0].name, "one"); /* still readable (valgrind checks) */
	const struct rules *now = rules_current();
	CHECK(now == two);
	rules_release(held);
	rules_release(now);
	rules_set(NULL);
	CHECK(rules_current() == NULL);
	rules_release(NULL);
}

int main(void)
{
	RUN(test_every_key_is_parsed);
	RUN(test_durations_take_units);
	RUN(test_quoted_values_keep_spaces_escapes_and_may_be_empty);
	RUN(test_bad_rules_are_refused_with_the_rule_named);
	RUN(test_names_are_unique_and_errors_number_the_rule);
	RUN(test_a_rule_without_outcome_only_tags);
	RUN(test_matching_on_op_and_globs_first_wins);
	RUN(test_copies_compare_equal_and_changes_do_not);
	RUN(test_the_set_in_force_outlives_a_reload_while_referenced);
	return HARNESS_END("test_rules");
}

/*
 * test_util.c - the TaskId reader every entry point shares (SOAP, the task
 * views, apubictl): UUID-shaped values in any case are read upper-case,
 * anything else is refused.
 */
#include "apubid.h"
#include "harness.h"

#include <string.h>

static int parses(const char *s, const char *want)
{
	char out[TASKID_LEN];
	if (util_taskid_parse(s, strlen(s), out) < 0)
		return 0;
	return strcmp(out, want) == 0;
}

static int refused(const char *s, size_t n)
{
	char out[TASKID_LEN] = "untouched";
	return util_taskid_parse(s, n, out) < 0 && strcmp(out, "untouched") == 0;
}

static void test_upper_case_taskid_reads_as_itself(void)
{
	CHECK(parses("3F2B8C1E-6A0D-4C55-9E1B-0D7A2C4F9B10",
		     "3F2B8C1E-6A0D-4C55-9E1B-0D7A2C4F9B10"));
}

static void test_lower_and_mixed_case_taskids_read_upper_case(void)
{
	CHECK(parses("3f2b8c1e-6a0d-4c55-9e1b-0d7a2c4f9b10",
		     "3F2B8C1E-6A0D-4C55-9E1B-0D7A2C4F9B10"));
	CHECK(parses("3f2B8c1E-6a0D-4c55-9E1b-0d7A2c4F9b10",
		     "3F2B8C1E-6A0D-4C55-9E1B-0D7A2C4F9B10"));
}

static void test_an_issued_taskid_reads_back(void)
{
	char id[TASKID_LEN], out[TASKID_LEN];
	util_uuid(id);
	CHECK(util_taskid_parse(id, strlen(id), out) == 0);
	CHECK_STR(out, id);
}

static void test_values_not_shaped_like_a_uuid_are_refused(void)
{
	const char *bad[] = {
		"", "PromoClip7", "3F2B8C1E-6A0D-4C55-9E1B-0D7A2C4F9B1",     /* short */
		"3F2B8C1E-6A0D-4C55-9E1B-0D7A2C4F9B100",                     /* long */
		"3F2B8C1E6A0D-4C55-9E1B-0D7A2C4F9B10-",                      /* dash moved */
		"3F2B8C1E-6A0D-4C55-9E1B-0D7A2C4F9B1G",                      /* not hex */
		"3F2B8C1E-6A0D-4C55-9E1B 0D7A2C4F9B10",                      /* space */
		"{3F2B8C1E-6A0D-4C55-9E1B-0D7A2C4F9B}",                      /* braces */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CHECK(refused(bad[i], strlen(bad[i])));
}

static void test_only_the_given_length_is_read(void)
{
	/* A view's name is "ID.json": the parser sees the ID's bytes only. */
	const char *name = "3f2b8c1e-6a0d-4c55-9e1b-0d7a2c4f9b10.json";
	char out[TASKID_LEN];
	CHECK(util_taskid_parse(name, 36, out) == 0);
	CHECK_STR(out, "3F2B8C1E-6A0D-4C55-9E1B-0D7A2C4F9B10");
	CHECK(refused(name, strlen(name)));
	/* A NUL inside the length is not a hexadecimal digit. */
	CHECK(refused("3F2B8C1E-6A0D-4C55-9E1B-0D7A2C4F9B1\0", 36));
}

int main(void)
{
	RUN(test_upper_case_taskid_reads_as_itself);
	RUN(test_lower_and_mixed_case_taskids_read_upper_case);
	RUN(test_an_issued_taskid_reads_back);
	RUN(test_values_not_shaped_like_a_uuid_are_refused);
	RUN(test_only_the_given_length_is_read);
	return HARNESS_END("test_util");
}

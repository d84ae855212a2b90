/*
 * harness.h - a small unit-test harness: each test file is one program
 * whose main() lists its tests with RUN(); CHECK() records a failure with
 * file:line and the failing expression and leaves the test. The program
 * prints "name: N passed, N failed" last and exits non-zero on failure.
 */
#ifndef HARNESS_H
#define HARNESS_H

#include <stdio.h>
#include <string.h>

static int harness_passed, harness_failed, harness_current_failed;

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__,   \
				__LINE__, #cond);                              \
			harness_current_failed = 1;                            \
			return;                                                \
		}                                                              \
	} while (0)

#define CHECK_STR(a, b)                                                        \
	do {                                                                   \
		const char *ha_ = (a), *hb_ = (b);                             \
		if (!ha_ || !hb_ || strcmp(ha_, hb_) != 0) {                   \
			fprintf(stderr, "  %s:%d: \"%s\" != \"%s\"\n", __FILE__,   \
				__LINE__, ha_ ? ha_ : "(null)",                \
				hb_ ? hb_ : "(null)");                         \
			harness_current_failed = 1;                            \
			return;                                                \
		}                                                              \
	} while (0)

#define RUN(test)                                                              \
	do {                                                                   \
		harness_current_failed = 0;                                    \
		test();                                                        \
		if (harness_current_failed) {                                  \
			harness_failed++;                                      \
			fprintf(stderr, "FAIL %s\n", #test);                   \
		} else {                                                       \
			harness_passed++;                                      \
		}                                                              \
	} while (0)

#define HARNESS_END(name)                                                      \
	(printf("%s: %d passed, %d failed\n", (name), harness_passed,          \
		harness_failed),                                               \
	 harness_failed ? 1 : 0)

#endif

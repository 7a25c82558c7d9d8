/* check.h - the one CHECK of the C unit tests.
 *
 *   CHECK(cond);                     counts, and on failure prints
 *   CHECK(cond, "got %d", x);        FILE:LINE: CHECK(cond) failed [message]
 *
 * A failed check does not stop the test: main() ends with
 * `return check_summary("test_x");`, which prints the counts and gives
 * the exit status.  Define CHECK_CONTEXT (a string expression naming the
 * case being run) before including to prefix every message with it. */
#ifndef RVF_CHECK_H
#define RVF_CHECK_H

#include <stdio.h>

#ifndef CHECK_CONTEXT
#define CHECK_CONTEXT ""
#endif

static int failures __attribute__((unused));
static int checks __attribute__((unused));

#define CHECK(cond, ...)                                                      \
	do {                                                                  \
		checks++;                                                     \
		if (!(cond)) {                                                \
			failures++;                                           \
			fprintf(stderr, "%s:%d: %s%sCHECK(%s) failed",        \
				__FILE__, __LINE__, CHECK_CONTEXT,            \
				*CHECK_CONTEXT ? ": " : "", #cond);           \
			fprintf(stderr, " " __VA_ARGS__);                     \
			fputc('\n', stderr);                                  \
		}                                                             \
	} while (0)

static inline __attribute__((unused)) int check_summary(const char *test)
{
	printf("%s: %d checks, %d failed\n", test, checks, failures);
	return failures ? 1 : 0;
}

#endif

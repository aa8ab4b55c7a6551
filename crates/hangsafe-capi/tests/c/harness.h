/*
 * harness.h - the small test harness the C ABI test programs share:
 * pass/fail counting with CHECK/CHECK_EQ/CHECK_FAILS, a monotonic clock,
 * a signal-proof sleep, and polling the pool's metrics until it settles.
 *
 * Each program includes it once; everything is static to that program.
 * A program ends with `return harness_summary();`, which prints the line
 * "N passed, M failed" that CI looks for.
 */
#ifndef HANGSAFE_TEST_HARNESS_H
#define HANGSAFE_TEST_HARNESS_H

#include "hangsafe.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int n_passed;
static int n_failed;
static const char *current = "";	/* the test that runs, for messages */

static inline void check_at(int ok, const char *what, const char *file,
			    int line)
{
	if (ok) {
		n_passed++;
	} else {
		n_failed++;
		fprintf(stderr, "FAIL [%s] %s:%d: %s\n", current, file, line,
			what);
	}
}

#define CHECK(cond) check_at((cond) ? 1 : 0, #cond, __FILE__, __LINE__)

/* Like CHECK, with the two integers shown on failure. */
#define CHECK_EQ(a, b)                                                     \
	do {                                                               \
		long long a_ = (long long)(a), b_ = (long long)(b);        \
		if (a_ != b_)                                              \
			fprintf(stderr, "  %s = %lld, %s = %lld\n", #a, a_, \
				#b, b_);                                   \
		check_at(a_ == b_, #a " == " #b, __FILE__, __LINE__);      \
	} while (0)

/* `expr` returns -1 and sets errno to `err`. */
#define CHECK_FAILS(expr, err)                                             \
	do {                                                               \
		long long r_;                                              \
		int e_;                                                    \
		errno = 0;                                                 \
		r_ = (long long)(expr);                                    \
		e_ = errno;                                                \
		if (r_ != -1 || e_ != (err))                               \
			fprintf(stderr,                                    \
				"  %s = %lld, errno %d (%s); want -1, %s\n", \
				#expr, r_, e_, strerror(e_), #err);        \
		check_at(r_ == -1 && e_ == (err), #expr " fails with " #err, \
			 __FILE__, __LINE__);                              \
	} while (0)

static inline double now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A plain (libc) sleep that resumes after signals. */
static inline void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Reads the metrics; fails the test (and zeroes *m) if that fails. */
static inline void metrics(struct hs_runner_metrics *m)
{
	if (hs_runner_metrics(m) != 0) {
		check_at(0, "hs_runner_metrics(m) == 0", __FILE__, __LINE__);
		memset(m, 0, sizeof(*m));
	}
}

/*
 * Polls until no runner context is left and no thread runs work, or `secs`
 * pass; returns whether that happened, with the last snapshot in *m.
 */
static inline int wait_settled(struct hs_runner_metrics *m, double secs)
{
	double end = now_sec() + secs;

	for (;;) {
		metrics(m);
		if (m->live_contexts == 0 && m->threads_running == 0)
			return 1;
		if (now_sec() >= end)
			return 0;
		sleep_ms(1);
	}
}

/* Prints the summary line; the program's exit status. */
static inline int harness_summary(void)
{
	printf("%d passed, %d failed\n", n_passed, n_failed);
	return n_failed ? 1 : 0;
}

#endif /* HANGSAFE_TEST_HARNESS_H */

/*
 * runner_test.c - exercises every function of runner.h and hangsafe.h
 * through the C ABI of libhangsafe.
 *
 * Built and run by tests/c_abi.rs (statically, dynamically, and under
 * valgrind). Every wait is a poll loop with a bound of several seconds, so
 * a slow machine (or valgrind) makes the test slower, not flaky.
 *
 * Prints "N passed, M failed" and exits non-zero if anything failed.
 */
#include "harness.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* ---- Work functions and their data -------------------------------------- */

/*
 * What the work of one runner tells the test that watches it (through a
 * pointer in the job, which the runner's copy keeps).
 */
struct probe {
	atomic_int started;	/* the work function was called */
	atomic_int finished;	/* ... and has returned */
	atomic_int hold;	/* while set, the work waits (at most a minute) */
};

/* What the tests pass to get_runner(). */
struct job {
	int32_t in;		/* input */
	int32_t sleep_ms;	/* how long the work sleeps first */
	int64_t out;		/* output: in * 2 */
	double ratio;		/* output: in / 4.0 */
	char tag[24];		/* "in" on the way in, "done" on the way out */
	struct probe *probe;	/* NULL, or where the work reports */
};

/* Set by the work functions, read by the tests. */
static atomic_int misaligned;	/* a work function got a badly aligned copy */
static atomic_int runs;		/* work functions that started */
static atomic_int finished;	/* work functions that returned */

/* Counted by the test: successful get_runner() calls. */
static long long spawned_ok;

static void work_compute(void *data)
{
	struct job *j = data;

	atomic_fetch_add(&runs, 1);
	if ((uintptr_t)data % 16 != 0)
		atomic_store(&misaligned, 1);
	if (j->probe) {
		double end = now_sec() + 60;

		atomic_store(&j->probe->started, 1);
		while (atomic_load(&j->probe->hold) && now_sec() < end)
			sleep_ms(1);
	}
	if (j->sleep_ms > 0)
		sleep_ms((unsigned int)j->sleep_ms);
	j->out = (int64_t)j->in * 2;
	j->ratio = j->in / 4.0;
	memset(j->tag, 0, sizeof(j->tag));
	strcpy(j->tag, "done");
	atomic_fetch_add(&finished, 1);
	if (j->probe)
		atomic_store(&j->probe->finished, 1);
}

static struct runner_context *start(runner_func f, struct job *j,
				    unsigned long timeout_usec)
{
	struct runner_context *r = get_runner(f, j, sizeof(*j), timeout_usec);

	if (r)
		spawned_ok++;
	return r;
}

/* Polls until the runner leaves RUNNER_RUNNING or `secs` pass. */
static int wait_decided(struct runner_context *r, double secs)
{
	double end = now_sec() + secs;
	int st;

	while ((st = check_runner(r, NULL, 0)) == RUNNER_RUNNING &&
	       now_sec() < end)
		sleep_ms(1);
	return st;
}

/* ---- Tests ------------------------------------------------------------ */

_Static_assert(RUNNER_IDLE == 0, "RUNNER_IDLE is 0");
_Static_assert(RUNNER_RUNNING == 1, "RUNNER_RUNNING is 1");
_Static_assert(RUNNER_DONE == 2, "RUNNER_DONE is 2");
_Static_assert(RUNNER_CANCELLED == 3, "RUNNER_CANCELLED is 3");
_Static_assert(RUNNER_DEAD == 4, "RUNNER_DEAD is 4");
_Static_assert(sizeof(struct hs_runner_metrics) == 11 * sizeof(uint64_t),
	       "hs_runner_metrics is eleven uint64_t");

static void test_enum_values(void)
{
	enum runner_status s = RUNNER_IDLE;

	CHECK_EQ(s, 0);
	CHECK_EQ(RUNNER_RUNNING, 1);
	CHECK_EQ(RUNNER_DONE, 2);
	CHECK_EQ(RUNNER_CANCELLED, 3);
	CHECK_EQ(RUNNER_DEAD, 4);
}

static void test_state_names(void)
{
	static const char *const names[] = { "idle", "running", "done",
					     "cancelled", "dead" };
	static const int bad[] = { -1, 5, 1000, INT_MIN, INT_MAX };
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const char *n = runner_state_name((int)i);

		CHECK(n != NULL && strcmp(n, names[i]) == 0);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *n = runner_state_name(bad[i]);

		CHECK(n != NULL && strcmp(n, "unknown") == 0);
	}
}

static void test_version(void)
{
	char want[64];
	const char *v = hs_version();

	snprintf(want, sizeof(want), "%d.%d.%d", HANGSAFE_VERSION_MAJOR,
		 HANGSAFE_VERSION_MINOR, HANGSAFE_VERSION_PATCH);
	CHECK(v != NULL && strcmp(v, want) == 0);
	CHECK(strcmp(want, "0.1.0") == 0);
}

static void test_bad_arguments(void)
{
	struct job j = { .in = 1 };
	struct hs_runner_metrics m;

	errno = 0;
	CHECK(get_runner(NULL, &j, sizeof(j), 0) == NULL);
	CHECK_EQ(errno, EINVAL);
	errno = 0;
	CHECK(get_runner(work_compute, NULL, sizeof(j), 0) == NULL);
	CHECK_EQ(errno, EINVAL);
	errno = 0;
	CHECK(get_runner(work_compute, &j, 0, 0) == NULL);
	CHECK_EQ(errno, EINVAL);
	errno = 0;
	CHECK(get_runner(NULL, NULL, 0, 1000) == NULL);
	CHECK_EQ(errno, EINVAL);

	errno = 0;
	CHECK_EQ(check_runner(NULL, &j, sizeof(j)), -1);
	CHECK_EQ(errno, EINVAL);
	errno = 0;
	CHECK_EQ(check_runner(NULL, NULL, 0), -1);
	CHECK_EQ(errno, EINVAL);

	release_runner(NULL);
	CHECK(1); /* still alive */

	errno = 0;
	CHECK_EQ(hs_runner_metrics(NULL), -1);
	CHECK_EQ(errno, EINVAL);
	CHECK_EQ(hs_runner_metrics(&m), 0);
	CHECK(atomic_load(&runs) == 0); /* no refused call ran anything */
}

/* A struct goes in, the worker changes it, it comes out on every check. */
static void test_copy_in_and_out(void)
{
	struct job j = { .in = 21, .sleep_ms = 20, .tag = "in" };
	struct job out, again;
	struct runner_context *r;
	double end;
	int st;

	r = start(work_compute, &j, 10 * 1000 * 1000);
	CHECK(r != NULL);
	if (!r)
		return;
	/* The runner works on its own copy: this must not reach it. */
	j.in = 999;

	memset(&out, 0x5a, sizeof(out));
	end = now_sec() + 10;
	while ((st = check_runner(r, &out, sizeof(out))) == RUNNER_RUNNING &&
	       now_sec() < end) {
		/* Nothing is written while running. */
		CHECK(out.in == 0x5a5a5a5a);
		sleep_ms(1);
	}
	CHECK_EQ(st, RUNNER_DONE);
	CHECK_EQ(out.in, 21);
	CHECK_EQ(out.sleep_ms, 20);
	CHECK_EQ(out.out, 42);
	CHECK(out.ratio == 5.25);
	CHECK(strcmp(out.tag, "done") == 0);
	CHECK(atomic_load(&misaligned) == 0);
	CHECK_EQ(j.in, 999); /* the caller's struct is not written */

	/* Still DONE: copied again, identically. */
	memset(&again, 0, sizeof(again));
	CHECK_EQ(check_runner(r, &again, sizeof(again)), RUNNER_DONE);
	CHECK(memcmp(&again, &out, sizeof(out)) == 0);
	memset(&again, 0xff, sizeof(again));
	CHECK_EQ(check_runner(r, &again, sizeof(again)), RUNNER_DONE);
	CHECK(memcmp(&again, &out, sizeof(out)) == 0);

	release_runner(r);
}

/* Runs one compute job to RUNNER_DONE; returns the handle or NULL. */
static struct runner_context *done_runner(int32_t in, struct job *result)
{
	struct job j = { .in = in, .tag = "in" };
	struct runner_context *r = start(work_compute, &j, 0);
	int st;

	CHECK(r != NULL);
	if (!r)
		return NULL;
	st = wait_decided(r, 10);
	CHECK_EQ(st, RUNNER_DONE);
	CHECK_EQ(check_runner(r, result, sizeof(*result)), RUNNER_DONE);
	CHECK_EQ(result->out, 2 * (int64_t)in);
	return r;
}

/* A smaller size copies only a prefix; the bytes after it stay as they were. */
static void test_prefix_copy(void)
{
	struct job full;
	unsigned char buf[sizeof(struct job) + 16];
	const unsigned int prefix = 6; /* not even a whole field */
	struct runner_context *r = done_runner(7, &full);
	size_t i;
	int tail_ok = 1;

	if (!r)
		return;
	memset(buf, 0xa5, sizeof(buf));
	CHECK_EQ(check_runner(r, buf, prefix), RUNNER_DONE);
	CHECK(memcmp(buf, &full, prefix) == 0);
	for (i = prefix; i < sizeof(buf); i++)
		if (buf[i] != 0xa5)
			tail_ok = 0;
	CHECK(tail_ok);

	/* Size 0 copies nothing at all. */
	memset(buf, 0xa5, sizeof(buf));
	CHECK_EQ(check_runner(r, buf, 0), RUNNER_DONE);
	tail_ok = 1;
	for (i = 0; i < sizeof(buf); i++)
		if (buf[i] != 0xa5)
			tail_ok = 0;
	CHECK(tail_ok);
	release_runner(r);
}

/* A larger size copies what exists; the rest stays as it was. */
static void test_larger_size(void)
{
	struct job full;
	unsigned char buf[sizeof(struct job) + 64];
	struct runner_context *r = done_runner(-3, &full);
	size_t i;
	int tail_ok = 1;

	if (!r)
		return;
	memset(buf, 0xa5, sizeof(buf));
	CHECK_EQ(check_runner(r, buf, sizeof(buf)), RUNNER_DONE);
	CHECK(memcmp(buf, &full, sizeof(full)) == 0);
	for (i = sizeof(full); i < sizeof(buf); i++)
		if (buf[i] != 0xa5)
			tail_ok = 0;
	CHECK(tail_ok);
	release_runner(r);
}

/* check_runner with data == NULL reports the state and copies nothing. */
static void test_null_data(void)
{
	struct job full;
	struct runner_context *r = done_runner(100, &full);

	if (!r)
		return;
	CHECK_EQ(check_runner(r, NULL, sizeof(full)), RUNNER_DONE);
	CHECK_EQ(check_runner(r, NULL, 0), RUNNER_DONE);
	CHECK_EQ(check_runner(r, NULL, UINT_MAX), RUNNER_DONE);
	release_runner(r);
}

/* The largest timeout is simply "far away": the runner completes. */
static void test_huge_timeout(void)
{
	struct job j = { .in = 8, .tag = "in" };
	struct job out;
	struct runner_context *r = start(work_compute, &j, ULONG_MAX);

	CHECK(r != NULL);
	if (!r)
		return;
	CHECK_EQ(wait_decided(r, 10), RUNNER_DONE);
	CHECK_EQ(check_runner(r, &out, sizeof(out)), RUNNER_DONE);
	CHECK_EQ(out.out, 16);
	release_runner(r);
}

/*
 * Work that runs far past a short deadline: it is reported CANCELLED (not
 * DONE), nothing is ever copied out, and it turns DEAD once the work
 * returns. The work is held until the test lets it go, so "past the
 * deadline" holds however slowly the machine runs.
 *
 * A runner whose deadline passes before a pool thread has picked its work
 * up never calls the work at all (runner.h, docs/races.md R1): it goes from
 * CANCELLED to DEAD at once. How soon a thread picks the work up is the
 * scheduler's business (under valgrind on a loaded machine it has taken
 * over 20 ms), so both paths are valid here; the probe says which one was
 * taken, and each is checked for what it must show.
 */
static void test_timeout(void)
{
	/* Static: a work that outlives a failed test still has its probe. */
	static struct probe p, p2;
	struct job j = { .in = 5, .tag = "in", .probe = &p };
	struct job j2 = { .in = 6, .tag = "in", .probe = &p2 };
	struct job out;
	unsigned char sentinel[sizeof(out)];
	struct runner_context *r, *r2;
	struct hs_runner_metrics m;
	unsigned long long cancelled_before, abandoned_before;
	double end;
	int st, st2 = -1, seen_done = 0, held;
	int finished_before = atomic_load(&finished);

	memset(&out, 0x3c, sizeof(out));
	memcpy(sentinel, &out, sizeof(out));
	atomic_store(&p.started, 0);
	atomic_store(&p.finished, 0);
	atomic_store(&p.hold, 1);
	atomic_store(&p2.started, 0);
	atomic_store(&p2.finished, 0);
	atomic_store(&p2.hold, 1);
	metrics(&m);
	cancelled_before = m.runners_cancelled;
	abandoned_before = m.abandoned_total;

	r = start(work_compute, &j, 50 * 1000); /* 50 ms */
	CHECK(r != NULL);
	if (!r)
		return;
	end = now_sec() + 10;
	while ((st = check_runner(r, &out, sizeof(out))) == RUNNER_RUNNING &&
	       now_sec() < end)
		sleep_ms(2);
	/* DEAD already only if the work was never called: it is held. */
	CHECK(st == RUNNER_CANCELLED ||
	      (st == RUNNER_DEAD && !atomic_load(&p.started)));
	CHECK(!atomic_load(&p.finished));
	CHECK(memcmp(&out, sentinel, sizeof(out)) == 0);

	/*
	 * A second runner, nobody polling: the timer still applies the
	 * deadline. Wait for its cancel to show in the metrics (which do not
	 * touch the runner) instead of sleeping and relying on check_runner(),
	 * which would apply the deadline itself.
	 */
	r2 = start(work_compute, &j2, 20 * 1000); /* 20 ms */
	CHECK(r2 != NULL);
	end = now_sec() + 10;
	do {
		sleep_ms(1);
		metrics(&m);
	} while (m.runners_cancelled < cancelled_before + 2 && now_sec() < end);
	CHECK_EQ(m.runners_cancelled, cancelled_before + 2);
	if (r2) {
		st2 = check_runner(r2, &out, sizeof(out));
		CHECK(st2 == RUNNER_CANCELLED ||
		      (st2 == RUNNER_DEAD && !atomic_load(&p2.started)));
		CHECK(memcmp(&out, sentinel, sizeof(out)) == 0);
	}

	/*
	 * Held work outlives its cancel by the pool's grace period: its thread
	 * is counted as abandoned (and uncounted once the work returns, which
	 * test_nothing_left_behind checks).
	 */
	end = now_sec() + 10;
	for (;;) {
		held = atomic_load(&p.started) + atomic_load(&p2.started);
		metrics(&m);
		if (m.abandoned_total - abandoned_before >=
			    (unsigned long long)held ||
		    now_sec() >= end)
			break;
		sleep_ms(5);
	}
	CHECK(m.abandoned_total - abandoned_before >= (unsigned long long)held);

	/* Once the work returns: DEAD, still no copy. */
	atomic_store(&p.hold, 0);
	end = now_sec() + 15;
	while ((st = check_runner(r, &out, sizeof(out))) != RUNNER_DEAD &&
	       now_sec() < end) {
		if (st == RUNNER_DONE)
			seen_done = 1;
		sleep_ms(5);
	}
	CHECK_EQ(st, RUNNER_DEAD);
	CHECK(!seen_done);
	CHECK(memcmp(&out, sentinel, sizeof(out)) == 0);
	/* DEAD is final. */
	CHECK_EQ(check_runner(r, &out, sizeof(out)), RUNNER_DEAD);
	CHECK(memcmp(&out, sentinel, sizeof(out)) == 0);
	release_runner(r);
	/* r2 is released while its work (if it was called) is still held. */
	release_runner(r2);
	atomic_store(&p2.hold, 0);

	/* Every work that was called returns; the others never will be. */
	CHECK(wait_settled(&m, 15));
	CHECK_EQ(atomic_load(&p.finished), atomic_load(&p.started));
	CHECK_EQ(atomic_load(&p2.finished), atomic_load(&p2.started));
	CHECK_EQ(atomic_load(&finished),
		 finished_before + atomic_load(&p.started) +
			 atomic_load(&p2.started));
	printf("timeout: first runner %s, second %s (%s)\n",
	       atomic_load(&p.started) ? "ran" : "never ran",
	       atomic_load(&p2.started) ? "ran" : "never ran",
	       runner_state_name(st2));
}

static void print_metrics(const char *when, const struct hs_runner_metrics *m)
{
	printf("metrics %s: alive %llu idle %llu running %llu abandoned %llu "
	       "(total %llu) spawned %llu done %llu cancelled %llu dead %llu "
	       "panicked %llu live %llu\n",
	       when, (unsigned long long)m->threads_alive,
	       (unsigned long long)m->threads_idle,
	       (unsigned long long)m->threads_running,
	       (unsigned long long)m->threads_abandoned,
	       (unsigned long long)m->abandoned_total,
	       (unsigned long long)m->runners_spawned,
	       (unsigned long long)m->runners_done,
	       (unsigned long long)m->runners_cancelled,
	       (unsigned long long)m->runners_dead,
	       (unsigned long long)m->runners_panicked,
	       (unsigned long long)m->live_contexts);
}

/*
 * Release right after get_runner(), hundreds of times: most runners are
 * released before a thread has started the work, which then never runs.
 * Each round waits until the pool has retired the runner, so the rounds
 * measure reuse: one idle thread serves them all.
 */
static void test_release_before_start(void)
{
	const int n = 300;
	struct hs_runner_metrics m;
	int i, ok = 1, settled = 1, runs_before = atomic_load(&runs);
	unsigned long long max_alive = 0;

	CHECK(wait_settled(&m, 15)); /* the timed-out work has returned */
	for (i = 0; i < n; i++) {
		struct job j = { .in = i };
		struct runner_context *r =
			start(work_compute, &j, (i % 2) ? 0 : 5 * 1000 * 1000);

		if (!r) {
			ok = 0;
			fprintf(stderr, "get_runner failed: %s\n",
				strerror(errno));
			continue;
		}
		release_runner(r);
		if (!wait_settled(&m, 10))
			settled = 0;
		if (m.threads_alive > max_alive)
			max_alive = m.threads_alive;
	}
	CHECK(ok);
	CHECK(settled);
	CHECK(atomic_load(&runs) - runs_before <= n);
	CHECK(max_alive <= 8);
	printf("release before start: %d of %d released runners ran, "
	       "at most %llu threads\n",
	       atomic_load(&runs) - runs_before, n, max_alive);
}

/*
 * Release while the work is running (it has started and is sleeping),
 * hundreds of times. Each round then waits for the work to return: its
 * thread must go back to the pool and serve the next round.
 */
static void test_release_while_running(void)
{
	const int n = 200;
	struct hs_runner_metrics m;
	int i, ok = 1, started_all = 1, returned_all = 1;
	unsigned long long max_alive = 0;

	for (i = 0; i < n; i++) {
		struct job j = { .in = i, .sleep_ms = 2 };
		int before = atomic_load(&runs);
		int fin_before = atomic_load(&finished);
		struct runner_context *r =
			start(work_compute, &j, (i % 2) ? 0 : 5 * 1000 * 1000);
		double end = now_sec() + 10;

		if (!r) {
			ok = 0;
			continue;
		}
		while (atomic_load(&runs) == before && now_sec() < end)
			sleep_ms(0);
		if (atomic_load(&runs) == before)
			started_all = 0;
		/* Released while the work sleeps: cancelled, never DONE. */
		release_runner(r);
		while (atomic_load(&finished) == fin_before && now_sec() < end)
			sleep_ms(0);
		if (!wait_settled(&m, 10))
			returned_all = 0;
		if (m.threads_alive > max_alive)
			max_alive = m.threads_alive;
	}
	CHECK(ok);
	CHECK(started_all);
	CHECK(returned_all);
	CHECK(max_alive <= 8);
	printf("release while running: at most %llu threads\n", max_alive);
}

/*
 * Once all work has returned, nothing is left behind: no runner context,
 * no busy thread, few threads, and every runner ended.
 */
static void test_nothing_left_behind(void)
{
	struct hs_runner_metrics m;
	double end = now_sec() + 15;

	/* Counters are relaxed: give the last increments time to show. */
	while (wait_settled(&m, 15) &&
	       m.runners_done + m.runners_dead != m.runners_spawned &&
	       now_sec() < end)
		sleep_ms(5);
	print_metrics("after the sequential tests", &m);
	CHECK_EQ(m.live_contexts, 0);
	CHECK_EQ(m.threads_running, 0);
	CHECK_EQ(m.threads_abandoned, 0);
	CHECK_EQ(m.runners_spawned, spawned_ok);
	CHECK_EQ(m.runners_done + m.runners_dead, m.runners_spawned);
	CHECK_EQ(m.runners_panicked, 0);
	CHECK(m.runners_cancelled >= 2); /* the two timeouts at least */
	/* Threads are reused, not piled up. */
	CHECK(m.threads_alive <= 16);
	CHECK_EQ(m.threads_alive, m.threads_idle);
}

/*
 * A burst of get+release with no pause. Runners are handed to threads
 * without a queue, so a burst may start extra threads; they must all come
 * back idle, and later spawns must reuse them instead of adding more.
 */
static void test_release_burst(void)
{
	const int n = 200;
	struct hs_runner_metrics m;
	unsigned long long alive_after_burst;
	int i, ok = 1, grew = 0;

	for (i = 0; i < n; i++) {
		struct job j = { .in = i };
		struct runner_context *r =
			start(work_compute, &j, (i % 2) ? 0 : 5 * 1000 * 1000);

		if (!r) {
			ok = 0;
			continue;
		}
		release_runner(r);
	}
	CHECK(ok);
	CHECK(wait_settled(&m, 15));
	print_metrics("after a burst", &m);
	CHECK_EQ(m.live_contexts, 0);
	CHECK(m.threads_alive <= (unsigned long long)n);
	CHECK_EQ(m.threads_alive, m.threads_idle);
	alive_after_burst = m.threads_alive;

	/* With idle threads around, sequential runners create none. */
	for (i = 0; i < 100; i++) {
		struct job j = { .in = i };
		struct runner_context *r = start(work_compute, &j, 0);

		if (r)
			release_runner(r);
		CHECK(wait_settled(&m, 10));
		if (m.threads_alive > alive_after_burst)
			grew = 1;
	}
	CHECK(!grew);
	CHECK_EQ(m.runners_spawned, spawned_ok);
}

/* An idle process burns no CPU: no spinning pool thread or timer. */
static void test_idle_cpu(void)
{
	struct rusage a, b;
	long long used_us;

	sleep_ms(100); /* let threads finish spinning and park */
	getrusage(RUSAGE_SELF, &a);
	sleep_ms(300);
	getrusage(RUSAGE_SELF, &b);
	used_us = (long long)(b.ru_utime.tv_sec - a.ru_utime.tv_sec) * 1000000 +
		  (b.ru_utime.tv_usec - a.ru_utime.tv_usec) +
		  (long long)(b.ru_stime.tv_sec - a.ru_stime.tv_sec) * 1000000 +
		  (b.ru_stime.tv_usec - a.ru_stime.tv_usec);
	printf("idle CPU over 300 ms: %lld us\n", used_us);
	CHECK(used_us < 50 * 1000);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("hangsafe %s\n", hs_version());

	test_enum_values();
	test_state_names();
	test_version();
	test_bad_arguments();
	test_copy_in_and_out();
	test_prefix_copy();
	test_larger_size();
	test_null_data();
	test_huge_timeout();
	test_timeout();
	test_release_before_start();
	test_release_while_running();
	test_nothing_left_behind();
	test_release_burst();
	test_idle_cpu();

	return harness_summary();
}

/*
 * set_test.c - the runner sets of hangsafe.h (hs_set_*) through the C ABI:
 * every function, every bad argument, re-entry from the drain callback,
 * and the races between drains, releases and cancels on several threads
 * (hazards H97..H104 and races R55..R56, docs/races.md).
 *
 * Built and run by tests/c_set.rs (statically, dynamically, and under
 * valgrind). Every wait is bounded by several seconds, so a slow machine
 * (or valgrind) makes the test slower, not flaky.
 *
 * Prints "N passed, M failed" and exits non-zero if anything failed.
 */
#include "harness.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int under_valgrind(void)
{
	return getenv("HANGSAFE_TEST_VALGRIND") != NULL;
}

/* ---- Work functions ------------------------------------------------------ */

/* What the quick work gets: a value to increment, a counter to bump. */
struct job {
	uint64_t value;		/* in: v, out: v + 1 */
	atomic_int *ended;	/* NULL, or counts returns */
};

static void work_add(void *data)
{
	struct job *j = data;

	j->value++;
	if (j->ended)
		atomic_fetch_add(j->ended, 1);
}

/*
 * Work that hangs in hs_poll() on the read end of a pipe nobody writes to,
 * until its runner is cancelled (deadline, cancel, release, free).
 */
struct hung {
	int fd;			/* the pipe's read end */
	atomic_int *ended;	/* NULL, or counts starts (ended[0]) and
				   returns (ended[1]) */
};

static void work_hang(void *data)
{
	struct hung *h = data;
	struct pollfd p = { h->fd, POLLIN, 0 };

	if (h->ended)
		atomic_fetch_add(&h->ended[0], 1);
	while (hs_poll(&p, 1, -1) >= 0 || errno == EINTR)
		if (hs_testcancel() != 0)
			break;
	if (h->ended)
		atomic_fetch_add(&h->ended[1], 1);
}

static int pipe_fds[2];

/*
 * A runner cancelled before its work started never runs the work: count
 * the starts and the returns, and wait until they match.
 */
static int all_returned(atomic_int *ended, double secs)
{
	double end = now_sec() + secs;

	while (atomic_load(&ended[1]) != atomic_load(&ended[0]) &&
	       now_sec() < end)
		sleep_ms(1);
	return atomic_load(&ended[1]) == atomic_load(&ended[0]);
}

/* ---- Draining ---------------------------------------------------------------- */

/* One delivered outcome. */
struct seen {
	hs_token token;
	int state;
	uint64_t value;		/* the job's value for RUNNER_DONE */
	unsigned int size;
};

/* What the recording callback fills in. */
struct record {
	struct seen *items;
	size_t n, cap;
	int bad_data;		/* DONE without data or DEAD with data */
};

static void record_outcome(void *arg, hs_token token, int state,
			   const void *data, unsigned int size)
{
	struct record *r = arg;
	struct seen s = { token, state, 0, size };

	if (state == RUNNER_DONE) {
		if (!data || size != sizeof(struct job))
			r->bad_data = 1;
		else
			s.value = ((const struct job *)data)->value;
	} else if (state != RUNNER_DEAD || data || size) {
		r->bad_data = 1;
	}
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 64;
		struct seen *p = realloc(r->items, cap * sizeof(*p));

		if (!p)
			abort();
		r->items = p;
		r->cap = cap;
	}
	r->items[r->n++] = s;
}

static void record_free(struct record *r)
{
	free(r->items);
	memset(r, 0, sizeof(*r));
}

/* How often `token` was delivered. */
static int times_seen(const struct record *r, hs_token token)
{
	int n = 0;

	for (size_t i = 0; i < r->n; i++)
		n += r->items[i].token == token;
	return n;
}

/* The state `token` was delivered with, or -1. */
static int state_of(const struct record *r, hs_token token)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->items[i].token == token)
			return r->items[i].state;
	return -1;
}

/*
 * The checker-loop step: poll the set's fd with its timeout (at most
 * 100 ms), then drain. Until `want` outcomes are recorded or `secs` pass.
 */
static void drain_until(hs_set *set, struct record *r, size_t want,
			double secs)
{
	double end = now_sec() + secs;

	while (r->n < want && now_sec() < end) {
		struct pollfd p = { hs_set_fd(set), POLLIN, 0 };
		int t = hs_set_timeout_ms(set);

		if (t < 0 || t > 100)
			t = 100;
		poll(&p, 1, t);
		if (hs_set_drain(set, record_outcome, r) < 0)
			check_at(0, "hs_set_drain(set, ...) >= 0", __FILE__,
				 __LINE__);
	}
}

static hs_token spawn_add(hs_set *set, uint64_t v, atomic_int *ended,
			  unsigned long timeout_usec)
{
	struct job j = { v, ended };

	return hs_set_spawn(set, work_add, &j, sizeof(j), timeout_usec);
}

static hs_token spawn_hung(hs_set *set, atomic_int *ended,
			   unsigned long timeout_usec)
{
	struct hung h = { pipe_fds[0], ended };

	return hs_set_spawn(set, work_hang, &h, sizeof(h), timeout_usec);
}

/* `0 and errno`, as hs_set_spawn() fails. */
#define CHECK_SPAWN_FAILS(expr, err)                                        \
	do {                                                                \
		hs_token t_;                                                \
		int e_;                                                     \
		errno = 0;                                                  \
		t_ = (expr);                                                \
		e_ = errno;                                                 \
		check_at(t_ == 0 && e_ == (err), #expr " fails with " #err, \
			 __FILE__, __LINE__);                               \
	} while (0)

/* ---- Basics -------------------------------------------------------------------- */

static void test_spawn_poll_drain(void)
{
	hs_set *set = hs_set_new();
	struct record r = { 0 };
	hs_token tok[50];
	struct pollfd p;

	current = "spawn_poll_drain";
	CHECK(set != NULL);
	CHECK(hs_set_fd(set) >= 0);
	CHECK_EQ(hs_set_timeout_ms(set), -1);
	p = (struct pollfd){ hs_set_fd(set), POLLIN, 0 };
	CHECK_EQ(poll(&p, 1, 0), 0);	/* nothing waits */
	CHECK_EQ(hs_set_drain(set, record_outcome, &r), 0);
	for (int i = 0; i < 50; i++) {
		tok[i] = spawn_add(set, (uint64_t)i * 10, NULL, 5000000);
		CHECK(tok[i] != 0);
		for (int k = 0; k < i; k++)
			if (tok[k] == tok[i])
				CHECK(!"tokens are distinct");
	}
	drain_until(set, &r, 50, 30);
	CHECK_EQ(r.n, 50);
	CHECK(!r.bad_data);
	for (int i = 0; i < 50; i++) {
		CHECK_EQ(times_seen(&r, tok[i]), 1);
		for (size_t k = 0; k < r.n; k++)
			if (r.items[k].token == tok[i])
				CHECK_EQ(r.items[k].value, (uint64_t)i * 10 + 1);
	}
	/* Drained: the fd is quiet, the set empty, every token stale. */
	p = (struct pollfd){ hs_set_fd(set), POLLIN, 0 };
	CHECK_EQ(poll(&p, 1, 0), 0);
	CHECK_EQ(hs_set_drain(set, record_outcome, &r), 0);
	CHECK_EQ(hs_set_timeout_ms(set), -1);
	CHECK_FAILS(hs_set_cancel(set, tok[0]), ESTALE);
	CHECK_FAILS(hs_set_release(set, tok[7]), ESTALE);
	hs_set_free(set);
	record_free(&r);
}

/* A deadline and a cancel are delivered RUNNER_DEAD; a decided runner
 * stays DONE when cancelled. */
static void test_deadline_and_cancel(void)
{
	hs_set *set = hs_set_new();
	struct record r = { 0 };
	atomic_int ended[2] = { 0, 0 };
	hs_token late, cancelled, done;
	int t;

	current = "deadline_and_cancel";
	late = spawn_hung(set, ended, 20000);		/* 20 ms */
	cancelled = spawn_hung(set, ended, 0);		/* no deadline */
	CHECK(late && cancelled);
	t = hs_set_timeout_ms(set);
	/* At most the 20 ms left; -1 once that deadline has already passed
	 * (a slow machine, valgrind) and its outcome waits, the fd readable. */
	if (t == -1) {
		struct pollfd q = { .fd = hs_set_fd(set), .events = POLLIN };
		CHECK_EQ(poll(&q, 1, 1000), 1);
	} else {
		CHECK(t >= 0 && t <= 20);
	}
	CHECK_EQ(hs_set_cancel(set, cancelled), 0);
	drain_until(set, &r, 2, 30);
	CHECK_EQ(state_of(&r, late), RUNNER_DEAD);
	CHECK_EQ(state_of(&r, cancelled), RUNNER_DEAD);
	CHECK(!r.bad_data);

	done = spawn_add(set, 1, NULL, 0);
	drain_until(set, &r, 3, 30);
	CHECK_EQ(state_of(&r, done), RUNNER_DONE);
	CHECK_EQ(r.n, 3);
	/* The hung work returned after its cancel: threads are not kept. */
	CHECK(all_returned(ended, 30));
	hs_set_free(set);
	record_free(&r);
}

/* ---- Hazards --------------------------------------------------------------------- */

static void noop_outcome(void *arg, hs_token token, int state,
			 const void *data, unsigned int size)
{
	(void)arg, (void)token, (void)state, (void)data, (void)size;
}

/* H97: every function with a NULL set. */
static void h97_null_set_everywhere(void)
{
	struct job j = { 0, NULL };
	char out[8];

	current = "h97_null_set_everywhere";
	CHECK_FAILS(hs_set_fd(NULL), EINVAL);
	CHECK_FAILS(hs_set_timeout_ms(NULL), EINVAL);
	CHECK_SPAWN_FAILS(hs_set_spawn(NULL, work_add, &j, sizeof(j), 0),
			  EINVAL);
	CHECK_FAILS(hs_set_cancel(NULL, 1), EINVAL);
	CHECK_FAILS(hs_set_release(NULL, 1), EINVAL);
	CHECK_FAILS(hs_set_drain(NULL, noop_outcome, NULL), EINVAL);
	CHECK_FAILS(hs_set_examine(NULL, 1, out, sizeof(out)), EINVAL);
	hs_set_free(NULL);	/* ignored, as free(NULL) */
	CHECK(1);
}

/* H98: token 0, forged tokens, and stale ones (delivered, released). */
static void h98_zero_forged_and_stale_tokens(void)
{
	hs_set *set = hs_set_new();
	struct record r = { 0 };
	hs_token done, released, live;
	char out[8];
	const hs_token forged[] = {
		0, 1, 2, UINT64_MAX, (hs_token)1 << 32, ((hs_token)1 << 32) | 1,
		((hs_token)2 << 32), ((hs_token)UINT32_MAX << 32) | 5,
		0xdeadbeefcafef00dULL,
	};

	current = "h98_zero_forged_and_stale_tokens";
	live = spawn_hung(set, NULL, 0);
	CHECK(live != 0);
	for (size_t i = 0; i < sizeof(forged) / sizeof(forged[0]); i++) {
		if (forged[i] == live)
			continue;
		CHECK_FAILS(hs_set_cancel(set, forged[i]), ESTALE);
		CHECK_FAILS(hs_set_release(set, forged[i]), ESTALE);
		CHECK_FAILS(hs_set_examine(set, forged[i], out, sizeof(out)),
			    ESTALE);
	}
	/* The token of the live runner, with another generation: stale. */
	CHECK_FAILS(hs_set_cancel(set, live + ((hs_token)1 << 32)), ESTALE);
	CHECK_FAILS(hs_set_release(set, live ^ ((hs_token)3 << 32)), ESTALE);

	done = spawn_add(set, 1, NULL, 0);
	drain_until(set, &r, 1, 30);
	CHECK_EQ(times_seen(&r, done), 1);
	CHECK_FAILS(hs_set_cancel(set, done), ESTALE);
	CHECK_FAILS(hs_set_release(set, done), ESTALE);
	CHECK_FAILS(hs_set_examine(set, done, out, sizeof(out)), ESTALE);

	released = spawn_add(set, 1, NULL, 0);
	CHECK_EQ(hs_set_release(set, released), 0);
	CHECK_FAILS(hs_set_release(set, released), ESTALE);
	CHECK_FAILS(hs_set_cancel(set, released), ESTALE);
	CHECK_FAILS(hs_set_examine(set, released, out, sizeof(out)), ESTALE);
	/* A new runner reuses the slot with a new generation. */
	{
		hs_token again = spawn_add(set, 1, NULL, 0);

		CHECK(again != 0 && again != released && again != done);
		drain_until(set, &r, 2, 30);
		CHECK_EQ(times_seen(&r, again), 1);
	}
	CHECK_EQ(times_seen(&r, released), 0);
	CHECK_EQ(hs_set_release(set, live), 0);
	hs_set_free(set);
	record_free(&r);
}

/* H99: spawn with NULL func or data, size 0: refused, nothing added. */
static void h99_spawn_refuses_bad_arguments(void)
{
	hs_set *set = hs_set_new();
	struct job j = { 0, NULL };
	struct record r = { 0 };

	current = "h99_spawn_refuses_bad_arguments";
	CHECK_SPAWN_FAILS(hs_set_spawn(set, NULL, &j, sizeof(j), 0), EINVAL);
	CHECK_SPAWN_FAILS(hs_set_spawn(set, work_add, NULL, sizeof(j), 0),
			  EINVAL);
	CHECK_SPAWN_FAILS(hs_set_spawn(set, work_add, &j, 0, 0), EINVAL);
	CHECK_SPAWN_FAILS(hs_set_spawn(set, NULL, NULL, 0, ULONG_MAX), EINVAL);
	CHECK_FAILS(hs_set_drain(set, NULL, NULL), EINVAL);
	sleep_ms(20);
	CHECK_EQ(hs_set_drain(set, record_outcome, &r), 0);
	CHECK_EQ(hs_set_timeout_ms(set), -1);
	hs_set_free(set);
	record_free(&r);
}

/* H100: timeouts too large for the clock saturate; the poll timeout stays
 * in 0..INT_MAX, never a negative ("forever") value from an overflow. */
static void h100_huge_timeouts_saturate(void)
{
	hs_set *set = hs_set_new();
	struct record r = { 0 };
	const unsigned long huge[] = {
		ULONG_MAX, ULONG_MAX - 1, (unsigned long)LONG_MAX,
		(unsigned long)LONG_MAX + 1, ULONG_MAX / 1000,
		(unsigned long)INT_MAX * 1000UL + 999,
		(unsigned long)INT_MAX * 1000UL + 1001,
	};
	hs_token tok[sizeof(huge) / sizeof(huge[0])];
	hs_token soon;
	int t;

	current = "h100_huge_timeouts_saturate";
	for (size_t i = 0; i < sizeof(huge) / sizeof(huge[0]); i++) {
		tok[i] = spawn_hung(set, NULL, huge[i]);
		CHECK(tok[i] != 0);
		t = hs_set_timeout_ms(set);
		if (t < 2000000)
			fprintf(stderr, "  timeout %lu us -> %d ms\n", huge[i],
				t);
		CHECK(t >= 2000000 && t <= INT_MAX);
	}
	/* 10 s away: rounded up, so never early (a loaded machine may take
	 * a while between the two calls). */
	soon = spawn_hung(set, NULL, 10000000);
	t = hs_set_timeout_ms(set);
	CHECK(t > 5000 && t <= 10000);
	CHECK_EQ(hs_set_release(set, soon), 0);
	/* 1 µs: due at once (0), and delivered DEAD. */
	soon = spawn_hung(set, NULL, 1);
	drain_until(set, &r, 1, 30);
	CHECK_EQ(state_of(&r, soon), RUNNER_DEAD);
	for (size_t i = 0; i < sizeof(huge) / sizeof(huge[0]); i++)
		CHECK_EQ(hs_set_cancel(set, tok[i]), 0);
	drain_until(set, &r, 1 + sizeof(huge) / sizeof(huge[0]), 30);
	for (size_t i = 0; i < sizeof(huge) / sizeof(huge[0]); i++)
		CHECK_EQ(state_of(&r, tok[i]), RUNNER_DEAD);
	hs_set_free(set);
	record_free(&r);
}

/* What the re-entering callback does and finds. */
struct reenter {
	hs_set *set;		/* the set being drained */
	hs_set *other;		/* another set */
	int drain_same, drain_other, free_errno, drain_errno, calls;
	int spawn_ok, cancel_rc, release_rc;
	hs_token spawned;
};

static void reenter_outcome(void *arg, hs_token token, int state,
			    const void *data, unsigned int size)
{
	struct reenter *re = arg;

	(void)token, (void)state, (void)data, (void)size;
	if (re->calls++)
		return;
	errno = 0;
	re->drain_same = hs_set_drain(re->set, noop_outcome, NULL);
	re->drain_errno = errno;
	errno = 0;
	hs_set_free(re->set);	/* refused: the set stays usable */
	re->free_errno = errno;
	re->drain_other = hs_set_drain(re->other, noop_outcome, NULL);
	re->spawned = spawn_add(re->set, 5, NULL, 0);
	re->spawn_ok = re->spawned != 0;
	re->cancel_rc = hs_set_cancel(re->set, re->spawned);
	re->release_rc = hs_set_release(re->set, re->spawned);
}

/* H101: drain and free of the same set from its drain callback are refused
 * with EDEADLK; spawn, cancel, release and another set's drain work. */
static void h101_drain_callback_reentry(void)
{
	struct reenter re = { 0 };
	struct record r = { 0 };
	hs_token t;
	double end;

	current = "h101_drain_callback_reentry";
	re.set = hs_set_new();
	re.other = hs_set_new();
	t = spawn_add(re.set, 1, NULL, 0);
	CHECK(t != 0);
	for (end = now_sec() + 30; re.calls == 0 && now_sec() < end;) {
		struct pollfd p = { hs_set_fd(re.set), POLLIN, 0 };

		poll(&p, 1, 100);
		CHECK(hs_set_drain(re.set, reenter_outcome, &re) >= 0);
	}
	CHECK_EQ(re.calls, 1);
	CHECK_EQ(re.drain_same, -1);
	CHECK_EQ(re.drain_errno, EDEADLK);
	CHECK_EQ(re.free_errno, EDEADLK);
	CHECK_EQ(re.drain_other, 0);
	CHECK(re.spawn_ok);
	CHECK_EQ(re.cancel_rc, 0);
	CHECK_EQ(re.release_rc, 0);
	/* The set survived the refused free and still works. */
	t = spawn_add(re.set, 2, NULL, 0);
	drain_until(re.set, &r, 1, 30);
	CHECK_EQ(times_seen(&r, t), 1);
	CHECK_EQ(times_seen(&r, re.spawned), 0);
	hs_set_free(re.set);
	hs_set_free(re.other);
	record_free(&r);
}

/* What the releasing callback does. */
struct release_all {
	hs_set *set;
	hs_token *tok;
	int n, calls;
	int release_ok, cancel_rc, examine_errno;
	hs_token first;
};

static void release_others(void *arg, hs_token token, int state,
			   const void *data, unsigned int size)
{
	struct release_all *ra = arg;
	char out[8];

	(void)state, (void)data, (void)size;
	if (ra->calls++)
		return;
	ra->first = token;
	for (int i = 0; i < ra->n; i++) {
		if (ra->tok[i] == token)
			continue;
		if (!ra->cancel_rc && !ra->examine_errno) {
			/* Decided, not delivered yet: cancel is a no-op, the
			 * work has ended. */
			ra->cancel_rc = hs_set_cancel(ra->set, ra->tok[i]) + 1;
			errno = 0;
			hs_set_examine(ra->set, ra->tok[i], out, sizeof(out));
			ra->examine_errno = errno;
		}
		ra->release_ok += hs_set_release(ra->set, ra->tok[i]) == 0;
	}
}

/* H102: the callback releases tokens whose outcomes the same drain has
 * taken and not delivered yet: none of them is delivered. */
static void h102_release_from_callback_of_undelivered(void)
{
	enum { N = 64 };
	hs_set *set = hs_set_new();
	hs_token tok[N];
	atomic_int ended = 0;
	struct release_all ra = { set, tok, N, 0, 0, 0, 0, 0 };
	struct record r = { 0 };
	int delivered;

	current = "h102_release_from_callback_of_undelivered";
	for (int i = 0; i < N; i++)
		tok[i] = spawn_add(set, (uint64_t)i, &ended, 0);
	for (double end = now_sec() + 30; atomic_load(&ended) < N &&
					  now_sec() < end;)
		sleep_ms(1);
	sleep_ms(50);	/* the last completion notices */
	delivered = hs_set_drain(set, release_others, &ra);
	CHECK_EQ(delivered, 1);
	CHECK_EQ(ra.calls, 1);
	CHECK_EQ(ra.release_ok, N - 1);
	CHECK_EQ(ra.cancel_rc, 1);		/* hs_set_cancel() was 0 */
	CHECK_EQ(ra.examine_errno, ESRCH);
	sleep_ms(20);
	CHECK_EQ(hs_set_drain(set, record_outcome, &r), 0);
	CHECK_EQ(r.n, 0);
	hs_set_free(set);
	record_free(&r);
}

/* H103: hs_set_free with hung work and undelivered outcomes returns at once;
 * the hung work is cancelled and every context goes away. */
static void h103_free_never_blocks_and_releases_all(void)
{
	hs_set *set = hs_set_new();
	atomic_int ended[2] = { 0, 0 };
	struct hs_runner_metrics m;
	double t0;

	current = "h103_free_never_blocks_and_releases_all";
	for (int i = 0; i < 20; i++)
		CHECK(spawn_hung(set, ended, 0) != 0);
	for (int i = 0; i < 20; i++)
		CHECK(spawn_add(set, 1, NULL, 0) != 0);
	/* Some hung work is blocked, some outcomes wait undelivered. */
	for (double end = now_sec() + 30; atomic_load(&ended[0]) < 5 &&
					  now_sec() < end;)
		sleep_ms(1);
	t0 = now_sec();
	hs_set_free(set);
	CHECK(now_sec() - t0 < 2.0);
	CHECK(atomic_load(&ended[0]) >= 5);
	CHECK(all_returned(ended, 30));
	CHECK(wait_settled(&m, 30));
	CHECK_EQ(m.live_contexts, 0);
}

/* H104: sets are independent: a token of one is stale in another. */
static void h104_tokens_of_another_set(void)
{
	hs_set *a = hs_set_new(), *b = hs_set_new();
	hs_token ta;

	current = "h104_tokens_of_another_set";
	ta = spawn_hung(a, NULL, 0);
	CHECK(ta != 0);
	CHECK(hs_set_fd(a) != hs_set_fd(b));
	/* b is empty: even a valid-looking token is stale there. */
	CHECK_FAILS(hs_set_cancel(b, ta), ESTALE);
	CHECK_FAILS(hs_set_release(b, ta), ESTALE);
	CHECK_EQ(hs_set_release(a, ta), 0);
	hs_set_free(a);
	hs_set_free(b);
}

/* ---- Races ---------------------------------------------------------------------------- */

/* R55: two drainer threads with a slow callback, a releaser and a
 * canceller race on one set. */
struct race {
	hs_set *set;
	hs_token *tok;
	int n;
	atomic_int *released;	/* per token: released with 0 */
	atomic_int *delivered;	/* per token: times delivered */
	atomic_int stop;
	atomic_int unknown;	/* delivered tokens not in tok[] */
};

static int index_of(const struct race *rc, hs_token t)
{
	for (int i = 0; i < rc->n; i++)
		if (rc->tok[i] == t)
			return i;
	return -1;
}

static void race_outcome(void *arg, hs_token token, int state,
			 const void *data, unsigned int size)
{
	struct race *rc = arg;
	int i = index_of(rc, token);

	(void)state, (void)data, (void)size;
	if (i < 0) {
		atomic_fetch_add(&rc->unknown, 1);
		return;
	}
	atomic_fetch_add(&rc->delivered[i], 1);
	/* Slow: gives the releaser time to hit outcomes this drain took. */
	if (i % 4 == 0)
		sched_yield();
}

static void *drainer(void *arg)
{
	struct race *rc = arg;

	while (!atomic_load(&rc->stop)) {
		struct pollfd p = { hs_set_fd(rc->set), POLLIN, 0 };

		poll(&p, 1, 5);
		hs_set_drain(rc->set, race_outcome, rc);
	}
	return NULL;
}

static void *releaser(void *arg)
{
	struct race *rc = arg;
	unsigned int seed = 7;

	for (int k = 0; k < rc->n * 2 && !atomic_load(&rc->stop); k++) {
		int i = (int)(rand_r(&seed) % (unsigned int)rc->n);

		if (i % 3 == 0 && hs_set_release(rc->set, rc->tok[i]) == 0)
			atomic_fetch_add(&rc->released[i], 1);
		else if (i % 3 == 1)
			hs_set_cancel(rc->set, rc->tok[i]);
		if (k % 16 == 0)
			sched_yield();
	}
	return NULL;
}

/* R55: every token is delivered exactly once or released exactly once,
 * never both, whichever thread drains. */
static void r55_drain_vs_release_on_two_threads(void)
{
	int n = under_valgrind() ? 200 : 2000;
	struct race rc = { 0 };
	pthread_t d1, d2, rl;
	int both = 0, neither = 0, twice = 0;
	struct hs_runner_metrics m;

	current = "r55_drain_vs_release_on_two_threads";
	rc.set = hs_set_new();
	rc.n = n;
	rc.tok = calloc((size_t)n, sizeof(*rc.tok));
	rc.released = calloc((size_t)n, sizeof(*rc.released));
	rc.delivered = calloc((size_t)n, sizeof(*rc.delivered));
	if (!rc.tok || !rc.released || !rc.delivered)
		abort();
	for (int i = 0; i < n; i++) {
		rc.tok[i] = i % 5 == 4 ? spawn_hung(rc.set, NULL, 2000)
				       : spawn_add(rc.set, (uint64_t)i, NULL, 0);
		CHECK(rc.tok[i] != 0);
	}
	pthread_create(&d1, NULL, drainer, &rc);
	pthread_create(&d2, NULL, drainer, &rc);
	pthread_create(&rl, NULL, releaser, &rc);
	pthread_join(rl, NULL);
	for (double end = now_sec() + 60; now_sec() < end;) {
		int open = 0;

		for (int i = 0; i < n; i++)
			open += !atomic_load(&rc.released[i]) &&
				!atomic_load(&rc.delivered[i]);
		if (!open)
			break;
		sleep_ms(5);
	}
	atomic_store(&rc.stop, 1);
	pthread_join(d1, NULL);
	pthread_join(d2, NULL);
	for (int i = 0; i < n; i++) {
		int rel = atomic_load(&rc.released[i]);
		int del = atomic_load(&rc.delivered[i]);

		both += rel && del;
		neither += !rel && !del;
		twice += rel > 1 || del > 1;
	}
	CHECK_EQ(both, 0);
	CHECK_EQ(neither, 0);
	CHECK_EQ(twice, 0);
	CHECK_EQ(atomic_load(&rc.unknown), 0);
	hs_set_free(rc.set);
	CHECK(wait_settled(&m, 30));
	free(rc.tok);
	free((void *)rc.released);
	free((void *)rc.delivered);
}

/* What the respawning callback does. */
struct respawn {
	hs_set *set;
	int left;		/* respawns still to do */
	int failed;
	int delivered;
};

static void respawn_outcome(void *arg, hs_token token, int state,
			    const void *data, unsigned int size)
{
	struct respawn *rs = arg;

	(void)token, (void)data, (void)size;
	rs->delivered++;
	if (state != RUNNER_DONE)
		rs->failed++;
	if (rs->left > 0) {
		rs->left--;
		if (!spawn_add(rs->set, 1, NULL, 0))
			rs->failed++;
	}
}

/* R56: respawning from the callback while the completion notices of the
 * new runners race with the drain that spawned them. */
static void r56_respawn_from_callback(void)
{
	struct respawn rs = { hs_set_new(), under_valgrind() ? 300 : 3000, 0,
			      0 };
	int total = rs.left + 10;

	current = "r56_respawn_from_callback";
	for (int i = 0; i < 10; i++)
		spawn_add(rs.set, 1, NULL, 0);
	for (double end = now_sec() + 60; rs.delivered < total &&
					  now_sec() < end;) {
		struct pollfd p = { hs_set_fd(rs.set), POLLIN, 0 };

		poll(&p, 1, 100);
		CHECK(hs_set_drain(rs.set, respawn_outcome, &rs) >= 0);
	}
	CHECK_EQ(rs.delivered, total);
	CHECK_EQ(rs.failed, 0);
	hs_set_free(rs.set);
}

int main(void)
{
	struct hs_runner_metrics m;

	if (pipe(pipe_fds) != 0) {
		perror("pipe");
		return 2;
	}
	test_spawn_poll_drain();
	test_deadline_and_cancel();
	h97_null_set_everywhere();
	h98_zero_forged_and_stale_tokens();
	h99_spawn_refuses_bad_arguments();
	h100_huge_timeouts_saturate();
	h101_drain_callback_reentry();
	h102_release_from_callback_of_undelivered();
	h103_free_never_blocks_and_releases_all();
	h104_tokens_of_another_set();
	r55_drain_vs_release_on_two_threads();
	r56_respawn_from_callback();
	current = "end";
	CHECK(wait_settled(&m, 30));
	CHECK_EQ(m.live_contexts, 0);
	close(pipe_fds[0]);
	close(pipe_fds[1]);
	return harness_summary();
}

/*
 * examine_test.c - examine from C (hs_publish, hs_runner_examine,
 * hs_set_examine) through the C ABI: work publishes a phase struct with a
 * checkable pattern in a tight loop while a second thread snapshots it;
 * no copy may be torn, nothing is served before the first publish or after
 * the work ended or was released (hazards H105..H107, races R57..R58,
 * docs/races.md; R47..R49 of docs/races.md underneath).
 *
 * Built and run by tests/c_set.rs (statically, dynamically, and under
 * valgrind). Waits are bounded; prints "N passed, M failed".
 */
#include "harness.h"

#include <errno.h>
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

/* What a worker publishes: 48 bytes, every word derived from seq. */
struct phase {
	uint64_t seq;
	uint64_t word[5];	/* word[i] == seq * 0x9e3779b97f4a7c15 + i */
};

_Static_assert(sizeof(struct phase) == HS_PUBLISH_MAX,
	       "the phase struct fills one publish");

static uint64_t pattern(uint64_t seq, int i)
{
	return seq * 0x9e3779b97f4a7c15ULL + (uint64_t)i;
}

static int consistent(const struct phase *p)
{
	for (int i = 0; i < 5; i++)
		if (p->word[i] != pattern(p->seq, i))
			return 0;
	return 1;
}

/* Controls shared by the test and its work (the job holds a pointer). */
struct ctl {
	atomic_int go;		/* the work may publish */
	atomic_int stop;	/* the work should return */
	atomic_int published;	/* publishes done */
	atomic_int bad_rc;	/* an hs_publish() that should work failed */
	atomic_int ended;	/* the work has returned (it reads *ctl until
				   then, so the test waits for it) */
	int errs[4];		/* errno of the bad calls, inside the work */
};

struct job {
	struct ctl *ctl;
	int bad_calls;		/* make the refused calls first */
};

/* Publishes phases in a tight loop until told to stop (up to a minute). */
static void work_publisher(void *data)
{
	struct job *j = data;
	struct ctl *c = j->ctl;
	double end = now_sec() + 60;
	struct phase p;
	char big[HS_PUBLISH_MAX + 1] = { 0 };

	if (j->bad_calls) {
		errno = 0;
		c->errs[0] = hs_publish(NULL, 8) == -1 ? errno : 0;
		errno = 0;
		c->errs[1] = hs_publish(big, 0) == -1 ? errno : 0;
		errno = 0;
		c->errs[2] = hs_publish(big, sizeof(big)) == -1 ? errno : 0;
		errno = 0;
		c->errs[3] = hs_publish(big, UINT32_MAX) == -1 ? errno : 0;
	}
	while (!atomic_load(&c->go) && now_sec() < end)
		sleep_ms(1);
	for (uint64_t seq = 1; !atomic_load(&c->stop) && now_sec() < end;
	     seq++) {
		p.seq = seq;
		for (int i = 0; i < 5; i++)
			p.word[i] = pattern(seq, i);
		if (hs_publish(&p, sizeof(p)) != 0)
			atomic_fetch_add(&c->bad_rc, 1);
		atomic_fetch_add(&c->published, 1);
		if (under_valgrind() && seq % 64 == 0)
			sched_yield();
	}
	atomic_store(&c->ended, 1);
}

/* Publishes once, then waits (ignoring cancels) until told to stop. */
static void work_publish_once(void *data)
{
	struct job *j = data;
	struct ctl *c = j->ctl;
	double end = now_sec() + 60;
	struct phase p = { 7, { 0 } };

	for (int i = 0; i < 5; i++)
		p.word[i] = pattern(7, i);
	while (!atomic_load(&j->ctl->go) && now_sec() < end)
		sleep_ms(1);
	if (hs_publish(&p, sizeof(p)) != 0)
		atomic_fetch_add(&c->bad_rc, 1);
	atomic_fetch_add(&c->published, 1);
	while (!atomic_load(&c->stop) && now_sec() < end)
		sleep_ms(1);
	atomic_store(&c->ended, 1);
}

/* Stops the work and waits until it has returned (it reads *c). */
static void stop_and_wait(struct ctl *c)
{
	atomic_store(&c->stop, 1);
	atomic_store(&c->go, 1);
	for (double end = now_sec() + 60; !atomic_load(&c->ended) &&
					  now_sec() < end;)
		sleep_ms(1);
	check_at(atomic_load(&c->ended), "the work returned", __FILE__,
		 __LINE__);
}

/* ---- The snapshot thread ---------------------------------------------------- */

struct reader {
	struct runner_context *r;	/* examine this, or */
	hs_set *set;			/* this set's token */
	hs_token token;
	atomic_int stop;
	atomic_int gone_before;		/* set by the test once the work is
					   known to have ended or been
					   released */
	/* Counts, read by the test while the reader runs. */
	atomic_long ok, again, nodata, gone, stale, torn, backwards, other;
	atomic_long after_gone;		/* bytes served after gone_before */
};

static int examine(struct reader *rd, struct phase *out)
{
	if (rd->r)
		return hs_runner_examine(rd->r, out, sizeof(*out));
	return hs_set_examine(rd->set, rd->token, out, sizeof(*out));
}

static void *snapshot_loop(void *arg)
{
	struct reader *rd = arg;
	uint64_t last = 0;

	while (!atomic_load(&rd->stop)) {
		struct phase p;
		int gone = atomic_load(&rd->gone_before);

		errno = 0;
		if (examine(rd, &p) == 0) {
			rd->ok++;
			rd->torn += !consistent(&p);
			rd->backwards += p.seq < last;
			last = p.seq;
			rd->after_gone += gone;
			continue;
		}
		switch (errno) {
		case EAGAIN: rd->again++; break;
		case ENODATA: rd->nodata++; break;
		case ESRCH: rd->gone++; break;
		case ESTALE: rd->stale++; break;
		default: rd->other++; break;
		}
		if (under_valgrind())
			sched_yield();
	}
	return NULL;
}

static void wait_published(struct ctl *c, int n)
{
	for (double end = now_sec() + 30;
	     atomic_load(&c->published) < n && now_sec() < end;)
		sleep_ms(1);
}

/* ---- Tests -------------------------------------------------------------------- */

/* H105: hs_publish off a runner's thread, and with bad sizes inside work. */
static void h105_publish_refusals(void)
{
	struct ctl c = { 0 };
	struct job j = { &c, 1 };
	struct phase p = { 0 };
	struct runner_context *r;

	current = "h105_publish_refusals";
	CHECK_FAILS(hs_publish(&p, sizeof(p)), EPERM);
	CHECK_FAILS(hs_publish(&p, 1), EPERM);
	CHECK_FAILS(hs_publish(&p, 0), EINVAL);
	CHECK_FAILS(hs_publish(&p, HS_PUBLISH_MAX + 1), EINVAL);
	CHECK_FAILS(hs_publish(NULL, 4), EINVAL);
	r = get_runner(work_publish_once, &j, sizeof(j), 0);
	CHECK(r != NULL);
	atomic_store(&c.go, 1);
	wait_published(&c, 1);
	atomic_store(&c.stop, 1);
	for (double end = now_sec() + 30;
	     check_runner(r, NULL, 0) == RUNNER_RUNNING && now_sec() < end;)
		sleep_ms(1);
	CHECK_EQ(check_runner(r, NULL, 0), RUNNER_DONE);
	release_runner(r);
	/* work_publish_once makes no bad calls: use the publisher for that. */
	memset(&c, 0, sizeof(c));
	atomic_store(&c.stop, 1);
	atomic_store(&c.go, 1);
	r = get_runner(work_publisher, &j, sizeof(j), 0);
	CHECK(r != NULL);
	for (double end = now_sec() + 30;
	     check_runner(r, NULL, 0) == RUNNER_RUNNING && now_sec() < end;)
		sleep_ms(1);
	CHECK_EQ(c.errs[0], EINVAL);
	CHECK_EQ(c.errs[1], EINVAL);
	CHECK_EQ(c.errs[2], EINVAL);
	CHECK_EQ(c.errs[3], EINVAL);
	CHECK_EQ(atomic_load(&c.bad_rc), 0);
	release_runner(r);
}

/* H106: examine with NULL handle, set, buffer, size 0; prefix and
 * zero-filled longer copies; ENODATA before the first publish. */
static void h106_examine_arguments_and_sizes(void)
{
	struct ctl c = { 0 };
	struct job j = { &c, 0 };
	struct runner_context *r;
	hs_set *set = hs_set_new();
	hs_token t;
	struct phase p;
	unsigned char big[HS_PUBLISH_MAX + 16];
	uint64_t seq;

	current = "h106_examine_arguments_and_sizes";
	r = get_runner(work_publish_once, &j, sizeof(j), 0);
	t = hs_set_spawn(set, work_publish_once, &j, sizeof(j), 0);
	CHECK(r != NULL && t != 0);
	CHECK_FAILS(hs_runner_examine(NULL, &p, sizeof(p)), EINVAL);
	CHECK_FAILS(hs_runner_examine(r, NULL, sizeof(p)), EINVAL);
	CHECK_FAILS(hs_runner_examine(r, &p, 0), EINVAL);
	CHECK_FAILS(hs_set_examine(set, t, NULL, sizeof(p)), EINVAL);
	CHECK_FAILS(hs_set_examine(set, t, &p, 0), EINVAL);
	CHECK_FAILS(hs_set_examine(set, 0, &p, sizeof(p)), ESTALE);
	/* Before the first publish. */
	CHECK_FAILS(hs_runner_examine(r, &p, sizeof(p)), ENODATA);
	CHECK_FAILS(hs_set_examine(set, t, &p, sizeof(p)), ENODATA);
	atomic_store(&c.go, 1);
	wait_published(&c, 2);
	CHECK_EQ(hs_runner_examine(r, &p, sizeof(p)), 0);
	CHECK_EQ(p.seq, 7);
	CHECK(consistent(&p));
	memset(&p, 0, sizeof(p));
	CHECK_EQ(hs_set_examine(set, t, &p, sizeof(p)), 0);
	CHECK(consistent(&p) && p.seq == 7);
	/* A prefix. */
	seq = 0;
	CHECK_EQ(hs_runner_examine(r, &seq, sizeof(seq)), 0);
	CHECK_EQ(seq, 7);
	/* Longer than published: the rest is zero-filled. */
	memset(big, 0xa5, sizeof(big));
	CHECK_EQ(hs_set_examine(set, t, big, sizeof(big)), 0);
	CHECK(memcmp(big, &p, sizeof(p)) == 0);
	for (size_t i = sizeof(p); i < sizeof(big); i++)
		CHECK_EQ(big[i], 0);
	/* The work ends: gone (ESRCH), never the last bytes. */
	atomic_store(&c.stop, 1);
	for (double end = now_sec() + 30;
	     check_runner(r, NULL, 0) == RUNNER_RUNNING && now_sec() < end;)
		sleep_ms(1);
	CHECK_FAILS(hs_runner_examine(r, &p, sizeof(p)), ESRCH);
	release_runner(r);
	for (double end = now_sec() + 30; now_sec() < end;) {
		errno = 0;
		if (hs_set_examine(set, t, &p, sizeof(p)) == -1 &&
		    errno == ESRCH)
			break;
		sleep_ms(1);
	}
	CHECK_FAILS(hs_set_examine(set, t, &p, sizeof(p)), ESRCH);
	hs_set_free(set);
}

/* H107: a cancelled runner whose work still runs (hung, ignoring the
 * cancel) can still be examined: that is when its state matters. */
static void h107_cancelled_but_running_is_examinable(void)
{
	struct ctl c = { 0 };
	struct job j = { &c, 0 };
	hs_set *set = hs_set_new();
	hs_token t;
	struct phase p;

	current = "h107_cancelled_but_running_is_examinable";
	atomic_store(&c.go, 1);
	t = hs_set_spawn(set, work_publish_once, &j, sizeof(j), 0);
	CHECK(t != 0);
	wait_published(&c, 1);
	CHECK_EQ(hs_set_cancel(set, t), 0);
	sleep_ms(5);
	CHECK_EQ(hs_set_examine(set, t, &p, sizeof(p)), 0);
	CHECK(consistent(&p) && p.seq == 7);
	stop_and_wait(&c);
	hs_set_free(set);
}

/* R57: publish in a tight loop vs a snapshot loop on another thread: no
 * torn copy, never backwards; ESRCH once the work has ended. `in_set`
 * picks hs_set_examine or hs_runner_examine. */
static void r57_publish_vs_snapshot(int in_set)
{
	struct ctl c = { 0 };
	struct job j = { &c, 0 };
	struct reader rd = { 0 };
	hs_set *set = NULL;
	pthread_t th;
	int want = under_valgrind() ? 2000 : 200000;
	struct phase p;

	current = in_set ? "r57_publish_vs_snapshot (set)"
			 : "r57_publish_vs_snapshot (runner)";
	if (in_set) {
		set = hs_set_new();
		rd.set = set;
		rd.token = hs_set_spawn(set, work_publisher, &j, sizeof(j), 0);
		CHECK(rd.token != 0);
	} else {
		rd.r = get_runner(work_publisher, &j, sizeof(j), 0);
		CHECK(rd.r != NULL);
	}
	pthread_create(&th, NULL, snapshot_loop, &rd);
	/* ENODATA while the work waits for go. */
	for (double end = now_sec() + 30; rd.nodata == 0 && now_sec() < end;)
		sleep_ms(1);
	atomic_store(&c.go, 1);
	wait_published(&c, want);
	for (double end = now_sec() + 30; rd.ok < 100 && now_sec() < end;)
		sleep_ms(1);
	atomic_store(&c.stop, 1);
	/* Wait for the end of the work, then mark it gone. */
	for (double end = now_sec() + 30; now_sec() < end; sleep_ms(1)) {
		errno = 0;
		if (in_set) {
			if (hs_set_examine(set, rd.token, &p, sizeof(p)) ==
				    -1 && errno == ESRCH)
				break;
		} else if (check_runner(rd.r, NULL, 0) == RUNNER_DONE) {
			break;
		}
	}
	atomic_store(&rd.gone_before, 1);
	for (double end = now_sec() + 30; rd.gone == 0 && now_sec() < end;)
		sleep_ms(1);
	atomic_store(&rd.stop, 1);
	pthread_join(th, NULL);
	printf("%s: %ld copies, %ld EAGAIN, %ld ENODATA, %ld ESRCH\n", current,
	       (long)rd.ok, (long)rd.again, (long)rd.nodata, (long)rd.gone);
	CHECK(rd.ok >= 100);
	CHECK_EQ(rd.torn, 0);
	CHECK_EQ(rd.backwards, 0);
	CHECK_EQ(rd.after_gone, 0);
	CHECK(rd.nodata > 0);
	CHECK(rd.gone > 0);
	CHECK_EQ(rd.stale, 0);
	CHECK_EQ(rd.other, 0);
	CHECK_EQ(atomic_load(&c.bad_rc), 0);
	if (in_set)
		hs_set_free(set);
	else
		release_runner(rd.r);
}

/* R58: release while another thread snapshots: once hs_set_release() has
 * returned, no bytes are served (ESTALE, or ESRCH for a call that raced
 * the release). */
static void r58_release_vs_snapshot(void)
{
	struct ctl c = { 0 };
	struct job j = { &c, 0 };
	struct reader rd = { 0 };
	hs_set *set = hs_set_new();
	pthread_t th;

	current = "r58_release_vs_snapshot";
	rd.set = set;
	rd.token = hs_set_spawn(set, work_publisher, &j, sizeof(j), 0);
	CHECK(rd.token != 0);
	atomic_store(&c.go, 1);
	wait_published(&c, 100);
	pthread_create(&th, NULL, snapshot_loop, &rd);
	for (double end = now_sec() + 30; rd.ok < 50 && now_sec() < end;)
		sleep_ms(1);
	CHECK_EQ(hs_set_release(set, rd.token), 0);
	atomic_store(&rd.gone_before, 1);
	for (double end = now_sec() + 30; rd.stale == 0 && now_sec() < end;)
		sleep_ms(1);
	atomic_store(&rd.stop, 1);
	pthread_join(th, NULL);
	printf("%s: %ld copies, %ld ESRCH, %ld ESTALE\n", current,
	       (long)rd.ok, (long)rd.gone, (long)rd.stale);
	CHECK(rd.ok >= 50);
	CHECK_EQ(rd.torn, 0);
	CHECK_EQ(rd.after_gone, 0);
	CHECK(rd.stale > 0);
	CHECK_EQ(rd.other, 0);
	/* The release cancelled the work; it stops at the flag. */
	stop_and_wait(&c);
	hs_set_free(set);
}

int main(void)
{
	struct hs_runner_metrics m;

	h105_publish_refusals();
	h106_examine_arguments_and_sizes();
	h107_cancelled_but_running_is_examinable();
	r57_publish_vs_snapshot(0);
	r57_publish_vs_snapshot(1);
	r58_release_vs_snapshot();
	current = "end";
	CHECK(wait_settled(&m, 30));
	CHECK_EQ(m.live_contexts, 0);
	return harness_summary();
}

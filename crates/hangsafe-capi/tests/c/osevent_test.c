/*
 * osevent_test.c - libxl-style event hooks of a runner set
 * (struct hs_osevent_hooks, hs_set_attach, hs_set_detach,
 * hs_osevent_occurred_fd, hs_osevent_occurred_timeout).
 *
 * The test owns a tiny poll(2) event loop with a registration table, as an
 * application (libvirt for libxl) does: hangsafe's registrations and the
 * loop's own (a pipe and a periodic timer) live side by side in it. A
 * second thread injects late, stale, duplicated and garbage `occurred`
 * calls while runners complete, hang into their deadlines, are cancelled
 * and released, and the set is detached and re-attached. Checked:
 *
 *  - every stale or garbage for_hs is dropped (errno ESTALE), never acted
 *    on, and valgrind sees no access through it;
 *  - hooks are never nested or concurrent; timeout_modify is only ever
 *    {0, 0}; timeouts are CLOCK_MONOTONIC;
 *  - each runner's outcome arrives exactly once, none for a released one;
 *  - no registration leaks: the table holds none of the set's
 *    registrations after detach (once the withdrawn timeouts have fired)
 *    and after hs_set_free; tokens of an earlier attachment stay stale;
 *  - a call into the set from inside a hook fails with EDEADLK;
 *  - a failing register hook leaves the set usable.
 *
 * Tests named hkN_/rkN_ are the entries of docs/races.md; r38..r46 are
 * the nexus races of docs/races.md.
 *
 * Built and run by tests/c_abi.rs. Prints "N passed, M failed".
 */
#include "harness.h"

#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

/* How long any single wait may take (valgrind on a loaded machine). */
#define LIMIT_SEC 120.0

/* ---- The application's event loop ------------------------------------- */

#define MAXREG 64
#define MAXENDED 4096

enum reg_state { REG_FREE, REG_LIVE, REG_FIRING };
enum reg_owner { OWN_HS, OWN_APP };

struct reg {
	enum reg_state state;
	enum reg_owner owner;
	int is_timer;
	int fd;
	short events;
	struct timespec abs;
	void *for_hs;
	const hs_set *set;	/* the set that registered it */
};

struct app {
	pthread_mutex_t lock;
	struct reg regs[MAXREG];
	hs_set *set;		/* the set hooks currently serve */
	/* for_hs values known to be stale, by kind */
	void *ended_fd[MAXENDED];
	int n_ended_fd;
	void *ended_timer[MAXENDED];
	int n_ended_timer;
	/* contract checks (any thread) */
	atomic_int in_hook;
	atomic_int nested;
	atomic_int modify_not_now;
	atomic_int bad_clock;
	atomic_int out_not_null;
	atomic_int hook_calls;
	atomic_int fd_deregistered;
	atomic_int timeouts_withdrawn;
	/* failure injection */
	int fail_fd_register;	/* value the next fd_register returns */
	int fail_timeout_register;	/* how many to fail (with ENOMEM) */
	int reenter;		/* call into the set from the next hook */
	/* the loop's own registrations */
	int app_pipe[2];
	int app_fd_events;
	int app_ticks;
	/* stale deliveries that were not dropped as ESTALE */
	atomic_int stale_acted;
	atomic_int stale_sent;
	int timeouts_acted;	/* hangsafe timeouts delivered and acted on */
};

static struct app A = { .lock = PTHREAD_MUTEX_INITIALIZER };

static double ts_sec(struct timespec t)
{
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static struct timespec mono_in(double secs)
{
	struct timespec t;
	double s = now_sec() + secs;

	t.tv_sec = (time_t)s;
	t.tv_nsec = (long)((s - (double)t.tv_sec) * 1e9);
	return t;
}

/* A free slot, or NULL (locked). */
static struct reg *reg_alloc(void)
{
	int i;

	for (i = 0; i < MAXREG; i++)
		if (A.regs[i].state == REG_FREE)
			return &A.regs[i];
	return NULL;
}

static void ended_add(void **list, int *n, void *for_hs)
{
	if (*n < MAXENDED)
		list[(*n)++] = for_hs;
}

/* Registrations of `set` in the table (all of hangsafe's if set is NULL). */
static int hs_regs(const hs_set *set)
{
	int i, n = 0;

	pthread_mutex_lock(&A.lock);
	for (i = 0; i < MAXREG; i++)
		if (A.regs[i].state != REG_FREE && A.regs[i].owner == OWN_HS &&
		    (set == NULL || A.regs[i].set == set))
			n++;
	pthread_mutex_unlock(&A.lock);
	return n;
}

static void hook_enter(void)
{
	if (atomic_fetch_add(&A.in_hook, 1) != 0)
		atomic_fetch_add(&A.nested, 1);
	atomic_fetch_add(&A.hook_calls, 1);
}

static void hook_leave(void)
{
	atomic_fetch_sub(&A.in_hook, 1);
}

static int reenter_checks(void);

static int fd_register(void *user, int fd, void **out, short events,
		       void *for_hs)
{
	struct reg *r;
	int rc = 0;

	hook_enter();
	(void)user;
	if (*out != NULL)
		atomic_fetch_add(&A.out_not_null, 1); /* NULL on entry */
	if (A.reenter) {
		A.reenter = 0;
		reenter_checks();
	}
	if (A.fail_fd_register) {
		rc = A.fail_fd_register;
		A.fail_fd_register = 0;
		*out = (void *)0x1;	/* ignored on failure */
		hook_leave();
		return rc;
	}
	pthread_mutex_lock(&A.lock);
	r = reg_alloc();
	if (r) {
		*r = (struct reg){ REG_LIVE, OWN_HS, 0, fd, events, { 0, 0 },
				   for_hs, A.set };
		*out = r;
	} else {
		rc = ENOSPC;
	}
	pthread_mutex_unlock(&A.lock);
	hook_leave();
	return rc;
}

static int fd_modify(void *user, int fd, void **update, short events)
{
	struct reg *r = *update;

	hook_enter();
	(void)user;
	pthread_mutex_lock(&A.lock);
	if (r && r->fd == fd)
		r->events = events;
	pthread_mutex_unlock(&A.lock);
	hook_leave();
	return 0;
}

static void fd_deregister(void *user, int fd, void *registration)
{
	struct reg *r = registration;

	hook_enter();
	(void)user;
	pthread_mutex_lock(&A.lock);
	if (r && r->state == REG_LIVE && r->fd == fd) {
		ended_add(A.ended_fd, &A.n_ended_fd, r->for_hs);
		r->state = REG_FREE;
	}
	pthread_mutex_unlock(&A.lock);
	atomic_fetch_add(&A.fd_deregistered, 1);
	hook_leave();
}

static int timeout_register(void *user, void **out, struct timespec abs,
			    void *for_hs)
{
	struct reg *r;
	int rc = 0;
	double d = ts_sec(abs) - now_sec();

	hook_enter();
	(void)user;
	if (*out != NULL)
		atomic_fetch_add(&A.out_not_null, 1);
	/* CLOCK_MONOTONIC, and the deadlines used here are under 10 s. */
	if (d < -1.0 || d > 30.0)
		atomic_fetch_add(&A.bad_clock, 1);
	if (A.fail_timeout_register > 0) {
		A.fail_timeout_register--;
		hook_leave();
		return ENOMEM;
	}
	pthread_mutex_lock(&A.lock);
	r = reg_alloc();
	if (r) {
		*r = (struct reg){ REG_LIVE, OWN_HS, 1, -1, 0, abs, for_hs,
				   A.set };
		*out = r;
	} else {
		rc = ENOSPC;
	}
	pthread_mutex_unlock(&A.lock);
	hook_leave();
	return rc;
}

static int timeout_modify(void *user, void **update, struct timespec abs)
{
	struct reg *r = *update;

	hook_enter();
	(void)user;
	if (abs.tv_sec != 0 || abs.tv_nsec != 0)
		atomic_fetch_add(&A.modify_not_now, 1);
	pthread_mutex_lock(&A.lock);
	/* Racing with its own firing (REG_FIRING): ignored, as libxl asks. */
	if (r && r->state == REG_LIVE && r->is_timer)
		r->abs = abs;
	pthread_mutex_unlock(&A.lock);
	atomic_fetch_add(&A.timeouts_withdrawn, 1);
	hook_leave();
	return 0;
}

static const struct hs_osevent_hooks HOOKS = {
	.fd_register = fd_register,
	.fd_modify = fd_modify,
	.fd_deregister = fd_deregister,
	.timeout_register = timeout_register,
	.timeout_modify = timeout_modify,
};

/* The loop's own periodic timer (re-registered each time it fires). */
static void app_timer_arm(void)
{
	struct reg *r;

	pthread_mutex_lock(&A.lock);
	r = reg_alloc();
	if (r)
		*r = (struct reg){ REG_LIVE, OWN_APP, 1, -1, 0, mono_in(0.005),
				   NULL, NULL };
	pthread_mutex_unlock(&A.lock);
}

static void app_fd_register(void)
{
	struct reg *r;

	pthread_mutex_lock(&A.lock);
	r = reg_alloc();
	if (r)
		*r = (struct reg){ REG_LIVE, OWN_APP, 0, A.app_pipe[0], POLLIN,
				   { 0, 0 }, NULL, NULL };
	pthread_mutex_unlock(&A.lock);
}

/* ---- Runners and their outcomes -------------------------------------- */

enum kind { K_QUICK, K_HANG, K_CANCEL, K_RELEASE };

struct job {
	int id;
	int kind;
	long result;
};

#define MAXJOBS 256

struct tracked {
	hs_token token;
	int kind;
	int id;
	int outcomes;
	int released;
	int bad;
};

static struct tracked jobs[MAXJOBS];
static int n_jobs;
static int unknown_outcomes;

static void work(void *data)
{
	struct job *j = data;

	if (j->kind == K_QUICK) {
		j->result = (long)j->id * j->id;
		return;
	}
	/* Hangs until cancelled (a deadline, hs_set_cancel or release),
	 * for at most a minute. */
	struct timespec ts = { 0, 100 * 1000 * 1000 };
	int i;

	for (i = 0; i < 600; i++)
		if (hs_nanosleep(&ts, NULL) != 0 && errno == ECANCELED)
			break;
}

static void on_outcome(void *arg, hs_token token, int state, const void *data,
		       unsigned int size)
{
	int i;

	(void)arg;
	for (i = 0; i < n_jobs; i++) {
		struct tracked *t = &jobs[i];

		if (t->token != token)
			continue;
		t->outcomes++;
		if (t->released)
			t->bad++;
		if (t->kind == K_QUICK) {
			const struct job *j = data;

			if (state != RUNNER_DONE || size != sizeof(*j) ||
			    j == NULL || j->result != (long)t->id * t->id)
				t->bad++;
		} else if (state != RUNNER_DEAD || data != NULL) {
			t->bad++;
		}
		return;
	}
	unknown_outcomes++;
}

static void spawn_job_timeout(hs_set *set, int kind, unsigned long timeout);

static void spawn_job(hs_set *set, int kind)
{
	/* Deadlines out of order: a later runner often needs an earlier
	 * timeout, so the armed one is withdrawn (timeout_modify). */
	unsigned long step = (unsigned long)((n_jobs * 13) % 20);
	unsigned long timeout = kind == K_HANG ? 20000UL + 25000UL * step : 0UL;

	spawn_job_timeout(set, kind, timeout);
}

static void spawn_job_timeout(hs_set *set, int kind, unsigned long timeout)
{
	struct job j = { n_jobs, kind, 0 };
	hs_token t;

	if (n_jobs >= MAXJOBS)
		return;
	t = hs_set_spawn(set, work, &j, sizeof(j), timeout);
	CHECK(t != 0);
	if (t == 0)
		return;
	jobs[n_jobs] = (struct tracked){ t, kind, j.id, 0, 0, 0 };
	n_jobs++;
	if (kind == K_CANCEL)
		CHECK_EQ(hs_set_cancel(set, t), 0);
	if (kind == K_RELEASE) {
		CHECK_EQ(hs_set_release(set, t), 0);
		jobs[n_jobs - 1].released = 1;
	}
}

static int pending_outcomes(void)
{
	int i, n = 0;

	for (i = 0; i < n_jobs; i++)
		if (!jobs[i].released && jobs[i].outcomes == 0)
			n++;
	return n;
}

/* ---- One turn of the loop ---------------------------------------------- */

struct due {
	void *for_hs;
	struct reg *reg;
	enum reg_owner owner;
};

static void deliver_stale_timer(hs_set *set, void *for_hs)
{
	errno = 0;
	hs_osevent_occurred_timeout(set, for_hs);
	atomic_fetch_add(&A.stale_sent, 1);
	if (errno != ESTALE)
		atomic_fetch_add(&A.stale_acted, 1);
}

static void deliver_stale_fd(hs_set *set, void *for_hs, int fd)
{
	errno = 0;
	hs_osevent_occurred_fd(set, for_hs, fd, POLLIN, POLLIN);
	atomic_fetch_add(&A.stale_sent, 1);
	if (errno != ESTALE)
		atomic_fetch_add(&A.stale_acted, 1);
}

/*
 * poll() on the table's fds until the earliest timer (at most max_ms),
 * deliver what happened, then drain. `set` may be NULL (a freed set: its
 * events are dropped by the application, not delivered).
 */
static void loop_once(hs_set *set, int max_ms)
{
	struct pollfd pfd[MAXREG];
	struct reg *pr[MAXREG];
	struct due due[MAXREG];
	int n = 0, n_due = 0, i, timeout = max_ms;
	double now = now_sec();

	pthread_mutex_lock(&A.lock);
	for (i = 0; i < MAXREG; i++) {
		struct reg *r = &A.regs[i];

		if (r->state != REG_LIVE)
			continue;
		if (r->is_timer) {
			double d = ts_sec(r->abs) - now;
			int ms = d <= 0 ? 0 : (int)(d * 1000.0) + 1;

			if (ms < timeout)
				timeout = ms;
		} else {
			pfd[n] = (struct pollfd){ r->fd, r->events, 0 };
			pr[n] = r;
			n++;
		}
	}
	pthread_mutex_unlock(&A.lock);

	poll(pfd, (nfds_t)n, timeout);

	for (i = 0; i < n; i++) {
		void *for_hs;
		enum reg_owner owner;
		int ok;

		if (!pfd[i].revents)
			continue;
		pthread_mutex_lock(&A.lock);
		ok = pr[i]->state == REG_LIVE && pr[i]->fd == pfd[i].fd;
		for_hs = pr[i]->for_hs;
		owner = pr[i]->owner;
		pthread_mutex_unlock(&A.lock);
		if (!ok)
			continue;
		if (owner == OWN_APP) {
			char buf[64];

			if (read(pfd[i].fd, buf, sizeof(buf)) > 0)
				A.app_fd_events++;
		} else if (set) {
			hs_osevent_occurred_fd(set, for_hs, pfd[i].fd,
					       pfd[i].events, pfd[i].revents);
		}
	}

	now = now_sec();
	pthread_mutex_lock(&A.lock);
	for (i = 0; i < MAXREG; i++) {
		struct reg *r = &A.regs[i];

		if (r->state == REG_LIVE && r->is_timer &&
		    ts_sec(r->abs) <= now) {
			r->state = REG_FIRING;
			due[n_due++] = (struct due){ r->for_hs, r, r->owner };
		}
	}
	pthread_mutex_unlock(&A.lock);

	for (i = 0; i < n_due; i++) {
		int ours = set && due[i].reg->set == set;

		if (due[i].owner == OWN_APP) {
			A.app_ticks++;
		} else if (ours) {
			errno = 0;
			hs_osevent_occurred_timeout(set, due[i].for_hs);
			if (errno == 0)
				A.timeouts_acted++;
		}
		/* A registration of a set already freed or detached from the
		 * table's point of view is simply forgotten. */
		pthread_mutex_lock(&A.lock);
		if (due[i].owner == OWN_HS)
			ended_add(A.ended_timer, &A.n_ended_timer,
				  due[i].for_hs);
		due[i].reg->state = REG_FREE;
		pthread_mutex_unlock(&A.lock);
		if (due[i].owner == OWN_APP)
			app_timer_arm();
		else if (ours)
			/* A duplicate of an event already delivered. */
			deliver_stale_timer(set, due[i].for_hs);
	}
	if (set)
		hs_set_drain(set, on_outcome, NULL);
}

/* ---- The injector thread ------------------------------------------------ */

static atomic_int inject_stop;

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* A value that is no token of any set: generation 0, or one no slot of
 * this test ever reaches, or a pointer. */
static void *garbage(uint64_t *s, void *stack)
{
	uint64_t r = rng_next(s);

	switch (r % 6) {
	case 0:
		return NULL;
	case 1:
		return (void *)(uintptr_t)(r & 0xffffffffu); /* generation 0 */
	case 2:
		return (void *)(uintptr_t)UINT64_MAX;
	case 3:
		return stack;
	case 4:
		return (void *)&A;
	default:
		return (void *)(uintptr_t)((0xdead0000ull | (r >> 48)) << 32 |
					   (r & 0xffff));
	}
}

static void *injector(void *arg)
{
	hs_set *set = arg;
	uint64_t s = 0x9e3779b97f4a7c15ull;
	int local;
	int fds[2];

	if (pipe(fds) != 0)
		return NULL;
	while (!atomic_load(&inject_stop)) {
		uint64_t r = rng_next(&s);
		void *v = NULL;
		int kind = (int)(r % 8);

		if (kind <= 1) {
			void *g = garbage(&s, &local);

			if (kind == 0)
				deliver_stale_timer(set, g);
			else
				deliver_stale_fd(set, g, (int)(r >> 8) % 64);
		} else if (kind <= 3) {
			/* Late: an ended registration's value. */
			pthread_mutex_lock(&A.lock);
			if (kind == 2 && A.n_ended_timer)
				v = A.ended_timer[(r >> 8) % (uint64_t)A.n_ended_timer];
			if (kind == 3 && A.n_ended_fd)
				v = A.ended_fd[(r >> 8) % (uint64_t)A.n_ended_fd];
			pthread_mutex_unlock(&A.lock);
			if (v && kind == 2)
				deliver_stale_timer(set, v);
			if (v && kind == 3)
				deliver_stale_fd(set, v, hs_set_fd(set));
		} else if (kind == 4) {
			/* A live fd registration, reported again or with the
			 * wrong fd: acted on only after the re-check, never
			 * wrong. */
			int i, fd = -1;

			pthread_mutex_lock(&A.lock);
			for (i = 0; i < MAXREG; i++)
				if (A.regs[i].state == REG_LIVE &&
				    A.regs[i].owner == OWN_HS &&
				    !A.regs[i].is_timer) {
					v = A.regs[i].for_hs;
					fd = A.regs[i].fd;
				}
			pthread_mutex_unlock(&A.lock);
			if (v) {
				errno = 0;
				hs_osevent_occurred_fd(set, v, fds[0], POLLIN,
						       POLLIN);
				if (errno != EBADF && errno != ESTALE)
					atomic_fetch_add(&A.stale_acted, 1);
				errno = 0;
				hs_osevent_occurred_fd(set, v, fd, POLLIN,
						       POLLIN);
				if (errno != 0 && errno != EAGAIN &&
				    errno != ESTALE)
					atomic_fetch_add(&A.stale_acted, 1);
			}
		} else if (kind == 5) {
			/* The loop's own pipe. */
			if (write(A.app_pipe[1], "x", 1) != 1)
				atomic_fetch_add(&A.stale_acted, 1000);
		} else {
			usleep(200);
		}
	}
	close(fds[0]);
	close(fds[1]);
	return NULL;
}

/* ---- Tests ---------------------------------------------------------- */

/* Bad arguments: every function, NULL set and hooks, incomplete hooks. */
static void h110_bad_arguments_are_refused(void)
{
	struct hs_osevent_hooks partial = HOOKS;
	hs_set *set = hs_set_new();

	current = "h110_bad_arguments_are_refused";
	CHECK(set != NULL);
	if (!set)
		return;
	CHECK_FAILS(hs_set_attach(NULL, &HOOKS, NULL), EINVAL);
	CHECK_FAILS(hs_set_attach(set, NULL, NULL), EINVAL);
	partial.timeout_modify = NULL;
	CHECK_FAILS(hs_set_attach(set, &partial, NULL), EINVAL);
	partial = HOOKS;
	partial.fd_register = NULL;
	CHECK_FAILS(hs_set_attach(set, &partial, NULL), EINVAL);
	CHECK_FAILS(hs_set_detach(NULL), EINVAL);
	CHECK_FAILS(hs_set_detach(set), ENOTCONN);
	errno = 0;
	hs_osevent_occurred_fd(NULL, (void *)1, 0, POLLIN, POLLIN);
	CHECK_EQ(errno, EINVAL);
	errno = 0;
	hs_osevent_occurred_timeout(NULL, (void *)1);
	CHECK_EQ(errno, EINVAL);
	/* Not attached: every value is stale. */
	errno = 0;
	hs_osevent_occurred_fd(set, NULL, hs_set_fd(set), POLLIN, POLLIN);
	CHECK_EQ(errno, ESTALE);
	errno = 0;
	hs_osevent_occurred_timeout(set, (void *)(uintptr_t)(1ull << 32));
	CHECK_EQ(errno, ESTALE);

	A.set = set;
	CHECK_EQ(hs_set_attach(set, &HOOKS, NULL), 0);
	CHECK_EQ(hs_regs(set), 1);
	CHECK_FAILS(hs_set_attach(set, &HOOKS, NULL), EBUSY);
	CHECK_EQ(hs_regs(set), 1);
	CHECK_EQ(hs_set_detach(set), 0);
	CHECK_EQ(hs_regs(set), 0);
	CHECK_FAILS(hs_set_detach(set), ENOTCONN);
	hs_set_free(set);
	A.set = NULL;
}

/* R46: each entry point called from inside a hook fails with EDEADLK. */
static int reenter_checks(void)
{
	hs_set *set = A.set;
	struct job j = { 0, K_QUICK, 0 };
	int ok = 1;

	errno = 0;
	ok &= hs_set_spawn(set, work, &j, sizeof(j), 0) == 0 && errno == EDEADLK;
	errno = 0;
	ok &= hs_set_cancel(set, 1) == -1 && errno == EDEADLK;
	errno = 0;
	ok &= hs_set_release(set, 1) == -1 && errno == EDEADLK;
	errno = 0;
	ok &= hs_set_drain(set, on_outcome, NULL) == -1 && errno == EDEADLK;
	errno = 0;
	ok &= hs_set_attach(set, &HOOKS, NULL) == -1 && errno == EDEADLK;
	errno = 0;
	ok &= hs_set_detach(set) == -1 && errno == EDEADLK;
	errno = 0;
	hs_osevent_occurred_fd(set, (void *)1, 0, POLLIN, POLLIN);
	ok &= errno == EDEADLK;
	errno = 0;
	hs_osevent_occurred_timeout(set, (void *)1);
	ok &= errno == EDEADLK;
	errno = 0;
	hs_set_free(set);	/* refused: the set lives on */
	ok &= errno == EDEADLK;
	A.reenter = ok ? 2 : 3;
	return ok;
}

static void r59_calls_from_inside_a_hook_fail_with_edeadlk(void)
{
	hs_set *set = hs_set_new();
	struct hs_runner_metrics m;

	current = "r59_calls_from_inside_a_hook_fail_with_edeadlk";
	CHECK(set != NULL);
	if (!set)
		return;
	A.set = set;
	A.reenter = 1;
	CHECK_EQ(hs_set_attach(set, &HOOKS, NULL), 0);
	CHECK_EQ(A.reenter, 2);
	/* The set still works: a runner's outcome arrives. */
	n_jobs = 0;
	spawn_job(set, K_QUICK);
	for (double end = now_sec() + LIMIT_SEC;
	     pending_outcomes() && now_sec() < end;)
		loop_once(set, 50);
	CHECK_EQ(pending_outcomes(), 0);
	CHECK_EQ(jobs[0].outcomes, 1);
	CHECK_EQ(jobs[0].bad, 0);
	CHECK_EQ(hs_set_detach(set), 0);
	hs_set_free(set);
	A.set = NULL;
	CHECK_EQ(hs_regs(set), 0);
	CHECK(wait_settled(&m, LIMIT_SEC));
}

/*
 * A register hook that fails: attach fails with the hook's value as errno
 * (EIO for a value that is no errno), registers nothing, and may be
 * retried; a failing timeout_register leaves deadlines to the runners'
 * own timer, reported through the fd.
 */
static void h111_failing_register_hooks_leave_the_set_usable(void)
{
	hs_set *set = hs_set_new();
	struct hs_runner_metrics m;

	current = "h111_failing_register_hooks_leave_the_set_usable";
	CHECK(set != NULL);
	if (!set)
		return;
	A.set = set;
	A.fail_fd_register = ENOMEM;
	CHECK_FAILS(hs_set_attach(set, &HOOKS, NULL), ENOMEM);
	CHECK_EQ(hs_regs(set), 0);
	A.fail_fd_register = -7;
	CHECK_FAILS(hs_set_attach(set, &HOOKS, NULL), EIO);
	CHECK_FAILS(hs_set_detach(set), ENOTCONN);
	CHECK_EQ(hs_set_attach(set, &HOOKS, NULL), 0);
	CHECK_EQ(hs_regs(set), 1);

	A.fail_timeout_register = 1000;
	n_jobs = 0;
	spawn_job(set, K_HANG);
	spawn_job(set, K_QUICK);
	CHECK_EQ(hs_regs(set), 1);	/* no timeout registered */
	for (double end = now_sec() + LIMIT_SEC;
	     pending_outcomes() && now_sec() < end;)
		loop_once(set, 50);
	A.fail_timeout_register = 0;
	CHECK_EQ(pending_outcomes(), 0);
	CHECK_EQ(jobs[0].outcomes + jobs[1].outcomes, 2);
	CHECK_EQ(jobs[0].bad + jobs[1].bad, 0);
	CHECK_EQ(hs_set_detach(set), 0);
	CHECK_EQ(hs_regs(set), 0);
	hs_set_free(set);
	A.set = NULL;
	CHECK(wait_settled(&m, LIMIT_SEC));
}

/* Runs the loop until the table holds none of `set`'s registrations. */
static int loop_until_no_regs(hs_set *set, const hs_set *owner)
{
	double end = now_sec() + LIMIT_SEC;

	while (hs_regs(owner) && now_sec() < end)
		loop_once(set, 20);
	return hs_regs(owner) == 0;
}

/* Runs the loop until `n` outcomes are still pending (or the limit). */
static void loop_until_pending(hs_set *set, int n)
{
	double end = now_sec() + LIMIT_SEC;

	while (pending_outcomes() > n && now_sec() < end)
		loop_once(set, 50);
}

static void spawn_round(hs_set *set, int count)
{
	int i;

	for (i = 0; i < count; i++)
		spawn_job(set, (int)(((unsigned)i * 7u + 3u) % 4u));
}

/*
 * The libxl-style loop (R38, R39, R40, R41, R43, R45): runners of every
 * kind, a second thread injecting late, stale, duplicated and garbage
 * occurred calls, detach and re-attach midway; then free while attached.
 */
static void h112_h114_r60_r62_libxl_style_loop_with_injected_events(void)
{
	hs_set *set = hs_set_new();
	hs_set *other;
	pthread_t th;
	struct hs_runner_metrics m;
	int i, bad = 0, outcomes = 0, released_outcomes = 0, ended_first;
	int rounds = getenv("HANGSAFE_TEST_VALGRIND") ? 2 : 6;

	current = "h112_h114_r60_r62_libxl_style_loop_with_injected_events";
	CHECK(set != NULL);
	if (!set || pipe(A.app_pipe) != 0)
		return;
	A.set = set;
	/* Tokens are per set: forget the earlier sets' stale values, which
	 * may equal live tokens of this one. */
	pthread_mutex_lock(&A.lock);
	A.n_ended_fd = A.n_ended_timer = 0;
	pthread_mutex_unlock(&A.lock);
	app_fd_register();
	app_timer_arm();
	CHECK_EQ(hs_set_attach(set, &HOOKS, NULL), 0);
	CHECK(pthread_create(&th, NULL, injector, set) == 0);

	n_jobs = 0;
	for (i = 0; i < rounds; i++) {
		spawn_round(set, 20);
		loop_until_pending(set, 4);
	}
	/* Detach midway, with a timeout registered: everything of the first
	 * attachment ends; the runner's deadline is registered again by the
	 * next attachment. */
	spawn_job_timeout(set, K_HANG, 400000UL);
	/* The fd and the armed timeout (and maybe a withdrawn one that the
	 * loop has not fired yet). */
	CHECK(hs_regs(set) >= 2);
	CHECK_EQ(hs_set_detach(set), 0);
	CHECK(loop_until_no_regs(set, set));
	pthread_mutex_lock(&A.lock);
	ended_first = A.n_ended_fd;
	pthread_mutex_unlock(&A.lock);
	CHECK(ended_first >= 1);
	CHECK_EQ(hs_set_attach(set, &HOOKS, NULL), 0);
	/* Tokens of the first attachment stay stale after re-attaching. */
	pthread_mutex_lock(&A.lock);
	for (i = 0; i < ended_first; i++) {
		void *v = A.ended_fd[i];

		pthread_mutex_unlock(&A.lock);
		deliver_stale_fd(set, v, hs_set_fd(set));
		pthread_mutex_lock(&A.lock);
	}
	pthread_mutex_unlock(&A.lock);
	for (i = 0; i < rounds; i++) {
		spawn_round(set, 20);
		loop_until_pending(set, 4);
	}
	loop_until_pending(set, 0);

	atomic_store(&inject_stop, 1);
	pthread_join(th, NULL);

	CHECK_EQ(pending_outcomes(), 0);
	for (i = 0; i < n_jobs; i++) {
		bad += jobs[i].bad;
		if (jobs[i].released)
			released_outcomes += jobs[i].outcomes;
		else if (jobs[i].outcomes != 1)
			bad++;
		outcomes += jobs[i].outcomes;
	}
	CHECK_EQ(bad, 0);
	CHECK_EQ(released_outcomes, 0);
	CHECK_EQ(unknown_outcomes, 0);
	CHECK(outcomes > 0);
	CHECK_EQ(atomic_load(&A.stale_acted), 0);
	CHECK(atomic_load(&A.stale_sent) > 100);
	CHECK(A.app_ticks > 0);
	CHECK(A.timeouts_acted > 0);
	CHECK(atomic_load(&A.timeouts_withdrawn) > 0);
	CHECK(A.app_fd_events > 0);
	printf("  %d runners, %d outcomes, %d stale/garbage events dropped, "
	       "%d hook calls, %d timeouts acted on, %d withdrawn, loop: %d "
	       "ticks, %d fd events\n",
	       n_jobs, outcomes, atomic_load(&A.stale_sent),
	       atomic_load(&A.hook_calls), A.timeouts_acted,
	       atomic_load(&A.timeouts_withdrawn), A.app_ticks,
	       A.app_fd_events);

	CHECK_EQ(hs_set_detach(set), 0);
	CHECK(loop_until_no_regs(set, set));
	hs_set_free(set);

	/* Freed while attached: the fd is deregistered, a pending timeout
	 * withdrawn; the application forgets what is left of a freed set. */
	other = hs_set_new();
	CHECK(other != NULL);
	if (other) {
		A.set = other;
		CHECK_EQ(hs_set_attach(other, &HOOKS, NULL), 0);
		n_jobs = 0;
		spawn_job_timeout(other, K_HANG, 10000000UL);
		CHECK_EQ(hs_regs(other), 2);
		hs_set_free(other);
		CHECK(loop_until_no_regs(NULL, other));
	}
	A.set = NULL;
	CHECK_EQ(hs_regs(NULL), 0);
	CHECK_EQ(atomic_load(&A.nested), 0);
	CHECK_EQ(atomic_load(&A.modify_not_now), 0);
	CHECK_EQ(atomic_load(&A.bad_clock), 0);
	CHECK_EQ(atomic_load(&A.out_not_null), 0);

	pthread_mutex_lock(&A.lock);
	for (i = 0; i < MAXREG; i++)
		A.regs[i].state = REG_FREE;	/* the loop's own */
	pthread_mutex_unlock(&A.lock);
	close(A.app_pipe[0]);
	close(A.app_pipe[1]);
	CHECK(wait_settled(&m, LIMIT_SEC));
	CHECK_EQ(m.live_contexts, 0);
}

int main(void)
{
	h110_bad_arguments_are_refused();
	r59_calls_from_inside_a_hook_fail_with_edeadlk();
	h111_failing_register_hooks_leave_the_set_usable();
	h112_h114_r60_r62_libxl_style_loop_with_injected_events();
	CHECK_EQ(atomic_load(&A.nested), 0);
	return harness_summary();
}

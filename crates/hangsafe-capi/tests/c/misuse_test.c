/*
 * misuse_test.c - every entry point of runner.h and hangsafe.h called the
 * way a careless or hostile caller would: NULL pointers, zero and huge
 * sizes, timeouts of 0 and ULONG_MAX, descriptors that are -1, closed or
 * huge, NULL buffers with non-zero sizes, garbage robust-mutex memory,
 * calls in the wrong order, calls from inside work, and calls in a fork()
 * child. The expected answer is always the C convention of the header
 * (NULL or -1 with errno; an error number for the robust mutex), never a
 * crash, a hang or a changed errno where the header promises none.
 *
 * What the headers leave undefined (a released or forged runner handle, a
 * freed mutex, a data pointer shorter than its size, ...) is not called
 * here: README.md lists it under "Security and failure model".
 *
 * Tests named hN_... are the hazards of docs/races.md.
 *
 * Calls that hand the kernel a deliberately bad pointer (EFAULT) are
 * skipped under valgrind (HANGSAFE_TEST_VALGRIND), which reports them as
 * errors before the kernel answers.
 *
 * Built and run by tests/c_abi.rs. Prints "N passed, M failed".
 */
#include "harness.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* How long any single wait may take (valgrind on a loaded machine). */
#define LIMIT_SEC 60.0

static int under_valgrind(void)
{
	return getenv("HANGSAFE_TEST_VALGRIND") != NULL;
}

/* `expr` returns the error number `err` and leaves errno untouched. */
#define CHECK_RC(expr, err)                                                \
	do {                                                               \
		int rc_;                                                   \
		errno = 4321;                                              \
		rc_ = (expr);                                              \
		if (rc_ != (err))                                          \
			fprintf(stderr, "  %s = %d (%s); want %s\n", #expr, \
				rc_, strerror(rc_), #err);                 \
		check_at(rc_ == (err), #expr " == " #err, __FILE__,        \
			 __LINE__);                                        \
		check_at(errno == 4321, #expr " keeps errno", __FILE__,    \
			 __LINE__);                                        \
	} while (0)

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

/* Polls until the runner is final (DONE or DEAD) or `secs` pass. */
static int wait_final(struct runner_context *r, double secs)
{
	double end = now_sec() + secs;
	int st;

	for (;;) {
		st = check_runner(r, NULL, 0);
		if (st == RUNNER_DONE || st == RUNNER_DEAD || now_sec() >= end)
			return st;
		sleep_ms(1);
	}
}

/* ---- Work functions ---------------------------------------------------- */

struct num {
	int64_t in;
	int64_t out;
};

static void work_double(void *data)
{
	struct num *n = data;

	n->out = n->in * 2;
}

/* Held until *release is set (bounded), then doubles. */
struct held {
	int64_t in;
	int64_t out;
	atomic_int *started;
	atomic_int *release;
};

static void work_held(void *data)
{
	struct held *h = data;
	double end = now_sec() + 2 * LIMIT_SEC;

	atomic_store(h->started, 1);
	while (!atomic_load(h->release) && now_sec() < end)
		sleep_ms(1);
	h->out = h->in * 2;
}

/* A shared, zero-filled mapping that survives fork(). */
static void *shared(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(2);
	}
	return p;
}

/* ---- runner.h ---------------------------------------------------------- */

static void h38_state_name_of_any_int(void)
{
	static const int bad[] = { INT_MIN, -1, 5, 6, 255, 256, INT_MAX };
	size_t i;

	current = "h38_state_name_of_any_int";
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *s = runner_state_name(bad[i]);

		CHECK(s != NULL && strcmp(s, "unknown") == 0);
	}
	CHECK(strcmp(runner_state_name(RUNNER_DEAD), "dead") == 0);
}

static void h39_get_runner_refuses_every_bad_argument(void)
{
	static const unsigned int sizes[] = { 0, 1, UINT_MAX };
	static const unsigned long timeouts[] = { 0, 1, ULONG_MAX };
	struct num n = { 1, 0 };
	size_t s, t;

	current = "h39_get_runner_refuses_every_bad_argument";
	for (s = 0; s < 3; s++) {
		for (t = 0; t < 3; t++) {
			errno = 0;
			CHECK(get_runner(NULL, NULL, sizes[s], timeouts[t]) ==
			      NULL);
			CHECK_EQ(errno, EINVAL);
			errno = 0;
			CHECK(get_runner(work_double, NULL, sizes[s],
					 timeouts[t]) == NULL);
			CHECK_EQ(errno, EINVAL);
			errno = 0;
			CHECK(get_runner(NULL, &n, s == 2 ? 1 : sizes[s],
					 timeouts[t]) == NULL);
			CHECK_EQ(errno, EINVAL);
			errno = 0;
			CHECK(get_runner(work_double, &n, 0, timeouts[t]) ==
			      NULL);
			CHECK_EQ(errno, EINVAL);
		}
	}
}

static void work_noop(void *data)
{
	(void)data;
}

static void work_flip(void *data)
{
	unsigned char *p = data;

	p[0] ^= 0xff;
}

/* A large copy (16 MiB) and a one-byte copy both work. */
static void h40_get_runner_sizes_one_and_large(void)
{
	size_t big = 16u << 20;
	unsigned char *buf = malloc(big);
	unsigned char *out = malloc(big + 64);
	unsigned char one = 7, one_out = 0;
	struct runner_context *r;

	current = "h40_get_runner_sizes_one_and_large";
	CHECK(buf != NULL && out != NULL);
	if (!buf || !out) {
		free(buf);
		free(out);
		return;
	}
	memset(buf, 0xa5, big);
	r = get_runner(work_flip, buf, (unsigned int)big, 0);
	CHECK(r != NULL);
	if (r) {
		CHECK_EQ(wait_decided(r, LIMIT_SEC), RUNNER_DONE);
		memset(out, 0x11, big + 64);
		/* size larger than the runner's: only what exists is copied */
		CHECK_EQ(check_runner(r, out, (unsigned int)(big + 64)),
			 RUNNER_DONE);
		CHECK_EQ(out[0], 0x5a);
		CHECK_EQ(out[big - 1], 0xa5);
		CHECK_EQ(out[big], 0x11);
		/* size 0 copies nothing */
		memset(out, 0x22, 16);
		CHECK_EQ(check_runner(r, out, 0), RUNNER_DONE);
		CHECK_EQ(out[0], 0x22);
		release_runner(r);
	}
	r = get_runner(work_noop, &one, 1, 0);
	CHECK(r != NULL);
	if (r) {
		CHECK_EQ(wait_decided(r, LIMIT_SEC), RUNNER_DONE);
		/*
		 * UINT_MAX with a buffer that holds the runner's single byte:
		 * runner.h promises only the bytes that exist are copied.
		 */
		CHECK_EQ(check_runner(r, &one_out, UINT_MAX), RUNNER_DONE);
		CHECK_EQ(one_out, 7);
		CHECK_EQ(check_runner(r, NULL, UINT_MAX), RUNNER_DONE);
		release_runner(r);
	}
	free(buf);
	free(out);
}

/*
 * Every timeout from 0 to ULONG_MAX starts a runner, and none of them
 * breaks the deadline timer: a runner with a short deadline started
 * afterwards is still cancelled on time.
 */
static void h41_extreme_timeouts_keep_the_timer_alive(void)
{
	static const unsigned long timeouts[] = {
		0, ULONG_MAX, ULONG_MAX - 1, LONG_MAX, (unsigned long)LONG_MAX + 1,
		ULONG_MAX / 1000, ULONG_MAX / 1000000, 18446744073709ul,
	};
	static atomic_int started, release;
	struct held h = { 3, 0, &started, &release };
	struct runner_context *r[sizeof(timeouts) / sizeof(timeouts[0])];
	struct runner_context *shortr;
	size_t i, n = sizeof(timeouts) / sizeof(timeouts[0]);
	double t0;
	struct num quick = { 5, 0 };

	current = "h41_extreme_timeouts_keep_the_timer_alive";
	atomic_store(&release, 0);
	for (i = 0; i < n; i++) {
		r[i] = get_runner(work_held, &h, sizeof(h), timeouts[i]);
		CHECK(r[i] != NULL);
	}
	/* Let the timer see them all. */
	sleep_ms(50);
	for (i = 0; i < n; i++)
		if (r[i])
			CHECK_EQ(check_runner(r[i], NULL, 0), RUNNER_RUNNING);

	t0 = now_sec();
	shortr = get_runner(work_held, &h, sizeof(h), 50000);
	CHECK(shortr != NULL);
	if (shortr) {
		/* The timer cancels it without anybody polling. */
		struct hs_runner_metrics m0, m1;
		double end = now_sec() + LIMIT_SEC;

		/* Cancelled while running, or (if no thread picked it up in
		 * time) ended without running: either way the timer acted. */
		metrics(&m0);
		do {
			sleep_ms(5);
			metrics(&m1);
		} while (m1.runners_cancelled + m1.runners_dead ==
				 m0.runners_cancelled + m0.runners_dead &&
			 now_sec() < end);
		CHECK(m1.runners_cancelled + m1.runners_dead >
		      m0.runners_cancelled + m0.runners_dead);
		CHECK(now_sec() - t0 < LIMIT_SEC);
		release_runner(shortr);
	}
	atomic_store(&release, 1);
	for (i = 0; i < n; i++) {
		if (!r[i])
			continue;
		CHECK_EQ(wait_decided(r[i], LIMIT_SEC), RUNNER_DONE);
		release_runner(r[i]);
	}
	/* A timeout of 1 µs: DONE or CANCELLED then DEAD, never stuck. */
	for (i = 0; i < 20; i++) {
		struct runner_context *q =
			get_runner(work_double, &quick, sizeof(quick), 1);
		int st;

		CHECK(q != NULL);
		if (!q)
			continue;
		st = wait_final(q, LIMIT_SEC);
		CHECK(st == RUNNER_DONE || st == RUNNER_DEAD);
		release_runner(q);
	}
}

static void h42_check_runner_null_and_odd_buffers(void)
{
	struct num n = { 21, 0 }, out = { 0, 0 };
	struct runner_context *r;

	current = "h42_check_runner_null_and_odd_buffers";
	CHECK_FAILS(check_runner(NULL, NULL, 0), EINVAL);
	CHECK_FAILS(check_runner(NULL, &out, sizeof(out)), EINVAL);
	CHECK_FAILS(check_runner(NULL, NULL, UINT_MAX), EINVAL);
	r = get_runner(work_double, &n, sizeof(n), 0);
	CHECK(r != NULL);
	if (!r)
		return;
	CHECK_EQ(wait_decided(r, LIMIT_SEC), RUNNER_DONE);
	/* Checking a DONE runner again and again is stable. */
	for (int i = 0; i < 1000; i++) {
		if (check_runner(r, &out, sizeof(out)) != RUNNER_DONE)
			break;
	}
	CHECK_EQ(check_runner(r, &out, sizeof(out)), RUNNER_DONE);
	CHECK_EQ(out.out, 42);
	/* A prefix: only the first field. */
	memset(&out, 0, sizeof(out));
	CHECK_EQ(check_runner(r, &out, 1), RUNNER_DONE);
	CHECK_EQ(out.in, 21);
	CHECK_EQ(out.out, 0);
	release_runner(r);
	release_runner(NULL);
	release_runner(NULL);
	CHECK(1);
}

/* Release at once after get: the work may or may not run, nothing leaks. */
static void h43_release_right_after_get_and_while_running(void)
{
	static atomic_int started, release;
	struct held h = { 1, 0, &started, &release };
	struct num n = { 1, 0 };
	struct hs_runner_metrics m;
	int i;

	current = "h43_release_right_after_get_and_while_running";
	for (i = 0; i < 200; i++) {
		struct runner_context *r =
			get_runner(work_double, &n, sizeof(n), i % 2 ? 1 : 0);

		CHECK(r != NULL);
		release_runner(r);
	}
	atomic_store(&started, 0);
	atomic_store(&release, 0);
	{
		struct runner_context *r =
			get_runner(work_held, &h, sizeof(h), 0);

		CHECK(r != NULL);
		if (r) {
			double end = now_sec() + LIMIT_SEC;

			while (!atomic_load(&started) && now_sec() < end)
				sleep_ms(1);
			/* cancel by release while the work runs */
			release_runner(r);
		}
		atomic_store(&release, 1);
	}
	CHECK(wait_settled(&m, LIMIT_SEC));
}

/* ---- Calls from inside work -------------------------------------------- */

struct nested {
	int64_t in;
	int64_t out;
	int inner_state;
	int metrics_rc;
	int version_ok;
	int testcancel;
};

static void work_nested(void *data)
{
	struct nested *x = data;
	struct num n = { x->in, 0 };
	struct hs_runner_metrics m;
	struct runner_context *inner = get_runner(work_double, &n, sizeof(n), 0);

	x->metrics_rc = hs_runner_metrics(&m);
	x->version_ok = hs_version() != NULL;
	x->testcancel = hs_testcancel();
	if (!inner) {
		x->inner_state = -2;
		return;
	}
	x->inner_state = wait_decided(inner, LIMIT_SEC);
	check_runner(inner, &n, sizeof(n));
	x->out = n.out;
	release_runner(inner);
}

/* A work function that itself starts, checks and releases runners. */
static void h44_runner_api_from_inside_work(void)
{
	struct nested x = { 4, 0, 0, -1, 0, -1 };
	struct runner_context *r = get_runner(work_nested, &x, sizeof(x), 0);

	current = "h44_runner_api_from_inside_work";
	CHECK(r != NULL);
	if (!r)
		return;
	CHECK_EQ(wait_decided(r, LIMIT_SEC), RUNNER_DONE);
	CHECK_EQ(check_runner(r, &x, sizeof(x)), RUNNER_DONE);
	CHECK_EQ(x.inner_state, RUNNER_DONE);
	CHECK_EQ(x.out, 8);
	CHECK_EQ(x.metrics_rc, 0);
	CHECK(x.version_ok);
	CHECK_EQ(x.testcancel, 0);
	release_runner(r);
}

/* The work checks, then releases, its own runner's handle. */
static _Atomic(struct runner_context *) self_handle;

struct self_job {
	int self_state;
	int after_release;
	int after_errno;
	atomic_int *done;
};

static void work_self(void *data)
{
	struct self_job *s = data;
	struct runner_context *me;
	double end = now_sec() + LIMIT_SEC;

	while ((me = atomic_load(&self_handle)) == NULL && now_sec() < end)
		sleep_ms(1);
	if (!me) {
		atomic_store(s->done, -1);
		return;
	}
	/* Waiting on its own runner does not deadlock: it is RUNNING. */
	s->self_state = check_runner(me, NULL, 0);
	release_runner(me);
	errno = 0;
	s->after_release = hs_testcancel();
	s->after_errno = errno;
	atomic_store(s->done, s->self_state * 1000 + s->after_release * 10 +
				      (s->after_errno == ECANCELED));
}

static void h45_work_checks_and_releases_its_own_runner(void)
{
	static atomic_int done;
	struct self_job s = { 0, 0, 0, &done };
	struct runner_context *r;
	struct hs_runner_metrics m;
	double end;

	current = "h45_work_checks_and_releases_its_own_runner";
	atomic_store(&done, 0);
	atomic_store(&self_handle, NULL);
	r = get_runner(work_self, &s, sizeof(s), 0);
	CHECK(r != NULL);
	if (!r)
		return;
	/* From here on the handle belongs to the work (it releases it). */
	atomic_store(&self_handle, r);
	end = now_sec() + LIMIT_SEC;
	while (atomic_load(&done) == 0 && now_sec() < end)
		sleep_ms(1);
	/* RUNNING (1), then hs_testcancel() == -1 with ECANCELED. */
	CHECK_EQ(atomic_load(&done), RUNNER_RUNNING * 1000 - 10 + 1);
	CHECK(wait_settled(&m, LIMIT_SEC));
}

/* ---- The cancellable calls --------------------------------------------- */

static void h46_cancellable_calls_bad_descriptors(void)
{
	char buf[8] = { 0 };
	int n = 0;
	int p[2];
	int closed;
	struct pollfd pf[2];
	struct timespec ts;
	struct sockaddr_un sa;

	current = "h46_cancellable_calls_bad_descriptors";
	CHECK(pipe(p) == 0);
	closed = dup(p[0]);
	close(closed);
	{
		static const int bad[] = { -1, INT_MIN, INT_MAX, -100 };
		size_t i;

		for (i = 0; i < 4; i++) {
			CHECK_FAILS(hs_read(bad[i], buf, sizeof(buf)), EBADF);
			CHECK_FAILS(hs_write(bad[i], buf, 1), EBADF);
			CHECK_FAILS(hs_accept4(bad[i], NULL, NULL, 0), EBADF);
			CHECK_FAILS(hs_connect(bad[i], NULL, 0), EBADF);
			CHECK_FAILS(hs_ioctl(bad[i], FIONREAD, &n), EBADF);
			CHECK_FAILS(hs_openat(bad[i], "relative", O_RDONLY),
				    bad[i] == -100 ? ENOENT : EBADF);
		}
	}
	CHECK_FAILS(hs_read(closed, buf, 1), EBADF);
	CHECK_FAILS(hs_write(closed, buf, 1), EBADF);
	CHECK_FAILS(hs_write(p[0], buf, 1), EBADF);	/* read end */
	CHECK_FAILS(hs_read(p[1], buf, 1), EBADF);	/* write end */
	CHECK_FAILS(hs_accept4(p[0], NULL, NULL, 0), ENOTSOCK);
	CHECK_FAILS(hs_connect(p[0], NULL, 0), ENOTSOCK);
	CHECK_FAILS(hs_ioctl3(p[0], 0, &n), ENOTTY);

	/* Zero counts with NULL buffers are fine, as with libc. */
	CHECK_EQ(hs_write(p[1], NULL, 0), 0);
	CHECK_EQ(hs_write(p[1], "abc", 3), 3);
	CHECK_EQ(hs_read(p[0], NULL, 0), 0);
	CHECK_EQ(hs_poll(NULL, 0, 0), 0);

	/* poll: negative fds are ignored, huge ones are POLLNVAL. */
	pf[0].fd = -1;
	pf[0].events = POLLIN;
	pf[0].revents = 0;
	pf[1].fd = INT_MAX;
	pf[1].events = POLLIN;
	pf[1].revents = 0;
	CHECK_EQ(hs_poll(pf, 1, 0), 0);
	CHECK_EQ(hs_poll(pf, 2, 0), 1);
	CHECK(pf[1].revents & POLLNVAL);
	/* Extreme timeouts on a ready descriptor return at once. */
	pf[0].fd = p[0];
	CHECK_EQ(hs_poll(pf, 1, INT_MAX), 1);
	CHECK_EQ(hs_poll(pf, 1, INT_MIN), 1);
	CHECK_EQ(hs_poll(pf, 1, -1), 1);
	CHECK_EQ(hs_read(p[0], buf, sizeof(buf)), 3);

	/* nanosleep: out-of-range times. */
	ts.tv_sec = -1;
	ts.tv_nsec = 0;
	CHECK_FAILS(hs_nanosleep(&ts, NULL), EINVAL);
	ts.tv_sec = 0;
	ts.tv_nsec = -1;
	CHECK_FAILS(hs_nanosleep(&ts, &ts), EINVAL);
	ts.tv_nsec = 1000000000L;
	CHECK_FAILS(hs_nanosleep(&ts, NULL), EINVAL);
	ts.tv_sec = LONG_MIN;
	ts.tv_nsec = LONG_MAX;
	CHECK_FAILS(hs_nanosleep(&ts, NULL), EINVAL);
	ts.tv_sec = 0;
	ts.tv_nsec = 0;
	CHECK_EQ(hs_nanosleep(&ts, NULL), 0);
	ts.tv_nsec = 1;
	CHECK_EQ(hs_nanosleep(&ts, &ts), 0);

	/* openat: empty path, flags and mode with every bit set. */
	CHECK_FAILS(hs_openat(AT_FDCWD, "", O_RDONLY), ENOENT);
	CHECK(hs_openat4(AT_FDCWD, "/nonexistent-hangsafe/x", -1,
			 (mode_t)-1) == -1);
	{
		int fd = hs_openat(-1, "/dev/null", O_RDONLY | O_CLOEXEC);

		CHECK(fd >= 0); /* an absolute path ignores dirfd */
		if (fd >= 0)
			close(fd);
	}

	/* sockets: bad lengths and flags. */
	{
		int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		CHECK(s >= 0);
		memset(&sa, 0, sizeof(sa));
		sa.sun_family = AF_UNIX;
		strcpy(sa.sun_path, "/nonexistent-hangsafe/sock");
		CHECK_FAILS(hs_connect(s, NULL, 0), EINVAL);
		CHECK_FAILS(hs_connect(s, (struct sockaddr *)&sa, 0), EINVAL);
		CHECK_FAILS(hs_connect(s, (struct sockaddr *)&sa, sizeof(sa)),
			    ENOENT);
		CHECK_FAILS(hs_accept4(s, NULL, NULL, -1), EINVAL);
		CHECK_FAILS(hs_accept4(s, NULL, NULL, 0), EINVAL); /* not listening */
		close(s);
	}
	CHECK_EQ(hs_testcancel(), 0);
	close(p[0]);
	close(p[1]);
}

/* NULL and huge buffers reach the kernel, which answers EFAULT. */
static void h47_cancellable_calls_bad_pointers(void)
{
	int p[2];
	int n;
	struct timespec ts = { 0, 0 };
	long r;

	current = "h47_cancellable_calls_bad_pointers";
	if (under_valgrind()) {
		printf("skipped %s under valgrind\n", current);
		return;
	}
	CHECK(pipe(p) == 0);
	CHECK_EQ(hs_write(p[1], "abcd", 4), 4);
	CHECK_FAILS(hs_read(p[0], NULL, 4), EFAULT);
	CHECK_FAILS(hs_write(p[1], NULL, 4), EFAULT);
	errno = 0;
	r = hs_read(p[0], (void *)&n, SIZE_MAX);
	CHECK(r == -1 && (errno == EFAULT || errno == EINVAL));
	CHECK_FAILS(hs_poll(NULL, 1, 0), EFAULT);
	CHECK_FAILS(hs_nanosleep(NULL, NULL), EFAULT);
	CHECK_FAILS(hs_nanosleep((const struct timespec *)(uintptr_t)8, &ts),
		    EFAULT);
	CHECK_FAILS(hs_openat(AT_FDCWD, NULL, O_RDONLY), EFAULT);
	CHECK_FAILS(hs_ioctl(p[0], FIONREAD, NULL), EFAULT);
	/* Requests whose size bits claim more than any argument has. */
	CHECK_FAILS(hs_ioctl3(p[0], 0, NULL), ENOTTY);
	CHECK_FAILS(hs_ioctl3(p[0], ULONG_MAX, NULL), ENOTTY);
	/* More descriptors than RLIMIT_NOFILE. */
	{
		struct pollfd pf = { -1, POLLIN, 0 };

		CHECK_FAILS(hs_poll(&pf, (nfds_t)-1, 0), EINVAL);
	}
	{
		int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct sockaddr_un sa;

		memset(&sa, 0, sizeof(sa));
		sa.sun_family = AF_UNIX;
		CHECK_FAILS(hs_connect(s, NULL, sizeof(struct sockaddr_un)),
			    EFAULT);
		CHECK_FAILS(hs_connect(s, (struct sockaddr *)&sa, UINT_MAX),
			    EINVAL);
		close(s);
	}
	close(p[0]);
	close(p[1]);
}

/* After its runner is cancelled, every call fails with ECANCELED, bad
 * arguments or not: it never reaches the kernel. */
struct after_cancel {
	int err[12];
	long ret[12];
	atomic_int *done;
	atomic_int *started;
};

static void work_after_cancel(void *data)
{
	struct after_cancel *a = data;
	struct timespec ts = { 0, 0 };
	struct pollfd pf = { -1, POLLIN, 0 };
	int n = 0;
	int i = 0;
	double end = now_sec() + LIMIT_SEC;
	long r;

	atomic_store(a->started, 1);
	while (hs_testcancel() == 0 && now_sec() < end)
		sleep_ms(1);
#define RECORD(expr)                                                       \
	do {                                                               \
		errno = 0;                                                 \
		r = (long)(expr);                                          \
		a->ret[i] = r;                                             \
		a->err[i] = errno;                                         \
		i++;                                                       \
	} while (0)
	RECORD(hs_read(-1, &n, 1));
	RECORD(hs_write(INT_MAX, &n, 1));
	RECORD(hs_poll(&pf, 1, -1));
	RECORD(hs_nanosleep(&ts, NULL));
	RECORD(hs_accept4(-1, NULL, NULL, -1));
	RECORD(hs_connect(-1, NULL, 0));
	RECORD(hs_openat(AT_FDCWD, "/dev/null", O_RDONLY));
	RECORD(hs_ioctl(-1, FIONREAD, &n));
	RECORD(hs_testcancel());
	RECORD(hs_read(0, NULL, 0));
#undef RECORD
	(void)i;
}

/* The work reports through a shared mapping: after a cancel its copy of
 * the data is discarded. */
static struct after_cancel *ac_out;

static void work_after_cancel_report(void *data)
{
	struct after_cancel *a = data;

	work_after_cancel(a);
	memcpy(ac_out->ret, a->ret, sizeof(a->ret));
	memcpy(ac_out->err, a->err, sizeof(a->err));
	/* Release: the test reads the results after it sees this. */
	atomic_store(a->done, 1);
}

static void h48_calls_after_cancel_are_ecanceled(void)
{
	static atomic_int done, started;
	struct after_cancel a;
	struct runner_context *r;
	double end;
	int i;

	current = "h48_calls_after_cancel_are_ecanceled";
	ac_out = shared(sizeof(*ac_out));
	memset(&a, 0, sizeof(a));
	a.done = &done;
	a.started = &started;
	atomic_store(&done, 0);
	atomic_store(&started, 0);
	/* No deadline: cancelled by release_runner() once it runs (a short
	 * deadline could pass before a thread picks the work up, and then
	 * the work never runs at all). */
	r = get_runner(work_after_cancel_report, &a, sizeof(a), 0);
	CHECK(r != NULL);
	if (!r)
		return;
	end = now_sec() + LIMIT_SEC;
	while (atomic_load(&started) == 0 && now_sec() < end)
		sleep_ms(1);
	release_runner(r);
	end = now_sec() + LIMIT_SEC;
	while (atomic_load(&done) == 0 && now_sec() < end)
		sleep_ms(1);
	CHECK_EQ(atomic_load(&done), 1);
	for (i = 0; i < 10; i++) {
		if (ac_out->ret[i] != -1 || ac_out->err[i] != ECANCELED)
			fprintf(stderr, "  call %d: %ld, errno %d\n", i,
				ac_out->ret[i], ac_out->err[i]);
		CHECK(ac_out->ret[i] == -1 && ac_out->err[i] == ECANCELED);
	}
	munmap(ac_out, sizeof(*ac_out));
}

/* ---- Metrics and version ----------------------------------------------- */

static void h49_metrics_and_version(void)
{
	struct hs_runner_metrics m;

	current = "h49_metrics_and_version";
	CHECK_FAILS(hs_runner_metrics(NULL), EINVAL);
	CHECK_EQ(hs_runner_metrics(&m), 0);
	CHECK(m.runners_done <= m.runners_spawned);
	CHECK(hs_version() != NULL && hs_version() == hs_version());
}

/* ---- The robust mutex --------------------------------------------------- */

static void h50_robust_null_misaligned_uninitialised(void)
{
	static const unsigned char fills[] = { 0x00, 0xff, 0x5a, 0x01 };
	unsigned char raw[sizeof(hs_robust_mutex_t) + 16]
		__attribute__((aligned(8)));
	struct timespec past = { 0, 0 };
	size_t f, off;

	current = "h50_robust_null_misaligned_uninitialised";
	CHECK_RC(hs_robust_mutex_init(NULL), EINVAL);
	CHECK_RC(hs_robust_mutex_lock(NULL), EINVAL);
	CHECK_RC(hs_robust_mutex_trylock(NULL), EINVAL);
	CHECK_RC(hs_robust_mutex_timedlock(NULL, &past), EINVAL);
	CHECK_RC(hs_robust_mutex_timedlock(NULL, NULL), EINVAL);
	CHECK_RC(hs_robust_mutex_consistent(NULL), EINVAL);
	CHECK_RC(hs_robust_mutex_unlock(NULL), EINVAL);
	for (off = 1; off < 8; off++) {
		hs_robust_mutex_t *m = (hs_robust_mutex_t *)(void *)(raw + off);

		CHECK_RC(hs_robust_mutex_init(m), EINVAL);
		CHECK_RC(hs_robust_mutex_lock(m), EINVAL);
		CHECK_RC(hs_robust_mutex_trylock(m), EINVAL);
		CHECK_RC(hs_robust_mutex_timedlock(m, &past), EINVAL);
		CHECK_RC(hs_robust_mutex_consistent(m), EINVAL);
		CHECK_RC(hs_robust_mutex_unlock(m), EINVAL);
	}
	for (f = 0; f < sizeof(fills); f++) {
		hs_robust_mutex_t *m = (hs_robust_mutex_t *)(void *)raw;

		memset(raw, fills[f], sizeof(raw));
		CHECK_RC(hs_robust_mutex_lock(m), EINVAL);
		CHECK_RC(hs_robust_mutex_trylock(m), EINVAL);
		CHECK_RC(hs_robust_mutex_timedlock(m, &past), EINVAL);
		CHECK_RC(hs_robust_mutex_consistent(m), EINVAL);
		CHECK_RC(hs_robust_mutex_unlock(m), EINVAL);
	}
}

/* A small xorshift generator: the same garbage on every run. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static int robust_outcome_ok(int rc)
{
	return rc == 0 || rc == EOWNERDEAD || rc == EBUSY ||
	       rc == ETIMEDOUT || rc == EINVAL || rc == EPERM ||
	       rc == EDEADLK || rc == ENOTRECOVERABLE || rc == EXDEV;
}

/*
 * Random bytes, and an initialised mutex with random bytes written over
 * one field at a time: every call answers with an error number from the
 * header's list (never blocks: only the non-blocking calls are used), and
 * a lock it grants can be given back.
 */
static void h51_robust_garbage_memory(void)
{
	hs_robust_mutex_t mx;
	unsigned char *b = (unsigned char *)&mx;
	struct timespec past = { 0, 0 };
	int i, bad = 0;

	current = "h51_robust_garbage_memory";
	for (i = 0; i < 400; i++) {
		int rc, k;

		if (i % 2 == 0) {
			for (k = 0; k < 64; k += 8) {
				uint64_t v = rng();

				memcpy(b + k, &v, 8);
			}
		} else {
			/* A valid mutex with one corrupted 4-byte field. */
			uint32_t v = (uint32_t)rng();
			int field = (int)(rng() % 16);

			CHECK_RC(hs_robust_mutex_init(&mx), 0);
			if (field == 0 && (v & 0x3fffffff) == (uint32_t)getpid())
				v = 0;
			memcpy(b + 4 * field, &v, 4);
		}
		errno = 4321;
		rc = hs_robust_mutex_trylock(&mx);
		bad += !robust_outcome_ok(rc);
		if (rc == 0 || rc == EOWNERDEAD) {
			if (rc == EOWNERDEAD)
				bad += hs_robust_mutex_consistent(&mx) != 0;
			bad += hs_robust_mutex_unlock(&mx) != 0;
		}
		rc = hs_robust_mutex_timedlock(&mx, &past);
		bad += !robust_outcome_ok(rc);
		if (rc == 0 || rc == EOWNERDEAD)
			bad += hs_robust_mutex_unlock(&mx) != 0;
		bad += !robust_outcome_ok(hs_robust_mutex_consistent(&mx));
		bad += !robust_outcome_ok(hs_robust_mutex_unlock(&mx));
		bad += errno != 4321;
	}
	CHECK_EQ(bad, 0);
}

static void h52_robust_timeouts_and_wrong_order(void)
{
	hs_robust_mutex_t mx;
	struct timespec t;
	static const long bad_nsec[] = { -1, 1000000000L, LONG_MAX, LONG_MIN };
	size_t i;

	current = "h52_robust_timeouts_and_wrong_order";
	CHECK_RC(hs_robust_mutex_init(&mx), 0);
	CHECK_RC(hs_robust_mutex_init(&mx), 0); /* again: fine */
	/* Wrong order: unlock, consistent before any lock. */
	CHECK_RC(hs_robust_mutex_unlock(&mx), EPERM);
	CHECK_RC(hs_robust_mutex_consistent(&mx), EPERM);
	for (i = 0; i < 4; i++) {
		t.tv_sec = 1;
		t.tv_nsec = bad_nsec[i];
		CHECK_RC(hs_robust_mutex_timedlock(&mx, &t), EINVAL);
	}
	CHECK_RC(hs_robust_mutex_timedlock(&mx, NULL), EINVAL);
	/* Extreme but valid times take a free lock. */
	t.tv_sec = LONG_MIN;
	t.tv_nsec = 0;
	CHECK_RC(hs_robust_mutex_timedlock(&mx, &t), 0);
	CHECK_RC(hs_robust_mutex_unlock(&mx), 0);
	t.tv_sec = LONG_MAX;
	t.tv_nsec = 999999999L;
	CHECK_RC(hs_robust_mutex_timedlock(&mx, &t), 0);
	/* Held by this thread: every lock is EDEADLK, whatever the time. */
	CHECK_RC(hs_robust_mutex_timedlock(&mx, &t), EDEADLK);
	t.tv_sec = LONG_MIN;
	CHECK_RC(hs_robust_mutex_timedlock(&mx, &t), EDEADLK);
	CHECK_RC(hs_robust_mutex_lock(&mx), EDEADLK);
	CHECK_RC(hs_robust_mutex_trylock(&mx), EDEADLK);
	CHECK_RC(hs_robust_mutex_consistent(&mx), EINVAL);
	CHECK_RC(hs_robust_mutex_unlock(&mx), 0);
	CHECK_RC(hs_robust_mutex_unlock(&mx), EPERM); /* double unlock */
	CHECK_RC(hs_robust_mutex_consistent(&mx), EPERM);
	CHECK_RC(hs_robust_mutex_trylock(&mx), 0);
	CHECK_RC(hs_robust_mutex_unlock(&mx), 0);
}

/* Locked from inside work, by a pool thread: the main thread sees EBUSY
 * and cannot unlock it. */
struct lock_job {
	hs_robust_mutex_t *m;
	int rc[4];
	atomic_int *hold;
	atomic_int *state;
};

static void work_lock(void *data)
{
	struct lock_job *j = data;
	double end = now_sec() + LIMIT_SEC;
	int rc = hs_robust_mutex_lock(j->m);

	atomic_store(j->state, rc == 0 ? 1 : -1);
	while (atomic_load(j->hold) && now_sec() < end)
		sleep_ms(1);
	rc = hs_robust_mutex_unlock(j->m);
	atomic_store(j->state, rc == 0 ? 2 : -2);
}

static void h53_robust_from_inside_work(void)
{
	static hs_robust_mutex_t mx;
	static atomic_int hold, state;
	struct lock_job j = { &mx, { 0 }, &hold, &state };
	struct runner_context *r;
	struct timespec past = { 0, 0 };
	double end;

	current = "h53_robust_from_inside_work";
	CHECK_RC(hs_robust_mutex_init(&mx), 0);
	atomic_store(&hold, 1);
	atomic_store(&state, 0);
	r = get_runner(work_lock, &j, sizeof(j), 0);
	CHECK(r != NULL);
	if (!r)
		return;
	end = now_sec() + LIMIT_SEC;
	while (atomic_load(&state) == 0 && now_sec() < end)
		sleep_ms(1);
	CHECK_EQ(atomic_load(&state), 1);
	CHECK_RC(hs_robust_mutex_trylock(&mx), EBUSY);
	CHECK_RC(hs_robust_mutex_timedlock(&mx, &past), ETIMEDOUT);
	CHECK_RC(hs_robust_mutex_unlock(&mx), EPERM);
	CHECK_RC(hs_robust_mutex_consistent(&mx), EPERM);
	atomic_store(&hold, 0);
	CHECK_EQ(wait_decided(r, LIMIT_SEC), RUNNER_DONE);
	CHECK_EQ(atomic_load(&state), 2);
	CHECK_RC(hs_robust_mutex_trylock(&mx), 0);
	CHECK_RC(hs_robust_mutex_unlock(&mx), 0);
	release_runner(r);
}

/* ---- fork() ----------------------------------------------------------- */

/*
 * Forks; the child runs f() and reports its result (0: passed) through a
 * shared mapping and its exit status. Under valgrind the child ends with
 * SIGKILL instead: memcheck would report as "definitely lost" whatever the
 * parent's threads (pool, timer) referenced only from their stacks, which
 * do not exist in a child, and fail the child for it.
 */
static int in_child(int (*f)(void *), void *arg)
{
	pid_t parent = getpid();
	pid_t pid;
	int status;
	int code;
	double end = now_sec() + 2 * LIMIT_SEC;
	atomic_int *result = shared(sizeof(*result));

	atomic_store(result, -1);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(3);
		code = f(arg);
		atomic_store(result, code);
		if (under_valgrind())
			raise(SIGKILL);
		_exit(code);
	}
	if (pid < 0) {
		munmap(result, sizeof(*result));
		return -1;
	}
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			break;
		if (r < 0 || now_sec() >= end) {
			fprintf(stderr, "  child %d hangs; killing it\n",
				(int)pid);
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			munmap(result, sizeof(*result));
			return -1;
		}
		sleep_ms(1);
	}
	code = atomic_load(result);
	munmap(result, sizeof(*result));
	if (WIFEXITED(status))
		return WEXITSTATUS(status) == code ? code : -1;
	if (under_valgrind() && WIFSIGNALED(status) &&
	    WTERMSIG(status) == SIGKILL)
		return code;
	return -1;
}

/* In a child: the calls that need no runner thread all work. */
static int child_plain_calls(void *arg)
{
	hs_robust_mutex_t *m = arg;
	struct hs_runner_metrics mm;
	struct timespec past = { 0, 0 };
	int p[2];
	char c;

	if (hs_version() == NULL)
		return 10;
	if (strcmp(runner_state_name(RUNNER_DONE), "done") != 0)
		return 11;
	if (hs_runner_metrics(&mm) != 0)
		return 12;
	if (hs_testcancel() != 0)
		return 13;
	if (pipe(p) != 0 || hs_write(p[1], "x", 1) != 1 ||
	    hs_read(p[0], &c, 1) != 1)
		return 14;
	/* The parent holds the mutex: the child does not. */
	if (hs_robust_mutex_trylock(m) != EBUSY)
		return 15;
	if (hs_robust_mutex_timedlock(m, &past) != ETIMEDOUT)
		return 16;
	if (hs_robust_mutex_unlock(m) != EPERM)
		return 17;
	if (check_runner(NULL, NULL, 0) != -1 || errno != EINVAL)
		return 18;
	return 0;
}

static void h54_fork_child_plain_calls(void)
{
	hs_robust_mutex_t *m = shared(sizeof(*m));

	current = "h54_fork_child_plain_calls";
	CHECK_RC(hs_robust_mutex_init(m), 0);
	CHECK_RC(hs_robust_mutex_lock(m), 0);
	CHECK_EQ(in_child(child_plain_calls, m), 0);
	CHECK_RC(hs_robust_mutex_unlock(m), 0);
	munmap(m, sizeof(*m));
}

/* In a child: a new runner runs, and its deadline is enforced. */
static int child_runner(void *arg)
{
	static atomic_int started, release;
	struct num n = { 9, 0 };
	struct held h = { 1, 0, &started, &release };
	struct runner_context *r;
	double t0;

	(void)arg;
	r = get_runner(work_double, &n, sizeof(n), 0);
	if (!r)
		return 20;
	if (wait_decided(r, 10) != RUNNER_DONE)
		return 21;
	if (check_runner(r, &n, sizeof(n)) != RUNNER_DONE || n.out != 18)
		return 22;
	release_runner(r);
	/* A deadline nobody polls for is enforced by the child's timer. */
	t0 = now_sec();
	r = get_runner(work_held, &h, sizeof(h), 100000);
	if (!r)
		return 23;
	{
		struct hs_runner_metrics m0, m1;

		hs_runner_metrics(&m0);
		do {
			sleep_ms(5);
			hs_runner_metrics(&m1);
		} while (m1.runners_cancelled + m1.runners_dead ==
				 m0.runners_cancelled + m0.runners_dead &&
			 now_sec() - t0 < 10);
		if (m1.runners_cancelled + m1.runners_dead ==
		    m0.runners_cancelled + m0.runners_dead)
			return 24;
	}
	atomic_store(&release, 1);
	release_runner(r);
	return 0;
}

/*
 * The parent has idle pool threads and a running timer when it forks;
 * the child gets a fresh pool (the pool's fork child handler).
 */
static void h55_fork_child_gets_a_working_pool(void)
{
	struct num n = { 1, 0 };
	struct runner_context *r;

	current = "h55_fork_child_gets_a_working_pool";
	/* Leave an idle thread and a started timer behind. */
	r = get_runner(work_double, &n, sizeof(n), 10000000);
	CHECK(r != NULL);
	if (r) {
		CHECK_EQ(wait_decided(r, LIMIT_SEC), RUNNER_DONE);
		release_runner(r);
	}
	sleep_ms(20);
	CHECK_EQ(in_child(child_runner, NULL), 0);
}

/* In a child: handles inherited from the parent can be checked (a DONE
 * one still copies out) and released without crashing. */
struct inherited {
	struct runner_context *done;
	struct runner_context *running;
};

static int child_inherited(void *arg)
{
	struct inherited *in = arg;
	struct num n = { 0, 0 };
	int st;

	if (check_runner(in->done, &n, sizeof(n)) != RUNNER_DONE)
		return 30;
	if (n.out != 6)
		return 31;
	st = check_runner(in->running, NULL, 0);
	if (st < RUNNER_RUNNING || st > RUNNER_DEAD)
		return 32;
	release_runner(in->running);
	release_runner(in->done);
	return 0;
}

static void h56_fork_child_releases_inherited_handles(void)
{
	static atomic_int started, release;
	struct num n = { 3, 0 };
	struct held h = { 1, 0, &started, &release };
	struct inherited in;
	double end;

	current = "h56_fork_child_releases_inherited_handles";
	atomic_store(&started, 0);
	atomic_store(&release, 0);
	in.done = get_runner(work_double, &n, sizeof(n), 0);
	in.running = get_runner(work_held, &h, sizeof(h), 0);
	CHECK(in.done != NULL && in.running != NULL);
	if (!in.done || !in.running)
		return;
	CHECK_EQ(wait_decided(in.done, LIMIT_SEC), RUNNER_DONE);
	end = now_sec() + LIMIT_SEC;
	while (!atomic_load(&started) && now_sec() < end)
		sleep_ms(1);
	CHECK_EQ(in_child(child_inherited, &in), 0);
	atomic_store(&release, 1);
	CHECK_EQ(wait_decided(in.running, LIMIT_SEC), RUNNER_DONE);
	release_runner(in.running);
	release_runner(in.done);
}

int main(void)
{
	struct hs_runner_metrics m;

	h38_state_name_of_any_int();
	h39_get_runner_refuses_every_bad_argument();
	h40_get_runner_sizes_one_and_large();
	h41_extreme_timeouts_keep_the_timer_alive();
	h42_check_runner_null_and_odd_buffers();
	h43_release_right_after_get_and_while_running();
	h44_runner_api_from_inside_work();
	h45_work_checks_and_releases_its_own_runner();
	h46_cancellable_calls_bad_descriptors();
	h47_cancellable_calls_bad_pointers();
	h48_calls_after_cancel_are_ecanceled();
	h49_metrics_and_version();
	h50_robust_null_misaligned_uninitialised();
	h51_robust_garbage_memory();
	h52_robust_timeouts_and_wrong_order();
	h53_robust_from_inside_work();
	h54_fork_child_plain_calls();
	h55_fork_child_gets_a_working_pool();
	h56_fork_child_releases_inherited_handles();
	current = "end";
	CHECK(wait_settled(&m, LIMIT_SEC));
	return harness_summary();
}

/*
 * robust_test.c - exercises the robust process-shared mutex of hangsafe.h
 * (hs_robust_mutex_init, _lock, _trylock, _timedlock, _consistent,
 * _unlock) through the C ABI of libhangsafe, with real processes sharing
 * an anonymous MAP_SHARED mapping.
 *
 * Covered: the error numbers of every function (bad arguments, misuse,
 * uninitialised memory), busy and timed-out locks against another
 * process, owner death (exit, SIGKILL, thread exit) with and without a
 * blocked waiter, the not-recoverable state, errno left untouched, a
 * foreign PID namespace (when unshare is permitted), and the destruction
 * rule: once unlock has returned, the mutex's bytes are never written
 * again, even when the process that unlocked is killed right after.
 *
 * Built and run by tests/c_abi.rs (statically, dynamically, and under
 * valgrind, which follows fork() children: their exit status carries
 * valgrind's error exit code, and the parent checks every child's status).
 * Valgrind (3.19 at least) answers FUTEX_LOCK_PI2 with ENOSYS, so under
 * valgrind the library's fallback to FUTEX_LOCK_PI with a converted
 * CLOCK_REALTIME deadline is what runs; natively, FUTEX_LOCK_PI2.
 * Children report through the shared mapping and their exit status, call
 * only async-signal-safe functions and the library, and leave with
 * _exit(). Every wait is bounded by tens of seconds, so a slow machine
 * makes the test slower, not flaky.
 *
 * Prints "N passed, M failed" and exits non-zero if anything failed.
 */
#include "harness.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* How long any wait for another process may take (valgrind is slow). */
#define LIMIT_SEC 60.0

/* What a test process shares with its children. */
struct arena {
	hs_robust_mutex_t m;
	atomic_int held;	/* a child holds the lock */
	atomic_int go;		/* the parent lets a child go on */
	atomic_int done;	/* a child reached its end point */
	atomic_int tid;		/* a child's TID */
	atomic_int result[4];	/* error numbers a child saw */
};

/* A fresh, zero-filled shared mapping of `size` bytes. */
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

/* A fresh arena whose mutex is initialised. */
static struct arena *arena_new(void)
{
	struct arena *a = shared(sizeof(*a));

	CHECK_EQ(hs_robust_mutex_init(&a->m), 0);
	return a;
}

static void arena_free(struct arena *a)
{
	munmap(a, sizeof(*a));
}

static pid_t my_tid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* The absolute CLOCK_MONOTONIC time `ms` milliseconds from now. */
static struct timespec after_ms(long ms)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	t.tv_sec += ms / 1000;
	t.tv_nsec += (ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

static double ts_sec(const struct timespec *t)
{
	return (double)t->tv_sec + (double)t->tv_nsec / 1e9;
}

/* Polls until *flag == value or `secs` pass; returns whether it is. */
static int wait_value(atomic_int *flag, int value, double secs)
{
	double end = now_sec() + secs;

	while (atomic_load(flag) != value && now_sec() < end)
		sleep_ms(1);
	return atomic_load(flag) == value;
}

/* ---- Child processes ---------------------------------------------------- */

typedef int (*child_fn)(struct arena *a);

/* Forks a child that runs f(a) and _exit()s with its result. */
static pid_t spawn(child_fn f, struct arena *a)
{
	pid_t parent = getpid();
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid == 0) {
		/* Never outlive a test program that died. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(3);
		_exit(f(a));
	}
	CHECK(pid > 0);
	return pid;
}

/*
 * Reaps child `pid` within `secs`; returns its wait status, or -1 (after
 * killing and reaping it) if it did not end in time.
 */
static int reap(pid_t pid, double secs)
{
	double end = now_sec() + secs;
	int status;

	if (pid <= 0)
		return -1;
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return status;
		if (r < 0) {
			perror("waitpid");
			return -1;
		}
		if (now_sec() >= end) {
			fprintf(stderr, "  child %d hangs; killing it\n", (int)pid);
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -1;
		}
		sleep_ms(1);
	}
}

/* The child exited normally with `code` (0 means all its steps passed). */
#define CHECK_EXITED(status, code)                                         \
	do {                                                               \
		int s_ = (status);                                         \
		CHECK(s_ != -1 && WIFEXITED(s_));                          \
		if (s_ != -1 && WIFEXITED(s_))                             \
			CHECK_EQ(WEXITSTATUS(s_), (code));                 \
	} while (0)

/* The child was killed by `sig`. */
#define CHECK_KILLED(status, sig)                                          \
	do {                                                               \
		int s_ = (status);                                         \
		CHECK(s_ != -1 && WIFSIGNALED(s_));                        \
		if (s_ != -1 && WIFSIGNALED(s_))                           \
			CHECK_EQ(WTERMSIG(s_), (sig));                     \
	} while (0)

/* Idles until SIGKILLed (or, if the parent never does, fails). */
static int idle_until_killed(void)
{
	double end = now_sec() + 2 * LIMIT_SEC;

	while (now_sec() < end)
		sleep_ms(5);
	return 4;
}

/*
 * Whether process `pid` (single-threaded) is blocked in the futex system
 * call on address `addr`: 1 yes, 0 no, -1 if /proc/<pid>/syscall cannot
 * be read on this system. The first argument of futex is the word, which
 * is the first field of the mutex.
 */
static int blocked_on(pid_t pid, const void *addr)
{
	char path[64], buf[256];
	unsigned long long arg0;
	long nr;
	FILE *f;
	int ok;

	snprintf(path, sizeof(path), "/proc/%d/syscall", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	ok = fgets(buf, sizeof(buf), f) != NULL;
	fclose(f);
	if (!ok)
		return -1;
	if (sscanf(buf, "%ld %llx", &nr, &arg0) != 2)
		return 0;	/* "running", or not in a system call */
	return nr == SYS_futex && arg0 == (unsigned long long)(uintptr_t)addr;
}

/* Waits until `pid` is blocked in a futex wait on `addr`. */
static void wait_blocked(pid_t pid, const void *addr)
{
	double end = now_sec() + LIMIT_SEC;
	int r;

	while ((r = blocked_on(pid, addr)) == 0 && now_sec() < end)
		sleep_ms(1);
	if (r < 0) {
		/* No /proc/<pid>/syscall: give the child ample time. */
		printf("note: /proc/%d/syscall unreadable; sleeping instead\n",
		       (int)pid);
		sleep_ms(500);
		return;
	}
	CHECK(r == 1);
}

/* Locks, publishes its TID, waits for `go`, unlocks; 0 on success. */
static int holder(struct arena *a)
{
	if (hs_robust_mutex_lock(&a->m) != 0)
		return 10;
	atomic_store(&a->tid, my_tid());
	atomic_store(&a->held, 1);
	if (!wait_value(&a->go, 1, 2 * LIMIT_SEC))
		return 11;
	if (hs_robust_mutex_unlock(&a->m) != 0)
		return 12;
	return 0;
}

/* Locks, publishes that, and idles until killed. */
static int holder_killed(struct arena *a)
{
	if (hs_robust_mutex_lock(&a->m) != 0)
		return 10;
	atomic_store(&a->tid, my_tid());
	atomic_store(&a->held, 1);
	return idle_until_killed();
}

/* Locks and exits without unlocking. */
static int holder_exits(struct arena *a)
{
	return hs_robust_mutex_lock(&a->m) == 0 ? 0 : 10;
}

/* Locks (recovering a dead owner's lock without repairing it) and
 * SIGKILLs itself holding the lock. */
static int holder_dies(struct arena *a)
{
	int r = hs_robust_mutex_lock(&a->m);

	if (r != 0 && r != EOWNERDEAD)
		return 10;
	raise(SIGKILL);
	return 11;
}

/*
 * Waits in lock (or, with a->go preset to 2, in a 60 s timedlock); on
 * EOWNERDEAD repairs and unlocks; records every error number.
 */
static int waiter(struct arena *a)
{
	int r;

	if (atomic_load(&a->go) == 2) {
		struct timespec t = after_ms((long)(LIMIT_SEC * 1000));

		r = hs_robust_mutex_timedlock(&a->m, &t);
	} else {
		r = hs_robust_mutex_lock(&a->m);
	}
	atomic_store(&a->result[0], r);
	if (r == EOWNERDEAD)
		atomic_store(&a->result[1], hs_robust_mutex_consistent(&a->m));
	if (r == 0 || r == EOWNERDEAD)
		atomic_store(&a->result[2], hs_robust_mutex_unlock(&a->m));
	return 0;
}

/* Records what the functions that never block for long say. */
static int prober(struct arena *a)
{
	struct timespec t = after_ms(20);

	atomic_store(&a->result[0], hs_robust_mutex_trylock(&a->m));
	atomic_store(&a->result[1], hs_robust_mutex_timedlock(&a->m, &t));
	atomic_store(&a->result[2], hs_robust_mutex_unlock(&a->m));
	atomic_store(&a->result[3], hs_robust_mutex_consistent(&a->m));
	return 0;
}

/* Records what lock says (only where it cannot block). */
static int lock_prober(struct arena *a)
{
	atomic_store(&a->result[0], hs_robust_mutex_lock(&a->m));
	return 0;
}

/* ---- Arguments and misuse ----------------------------------------------- */

static void test_layout(void)
{
	current = "layout";
	CHECK_EQ(sizeof(hs_robust_mutex_t), 64);
	CHECK_EQ(_Alignof(hs_robust_mutex_t), 8);
}

/* NULL is EINVAL for all six, and errno is left alone. */
static void test_null(void)
{
	struct arena *a = arena_new();
	struct timespec t = after_ms(1000);

	current = "NULL arguments";
	errno = 4321;
	CHECK_EQ(hs_robust_mutex_init(NULL), EINVAL);
	CHECK_EQ(hs_robust_mutex_lock(NULL), EINVAL);
	CHECK_EQ(hs_robust_mutex_trylock(NULL), EINVAL);
	CHECK_EQ(hs_robust_mutex_timedlock(NULL, &t), EINVAL);
	CHECK_EQ(hs_robust_mutex_timedlock(&a->m, NULL), EINVAL);
	CHECK_EQ(hs_robust_mutex_consistent(NULL), EINVAL);
	CHECK_EQ(hs_robust_mutex_unlock(NULL), EINVAL);
	CHECK_EQ(errno, 4321);
	/* timedlock(m, NULL) did not lock. */
	CHECK_EQ(hs_robust_mutex_trylock(&a->m), 0);
	CHECK_EQ(hs_robust_mutex_unlock(&a->m), 0);
	arena_free(a);
}

/* Misaligned pointers are EINVAL and nothing is written through them. */
static void test_misaligned(void)
{
	unsigned char *page = shared(4096);
	static const size_t offsets[] = { 1, 2, 4, 7, 12 };
	struct timespec t = after_ms(1000);
	hs_robust_mutex_t *m;
	size_t i, zeros = 0;

	current = "misaligned";
	for (i = 0; i < sizeof(offsets) / sizeof(offsets[0]); i++) {
		/* Deliberately misaligned: the point of the test. */
		m = (hs_robust_mutex_t *)(void *)(page + offsets[i]);
		CHECK_EQ(hs_robust_mutex_init(m), EINVAL);
		CHECK_EQ(hs_robust_mutex_lock(m), EINVAL);
		CHECK_EQ(hs_robust_mutex_trylock(m), EINVAL);
		CHECK_EQ(hs_robust_mutex_timedlock(m, &t), EINVAL);
		CHECK_EQ(hs_robust_mutex_consistent(m), EINVAL);
		CHECK_EQ(hs_robust_mutex_unlock(m), EINVAL);
	}
	for (i = 0; i < 4096; i++)
		zeros += page[i] == 0;
	CHECK_EQ(zeros, 4096);

	/* 8-byte alignment is all it takes. */
	m = (hs_robust_mutex_t *)(void *)(page + 8);
	CHECK_EQ(hs_robust_mutex_init(m), 0);
	CHECK_EQ(hs_robust_mutex_lock(m), 0);
	CHECK_EQ(hs_robust_mutex_unlock(m), 0);
	munmap(page, 4096);
}

/* Memory that was never initialised is EINVAL for every operation. */
static void test_uninitialised(void)
{
	hs_robust_mutex_t *m = shared(sizeof(*m));
	struct timespec t = after_ms(1000);
	int pass;

	current = "uninitialised";
	for (pass = 0; pass < 2; pass++) {
		/* Zero-filled, as from mmap; then arbitrary bytes. */
		if (pass == 1)
			memset(m, 0xa5, sizeof(*m));
		CHECK_EQ(hs_robust_mutex_lock(m), EINVAL);
		CHECK_EQ(hs_robust_mutex_trylock(m), EINVAL);
		CHECK_EQ(hs_robust_mutex_timedlock(m, &t), EINVAL);
		CHECK_EQ(hs_robust_mutex_consistent(m), EINVAL);
		CHECK_EQ(hs_robust_mutex_unlock(m), EINVAL);
	}
	munmap(m, sizeof(*m));
}

/* The uncontended cycle through every lock function; errno untouched. */
static void test_basic(void)
{
	struct arena *a = arena_new();
	struct timespec soon = after_ms(1000);
	struct timespec zero = { 0, 0 }, negative = { -1, 0 };

	current = "basic";
	errno = 4321;
	CHECK_EQ(hs_robust_mutex_lock(&a->m), 0);
	CHECK_EQ(hs_robust_mutex_unlock(&a->m), 0);
	CHECK_EQ(hs_robust_mutex_trylock(&a->m), 0);
	CHECK_EQ(hs_robust_mutex_unlock(&a->m), 0);
	CHECK_EQ(hs_robust_mutex_timedlock(&a->m, &soon), 0);
	CHECK_EQ(hs_robust_mutex_unlock(&a->m), 0);
	/* A time already past still takes a free lock. */
	CHECK_EQ(hs_robust_mutex_timedlock(&a->m, &zero), 0);
	CHECK_EQ(hs_robust_mutex_unlock(&a->m), 0);
	CHECK_EQ(hs_robust_mutex_timedlock(&a->m, &negative), 0);
	CHECK_EQ(hs_robust_mutex_unlock(&a->m), 0);
	/* Not held: unlock and consistent are EPERM. */
	CHECK_EQ(hs_robust_mutex_unlock(&a->m), EPERM);
	CHECK_EQ(hs_robust_mutex_consistent(&a->m), EPERM);
	/* Re-initialising an unused mutex is allowed. */
	CHECK_EQ(hs_robust_mutex_init(&a->m), 0);
	CHECK_EQ(hs_robust_mutex_lock(&a->m), 0);
	CHECK_EQ(hs_robust_mutex_unlock(&a->m), 0);
	CHECK_EQ(errno, 4321);
	arena_free(a);
}

/* The owner locking again is EDEADLK; consistent when consistent EINVAL. */
static void test_relock(void)
{
	struct arena *a = arena_new();
	struct timespec t = after_ms(1000);

	current = "relock by the owner";
	CHECK_EQ(hs_robust_mutex_lock(&a->m), 0);
	CHECK_EQ(hs_robust_mutex_lock(&a->m), EDEADLK);
	CHECK_EQ(hs_robust_mutex_trylock(&a->m), EDEADLK);
	CHECK_EQ(hs_robust_mutex_timedlock(&a->m, &t), EDEADLK);
	CHECK_EQ(hs_robust_mutex_consistent(&a->m), EINVAL);
	CHECK_EQ(hs_robust_mutex_unlock(&a->m), 0);
	CHECK_EQ(hs_robust_mutex_unlock(&a->m), EPERM);
	arena_free(a);
}

/* A bad timeout is EINVAL before anything else, and never locks. */
static void test_bad_timespec(void)
{
	struct arena *a = arena_new();
	static const long bad[] = { -1, 1000000000L, LONG_MAX, LONG_MIN };
	size_t i;
	pid_t pid;

	current = "bad timespec";
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct timespec t = after_ms(1000);

		t.tv_nsec = bad[i];
		CHECK_EQ(hs_robust_mutex_timedlock(&a->m, &t), EINVAL);
		t.tv_sec = -1;
		CHECK_EQ(hs_robust_mutex_timedlock(&a->m, &t), EINVAL);
	}
	/* Nothing was locked. */
	CHECK_EQ(hs_robust_mutex_trylock(&a->m), 0);
	CHECK_EQ(hs_robust_mutex_unlock(&a->m), 0);

	/* Held by another process: still EINVAL, at once. */
	pid = spawn(holder, a);
	CHECK(wait_value(&a->held, 1, LIMIT_SEC));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct timespec t = after_ms(1000);
		double t0 = now_sec();

		t.tv_nsec = bad[i];
		CHECK_EQ(hs_robust_mutex_timedlock(&a->m, &t), EINVAL);
		CHECK(now_sec() - t0 < 0.9);
	}
	atomic_store(&a->go, 1);
	CHECK_EXITED(reap(pid, LIMIT_SEC), 0);
	arena_free(a);
}

/* ---- Contention between processes and threads --------------------------- */

/*
 * Another process holds the lock: trylock is EBUSY, timedlock ETIMEDOUT
 * (not before its deadline), unlock and consistent EPERM; afterwards the
 * lock is free and consistent.
 */
static void test_busy_and_timeout(void)
{
	struct arena *a = arena_new();
	struct timespec deadline, now, zero = { 0, 0 }, negative = { -5, 0 };
	double t0;
	pid_t pid;
	int r;

	current = "busy and timeout";
	pid = spawn(holder, a);
	CHECK(wait_value(&a->held, 1, LIMIT_SEC));
	errno = 4321;
	CHECK_EQ(hs_robust_mutex_trylock(&a->m), EBUSY);

	deadline = after_ms(50);
	t0 = now_sec();
	r = hs_robust_mutex_timedlock(&a->m, &deadline);
	clock_gettime(CLOCK_MONOTONIC, &now);
	CHECK_EQ(r, ETIMEDOUT);
	/* Not before the deadline (1 ms of slack for rounding); well after
	 * it only by scheduling delays. */
	CHECK(ts_sec(&now) >= ts_sec(&deadline) - 0.001);
	CHECK(ts_sec(&now) - t0 < 30.0);

	/* Deadlines already past time out at once. */
	t0 = now_sec();
	CHECK_EQ(hs_robust_mutex_timedlock(&a->m, &zero), ETIMEDOUT);
	CHECK_EQ(hs_robust_mutex_timedlock(&a->m, &negative), ETIMEDOUT);
	CHECK(now_sec() - t0 < 30.0);

	/* A process that does not hold the lock may not release it. */
	CHECK_EQ(hs_robust_mutex_unlock(&a->m), EPERM);
	CHECK_EQ(hs_robust_mutex_consistent(&a->m), EPERM);
	CHECK_EQ(hs_robust_mutex_trylock(&a->m), EBUSY);
	CHECK_EQ(errno, 4321);

	atomic_store(&a->go, 1);
	CHECK_EXITED(reap(pid, LIMIT_SEC), 0);
	CHECK_EQ(hs_robust_mutex_lock(&a->m), 0);
	CHECK_EQ(hs_robust_mutex_unlock(&a->m), 0);
	arena_free(a);
}

static void *thread_probe(void *arg)
{
	struct arena *a = arg;
	struct timespec t = after_ms(20);

	atomic_store(&a->result[0], hs_robust_mutex_unlock(&a->m));
	atomic_store(&a->result[1], hs_robust_mutex_consistent(&a->m));
	atomic_store(&a->result[2], hs_robust_mutex_trylock(&a->m));
	atomic_store(&a->result[3], hs_robust_mutex_timedlock(&a->m, &t));
	return NULL;
}

static void *thread_lock_and_exit(void *arg)
{
	struct arena *a = arg;

	atomic_store(&a->result[0], hs_robust_mutex_lock(&a->m));
	return NULL;
}

/*
 * Another thread of the same process is not the owner; a thread that
 * exits holding the lock is a dead owner.
 */
static void test_threads(void)
{
	struct arena *a = arena_new();
	pthread_t th;

	current = "threads";
	CHECK_EQ(hs_robust_mutex_lock(&a->m), 0);
	CHECK_EQ(pthread_create(&th, NULL, thread_probe, a), 0);
	CHECK_EQ(pthread_join(th, NULL), 0);
	CHECK_EQ(atomic_load(&a->result[0]), EPERM);
	CHECK_EQ(atomic_load(&a->result[1]), EPERM);
	CHECK_EQ(atomic_load(&a->result[2]), EBUSY);
	CHECK_EQ(atomic_load(&a->result[3]), ETIMEDOUT);
	CHECK_EQ(hs_robust_mutex_unlock(&a->m), 0);

	CHECK_EQ(pthread_create(&th, NULL, thread_lock_and_exit, a), 0);
	CHECK_EQ(pthread_join(th, NULL), 0);
	CHECK_EQ(atomic_load(&a->result[0]), 0);
	CHECK_EQ(hs_robust_mutex_lock(&a->m), EOWNERDEAD);
	CHECK_EQ(hs_robust_mutex_consistent(&a->m), 0);
	CHECK_EQ(hs_robust_mutex_unlock(&a->m), 0);
	CHECK_EQ(hs_robust_mutex_lock(&a->m), 0);
	CHECK_EQ(hs_robust_mutex_unlock(&a->m), 0);
	arena_free(a);
}

/* ---- Owner death -------------------------------------------------------- */

/*
 * The owner _exit()s or is SIGKILLed holding the lock: the next lock,
 * trylock or timedlock gets EOWNERDEAD and holds it; consistent repairs
 * it. An owner that dies before repairing passes EOWNERDEAD on.
 */
static void test_owner_dies(void)
{
	struct timespec t;
	struct arena *a;
	int variant;

	current = "owner dies holding";
	for (variant = 0; variant < 3; variant++) {
		a = arena_new();
		if (variant == 0) {
			CHECK_EXITED(reap(spawn(holder_exits, a), LIMIT_SEC), 0);
			CHECK_EQ(hs_robust_mutex_lock(&a->m), EOWNERDEAD);
		} else if (variant == 1) {
			CHECK_KILLED(reap(spawn(holder_dies, a), LIMIT_SEC),
				     SIGKILL);
			CHECK_EQ(hs_robust_mutex_trylock(&a->m), EOWNERDEAD);
		} else {
			CHECK_KILLED(reap(spawn(holder_dies, a), LIMIT_SEC),
				     SIGKILL);
			t = after_ms(5000);
			CHECK_EQ(hs_robust_mutex_timedlock(&a->m, &t),
				 EOWNERDEAD);
		}
		/* Held: another process finds it busy, and may neither
		 * release nor repair it. */
		CHECK_EXITED(reap(spawn(prober, a), LIMIT_SEC), 0);
		CHECK_EQ(atomic_load(&a->result[0]), EBUSY);
		CHECK_EQ(atomic_load(&a->result[1]), ETIMEDOUT);
		CHECK_EQ(atomic_load(&a->result[2]), EPERM);
		CHECK_EQ(atomic_load(&a->result[3]), EPERM);
		CHECK_EQ(hs_robust_mutex_consistent(&a->m), 0);
		CHECK_EQ(hs_robust_mutex_consistent(&a->m), EINVAL);
		CHECK_EQ(hs_robust_mutex_unlock(&a->m), 0);
		CHECK_EQ(hs_robust_mutex_lock(&a->m), 0);
		CHECK_EQ(hs_robust_mutex_unlock(&a->m), 0);
		arena_free(a);
	}

	/* Two owners die in a row; the second got EOWNERDEAD and never
	 * repaired: the third still gets EOWNERDEAD. */
	a = arena_new();
	CHECK_KILLED(reap(spawn(holder_dies, a), LIMIT_SEC), SIGKILL);
	CHECK_KILLED(reap(spawn(holder_dies, a), LIMIT_SEC), SIGKILL);
	CHECK_EQ(hs_robust_mutex_lock(&a->m), EOWNERDEAD);
	CHECK_EQ(hs_robust_mutex_consistent(&a->m), 0);
	CHECK_EQ(hs_robust_mutex_unlock(&a->m), 0);
	arena_free(a);
}

/*
 * EOWNERDEAD, then unlock without consistent: not recoverable for every
 * later lock, in any process, and for a waiter that was blocked; init
 * makes it usable again.
 */
static void test_not_recoverable(void)
{
	struct arena *a = arena_new();
	struct timespec t = after_ms(1000);
	pid_t w;

	current = "not recoverable";
	CHECK_EXITED(reap(spawn(holder_exits, a), LIMIT_SEC), 0);
	CHECK_EQ(hs_robust_mutex_lock(&a->m), EOWNERDEAD);
	/* A waiter blocks behind the inconsistent lock. */
	w = spawn(waiter, a);
	wait_blocked(w, &a->m);
	CHECK_EQ(hs_robust_mutex_unlock(&a->m), 0);
	CHECK_EXITED(reap(w, LIMIT_SEC), 0);
	CHECK_EQ(atomic_load(&a->result[0]), ENOTRECOVERABLE);

	CHECK_EQ(hs_robust_mutex_lock(&a->m), ENOTRECOVERABLE);
	CHECK_EQ(hs_robust_mutex_trylock(&a->m), ENOTRECOVERABLE);
	CHECK_EQ(hs_robust_mutex_timedlock(&a->m, &t), ENOTRECOVERABLE);
	CHECK_EQ(hs_robust_mutex_consistent(&a->m), EPERM);
	CHECK_EQ(hs_robust_mutex_unlock(&a->m), EPERM);
	CHECK_EXITED(reap(spawn(prober, a), LIMIT_SEC), 0);
	CHECK_EQ(atomic_load(&a->result[0]), ENOTRECOVERABLE);
	CHECK_EQ(atomic_load(&a->result[1]), ENOTRECOVERABLE);
	CHECK_EQ(atomic_load(&a->result[2]), EPERM);
	CHECK_EQ(atomic_load(&a->result[3]), EPERM);
	CHECK_EXITED(reap(spawn(lock_prober, a), LIMIT_SEC), 0);
	CHECK_EQ(atomic_load(&a->result[0]), ENOTRECOVERABLE);

	CHECK_EQ(hs_robust_mutex_init(&a->m), 0);
	CHECK_EQ(hs_robust_mutex_lock(&a->m), 0);
	CHECK_EQ(hs_robust_mutex_unlock(&a->m), 0);
	arena_free(a);
}

/*
 * A waiter blocked in lock (then in timedlock) when the owner is
 * SIGKILLed wakes up holding the lock with EOWNERDEAD.
 */
static void test_waiter_wakes_on_owner_death(void)
{
	int timed;

	current = "waiter wakes on owner death";
	for (timed = 0; timed < 2; timed++) {
		struct arena *a = arena_new();
		pid_t owner, w;
		double t0;

		owner = spawn(holder_killed, a);
		CHECK(wait_value(&a->held, 1, LIMIT_SEC));
		if (timed)
			atomic_store(&a->go, 2);
		w = spawn(waiter, a);
		wait_blocked(w, &a->m);
		t0 = now_sec();
		kill(owner, SIGKILL);
		CHECK_KILLED(reap(owner, LIMIT_SEC), SIGKILL);
		CHECK_EXITED(reap(w, LIMIT_SEC), 0);
		/* Woken by the death, not by the 60 s timeout. */
		CHECK(now_sec() - t0 < LIMIT_SEC / 2);
		CHECK_EQ(atomic_load(&a->result[0]), EOWNERDEAD);
		CHECK_EQ(atomic_load(&a->result[1]), 0);
		CHECK_EQ(atomic_load(&a->result[2]), 0);
		CHECK_EQ(hs_robust_mutex_lock(&a->m), 0);
		CHECK_EQ(hs_robust_mutex_unlock(&a->m), 0);
		arena_free(a);
	}
}

/* ---- Destruction -------------------------------------------------------- */

/* Locks (blocking), then unlocks, then idles until killed. */
static int lock_unlock_idle(struct arena *a)
{
	atomic_store(&a->result[0], hs_robust_mutex_lock(&a->m));
	atomic_store(&a->tid, my_tid());
	atomic_store(&a->result[1], hs_robust_mutex_unlock(&a->m));
	atomic_store(&a->done, 1);
	return idle_until_killed();
}

/* Locks, waits for `go`, unlocks, then idles until killed. */
static int hold_unlock_idle(struct arena *a)
{
	atomic_store(&a->result[0], hs_robust_mutex_lock(&a->m));
	atomic_store(&a->tid, my_tid());
	atomic_store(&a->held, 1);
	if (!wait_value(&a->go, 1, 2 * LIMIT_SEC))
		return 11;
	atomic_store(&a->result[1], hs_robust_mutex_unlock(&a->m));
	atomic_store(&a->done, 1);
	return idle_until_killed();
}

/*
 * Overwrites the mutex with words made of `tid` (alone, with the futex
 * WAITERS bit, with OWNER_DIED), as memory reused for something else
 * might hold; returns the bytes written in *copy.
 */
static void reuse(hs_robust_mutex_t *m, pid_t tid, unsigned char *copy)
{
	uint32_t words[16];
	size_t i;

	for (i = 0; i < 16; i++) {
		uint32_t t = (uint32_t)tid;

		words[i] = i % 4 == 1 ? t | 0x80000000u
			 : i % 4 == 2 ? t | 0x40000000u : t;
	}
	memcpy(copy, words, sizeof(words));
	memcpy(m, words, sizeof(words));
}

/*
 * Once unlock has returned 0, the 64 bytes are the caller's: they are
 * reused at once (filled with the unlocker's TID values) and the unlocker
 * is SIGKILLed; nothing writes to them afterwards. First with an
 * uncontended unlock, then with one made through the kernel (the lock was
 * handed over from a waiter, so the word has the WAITERS bit).
 */
static void test_no_write_after_unlock(void)
{
	int contended;

	current = "no write after unlock";
	for (contended = 0; contended < 2; contended++) {
		struct arena *a = arena_new();
		unsigned char copy[64];
		pid_t first = -1, last;

		if (contended) {
			first = spawn(holder, a);
			CHECK(wait_value(&a->held, 1, LIMIT_SEC));
			last = spawn(lock_unlock_idle, a);
			wait_blocked(last, &a->m);
			atomic_store(&a->go, 1);
		} else {
			last = spawn(hold_unlock_idle, a);
			CHECK(wait_value(&a->held, 1, LIMIT_SEC));
			atomic_store(&a->go, 1);
		}
		CHECK(wait_value(&a->done, 1, LIMIT_SEC));
		reuse(&a->m, (pid_t)atomic_load(&a->tid), copy);
		kill(last, SIGKILL);
		CHECK_KILLED(reap(last, LIMIT_SEC), SIGKILL);
		if (first > 0)
			CHECK_EXITED(reap(first, LIMIT_SEC), 0);
		CHECK_EQ(atomic_load(&a->result[0]), 0);
		CHECK_EQ(atomic_load(&a->result[1]), 0);
		CHECK(memcmp(&a->m, copy, sizeof(copy)) == 0);
		arena_free(a);
	}
}

/* ---- PID namespaces ----------------------------------------------------- */

/* In a new PID namespace: every operation on the mutex is EXDEV. */
static int foreign_namespace_child(struct arena *a)
{
	struct timespec t = after_ms(20);

	atomic_store(&a->result[0], hs_robust_mutex_lock(&a->m));
	atomic_store(&a->result[1], hs_robust_mutex_trylock(&a->m));
	atomic_store(&a->result[2], hs_robust_mutex_timedlock(&a->m, &t));
	atomic_store(&a->result[3], hs_robust_mutex_unlock(&a->m) == EXDEV &&
			 hs_robust_mutex_consistent(&a->m) == EXDEV);
	return 0;
}

/* Moves to a new PID namespace (77 if not permitted), runs the above. */
static int unshare_then_probe(struct arena *a)
{
	pid_t pid;
	int status;

	if (unshare(CLONE_NEWPID) != 0 &&
	    unshare(CLONE_NEWUSER | CLONE_NEWPID) != 0)
		return 77;
	pid = fork();
	if (pid < 0)
		return 20;
	if (pid == 0)
		_exit(foreign_namespace_child(a));
	if (waitpid(pid, &status, 0) != pid)
		return 21;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 22;
}

/* A mutex from another PID namespace is refused with EXDEV, even while
 * it is held (nothing blocks), and is left as it was. */
static void test_foreign_namespace(void)
{
	struct arena *a = arena_new();
	int status;

	current = "foreign PID namespace";
	CHECK_EQ(hs_robust_mutex_lock(&a->m), 0);
	status = reap(spawn(unshare_then_probe, a), LIMIT_SEC);
	if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 77) {
		printf("skipped: %s (unshare(CLONE_NEWPID) not permitted)\n",
		       current);
	} else {
		CHECK_EXITED(status, 0);
		CHECK_EQ(atomic_load(&a->result[0]), EXDEV);
		CHECK_EQ(atomic_load(&a->result[1]), EXDEV);
		CHECK_EQ(atomic_load(&a->result[2]), EXDEV);
		CHECK_EQ(atomic_load(&a->result[3]), 1);
	}
	CHECK_EQ(hs_robust_mutex_unlock(&a->m), 0);
	CHECK_EQ(hs_robust_mutex_lock(&a->m), 0);
	CHECK_EQ(hs_robust_mutex_unlock(&a->m), 0);
	arena_free(a);
}

int main(void)
{
	/* Children inherit stdout: keep it unbuffered-by-line so that no
	 * buffered output is duplicated by fork(). */
	setvbuf(stdout, NULL, _IOLBF, 0);

	test_layout();
	test_null();
	test_misaligned();
	test_uninitialised();
	test_basic();
	test_relock();
	test_bad_timespec();
	test_busy_and_timeout();
	test_threads();
	test_owner_dies();
	test_not_recoverable();
	test_waiter_wakes_on_owner_death();
	test_no_write_after_unlock();
	test_foreign_namespace();
	return harness_summary();
}

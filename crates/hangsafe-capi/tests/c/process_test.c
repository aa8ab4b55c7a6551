/*
 * process_test.c - process-level hazards of the C library: fork, signal
 * masks of hangsafe's threads, a cancel signal whose disposition the
 * program changed (H7, H8, H10, H11, H12 of docs/races.md).
 *
 * Built and run by tests/c_abi.rs (statically, dynamically, under
 * valgrind). Forked children report through their exit status; every wait
 * is bounded.
 *
 * Prints "N passed, M failed" and exits non-zero if anything failed.
 */
#include "harness.h"
#include "runner.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* What the work reports, through a pointer kept in the runner's copy. */
struct seen {
	atomic_int started;
	atomic_int cancelled;	/* hs_testcancel() failed with ECANCELED */
	atomic_long ret;	/* hs_read's result */
	atomic_int err;		/* ... and errno */
	atomic_int returned;
};

struct job {
	struct seen *seen;
	int fd;
	int value;
};

static void work_double(void *data)
{
	struct job *j = data;

	j->value *= 2;
}

/* Loops until cancelled (at most 20 s), without blocking in a syscall. */
static void work_until_cancelled(void *data)
{
	struct job *j = data;
	double end = now_sec() + 20;

	atomic_store(&j->seen->started, 1);
	while (now_sec() < end) {
		if (hs_testcancel() == -1 && errno == ECANCELED) {
			atomic_store(&j->seen->cancelled, 1);
			break;
		}
		sleep_ms(1);
	}
	atomic_store(&j->seen->returned, 1);
}

/* Blocks in hs_read on j->fd. */
static void work_read(void *data)
{
	struct job *j = data;
	char c;
	long r;

	atomic_store(&j->seen->started, 1);
	errno = 0;
	r = (long)hs_read(j->fd, &c, 1);
	atomic_store(&j->seen->err, errno);
	atomic_store(&j->seen->ret, r);
	atomic_store(&j->seen->returned, 1);
}

/* Blocks every signal on the pool thread and returns. */
static void work_block_all(void *data)
{
	sigset_t all;

	(void)data;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
}

static int wait_int(atomic_int *flag, double secs)
{
	double end = now_sec() + secs;

	while (!atomic_load(flag) && now_sec() < end)
		sleep_ms(1);
	return atomic_load(flag);
}

/* Runs one runner of work_double to completion; 1 on success. */
static int run_one(void)
{
	struct job j = { NULL, -1, 21 };
	struct runner_context *r = get_runner(work_double, &j, sizeof(j), 0);
	double end = now_sec() + 10;
	int st = RUNNER_RUNNING;

	if (!r)
		return 0;
	while (now_sec() < end &&
	       (st = check_runner(r, &j, sizeof(j))) == RUNNER_RUNNING)
		sleep_ms(1);
	release_runner(r);
	return st == RUNNER_DONE && j.value == 42;
}

/* Waits for a forked child; its exit code, 200 + signal, or 255 if hung. */
static int reap(pid_t pid, double secs)
{
	double end = now_sec() + secs;
	int status;

	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status)
						 : 200 + WTERMSIG(status);
		if (now_sec() >= end) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return 255;
		}
		sleep_ms(5);
	}
}

/*
 * Ends a forked child with `code`. Through exec, not _exit: under valgrind
 * the child runs under memcheck too, and its leak check at exit would count
 * the memory of the parent's threads (referenced only from their stacks,
 * which no thread of the child uses) as lost. A real fork child execs too.
 */
static void child_exit(int code)
{
	char arg[16];

	snprintf(arg, sizeof(arg), "%d", code);
	execl("/bin/sh", "sh", "-c", "exit \"$0\"", arg, (char *)NULL);
	_exit(code);
}

/* ---- H7, H8: fork ---------------------------------------------------- */

static int child_fork(void)
{
	struct hs_runner_metrics m;
	struct seen seen;
	struct job j;
	struct runner_context *r;

	metrics(&m);
	if (m.threads_alive != 0 || m.threads_idle != 0)
		return 2;
	if (!run_one())		/* H7: the job runs in the child */
		return 3;
	if (!run_one())		/* ... and on the child's idle thread */
		return 4;
	/* H8: the timer enforces a deadline nobody checks. */
	memset(&seen, 0, sizeof(seen));
	j.seen = &seen;
	j.fd = -1;
	r = get_runner(work_until_cancelled, &j, sizeof(j), 100 * 1000);
	if (!r)
		return 5;
	if (!wait_int(&seen.cancelled, 10))
		return 6;
	wait_int(&seen.returned, 10);
	release_runner(r);
	return 0;
}

static void test_fork(void)
{
	pid_t pid;

	current = "H7/H8 fork child";
	CHECK(run_one());	/* an idle thread and ... */
	{
		struct seen seen;
		struct job j = { &seen, -1, 0 };
		struct runner_context *r;

		memset(&seen, 0, sizeof(seen));
		r = get_runner(work_until_cancelled, &j, sizeof(j), 50 * 1000);
		CHECK(r != NULL);	/* ... the timer thread exist */
		if (r) {
			CHECK(wait_int(&seen.returned, 10));
			release_runner(r);
		}
	}
	{
		struct hs_runner_metrics m;

		CHECK(wait_settled(&m, 15));
		CHECK(m.threads_idle >= 1);
	}
	pid = fork();
	if (pid == 0)
		child_exit(child_fork());
	CHECK(pid > 0);
	if (pid > 0)
		CHECK_EQ(reap(pid, 60), 0);
}

/* ---- H10: process-directed signals go to the application ---------------- */

static atomic_long handled_on;

static void on_alarm(int sig)
{
	(void)sig;
	atomic_store(&handled_on, (long)syscall(SYS_gettid));
}

static void test_process_signal(void)
{
	struct sigaction sa;
	sigset_t alrm;
	struct seen seen;
	struct job j = { &seen, -1, 0 };
	struct runner_context *busy;

	current = "H10 process-directed signal";
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sigemptyset(&sa.sa_mask);
	CHECK(sigaction(SIGALRM, &sa, NULL) == 0);
	memset(&seen, 0, sizeof(seen));
	/* A thread in work, an idle thread, and the timer. */
	busy = get_runner(work_until_cancelled, &j, sizeof(j), 60 * 1000 * 1000);
	CHECK(busy != NULL);
	CHECK(wait_int(&seen.started, 10));
	CHECK(run_one());
	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	pthread_sigmask(SIG_BLOCK, &alrm, NULL);
	kill(getpid(), SIGALRM);
	sleep_ms(300);
	CHECK_EQ(atomic_load(&handled_on), 0);	/* not on a hangsafe thread */
	pthread_sigmask(SIG_UNBLOCK, &alrm, NULL);
	CHECK_EQ(atomic_load(&handled_on), (long)syscall(SYS_gettid));
	if (busy) {
		release_runner(busy);
		CHECK(wait_int(&seen.returned, 10));
	}
	signal(SIGALRM, SIG_DFL);
}

/* ---- H11: each job starts with the cancel signal unblocked -------------- */

static void test_mask_reset(void)
{
	struct hs_runner_metrics m;
	struct runner_context *r;
	struct seen seen;
	struct job j;
	int p[2];

	current = "H11 mask reset before each job";
	CHECK(wait_settled(&m, 15));
	/*
	 * Every idle thread blocks all signals in turn (LIFO reuse: the
	 * runners below take the most recently idle thread).
	 */
	for (uint64_t i = 0; i <= m.threads_idle; i++) {
		struct job b = { NULL, -1, 0 };

		r = get_runner(work_block_all, &b, sizeof(b), 0);
		CHECK(r != NULL);
		if (!r)
			return;
		while (check_runner(r, &b, sizeof(b)) == RUNNER_RUNNING)
			sleep_ms(1);
		release_runner(r);
		CHECK(wait_settled(&m, 15));
	}
	CHECK(pipe(p) == 0);
	memset(&seen, 0, sizeof(seen));
	j.seen = &seen;
	j.fd = p[0];
	r = get_runner(work_read, &j, sizeof(j), 100 * 1000);
	CHECK(r != NULL);
	if (!r)
		return;
	/* Interrupted at the deadline, without anyone calling check_runner. */
	CHECK(wait_int(&seen.returned, 10));
	if (!atomic_load(&seen.returned))
		CHECK(write(p[1], "x", 1) == 1);	/* free the thread */
	CHECK(wait_int(&seen.returned, 10));
	CHECK_EQ(atomic_load(&seen.ret), -1);
	CHECK_EQ(atomic_load(&seen.err), ECANCELED);
	release_runner(r);
	close(p[0]);
	close(p[1]);
}

/* ---- H12: a changed disposition of the cancel signal -------------------- */

static atomic_int foreign_runs;

static void foreign(int sig)
{
	(void)sig;
	atomic_fetch_add(&foreign_runs, 1);
}

/* In a child: the cancel signal reset to `how`, then a cancel. */
static int child_disposition(void (*how)(int))
{
	struct runner_context *r;
	struct seen seen;
	struct job j;
	int p[2];

	if (!run_one())	/* the cancel signal is installed by now */
		return 2;
	signal(SIGRTMIN + 4, how);
	if (pipe(p) != 0)
		return 3;
	memset(&seen, 0, sizeof(seen));
	j.seen = &seen;
	j.fd = p[0];
	r = get_runner(work_read, &j, sizeof(j), 0);
	if (!r)
		return 4;
	if (!wait_int(&seen.started, 10))
		return 5;
	sleep_ms(50);
	release_runner(r);	/* cancels: must not kill the process */
	sleep_ms(200);
	/* Cooperative from here: the read completes when answered. */
	if (write(p[1], "x", 1) != 1)
		return 6;
	if (!wait_int(&seen.returned, 10))
		return 7;
	return atomic_load(&foreign_runs) == 0 ? 0 : 8;
}

static void test_disposition(void)
{
	pid_t pid;

	current = "H12 cancel signal reset to SIG_DFL";
	pid = fork();
	if (pid == 0)
		child_exit(child_disposition(SIG_DFL));
	CHECK(pid > 0);
	if (pid > 0)
		CHECK_EQ(reap(pid, 60), 0);
	current = "H12 cancel signal taken by a foreign handler";
	pid = fork();
	if (pid == 0)
		child_exit(child_disposition(foreign));
	CHECK(pid > 0);
	if (pid > 0)
		CHECK_EQ(reap(pid, 60), 0);
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	test_process_signal();
	test_mask_reset();
	test_fork();
	test_disposition();
	return harness_summary();
}

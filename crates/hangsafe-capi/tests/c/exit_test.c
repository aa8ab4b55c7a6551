/*
 * exit_test.c - what process exit does to the library's threads (H14–H16
 * of docs/races.md).
 *
 *   exit_test [clean]    uses runners (with and without deadlines, one
 *                        cancelled), waits until every pool thread is idle,
 *                        and returns from main. Run under valgrind with
 *                        --leak-check=full --show-possibly-lost=yes
 *                        --errors-for-leak-kinds=definite,possible at the
 *                        default --num-callers, it must be clean: the idle
 *                        threads and the timer thread are joined at exit.
 *   exit_test exit       the same, ending with exit(0) instead.
 *   exit_test hung       exits (status 3) while a work function sleeps
 *                        for a minute: exit must not wait for it.
 *   exit_test from-work  a work function calls exit(7).
 *
 * Built and run by tests/c_abi.rs.
 */
#include "harness.h"
#include "runner.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct job {
	int in;
	int out;
	int mode;	/* 0 compute, 1 loop until cancelled, 2 hang, 3 exit */
};

static void work(void *data)
{
	struct job *j = data;
	double end = now_sec() + 60;

	switch (j->mode) {
	case 1:
		while (hs_testcancel() == 0 && now_sec() < end)
			sleep_ms(1);
		break;
	case 2:
		sleep_ms(60 * 1000);
		break;
	case 3:
		exit(7);
	default:
		j->out = j->in * 2;
	}
}

static int finish(struct runner_context *r, struct job *j)
{
	double end = now_sec() + 30;
	int st;

	while ((st = check_runner(r, j, sizeof(*j))) == RUNNER_RUNNING &&
	       now_sec() < end)
		sleep_ms(1);
	release_runner(r);
	return st;
}

static void use_runners(void)
{
	struct hs_runner_metrics m;
	struct runner_context *a, *b;
	struct job ja = { 0, 0, 1 }, jb = { 0, 0, 1 };

	current = "runners";
	for (int i = 0; i < 20; i++) {
		struct job j = { i, -1, 0 };
		struct runner_context *r =
			get_runner(work, &j, sizeof(j), i % 2 ? 30 * 1000000 : 0);

		CHECK(r != NULL);
		if (r) {
			CHECK_EQ(finish(r, &j), RUNNER_DONE);
			CHECK_EQ(j.out, 2 * i);
		}
	}
	/* Two at once; one times out, one is released while running. */
	a = get_runner(work, &ja, sizeof(ja), 20 * 1000);
	b = get_runner(work, &jb, sizeof(jb), 0);
	CHECK(a != NULL && b != NULL);
	if (a) {
		/* DEAD once the work has seen the cancel and returned. */
		int st = finish(a, &ja);

		CHECK(st == RUNNER_CANCELLED || st == RUNNER_DEAD);
	}
	if (b)
		release_runner(b);
	CHECK(wait_settled(&m, 30));
	CHECK(m.threads_idle >= 2);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "clean";

	setvbuf(stdout, NULL, _IONBF, 0);
	if (strcmp(mode, "hung") == 0 || strcmp(mode, "from-work") == 0) {
		struct job j = { 0, 0, strcmp(mode, "hung") == 0 ? 2 : 3 };
		struct runner_context *r = get_runner(work, &j, sizeof(j), 0);

		if (!r)
			return 1;
		sleep_ms(100);
		if (j.mode == 3)
			sleep_ms(30 * 1000);	/* exit(7) ends it first */
		exit(3);
	}
	use_runners();
	if (strcmp(mode, "exit") == 0)
		exit(harness_summary());
	return harness_summary();
}

/*
 * dlclose_test.c - H35: dlclose() of libhangsafe while a pool thread runs
 * work must not unmap the code that thread (and the timer) runs.
 *
 * The program is not linked against the library: it dlopen()s the path in
 * argv[1], starts a runner through dlsym(), dlclose()s the library while
 * the work still runs, then lets the work return (into the library's pool
 * loop), cancels another runner (the cancel signal's handler is library
 * code too) and checks that the library is still mapped (RTLD_NOLOAD).
 * Without -z nodelete the pool thread returns into unmapped code: SIGSEGV.
 *
 * First, the narrow case: dlclose() right after get_runner() returned,
 * before the new pool thread has run any code. Without -z nodelete glibc
 * unloads the library (it pins a library only once one of its threads has
 * registered a thread-local destructor), and the new thread then starts in
 * unmapped code.
 */
#include "harness.h"

#include <dlfcn.h>
#include <stdatomic.h>
#include <unistd.h>

typedef struct runner_context *(*get_runner_t)(runner_func, void *,
					       unsigned int, unsigned long);
typedef void (*release_runner_t)(struct runner_context *);
typedef int (*check_runner_t)(struct runner_context *, void *, unsigned int);

static atomic_int started;
static atomic_int finish;

static void work(void *data)
{
	(void)data;
	atomic_store(&started, 1);
	while (!atomic_load(&finish))
		usleep(1000);
}

static void quick(void *data)
{
	*(int *)data = 42;
}

int main(int argc, char **argv)
{
	int x = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: %s LIBRARY\n", argv[0]);
		return 2;
	}
	/* The guarantee itself: once loaded, never unloaded, whatever was
	 * called (here nothing that starts a thread). */
	current = "h35_never_unloaded";
	void *hv = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	CHECK(hv != NULL);
	if (hv) {
		const char *(*ver)(void) =
			(const char *(*)(void))(uintptr_t)dlsym(hv, "hs_version");
		CHECK(ver != NULL && ver()[0] != '\0');
		CHECK_EQ(dlclose(hv), 0);
		void *again = dlopen(argv[1], RTLD_NOW | RTLD_NOLOAD);
		CHECK(again != NULL);
		if (again)
			dlclose(again);
	}

	current = "h35_dlclose_right_after_get_runner";
	void *h0 = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	CHECK(h0 != NULL);
	if (h0) {
		get_runner_t get0 =
			(get_runner_t)(uintptr_t)dlsym(h0, "get_runner");
		release_runner_t rel0 =
			(release_runner_t)(uintptr_t)dlsym(h0, "release_runner");
		CHECK(get0 && rel0);
		if (get0 && rel0) {
			int in = 0;
			struct runner_context *r0 =
				get0(quick, &in, sizeof(in), 0);
			CHECK(r0 != NULL);
			rel0(r0);
		}
		CHECK_EQ(dlclose(h0), 0);
		sleep_ms(300);	/* the new thread starts and goes idle */
		void *pinned = dlopen(argv[1], RTLD_NOW | RTLD_NOLOAD);
		CHECK(pinned != NULL);
		if (pinned)
			dlclose(pinned);
	}

	current = "h35_dlclose_while_work_runs";
	void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	CHECK(h != NULL);
	if (!h) {
		fprintf(stderr, "dlopen: %s\n", dlerror());
		return harness_summary();
	}
	get_runner_t get = (get_runner_t)(uintptr_t)dlsym(h, "get_runner");
	release_runner_t rel =
		(release_runner_t)(uintptr_t)dlsym(h, "release_runner");
	check_runner_t chk = (check_runner_t)(uintptr_t)dlsym(h, "check_runner");
	CHECK(get && rel && chk);
	if (!get || !rel || !chk)
		return harness_summary();

	/* A runner whose work is still running at dlclose(), with a deadline
	 * that the timer thread enforces after it. */
	struct runner_context *r = get(work, &x, sizeof(x), 300000);
	CHECK(r != NULL);
	while (!atomic_load(&started))
		usleep(1000);
	/* A second, released at once: the cancel signal may hit its thread. */
	struct runner_context *r2 = get(work, &x, sizeof(x), 0);
	CHECK(r2 != NULL);

	CHECK_EQ(dlclose(h), 0);
	/* The pointers stay valid only because the library stays mapped. */
	sleep_ms(500);		/* the timer cancels r past its deadline */
	rel(r2);
	atomic_store(&finish, 1);
	sleep_ms(300);		/* both pool threads return into the pool loop */
	CHECK_EQ(chk(r, NULL, 0), RUNNER_DEAD);
	rel(r);

	void *still = dlopen(argv[1], RTLD_NOW | RTLD_NOLOAD);
	CHECK(still != NULL);	/* -z nodelete: never unloaded */

	/* Loading it again gives the same, working library. */
	void *h2 = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	CHECK(h2 != NULL);
	if (h2) {
		get = (get_runner_t)(uintptr_t)dlsym(h2, "get_runner");
		chk = (check_runner_t)(uintptr_t)dlsym(h2, "check_runner");
		rel = (release_runner_t)(uintptr_t)dlsym(h2, "release_runner");
		int in = 0, out = 0;
		struct runner_context *r3 = get(quick, &in, sizeof(in), 0);
		CHECK(r3 != NULL);
		double t0 = now_sec();
		while (r3 && chk(r3, &out, sizeof(out)) == RUNNER_RUNNING &&
		       now_sec() - t0 < 30)
			sleep_ms(5);
		CHECK_EQ(out, 42);
		rel(r3);
		CHECK_EQ(dlclose(h2), 0);
	}
	if (still)
		dlclose(still);
	sleep_ms(100);
	return harness_summary();
}

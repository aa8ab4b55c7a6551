/*
 * set_bench.c - a path checker loop over many paths, two ways, in one
 * process, with the same C probe function:
 *
 *   set      hangsafe's design: one hs_set; one poll() on hs_set_fd() with
 *            hs_set_timeout_ms(); hs_set_drain() respawns each path's next
 *            probe from its callback as soon as the previous one answered.
 *   runners  multipathd's design today: one get_runner() per path; a loop
 *            that ticks every T, checks every path with check_runner(),
 *            and releases and respawns the decided ones. multipathd ticks
 *            once a second (T = 1 s); shorter ticks are shown too, down to
 *            T = 0 (polling without sleeping, one CPU spent on it).
 *
 * Each mode runs for the same wall-clock time; it reports probes answered
 * per second and CPU time per probe (getrusage(RUSAGE_SELF): user + system
 * of every thread, the library's pool threads included). The modes
 * alternate `reps` times; the medians and their ratios are printed, with
 * the CPU model.
 *
 *   set_bench [paths [seconds [reps [ticks_us]]]]
 *       defaults: 1000 paths, 2 s per run, 3 runs, ticks "1000000,100000,10000,0"
 *   set_bench paths seconds reps ticks_us set|runners   (one mode only,
 *       for a profiler)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <hangsafe.h>

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* Each probe's deadline (10 s; none is ever reached). */
#define TIMEOUT_US 10000000UL

/* The probe: a short computation standing in for a TUR that answers. */
struct probe {
	uint32_t path;
	uint32_t seq;
	uint64_t result;
};

static void check_path(void *data)
{
	struct probe *p = data;
	uint64_t h = p->path * 0x9e3779b97f4a7c15ULL + p->seq;

	for (int i = 0; i < 64; i++)
		h = (h ^ (h >> 29)) * 0xbf58476d1ce4e5b9ULL;
	p->result = h;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

struct result {
	double probes_per_s;
	double cpu_us_per_probe;
};

static void die(const char *what)
{
	fprintf(stderr, "set_bench: %s: %s\n", what, strerror(errno));
	exit(2);
}

/* Probes answered, wall and CPU seconds since the start of a run. */
static struct result measure(long answered, double t0, double c0)
{
	double t = now() - t0, c = cpu() - c0;

	if (answered < 1)
		answered = 1;
	return (struct result){ answered / t, c / answered * 1e6 };
}

/* ---- hangsafe: one set, one fd ------------------------------------------ */

struct set_loop {
	hs_set *set;
	long answered;
	int spawning;
	uint32_t seq;
};

static void set_spawn(struct set_loop *s, uint32_t path)
{
	struct probe p = { path, s->seq++, 0 };

	if (!hs_set_spawn(s->set, check_path, &p, sizeof(p), TIMEOUT_US))
		die("hs_set_spawn");
}

static void on_outcome(void *arg, hs_token token, int state, const void *data,
		       unsigned int size)
{
	struct set_loop *s = arg;
	const struct probe *p = data;

	(void)token, (void)size;
	if (state != RUNNER_DONE || !p)
		die("a probe did not answer");
	s->answered++;
	if (s->spawning)
		set_spawn(s, p->path);
}

static struct result run_set(uint32_t paths, double secs)
{
	struct set_loop s = { hs_set_new(), 0, 1, 0 };
	double t0 = now(), c0 = cpu(), end = t0 + secs;
	struct result r;

	if (!s.set)
		die("hs_set_new");
	for (uint32_t i = 0; i < paths; i++)
		set_spawn(&s, i);
	while (now() < end) {
		struct pollfd pfd = { hs_set_fd(s.set), POLLIN, 0 };

		if (poll(&pfd, 1, hs_set_timeout_ms(s.set)) < 0 &&
		    errno != EINTR)
			die("poll");
		if (hs_set_drain(s.set, on_outcome, &s) < 0)
			die("hs_set_drain");
	}
	r = measure(s.answered, t0, c0);
	hs_set_free(s.set);	/* releases the probes still in flight */
	return r;
}

/* ---- multipathd today: a runner per path, checked every tick ------------- */

static struct runner_context *runner_spawn(uint32_t path, uint32_t *seq)
{
	struct probe p = { path, (*seq)++, 0 };
	struct runner_context *r =
		get_runner(check_path, &p, sizeof(p), TIMEOUT_US);

	if (!r)
		die("get_runner");
	return r;
}

static void sleep_until(double t)
{
	double left = t - now();
	struct timespec ts;

	if (left <= 0)
		return;
	ts.tv_sec = (time_t)left;
	ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
	nanosleep(&ts, NULL);
}

static struct result run_runners(uint32_t paths, double secs, long tick_us)
{
	struct runner_context **r = calloc(paths, sizeof(*r));
	double t0 = now(), c0 = cpu(), end = t0 + secs, next = t0;
	long answered = 0;
	uint32_t seq = 0;
	struct result res;

	if (!r)
		die("calloc");
	for (uint32_t i = 0; i < paths; i++)
		r[i] = runner_spawn(i, &seq);
	while (now() < end) {
		for (uint32_t i = 0; i < paths; i++) {
			struct probe out;
			int st = check_runner(r[i], &out, sizeof(out));

			if (st == RUNNER_RUNNING)
				continue;
			if (st != RUNNER_DONE)
				die("a probe did not answer");
			release_runner(r[i]);
			answered++;
			r[i] = runner_spawn(i, &seq);
		}
		if (tick_us > 0) {
			next += (double)tick_us / 1e6;
			sleep_until(next < end ? next : end);
		}
	}
	res = measure(answered, t0, c0);
	for (uint32_t i = 0; i < paths; i++)
		release_runner(r[i]);
	free(r);
	return res;
}

/* ---- main ------------------------------------------------------------------------ */

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void cpu_model(void)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[256], model[256] = "unknown";
	int cpus = 0, have = 0;

	while (f && fgets(line, sizeof(line), f)) {
		char *v = strchr(line, ':');

		if (strncmp(line, "processor", 9) == 0)
			cpus++;
		if (!have && v && strncmp(line, "model name", 10) == 0) {
			snprintf(model, sizeof(model), "%s", v + 2);
			model[strcspn(model, "\n")] = 0;
			have = 1;
		}
	}
	if (f)
		fclose(f);
	printf("CPU: %s, %d CPUs\n", model, cpus);
}

#define MAX_REPS 32
#define MAX_TICKS 8

int main(int argc, char **argv)
{
	uint32_t paths = argc > 1 ? (uint32_t)atol(argv[1]) : 1000;
	double secs = argc > 2 ? atof(argv[2]) : 2.0;
	int reps = argc > 3 ? atoi(argv[3]) : 3;
	const char *tick_list = argc > 4 ? argv[4] : "1000000,100000,10000,0";
	const char *only = argc > 5 ? argv[5] : "";
	long ticks[MAX_TICKS];
	int n_ticks = 0;
	double sp[MAX_REPS], sc[MAX_REPS];
	double rp[MAX_TICKS][MAX_REPS], rc[MAX_TICKS][MAX_REPS];
	double msp, msc;

	for (const char *p = tick_list; *p && n_ticks < MAX_TICKS;) {
		char *e;

		ticks[n_ticks++] = strtol(p, &e, 10);
		p = *e == ',' ? e + 1 : e;
		if (e == p && *p)
			break;
	}
	if (reps < 1 || reps > MAX_REPS || paths < 1 || !(secs > 0) ||
	    n_ticks < 1) {
		fprintf(stderr, "usage: set_bench [paths [seconds [reps "
				"[ticks_us [set|runners]]]]]\n");
		return 2;
	}
	if (strcmp(only, "set") == 0 || strcmp(only, "runners") == 0) {
		for (int i = 0; i < reps; i++) {
			struct result r = only[0] == 's'
				? run_set(paths, secs)
				: run_runners(paths, secs, ticks[0]);

			printf("%s: %.0f probes/s, %.2f us CPU/probe\n", only,
			       r.probes_per_s, r.cpu_us_per_probe);
		}
		return 0;
	}
	cpu_model();
	printf("%u paths, %.1f s per run, %d runs per mode (alternating)\n",
	       paths, secs, reps);
	run_set(paths, secs / 4);	/* warm the pool up */
	for (int i = 0; i < reps; i++) {
		struct result a = run_set(paths, secs);

		sp[i] = a.probes_per_s, sc[i] = a.cpu_us_per_probe;
		for (int k = 0; k < n_ticks; k++) {
			struct result b = run_runners(paths, secs, ticks[k]);

			rp[k][i] = b.probes_per_s, rc[k][i] = b.cpu_us_per_probe;
		}
	}
	msp = median(sp, reps);
	msc = median(sc, reps);
	printf("%-34s %12s %16s %12s %12s\n", "mode (median of runs)",
	       "probes/s", "CPU us/probe", "set thrpt", "set CPU");
	printf("%-34s %12.0f %16.2f %12s %12s\n", "set: poll + drain", msp, msc,
	       "-", "-");
	for (int k = 0; k < n_ticks; k++) {
		double mp = median(rp[k], reps), mc = median(rc[k], reps);
		char name[64];

		if (ticks[k] > 0)
			snprintf(name, sizeof(name),
				 "runners: check_runner every %ld us", ticks[k]);
		else
			snprintf(name, sizeof(name),
				 "runners: check_runner, no sleep");
		printf("%-34s %12.0f %16.2f %11.2fx %11.2fx\n", name, mp, mc,
		       msp / mp, msc / mc);
	}
	printf("(set thrpt: the set's probes/s over this mode's; set CPU: the "
	       "set's CPU per probe over this mode's, lower is better)\n");
	return 0;
}

/*
 * checker_loop.c - a multipathd-style path checker on a hangsafe runner
 * set: one poll() loop on hs_set_fd() with hs_set_timeout_ms() probes
 * every path once per round, respawning each path's next probe from the
 * drain callback. Some probes answer at once, some take a few
 * milliseconds, some hang (a read from a FIFO nobody writes) until their
 * deadline; the loop also releases and cancels probes at random.
 *
 * It checks what a daemon relies on: every probe that was not released is
 * reported exactly once (RUNNER_DONE with its result, or RUNNER_DEAD),
 * nothing is reported for a released probe, and once the set is freed no
 * runner context is left (hs_runner_metrics' live_contexts returns to 0).
 *
 *   cc checker_loop.c -o checker_loop $(pkg-config --cflags --libs hangsafe)
 *   ./checker_loop [paths [rounds [seed]]]      (default 1000 paths, 5 rounds)
 *
 * Exits 0 and prints "checker loop: ok" when every check held.
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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- The probe: what the checker's work function does -------------------- */

enum kind { QUICK, SLOW, HUNG };

struct probe {
	uint32_t path;
	uint32_t round;
	uint32_t kind;
	int fd;			/* HUNG: a descriptor that never becomes readable */
	uint32_t result;	/* out: path * 31 + round */
};

static void check_path(void *data)
{
	struct probe *p = data;
	struct pollfd pfd = { p->fd, POLLIN, 0 };
	struct timespec ms = { 0, 1000000 };

	switch (p->kind) {
	case SLOW:
		hs_nanosleep(&ms, NULL);		/* cancellable */
		break;
	case HUNG:
		if (hs_poll(&pfd, 1, -1) < 0 && errno == ECANCELED)
			return;			/* the deadline passed */
		break;
	}
	p->result = p->path * 31 + p->round;
}

/* ---- The daemon's bookkeeping ----------------------------------------------------- */

struct path {
	hs_token token;		/* the probe in flight, 0 if none */
	uint32_t round;		/* its round */
	uint32_t done;		/* rounds reported */
};

/*
 * Token -> path: a small open-addressing table keyed by the whole token.
 * (Not by its low bits alone: a drained runner's slot may already serve a
 * respawned probe, under a new generation, while the drain is still
 * delivering the old one's outcome.)
 */
struct entry {
	hs_token token;		/* 0: free */
	uint32_t path;
};

struct checker {
	hs_set *set;
	struct path *paths;
	uint32_t n_paths, rounds;
	struct entry *tab;
	size_t mask;		/* table size - 1 (a power of two) */
	int fifo;
	unsigned int seed;
	/* counts */
	long spawned, released, cancelled, reported, done, dead;
	long errors;
};

static void fail(struct checker *c, const char *what, hs_token t)
{
	c->errors++;
	if (c->errors < 10)
		fprintf(stderr, "checker loop: %s (token %#llx)\n", what,
			(unsigned long long)t);
}

static size_t home(const struct checker *c, hs_token t)
{
	return (size_t)((t * 0x9e3779b97f4a7c15ULL) >> 17) & c->mask;
}

static void track(struct checker *c, hs_token t, uint32_t path)
{
	size_t i = home(c, t);

	while (c->tab[i].token)
		i = (i + 1) & c->mask;
	c->tab[i] = (struct entry){ t, path };
}

/* The entry of `t`, or NULL. */
static struct entry *lookup(struct checker *c, hs_token t)
{
	for (size_t i = home(c, t); c->tab[i].token; i = (i + 1) & c->mask)
		if (c->tab[i].token == t)
			return &c->tab[i];
	return NULL;
}

/* Removes an entry, shifting back the ones that probed past it. */
static void untrack(struct checker *c, struct entry *e)
{
	size_t i = (size_t)(e - c->tab), j = i;

	c->tab[i].token = 0;
	for (;;) {
		size_t k;

		j = (j + 1) & c->mask;
		if (!c->tab[j].token)
			return;
		k = home(c, c->tab[j].token);
		/* Move it back unless its home lies cyclically in (i, j]. */
		if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		c->tab[i] = c->tab[j];
		c->tab[j].token = 0;
		i = j;
	}
}

/* Starts the probe of `path` for its next round; 0 if all rounds are done. */
static hs_token probe(struct checker *c, uint32_t path)
{
	struct path *p = &c->paths[path];
	unsigned int r = (unsigned int)rand_r(&c->seed) % 100;
	struct probe in = { path, p->round, r < 2 ? HUNG : r < 12 ? SLOW : QUICK,
			    c->fifo, 0 };
	/* Deadlines: 20 ms for most, 2 ms for some (a SLOW one may miss it). */
	unsigned long timeout_usec = r % 7 == 0 ? 2000 : 20000;
	hs_token t;

	if (p->round >= c->rounds)
		return 0;
	t = hs_set_spawn(c->set, check_path, &in, sizeof(in), timeout_usec);
	if (!t) {
		fail(c, strerror(errno), 0);
		return 0;
	}
	c->spawned++;
	p->token = t;
	/* Now and then the daemon loses interest (path removed): release. */
	if (rand_r(&c->seed) % 200 == 0) {
		if (hs_set_release(c->set, t) != 0)
			fail(c, "release failed", t);
		/* Not tracked: nothing may arrive for it. */
		c->released++;
		p->token = 0;
		p->round++;			/* that round is skipped */
		return probe(c, path);
	}
	track(c, t, path);
	return t;
}

/* The drain callback: one probe's outcome; respawns the path's next probe. */
static void on_outcome(void *arg, hs_token token, int state,
		       const void *data, unsigned int size)
{
	struct checker *c = arg;
	struct entry *e = lookup(c, token);
	struct path *p;
	uint32_t path;

	if (!e) {
		fail(c, "an outcome for a released, reported or unknown probe",
		     token);
		return;
	}
	path = e->path;
	untrack(c, e);			/* exactly once */
	p = &c->paths[path];
	if (p->token != token)
		fail(c, "an outcome for a probe the path is not waiting for",
		     token);
	c->reported++;
	if (state == RUNNER_DONE) {
		const struct probe *out = data;

		c->done++;
		if (size != sizeof(*out) || out->path != path ||
		    out->result != out->path * 31 + out->round)
			fail(c, "a wrong result", token);
	} else if (state == RUNNER_DEAD && data == NULL) {
		c->dead++;		/* timed out, or cancelled */
	} else {
		fail(c, "an unexpected state", token);
	}
	p->token = 0;
	p->done++;
	p->round++;
	probe(c, path);			/* respawn from inside the drain */
}

int main(int argc, char **argv)
{
	struct checker c = { 0 };
	char fifo_path[64];
	struct hs_runner_metrics m;
	long outstanding;
	time_t give_up;

	c.n_paths = argc > 1 ? (uint32_t)atoi(argv[1]) : 1000;
	c.rounds = argc > 2 ? (uint32_t)atoi(argv[2]) : 5;
	c.seed = argc > 3 ? (unsigned int)atoi(argv[3]) : 1;
	c.paths = calloc(c.n_paths ? c.n_paths : 1, sizeof(*c.paths));
	/* Room for every path's probe in flight and one undelivered each. */
	for (c.mask = 1023; c.mask < 4 * (size_t)c.n_paths; c.mask = c.mask * 2 + 1)
		;
	c.tab = calloc(c.mask + 1, sizeof(*c.tab));
	c.set = hs_set_new();
	if (!c.paths || !c.tab || !c.set) {
		perror("setup");
		return 2;
	}
	/* A FIFO opened read-write never becomes readable: a hung device. */
	snprintf(fifo_path, sizeof(fifo_path), "/tmp/checker_loop.%d",
		 (int)getpid());
	if (mkfifo(fifo_path, 0600) != 0 ||
	    (c.fifo = open(fifo_path, O_RDWR | O_CLOEXEC)) < 0) {
		perror(fifo_path);
		return 2;
	}
	unlink(fifo_path);

	for (uint32_t i = 0; i < c.n_paths; i++)
		probe(&c, i);
	give_up = time(NULL) + 600;	/* a daemon loops for ever; a test not */
	for (;;) {
		struct pollfd pfd = { hs_set_fd(c.set), POLLIN, 0 };

		outstanding = 0;
		for (uint32_t i = 0; i < c.n_paths; i++)
			outstanding += c.paths[i].token != 0;
		if (!outstanding)
			break;
		if (time(NULL) > give_up) {
			fail(&c, "probes still outstanding after 600 s", 0);
			break;
		}
		if (poll(&pfd, 1, hs_set_timeout_ms(c.set)) < 0 &&
		    errno != EINTR) {
			perror("poll");
			return 2;
		}
		if (hs_set_drain(c.set, on_outcome, &c) < 0)
			fail(&c, strerror(errno), 0);
		/* Now and then the administrator forces a re-check: cancel. */
		if (rand_r(&c.seed) % 4 == 0) {
			uint32_t i = (uint32_t)rand_r(&c.seed) % c.n_paths;

			if (c.paths[i].token) {
				if (hs_set_cancel(c.set, c.paths[i].token) != 0)
					fail(&c, "cancel failed",
					     c.paths[i].token);
				c.cancelled++;
			}
		}
	}
	hs_set_free(c.set);
	close(c.fifo);

	/* Every probe not released was reported exactly once. */
	if (c.reported != c.spawned - c.released)
		fail(&c, "reported != spawned - released", 0);
	for (uint32_t i = 0; i < c.n_paths; i++)
		if (c.paths[i].round != c.rounds)
			fail(&c, "a path missed rounds", i);
	/* No runner context is left once the hung probes have returned. */
	for (int i = 0; i < 30000; i++) {
		if (hs_runner_metrics(&m) != 0)
			break;
		if (m.live_contexts == 0)
			break;
		usleep(1000);
	}
	if (m.live_contexts != 0)
		fail(&c, "runner contexts left", m.live_contexts);
	printf("checker loop: %u paths x %u rounds: %ld probes, %ld done, "
	       "%ld dead, %ld released, %ld cancels\n",
	       c.n_paths, c.rounds, c.spawned, c.done, c.dead, c.released,
	       c.cancelled);
	free(c.paths);
	free(c.tab);
	if (c.errors) {
		printf("checker loop: %ld errors\n", c.errors);
		return 1;
	}
	printf("checker loop: ok\n");
	return 0;
}

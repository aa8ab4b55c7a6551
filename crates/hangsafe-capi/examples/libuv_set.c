/*
 * libuv_set.c - hung probes in a libuv program: libuv's thread pool versus
 * a hangsafe runner set.
 *
 *   cc libuv_set.c -o libuv_set $(pkg-config --cflags --libs hangsafe libuv)
 *
 * A probe here is open(2) of a FIFO that has no writer: it blocks until a
 * writer appears, as a path checker blocks on a dead device.
 *
 * 1. hangsafe: the probes run in a runner set (hs_set_spawn, with a
 *    deadline). A uv_poll_t watches hs_set_fd() and a uv_timer_t follows
 *    hs_set_timeout_ms(); both drain the set. The probes open the FIFO with
 *    hs_openat(), so a deadline interrupts them. While they hang, the
 *    loop's own uv_fs_* requests (stat, open, write, close of a scratch
 *    file) keep completing on libuv's pool.
 *
 * 2. libuv's pool: the same probes through uv_queue_work() occupy all of
 *    its threads (4 unless UV_THREADPOOL_SIZE says otherwise; this program
 *    sets 4, and keeps fs requests off io_uring where libuv could use
 *    it), and an unrelated uv_fs_stat() queued after them does not
 *    complete until the probes are released (the FIFO is opened for
 *    writing at the end, so the process can exit).
 *
 * Prints both results; exits 0 only if the contrast was observed: the fs
 * requests completed while the hangsafe probes hung, each probe ended
 * RUNNER_DEAD by its deadline, and libuv's uv_fs_stat waited for the pool.
 * Run by crates/hangsafe-capi/tests/libuv_example.rs.
 */
#include <runner.h>
#include <hangsafe.h>

#include <uv.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PROBES 8		/* more probes than libuv has threads */
#define UV_PROBES 4		/* enough to fill libuv's pool */
#define PROBE_TIMEOUT_MS 1500	/* the hangsafe probes' deadline */
#define STALL_MS 1500		/* how long libuv's pool is watched */
#define FS_OPS 20		/* uv_fs_* requests made while probes hang */

static char dir[64];
static char fifo[96];
static char scratch[96];

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- 1. hangsafe -------------------------------------------------------- */

struct probe {
	char path[96];
	int fd;
	int err;
};

/* The probe: blocks in open() until a writer appears or it is cancelled. */
static void probe_work(void *data)
{
	struct probe *p = data;

	p->fd = hs_openat(AT_FDCWD, p->path, O_RDONLY | O_CLOEXEC);
	p->err = p->fd < 0 ? errno : 0;
	if (p->fd >= 0)
		close(p->fd);
}

static struct {
	hs_set *set;
	uv_poll_t poll;
	uv_timer_t timer;
	double start;
	int dead, done, decided;
	double decided_at;	/* when the last probe was decided */
	/* the loop's own fs work */
	uv_fs_t req;
	int fs_step, fs_done;
	double fs_done_at;
	int fs_failed;
} hs;

static void on_outcome(void *arg, hs_token token, int state, const void *data,
		       unsigned int size)
{
	(void)arg;
	(void)token;
	(void)data;
	(void)size;
	if (state == RUNNER_DEAD)
		hs.dead++;
	else
		hs.done++;
	if (++hs.decided == PROBES)
		hs.decided_at = now_ms();
}

static void arm_timer(void);

static void drain(void)
{
	if (hs_set_drain(hs.set, on_outcome, NULL) < 0)
		fprintf(stderr, "hs_set_drain: %s\n", strerror(errno));
	if (hs.decided == PROBES) {
		uv_poll_stop(&hs.poll);
		uv_timer_stop(&hs.timer);
		return;
	}
	arm_timer();
}

static void on_set_readable(uv_poll_t *h, int status, int events)
{
	(void)h;
	(void)status;
	(void)events;
	drain();
}

static void on_set_timer(uv_timer_t *t)
{
	(void)t;
	drain();
}

/* The uv_timer_t follows the set's earliest deadline. */
static void arm_timer(void)
{
	int ms = hs_set_timeout_ms(hs.set);

	if (ms >= 0)
		uv_timer_start(&hs.timer, on_set_timer, (uint64_t)ms, 0);
	else
		uv_timer_stop(&hs.timer);
}

/* The loop's own work: stat, then open/write/close a scratch file, in
 * sequence, FS_OPS requests in all. */
static void fs_next(uv_fs_t *req);

static void fs_cb(uv_fs_t *req)
{
	if (req->result < 0)
		hs.fs_failed++;
	fs_next(req);
}

static void fs_next(uv_fs_t *req)
{
	uv_loop_t *loop = req->loop;
	ssize_t fd = req->result;
	static uv_buf_t buf;
	static char byte = 'x';

	uv_fs_req_cleanup(req);
	if (hs.fs_step == FS_OPS) {
		hs.fs_done = 1;
		hs.fs_done_at = now_ms();
		return;
	}
	switch (hs.fs_step++ % 4) {
	case 0:
		uv_fs_stat(loop, req, "/", fs_cb);
		break;
	case 1:
		uv_fs_open(loop, req, scratch, O_WRONLY | O_CREAT | O_TRUNC,
			   0600, fs_cb);
		break;
	case 2:
		buf = uv_buf_init(&byte, 1);
		hs.req.data = (void *)(intptr_t)fd;
		uv_fs_write(loop, req, (uv_file)fd, &buf, 1, -1, fs_cb);
		break;
	default:
		uv_fs_close(loop, req, (uv_file)(intptr_t)req->data, fs_cb);
		break;
	}
}

static int run_hangsafe(uv_loop_t *loop)
{
	struct probe p;
	int i;

	hs.set = hs_set_new();
	if (!hs.set) {
		perror("hs_set_new");
		return -1;
	}
	memset(&p, 0, sizeof(p));
	snprintf(p.path, sizeof(p.path), "%s", fifo);
	hs.start = now_ms();
	for (i = 0; i < PROBES; i++)
		if (hs_set_spawn(hs.set, probe_work, &p, sizeof(p),
				 PROBE_TIMEOUT_MS * 1000UL) == 0) {
			perror("hs_set_spawn");
			return -1;
		}
	uv_poll_init(loop, &hs.poll, hs_set_fd(hs.set));
	uv_poll_start(&hs.poll, UV_READABLE, on_set_readable);
	uv_timer_init(loop, &hs.timer);
	arm_timer();
	/* The loop's own fs work, started while the probes hang. */
	hs.req.loop = loop;
	hs.req.result = 0;
	hs.req.data = NULL;
	fs_next(&hs.req);
	uv_run(loop, UV_RUN_DEFAULT);
	uv_close((uv_handle_t *)&hs.poll, NULL);
	uv_close((uv_handle_t *)&hs.timer, NULL);
	uv_run(loop, UV_RUN_DEFAULT);
	hs_set_free(hs.set);
	return 0;
}

/* ---- 2. libuv's own pool ------------------------------------------------ */

static struct {
	uv_work_t work[UV_PROBES];
	uv_fs_t stat;
	uv_timer_t watch;
	double start;
	double stat_at;		/* when uv_fs_stat completed */
	double released_at;	/* when the probes were released */
	int stat_done_before_release;
	int writer;
} uvp;

static void uv_probe(uv_work_t *w)
{
	int fd = open(fifo, O_RDONLY | O_CLOEXEC);

	(void)w;
	if (fd >= 0)
		close(fd);
}

static void uv_probe_after(uv_work_t *w, int status)
{
	(void)w;
	(void)status;
}

static void on_stat(uv_fs_t *req)
{
	uvp.stat_at = now_ms();
	uv_fs_req_cleanup(req);
}

/* After STALL_MS: note whether the stat got through, then release the
 * probes by opening the FIFO for writing (every blocked open() returns). */
static void on_watch(uv_timer_t *t)
{
	(void)t;
	uvp.stat_done_before_release = uvp.stat_at > 0;
	uvp.released_at = now_ms();
	uvp.writer = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (uvp.writer < 0)
		perror("open FIFO for writing");
}

static int run_libuv_pool(uv_loop_t *loop)
{
	int i;

	uvp.start = now_ms();
	for (i = 0; i < UV_PROBES; i++)
		uv_queue_work(loop, &uvp.work[i], uv_probe, uv_probe_after);
	uv_fs_stat(loop, &uvp.stat, "/", on_stat);
	uv_timer_init(loop, &uvp.watch);
	uv_timer_start(&uvp.watch, on_watch, STALL_MS, 0);
	uv_run(loop, UV_RUN_DEFAULT);
	uv_close((uv_handle_t *)&uvp.watch, NULL);
	uv_run(loop, UV_RUN_DEFAULT);
	if (uvp.writer >= 0)
		close(uvp.writer);
	return 0;
}

int main(void)
{
	uv_loop_t loop;
	int ok = 1;

	/* libuv reads these once, when its pool starts. Newer libuv
	 * releases can send some fs requests to io_uring instead of the
	 * pool; the comparison is about the pool. */
	setenv("UV_THREADPOOL_SIZE", "4", 1);
	setenv("UV_USE_IO_URING", "0", 1);
	snprintf(dir, sizeof(dir), "/tmp/hs-libuv-XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 2;
	}
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	snprintf(scratch, sizeof(scratch), "%s/scratch", dir);
	if (mkfifo(fifo, 0600) != 0) {
		perror("mkfifo");
		return 2;
	}
	uv_loop_init(&loop);

	if (run_hangsafe(&loop) != 0)
		ok = 0;
	printf("hangsafe: %d probes hung on a FIFO; %d uv_fs_* requests "
	       "completed in %.1f ms while they hung (%d failed); probes "
	       "decided after %.1f ms: %d RUNNER_DEAD, %d RUNNER_DONE\n",
	       PROBES, FS_OPS, hs.fs_done_at - hs.start, hs.fs_failed,
	       hs.decided_at - hs.start, hs.dead, hs.done);
	if (!hs.fs_done || hs.fs_failed || hs.fs_done_at >= hs.decided_at ||
	    hs.dead != PROBES ||
	    hs.decided_at - hs.start < PROBE_TIMEOUT_MS - 50) {
		printf("UNEXPECTED: the fs requests must complete while the "
		       "probes hang, and every probe must end by its "
		       "deadline\n");
		ok = 0;
	}

	run_libuv_pool(&loop);
	printf("libuv pool: %d probes hung in uv_queue_work; uv_fs_stat "
	       "completed after %.1f ms (%s; the probes were released "
	       "after %.1f ms)\n",
	       UV_PROBES, uvp.stat_at - uvp.start,
	       uvp.stat_done_before_release ? "NOT stalled"
					    : "stalled behind them",
	       uvp.released_at - uvp.start);
	if (uvp.stat_done_before_release || uvp.stat_at < uvp.released_at) {
		printf("UNEXPECTED: uv_fs_stat did not wait for the pool\n");
		ok = 0;
	}

	uv_loop_close(&loop);
	unlink(fifo);
	unlink(scratch);
	rmdir(dir);
	printf("%s\n", ok ? "contrast observed" : "contrast NOT observed");
	return ok ? 0 : 1;
}

/*
 * cancel_test.c - exercises the cancellable system calls of hangsafe.h
 * (hs_read, hs_write, hs_poll, hs_nanosleep, hs_accept4, hs_connect,
 * hs_openat, hs_ioctl, hs_testcancel) through the C ABI of libhangsafe.
 *
 * Part one: outside a runner, each call behaves like the libc call it
 * mirrors (results, errno, EINTR from a signal handler). Part two: inside
 * runners, a call blocked in the kernel fails with ECANCELED when the
 * runner's deadline passes or the runner is released, a call that
 * completed keeps its result, and the pool thread is reused afterwards.
 *
 * Built and run by tests/c_abi.rs (statically, dynamically, and under
 * valgrind, with HANGSAFE_TEST_VALGRIND set: checks that hand deliberately
 * bad pointers to the kernel are skipped there, because valgrind reports
 * them as errors before the kernel can say EFAULT). Every wait is bounded
 * by several seconds, so a slow machine makes the test slower, not flaky.
 *
 * Prints "N passed, M failed" and exits non-zero if anything failed.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Polls until *flag is non-zero or `secs` pass; returns whether it is. */
static int wait_flag(atomic_int *flag, double secs)
{
	double end = now_sec() + secs;

	while (!atomic_load(flag) && now_sec() < end)
		sleep_ms(1);
	return atomic_load(flag) != 0;
}

static int under_valgrind;	/* HANGSAFE_TEST_VALGRIND is set */
static char tmpdir[64];		/* a private scratch directory */

static void path_in_tmp(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", tmpdir, name);
}

static int cloexec(int fd)
{
	return (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0;
}

static int make_pipe(int p[2])
{
	int ok = pipe(p) == 0;

	CHECK(ok);
	return ok;
}

/* A listening TCP socket on 127.0.0.1 (any port); its address in *sa. */
static int listener(struct sockaddr_in *sa)
{
	socklen_t len = sizeof(*sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	CHECK(fd >= 0);
	if (fd < 0)
		return -1;
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)sa, sizeof(*sa)) != 0 ||
	    listen(fd, 8) != 0 ||
	    getsockname(fd, (struct sockaddr *)sa, &len) != 0) {
		check_at(0, "bind/listen/getsockname", __FILE__, __LINE__);
		close(fd);
		return -1;
	}
	return fd;
}

/* ---- Part one: outside a runner, like libc ------------------------------ */

static void test_read_write(void)
{
	char buf[16] = { 0 };
	int p[2], saved;

	current = "read/write";
	if (!make_pipe(p))
		return;
	errno = 4321;
	CHECK_EQ(hs_write(p[1], "hello", 5), 5);
	CHECK_EQ(errno, 4321); /* success leaves errno alone, like libc */
	CHECK_EQ(hs_read(p[0], buf, sizeof(buf)), 5);
	CHECK(memcmp(buf, "hello", 5) == 0);
	CHECK_EQ(hs_read(p[0], buf, 0), 0);
	CHECK_EQ(hs_write(p[1], buf, 0), 0);

	/* Non-blocking and empty: EAGAIN, as from read(2). */
	saved = fcntl(p[0], F_GETFL);
	CHECK_EQ(fcntl(p[0], F_SETFL, saved | O_NONBLOCK), 0);
	CHECK_FAILS(hs_read(p[0], buf, 1), EAGAIN);
	CHECK_EQ(fcntl(p[0], F_SETFL, saved), 0);

	/* Bad descriptors. */
	CHECK_FAILS(hs_read(-1, buf, 1), EBADF);
	CHECK_FAILS(hs_write(-1, buf, 1), EBADF);
	CHECK_FAILS(hs_read(p[1], buf, 1), EBADF); /* write end */

	/* Bad pointers: the kernel's EFAULT, no crash. */
	if (!under_valgrind) {
		CHECK_EQ(hs_write(p[1], "x", 1), 1);
		CHECK_FAILS(hs_read(p[0], (void *)8, 1), EFAULT);
		CHECK_FAILS(hs_write(p[1], (const void *)8, 1), EFAULT);
		CHECK_EQ(hs_read(p[0], buf, 1), 1); /* the byte is still there */
		CHECK(buf[0] == 'x');
	}

	/* No reader: EPIPE (SIGPIPE is ignored by main). */
	close(p[0]);
	CHECK_FAILS(hs_write(p[1], "y", 1), EPIPE);
	close(p[1]);

	/* End of file. */
	if (!make_pipe(p))
		return;
	close(p[1]);
	CHECK_EQ(hs_read(p[0], buf, sizeof(buf)), 0);
	close(p[0]);
}

static void test_poll(void)
{
	struct pollfd pfd[2];
	double t0, took;
	int p[2], gone[2];

	current = "poll";
	if (!make_pipe(p))
		return;
	pfd[0] = (struct pollfd){ .fd = p[0], .events = POLLIN };
	t0 = now_sec();
	CHECK_EQ(hs_poll(pfd, 1, 30), 0);
	took = now_sec() - t0;
	CHECK(took >= 0.029);
	CHECK_EQ(pfd[0].revents, 0);
	CHECK_EQ(hs_poll(pfd, 1, 0), 0);

	/* No descriptors: a plain sleep. */
	t0 = now_sec();
	CHECK_EQ(hs_poll(NULL, 0, 10), 0);
	CHECK(now_sec() - t0 >= 0.009);

	/* Data ready: returns at once, even with an infinite timeout. */
	CHECK_EQ(hs_write(p[1], "z", 1), 1);
	pfd[0].revents = 0;
	CHECK_EQ(hs_poll(pfd, 1, -1), 1);
	CHECK(pfd[0].revents & POLLIN);

	/* A negative fd is ignored; a closed one is POLLNVAL. */
	if (!make_pipe(gone))
		return;
	close(gone[0]);
	close(gone[1]);
	pfd[0] = (struct pollfd){ .fd = -1, .events = POLLIN };
	pfd[1] = (struct pollfd){ .fd = gone[0], .events = POLLIN };
	CHECK_EQ(hs_poll(pfd, 2, 0), 1);
	CHECK_EQ(pfd[0].revents, 0);
	CHECK_EQ(pfd[1].revents, POLLNVAL);

	if (!under_valgrind)
		CHECK_FAILS(hs_poll((struct pollfd *)8, 1, 0), EFAULT);
	close(p[0]);
	close(p[1]);
}

static void test_nanosleep(void)
{
	struct timespec req = { 0, 20 * 1000 * 1000 }, rem = { 7, 7 };
	double t0;

	current = "nanosleep";
	t0 = now_sec();
	CHECK_EQ(hs_nanosleep(&req, &rem), 0);
	CHECK(now_sec() - t0 >= 0.019);
	CHECK_EQ(hs_nanosleep(&req, NULL), 0);
	req.tv_nsec = 1000 * 1000 * 1000;
	CHECK_FAILS(hs_nanosleep(&req, NULL), EINVAL);
	req = (struct timespec){ -1, 0 };
	CHECK_FAILS(hs_nanosleep(&req, &rem), EINVAL);
	if (!under_valgrind)
		CHECK_FAILS(hs_nanosleep((const struct timespec *)8, NULL),
			    EFAULT);
}

/* The permission bits of an open file, or -1. */
static int file_mode(int fd)
{
	struct stat st;

	if (fstat(fd, &st) != 0)
		return -1;
	return (int)(st.st_mode & 07777);
}

static void test_openat(void)
{
	char path[128];
	int fd, dfd;

	current = "openat";
	fd = hs_openat(AT_FDCWD, "/dev/null", O_RDONLY);
	CHECK(fd >= 0);
	if (fd >= 0) {
		CHECK(!cloexec(fd)); /* nothing added behind our back */
		close(fd);
	}
	fd = hs_openat(AT_FDCWD, "/dev/null", O_WRONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	if (fd >= 0) {
		CHECK(cloexec(fd));
		CHECK_EQ(hs_write(fd, "x", 1), 1);
		close(fd);
	}
	CHECK_FAILS(hs_openat(AT_FDCWD, "/nonexistent/hangsafe", O_RDONLY),
		    ENOENT);
	CHECK_FAILS(hs_openat(-1, "relative", O_RDONLY), EBADF);
	if (!under_valgrind)
		CHECK_FAILS(hs_openat(AT_FDCWD, (const char *)8, O_RDONLY),
			    EFAULT);

	/* O_CREAT takes the mode from the variable arguments. */
	path_in_tmp(path, sizeof(path), "created");
	fd = hs_openat(AT_FDCWD, path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	CHECK(fd >= 0);
	if (fd >= 0) {
		CHECK_EQ(file_mode(fd), 0600);
		close(fd);
	}
	CHECK_FAILS(hs_openat(AT_FDCWD, path, O_WRONLY | O_CREAT | O_EXCL,
			      0600),
		    EEXIST);

	/* Relative to a directory descriptor; O_DIRECTORY alone needs no mode. */
	dfd = hs_openat(AT_FDCWD, tmpdir, O_RDONLY | O_DIRECTORY);
	CHECK(dfd >= 0);
	if (dfd < 0)
		return;
	fd = hs_openat(dfd, "created2", O_RDWR | O_CREAT | O_EXCL, 0640);
	CHECK(fd >= 0);
	if (fd >= 0) {
		CHECK_EQ(file_mode(fd), 0640);
		close(fd);
	}
	fd = hs_openat(dfd, "created", O_RDONLY);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);

	/* The exported fixed-argument symbol behind hs_openat. */
	fd = hs_openat4(dfd, "created3", O_WRONLY | O_CREAT | O_EXCL, 0444);
	CHECK(fd >= 0);
	if (fd >= 0) {
		CHECK_EQ(file_mode(fd), 0444);
		close(fd);
	}

	/* O_TMPFILE also takes the mode (if the file system supports it). */
	fd = hs_openat(dfd, ".", O_TMPFILE | O_RDWR, 0604);
	if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR ||
		       errno == EINVAL)) {
		printf("O_TMPFILE not supported in %s: skipped\n", tmpdir);
	} else {
		CHECK(fd >= 0);
		if (fd >= 0) {
			CHECK_EQ(file_mode(fd), 0604);
			close(fd);
		}
	}
	close(dfd);
}

static void test_sockets(void)
{
	struct sockaddr_in sa, peer, gone;
	socklen_t len;
	char buf[8];
	int lfd, cfd, afd, fd;

	current = "accept4/connect";
	lfd = listener(&sa);
	if (lfd < 0)
		return;
	cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(cfd >= 0);
	CHECK_EQ(hs_connect(cfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	memset(&peer, 0, sizeof(peer));
	len = sizeof(peer);
	afd = hs_accept4(lfd, (struct sockaddr *)&peer, &len, SOCK_CLOEXEC);
	CHECK(afd >= 0);
	CHECK_EQ(len, sizeof(peer));
	CHECK_EQ(peer.sin_family, AF_INET);
	CHECK(peer.sin_addr.s_addr == htonl(INADDR_LOOPBACK));
	if (afd >= 0) {
		CHECK(cloexec(afd));
		CHECK_EQ(hs_write(cfd, "ping", 4), 4);
		CHECK_EQ(hs_read(afd, buf, sizeof(buf)), 4);
		CHECK(memcmp(buf, "ping", 4) == 0);
		close(afd);
	}
	close(cfd);

	/* No address wanted; the flags are the caller's. */
	cfd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK_EQ(hs_connect(cfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	afd = hs_accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
	CHECK(afd >= 0);
	if (afd >= 0) {
		CHECK(!cloexec(afd));
		CHECK(fcntl(afd, F_GETFL) & O_NONBLOCK);
		CHECK_FAILS(hs_read(afd, buf, sizeof(buf)), EAGAIN);
		close(afd);
	}
	close(cfd);

	/* Nothing pending on a non-blocking listener: EAGAIN. */
	CHECK_EQ(fcntl(lfd, F_SETFL, O_NONBLOCK), 0);
	CHECK_FAILS(hs_accept4(lfd, NULL, NULL, 0), EAGAIN);
	CHECK_FAILS(hs_accept4(-1, NULL, NULL, 0), EBADF);
	CHECK_FAILS(hs_accept4(lfd, NULL, NULL, -1), EINVAL);

	/* A port nobody listens on: ECONNREFUSED. */
	fd = listener(&gone);
	if (fd >= 0) {
		close(fd);
		cfd = socket(AF_INET, SOCK_STREAM, 0);
		CHECK_FAILS(hs_connect(cfd, (struct sockaddr *)&gone,
				       sizeof(gone)),
			    ECONNREFUSED);
		CHECK_FAILS(hs_connect(cfd, (struct sockaddr *)&gone, 1),
			    EINVAL);
		close(cfd);
	}
	CHECK_FAILS(hs_connect(-1, (struct sockaddr *)&sa, sizeof(sa)),
		    EBADF);
	close(lfd);
}

static void test_ioctl(void)
{
	struct winsize ws;
	int p[2], n = -1, one = 1;

	current = "ioctl";
	if (!make_pipe(p))
		return;
	CHECK_EQ(hs_write(p[1], "abc", 3), 3);
	CHECK_EQ(hs_ioctl(p[0], FIONREAD, &n), 0);
	CHECK_EQ(n, 3);
	n = -1;
	CHECK_EQ(hs_ioctl3(p[0], FIONREAD, &n), 0);
	CHECK_EQ(n, 3);

	/* Requests without an argument may leave it out. */
	CHECK_EQ(hs_ioctl(p[0], FIOCLEX), 0);
	CHECK(cloexec(p[0]));
	CHECK_EQ(hs_ioctl(p[0], FIONCLEX), 0);
	CHECK(!cloexec(p[0]));
	CHECK_EQ(hs_ioctl(p[0], FIONBIO, &one), 0);
	CHECK(fcntl(p[0], F_GETFL) & O_NONBLOCK);

	CHECK_FAILS(hs_ioctl(p[0], TIOCGWINSZ, &ws), ENOTTY);
	CHECK_FAILS(hs_ioctl(-1, FIONREAD, &n), EBADF);
	if (!under_valgrind)
		CHECK_FAILS(hs_ioctl(p[0], FIONREAD, (int *)8), EFAULT);
	close(p[0]);
	close(p[1]);
}

static void test_testcancel_outside(void)
{
	current = "testcancel outside a runner";
	errno = 4321;
	CHECK_EQ(hs_testcancel(), 0);
	CHECK_EQ(errno, 4321);
}

/* ---- EINTR from the program's own signal handler ------------------------ */

static int sig_pipe[2];			/* the handler writes here */
static atomic_int sig_count;		/* handler runs */

/* A SIGUSR1 handler installed without SA_RESTART; hs_write in a handler. */
static void on_usr1(int sig)
{
	int saved = errno;

	(void)sig;
	atomic_fetch_add(&sig_count, 1);
	(void)hs_write(sig_pipe[1], "s", 1);
	errno = saved;
}

static int install_usr1(void)
{
	struct sigaction sa;

	if (pipe2(sig_pipe, O_NONBLOCK | O_CLOEXEC) != 0)
		return 0;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: a blocked read gives EINTR */
	/* Left installed: a late SIGUSR1 must never kill the process. */
	return sigaction(SIGUSR1, &sa, NULL) == 0;
}

/* Sends SIGUSR1 to `t` every 20 ms until *flag is set or `secs` pass. */
static int poke_until(pthread_t t, atomic_int *flag, double secs)
{
	double end = now_sec() + secs;

	while (!atomic_load(flag) && now_sec() < end) {
		pthread_kill(t, SIGUSR1);
		sleep_ms(20);
	}
	return atomic_load(flag) != 0;
}

static int eintr_fd;			/* read end of a silent pipe */
static atomic_int eintr_done;
static atomic_long eintr_ret;
static atomic_int eintr_errno;

static void *eintr_thread(void *arg)
{
	char c;
	long r;

	(void)arg;
	r = (long)hs_read(eintr_fd, &c, 1);
	atomic_store(&eintr_errno, errno);
	atomic_store(&eintr_ret, r);
	atomic_store(&eintr_done, 1);
	return NULL;
}

static void test_eintr_outside(void)
{
	pthread_t t;
	char drain[64];
	int p[2];

	current = "EINTR outside a runner";
	if (!make_pipe(p))
		return;
	eintr_fd = p[0];
	atomic_store(&eintr_done, 0);
	CHECK_EQ(pthread_create(&t, NULL, eintr_thread, NULL), 0);
	CHECK(poke_until(t, &eintr_done, 10));
	pthread_join(t, NULL);
	CHECK_EQ(atomic_load(&eintr_ret), -1);
	CHECK_EQ(atomic_load(&eintr_errno), EINTR);
	/* The handler's own hs_write went through. */
	CHECK(atomic_load(&sig_count) >= 1);
	CHECK(read(sig_pipe[0], drain, sizeof(drain)) >= 1);
	close(p[0]);
	close(p[1]);
}

/* ---- Part two: inside runners --------------------------------------------- */

/* What a worker does. */
enum op {
	OP_READ,		/* hs_read on a silent pipe */
	OP_WRITE,		/* hs_write into a full pipe */
	OP_POLL,		/* hs_poll, infinite timeout, silent pipe */
	OP_NANOSLEEP,		/* hs_nanosleep of 10 s */
	OP_ACCEPT,		/* hs_accept4 on a listener nobody calls */
	OP_OPEN_FIFO,		/* hs_openat of a FIFO without a writer */
	OP_READ_AFTER_CANCEL,	/* wait for the cancel, then hs_read data */
	OP_READ_THEN_BLOCK,	/* hs_read present data, then a silent read */
	OP_READ_DONE,		/* hs_read present data, return it */
	OP_EINTR,		/* hs_nanosleep, then hs_read, under SIGUSR1 */
};

/* The runner's data. */
struct cjob {
	int op;
	int fd;
	char path[128];
	long ret;		/* OP_READ_DONE: hs_read's result */
	int err;		/* ... its errno */
	int tc;			/* ... hs_testcancel() after it */
	char data[16];		/* ... the bytes read */
};

/*
 * What the worker reports. Cancelled work produces no data for
 * check_runner(), so it reports through these (one worker at a time).
 */
static struct {
	atomic_int started;	/* the work function began */
	atomic_int reported;	/* the fields below are set */
	atomic_int go;		/* set by the test: the work may return */
	atomic_long ret;	/* the call's return value */
	atomic_int err;		/* ... and errno */
	atomic_int tc_ret;	/* hs_testcancel() afterwards */
	atomic_int tc_err;	/* ... and errno */
	atomic_long elapsed_us;	/* how long the call took */
	atomic_long tid;	/* the pool thread's kernel id */
	atomic_long first;	/* OP_READ_THEN_BLOCK: first read's result */
	atomic_int first_byte;	/* ... and the byte it read */
	atomic_int phase;	/* OP_EINTR: calls completed */
	atomic_long rem_ms;	/* OP_EINTR: the sleep's remainder */
	pthread_t thread;	/* OP_EINTR: for pthread_kill */
	atomic_int thread_set;
} W;

static void reset_worker(void)
{
	atomic_store(&W.started, 0);
	atomic_store(&W.reported, 0);
	atomic_store(&W.go, 0);
	atomic_store(&W.ret, -2);
	atomic_store(&W.err, 0);
	atomic_store(&W.tc_ret, -2);
	atomic_store(&W.tc_err, 0);
	atomic_store(&W.elapsed_us, -1);
	atomic_store(&W.tid, 0);
	atomic_store(&W.first, -2);
	atomic_store(&W.first_byte, 0);
	atomic_store(&W.phase, 0);
	atomic_store(&W.rem_ms, -1);
	atomic_store(&W.thread_set, 0);
}

/* The blocking call of `op`; sets *err to errno. */
static long blocking_call(struct cjob *j, int *err)
{
	static const struct timespec ten_s = { 10, 0 };
	char buf[16];
	struct pollfd pfd = { .fd = j->fd, .events = POLLIN };
	double end;
	long r = -2;

	errno = 0;
	switch (j->op) {
	case OP_READ:
		r = (long)hs_read(j->fd, buf, sizeof(buf));
		break;
	case OP_WRITE:
		r = (long)hs_write(j->fd, "w", 1);
		break;
	case OP_POLL:
		r = hs_poll(&pfd, 1, -1);
		break;
	case OP_NANOSLEEP:
		r = hs_nanosleep(&ten_s, NULL);
		break;
	case OP_ACCEPT:
		r = hs_accept4(j->fd, NULL, NULL, SOCK_CLOEXEC);
		break;
	case OP_OPEN_FIFO:
		r = hs_openat(AT_FDCWD, j->path, O_RDONLY | O_CLOEXEC);
		break;
	case OP_READ_AFTER_CANCEL:
		/* Ordinary code: the cancel only sets the runner's flag. */
		end = now_sec() + 10;
		while (hs_testcancel() == 0 && now_sec() < end)
			sleep_ms(1);
		errno = 0;
		/* Data is there, but the runner is cancelled: not read. */
		r = (long)hs_read(j->fd, buf, sizeof(buf));
		break;
	case OP_READ_THEN_BLOCK:
		r = (long)hs_read(j->fd, buf, 1);
		atomic_store(&W.first_byte, buf[0]);
		atomic_store(&W.first, r);
		errno = 0;
		r = (long)hs_read(j->fd, buf, 1); /* nothing more comes */
		break;
	default:
		break;
	}
	*err = errno;
	/* Should the call wrongly succeed, do not leak what it opened. */
	if (r >= 0 && (j->op == OP_ACCEPT || j->op == OP_OPEN_FIFO))
		close((int)r);
	return r;
}

static void cancel_worker(void *data)
{
	struct cjob *j = data;
	double t0 = now_sec();
	long r;
	int err;

	atomic_store(&W.tid, (long)syscall(SYS_gettid));
	atomic_store(&W.started, 1);
	r = blocking_call(j, &err);
	atomic_store(&W.elapsed_us, (long)((now_sec() - t0) * 1e6));
	atomic_store(&W.ret, r);
	atomic_store(&W.err, err);
	errno = 0;
	atomic_store(&W.tc_ret, hs_testcancel());
	atomic_store(&W.tc_err, errno);
	atomic_store(&W.reported, 1);
	/* Stay until the test has seen RUNNER_CANCELLED. */
	wait_flag(&W.go, 10);
}

/* Completed calls in a runner that is not cancelled. */
static void done_worker(void *data)
{
	struct cjob *j = data;

	atomic_store(&W.tid, (long)syscall(SYS_gettid));
	atomic_store(&W.started, 1);
	memset(j->data, 0, sizeof(j->data));
	errno = 0;
	j->ret = (long)hs_read(j->fd, j->data, sizeof(j->data));
	j->err = errno;
	j->tc = hs_testcancel();
}

/* Blocking calls a foreign signal interrupts, in a runner. */
static void eintr_worker(void *data)
{
	struct cjob *j = data;
	struct timespec req = { 10, 0 }, rem = { -1, -1 };
	sigset_t usr1;
	char c;

	/*
	 * Pool threads run work with every asynchronous signal blocked but
	 * the cancel signal; work that wants a signal unblocks it (the mask
	 * is reset before the thread's next job).
	 */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &usr1, NULL);
	W.thread = pthread_self();
	atomic_store(&W.thread_set, 1);
	atomic_store(&W.started, 1);
	errno = 0;
	atomic_store(&W.ret, hs_nanosleep(&req, &rem));
	atomic_store(&W.err, errno);
	atomic_store(&W.rem_ms, rem.tv_sec * 1000 + rem.tv_nsec / 1000000);
	atomic_store(&W.phase, 1);
	errno = 0;
	atomic_store(&W.first, (long)hs_read(j->fd, &c, 1));
	atomic_store(&W.first_byte, errno);
	errno = 0;
	atomic_store(&W.tc_ret, hs_testcancel());
	atomic_store(&W.tc_err, errno);
	atomic_store(&W.phase, 2);
}


/*
 * Waits until the previous runner's thread is back in the pool, so that the
 * next runner can reuse it; returns the metrics then.
 */
static void settle(struct hs_runner_metrics *m)
{
	CHECK(wait_settled(m, 15));
}

/* Polls check_runner until it returns something other than `from`. */
static int wait_leaves(struct runner_context *r, int from, double secs)
{
	double end = now_sec() + secs;
	int st;

	while ((st = check_runner(r, NULL, 0)) == from && now_sec() < end)
		sleep_ms(1);
	return st;
}

/* Kernel ids of the pool threads that ran this part's workers. */
static long tids[64];
static int n_tids;

static void note_tid(long tid)
{
	int i;

	if (tid == 0)
		return;
	for (i = 0; i < n_tids; i++)
		if (tids[i] == tid)
			return;
	if (n_tids < (int)(sizeof(tids) / sizeof(tids[0])))
		tids[n_tids++] = tid;
}

/* The runners' threads after each test: nothing abandoned, few threads. */
static void check_pool(unsigned long long abandoned_before)
{
	struct hs_runner_metrics m;

	CHECK(wait_settled(&m, 15));
	CHECK_EQ(m.threads_abandoned, 0);
	CHECK_EQ(m.abandoned_total, abandoned_before);
	CHECK(m.threads_alive <= 4);
}

/*
 * Starts cancel_worker on *j with a deadline of `timeout_usec`, and waits
 * until the work has reported or the runner ended without running it (the
 * deadline can pass before a slow machine starts the work; the runner is
 * then retried, a few times). Returns the handle, or NULL.
 */
static struct runner_context *start_reported(struct cjob *j,
					     unsigned long timeout_usec)
{
	int attempt;

	for (attempt = 0; attempt < 5; attempt++) {
		struct runner_context *r;
		double end = now_sec() + 15;
		int st = RUNNER_RUNNING;

		reset_worker();
		r = get_runner(cancel_worker, j, sizeof(*j), timeout_usec);
		CHECK(r != NULL);
		if (!r)
			return NULL;
		while (!atomic_load(&W.reported) && now_sec() < end) {
			st = check_runner(r, NULL, 0);
			if (st == RUNNER_DEAD && !atomic_load(&W.started))
				break;
			sleep_ms(1);
		}
		if (atomic_load(&W.reported))
			return r;
		release_runner(r);
		if (st != RUNNER_DEAD) {
			check_at(0, "the work reported in time", __FILE__,
				 __LINE__);
			atomic_store(&W.go, 1);
			return NULL;
		}
		printf("  [%s] the deadline passed before the work started; "
		       "retrying\n", current);
	}
	check_at(0, "the work started before its deadline", __FILE__,
		 __LINE__);
	return NULL;
}

/*
 * The work blocks in a call; a 50 ms deadline cancels the runner. The call
 * returns -1/ECANCELED promptly, hs_testcancel() then does too, the runner
 * is CANCELLED while the work has not returned and DEAD once it has, and
 * the thread goes back to the pool.
 */
static void expect_deadline_cancel(const char *what, struct cjob *j)
{
	struct hs_runner_metrics m0;
	struct runner_context *r;
	long us;

	current = what;
	settle(&m0);
	r = start_reported(j, 50 * 1000);
	if (!r)
		return;
	us = atomic_load(&W.elapsed_us);
	note_tid(atomic_load(&W.tid));
	CHECK_EQ(atomic_load(&W.ret), -1);
	CHECK_EQ(atomic_load(&W.err), ECANCELED);
	CHECK_EQ(atomic_load(&W.tc_ret), -1);
	CHECK_EQ(atomic_load(&W.tc_err), ECANCELED);
	CHECK(us >= 0 && us < 5 * 1000 * 1000); /* promptly, not after 10 s */
	/* The work has not returned yet: cancelled, not dead. */
	CHECK_EQ(check_runner(r, NULL, 0), RUNNER_CANCELLED);
	atomic_store(&W.go, 1);
	CHECK_EQ(wait_leaves(r, RUNNER_CANCELLED, 10), RUNNER_DEAD);
	CHECK_EQ(check_runner(r, NULL, 0), RUNNER_DEAD);
	release_runner(r);
	check_pool(m0.abandoned_total);
	printf("%s: ECANCELED after %.1f ms\n", what, us / 1000.0);
}

static void test_cancel_blocked_calls(void)
{
	struct sockaddr_in sa;
	struct cjob j;
	char chunk[4096];
	int p[2], n = 0, flags;

	/* hs_read on a pipe nobody writes to. */
	if (!make_pipe(p))
		return;
	memset(&j, 0, sizeof(j));
	j.op = OP_READ;
	j.fd = p[0];
	expect_deadline_cancel("hs_read cancelled by the deadline", &j);

	/* hs_poll, infinite timeout, same pipe. */
	j.op = OP_POLL;
	expect_deadline_cancel("hs_poll cancelled by the deadline", &j);

	/* Nothing was consumed: a byte written now is read whole. */
	CHECK_EQ(hs_write(p[1], "q", 1), 1);
	CHECK_EQ(hs_ioctl(p[0], FIONREAD, &n), 0);
	CHECK_EQ(n, 1);
	close(p[0]);
	close(p[1]);

	/* hs_write into a full pipe: nothing is written. */
	if (!make_pipe(p))
		return;
	memset(chunk, 'f', sizeof(chunk));
	flags = fcntl(p[1], F_GETFL);
	fcntl(p[1], F_SETFL, flags | O_NONBLOCK);
	while (write(p[1], chunk, sizeof(chunk)) > 0)
		;
	while (write(p[1], chunk, 1) > 0)
		;
	fcntl(p[1], F_SETFL, flags);
	CHECK_EQ(ioctl(p[0], FIONREAD, &n), 0);
	j.op = OP_WRITE;
	j.fd = p[1];
	{
		int before = n;

		expect_deadline_cancel("hs_write cancelled by the deadline",
				       &j);
		CHECK_EQ(ioctl(p[0], FIONREAD, &n), 0);
		CHECK_EQ(n, before);
	}
	close(p[0]);
	close(p[1]);

	/* hs_nanosleep of 10 s. */
	j.op = OP_NANOSLEEP;
	expect_deadline_cancel("hs_nanosleep cancelled by the deadline", &j);

	/* hs_accept4 on a listener nobody connects to. */
	j.fd = listener(&sa);
	if (j.fd >= 0) {
		int cfd, afd;

		j.op = OP_ACCEPT;
		expect_deadline_cancel("hs_accept4 cancelled by the deadline",
				       &j);
		/* The listener is intact: a connection made now is accepted. */
		cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		CHECK_EQ(hs_connect(cfd, (struct sockaddr *)&sa, sizeof(sa)),
			 0);
		afd = hs_accept4(j.fd, NULL, NULL, SOCK_CLOEXEC);
		CHECK(afd >= 0);
		if (afd >= 0)
			close(afd);
		close(cfd);
		close(j.fd);
	}

	/* hs_openat of a FIFO that nobody opens for writing. */
	path_in_tmp(j.path, sizeof(j.path), "fifo");
	CHECK_EQ(mkfifo(j.path, 0600), 0);
	j.op = OP_OPEN_FIFO;
	j.fd = -1;
	expect_deadline_cancel("hs_openat (FIFO) cancelled by the deadline",
			       &j);
}

/* release_runner() cancels a blocked call just like a deadline. */
static void test_cancel_by_release(void)
{
	struct hs_runner_metrics m0;
	struct runner_context *r;
	struct cjob j;
	int p[2];

	current = "hs_read cancelled by release_runner";
	if (!make_pipe(p))
		return;
	settle(&m0);
	memset(&j, 0, sizeof(j));
	j.op = OP_READ;
	j.fd = p[0];
	reset_worker();
	r = get_runner(cancel_worker, &j, sizeof(j), 0);
	CHECK(r != NULL);
	if (!r)
		return;
	CHECK(wait_flag(&W.started, 10));
	sleep_ms(20); /* let it block in the read */
	CHECK_EQ(check_runner(r, NULL, 0), RUNNER_RUNNING);
	release_runner(r);
	CHECK(wait_flag(&W.reported, 10));
	note_tid(atomic_load(&W.tid));
	CHECK_EQ(atomic_load(&W.ret), -1);
	CHECK_EQ(atomic_load(&W.err), ECANCELED);
	CHECK_EQ(atomic_load(&W.tc_ret), -1);
	CHECK_EQ(atomic_load(&W.tc_err), ECANCELED);
	atomic_store(&W.go, 1);
	check_pool(m0.abandoned_total);
	close(p[0]);
	close(p[1]);
}

/*
 * A call made after the cancel never reaches the kernel: the data it would
 * have read stays in the pipe.
 */
static void test_call_after_cancel(void)
{
	struct hs_runner_metrics m0;
	struct runner_context *r;
	struct cjob j;
	char buf[8] = { 0 };
	int p[2];

	current = "hs_read after the cancel";
	if (!make_pipe(p))
		return;
	CHECK_EQ(hs_write(p[1], "kept", 4), 4);
	settle(&m0);
	memset(&j, 0, sizeof(j));
	j.op = OP_READ_AFTER_CANCEL;
	j.fd = p[0];
	r = start_reported(&j, 50 * 1000);
	if (r) {
		note_tid(atomic_load(&W.tid));
		CHECK_EQ(atomic_load(&W.ret), -1);
		CHECK_EQ(atomic_load(&W.err), ECANCELED);
		CHECK_EQ(atomic_load(&W.tc_ret), -1);
		CHECK_EQ(check_runner(r, NULL, 0), RUNNER_CANCELLED);
		atomic_store(&W.go, 1);
		CHECK_EQ(wait_leaves(r, RUNNER_CANCELLED, 10), RUNNER_DEAD);
		release_runner(r);
		check_pool(m0.abandoned_total);
	}
	CHECK_EQ(hs_read(p[0], buf, sizeof(buf)), 4);
	CHECK(memcmp(buf, "kept", 4) == 0);
	close(p[0]);
	close(p[1]);
}

/*
 * A call that completed keeps its result: the first read gets the byte
 * that is there; the second one blocks and is cancelled.
 */
static void test_completed_then_cancelled(void)
{
	struct hs_runner_metrics m0;
	struct runner_context *r;
	struct cjob j;
	int p[2];

	current = "hs_read completed, then cancelled";
	if (!make_pipe(p))
		return;
	settle(&m0);
	memset(&j, 0, sizeof(j));
	j.op = OP_READ_THEN_BLOCK;
	j.fd = p[0];
	CHECK_EQ(hs_write(p[1], "A", 1), 1);
	r = start_reported(&j, 50 * 1000);
	if (r) {
		note_tid(atomic_load(&W.tid));
		CHECK_EQ(atomic_load(&W.first), 1);
		CHECK_EQ(atomic_load(&W.first_byte), 'A');
		CHECK_EQ(atomic_load(&W.ret), -1);
		CHECK_EQ(atomic_load(&W.err), ECANCELED);
		atomic_store(&W.go, 1);
		CHECK_EQ(wait_leaves(r, RUNNER_CANCELLED, 10), RUNNER_DEAD);
		release_runner(r);
		check_pool(m0.abandoned_total);
	}
	close(p[0]);
	close(p[1]);
}

/* A runner that is not cancelled: its read completes, data comes out. */
static void test_completed_in_runner(void)
{
	struct hs_runner_metrics m;
	struct runner_context *r;
	struct cjob j, out;
	int p[2];

	current = "hs_read completed in a runner";
	settle(&m);
	if (!make_pipe(p))
		return;
	CHECK_EQ(hs_write(p[1], "payload", 7), 7);
	memset(&j, 0, sizeof(j));
	j.op = OP_READ_DONE;
	j.fd = p[0];
	reset_worker();
	r = get_runner(done_worker, &j, sizeof(j), 10 * 1000 * 1000);
	CHECK(r != NULL);
	if (r) {
		CHECK_EQ(wait_leaves(r, RUNNER_RUNNING, 10), RUNNER_DONE);
		memset(&out, 0, sizeof(out));
		CHECK_EQ(check_runner(r, &out, sizeof(out)), RUNNER_DONE);
		CHECK_EQ(out.ret, 7);
		CHECK(memcmp(out.data, "payload", 7) == 0);
		CHECK_EQ(out.tc, 0);
		note_tid(atomic_load(&W.tid));
		release_runner(r);
	}
	close(p[0]);
	close(p[1]);
}

/* Sends SIGUSR1 to `t` every 20 ms until W.phase reaches `phase`. */
static int poke_phase(pthread_t t, int phase, double secs)
{
	double end = now_sec() + secs;

	while (atomic_load(&W.phase) < phase && now_sec() < end) {
		pthread_kill(t, SIGUSR1);
		sleep_ms(20);
	}
	return atomic_load(&W.phase) >= phase;
}

/*
 * In a runner that is not cancelled, a foreign signal still gives EINTR
 * (with the time left for nanosleep), exactly as libc would.
 */
static void test_eintr_in_runner(void)
{
	struct hs_runner_metrics m;
	struct runner_context *r;
	struct cjob j;
	long rem;
	int p[2];

	current = "EINTR in a runner";
	settle(&m);
	if (!make_pipe(p))
		return;
	memset(&j, 0, sizeof(j));
	j.op = OP_EINTR;
	j.fd = p[0];
	reset_worker();
	r = get_runner(eintr_worker, &j, sizeof(j), 60 * 1000 * 1000);
	CHECK(r != NULL);
	if (!r)
		return;
	CHECK(wait_flag(&W.thread_set, 10));
	if (atomic_load(&W.thread_set)) {
		CHECK(poke_phase(W.thread, 1, 10)); /* the nanosleep */
		CHECK(poke_phase(W.thread, 2, 10)); /* the read */
	}
	CHECK_EQ(atomic_load(&W.ret), -1);
	CHECK_EQ(atomic_load(&W.err), EINTR);
	rem = atomic_load(&W.rem_ms);
	CHECK(rem > 0 && rem <= 10 * 1000);
	CHECK_EQ(atomic_load(&W.first), -1);
	CHECK_EQ(atomic_load(&W.first_byte), EINTR); /* hs_read's errno */
	CHECK_EQ(atomic_load(&W.tc_ret), 0);
	CHECK_EQ(wait_leaves(r, RUNNER_RUNNING, 10), RUNNER_DONE);
	release_runner(r);
	close(p[0]);
	close(p[1]);
}

/* The threads of the runners above were reused, and are idle again. */
static void test_threads_reused(void)
{
	struct hs_runner_metrics m;

	current = "pool threads reused";
	CHECK(wait_settled(&m, 15));
	printf("pool: %d distinct threads ran the runners; alive %llu, "
	       "idle %llu, abandoned %llu (total %llu), cancelled %llu\n",
	       n_tids, (unsigned long long)m.threads_alive,
	       (unsigned long long)m.threads_idle,
	       (unsigned long long)m.threads_abandoned,
	       (unsigned long long)m.abandoned_total,
	       (unsigned long long)m.runners_cancelled);
	CHECK(n_tids >= 1 && n_tids <= 2);
	CHECK_EQ(m.threads_abandoned, 0);
	CHECK_EQ(m.abandoned_total, 0);
	CHECK(m.threads_alive <= 4);
	CHECK_EQ(m.threads_alive, m.threads_idle);
	CHECK_EQ(m.live_contexts, 0);
	CHECK(m.runners_cancelled >= 9);
	CHECK_EQ(m.runners_done + m.runners_dead, m.runners_spawned);
}

static void cleanup_tmp(void)
{
	static const char *const names[] = { "created", "created2",
					     "created3", "fifo" };
	char path[128];
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		path_in_tmp(path, sizeof(path), names[i]);
		unlink(path);
	}
	rmdir(tmpdir);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("hangsafe %s: cancellable system calls\n", hs_version());
	under_valgrind = getenv("HANGSAFE_TEST_VALGRIND") != NULL;
	signal(SIGPIPE, SIG_IGN);
	umask(022);
	strcpy(tmpdir, "/tmp/hangsafe-cancel-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	if (!install_usr1()) {
		perror("SIGUSR1");
		return 1;
	}

	test_read_write();
	test_poll();
	test_nanosleep();
	test_openat();
	test_sockets();
	test_ioctl();
	test_testcancel_outside();
	test_eintr_outside();

	test_completed_in_runner();
	test_cancel_blocked_calls();
	test_cancel_by_release();
	test_call_after_cancel();
	test_completed_then_cancelled();
	test_eintr_in_runner();
	test_completed_in_runner();
	test_threads_reused();

	cleanup_tmp();
	return harness_summary();
}

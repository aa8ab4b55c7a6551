/*
 * client.c - a C program that uses the installed library the way a
 * distribution's user does: headers and flags from pkg-config only.
 *
 *   cc client.c -o client $(pkg-config --cflags --libs hangsafe)
 *   cc client.c -o client-static \
 *       $(pkg-config --static --cflags --libs hangsafe | sed 's/-lhangsafe/-l:libhangsafe.a/')
 *
 * It routes the library's messages into a condlog()-like logger, as
 * multipathd would, runs a check that finishes and one that hangs past its
 * deadline, and exits 0 if both behaved. .ci/run builds and runs it
 * against a temporary prefix (crates/hangsafe-capi/install-test.sh).
 */
#include <runner.h>			/* the multipath-tools drop-in */
#include <hangsafe/hangsafe.h>		/* hs_* (works too: <hangsafe.h>) */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

/* A stand-in for multipath-tools' condlog(verbosity, fmt, ...). */
static int verbosity = 2;
static int logged;

static void condlog(int prio, const char *fmt, ...)
{
	va_list ap;

	logged++;
	if (prio > verbosity)
		return;
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
}

/* hangsafe's syslog priorities to condlog's verbosity levels. */
static void hangsafe_to_condlog(int priority, const char *msg, void *arg)
{
	(void)arg;
	condlog(priority <= LOG_WARNING ? 2 : priority == LOG_INFO ? 3 : 4,
		"%s", msg);
}

struct check { int fd; int result; };

/* A path checker's work: wait for the device (here: a pipe) to answer. */
static void check_path(void *p)
{
	struct check *c = p;
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };

	/* hs_poll() fails with ECANCELED at the runner's deadline. */
	c->result = hs_poll(&pfd, 1, -1) == 1 ? 0 : errno;
}

/* Polls a runner until it leaves RUNNER_RUNNING (at most 10 s). */
static int wait_runner(struct runner_context *r, struct check *out)
{
	int state = RUNNER_RUNNING;

	for (int i = 0; i < 1000 && state == RUNNER_RUNNING; i++) {
		state = check_runner(r, out, sizeof(*out));
		if (state == RUNNER_RUNNING)
			usleep(10000);
	}
	return state;
}

int main(void)
{
	int ok = 1, up[2], hung[2];

	hs_set_log_callback(hangsafe_to_condlog, NULL);	/* first */
	printf("hangsafe %s\n", hs_version());
	if (pipe(up) || pipe(hung))
		return 2;
	if (write(up[1], "x", 1) != 1)	/* this "device" answers */
		return 2;

	struct check in = { .fd = up[0] }, out = { .result = -1 };
	struct runner_context *r = get_runner(check_path, &in, sizeof(in),
					      2000000);
	int state = r ? wait_runner(r, &out) : -1;
	printf("answering path: %s, result %d\n", runner_state_name(state),
	       out.result);
	ok &= state == RUNNER_DONE && out.result == 0;
	release_runner(r);

	in.fd = hung[0];	/* nobody ever writes: the check hangs */
	r = get_runner(check_path, &in, sizeof(in), 100000 /* 100 ms */);
	state = r ? wait_runner(r, &out) : -1;
	printf("hung path: %s\n", runner_state_name(state));
	ok &= state == RUNNER_CANCELLED || state == RUNNER_DEAD;
	release_runner(r);

	/* A refused call: its error goes to condlog, not stderr. */
	ok &= get_runner(NULL, &in, sizeof(in), 0) == NULL && errno == EINVAL;
	ok &= logged >= 1;

	puts(ok ? "client: 1 passed, 0 failed" : "client: 0 passed, 1 failed");
	return ok ? 0 : 1;
}

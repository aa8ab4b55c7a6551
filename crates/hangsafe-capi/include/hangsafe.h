/*
 * hangsafe.h - the C API of hangsafe (libhangsafe.so / libhangsafe.a).
 *
 * hangsafe supervises work that may hang: it runs it on pooled, detached
 * threads with deadlines, and lets the caller give up on it at any moment
 * without blocking, leaking or racing.
 *
 * This header includes runner.h (the multipath-tools compatible runner
 * API) and adds hangsafe's own functions, all prefixed hs_: version,
 * runner pool metrics, logging to the application's logger, cancellable
 * versions of common blocking system calls for work run by a runner,
 * runner sets (many runners behind one fd), examining what a runner's work
 * published, and a robust process-shared mutex.
 * Functions that can fail return -1 (or NULL) and set errno, unless
 * documented otherwise (the robust mutex functions return an error number,
 * as pthread does).
 *
 * Compatibility: a struct declared here only ever grows at its end, and a
 * function that fills one is never changed to fill a larger one; a larger
 * struct comes with a new function.
 */
#ifndef HANGSAFE_H_INCLUDED
#define HANGSAFE_H_INCLUDED

#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

#include "runner.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Version ---------------------------------------------------------- */

/* The version of this header. */
#define HANGSAFE_VERSION_MAJOR 0
#define HANGSAFE_VERSION_MINOR 1
#define HANGSAFE_VERSION_PATCH 0

/*
 * hs_version - the version of the library actually loaded, as
 * "MAJOR.MINOR.PATCH". The string is static: do not modify or free it.
 * Compare with the HANGSAFE_VERSION_* macros to detect a header/library
 * mismatch.
 */
const char *hs_version(void);

/* ---- Runner pool metrics ---------------------------------------------- */

/*
 * A snapshot of the runner pool's counters. The "threads_*" fields and
 * live_contexts are current values; the others count since the process
 * started using the library. Each field is exact on its own, but the
 * fields are not read at one single instant.
 */
struct hs_runner_metrics {
	uint64_t threads_alive;		/* pool threads that exist, including
					   abandoned ones */
	uint64_t threads_idle;		/* threads waiting for work */
	uint64_t threads_running;	/* threads not idle: running work
					   (abandoned ones included) or
					   between two jobs; always
					   threads_alive - threads_idle */
	uint64_t threads_abandoned;	/* threads still in work that was
					   cancelled a while ago (hung) */
	uint64_t abandoned_total;	/* threads ever counted as abandoned */
	uint64_t runners_spawned;	/* runners started */
	uint64_t runners_done;		/* runners that ended RUNNER_DONE */
	uint64_t runners_cancelled;	/* runners a timeout or release
					   cancelled while running */
	uint64_t runners_dead;		/* runners that ended RUNNER_DEAD */
	uint64_t runners_panicked;	/* runners whose (Rust) work panicked */
	uint64_t live_contexts;		/* runners whose handle or work still
					   exists */
};

/*
 * hs_runner_metrics - fill *out with a snapshot of the runner pool's
 * counters. Cheap (a few atomic loads) and never blocks.
 *
 * Returns 0, or -1 with errno set to EINVAL if out is NULL.
 */
int hs_runner_metrics(struct hs_runner_metrics *out);

/* ---- Logging ------------------------------------------------------------ */

/*
 * By default the library writes each diagnostic as one line on stderr,
 * "hangsafe: <level>: <message>", at the level that the environment
 * variable HANGSAFE_LOG selects (off, error, warn (the default), info,
 * debug, trace). A daemon routes them to its own logger instead:
 *
 *	static void to_condlog(int prio, const char *msg, void *arg)
 *	{
 *		(void)arg;
 *		condlog(prio == LOG_DEBUG ? 4 : 2, "%s", msg);
 *	}
 *	...
 *	hs_set_log_callback(to_condlog, NULL);	// first, before other calls
 *	hs_set_log_level(LOG_INFO);		// optional
 *
 * Priorities are syslog's (<syslog.h>): errors LOG_ERR (3), warnings
 * LOG_WARNING (4), information LOG_INFO (6), debug and trace LOG_DEBUG
 * (7). msg is one line without a trailing newline, starting "hangsafe: ";
 * it is valid only during the call.
 *
 * Repeats: identical messages (same priority and text) are rate-limited
 * for every destination: the first is delivered, the following ones are
 * counted for 5 seconds, and the next message after that is preceded by
 * one "hangsafe: last message repeated N times: <message>". Bounded
 * memory; a thread never waits for another to decide.
 */

/* The log callback: see hs_set_log_callback(). */
typedef void (*hs_log_fn)(int priority, const char *msg, void *arg);

/*
 * hs_set_log_callback - deliver every message of the library to fn(...,
 * arg) instead of stderr; fn NULL restores stderr.
 *
 * fn may be called from any thread, including the library's own pool and
 * timer threads, and from several threads at once. It should be quick and
 * must not throw (C++) or longjmp out. Messages produced by hangsafe calls
 * that fn itself makes are dropped (never delivered recursively).
 *
 * Guarantee: once hs_set_log_callback() returns 0, no call of the previous
 * callback is running on any thread and none will start, so the previous
 * arg may be freed. To give it, hs_set_log_callback() waits for calls of
 * the previous callback that are in progress: do not call it while holding
 * a lock that the callback takes.
 *
 * Call it first (before any other function of the library), so that even
 * a complaint about HANGSAFE_LOG reaches fn.
 *
 * Returns 0, or -1 with errno set:
 *   EDEADLK  called from inside the callback (nothing changed);
 *   ENOTSUP  the process has its own Rust `log` logger, which keeps
 *            receiving the messages (the callback is stored but unused).
 */
int hs_set_log_callback(hs_log_fn fn, void *arg);

/*
 * hs_set_log_level - deliver messages of priority `priority` and more
 * severe: LOG_ERR, LOG_WARNING (LOG_NOTICE is the same here), LOG_INFO or
 * LOG_DEBUG; LOG_EMERG, LOG_ALERT and LOG_CRIT silence the library (it
 * logs nothing more severe than LOG_ERR). Overrides HANGSAFE_LOG.
 *
 * Returns 0, or -1 with errno set to EINVAL for a value outside 0..7, or
 * ENOTSUP as for hs_set_log_callback().
 */
int hs_set_log_level(int priority);

/* ---- Cancellable system calls ------------------------------------------ */

/*
 * Blocking calls that a runner's cancel can interrupt.
 *
 * Work started by get_runner() may block in the kernel for ever: a read
 * from a device that never answers, an accept on a socket nobody connects
 * to, an open of a FIFO nobody opens for writing. With the plain libc calls
 * such work keeps its pool thread until the call returns by itself. Made
 * through the functions below instead, the call fails as soon as the
 * runner is cancelled (deadline passed, or release_runner() called), and
 * the work can clean up and return, giving its thread back to the pool.
 *
 * Each function has the prototype and the behaviour of the libc call it is
 * named after, plus one rule:
 *
 *   On a thread running the work of a runner that has been cancelled, a
 *   call that has not taken effect returns -1 with errno set to ECANCELED.
 *
 * "Has not taken effect" covers a call made after the cancel (it never
 * reaches the kernel) and a call that was blocked in the kernel without
 * having done anything. A call that did take effect keeps its result even
 * if the cancel arrived a moment later: bytes read or written, a connection
 * accepted, a descriptor opened are returned, never lost or leaked. The
 * cancel then shows at the next of these calls or at hs_testcancel(). So
 * ECANCELED means "nothing happened, stop now": there is nothing to undo
 * (but see hs_connect below).
 *
 * In every other case the result is the system call's own: its return
 * value and errno. A signal handler of the program that interrupts a call
 * the kernel does not restart gives EINTR, exactly as with libc (there is
 * no retry). On a thread that is not running a runner's work, each
 * function is simply the system call. Pointers are handed to the kernel as
 * they are; a bad one gives EFAULT, as with libc.
 *
 * Two calls have a caveat:
 *   hs_connect    as with connect(2), a blocking connect interrupted while
 *                 the handshake is under way (by EINTR, or here also by
 *                 ECANCELED) may still complete in the background; close
 *                 the socket rather than reuse it.
 *   hs_nanosleep  after ECANCELED the contents of *rem are unspecified.
 *
 * These functions allocate nothing and take no lock: they may be called
 * from a signal handler wherever the libc call may be.
 *
 * A blocked call is interrupted with a real-time signal, SIGRTMIN+4 by
 * default (the environment variable HANGSAFE_CANCEL_SIGNAL selects another:
 * "RTMIN+k", "RTMAX-k", either with a "SIG" prefix, or a number). The
 * program must not use that signal itself. If it is unavailable, switched
 * off with HANGSAFE_CANCEL_SIGNAL=off, or the variable is not understood
 * (logged as an error; the default is then not used either), a cancel still
 * makes every later call fail with ECANCELED, but does not interrupt one
 * that is already blocked. The same holds from the moment the program
 * resets the signal to SIG_DFL or installs its own handler on it: the
 * library checks the disposition before each cancel and never sends the
 * signal to a handler that is not its own (an error is logged once).
 *
 * Signals and threads: the library's own threads block every asynchronous
 * signal but the cancel signal (work functions included; work that wants a
 * signal unblocks it, and the mask is reset before each job). Only the
 * hs_* calls above are async-signal-safe; hs_version(), get_runner(),
 * check_runner(), release_runner() and hs_runner_metrics() are not. See
 * runner.h for fork() and exit().
 */

/* read(2): bytes read, 0 at end of file, or -1 with errno set. */
ssize_t hs_read(int fd, void *buf, size_t count);

/* write(2): bytes written, or -1 with errno set. */
ssize_t hs_write(int fd, const void *buf, size_t count);

/*
 * poll(2): the number of entries of fds with events, 0 when timeout (in
 * milliseconds) expired, or -1 with errno set. A negative timeout waits
 * for ever. (Implemented with the ppoll system call.)
 */
int hs_poll(struct pollfd *fds, nfds_t nfds, int timeout);

/* Declared here too, for compilations in strict ISO C99 mode. */
struct timespec;

/*
 * nanosleep(2): 0 after the whole sleep, or -1 with errno set; after EINTR
 * the time left is stored in *rem unless rem is NULL.
 */
int hs_nanosleep(const struct timespec *req, struct timespec *rem);

/* accept4(2): the new connection's descriptor, or -1 with errno set. */
int hs_accept4(int sockfd, struct sockaddr *addr, socklen_t *addrlen,
	       int flags);

/* connect(2): 0, or -1 with errno set (see the caveat above). */
int hs_connect(int sockfd, const struct sockaddr *addr, socklen_t addrlen);

/*
 * hs_testcancel - a cancellation point that makes no system call.
 *
 * Returns -1 with errno set to ECANCELED if the calling thread runs the
 * work of a runner that has been cancelled, and 0 otherwise (always 0 on a
 * thread that is not running a runner's work). Useful in loops that
 * compute between calls.
 */
int hs_testcancel(void);

/*
 * openat and ioctl are variadic in libc. The library cannot export a
 * variadic function (it is written in a language that has no stable way
 * to define one), so it exports fixed-argument versions, hs_openat4() and
 * hs_ioctl3(), and this header turns them into the variadic hs_openat()
 * and hs_ioctl() with small static inline functions. C and C++ callers use
 * hs_openat() and hs_ioctl() exactly like openat() and ioctl(); bindings
 * from other languages (or dlsym()) call hs_openat4() and hs_ioctl3().
 */

/*
 * hs_openat4 - openat(2) with the mode always given: the new descriptor,
 * or -1 with errno set. mode is used only when flags contain O_CREAT or
 * O_TMPFILE (the kernel ignores it otherwise). No flag is added: in
 * particular the descriptor is close-on-exec only if flags ask for it.
 */
int hs_openat4(int dirfd, const char *pathname, int flags, mode_t mode);

/*
 * hs_ioctl3 - ioctl(2) with its argument always given: the request's
 * (non-negative) result, or -1 with errno set.
 */
int hs_ioctl3(int fd, unsigned long request, void *arg);

/*
 * HS_OPEN_NEEDS_MODE(flags) - whether openat() takes a mode with these
 * flags: O_CREAT is set, or all the bits of O_TMPFILE are (O_TMPFILE
 * includes O_DIRECTORY, which alone needs no mode). This is the rule of
 * glibc and musl. glibc defines O_TMPFILE only for _GNU_SOURCE but always
 * defines its value as __O_TMPFILE, which is used without it.
 */
#if defined(O_TMPFILE)
#define HS_OPEN_NEEDS_MODE(flags) \
	(((flags) & O_CREAT) != 0 || ((flags) & O_TMPFILE) == O_TMPFILE)
#elif defined(__O_TMPFILE)
#define HS_OPEN_NEEDS_MODE(flags) \
	(((flags) & O_CREAT) != 0 || ((flags) & __O_TMPFILE) == __O_TMPFILE)
#else
#define HS_OPEN_NEEDS_MODE(flags) (((flags) & O_CREAT) != 0)
#endif

/*
 * hs_openat - openat(2): the new descriptor, or -1 with errno set.
 *
 * As in libc, the mode_t argument after flags is read only when
 * HS_OPEN_NEEDS_MODE(flags); otherwise it may be left out, and 0 is passed
 * on (the kernel ignores the mode then).
 */
static inline int hs_openat(int dirfd, const char *pathname, int flags, ...)
{
	mode_t mode = 0;

	if (HS_OPEN_NEEDS_MODE(flags)) {
		va_list ap;

		va_start(ap, flags);
		mode = va_arg(ap, mode_t);
		va_end(ap);
	}
	return hs_openat4(dirfd, pathname, flags, mode);
}

/*
 * hs_ioctl - ioctl(2): the request's (non-negative) result, or -1 with
 * errno set.
 *
 * Exactly as glibc's and musl's ioctl(), this reads one pointer-sized
 * argument after request, whatever the request, and passes it on: libc
 * does not know which requests take an argument, the driver does. For a
 * request without one, the value read is unspecified and the driver
 * ignores it (on x86_64 and aarch64 Linux, the only platforms hangsafe
 * supports, reading it is harmless: it comes from a register save slot or
 * stack slot that always exists). An int argument passed by value arrives
 * as a pointer-sized value whose low 32 bits are the int, as with libc.
 */
static inline int hs_ioctl(int fd, unsigned long request, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	return hs_ioctl3(fd, request, arg);
}

/* ---- Runner sets: many runners behind one fd --------------------------- */

/*
 * A set runs many runners (work functions as for get_runner()) and tells
 * the application through one file descriptor when any of them is decided:
 * a checker loop over hundreds of paths needs one poll() entry, not one
 * check_runner() call per path.
 *
 *	hs_set *set = hs_set_new();
 *	for (i = 0; i < n; i++)
 *		tok[i] = hs_set_spawn(set, probe, &path[i], sizeof(path[i]),
 *				      timeout_usec);
 *	for (;;) {
 *		struct pollfd p = { hs_set_fd(set), POLLIN, 0 };
 *
 *		poll(&p, 1, hs_set_timeout_ms(set));
 *		hs_set_drain(set, on_outcome, ctx);	// may respawn
 *	}
 *
 * Tokens are generational: a token names one runner for as long as it is
 * in the set (until its outcome was delivered, or it was released) and
 * nothing ever after; 0 is never a token. Every function below answers a
 * token that is not (or no longer) in the set with ESTALE, whatever its
 * value. Key the program's own per-runner records by the whole token:
 * the slot a delivered runner occupied (the token's low 32 bits) may serve
 * a new runner, under a new generation, while the same drain is still
 * delivering older outcomes.
 *
 * Locking and re-entrancy: all functions may be called from any thread.
 * hs_set_drain() calls its callback with no lock held: the callback may
 * call hs_set_spawn(), hs_set_cancel(), hs_set_release() and
 * hs_set_examine() on the same set (a checker loop respawns from it).
 * From inside a drain callback, hs_set_drain() and hs_set_free() of that
 * same set fail with EDEADLK (hs_set_free() sets errno and frees nothing).
 * From inside an event-loop hook (struct hs_osevent_hooks), every hs_set_*
 * call fails with EDEADLK. None of these functions is async-signal-safe.
 *
 * Deadlines use CLOCK_MONOTONIC. A runner that times out or is cancelled
 * is delivered RUNNER_DEAD; its work is cancelled as with
 * release_runner() (the hs_* cancellable calls fail with ECANCELED).
 */
typedef struct hs_set hs_set;

/* A generational token; never 0. */
typedef uint64_t hs_token;

/*
 * hs_set_new - an empty set. NULL with errno set on failure (EMFILE,
 * ENFILE, ENOMEM: no eventfd or memory).
 */
hs_set *hs_set_new(void);

/*
 * hs_set_free - free the set: every runner still in it is released
 * (cancelled if running; nothing more is delivered for it), and so are
 * outcomes not delivered yet. Never blocks. NULL is ignored. No other
 * thread may use the set during or after the call. From inside a drain
 * callback of this set, or a hook, nothing is freed and errno is EDEADLK.
 */
void hs_set_free(hs_set *set);

/*
 * hs_set_fd - the set's file descriptor, readable (POLLIN) while an
 * outcome waits to be drained (and, rarely, spuriously). Owned by the set:
 * do not read, close or change it. -1 with EINVAL for NULL.
 */
int hs_set_fd(const hs_set *set);

/*
 * hs_set_timeout_ms - milliseconds until the earliest deadline of a
 * running runner, rounded up (0 if one is due; at most INT_MAX), or -1 if
 * none: pass it to poll() as the timeout, then call hs_set_drain() (which
 * applies due deadlines). Also -1 with errno set for a NULL set (EINVAL)
 * or a call from inside a hook (EDEADLK); set errno to 0 before the call
 * to tell these apart from "no deadline".
 */
int hs_set_timeout_ms(const hs_set *set);

/*
 * hs_set_spawn - start func on a private copy of size bytes at data, as
 * get_runner() does, cancelled timeout_usec microseconds from now (0:
 * never; values too large for the clock mean "never" too), and add it to
 * the set. data is only read during the call.
 *
 * Returns the runner's token, or 0 with errno set:
 *   EINVAL   set, func or data is NULL, or size is 0;
 *   ENOMEM   the copy of data cannot be allocated;
 *   EAGAIN   no thread is available (or the OS's code for it);
 *   ENOSPC   the set has no token left;
 *   EDEADLK  called from inside a hook.
 */
hs_token hs_set_spawn(hs_set *set, runner_func func, const void *data,
		      unsigned int size, unsigned long timeout_usec);

/*
 * hs_set_cancel - cancel a runner: if its work still runs, it is delivered
 * RUNNER_DEAD by a later hs_set_drain(); if it is decided already, nothing
 * changes. Returns 0, or -1 with errno set: ESTALE (token not, or no
 * longer, in the set), EINVAL (set NULL), EDEADLK (inside a hook).
 */
int hs_set_cancel(hs_set *set, hs_token token);

/*
 * hs_set_release - take a runner out of the set: it is cancelled if it
 * still runs, its token becomes stale, and no outcome is ever delivered
 * for it, even one that a drain running on another thread (or the drain
 * whose callback is calling this) has already taken and not delivered yet.
 * Never blocks. Returns 0, or -1 with errno set as hs_set_cancel().
 */
int hs_set_release(hs_set *set, hs_token token);

/*
 * The drain callback: token's runner is decided. state is RUNNER_DONE,
 * with data and size the work's copy of the data (valid during the call
 * only; read-only), or RUNNER_DEAD with data NULL and size 0 (it timed
 * out, was cancelled, or the work ended without a result). The token is
 * stale from the call on.
 */
typedef void (*hs_outcome_fn)(void *arg, hs_token token, int state,
			      const void *data, unsigned int size);

/*
 * hs_set_drain - apply due deadlines, then call fn(arg, ...) once per
 * decided runner, never twice for one and never for a released one.
 * Returns how many calls were made (0 if none), or -1 with errno set:
 * EINVAL (set or fn NULL), EDEADLK (inside a hook, or inside a drain
 * callback of this set). Never blocks (but for fn's own time).
 *
 * fn runs on the calling thread with no lock of the set held; it may call
 * hs_set_spawn(), hs_set_cancel(), hs_set_release() and hs_set_examine()
 * on this set. It must return normally (no longjmp(), no C++ exception).
 * Several threads may drain one set at once; each outcome is delivered by
 * one of them.
 */
int hs_set_drain(hs_set *set, hs_outcome_fn fn, void *arg);

/* ---- Examine: a worker publishes, anyone snapshots ---------------------- */

/*
 * A work function publishes a small state (its phase, a sector number...)
 * with hs_publish(); any thread takes a consistent copy with
 * hs_runner_examine() or hs_set_examine() while the work runs, to see what
 * a hung probe is doing. A copy is always the bytes of one single publish,
 * never a mix of two (a sequence lock; publishing never waits for
 * readers). Once the work has ended, the answer is ESRCH: the bytes are
 * gone, never stale. A runner that was cancelled but whose work still runs
 * (a hung probe) can still be examined.
 */

/* The most bytes one hs_publish() carries. */
#define HS_PUBLISH_MAX 48

/*
 * hs_publish - from inside a work function (get_runner(), hs_set_spawn()):
 * publish size bytes at data, replacing what was published before. Never
 * blocks, allocates nothing. Not async-signal-safe (do not call it from a
 * signal handler).
 *
 * Returns 0, or -1 with errno set:
 *   EINVAL  data is NULL, or size is 0 or above HS_PUBLISH_MAX;
 *   EPERM   not called from a work function on a runner's thread.
 */
int hs_publish(const void *data, unsigned int size);

/*
 * hs_runner_examine - copy what r's work last published into out: its
 * first size bytes, and zeros for the rest of out if size is larger than
 * what was published. r is a handle from get_runner(), not released.
 *
 * Returns 0, or -1 with errno set:
 *   EINVAL   r or out is NULL, or size is 0;
 *   EAGAIN   the work kept publishing during the call; retry;
 *   ESRCH    the work has ended (it will never publish again);
 *   ENODATA  the work has not published anything yet.
 */
int hs_runner_examine(struct runner_context *r, void *out, unsigned int size);

/*
 * hs_set_examine - hs_runner_examine() for the runner token of set.
 * Returns what hs_runner_examine() returns, plus ESTALE (token not in the
 * set: never issued, released, or its outcome delivered) and EDEADLK
 * (inside a hook). A release during the call gives ESRCH.
 */
int hs_set_examine(hs_set *set, hs_token token, void *out, unsigned int size);

/* ---- Event-loop hooks: the application owns the loop (libxl style) ------ */

/*
 * Instead of polling hs_set_fd() and hs_set_timeout_ms() itself, an
 * application with its own event loop (libvirt's, GLib's, libuv's...) can
 * attach a set to it: the set registers its fd and its earliest deadline
 * through the application's hooks and keeps them up to date; the loop
 * calls hs_osevent_occurred_fd() / hs_osevent_occurred_timeout() when
 * something happens, and then hs_set_drain(). This is the contract of
 * libxl's libxl_osevent_hooks (with its final timeout rule), with two
 * differences: timeouts are CLOCK_MONOTONIC (libxl: the wall clock, which
 * jumps), and for_hs is a generational token cast to void *, never a
 * pointer: hangsafe never dereferences it.
 *
 * The hooks:
 *
 *  - Are called one at a time (serialised, never one from inside another),
 *    on whatever thread calls into the set (hs_set_attach, hs_set_spawn,
 *    hs_set_drain, an occurred call, hs_set_detach, hs_set_free), with the
 *    set's locks held. A hook must not block, and must not call into any
 *    set: every hs_set_* and hs_osevent_* call from inside a hook fails
 *    with EDEADLK (hs_set_free() frees nothing). If a hook takes a lock of
 *    the application's, the application must not hold that lock while it
 *    calls into the set.
 *  - fd_register and timeout_register find *for_app_registration_out NULL
 *    and may store anything there; it is passed back to fd_modify,
 *    fd_deregister and timeout_modify of that registration (which may
 *    update it). events and revents are poll() bits.
 *  - Return 0 on success. A register or modify hook that fails leaves the
 *    registration as it was and returns non-zero: an errno value (1..4095)
 *    is reported as such, anything else as EIO. A failed fd_register makes
 *    hs_set_attach() fail (nothing is registered; attach again later). A
 *    failed timeout_register is logged and the set stays usable: deadlines
 *    are still enforced by the runners' own timer, and the loop learns of
 *    them through the fd instead. A failed timeout_modify is logged (the
 *    token's slot is then kept until its occurred call, if any, arrives).
 *  - fd_modify is part of the contract but is not called by this version
 *    (the set's fd is always registered for POLLIN).
 *
 * Timeouts fire exactly once: after timeout_register, the loop calls
 * hs_osevent_occurred_timeout() once, at or after abs (CLOCK_MONOTONIC);
 * the registration is then over and the loop forgets it (no deregister
 * hook exists). To withdraw one, hangsafe calls timeout_modify with abs
 * {0, 0}, "fire as soon as possible", and drops that last event when it
 * arrives. timeout_modify is only ever called with {0, 0}, and it may race
 * with the loop's own firing of that timeout: the loop must then ignore
 * it, and must keep the registration's storage valid until its
 * hs_osevent_occurred_timeout() call has returned.
 *
 * The occurred functions may be called from any thread, arbitrarily late,
 * any number of times, with any for_hs value: stale (the registration
 * ended, even long ago, even in an earlier attachment), duplicated (an
 * event delivered twice), or garbage. Such an event is recognised and
 * dropped. An fd event is re-checked with a zero-timeout poll() before it
 * is acted on. They are void; errno tells what happened: 0 acted upon
 * (call hs_set_drain()), ESTALE dropped (stale, duplicated, garbage or
 * withdrawn for_hs), EBADF (fd is not the registered one), EAGAIN (fd not
 * ready when re-checked, or a timeout that fired early: it is registered
 * again), EINVAL (set NULL), EDEADLK (from inside a hook: not consumed).
 * set itself must be a live set: after hs_set_free() the application drops
 * the events of that set instead of delivering them.
 *
 * Detach and free: hs_set_detach() deregisters the fd (fd_deregister) and
 * withdraws a registered timeout (timeout_modify to {0, 0}); the loop still
 * delivers that timeout's last event, which is dropped. hs_set_free() of
 * an attached set does the same. Events of an attachment stay stale after
 * hs_set_attach() again.
 *
 *	static int my_fd_register(void *user, int fd, void **reg,
 *				  short events, void *for_hs)
 *	{
 *		*reg = my_loop_watch_fd(user, fd, events, for_hs);
 *		return *reg ? 0 : ENOMEM;
 *	}
 *	...	// fd_modify, fd_deregister, timeout_register, timeout_modify
 *	static const struct hs_osevent_hooks hooks = {
 *		my_fd_register, my_fd_modify, my_fd_deregister,
 *		my_timeout_register, my_timeout_modify,
 *	};
 *	hs_set_attach(set, &hooks, my_loop);
 *	...	// in the loop, when a watched fd or timer fires:
 *	hs_osevent_occurred_fd(set, for_hs, fd, events, revents);
 *	hs_set_drain(set, on_outcome, ctx);
 */
struct hs_osevent_hooks {
	int (*fd_register)(void *user, int fd, void **for_app_registration_out,
			   short events, void *for_hs);
	int (*fd_modify)(void *user, int fd,
			 void **for_app_registration_update, short events);
	void (*fd_deregister)(void *user, int fd, void *for_app_registration);
	int (*timeout_register)(void *user, void **for_app_registration_out,
				struct timespec abs, void *for_hs);
	/* abs is always {0, 0}: fire as soon as possible. */
	int (*timeout_modify)(void *user, void **for_app_registration_update,
			      struct timespec abs);
};

/*
 * hs_set_attach - attach set to the loop that hooks describe (*hooks is
 * copied; user is passed to every hook). Registers the set's fd at once.
 * Returns 0, or -1 with errno set: EINVAL (set or hooks NULL, or a NULL
 * function in *hooks), EBUSY (attached already), EDEADLK (inside a hook),
 * or fd_register's failure (see above).
 */
int hs_set_attach(hs_set *set, const struct hs_osevent_hooks *hooks,
		  void *user);

/*
 * hs_set_detach - detach set from its loop: fd_deregister, and
 * timeout_modify to {0, 0} for a registered timeout; no hook is called
 * afterwards. Returns 0, or -1 with errno set: EINVAL (NULL), ENOTCONN
 * (not attached), EDEADLK (inside a hook).
 */
int hs_set_detach(hs_set *set);

/*
 * hs_osevent_occurred_fd - the loop saw revents on fd, registered with
 * for_hs. events (the registration's events) is not used. See above.
 */
void hs_osevent_occurred_fd(hs_set *set, void *for_hs, int fd, short events,
			    short revents);

/*
 * hs_osevent_occurred_timeout - the timeout registered with for_hs
 * occurred. See above.
 */
void hs_osevent_occurred_timeout(hs_set *set, void *for_hs);

/* ---- Robust process-shared mutex --------------------------------------- */

/*
 * hs_robust_mutex_t - a mutex for memory shared between processes that
 * survives the death of its owner, never loses a wakeup, and is never
 * written after it was unlocked.
 *
 * Place it in memory every user maps MAP_SHARED (a memfd, a file under
 * /dev/shm, an anonymous shared mapping inherited over fork()),
 * initialise it once with hs_robust_mutex_init() before any other process
 * can see it, and lock it from any thread of any process in the same PID
 * namespace. There is no static initialiser and no destroy function: the
 * mutex holds no resources.
 *
 * Error numbers, the pthread way: every function below returns 0 on
 * success or an error number from <errno.h>. None of them sets errno;
 * errno is left exactly as it was.
 *
 * Owner death. When a thread dies holding the mutex (its process exits or
 * is killed, or the thread exits), the next thread to lock it gets
 * EOWNERDEAD: it does hold the lock, but the data the lock protects may
 * be half-updated. That thread repairs the data and calls
 * hs_robust_mutex_consistent(), then unlocks as usual. If it unlocks
 * without calling hs_robust_mutex_consistent() (or dies too before doing
 * so: the next locker gets EOWNERDEAD again), the mutex becomes
 * permanently unusable: every later lock returns ENOTRECOVERABLE, until
 * hs_robust_mutex_init() is called on it again (when nobody uses it).
 * A thread blocked in hs_robust_mutex_lock() when the owner dies always
 * wakes up, with EOWNERDEAD.
 *
 * Destruction. Once hs_robust_mutex_unlock() has returned 0, neither the
 * library nor the kernel writes to the mutex's 64 bytes again, even if
 * the unlocking process dies a moment later: if no other thread uses the
 * mutex, its memory may be unmapped or reused at once. (glibc's robust
 * mutexes do not guarantee this; see glibc bug 14485.)
 *
 * Misuse is reported, never crashes: a NULL or not 8-byte aligned mutex
 * pointer, or memory that does not hold an initialised mutex (for
 * example zero-filled memory), gives EINVAL. The mutex is error-checking:
 * locking it again from the thread that holds it gives EDEADLK, unlocking
 * it from a thread that does not hold it gives EPERM (a fork() child does
 * not hold its parent's locks). A mutex initialised in another PID
 * namespace gives EXDEV: thread IDs would mean nothing there, so owner
 * death could not be told apart from a live owner. The bad arguments
 * (NULL, misaligned, uninitialised, a bad timeout) and EXDEV are also
 * logged (see "Diagnostics" in runner.h). Any function may also return
 * EIO if the PID namespace cannot be identified (/proc is not mounted) or
 * the kernel fails in a way it never should.
 *
 * Limits: an owner that hangs holds the lock for ever (use
 * hs_robust_mutex_timedlock()); a process must not exec() while holding
 * the mutex, or it stays held; a child created by a raw clone() system
 * call rather than fork() must not use the mutex before exec(). The lock
 * uses priority-inheritance futexes, so a waiter lends its priority to the
 * owner.
 */
typedef union hs_robust_mutex {
	unsigned char hs_opaque[64];	/* not to be read or written */
	uint64_t hs_align;		/* makes the type 8-byte aligned */
} hs_robust_mutex_t;

#if defined(__cplusplus) && __cplusplus >= 201103L
static_assert(sizeof(hs_robust_mutex_t) == 64,
	      "hs_robust_mutex_t must be 64 bytes");
static_assert(alignof(hs_robust_mutex_t) == 8,
	      "hs_robust_mutex_t must be 8-byte aligned");
#elif !defined(__cplusplus) && defined(__STDC_VERSION__) && \
	__STDC_VERSION__ >= 201112L
_Static_assert(sizeof(hs_robust_mutex_t) == 64,
	       "hs_robust_mutex_t must be 64 bytes");
_Static_assert(_Alignof(hs_robust_mutex_t) == 8,
	       "hs_robust_mutex_t must be 8-byte aligned");
#endif

/*
 * hs_robust_mutex_init - initialise (or re-initialise) *m: unlocked,
 * consistent, belonging to the caller's PID namespace. Like
 * pthread_mutex_init(), it must not race with any other use of *m.
 *
 * Returns 0, or
 *   EINVAL   m is NULL or not 8-byte aligned (nothing is written);
 *   EIO      the PID namespace cannot be identified (/proc is not
 *            mounted).
 */
int hs_robust_mutex_init(hs_robust_mutex_t *m);

/*
 * hs_robust_mutex_lock - lock *m, blocking while another live thread
 * holds it.
 *
 * Returns 0 (locked), or
 *   EOWNERDEAD       locked, but the previous owner died holding it: repair
 *                    the protected data, call hs_robust_mutex_consistent(),
 *                    then unlock;
 *   ENOTRECOVERABLE  not locked: the mutex was unlocked while
 *                    inconsistent and is unusable;
 *   EDEADLK          the calling thread already holds it;
 *   EINVAL           m is NULL, misaligned, or not initialised;
 *   EXDEV            *m was initialised in another PID namespace.
 * A signal handler may run while the call is blocked; the call then goes
 * on waiting (there is no EINTR).
 */
int hs_robust_mutex_lock(hs_robust_mutex_t *m);

/*
 * hs_robust_mutex_trylock - lock *m if no live thread holds it. A mutex
 * whose owner died is taken (EOWNERDEAD), as with
 * pthread_mutex_trylock().
 *
 * Returns what hs_robust_mutex_lock() returns, plus
 *   EBUSY            another live thread holds it.
 */
int hs_robust_mutex_trylock(hs_robust_mutex_t *m);

/*
 * hs_robust_mutex_timedlock - lock *m, blocking at most until the absolute
 * time *abs_timeout on CLOCK_MONOTONIC (not CLOCK_REALTIME, unlike
 * pthread_mutex_timedlock(): clock_gettime(CLOCK_MONOTONIC, &t), then add
 * the timeout to t). A time already past still takes a free lock, and a
 * negative tv_sec counts as a time already past.
 *
 * Returns what hs_robust_mutex_lock() returns, plus
 *   ETIMEDOUT        the time passed before the lock could be taken;
 *   EINVAL           also: abs_timeout is NULL, or abs_timeout->tv_nsec is
 *                    negative or at least 1000000000. The timeout is
 *                    checked first: a call with a bad one never locks, even
 *                    a free mutex.
 */
int hs_robust_mutex_timedlock(hs_robust_mutex_t *m,
			      const struct timespec *abs_timeout);

/*
 * hs_robust_mutex_consistent - mark the data protected by *m as repaired,
 * after a lock returned EOWNERDEAD. Only the thread that holds the lock
 * may call it; it still has to unlock afterwards.
 *
 * Returns 0, or
 *   EPERM            the calling thread does not hold the lock;
 *   EINVAL           the mutex is not inconsistent (it is so only from
 *                    a lock that returned EOWNERDEAD until this call
 *                    succeeds); or m is NULL, misaligned, or not
 *                    initialised;
 *   EXDEV            *m was initialised in another PID namespace.
 */
int hs_robust_mutex_consistent(hs_robust_mutex_t *m);

/*
 * hs_robust_mutex_unlock - unlock *m, which the calling thread holds. If
 * threads are waiting, the kernel hands the lock to one of them (highest
 * priority first, then the one that waited longest). Unlocking a mutex
 * that is inconsistent (locked with EOWNERDEAD,
 * hs_robust_mutex_consistent() not called) makes it permanently
 * unusable: waiters and later lockers get ENOTRECOVERABLE.
 * Once this returns 0, nothing writes to *m again (see "Destruction"
 * above).
 *
 * Returns 0, or
 *   EPERM            the calling thread does not hold the lock;
 *   EINVAL           m is NULL, misaligned, or not initialised;
 *   EXDEV            *m was initialised in another PID namespace.
 */
int hs_robust_mutex_unlock(hs_robust_mutex_t *m);

#ifdef __cplusplus
}
#endif

#endif /* HANGSAFE_H_INCLUDED */

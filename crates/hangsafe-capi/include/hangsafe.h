/*
 * hangsafe.h - the C API of hangsafe (libhangsafe.so / libhangsafe.a).
 *
 * hangsafe supervises work that may hang: it runs it on pooled, detached
 * threads with deadlines, and lets the caller give up on it at any moment
 * without blocking, leaking or racing.
 *
 * This header includes runner.h (the multipath-tools compatible runner
 * API) and adds hangsafe's own functions, all prefixed hs_: version,
 * runner pool metrics, and cancellable versions of common blocking system
 * calls for work run by a runner. Functions that can fail return -1 (or
 * NULL) and set errno, unless documented otherwise.
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
	uint64_t threads_running;	/* threads running a work function */
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
 * "RTMIN+k" or a number). The program must not use that signal itself. If
 * it is unavailable, or switched off with HANGSAFE_CANCEL_SIGNAL=off, a
 * cancel still makes every later call fail with ECANCELED, but does not
 * interrupt one that is already blocked.
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

#ifdef __cplusplus
}
#endif

#endif /* HANGSAFE_H_INCLUDED */

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
 * versions of common blocking system calls for work run by a runner, and
 * a robust process-shared mutex.
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

/*
 * runner.h - run a function on a helper thread, with a deadline, and walk
 * away from it at any time.
 *
 * Part of hangsafe (libhangsafe.so / libhangsafe.a). This header is a
 * drop-in replacement for libmpathutil/runner.h of multipath-tools 0.15.0:
 * the same names, types, values and calling conventions, so that code
 * written against that header compiles and links unchanged.
 *
 * Behaviour that differs from the multipath-tools implementation:
 *
 *  - Threads are pooled. get_runner() hands the work to an idle pool thread
 *    (creating one only when none is idle); a thread goes back to the pool
 *    as soon as the work function returns. Work never waits behind hung
 *    work: a hung function occupies its thread, later runners get others.
 *  - There is no separate "idle" phase. A runner is RUNNER_RUNNING from the
 *    moment get_runner() returns, whether or not a thread has picked it up,
 *    so releasing a runner before its thread starts is safe and race-free:
 *    the work is then simply never called.
 *  - release_runner() never blocks and never waits for the work.
 *  - The deadline is enforced both when check_runner() is called and by an
 *    internal timer, so a runner times out on time even if nobody polls.
 *  - Cancelling C work is cooperative for now: hangsafe never stops a work
 *    function. A timed-out or released runner is reported as cancelled at
 *    once, but its function keeps running until it returns by itself (its
 *    output is then discarded); a function that does not return soon after
 *    its cancel leaves its thread "abandoned", and later runners get other
 *    threads. hangsafe may signal the thread of a cancelled runner, so a
 *    blocking call that the kernel does not restart by itself (poll,
 *    nanosleep, ...) can fail with EINTR: handle EINTR as usual. Blocking
 *    calls made through the hs_ functions of hangsafe.h (hs_read(),
 *    hs_poll(), hs_openat(), ...) instead fail with ECANCELED once the
 *    runner is cancelled, even if already blocked, so work that uses them
 *    can return promptly.
 *  - The work function must return normally. It must not call
 *    pthread_exit(), longjmp() out of itself, or let a C++ exception
 *    escape: any of these would tear down a pool thread that the library
 *    still uses, and is not supported.
 *
 * Process-level behaviour:
 *
 *  - fork(): the library registers pthread_atfork handlers when its first
 *    thread starts. In the child, the pool has no idle thread and counts no
 *    thread (those of the parent do not exist there), the deadline timer is
 *    restarted on the next deadline, and keys held by the parent's runners
 *    are free; the child's first get_runner() creates a thread of its own.
 *    Handles inherited from the parent name work that runs only in the
 *    parent: release them in the child. The prepare handler holds the
 *    library's pool locks across fork(), so no other thread can leave one
 *    locked in the child. After vfork() or _Fork() the child may only exec
 *    or _exit.
 *  - Signals: the library's threads (pool threads, also while they run
 *    work, and the timer thread) block every asynchronous signal except the
 *    cancel signal, from their first instruction, so process-directed
 *    signals (SIGALRM, SIGCHLD, SIGTERM...) go to the program's threads.
 *    The fault signals SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP and SIGSYS,
 *    and SIGPIPE (sent to the thread that wrote), stay unblocked. A work function that wants to receive a signal
 *    unblocks it; the mask is set back before the thread's next job, so
 *    work that blocks signals cannot make the thread deaf to cancels.
 *  - If the program resets the cancel signal to SIG_DFL or installs its own
 *    handler for it after the library installed it, the library notices
 *    before sending a cancel, does not send it, logs an error once, and
 *    cancellation becomes cooperative (see hs_testcancel()).
 *  - None of the four functions of this header is async-signal-safe (they
 *    allocate and take locks): do not call them from a signal handler.
 *  - A crash in a work function (SIGSEGV, abort(), a stack overflow) is a
 *    crash of the whole process, as on any thread.
 *  - Exit: at exit() or return from main, idle pool threads and the timer
 *    thread are stopped and joined (within 2 seconds in total), so that
 *    valgrind --leak-check=full --show-possibly-lost=yes reports none of
 *    them. Threads still running a work function are left alone: exit
 *    never waits for work, and such a thread ends with the process. exit()
 *    from inside a work function, or while other threads call get_runner(),
 *    does not deadlock. _exit() skips this.
 *
 * Diagnostics go to stderr, one line each, prefixed "hangsafe: ". The
 * environment variable HANGSAFE_LOG selects the level: off, error, warn
 * (the default), info, debug or trace. hs_set_log_callback() and
 * hs_set_log_level() in hangsafe.h route them to the application's logger
 * instead. Identical repeated messages are rate-limited.
 */
#ifndef RUNNER_H_INCLUDED
#define RUNNER_H_INCLUDED

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The states of a runner, as returned by check_runner().
 *
 * RUNNER_IDLE       exists for compatibility; hangsafe never returns it.
 * RUNNER_RUNNING    the function has not returned and nothing cancelled it.
 * RUNNER_DONE       the function returned before any cancel; its data is
 *                   available through check_runner(). Final.
 * RUNNER_CANCELLED  the deadline passed (or the runner was cancelled) before
 *                   the function returned. No data will ever be available.
 *                   Becomes RUNNER_DEAD once the function has returned.
 * RUNNER_DEAD       the function ended without producing data (it returned
 *                   after the cancel). Final.
 */
enum runner_status {
	RUNNER_IDLE,		/* 0 */
	RUNNER_RUNNING,		/* 1 */
	RUNNER_DONE,		/* 2 */
	RUNNER_CANCELLED,	/* 3 */
	RUNNER_DEAD		/* 4 */
};

/*
 * The work function. It receives a pointer to the runner's private copy of
 * the data given to get_runner(); whatever it writes there is what
 * check_runner() copies out once the runner is RUNNER_DONE. It runs on a
 * pool thread, must be thread-safe with respect to everything it touches
 * besides that copy, and must return normally (see above).
 */
typedef void (*runner_func)(void *data);

/* The opaque handle of one runner. */
struct runner_context;

/*
 * runner_state_name - the name of a runner state.
 *
 * Returns "idle", "running", "done", "cancelled" or "dead" for the values of
 * enum runner_status, and "unknown" for any other value. The string is
 * static: do not modify or free it.
 */
const char *runner_state_name(int state);

/*
 * get_runner - start func on a copy of data, on a pooled thread.
 *
 * size bytes at data are copied into a new buffer aligned for any C type
 * (16 bytes), and func(copy) is run on a pool thread. data is not accessed
 * after get_runner() returns; the copy belongs to the runner.
 *
 * timeout_usec is the deadline in microseconds from now; 0 means no
 * deadline. Past the deadline the runner becomes RUNNER_CANCELLED (see the
 * note on cooperative cancellation at the top of this file).
 *
 * Returns the handle, to be passed to check_runner() and eventually to
 * release_runner() exactly once. On failure returns NULL and sets errno:
 *   EINVAL  func is NULL, data is NULL or size is 0 (also logged as an
 *           error);
 *   ENOMEM  the copy of the data could not be allocated;
 *   EAGAIN  no thread could be created, or the pool is at one of its limits
 *           (too many threads, or too many threads stuck in hung work);
 *           retrying later may succeed.
 */
struct runner_context *get_runner(runner_func func, void *data,
				  unsigned int size, unsigned long timeout_usec);

/*
 * check_runner - the state of a runner, without blocking.
 *
 * Applies the deadline first: a runner still running past its deadline is
 * cancelled by this call and reported as RUNNER_CANCELLED.
 *
 * While the runner is RUNNER_DONE, every call copies the function's output
 * into data (nothing is copied if data is NULL): the first size bytes if
 * size is at most the size given to get_runner(); if size is larger, only
 * the bytes that exist are copied, the rest of data is left untouched, and
 * a warning is logged. In every other state data is not written.
 *
 * Returns RUNNER_RUNNING, RUNNER_DONE, RUNNER_CANCELLED or RUNNER_DEAD
 * (never RUNNER_IDLE). Returns -1 with errno set to EINVAL if rctx is NULL.
 *
 * rctx must be a handle from get_runner() that has not been released. Calls
 * from several threads on the same handle are allowed, but not concurrently
 * with release_runner() on it.
 */
int check_runner(struct runner_context *rctx, void *data, unsigned int size);

/*
 * release_runner - free a runner handle.
 *
 * Never blocks. If the function is still running, the runner is cancelled:
 * its output will be discarded, and its thread returns to the pool when the
 * function returns. If the function has not started yet, it never will.
 * After this call rctx must not be used again. NULL is ignored.
 */
void release_runner(struct runner_context *rctx);

#ifdef __cplusplus
}
#endif

#endif /* RUNNER_H_INCLUDED */

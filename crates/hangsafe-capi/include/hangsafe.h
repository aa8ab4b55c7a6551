/*
 * hangsafe.h - the C API of hangsafe (libhangsafe.so / libhangsafe.a).
 *
 * hangsafe supervises work that may hang: it runs it on pooled, detached
 * threads with deadlines, and lets the caller give up on it at any moment
 * without blocking, leaking or racing.
 *
 * This header includes runner.h (the multipath-tools compatible runner
 * API) and adds hangsafe's own functions, all prefixed hs_. Functions that
 * can fail return -1 (or NULL) and set errno, unless documented otherwise.
 *
 * Compatibility: a struct declared here only ever grows at its end, and a
 * function that fills one is never changed to fill a larger one; a larger
 * struct comes with a new function.
 */
#ifndef HANGSAFE_H_INCLUDED
#define HANGSAFE_H_INCLUDED

#include <stdint.h>

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

#ifdef __cplusplus
}
#endif

#endif /* HANGSAFE_H_INCLUDED */

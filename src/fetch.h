/* The engine of qrpool-fetch: reads item lines, calls getwxacodeunlimit for
 * the planned items of wechat pools with libcurl's multi interface (within
 * the shared quota, with the shared token), stores what comes back through
 * store.c, and passes every other item through. */
#ifndef QRPOOL_FETCH_H
#define QRPOOL_FETCH_H

#include <stdio.h>

#include "config.h"

struct fetch_options {
	/* No call starts after the earlier of these; 0: none. */
	double until;             /* --until: unix seconds (db_now) */
	double for_until;         /* --for: on the monotonic clock (db_monotonic) */
	double grace_s;           /* after SIGINT/SIGTERM, calls in flight get this long */
};

/* Runs to the end of the input, the deadline or a signal. Returns the exit
 * status: 0, 65 (bad lines), 69 (a pool refused), 70, 74, 75 (work left). */
int fetch_run(const struct fetch_options *options, const struct config *config, int in_fd,
	FILE *out);

#endif

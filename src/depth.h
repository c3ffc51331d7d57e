/* How many codes each pool has: stock (depth) and work in flight. */
#ifndef QRPOOL_DEPTH_H
#define QRPOOL_DEPTH_H

#include <stdint.h>

#include "config.h"
#include "db.h"

struct pool_counts {
	int64_t planned, fetched, published, failed;
};

struct pool_depth {
	int64_t depth;        /* ready codes waiting in the pool */
	int64_t lost;         /* codes dropped by retention before anyone took them */
	int measured;         /* 1: measured at the source of truth; 0: estimated from the DB */
};

/* Counts per state for every configured pool, into counts[config->pool_count]. */
int depth_count_states(struct db *db, const struct config *config, struct pool_counts *counts);

/* The pool's depth. Today: the codes published according to the DB (the DB
 * does not know which were consumed, so this is an upper bound). */
int depth_measure(const struct config *config, const struct pool_counts *counts,
	size_t pool_index, struct pool_depth *out);

#endif

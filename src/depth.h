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

/* Counts per state for every configured pool, into counts[config->pool_count];
 * with `in_flight_only`, only the planned and fetched codes (the rest left 0):
 * counting every state reads every code ever made. */
int depth_count_states(struct db *db, const struct config *config, int in_flight_only,
	struct pool_counts *counts);

/* Kafka is given at most this long, however long kafka.timeout is: planning
 * and reporting must not wait a whole delivery timeout on a dead cluster. */
#define DEPTH_TIMEOUT_MAX_MS 10000

/* Every pool's depth into depths[config->pool_count], measured in Kafka: the
 * topic's end offsets minus the committed offsets of the pool's consumer group
 * (the online services), with the codes retention dropped unread in `lost`
 * (see kafka_measure_depth). Takes at most min(kafka.timeout,
 * DEPTH_TIMEOUT_MAX_MS) in all, so call it outside DB transactions. When
 * Kafka cannot be reached (or refuses a pool), those pools get the DB
 * estimate instead, with a warning: the depth qrpool-report last measured plus
 * the codes published since (never measured: every code published), an upper
 * bound since the DB does not know which were consumed; measured = 0.
 * Returns 0 or an exit code (the DB failed). */
int depth_measure(struct db *db, const struct config *config, struct pool_depth *depths);

#endif

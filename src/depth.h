/* How many codes each pool has: stock (depth) and work in flight. */
#ifndef QRPOOL_DEPTH_H
#define QRPOOL_DEPTH_H

#include <stdint.h>

#include "config.h"
#include "db.h"
#include "kafka.h"

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

/* One pool's reading in Kafka, for depth_read_kafka. */
struct depth_reading {
	const struct pool_config *pool;   /* in */
	rd_kafka_resp_err_t err;          /* out: NO_ERROR, or the error, said in `why` */
	struct kafka_depth depth;
	char why[640];
};

/* Pools read side by side, at most this many at once. */
#define DEPTH_READERS 8

/* Reads the pools' depths in Kafka (kafka_measure_depth), up to DEPTH_READERS
 * at once and all within `timeout_ms` of the call: a pool whose requests wait
 * out the timeout (its partition leader down) leaves the others measured.
 * Then logs, in the pools' order, each topic that does not exist and the
 * codes retention dropped unread. */
void depth_read_kafka(const struct config *config, struct depth_reading *readings, size_t count,
	int64_t timeout_ms);

/* Every pool's depth into depths[config->pool_count], measured in Kafka: the
 * topic's end offsets minus the committed offsets of the pool's consumer group
 * (the online services), with the codes retention dropped unread in `lost`
 * (see depth_read_kafka). Takes at most min(kafka.timeout,
 * DEPTH_TIMEOUT_MAX_MS) in all, so call it outside DB transactions. The pools
 * Kafka did not measure (unreachable, a refusal, a leader down) get the DB
 * estimate instead, with a warning: the depth qrpool-report last measured plus
 * the codes published since (never measured: every code published), an upper
 * bound since the DB does not know which were consumed; measured = 0.
 * Returns 0 or an exit code (the DB failed). */
int depth_measure(struct db *db, const struct config *config, struct pool_depth *depths);

#endif

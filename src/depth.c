#include "depth.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "exitcode.h"
#include "kafka.h"
#include "log.h"

int depth_count_states(struct db *db, const struct config *config, int in_flight_only,
	struct pool_counts *counts)
{
	sqlite3_stmt *stmt;
	int status, rc;

	memset(counts, 0, config->pool_count * sizeof *counts);
	/* Grouping over the (state, pool) index reads the index only; the codes
	 * in flight are two small ranges of it, where every state is every code
	 * ever made (a second for 10 million codes, under plan's write lock). */
	if ((status = db_prepare(db, &stmt, in_flight_only ?
			"SELECT pool, state, count(*) FROM codes "
			"WHERE state IN ('planned', 'fetched') GROUP BY state, pool" :
			"SELECT pool, state, count(*) FROM codes GROUP BY state, pool")))
		return status;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *pool = (const char *)sqlite3_column_text(stmt, 0);
		const char *state = (const char *)sqlite3_column_text(stmt, 1);
		int64_t count = sqlite3_column_int64(stmt, 2);

		for (size_t i = 0; i < config->pool_count; i++) {
			struct pool_counts *c = &counts[i];
			if (strcmp(config->pools[i].name, pool))
				continue;
			if (!strcmp(state, "planned"))
				c->planned = count;
			else if (!strcmp(state, "fetched"))
				c->fetched = count;
			else if (!strcmp(state, "published"))
				c->published = count;
			else
				c->failed = count;
		}
	}
	sqlite3_finalize(stmt);
	return rc == SQLITE_DONE ? 0 : db_fail(db, rc, "counting codes by state");
}

/* The depth qrpool-report last measured for `pool` (its present topic and
 * group: another group's depth is not this one's), plus every code published
 * since: 1 with *depth set, 0 if there is no such measure, or an exit code. */
static int depth_from_snapshot(struct db *db, const struct pool_config *pool, int64_t *depth)
{
	sqlite3_stmt *stmt;
	int status, rc;

	/* From the snapshot's floor_id on (schema 008): the codes published since
	 * are among those, so only the pool's newer codes are read. */
	if ((status = db_prepare(db, &stmt, "SELECT s.depth + (SELECT count(*) FROM codes c "
			"WHERE c.state = 'published' AND c.pool = s.pool AND c.id >= coalesce(s.floor_id, 0) "
			"AND c.published_at >= s.taken_at) "
			"FROM depth_snapshots s WHERE s.pool = ?1 "
			"AND (s.source IS NULL OR s.source = ?2 || ' ' || ?3) "   /* (schema 009) */
			"ORDER BY s.taken_at DESC LIMIT 1")))
		return status;
	db_log_plan(db, stmt, "the depth estimated from the last snapshot");
	sqlite3_bind_text(stmt, 1, pool->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, pool->topic, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 3, pool->group, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
		*depth = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_fail(db, rc, "reading the last depth measured");
	return rc == SQLITE_ROW;
}

/* The DB-only estimate for the pools Kafka did not measure (measured == 0):
 * the last depth measured (by qrpool-report) plus the codes published since,
 * an upper bound (the DB does not know what was consumed), or, never
 * measured, every published code still staged (no bound once qrpool-prune
 * deleted old ones). */
static int depth_estimate(struct db *db, const struct config *config, struct pool_depth *depths)
{
	struct pool_counts *counts;
	int status = 0, counted = 0;

	if (!(counts = calloc(config->pool_count ? config->pool_count : 1, sizeof *counts)))
		return EXIT_INTERNAL;
	for (size_t i = 0; i < config->pool_count; i++) {
		int found;

		if (depths[i].measured)
			continue;
		if ((found = depth_from_snapshot(db, &config->pools[i], &depths[i].depth)) > 1) {
			status = found;
			break;
		}
		/* Every code ever published is counted (a scan of all of them)
		 * only for a pool never measured, and once. */
		if (!found && !counted) {
			if ((status = depth_count_states(db, config, 0, counts)))
				break;
			counted = 1;
		}
		if (!found)
			depths[i].depth = counts[i].published;
		depths[i].lost = 0;
	}
	free(counts);
	return status;
}

struct depth_readers {
	const struct config *config;
	struct depth_reading *readings;
	size_t count;
	atomic_size_t next;          /* the next reading to take */
	double deadline;             /* db_monotonic() seconds */
};

static void *depth_reader(void *arg)
{
	struct depth_readers *readers = arg;
	size_t i;

	while ((i = atomic_fetch_add(&readers->next, 1)) < readers->count) {
		struct depth_reading *r = &readers->readings[i];
		int64_t left = (int64_t)((readers->deadline - db_monotonic()) * 1000);

		/* No time left (more pools than readers, Kafka slow): no client
		 * made only to be torn down, which can take longer still. */
		if (left <= 0) {
			r->err = RD_KAFKA_RESP_ERR__TIMED_OUT;
			snprintf(r->why, sizeof r->why, "topic %s: not measured: no time left of the "
				"budget", r->pool->topic);
			continue;
		}
		r->err = kafka_measure_depth(readers->config, r->pool, left, &r->depth, r->why,
			sizeof r->why);
	}
	return NULL;
}

void depth_read_kafka(const struct config *config, struct depth_reading *readings, size_t count,
	int64_t timeout_ms)
{
	struct depth_readers readers = { config, readings, count, 0, db_monotonic() + (double)timeout_ms / 1000 };
	pthread_t threads[DEPTH_READERS - 1];
	size_t started = 0;

	/* This thread is a reader too; one that cannot be started only means
	 * fewer at once. */
	while (started < DEPTH_READERS - 1 && started + 1 < count &&
	       pthread_create(&threads[started], NULL, depth_reader, &readers) == 0)
		started++;
	depth_reader(&readers);
	while (started)
		pthread_join(threads[--started], NULL);
	for (size_t i = 0; i < count; i++) {
		const struct depth_reading *r = &readings[i];

		if (!r->err && !r->depth.partitions)
			log_warn("pool %s: topic %s does not exist on the cluster: depth 0, and nothing "
				"can be published until it is created (qrpool does not create topics)",
				r->pool->name, r->pool->topic);
		if (!r->err && r->depth.ahead)
			log_warn("pool %s: group %s has committed past the end of %d of topic %s's %d "
				"partitions (the topic recreated, or its offsets reset?): counted as empty; "
				"where the online service reads them from is up to its auto.offset.reset",
				r->pool->name, r->pool->group, r->depth.ahead, r->pool->topic,
				r->depth.partitions);
		if (!r->err && r->depth.lost)
			log_info("pool %s: %lld codes were dropped by retention before anyone took them",
				r->pool->name, (long long)r->depth.lost);
	}
}

int depth_measure(struct db *db, const struct config *config, struct pool_depth *depths)
{
	int64_t timeout = config->kafka.timeout_ms < DEPTH_TIMEOUT_MAX_MS ?
		config->kafka.timeout_ms : DEPTH_TIMEOUT_MAX_MS;
	struct depth_reading *readings;
	size_t unreachable = 0;
	int status;

	memset(depths, 0, config->pool_count * sizeof *depths);
	if (!kafka_configured(config)) {
		log_warn("%s: kafka.brokers is not set: pool depth estimated from the staging DB",
			config->path);
		return depth_estimate(db, config, depths);
	}
	if ((status = kafka_check_config(config)))
		return status;
	if (!(readings = calloc(config->pool_count ? config->pool_count : 1, sizeof *readings)))
		return EXIT_INTERNAL;
	for (size_t i = 0; i < config->pool_count; i++)
		readings[i].pool = &config->pools[i];
	depth_read_kafka(config, readings, config->pool_count, timeout);
	for (size_t i = 0; i < config->pool_count; i++)
		unreachable += readings[i].err && kafka_unreachable(readings[i].err);
	/* Kafka down is said once, not once per pool. */
	if (unreachable && unreachable == config->pool_count &&
	    readings[0].err == RD_KAFKA_RESP_ERR__AUTHENTICATION)
		log_warn("%s: pool depth estimated from the staging DB", readings[0].why);
	else if (unreachable && unreachable == config->pool_count)
		log_warn("Kafka cannot be reached (%s): pool depth estimated from the staging DB",
			readings[0].why);
	for (size_t i = 0; i < config->pool_count; i++) {
		const struct depth_reading *r = &readings[i];

		if (!r->err)
			depths[i] = (struct pool_depth){ r->depth.depth, r->depth.lost, 1 };
		else if (unreachable < config->pool_count)
			log_warn("pool %s: %s: depth estimated from the staging DB", r->pool->name, r->why);
	}
	free(readings);
	return depth_estimate(db, config, depths);
}

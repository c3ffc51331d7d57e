#include "depth.h"

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

/* The depth qrpool-report last measured for `pool`, plus every code published
 * since: 1 with *depth set, 0 if there is no such measure, or an exit code. */
static int depth_from_snapshot(struct db *db, const char *pool, int64_t *depth)
{
	sqlite3_stmt *stmt;
	int status, rc;

	if ((status = db_prepare(db, &stmt, "SELECT s.depth + (SELECT count(*) FROM codes c "
			"WHERE c.state = 'published' AND c.pool = s.pool AND c.published_at >= s.taken_at) "
			"FROM depth_snapshots s WHERE s.pool = ? ORDER BY s.taken_at DESC LIMIT 1")))
		return status;
	sqlite3_bind_text(stmt, 1, pool, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
		*depth = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_fail(db, rc, "reading the last depth measured");
	return rc == SQLITE_ROW;
}

/* The DB-only estimate for pools [from, to) that Kafka did not measure: the
 * last depth measured (by qrpool-report) plus the codes published since, or,
 * never measured, every code ever published. Both are upper bounds: the DB
 * does not know what was consumed. */
static int depth_estimate(struct db *db, const struct config *config, size_t from, size_t to,
	struct pool_depth *depths)
{
	struct pool_counts *counts;
	int status = 0, counted = 0;

	if (from == to)
		return 0;
	if (!(counts = calloc(config->pool_count, sizeof *counts)))
		return EXIT_INTERNAL;
	for (size_t i = from; i < to; i++) {
		int found = depth_from_snapshot(db, config->pools[i].name, &depths[i].depth);

		if (found > 1) {
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
		depths[i].measured = 0;
	}
	free(counts);
	return status;
}

int depth_measure(struct db *db, const struct config *config, struct pool_depth *depths)
{
	int64_t timeout = config->kafka.timeout_ms < DEPTH_TIMEOUT_MAX_MS ?
		config->kafka.timeout_ms : DEPTH_TIMEOUT_MAX_MS;
	double deadline = db_now() + (double)timeout / 1000;
	int status;
	size_t i;

	if (!kafka_configured(config)) {
		log_warn("%s: kafka.brokers is not set: pool depth estimated from the staging DB",
			config->path);
		return depth_estimate(db, config, 0, config->pool_count, depths);
	}
	if ((status = kafka_check_config(config)))
		return status;
	for (i = 0; i < config->pool_count; i++) {
		const struct pool_config *pool = &config->pools[i];
		int64_t left = (int64_t)((deadline - db_now()) * 1000);
		struct kafka_depth measured;
		char why[512];
		rd_kafka_resp_err_t err = kafka_measure_depth(config, pool, left > 0 ? left : 0,
			&measured, why, sizeof why);

		if (!err) {
			depths[i] = (struct pool_depth){ measured.depth, measured.lost, 1 };
			continue;
		}
		if (kafka_unreachable(err)) {
			log_warn("Kafka cannot be reached (%s): pool depth estimated from the staging DB",
				why);
			break;
		}
		log_warn("pool %s: %s: depth estimated from the staging DB", pool->name, why);
		if ((status = depth_estimate(db, config, i, i + 1, depths)))
			return status;
	}
	return depth_estimate(db, config, i, config->pool_count, depths);
}

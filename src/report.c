#include "report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "depth.h"
#include "exitcode.h"
#include "kafka.h"
#include "log.h"
#include "parse.h"

#define REPORT_SNAPSHOT_KEEP_SECONDS (8 * 86400.0)
/* A rate over less than this is noise, not a rate. */
#define REPORT_MIN_RATE_SPAN 60.0

static const char *const report_stage_names[] = {
	"plan", "fetch", "render", "publish", "claim", "prune",
};

/* Reads every pool's depth from Kafka, side by side within one budget. A
 * pool that cannot be read leaves its depth unknown, said in kafka_error
 * (the first such pool, and how many there are). */
static int report_collect_depth(const struct config *config, struct report *report)
{
	int64_t cap = report->kafka_budget_ms > 0 ? report->kafka_budget_ms : DEPTH_TIMEOUT_MAX_MS;
	int64_t budget = config->kafka.timeout_ms < cap ? config->kafka.timeout_ms : cap;
	struct depth_reading *readings;
	size_t unread = 0;

	report->kafka_ok = kafka_configured(config);
	if (!report->kafka_ok) {
		snprintf(report->kafka_error, sizeof report->kafka_error, "kafka.brokers is not set");
		return 0;
	}
	if (!(readings = calloc(report->pool_count ? report->pool_count : 1, sizeof *readings)))
		return EXIT_INTERNAL;
	for (size_t i = 0; i < report->pool_count; i++)
		readings[i].pool = report->pools[i].pool;
	depth_read_kafka(config, readings, report->pool_count, budget);
	for (size_t i = 0; i < report->pool_count; i++) {
		struct report_pool *p = &report->pools[i];
		const struct depth_reading *r = &readings[i];

		if (r->err) {
			report->kafka_auth_refused |= r->err == RD_KAFKA_RESP_ERR__AUTHENTICATION;
			if (!unread++)
				snprintf(report->kafka_error, sizeof report->kafka_error, "pool %s: %s",
					p->pool->name, r->why);
			continue;
		}
		p->measured = 1;
		p->depth = r->depth.depth;
		p->lost = r->depth.lost;
		p->end_offsets = r->depth.end;
	}
	if (unread > 1) {
		size_t used = strlen(report->kafka_error);
		snprintf(report->kafka_error + used, sizeof report->kafka_error - used,
			" (and %zu more pool%s)", unread - 1, unread > 2 ? "s" : "");
	}
	report->kafka_ok = !unread;
	free(readings);
	return 0;
}

/* A snapshot not written: why, kept for the outputs (read before the
 * rollback, which would leave "not an error" in its place). */
static int report_snapshot_failed(struct db *db, struct report *report, int status)
{
	snprintf(report->snapshot_error, sizeof report->snapshot_error, "%s",
		sqlite3_errmsg(db->handle));
	report->snapshot_status = status;
	if (!sqlite3_get_autocommit(db->handle))
		db_rollback(db);
	return status;
}

/* Records this report's depths, the history the consumption rates come from.
 * A writer holding the DB past busy_timeout (a large plan, say) costs only
 * this one snapshot: the report itself reads, and goes on. */
static int report_snapshot_write(struct db *db, struct report *report)
{
	sqlite3_stmt *insert, *prune;
	int status, rc = SQLITE_DONE;

	if ((status = db_begin_immediate_quietly(db)) == EXIT_TEMPFAIL) {
		log_warn("%s: locked by another writer: this report's depth snapshot is not recorded "
			"(the rates use the ones before)", db->path);
		return 0;
	}
	if (status)
		return report_snapshot_failed(db, report, status);
	if ((status = db_prepare(db, &insert, "INSERT OR REPLACE INTO depth_snapshots "
			"(pool, taken_at, end_offsets, depth, lost, floor_id, source) "
			"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7 || ' ' || ?8)")))
		return report_snapshot_failed(db, report, status);
	for (size_t i = 0; i < report->pool_count && rc == SQLITE_DONE; i++) {
		const struct report_pool *p = &report->pools[i];
		if (!p->measured)
			continue;
		sqlite3_reset(insert);
		sqlite3_bind_text(insert, 1, p->pool->name, -1, SQLITE_STATIC);
		/* In whole seconds, as published_at is: a code delivered in this
		 * second, after Kafka was read, is then counted by plan's estimate
		 * as published since (maybe twice, never not at all). */
		sqlite3_bind_double(insert, 2, floor(report->now));
		sqlite3_bind_int64(insert, 3, p->end_offsets);
		sqlite3_bind_int64(insert, 4, p->depth);
		sqlite3_bind_int64(insert, 5, p->lost);
		sqlite3_bind_int64(insert, 6, p->floor_id);
		sqlite3_bind_text(insert, 7, p->pool->topic, -1, SQLITE_STATIC);
		sqlite3_bind_text(insert, 8, p->pool->group, -1, SQLITE_STATIC);
		rc = sqlite3_step(insert);
	}
	sqlite3_finalize(insert);
	if (rc == SQLITE_DONE && !(status = db_prepare(db, &prune,
			"DELETE FROM depth_snapshots WHERE taken_at < ?1 AND taken_at < (SELECT "
			"max(taken_at) FROM depth_snapshots newest WHERE newest.pool = depth_snapshots.pool "
			"AND newest.source IS depth_snapshots.source)"))) {
		/* (A pool's newest snapshot is kept whatever its age: plan's DB-only
		 * estimate starts from it while Kafka cannot be reached.) */
		sqlite3_bind_double(prune, 1, report->now - REPORT_SNAPSHOT_KEEP_SECONDS);
		rc = sqlite3_step(prune);
		sqlite3_finalize(prune);
	}
	if (status || rc != SQLITE_DONE)
		return report_snapshot_failed(db, report,
			status ? status : db_fail(db, rc, "recording depth snapshots"));
	return (status = db_commit(db)) ? report_snapshot_failed(db, report, status) : 0;
}

/* A snapshot the DB cannot take (a full disk, a read-only file or mount, a
 * DB of another user) is said, and the report is made all the same: it is
 * read when things go wrong, and the depths come from Kafka. Its exit
 * status says it (report_output). */
static void report_snapshot(struct db *db, struct report *report)
{
	if (report_snapshot_write(db, report))
		log_error("%s: this report's depth snapshot is not recorded (%s): the report is made all "
			"the same, its rates from the snapshots before, and the run does not end well "
			"until the staging DB can be written", db->path, report->snapshot_error);
}

/* Codes consumed per hour over `window` seconds: the change in the group's
 * committed position (end - depth - lost) since the newest snapshot at least
 * `window` old, or since the oldest one when the history is shorter. Not
 * over a gap in the snapshots (cron stopped, Kafka or the DB out of reach):
 * snapshots over twice `window` old are no start, as an average over the gap
 * would hide the peak the pool is draining at; the rate then starts at the
 * oldest snapshot after the gap, as for a short history. */
static int report_rate(struct db *db, const struct report_pool *p, double now, double window,
	struct report_rate *rate)
{
	sqlite3_stmt *stmt;
	int status, rc, fell = 0;
	int64_t consumed = -1;

	rate->per_hour = -1;
	rate->span_seconds = 0;
	if (!p->measured)
		return 0;
	/* The start snapshot, then whether the codes counted lost fell from one
	 * snapshot to the next since, and the newest snapshot's count. (The
	 * start is picked first: a column of the sorted query would be worked
	 * out for every candidate row, a scan each: 2 s at 8 days of them.) */
	/* (NOT MATERIALIZED: each use searches the primary key, not a copy of
	 * the pool's 8 days of snapshots, sorted again: 22 ms a rate, not 9.) */
	if ((status = db_prepare(db, &stmt, "WITH snapshots AS NOT MATERIALIZED (SELECT taken_at, "
			"end_offsets, depth, lost FROM depth_snapshots WHERE pool = ?1 "
			"AND (source IS NULL OR source = ?5 || ' ' || ?6)), "
			"start AS (SELECT taken_at, end_offsets - depth - lost AS position FROM snapshots "
			"WHERE taken_at <= ?2 - ?4 AND taken_at >= ?2 - 2 * ?3 "
			"ORDER BY taken_at <= ?2 - ?3 DESC, "
			"CASE WHEN taken_at <= ?2 - ?3 THEN -taken_at ELSE taken_at END LIMIT 1) "
			"SELECT taken_at, position, "
			"(SELECT coalesce(max(previous > lost), 0) FROM (SELECT lost, lag(lost) OVER "
			"(ORDER BY taken_at) AS previous FROM snapshots "
			"WHERE taken_at >= (SELECT taken_at FROM start))), "
			"(SELECT lost FROM snapshots ORDER BY taken_at DESC LIMIT 1) "
			"FROM start")))
		return status;
	sqlite3_bind_text(stmt, 1, p->pool->name, -1, SQLITE_STATIC);
	sqlite3_bind_double(stmt, 2, now);
	sqlite3_bind_double(stmt, 3, window);
	sqlite3_bind_double(stmt, 4, REPORT_MIN_RATE_SPAN);
	/* A position is one group's on one topic: another's is no history. */
	sqlite3_bind_text(stmt, 5, p->pool->topic, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 6, p->pool->group, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		rate->span_seconds = now - sqlite3_column_double(stmt, 0);
		consumed = p->end_offsets - p->depth - p->lost - sqlite3_column_int64(stmt, 1);
		fell = sqlite3_column_int(stmt, 2) || p->lost < sqlite3_column_int64(stmt, 3);
	}
	sqlite3_finalize(stmt);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_fail(db, rc, "reading snapshots");
	/* A topic recreated or truncated moves offsets backwards: no rate. Nor
	 * when the codes counted lost fell within the span (between two
	 * snapshots, or from the newest to this run's count): the group
	 * committed past codes counted lost (its first commit, or a jump to the
	 * low watermark), and its position moved over them without taking them. */
	if (rc == SQLITE_ROW && consumed >= 0 && !fell)
		rate->per_hour = (double)consumed * 3600.0 / rate->span_seconds;
	return 0;
}

/* Hours until the stock runs out at the last plan's forecast for this pool. */
static int report_forecast_cover(struct db *db, struct report_pool *p, double now)
{
	sqlite3_stmt *stmt;
	double stock = (double)p->depth, covered_until = now;
	int status, rc, rows = 0;

	p->forecast_cover_hours = -1;
	if ((status = db_prepare(db, &stmt, "SELECT hour, codes FROM plan_demand WHERE pool = ?1 "
			"AND plan_id = (SELECT max(plan_id) FROM plan_pools WHERE pool = ?1) ORDER BY hour")))
		return status;
	sqlite3_bind_text(stmt, 1, p->pool->name, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW && p->forecast_cover_hours < 0) {
		double start = fmax(sqlite3_column_double(stmt, 0), now);
		double end = sqlite3_column_double(stmt, 0) + 3600;
		double per_second = sqlite3_column_double(stmt, 1) / 3600.0;
		double needed = per_second * (end - start);

		/* (an hour gone by: a forecast wholly behind us has ended, 0 h
		 * ahead, which is not the "unknown" of a pool with no forecast) */
		rows++;
		if (end <= now)
			continue;
		if (needed >= stock && per_second > 0)
			p->forecast_cover_hours = (start + stock / per_second - now) / 3600.0;
		stock -= needed;
		covered_until = end;
	}
	sqlite3_finalize(stmt);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_fail(db, rc, "reading the forecast");
	if (rows && p->forecast_cover_hours < 0) {
		p->forecast_cover_hours = (covered_until - now) / 3600.0;
		p->forecast_beyond = 1;
	}
	return 0;
}

static struct report_pool *report_find(struct report *report, const char *name)
{
	for (size_t i = 0; i < report->pool_count; i++)
		if (!strcmp(report->pools[i].pool->name, name))
			return &report->pools[i];
	return NULL;
}

/* Backlog by state, and failures by errcode over the last day. Both read only
 * the small states through indexes: never the millions of published rows. */
static int report_backlog(struct db *db, struct report *report)
{
	sqlite3_stmt *stmt;
	int status, rc;

	if ((status = db_prepare(db, &stmt, "SELECT pool, state, count(*) FROM codes "
			"WHERE state IN ('planned', 'fetched', 'failed') GROUP BY state, pool")))
		return status;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		struct report_pool *p = report_find(report, (const char *)sqlite3_column_text(stmt, 0));
		const char *state = (const char *)sqlite3_column_text(stmt, 1);
		int64_t count = sqlite3_column_int64(stmt, 2);

		if (!p)
			continue;
		*(state[0] == 'p' ? &p->planned : state[1] == 'e' ? &p->fetched : &p->failed) = count;
	}
	sqlite3_finalize(stmt);
	if (rc != SQLITE_DONE)
		return db_fail(db, rc, "counting the backlog");
	if ((status = db_prepare(db, &stmt, "SELECT pool, coalesce(errcode, 0), count(*) FROM codes "
			"WHERE state = 'failed' AND updated_at >= ? GROUP BY pool, 2 ORDER BY 3 DESC")))
		return status;
	sqlite3_bind_double(stmt, 1, report->now - 86400);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		struct report_pool *p = report_find(report, (const char *)sqlite3_column_text(stmt, 0));

		if (!p)
			continue;
		p->failed_24h += sqlite3_column_int64(stmt, 2);
		if (p->failure_kinds < REPORT_MAX_ERRCODES) {
			p->failures[p->failure_kinds].errcode = sqlite3_column_int(stmt, 1);
			p->failures[p->failure_kinds++].count = sqlite3_column_int64(stmt, 2);
		}
	}
	sqlite3_finalize(stmt);
	return rc == SQLITE_DONE ? 0 : db_fail(db, rc, "counting failures");
}

static int report_stage(struct db *db, struct report_stage *stage)
{
	sqlite3_stmt *stmt;
	int status, rc;

	if ((status = db_prepare(db, &stmt, "SELECT started_at, coalesce(ended_at, 0), items_in, "
			"items_out, coalesce(exit_status, -1), exit_status = 0, pid FROM runs WHERE stage = ?1 "
			"AND id IN ((SELECT max(id) FROM runs WHERE stage = ?1), "
			"(SELECT max(id) FROM runs WHERE stage = ?1 AND exit_status = 0)) ORDER BY id")))
		return status;
	sqlite3_bind_text(stmt, 1, stage->name, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (sqlite3_column_int(stmt, 5)) {
			stage->has_success = 1;
			stage->success_started = sqlite3_column_double(stmt, 0);
			stage->success_ended = sqlite3_column_double(stmt, 1);
			stage->success_in = sqlite3_column_int64(stmt, 2);
			stage->success_out = sqlite3_column_int64(stmt, 3);
		}
		stage->last_started = sqlite3_column_double(stmt, 0);
		stage->last_exit = sqlite3_column_int(stmt, 4);
		stage->last_pid = sqlite3_column_int64(stmt, 6);
		stage->last_running = stage->last_exit < 0 && db_run_pid_alive(stage->last_pid);
	}
	sqlite3_finalize(stmt);
	return rc == SQLITE_DONE ? 0 : db_fail(db, rc, "reading runs");
}

static int64_t report_quota_between(sqlite3_stmt *stmt, const char *appid, double from, double to)
{
	int64_t taken = 0;

	sqlite3_reset(stmt);
	sqlite3_bind_text(stmt, 1, appid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, (sqlite3_int64)(from * 1000));
	sqlite3_bind_int64(stmt, 3, (sqlite3_int64)(to * 1000));
	if (sqlite3_step(stmt) == SQLITE_ROW)
		taken = sqlite3_column_int64(stmt, 0);
	return taken;
}

/* WeChat calls this pipeline took from the appid's quota (all processes). */
static int report_quota(struct db *db, const struct config *config, struct report *report)
{
	time_t from, to;
	sqlite3_stmt *stmt;
	int status;

	if (!config->has_wechat || !config->wechat.appid)
		return 0;
	if ((status = db_prepare(db, &stmt, "SELECT coalesce(sum(taken), 0) FROM quota_windows "
			"WHERE appid = ? AND window_start_ms >= ? AND window_start_ms < ?")))
		return status;
	/* The latest night window that has started (real time: on a DST night an
	 * hour shorter or longer than its clock times say). */
	parse_local_window((time_t)report->now, report->night_start, report->night_end, 0, &from, &to);
	report->night_from = (double)from;
	report->night_to = (double)to;
	report->quota_last_hour = report_quota_between(stmt, config->wechat.appid, report->now - 3600,
		report->now + 1);
	report->quota_last_night = report_quota_between(stmt, config->wechat.appid, report->night_from,
		report->night_to);
	report->quota_known = 1;
	sqlite3_finalize(stmt);
	return 0;
}

/* Each pool's floor for its snapshot (see schema/008-depth-floor.sql): read
 * before the snapshot's time is taken, so that every code published from
 * then on was planned or fetched at this reading, or made after it. One
 * min(id) per state, each the first entry of its (state, pool) range of the
 * state index; a min over `state IN (...)` would read the night's codes in
 * flight at every report. */
static int report_floors(struct db *db, struct report *report)
{
	sqlite3_stmt *stmt;
	int status, rc = SQLITE_ROW;

	if ((status = db_prepare(db, &stmt, "SELECT coalesce(min("
			"coalesce(p.id, f.id, n.id), coalesce(f.id, p.id, n.id)), n.id) FROM "
			"(SELECT min(id) AS id FROM codes WHERE state = 'planned' AND pool = ?1) p, "
			"(SELECT min(id) AS id FROM codes WHERE state = 'fetched' AND pool = ?1) f, "
			"(SELECT coalesce(max(id), 0) + 1 AS id FROM codes) n")))
		return status;
	for (size_t i = 0; i < report->pool_count && rc == SQLITE_ROW; i++) {
		sqlite3_reset(stmt);
		sqlite3_bind_text(stmt, 1, report->pools[i].pool->name, -1, SQLITE_STATIC);
		if ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
			report->pools[i].floor_id = sqlite3_column_int64(stmt, 0);
	}
	sqlite3_finalize(stmt);
	return rc == SQLITE_ROW ? 0 : db_fail(db, rc, "reading the codes in flight");
}

int report_collect(struct db *db, const struct config *config, struct report *report)
{
	int status = 0;

	report->pool_count = config->pool_count;
	report->pools = calloc(config->pool_count ? config->pool_count : 1, sizeof *report->pools);
	if (!report->pools)
		return EXIT_INTERNAL;
	for (size_t i = 0; i < config->pool_count; i++)
		report->pools[i].pool = &config->pools[i];
	if ((status = report_floors(db, report)))
		return status;
	report->now = db_now();
	if (kafka_configured(config) && (status = kafka_check_config(config)))
		return status;
	if ((status = report_collect_depth(config, report)))
		return status;
	report_snapshot(db, report);
	for (size_t i = 0; !status && i < report->pool_count; i++) {
		struct report_pool *p = &report->pools[i];
		if (!(status = report_rate(db, p, report->now, 3600, &p->hour)) &&
		    !(status = report_rate(db, p, report->now, 86400, &p->day)))
			status = p->measured ? report_forecast_cover(db, p, report->now) : 0;
		/* An empty pool codes were taken from over the day ran dry: 0,
		 * whether the last hour's rate is known or not (a gap in the
		 * snapshots). Else nothing taken in the last hour: no end in sight. */
		p->cover_hours = !p->measured ? -1 :
			p->depth == 0 && p->day.per_hour > 0 ? 0 :
			p->hour.per_hour < 0 ? -1 :
			p->hour.per_hour > 0 ? (double)p->depth / p->hour.per_hour : INFINITY;
		if (!p->measured)
			p->forecast_cover_hours = -1;
	}
	if (!status)
		status = report_backlog(db, report);
	report->stage_count = (int)(sizeof report_stage_names / sizeof report_stage_names[0]);
	for (int s = 0; !status && s < report->stage_count; s++) {
		snprintf(report->stages[s].name, sizeof report->stages[s].name, "%s", report_stage_names[s]);
		report->stages[s].last_exit = -1;
		status = report_stage(db, &report->stages[s]);
	}
	if (!status)
		status = report_quota(db, config, report);
	return status;
}

void report_free(struct report *report)
{
	free(report->pools);
	report->pools = NULL;
}

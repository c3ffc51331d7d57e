/* Pool health, gathered from the staging DB and Kafka, for qrpool-report. */
#ifndef QRPOOL_REPORT_H
#define QRPOOL_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "db.h"

#define REPORT_MAX_ERRCODES 8
#define REPORT_MAX_STAGES 8

struct report_rate {
	double per_hour;          /* codes consumed per hour; < 0: not known yet */
	double span_seconds;      /* the period it was measured over */
};

struct report_pool {
	const struct pool_config *pool;
	int measured;             /* depth read from Kafka (else unknown) */
	int64_t depth, lost, end_offsets;
	int64_t floor_id;         /* the snapshot's floor (schema 008), read before the depth */
	struct report_rate hour, day;
	double cover_hours;       /* at the last hour's consumption rate; < 0 unknown, INFINITY none */
	double forecast_cover_hours;  /* at the planned demand; < 0 no forecast */
	int forecast_beyond;      /* the stock outlasts the forecast: cover is a lower bound */
	int64_t planned, fetched, failed;
	struct { int errcode; int64_t count; } failures[REPORT_MAX_ERRCODES];
	int failure_kinds;
	int64_t failed_24h;
};

struct report_stage {
	char name[16];
	int has_success;
	double success_started, success_ended;
	int64_t success_in, success_out;
	double last_started;      /* the latest run, successful or not */
	int last_exit;            /* -1: no end recorded (see last_running) */
	int64_t last_pid;
	int last_running;         /* no end recorded, and its pid still runs */
};

struct report {
	double now;
	struct report_pool *pools;
	size_t pool_count;
	int kafka_ok;             /* every pool's depth was read from Kafka */
	char kafka_error[800];
	int kafka_auth_refused;   /* ... because it refused our authentication: 69, not 75 */
	struct report_stage stages[REPORT_MAX_STAGES];
	int stage_count;
	int quota_known;
	int64_t quota_last_hour, quota_last_night;
	int night_start, night_end;   /* minutes after midnight */
	int64_t kafka_budget_ms;      /* the most Kafka is waited for; 0: DEPTH_TIMEOUT_MAX_MS */
	double night_from, night_to;  /* the last night window, unix seconds */
	const char *db_unused;        /* the DB's path if no run of any stage is recorded in it */
	int snapshot_status;          /* 0, or the exit status of a snapshot the DB could not take */
	char snapshot_error[200];     /* ... and SQLite's words for it */
};

/* Gathers everything; records a depth snapshot per measured pool. Returns 0
 * or an exit code (the DB could not be read). Kafka trouble is not an error
 * here: it leaves kafka_ok = 0 and the error text. */
int report_collect(struct db *db, const struct config *config, struct report *report);
void report_free(struct report *report);

int report_print_table(const struct report *report, const struct config *config, FILE *out);
int report_print_json(const struct report *report, const struct config *config, FILE *out);
/* Writes the Prometheus textfile atomically (temp file, fsync, rename). */
int report_write_prom(const struct report *report, const struct config *config, const char *path);
/* Monitoring-plugin check: prints one line with perfdata, returns 0/1/2/3. */
int report_check(const struct report *report, double warn_hours, double crit_hours, FILE *out);

#endif

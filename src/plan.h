/* Planning: demand rows in, codes to make per pool out. */
#ifndef QRPOOL_PLAN_H
#define QRPOOL_PLAN_H

#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "config.h"
#include "db.h"
#include "depth.h"

struct demand_row {
	size_t pool_index;
	time_t hour;              /* start of the hour, unix seconds */
	int64_t codes;
	const char *source;       /* file name, for messages */
	long line;
};

struct demand {
	struct demand_row *rows;
	size_t count, capacity;
	int errors;               /* bad lines seen so far */
	time_t end;               /* where the forecast ends: the end of the last hour of
	                           * the first input (the reader sets it) */
	time_t start;             /* ... and where it starts: its first hour (0: no row) */
};

/* Parses one demand line ("pool TAB hour TAB codes"; comments and blank lines
 * are skipped). Returns 0 (row added or nothing to add) or -1 with `why`. */
int plan_parse_demand_line(struct demand *demand, const struct config *config, char *line,
	const char *source, long line_number, char *why, size_t why_size);

/* Reads a whole demand file. Bad lines are logged as "source:line: why".
 * Returns 0, EXIT_DATA (bad lines, all counted in demand->errors) or EXIT_IO. */
int plan_read_demand(struct demand *demand, const struct config *config, FILE *in,
	const char *source);

/* Sorts the rows by pool and hour. Rows of the same pool and hour are an
 * error (each reported), or with `sum` added into one row. */
int plan_check_duplicates(struct demand *demand, const struct config *config, int sum);
void plan_demand_free(struct demand *demand);

struct plan_pool {
	const struct pool_config *pool;
	double forecast;          /* codes expected over the cover hours after the start */
	double past_forecast;     /* of the cover hours, those after the forecast's end (0: none) */
	double before_forecast;   /* ... and those before its start (0: none) */
	size_t rows;              /* its demand rows, in its cover hours or not */
	int64_t last_demand;      /* the last plan's forecast for it; -1: no plan had it */
	int64_t demand;           /* forecast, rounded up */
	struct pool_depth depth;
	int64_t in_flight;        /* planned or fetched, not yet published */
	int64_t planned;          /* of those, still needing a WeChat call */
	int64_t target, need, granted;
	int64_t allowed;          /* the need as --max left it, before the capacity */
	double hours_of_cover;    /* (depth + in flight) / forecast rate; huge when no demand */
	int cut;                  /* what granted less than the need: PLAN_CUT_* */
};

#define PLAN_CUT_NONE 0
#define PLAN_CUT_MAX 1        /* --max */
#define PLAN_CUT_CAPACITY 2   /* the night's WeChat capacity (after the codes still planned) */

/* Codes one plan may mint, over all pools: 50 million request ids take about
 * 1.2 GB while they are sorted, and a night fills a few million at most. */
#define PLAN_MAX_CODES_PER_RUN 50000000LL

struct plan_limits {
	int64_t capacity;         /* wechat codes that can be made; -1: unbounded */
	int64_t max_codes;        /* --max over all pools; -1: none */
	int64_t planned_over;     /* set: codes planned earlier beyond the capacity */
};

/* A pool's cover may end this long past the forecast's last hour unsaid: a
 * run that starts late (cron, a lock waited on) by a few minutes. */
#define PLAN_FORECAST_SLACK_SECONDS 600

/* Fills forecast, demand, target and need for each pool, and the hours of its
 * cover past demand->end, which count as no demand. */
void plan_model(struct plan_pool *pools, size_t count, const struct demand *demand, time_t from);
/* Grants codes within the limits: --max first, over all pools, then the
 * capacity, over the wechat pools, so that capacity is spent only on codes
 * --max lets through. Where a limit is short, the pools with the fewest hours
 * of cover are lifted first, and those it reaches end level (each at most its
 * need). Sets each pool's cut, and limits->planned_over (the codes planned
 * earlier that the capacity cannot fetch). Returns the wechat codes that
 * capacity left unmade (0: none short), or -1 out of memory. */
int64_t plan_allocate(struct plan_pool *pools, size_t count, struct plan_limits *limits);

#endif

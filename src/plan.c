#include "plan.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "exitcode.h"
#include "interrupt.h"
#include "item.h"
#include "log.h"
#include "parse.h"

#define PLAN_MAX_CODES_PER_HOUR 1000000000LL
#define PLAN_ERRORS_SHOWN 20

static int plan_is_blank_or_comment(const char *line)
{
	while (*line == ' ' || *line == '\t')
		line++;
	return *line == '\0' || *line == '#';
}

static int plan_add_row(struct demand *demand, const struct demand_row *row)
{
	if (demand->count == demand->capacity) {
		size_t capacity = demand->capacity ? demand->capacity * 2 : 256;
		struct demand_row *rows = realloc(demand->rows, capacity * sizeof *rows);
		if (!rows)
			return -1;
		demand->rows = rows;
		demand->capacity = capacity;
	}
	demand->rows[demand->count++] = *row;
	return 0;
}

static int plan_find_pool(const struct config *config, const char *name, size_t *index)
{
	for (size_t i = 0; i < config->pool_count; i++)
		if (!strcmp(config->pools[i].name, name)) {
			*index = i;
			return 0;
		}
	return -1;
}

int plan_parse_demand_line(struct demand *demand, const struct config *config, char *line,
	const char *source, long line_number, char *why, size_t why_size)
{
	char *fields[4], *cursor = line, parse_why[PARSE_WHY_SIZE];
	struct demand_row row = { .source = source, .line = line_number };
	size_t length = strlen(line), count = 0;
	int offset_ok;

	if (length && line[length - 1] == '\r')
		line[--length] = '\0';
	if (plan_is_blank_or_comment(line))
		return 0;
	/* An export's header line is accepted, but only as the first line. */
	if (line_number == 1 && !strcmp(line, "pool\thour\tcodes"))
		return 0;
	while (count < 4) {
		fields[count++] = cursor;
		cursor = strchr(cursor, '\t');
		if (!cursor)
			break;
		*cursor++ = '\0';
	}
	if (count != 3) {
		/* (A CR inside: a file of an old Mac's line ends, read as one line.) */
		snprintf(why, why_size, "expected 3 tab-separated fields (pool, hour, codes), found %s%s",
			count > 3 ? "more" : count == 2 ? "2" : "1", memchr(line, '\r', length) ?
			"; its lines end in CR alone, read as one: convert them (tr '\\r' '\\n')" : "");
		return -1;
	}
	if (plan_find_pool(config, fields[0], &row.pool_index)) {
		char names[1024];
		config_pool_names(config, names, sizeof names);
		snprintf(why, why_size, "unknown pool '%.64s' (known: %s)", fields[0], names);
		return -1;
	}
	if (parse_iso_time(fields[1], &row.hour, parse_why)) {
		snprintf(why, why_size, "bad hour: %s", parse_why);
		return -1;
	}
	/* The hour must start on the hour in its own offset: 13:00+08:00, not 13:30+08:00. */
	offset_ok = strlen(fields[1]) >= 16 && !strncmp(fields[1] + 13, ":00", 3) &&
		(fields[1][16] != ':' || !strncmp(fields[1] + 16, ":00", 3));
	if (!offset_ok) {
		snprintf(why, why_size, "hour '%.40s' is not the start of an hour (minutes and seconds "
			"must be 00)", fields[1]);
		return -1;
	}
	if (parse_int64(fields[2], 0, PLAN_MAX_CODES_PER_HOUR, &row.codes, parse_why)) {
		snprintf(why, why_size, "bad codes count: %s", parse_why);
		return -1;
	}
	if (plan_add_row(demand, &row)) {
		snprintf(why, why_size, "out of memory");
		return -1;
	}
	return 0;
}

int plan_read_demand(struct demand *demand, const struct config *config, FILE *in,
	const char *source)
{
	char *line = malloc(ITEM_LINE_MAX + 2), why[1280];
	long line_number = 0;
	ssize_t length;
	size_t start;
	int last, ended;

	if (!line) {
		log_error("%s: out of memory for its lines", source);
		return EXIT_INTERNAL;
	}
	while ((length = item_getline(in, line, ITEM_LINE_MAX + 1, &last, &ended)) >= 0) {
		int overlong = item_overlong(length, last, ITEM_LINE_MAX);

		line_number++;
		line[overlong ? 0 : length] = '\0';
		/* A UTF-8 byte-order mark (a file saved on Windows) would join the pool name. */
		start = line_number == 1 ? parse_bom_length(line, (size_t)length) : 0;
		if (overlong) {
			snprintf(why, sizeof why, "longer than %d bytes", ITEM_LINE_MAX);
		} else if (strlen(line) != (size_t)length) {
			snprintf(why, sizeof why, "line contains a NUL byte");
		} else if (!plan_parse_demand_line(demand, config, line + start, source, line_number, why,
				sizeof why)) {
			continue;
		}
		if (demand->errors++ < PLAN_ERRORS_SHOWN)
			log_error("%s:%ld: %s", source, line_number, why);
	}
	free(line);
	if (ferror(in) && interrupt_requested())
		return EXIT_TEMPFAIL;   /* a stop ended the read: said by the caller */
	if (ferror(in)) {
		log_error("%s: read error: %s", source, strerror(errno ? errno : EIO));
		return EXIT_IO;
	}
	return demand->errors ? EXIT_DATA : 0;
}

static int plan_compare_rows(const void *a, const void *b)
{
	const struct demand_row *x = a, *y = b;

	if (x->pool_index != y->pool_index)
		return x->pool_index < y->pool_index ? -1 : 1;
	if (x->hour != y->hour)
		return x->hour < y->hour ? -1 : 1;
	return x->line < y->line ? -1 : x->line > y->line;
}

int plan_check_duplicates(struct demand *demand, const struct config *config, int sum)
{
	int duplicates = 0;
	size_t kept = 0;

	if (demand->count < 2)
		return 0;
	qsort(demand->rows, demand->count, sizeof *demand->rows, plan_compare_rows);
	for (size_t i = 1; i < demand->count; i++) {
		struct demand_row *first = &demand->rows[kept];
		const struct demand_row *again = &demand->rows[i];
		char hour[40];

		if (first->pool_index != again->pool_index || first->hour != again->hour) {
			demand->rows[++kept] = *again;
			continue;
		}
		if (sum && first->codes + again->codes <= PLAN_MAX_CODES_PER_HOUR) {
			first->codes += again->codes;
			continue;
		}
		parse_format_iso(again->hour, hour, sizeof hour);
		if (duplicates++ < PLAN_ERRORS_SHOWN)
			log_error(sum ? "%s:%ld: pool '%s' hour %s: the sum with %s:%ld and the rows "
				"before it is over %lld codes" : "%s:%ld: pool '%s' hour %s already given at "
				"%s:%ld", again->source, again->line, config->pools[again->pool_index].name,
				hour, first->source, first->line, PLAN_MAX_CODES_PER_HOUR);
	}
	demand->count = kept + 1;
	demand->errors += duplicates;
	return duplicates ? EXIT_DATA : 0;
}

void plan_demand_free(struct demand *demand)
{
	free(demand->rows);
	memset(demand, 0, sizeof *demand);
}

/* Rounds up, forgiving the last bits of floating-point noise. */
static int64_t plan_ceil(double value)
{
	/* Relative: 60,000,000 x 1.1 is 66,000,000.00000001 in doubles. */
	return (int64_t)ceil(value * (1 - 1e-12) - 1e-9);
}

/* A pool's stock (depth and in flight) and forecast rate, in codes an hour. */
static double plan_stock(const struct plan_pool *p)
{
	return (double)(p->depth.depth + p->in_flight);
}

static double plan_rate(const struct plan_pool *p)
{
	return p->pool->cover_hours > 0 ? p->forecast / p->pool->cover_hours : 0;
}

/* Its hours of cover with `extra` codes more; unbounded with no demand. */
static double plan_cover(const struct plan_pool *p, int64_t extra)
{
	return plan_rate(p) > 0 ? (plan_stock(p) + (double)extra) / plan_rate(p) : HUGE_VAL;
}

void plan_model(struct plan_pool *pools, size_t count, const struct demand *demand, time_t from)
{
	for (size_t i = 0; i < count; i++) {
		pools[i].forecast = 0;
		pools[i].rows = 0;
	}
	for (size_t r = 0; r < demand->count; r++) {
		const struct demand_row *row = &demand->rows[r];
		struct plan_pool *p = &pools[row->pool_index];
		double end = (double)from + p->pool->cover_hours * 3600.0;
		double start = (double)row->hour > (double)from ? (double)row->hour : (double)from;
		double stop = (double)row->hour + 3600.0 < end ? (double)row->hour + 3600.0 : end;

		/* An hour only partly inside the window counts in proportion. */
		if (stop > start)
			p->forecast += (double)row->codes * (stop - start) / 3600.0;
		p->rows++;
	}
	for (size_t i = 0; i < count; i++) {
		struct plan_pool *p = &pools[i];
		int64_t stock = p->depth.depth + p->in_flight;
		/* A missing hour inside the forecast may be a zero the export left
		 * out; one past its end is not known at all. */
		double past = (double)from + p->pool->cover_hours * 3600.0 - (double)demand->end;
		/* Nor is one before its start (an export refreshed after noon
		 * starts tomorrow: an afternoon backfill would plan nothing for
		 * the hours until midnight); but a forecast of the coming hours
		 * starts at the first whole one from --from: the part of an hour
		 * before that is not said. Whole hours of the forecast's own offset
		 * (+05:30's are half past the hour in UTC), whole hours from its start. */
		double before = demand->start ? fmin((double)demand->start,
			(double)from + p->pool->cover_hours * 3600.0) - (double)from : 0;
		double late = demand->start ? 3600.0 * floor(((double)demand->start - (double)from) / 3600.0) : 0;

		p->demand = plan_ceil(p->forecast);
		p->target = plan_ceil(p->forecast * (1.0 + p->pool->safety));
		p->need = p->target > stock ? p->target - stock : 0;
		p->granted = 0;
		p->hours_of_cover = plan_cover(p, 0);
		p->past_forecast = past > PLAN_FORECAST_SLACK_SECONDS ? past / 3600.0 : 0;
		p->before_forecast = late > PLAN_FORECAST_SLACK_SECONDS && before > 0 ? before / 3600.0 : 0;
	}
}

/* What pool p gets at a level of `hours` of cover: the codes that lift its
 * stock to that many hours of its rate, at most want. */
static int64_t plan_at_level(const struct plan_pool *p, int64_t want, double hours)
{
	double lift = ceil(hours * plan_rate(p) - plan_stock(p) - 1e-9);

	return lift <= 0 ? 0 : lift >= (double)want ? want : (int64_t)lift;
}

/* Grants at most `budget` codes over the pools of `set`, each at most its
 * want[i] (into grant[i]), by raising the pools with the fewest hours of
 * cover first: the pools it reaches end with equal cover, as far as the
 * budget goes, rather than the first taking it all. Returns what it granted. */
static int64_t plan_fill(struct plan_pool *const *set, size_t n, const int64_t *want,
	int64_t *grant, int64_t budget)
{
	int64_t wanted = 0, given = 0;
	double low = 0, high = 0;

	for (size_t i = 0; i < n; i++) {
		wanted += want[i];
		if (isfinite(plan_cover(set[i], want[i])) && plan_cover(set[i], want[i]) > high)
			high = plan_cover(set[i], want[i]);
	}
	if (wanted <= budget) {
		memcpy(grant, want, n * sizeof *grant);
		return wanted;
	}
	/* The highest level the budget reaches (bisection: the total given
	 * grows with the level). */
	for (int step = 0; step < 2000; step++) {
		double middle = low + (high - low) / 2;
		int64_t total = 0;

		if (middle <= low || middle >= high)
			break;   /* as close as doubles go */
		for (size_t i = 0; i < n; i++)
			total += plan_at_level(set[i], want[i], middle);
		if (total <= budget)
			low = middle;
		else
			high = middle;
	}
	for (size_t i = 0; i < n; i++)
		given += grant[i] = plan_at_level(set[i], want[i], low);
	/* What is left is about a code for each pool the next step would lift
	 * (more only where the rates are extremes apart, and a double's step in
	 * hours is many codes of the fastest pool): one at a time, to the fewest
	 * hours of cover (then by name); past 64 a pool, a pool at a time. */
	while (given < budget) {
		int64_t step = budget - given > 64 * (int64_t)n ? budget - given : 1;
		size_t best = n;
		double best_cover = 0;

		for (size_t i = 0; i < n; i++) {
			double cover = plan_cover(set[i], grant[i]);

			if (grant[i] >= want[i])
				continue;
			if (best == n || cover < best_cover ||
			    (cover == best_cover && strcmp(set[i]->pool->name, set[best]->pool->name) < 0)) {
				best = i;
				best_cover = cover;
			}
		}
		if (best == n)
			break;
		if (step > want[best] - grant[best])
			step = want[best] - grant[best];
		grant[best] += step;
		given += step;
	}
	return given;
}

int64_t plan_allocate(struct plan_pool *pools, size_t count, struct plan_limits *limits)
{
	struct plan_pool **set = calloc(count ? count : 1, sizeof *set);
	int64_t *want = calloc(count ? count : 1, sizeof *want);
	int64_t *grant = calloc(count ? count : 1, sizeof *grant);
	int64_t capacity = limits->capacity, planned = 0, short_by = 0;
	size_t n = 0;

	if (!set || !want || !grant) {
		free(set);
		free(want);
		free(grant);
		return -1;
	}
	/* --max first, over every pool. */
	for (size_t i = 0; i < count; i++) {
		set[i] = &pools[i];
		want[i] = pools[i].need;
		pools[i].cut = PLAN_CUT_NONE;
		if (pools[i].pool->source == POOL_WECHAT)
			planned += pools[i].planned;
	}
	if (limits->max_codes >= 0)
		plan_fill(set, count, want, grant, limits->max_codes);
	else
		memcpy(grant, want, count * sizeof *grant);
	for (size_t i = 0; i < count; i++) {
		if (grant[i] < pools[i].need)
			pools[i].cut = PLAN_CUT_MAX;
		pools[i].granted = pools[i].allowed = grant[i];
	}
	/* Then the capacity, over the wechat pools, once the codes planned
	 * earlier and not fetched yet have taken their share of tonight's quota. */
	limits->planned_over = capacity >= 0 && planned > capacity ? planned - capacity : 0;
	if (capacity >= 0) {
		capacity = capacity > planned ? capacity - planned : 0;
		for (size_t i = 0; i < count; i++)
			if (pools[i].pool->source == POOL_WECHAT) {
				set[n] = &pools[i];
				want[n++] = pools[i].granted;
			}
		plan_fill(set, n, want, grant, capacity);
		for (size_t i = 0; i < n; i++)
			if (grant[i] < want[i]) {
				short_by += want[i] - grant[i];
				set[i]->granted = grant[i];
				set[i]->cut = PLAN_CUT_CAPACITY;
			}
	}
	free(set);
	free(want);
	free(grant);
	return short_by;
}

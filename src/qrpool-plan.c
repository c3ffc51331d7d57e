/* qrpool-plan: turns demand forecasts and pool depth into codes to make,
 * mints their request ids, and writes the plan to the staging DB. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "db.h"
#include "depth.h"
#include "exitcode.h"
#include "interrupt.h"
#include "kafka.h"
#include "log.h"
#include "parse.h"
#include "plan.h"
#include "qrfit.h"
#include "rid.h"

struct plan_options {
	struct cli_common common;
	time_t from;
	int64_t capacity;          /* -1: from --window, else unbounded */
	int window_start, window_end;  /* minutes after midnight; -1: none */
	int64_t max_codes;
	int64_t reserve;           /* --reserve; -1: the config's reserve_per_minute */
	int dry_run;
	int sum;                   /* --sum: rows of the same pool and hour are added */
	char **inputs;
	int input_count;
};

struct minted {
	char id[RID_LENGTH + 1];
	unsigned pool_index;
};

static void plan_usage(void)
{
	printf("Usage: qrpool-plan [OPTIONS] [DEMAND.tsv...]\n"
		"Plan the codes each pool needs from a demand forecast, mint their request ids,\n"
		"stage them as 'planned' and print one item line (request_id TAB pool) per code.\n"
		"Demand rows: pool TAB hour TAB codes (hour: ISO-8601 start of an hour with offset);\n"
		"'#' comments and blank lines are ignored. Reads stdin when no file (or '-') is given.\n\n"
		"  --from TIME        start of the covered period (ISO-8601; default now)\n"
		"  --capacity N       wechat codes that can be made (default: unbounded)\n"
		"  --window HH:MM-HH:MM  capacity = window minutes x (quota - reserve) per minute\n"
		"                     (the window now is in, else the next; real minutes, so\n"
		"                     an hour fewer or more on a DST night)\n"
		"  --reserve N        the reserve per minute for --window (only), instead of\n"
		"                     wechat.reserve_per_minute (as qrpool-fetch --reserve)\n"
		"  --max N            make at most N codes in all\n"
		"  --sum              add up rows of the same pool and hour (a campaign's extra\n"
		"                     demand on top of the regular forecast) instead of refusing them\n"
		"  -n, --dry-run      print the per-pool table, write no plan (the staging DB is\n"
		"                     created or upgraded if need be)\n"
		CLI_COMMON_HELP
		"\n" EXITCODE_HELP_LOCAL
		"65 also means: the forecast has no rows, or none in the hours the pools cover\n"
		"(with several files: one of them), or it would plan more than 50,000,000 codes\n"
		"(--max caps a plan).\n"
		"75 also means: capacity was short, the plan was written but some pools got less;\n"
		"or the forecast (the first file) ends over 10 minutes before some pool's\n"
		"cover_hours do (the hours past its end count as no demand), or starts over\n"
		"10 minutes after the first whole hour from --from (the hours before it too);\n"
		"or it has no row for a pool the last forecast that had rows for it gave some\n"
		"demand (a pool with none is given rows of 0);\n"
		"or Kafka is configured and some pool's depth had to be estimated from the DB;\n"
		"or the staging DB stayed locked past busy_timeout, or a signal stopped the plan\n"
		"(before it was made: nothing planned; after: the codes stay staged).\n"
		"78 also means: a link pool's url_prefix plus a request id cannot fit a QR code.\n");
}

/* A demand file given twice (by one name or two) would have each of its rows
 * refused as a repeat of itself, or with --sum (as backfill plans) counted
 * twice without a word: refused as what it is. */
static int plan_check_inputs(const struct plan_options *options)
{
	for (int i = 0; i < options->input_count; i++) {
		struct stat first, second;

		/* (the second '-' would read nothing: the first read stdin to its end) */
		for (int j = i + 1; !strcmp(options->inputs[i], "-") && j < options->input_count; j++)
			if (!strcmp(options->inputs[j], "-"))
				return cli_usage_error("'-' (stdin) is given twice: give it once");

		if (!strcmp(options->inputs[i], "-") || stat(options->inputs[i], &first) != 0)
			continue;
		if (S_ISDIR(first.st_mode))
			return cli_usage_error("%s is a directory, not a demand file",
				options->inputs[i]);
		for (int j = i + 1; j < options->input_count; j++)
			if (strcmp(options->inputs[j], "-") && stat(options->inputs[j], &second) == 0 &&
			    first.st_dev == second.st_dev && first.st_ino == second.st_ino)
				return cli_usage_error("%s and %s are the same file: give each demand "
					"file once", options->inputs[i], options->inputs[j]);
	}
	return 0;
}

static int plan_parse_options(int argc, char **argv, struct plan_options *options)
{
	enum { OPT_FROM = CLI_OPT_FIRST_TOOL_OPTION, OPT_CAPACITY, OPT_WINDOW, OPT_MAX, OPT_RESERVE,
		OPT_SUM };
	static const struct option longs[] = {
		CLI_COMMON_LONG,
		{ "from", required_argument, NULL, OPT_FROM },
		{ "capacity", required_argument, NULL, OPT_CAPACITY },
		{ "window", required_argument, NULL, OPT_WINDOW },
		{ "max", required_argument, NULL, OPT_MAX },
		{ "reserve", required_argument, NULL, OPT_RESERVE },
		{ "sum", no_argument, NULL, OPT_SUM },
		{ "dry-run", no_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	char why[PARSE_WHY_SIZE];
	int opt;

	memset(options, 0, sizeof *options);
	options->from = time(NULL);
	options->capacity = options->max_codes = options->reserve = -1;
	options->window_start = options->window_end = -1;
	while ((opt = cli_getopt(argc, argv, CLI_COMMON_SHORT "n", longs, NULL)) != -1) {
		if (cli_common_option(&options->common, opt, optarg))
			continue;
		switch (opt) {
		case OPT_FROM:
			if (parse_iso_time(optarg, &options->from, why))
				return cli_usage_error("--from: %s", why);
			break;
		case OPT_CAPACITY:
			if (parse_int64(optarg, 0, INT64_MAX / 2, &options->capacity, why))
				return cli_usage_error("--capacity: %s", why);
			break;
		case OPT_WINDOW:
			if (parse_time_window(optarg, &options->window_start, &options->window_end, why))
				return cli_usage_error("--window: %s", why);
			break;
		case OPT_MAX:
			if (parse_int64(optarg, 0, INT64_MAX / 2, &options->max_codes, why))
				return cli_usage_error("--max: %s", why);
			break;
		case OPT_RESERVE:
			if (parse_int64(optarg, 0, 10000000, &options->reserve, why))
				return cli_usage_error("--reserve: %s", why);
			break;
		case OPT_SUM:
			options->sum = 1;
			break;
		case 'n':
			options->dry_run = 1;
			break;
		default:
			return cli_bad_option(argv, opt);
		}
	}
	if (options->capacity >= 0 && options->window_start >= 0)
		return cli_usage_error("give --capacity or --window, not both");
	if (options->reserve >= 0 && options->window_start < 0 && !options->common.dump_config)
		return cli_usage_error("--reserve is the reserve of --window's capacity: give --window "
			"too (without it, it would change nothing)");
	options->inputs = argv + optind;
	options->input_count = argc - optind;
	return plan_check_inputs(options);
}

/* An input, read so that SIGINT/SIGTERM end a wait for more demand (EINTR):
 * stdin's, a pipe's or a FIFO's (a process substitution, <(curl ...)). */
static ssize_t plan_read_input(void *cookie, char *buffer, size_t size)
{
	return interrupt_read_blocking(*(const int *)cookie, buffer, size, 0, NULL, NULL);
}

static int plan_read_inputs(const struct plan_options *options, const struct config *config,
	struct demand *demand)
{
	static const cookie_io_functions_t input_functions = { .read = plan_read_input };
	int status = 0, count = options->input_count ? options->input_count : 1;

	for (int i = 0; i < count && !interrupt_requested(); i++) {
		const char *name = options->input_count ? options->inputs[i] : "-";
		int is_stdin = !strcmp(name, "-"), fd = cli_open_input(name);
		FILE *in = fd < 0 ? NULL : fopencookie(&fd, "r", input_functions);
		int one;

		if (!in) {
			log_error("%s: %s", is_stdin ? "stdin" : name, strerror(errno));
			if (fd > STDIN_FILENO)
				close(fd);
			return EXIT_IO;
		}
		one = plan_read_demand(demand, config, in, is_stdin ? "stdin" : name);
		fclose(in);
		if (fd > STDIN_FILENO)
			close(fd);
		if (one == EXIT_IO)
			return one;
		status = exitcode_worst(status, one);
		/* The forecast ends where the first input does: backfill's regular
		 * forecast (a campaign's rows after it may reach further, and must
		 * not hide that it ends short). It starts there too. */
		for (size_t r = 0; i == 0 && r < demand->count; r++) {
			if (demand->rows[r].hour + 3600 > demand->end)
				demand->end = demand->rows[r].hour + 3600;
			if (!demand->start || demand->rows[r].hour < demand->start)
				demand->start = demand->rows[r].hour;
		}
	}
	return status;
}

/* Capacity for new wechat codes: --capacity, or the window's minutes x budget:
 * the window now is in, else tonight's, in real minutes (240 for 01:00-06:00
 * on a spring-forward night, 360 on a fall-back one). */
static int64_t plan_capacity(const struct plan_options *options, const struct config *config)
{
	time_t from, to;

	if (options->window_start < 0)
		return options->capacity;
	parse_local_window(time(NULL), options->window_start, options->window_end, 1, &from, &to);
	return (int64_t)((to - from) / 60) * config_wechat_budget(config);
}

/* Each pool's forecast in the last plan whose forecast had rows for it (-1:
 * none), so that a pool the forecast leaves out can be told from one that
 * never had demand; and a second night of the same broken export is said
 * again (that night's plan recorded the pool with no demand, and no row). */
static int plan_last_demand(struct db *db, const struct config *config, struct plan_pool *pools)
{
	sqlite3_stmt *stmt;
	int status, rc = SQLITE_DONE;

	if ((status = db_prepare(db, &stmt, "SELECT demand FROM plan_pools p WHERE pool = ?1 AND "
			"EXISTS (SELECT 1 FROM plan_demand d WHERE d.plan_id = p.plan_id AND d.pool = ?1) "
			"ORDER BY plan_id DESC LIMIT 1")))
		return status;
	for (size_t i = 0; i < config->pool_count && (rc == SQLITE_DONE || rc == SQLITE_ROW); i++) {
		sqlite3_reset(stmt);
		sqlite3_bind_text(stmt, 1, config->pools[i].name, -1, SQLITE_STATIC);
		rc = sqlite3_step(stmt);
		pools[i].last_demand = rc == SQLITE_ROW ? sqlite3_column_int64(stmt, 0) : -1;
	}
	sqlite3_finalize(stmt);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : db_fail(db, rc, "reading the last plan");
}

static int plan_measure(struct db *db, const struct config *config, struct plan_pool *pools,
	const struct demand *demand, time_t from)
{
	struct pool_counts *counts = calloc(config->pool_count, sizeof *counts);
	int status;

	if (!counts)
		return EXIT_INTERNAL;
	status = depth_count_states(db, config, 1, counts);   /* in flight: planned and fetched */
	if (!status)
		status = plan_last_demand(db, config, pools);
	for (size_t i = 0; !status && i < config->pool_count; i++) {
		pools[i].pool = &config->pools[i];
		pools[i].in_flight = counts[i].planned + counts[i].fetched;
		pools[i].planned = counts[i].planned;
	}
	free(counts);
	if (!status)
		plan_model(pools, config->pool_count, demand, from);
	return status;
}

/* Kafka is asked before any transaction, since it may take seconds; the DB
 * must not stay locked meanwhile. */
static int plan_measure_depth(struct db *db, const struct config *config, struct plan_pool *pools)
{
	struct pool_depth *depths = calloc(config->pool_count, sizeof *depths);
	int status;

	if (!depths)
		return EXIT_INTERNAL;
	status = depth_measure(db, config, depths);
	for (size_t i = 0; !status && i < config->pool_count; i++)
		pools[i].depth = depths[i];
	free(depths);
	return status;
}

/* Whether Kafka is configured but some pool's depth had to be estimated. */
static int plan_depth_estimated(const struct config *config, const struct plan_pool *pools)
{
	for (size_t i = 0; kafka_configured(config) && i < config->pool_count; i++)
		if (!pools[i].depth.measured)
			return 1;
	return 0;
}

static int plan_print_table(const struct plan_pool *pools, size_t count)
{
	printf("%-20s %-6s %10s %10s %10s %10s %10s %10s %8s\n", "pool", "source", "demand", "depth",
		"in_flight", "target", "need", "granted", "cover_h");
	for (size_t i = 0; i < count; i++) {
		const struct plan_pool *p = &pools[i];
		char cover[16];

		if (isinf(p->hours_of_cover))
			snprintf(cover, sizeof cover, "-");
		else
			snprintf(cover, sizeof cover, "%.1f", p->hours_of_cover);
		printf("%-20s %-6s %10lld %10lld %10lld %10lld %10lld %10lld %8s\n", p->pool->name,
			config_source_name(p->pool->source), (long long)p->demand,
			(long long)p->depth.depth, (long long)p->in_flight, (long long)p->target,
			(long long)p->need, (long long)p->granted, cover);
	}
	return 0;
}

static int plan_insert_plan(struct db *db, const struct plan_options *options,
	const struct plan_limits *limits, int64_t granted, int64_t *plan_id)
{
	sqlite3_stmt *stmt;
	char inputs[2048] = "stdin";
	size_t used = 0;
	int status, rc;

	for (int i = 0; i < options->input_count && used < sizeof inputs; i++)
		used += (size_t)snprintf(inputs + used, sizeof inputs - used, "%s%s", i ? " " : "",
			options->inputs[i]);
	if ((status = db_prepare(db, &stmt, "INSERT INTO plans (created_at, from_time, capacity, "
			"max_codes, inputs, granted) VALUES (?, ?, ?, ?, ?, ?)")))
		return status;
	sqlite3_bind_int64(stmt, 1, (sqlite3_int64)time(NULL));
	sqlite3_bind_int64(stmt, 2, (sqlite3_int64)options->from);
	if (limits->capacity >= 0)
		sqlite3_bind_int64(stmt, 3, limits->capacity);
	if (limits->max_codes >= 0)
		sqlite3_bind_int64(stmt, 4, limits->max_codes);
	sqlite3_bind_text(stmt, 5, inputs, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(stmt, 6, granted);
	rc = sqlite3_step(stmt);
	sqlite3_finalize(stmt);
	if (rc != SQLITE_DONE)
		return db_fail(db, rc, "recording the plan");
	*plan_id = sqlite3_last_insert_rowid(db->handle);
	return 0;
}

static int plan_insert_pools(struct db *db, int64_t plan_id, const struct plan_pool *pools,
	size_t count, const struct demand *demand)
{
	sqlite3_stmt *pool_stmt, *demand_stmt;
	int status, rc = SQLITE_DONE;

	if ((status = db_prepare(db, &pool_stmt, "INSERT INTO plan_pools (plan_id, pool, demand, "
			"depth, in_flight, target, need, granted) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")))
		return status;
	if ((status = db_prepare(db, &demand_stmt,
			"INSERT INTO plan_demand (plan_id, pool, hour, codes) VALUES (?, ?, ?, ?)"))) {
		sqlite3_finalize(pool_stmt);
		return status;
	}
	for (size_t i = 0; i < count && rc == SQLITE_DONE; i++) {
		const struct plan_pool *p = &pools[i];
		int64_t values[] = { p->demand, p->depth.depth, p->in_flight, p->target, p->need, p->granted };

		sqlite3_reset(pool_stmt);
		sqlite3_bind_int64(pool_stmt, 1, plan_id);
		sqlite3_bind_text(pool_stmt, 2, p->pool->name, -1, SQLITE_STATIC);
		for (int v = 0; v < 6; v++)
			sqlite3_bind_int64(pool_stmt, 3 + v, values[v]);
		rc = sqlite3_step(pool_stmt);
	}
	for (size_t r = 0; r < demand->count && rc == SQLITE_DONE; r++) {
		const struct demand_row *row = &demand->rows[r];

		sqlite3_reset(demand_stmt);
		sqlite3_bind_int64(demand_stmt, 1, plan_id);
		sqlite3_bind_text(demand_stmt, 2, pools[row->pool_index].pool->name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(demand_stmt, 3, (sqlite3_int64)row->hour);
		sqlite3_bind_int64(demand_stmt, 4, row->codes);
		rc = sqlite3_step(demand_stmt);
	}
	sqlite3_finalize(pool_stmt);
	sqlite3_finalize(demand_stmt);
	return rc == SQLITE_DONE ? 0 : db_fail(db, rc, "recording the plan's pools");
}

static int plan_compare_minted(const void *a, const void *b)
{
	return memcmp(((const struct minted *)a)->id, ((const struct minted *)b)->id, RID_LENGTH);
}

/* The codes the allocation grants, over all pools. */
static int64_t plan_total(const struct plan_pool *pools, size_t count)
{
	int64_t total = 0;

	for (size_t i = 0; i < count; i++)
		total += pools[i].granted;
	return total;
}

/* More than a run can hold in memory, or than any night could use: a forecast
 * off by orders of magnitude, refused before anything is minted. */
static int plan_check_total(int64_t total)
{
	if (total <= PLAN_MAX_CODES_PER_RUN)
		return 0;
	log_error("the plan would mint %lld codes, more than the %lld one run may (is the forecast "
		"in codes per hour?): nothing planned; --max N plans at most N", (long long)total,
		(long long)PLAN_MAX_CODES_PER_RUN);
	return EXIT_DATA;
}

/* Mints one id per granted code. Sorted, the batch enters the request_id index
 * in key order: each index page is touched once instead of at random. The ids
 * themselves stay random; only their insertion order changes. */
static int plan_mint(const struct plan_pool *pools, size_t count, int64_t total,
	struct minted **out)
{
	struct minted *minted = malloc((size_t)(total ? total : 1) * sizeof *minted);
	struct rid_source source;
	int64_t n = 0;

	if (!minted) {
		log_error("out of memory for %lld request ids (%zu bytes each): nothing planned; "
			"--max N plans at most N", (long long)total, sizeof *minted);
		return EXIT_INTERNAL;   /* not 75, which says the plan was written */
	}
	rid_source_init(&source);
	for (size_t i = 0; i < count; i++)
		for (int64_t k = 0; k < pools[i].granted; k++, n++) {
			if (rid_mint(&source, minted[n].id)) {
				log_error("getrandom: %s", strerror(errno));
				free(minted);
				return EXIT_INTERNAL;
			}
			minted[n].pool_index = (unsigned)i;
		}
	qsort(minted, (size_t)total, sizeof *minted, plan_compare_minted);
	*out = minted;
	return 0;
}

static int plan_insert_codes(struct db *db, int64_t plan_id, const struct plan_pool *pools,
	struct minted *minted, int64_t total)
{
	struct rid_source source;
	sqlite3_stmt *stmt;
	sqlite3_int64 now = (sqlite3_int64)time(NULL);
	int status, rc = SQLITE_DONE;

	rid_source_init(&source);
	if ((status = db_prepare(db, &stmt, "INSERT INTO codes (request_id, pool, plan_id, state, "
			"created_at, updated_at) VALUES (?, ?, ?, 'planned', ?, ?)")))
		return status;
	for (int64_t n = 0; n < total; n++) {
		for (int attempt = 0; attempt < 10; attempt++) {
			sqlite3_reset(stmt);
			sqlite3_bind_text(stmt, 1, minted[n].id, RID_LENGTH, SQLITE_STATIC);
			sqlite3_bind_text(stmt, 2, pools[minted[n].pool_index].pool->name, -1, SQLITE_STATIC);
			sqlite3_bind_int64(stmt, 3, plan_id);
			sqlite3_bind_int64(stmt, 4, now);
			sqlite3_bind_int64(stmt, 5, now);
			rc = sqlite3_step(stmt);
			if (rc != SQLITE_CONSTRAINT_UNIQUE)
				break;
			/* 95 bits make this all but impossible; if it happens, the code
			 * gets a fresh id rather than being dropped. */
			log_warn("request id collision; minting another");
			if (rid_mint(&source, minted[n].id))
				break;
		}
		if (rc != SQLITE_DONE)
			break;
	}
	sqlite3_finalize(stmt);
	return rc == SQLITE_DONE ? 0 : db_fail(db, rc, "staging planned codes");
}

/* The items, one whole line each; a stop signal ends the printing between
 * two lines (75), the codes staged either way. */
static int plan_print_items(const struct plan_pool *pools, const struct minted *minted, int64_t total)
{
	int64_t n;
	int status;

	for (n = 0; n < total && !interrupt_requested(); n++)
		if (printf("%s\t%s\n", minted[n].id, pools[minted[n].pool_index].pool->name) < 0)
			break;
	status = cli_close_stdout();
	if (n < total && interrupt_requested()) {
		log_warn("interrupted: %lld codes planned and staged, %lld of them printed; the rest are "
			"listed by qrpool-pending --state planned", (long long)total, (long long)n);
		status = exitcode_worst(status, EXIT_TEMPFAIL);
	} else if (status) {
		/* (stdio's buffer: how many lines got out is not known) */
		log_warn("the %lld codes planned are staged all the same, not all of them printed: "
			"qrpool-pending --state planned lists them", (long long)total);
	}
	return status;
}

/* Each pool short, and the codes planned earlier that this window's
 * capacity cannot fetch: they stay planned, for the next night, but count in
 * the stock, so the cover is less by morning than the plan shows. */
static void plan_report_shortfall(const struct plan_pool *pools, size_t count,
	const struct plan_limits *limits)
{
	if (limits->planned_over > 0)
		log_warn("%lld codes planned earlier and not fetched yet are more than this window can "
			"fetch (capacity %lld): %lld of them will not be fetched tonight, though the cover "
			"counts them; nothing new is planned for the wechat pools", (long long)(limits->capacity +
			limits->planned_over), (long long)limits->capacity, (long long)limits->planned_over);
	for (size_t i = 0; i < count; i++) {
		const struct plan_pool *p = &pools[i];
		char cuts[160];

		if (p->granted >= p->need)
			continue;
		/* Each cut's share: --max's, then the capacity's of what it let through. */
		if (p->cut == PLAN_CUT_CAPACITY && p->allowed < p->need)
			snprintf(cuts, sizeof cuts, "--max %lld, capacity %lld, after the codes still planned",
				(long long)(p->need - p->allowed), (long long)(p->allowed - p->granted));
		else
			snprintf(cuts, sizeof cuts, "%s", p->cut == PLAN_CUT_CAPACITY ?
				"capacity, after the codes still planned" : "--max");
		log_warn("pool %s: needs %lld, planned %lld, short by %lld (%s)", p->pool->name,
			(long long)p->need, (long long)p->granted, (long long)(p->need - p->granted), cuts);
	}
}

/* Counts, models, allocates and writes in one IMMEDIATE transaction, so two
 * plans at once cannot both count the same in-flight codes as missing. */
static int plan_write(struct db *db, const struct plan_options *options,
	const struct config *config, const struct demand *demand, struct plan_pool *pools,
	struct minted **minted, int64_t *total, int64_t *short_by)
{
	struct plan_limits limits = { plan_capacity(options, config), options->max_codes };
	int64_t plan_id = 0;
	int status;

	if ((status = db_begin_immediate(db)))
		return status;
	status = plan_measure(db, config, pools, demand, options->from);
	if (!status) {
		*short_by = plan_allocate(pools, config->pool_count, &limits);
		if (*short_by >= 0)
			*short_by += limits.planned_over;
		*total = plan_total(pools, config->pool_count);
		status = *short_by < 0 ? EXIT_INTERNAL : plan_check_total(*total);   /* (out of memory) */
	}
	if (!status)
		status = plan_mint(pools, config->pool_count, *total, minted);
	if (!status)
		status = plan_insert_plan(db, options, &limits, *total, &plan_id);
	if (!status)
		status = plan_insert_pools(db, plan_id, pools, config->pool_count, demand);
	if (!status)
		status = plan_insert_codes(db, plan_id, pools, *minted, *total);
	if (!status)
		status = db_commit(db);
	if (status) {
		db_rollback(db);
		*total = 0;   /* nothing was planned */
	} else {
		plan_report_shortfall(pools, config->pool_count, &limits);
	}
	return status;
}

/* A forecast whose rows all lie outside the period each pool covers from
 * `from` (an export that did not run, a file of last week) would plan
 * nothing and look like a quiet night. Returns 0, or EXIT_DATA (logged). */
static int plan_row_covered(const struct demand_row *row, const struct config *config, time_t from)
{
	double end = (double)from + config->pools[row->pool_index].cover_hours * 3600.0;

	return (double)row->hour + 3600.0 > (double)from && (double)row->hour < end;
}

/* With several forecasts (backfill's regular one and a campaign's), each must
 * count: a regular forecast empty or stale would leave the campaign planned
 * against the stock the regular demand needs, and nothing said. */
static int plan_check_each_input(const struct plan_options *options, const struct demand *demand,
	const struct config *config, const char *when)
{
	int status = 0;

	for (int i = 0; options->input_count > 1 && i < options->input_count; i++) {
		const char *source = strcmp(options->inputs[i], "-") ? options->inputs[i] : "stdin";
		size_t rows = 0, covered = 0;

		for (size_t r = 0; r < demand->count; r++)
			if (!strcmp(demand->rows[r].source, source)) {
				rows++;
				covered += (size_t)plan_row_covered(&demand->rows[r], config, options->from);
			}
		if (!rows)
			log_error("%s: no demand rows (did its export run?); with several forecasts, each "
				"must count: nothing planned", source);
		else if (!covered)
			log_error("%s: none of its %zu demand rows falls in the hours the pools cover from %s "
				"(is it stale?); with several forecasts, each must count: nothing planned",
				source, rows, when);
		if (!covered)
			status = EXIT_DATA;
	}
	return status;
}

/* Some row must fall in the hours the pools cover, and some of each file's.
 * Checked before --sum merges rows: a merged row keeps the first file's name. */
static int plan_check_period(const struct plan_options *options, const struct demand *demand,
	const struct config *config)
{
	time_t from = options->from;
	/* Named as with several (cron's mail has no command line to tell). */
	const char *source = options->input_count == 1 && strcmp(options->inputs[0], "-") ?
		options->inputs[0] : options->input_count > 1 ? "the forecasts" : "stdin";
	char when[32];

	strftime(when, sizeof when, "%Y-%m-%dT%H:%MZ", gmtime(&from));
	for (size_t r = 0; r < demand->count; r++)
		if (plan_row_covered(&demand->rows[r], config, from))
			return plan_check_each_input(options, demand, config, when);
	if (!demand->count) {
		log_error("%s: the forecast has no demand rows (did the export run?): nothing planned",
			source);
		return EXIT_DATA;
	}
	log_error("%s: none of the %zu demand rows falls in the hours the pools cover from %s (is the "
		"forecast stale, or --from wrong?): nothing planned", source, demand->count, when);
	return EXIT_DATA;
}

/* What a plan (or a dry run) that went through ends with: 75 when capacity
 * fell short, a pool's cover reaches outside the forecast (past its end,
 * before its start), a pool with demand in the last plan has no row in this
 * one, or the depth had to be estimated; said on stderr, since cron's mail
 * must tell someone. */
static int plan_outcome(const struct plan_options *options, const struct config *config,
	const struct plan_pool *pools, const struct demand *demand, int64_t short_by, int dry_run)
{
	int status = short_by > 0 ? EXIT_TEMPFAIL : 0;
	char end[32], start[32], from[32];

	strftime(end, sizeof end, "%Y-%m-%dT%H:%MZ", gmtime(&demand->end));
	strftime(start, sizeof start, "%Y-%m-%dT%H:%MZ", gmtime(&demand->start));
	strftime(from, sizeof from, "%Y-%m-%dT%H:%MZ", gmtime(&options->from));
	for (size_t i = 0; i < config->pool_count; i++) {
		const struct plan_pool *p = &pools[i];

		if (p->before_forecast > 0) {
			log_error("pool %s: the forecast starts at %s, %.1f of the pool's %g hours of cover "
				"from %s are before it and count as no demand, so the plan may fall short "
				"(export a forecast that starts by then, or plan from its start: --from %s); exit 75",
				p->pool->name, start, p->before_forecast, p->pool->cover_hours, from, start);
			status = EXIT_TEMPFAIL;
		}
		if (!p->rows && p->last_demand > 0) {
			log_error("pool %s: the forecast has no row for it, though the last plan forecast "
				"%lld codes: planned as no demand (did the export leave the pool out? a pool "
				"with no demand is given rows of 0); exit 75", p->pool->name,
				(long long)p->last_demand);
			status = EXIT_TEMPFAIL;
		} else if (!p->rows) {
			log_warn("pool %s: the forecast has no row for it: planned as no demand",
				p->pool->name);
		}
		if (p->past_forecast <= 0)
			continue;
		log_error("pool %s: the forecast ends at %s, %.1f of the pool's %g hours of cover are "
			"past it and count as no demand, so the plan may fall short (export a forecast "
			"that reaches as far, or lower cover_hours); exit 75", p->pool->name, end,
			p->past_forecast, p->pool->cover_hours);
		status = EXIT_TEMPFAIL;
	}
	if (plan_depth_estimated(config, pools)) {
		log_error("%s from an estimated pool depth (Kafka could not be measured): the estimate "
			"counts no code consumed since the last qrpool-report (ever, for a pool no report has "
			"measured), so the plan may fall short; exit 75", dry_run ? "would plan" : "planned");
		status = EXIT_TEMPFAIL;
	}
	return status;
}

static int plan_run(const struct plan_options *options, const struct config *config)
{
	struct demand demand = { 0 };
	struct plan_pool *pools = calloc(config->pool_count, sizeof *pools);
	struct minted *minted = NULL;
	int64_t total = 0, short_by = 0;
	struct db db;
	int status;

	if (!pools)
		return EXIT_INTERNAL;
	status = plan_read_inputs(options, config, &demand);
	if (interrupt_requested()) {
		log_warn("interrupted while reading the demand: nothing planned");
		status = EXIT_TEMPFAIL;
		goto out;
	}
	if (!status)
		status = plan_check_period(options, &demand, config);
	if (status != EXIT_IO)
		status = exitcode_worst(status, plan_check_duplicates(&demand, config, options->sum));
	if (status) {
		if (demand.errors)
			log_error("%d bad demand line%s: nothing planned", demand.errors,
				demand.errors == 1 ? "" : "s");
	} else if (!(status = db_open_or_create(&db, config->db_path, config->busy_timeout_ms))) {
		db_busy_interruptible(&db);   /* a stop ends a wait for another's lock */
		status = plan_measure_depth(&db, config, pools);
		if (!status && options->dry_run) {
			struct plan_limits limits = { plan_capacity(options, config), options->max_codes };
			if (!(status = plan_measure(&db, config, pools, &demand, options->from)) &&
			    (short_by = plan_allocate(pools, config->pool_count, &limits)) < 0)
				status = EXIT_INTERNAL;   /* out of memory */
			if (!status) {
				short_by += limits.planned_over;
				plan_print_table(pools, config->pool_count);
				plan_report_shortfall(pools, config->pool_count, &limits);
				if (!(status = cli_close_stdout()))
					status = plan_check_total(plan_total(pools, config->pool_count));
				if (!status)
					status = plan_outcome(options, config, pools, &demand, short_by, 1);
			}
		} else if (!status && interrupt_requested()) {   /* (while Kafka was asked) */
			log_warn("interrupted before the plan was made: nothing planned");
			status = EXIT_TEMPFAIL;
		} else if (!status) {
			int64_t staged = 0;
			int began;

			if ((began = !(status = db_run_start(&db, "plan")))) {
				/* (a stop while the run's record waited for the lock) */
				status = interrupt_requested() ? EXIT_TEMPFAIL :
					plan_write(&db, options, config, &demand, pools, &minted, &total,
						&short_by);
				if (!status) {   /* (one transaction: all or nothing) */
					log_info("planned %lld codes", (long long)total);
					staged = total;
					status = plan_print_items(pools, minted, total);
				}
				if (!status)   /* the plan stands */
					status = plan_outcome(options, config, pools, &demand, short_by, 0);
				/* The run's end is recorded after a stop too: its lock
				 * waited for as configured, no longer cut short. */
				if (interrupt_requested())
					db_busy_bounded(&db, config->busy_timeout_ms);
				db_run_end(&db, (int64_t)demand.count, staged, status);
			}
			/* (a stop in db_run_start's lock wait is said there) */
			if (began && status && !staged && interrupt_requested())
				log_warn("interrupted before the plan was made: nothing planned");
		}
		db_close(&db);
	}
out:
	free(minted);
	free(pools);
	plan_demand_free(&demand);
	return status;
}

int main(int argc, char **argv)
{
	struct plan_options options;
	struct config config;
	int status;

	cli_hold_std_fds();
	log_init(argv[0], 0);
	/* SIGINT/SIGTERM/SIGHUP stop the run where it can stop cleanly (the plan's
	 * transaction is all or nothing, its lines are printed whole), recorded
	 * as 75; SIGPIPE is ignored: stdout closed by the next stage is a write
	 * error (74), said, not death. */
	interrupt_install();
	if ((status = plan_parse_options(argc, argv, &options)))
		return status;
	log_init(argv[0], options.common.verbosity);
	if ((status = cli_help_or_version(&options.common, plan_usage)) >= 0)
		return status;
	if (!options.common.dump_config && cli_reads_stdin(options.inputs, options.input_count) &&
	    isatty(STDIN_FILENO))
		return cli_usage_error("the demand comes from files or a pipe, and stdin is a terminal");
	if ((status = config_load(&config, options.common.config_path)))
		return status;
	/* A link pool whose URLs cannot fit a QR code: refused before any code is
	 * minted for render to refuse every night. */
	if ((status = config_apply_reserve(&config, options.reserve)) ||
	    (status = qrfit_check_config(&config))) {
		config_free(&config);
		return status;
	}
	if (options.common.dump_config) {
		status = config_dump(&config, stdout);
		status = exitcode_worst(status, cli_close_stdout());
	} else
		status = plan_run(&options, &config);
	config_free(&config);
	return status;
}

/* qrpool-pending: lists staged codes as item lines (to resume a run or to
 * audit), or counts them per pool and state. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "config.h"
#include "db.h"
#include "exitcode.h"
#include "log.h"
#include "parse.h"

#define PENDING_STATES 4
static const char *const pending_state_names[PENDING_STATES] = {
	"planned", "fetched", "published", "failed"
};

/* Every query goes by the state index, named: with statistics in the DB (an
 * ANALYZE, a PRAGMA optimize) SQLite would rather scan the whole table in id
 * order than sort a state's range, and a year of published codes turns the
 * nightly fill's first read from milliseconds into minutes. */
#define PENDING_BY_STATE "INDEXED BY codes_by_state "
/* The time of a code's last change is in its row, not in the index: the
 * condition is there only with --since, so that without it the index alone
 * answers the counts. */
#define PENDING_SINCE(options) ((options)->since ? "AND updated_at >= ?8 " : "")

struct pending_options {
	struct cli_common common;
	int states[PENDING_STATES];   /* 1 = listed; all 0 = every state */
	const char *pool;
	int64_t limit;                /* -1: no limit */
	int64_t since;                /* unix seconds: only codes changed since; 0: all */
	int count;
};

static void pending_usage(void)
{
	printf("Usage: qrpool-pending [OPTIONS]\n"
		"List staged codes as item lines (request_id TAB pool), oldest first, to feed a\n"
		"resumed run, under the fills' lock (beside a fill it would fetch codes twice):\n"
		"  flock -n -E 75 /run/lock/qrpool-fill.lock bash -o pipefail -c \\\n"
		"    'qrpool-pending --state planned,fetched | qrpool-fetch ... | qrpool-publish'\n\n"
		"  -s, --state LIST   planned, fetched, published, failed (comma-separated or\n"
		"                     repeated; default: all)\n"
		"  -p, --pool NAME    only this pool\n"
		"  -l, --limit N      at most N lines (not with --count)\n"
		"      --since DURATION  only codes changed within DURATION: their state, or a\n"
		"                     failed attempt at a code still planned (e.g. 24h with\n"
		"                     --state failed: the failures of the last day)\n"
		"      --count        a table of counts per pool and state instead of items\n"
		CLI_COMMON_HELP
		"\nExit status: 0 done, 64 usage, 70 out of memory, 74 I/O error, 75 the staging\n"
		"DB stayed locked past busy_timeout, 78 bad config.\n");
}

static int pending_parse_states(const char *list, int *states)
{
	char *copy, *save = NULL;
	int status = 0;

	/* An empty list (--state "$S" with S unset) would list every state,
	 * published included: refused. */
	if (!list[strspn(list, ",")])
		return cli_usage_error("--state: no state given (planned, fetched, published, failed)");
	if (!(copy = strdup(list)))
		return EXIT_INTERNAL;
	for (char *name = strtok_r(copy, ",", &save); name && !status; name = strtok_r(NULL, ",", &save)) {
		int found = 0;
		for (int i = 0; i < PENDING_STATES; i++)
			if (!strcmp(name, pending_state_names[i]))
				states[i] = found = 1;
		if (!found)
			status = cli_usage_error("--state: unknown state '%s' (planned, fetched, published, "
				"failed)", name);
	}
	free(copy);
	return status;
}

static int pending_parse_options(int argc, char **argv, struct pending_options *options)
{
	enum { OPT_COUNT = CLI_OPT_FIRST_TOOL_OPTION, OPT_SINCE };
	static const struct option longs[] = {
		CLI_COMMON_LONG,
		{ "state", required_argument, NULL, 's' },
		{ "pool", required_argument, NULL, 'p' },
		{ "limit", required_argument, NULL, 'l' },
		{ "count", no_argument, NULL, OPT_COUNT },
		{ "since", required_argument, NULL, OPT_SINCE },
		{ NULL, 0, NULL, 0 },
	};
	char why[PARSE_WHY_SIZE];
	int64_t ms;
	int opt, status;

	memset(options, 0, sizeof *options);
	options->limit = -1;
	while ((opt = cli_getopt(argc, argv, CLI_COMMON_SHORT "s:p:l:", longs, "s")) != -1) {
		if (cli_common_option(&options->common, opt, optarg))
			continue;
		switch (opt) {
		case 's':
			if ((status = pending_parse_states(optarg, options->states)))
				return status;
			break;
		case 'p':
			options->pool = optarg;   /* (once: cli_getopt) */
			break;
		case 'l':
			if (parse_int64(optarg, 0, INT64_MAX, &options->limit, why))
				return cli_usage_error("--limit: %s", why);
			break;
		case OPT_COUNT:
			options->count = 1;
			break;
		case OPT_SINCE:
			if (parse_duration_ms(optarg, &ms, why))
				return cli_usage_error("--since: %s", why);
			options->since = (int64_t)time(NULL) - ms / 1000;
			break;
		default:
			return cli_bad_option(argv, opt);
		}
	}
	if (optind < argc)
		return cli_usage_error("unexpected argument '%s'", argv[optind]);
	/* (A count of at most N, or of N lines? Neither is what a script means.) */
	if (options->count && options->limit >= 0)
		return cli_usage_error("--limit lists at most N items: it has no meaning with --count");
	return 0;
}

/* The filters as SQL over bound parameters: states ?1..?4 (unused ones are
 * NULL), the pool ?5, the time of the last change ?8 (in the SQL only with
 * --since: see PENDING_SINCE). */
static void pending_bind_filters(sqlite3_stmt *stmt, const struct pending_options *options)
{
	const int *states = options->states;
	int any = 0;

	if (options->pool)
		sqlite3_bind_text(stmt, 5, options->pool, -1, SQLITE_STATIC);
	if (options->since)   /* (?8 is in the SQL only then: PENDING_SINCE) */
		sqlite3_bind_int64(stmt, 8, options->since);

	for (int i = 0; i < PENDING_STATES; i++)
		any |= states[i];
	for (int i = 0; i < PENDING_STATES; i++)
		if (!any || states[i])
			sqlite3_bind_text(stmt, i + 1, pending_state_names[i], -1, SQLITE_STATIC);
}

/* The list is read whole, then printed: while the next stage is slow to take
 * the lines, no read snapshot stays open (an open snapshot stops every
 * checkpoint, and the WAL grows by the whole night's writes). One query with
 * the state index and a sort: paging by id cannot use that index, and would
 * read the rest of the list again for every page. */
/* The config's pools as a JSON array, for json_each(): codes of pools no
 * longer in the config are not listed unless --pool asks for them (every
 * stage would refuse them as bad lines, night after night). NULL: no memory. */
static char *pending_pools_json(const struct config *config)
{
	char *text = NULL;
	size_t size = 0;
	FILE *out = open_memstream(&text, &size);

	if (!out)
		return NULL;
	putc('[', out);
	for (size_t i = 0; i < config->pool_count; i++)   /* names are [A-Za-z0-9._-] */
		fprintf(out, "%s\"%s\"", i ? "," : "", config->pools[i].name);
	putc(']', out);
	if (fclose(out) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

/* Says how many codes the list leaves out, per pool no longer configured. */
static int pending_report_unlisted(struct db *db, const struct pending_options *options,
	const char *pools)
{
	char sql[512];
	sqlite3_stmt *stmt;
	int status, rc;

	if (options->pool)
		return 0;
	snprintf(sql, sizeof sql, "SELECT pool, count(*) FROM codes " PENDING_BY_STATE
		"WHERE state IN (?1, ?2, ?3, ?4) %s"
		"AND pool NOT IN (SELECT value FROM json_each(?9)) GROUP BY pool ORDER BY pool",
		PENDING_SINCE(options));
	if ((status = db_prepare(db, &stmt, sql)))
		return status;
	db_log_plan(db, stmt, "counting codes of pools not in the config");
	pending_bind_filters(stmt, options);
	sqlite3_bind_text(stmt, 9, pools, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *pool = (const char *)sqlite3_column_text(stmt, 0);

		log_warn("%lld codes of pool '%s', which is not in the config, are not listed "
			"(qrpool-pending --pool %s lists them)", (long long)sqlite3_column_int64(stmt, 1),
			pool, pool);
	}
	sqlite3_finalize(stmt);
	return rc == SQLITE_DONE ? 0 : db_fail(db, rc, "counting the codes not listed");
}

/* The list is read whole, then printed: while the next stage is slow to take
 * the lines, no read snapshot stays open (an open snapshot stops every
 * checkpoint, and the WAL grows by the whole night's writes). One query with
 * the state index and a sort: paging by id cannot use that index, and would
 * read the rest of the list again for every page. */
static int pending_list(struct db *db, const struct config *config,
	const struct pending_options *options)
{
	char *pools = pending_pools_json(config), *text = NULL, sql[512];
	size_t size = 0;
	FILE *buffer = pools ? open_memstream(&text, &size) : NULL;
	sqlite3_stmt *stmt;
	int status, rc;

	if (!buffer) {
		free(pools);
		return EXIT_INTERNAL;
	}
	snprintf(sql, sizeof sql, "SELECT request_id, pool FROM codes " PENDING_BY_STATE
		"WHERE state IN (?1, ?2, ?3, ?4) %sAND (?5 IS NULL AND pool IN "
		"(SELECT value FROM json_each(?9)) OR pool = ?5) ORDER BY id LIMIT ?6",
		PENDING_SINCE(options));
	if ((status = db_prepare(db, &stmt, sql))) {
		fclose(buffer);
		free(text);
		free(pools);
		return status;
	}
	db_log_plan(db, stmt, "listing codes");
	pending_bind_filters(stmt, options);
	sqlite3_bind_int64(stmt, 6, options->limit);
	sqlite3_bind_text(stmt, 9, pools, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
		fprintf(buffer, "%s\t%s\n", sqlite3_column_text(stmt, 0), sqlite3_column_text(stmt, 1));
	sqlite3_finalize(stmt);   /* ends the read transaction */
	if (fclose(buffer) != 0)
		status = EXIT_INTERNAL;
	else if (rc != SQLITE_DONE)
		status = db_fail(db, rc, "listing codes");
	else
		status = pending_report_unlisted(db, options, pools);
	/* A failure is said at once, while errno is the write's: closing the DB
	 * next may set it (EAGAIN from a lock another connection holds). */
	if (!status && size && fwrite(text, 1, size, stdout) != size)
		status = cli_stdout_failed();
	free(text);
	free(pools);
	return status;
}

struct pending_tally {
	char *pool;
	int64_t counts[PENDING_STATES];
};

static int pending_tally_compare(const void *a, const void *b)
{
	return strcmp(((const struct pending_tally *)a)->pool, ((const struct pending_tally *)b)->pool);
}

/* The tally of a pool, added if new; NULL: no memory. */
static struct pending_tally *pending_tally_of(struct pending_tally **tallies, size_t *count,
	const char *pool)
{
	struct pending_tally *grown;

	for (size_t i = 0; i < *count; i++)
		if (!strcmp((*tallies)[i].pool, pool))
			return &(*tallies)[i];
	if (!(grown = realloc(*tallies, (*count + 1) * sizeof *grown)))
		return NULL;
	*tallies = grown;
	memset(&grown[*count], 0, sizeof *grown);
	if (!(grown[*count].pool = strdup(pool)))
		return NULL;
	return &grown[(*count)++];
}

/* Counted per state and pool in the state index's own order, which that
 * index covers (no row is read: a year of codes is counted in seconds, not
 * minutes, as the morning audit's --count is); then a line per pool. */
static int pending_count(struct db *db, const struct config *config,
	const struct pending_options *options)
{
	struct pending_tally *tallies = NULL, *tally;
	size_t count = 0;
	char sql[512];
	sqlite3_stmt *stmt;
	int status, rc;

	snprintf(sql, sizeof sql, "SELECT state, pool, count(*) FROM codes " PENDING_BY_STATE
		"WHERE state IN (?1, ?2, ?3, ?4) AND (?5 IS NULL OR pool = ?5) %s"
		"GROUP BY state, pool", PENDING_SINCE(options));
	if ((status = db_prepare(db, &stmt, sql)))
		return status;
	db_log_plan(db, stmt, "counting codes");
	pending_bind_filters(stmt, options);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *state = (const char *)sqlite3_column_text(stmt, 0);
		const char *pool = (const char *)sqlite3_column_text(stmt, 1);
		int column = 0;

		/* (NULL only when SQLite is out of memory: the columns are NOT NULL) */
		if (!state || !pool || !(tally = pending_tally_of(&tallies, &count, pool))) {
			rc = SQLITE_NOMEM;
			break;
		}
		while (column < PENDING_STATES && strcmp(pending_state_names[column], state))
			column++;
		if (column < PENDING_STATES)   /* (the schema's CHECK allows no other) */
			tally->counts[column] += sqlite3_column_int64(stmt, 2);
	}
	sqlite3_finalize(stmt);
	if (rc == SQLITE_DONE) {
		if (count)   /* (tallies is NULL when there is no code) */
			qsort(tallies, count, sizeof *tallies, pending_tally_compare);
		printf("%-24s %10s %10s %10s %10s %10s\n", "pool", "planned", "fetched", "published",
			"failed", "total");
		for (size_t i = 0; i < count; i++) {
			int64_t total = 0;

			printf("%-24s", tallies[i].pool);
			for (int column = 0; column < PENDING_STATES; column++) {
				printf(" %10lld", (long long)tallies[i].counts[column]);
				total += tallies[i].counts[column];
			}
			printf(" %10lld%s\n", (long long)total,
				config_pool(config, tallies[i].pool) ? "" : "  (not in the config)");
		}
	}
	for (size_t i = 0; i < count; i++)
		free(tallies[i].pool);
	free(tallies);
	if (rc == SQLITE_NOMEM) {
		log_error("out of memory counting codes");
		return EXIT_INTERNAL;
	}
	return rc == SQLITE_DONE ? 0 : db_fail(db, rc, "counting codes");
}

/* --pool names a pool of the config, or one that is not any more but still
 * has codes staged (to list them). 0 or 64. */
static int pending_check_pool(struct db *db, const struct config *config, const char *pool)
{
	char names[1024];
	sqlite3_stmt *stmt;
	int status, rc;

	if (!pool || config_pool(config, pool))
		return 0;
	if ((status = db_prepare(db, &stmt, "SELECT 1 FROM codes WHERE pool = ? LIMIT 1")))
		return status;
	sqlite3_bind_text(stmt, 1, pool, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	sqlite3_finalize(stmt);
	if (rc == SQLITE_ROW) {
		log_warn("pool '%s' is not in %s: its codes are listed as they are staged", pool,
			config->path);
		return 0;
	}
	if (rc != SQLITE_DONE)
		return db_fail(db, rc, "looking for the pool");
	config_pool_names(config, names, sizeof names);
	return cli_usage_error("--pool: no pool '%s' in %s (pools: %s), nor codes of it staged", pool,
		config->path, names);
}

int main(int argc, char **argv)
{
	struct pending_options options;
	struct config config;
	struct db db;
	int status;

	cli_hold_std_fds();
	log_init(argv[0], 0);
	/* stdout closed by the next stage: a write error (74), said, not death by SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	if ((status = pending_parse_options(argc, argv, &options)))
		return status;
	log_init(argv[0], options.common.verbosity);
	if ((status = cli_help_or_version(&options.common, pending_usage)) >= 0)
		return status;
	if ((status = config_load(&config, options.common.config_path)))
		return status;
	if (options.common.dump_config) {
		status = config_dump(&config, stdout);
	} else if (!(status = db_open(&db, config.db_path, config.busy_timeout_ms))) {
		if (!(status = pending_check_pool(&db, &config, options.pool)))
			status = options.count ? pending_count(&db, &config, &options) :
				pending_list(&db, &config, &options);
		db_close(&db);
	}
	config_free(&config);
	return exitcode_worst(status, cli_close_stdout());
}

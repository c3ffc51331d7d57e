/* qrpool-prune: deletes from the staging DB the history nothing reads any
 * more: codes published or failed long ago (with any image they kept), and
 * old runs. Bindings, plans, and every code still in flight stay. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "config.h"
#include "db.h"
#include "exitcode.h"
#include "interrupt.h"
#include "log.h"
#include "parse.h"
#include "progress.h"

#define PRUNE_DEFAULT_AGE "30d"
/* The last day is what the report's failures and a morning audit read. */
#define PRUNE_MIN_AGE_MS (24 * 3600 * 1000LL)
#define PRUNE_DEFAULT_BATCH 2000
#define PRUNE_MAX_BATCH 100000
/* After each batch the lock is let go for as long as it was held, up to this:
 * a night's stage waiting on it gets its turn (SQLite's lock wait polls, and
 * a writer that begins again at once would win every time). */
#define PRUNE_MAX_PAUSE_S 1.0

/* The code states that are history: a code published or failed is never
 * changed again. */
static const char *const prune_states[] = { "published", "failed" };
#define PRUNE_STATES 2

struct prune_options {
	struct cli_common common;
	const char *age_text;
	int64_t age_ms;
	int64_t batch;
	int dry_run;
};

struct prune {
	struct db *db;
	const struct prune_options *options;
	double cutoff;            /* unix seconds: what changed before goes */
	int64_t upper;            /* only codes with an id below this go */
	sqlite3_stmt *select, *has_image, *drop_image, *drop_code;
	int64_t *ids;
	struct progress progress;
	int64_t codes[PRUNE_STATES], images, runs;
	int64_t done;
};

static void prune_usage(void)
{
	printf("Usage: qrpool-prune [OPTIONS]\n"
		"Delete from the staging DB the history no tool reads: codes published or failed\n"
		"longer ago than --older-than (with any image still kept), and the runs that\n"
		"ended before then. Codes planned or fetched, bindings and plans stay; so do each\n"
		"stage's last run and last successful run (qrpool-report shows them), the newest\n"
		"code, and the codes published since a pool's last depth snapshot. Runs in\n"
		"batches, one transaction each, and lets the lock go between them: run it by day\n"
		"(see the README: Growth, disk and maintenance).\n\n"
		"      --older-than AGE  what changed longer ago than AGE goes (default "
		PRUNE_DEFAULT_AGE ",\n"
		"                     at least 1d; units s, m, h, d)\n"
		"      --batch N      codes or runs per transaction (default %d, at most %d)\n"
		"  -n, --dry-run      change nothing: print what would go (TAB-separated:\n"
		"                     what, pool, count; what = published, failed, images, runs)\n"
		CLI_COMMON_HELP
		"\nExit status: 0 done (nothing left to delete), 64 usage, 70 internal error, 74 I/O\n"
		"error, 75 stopped early (a signal, or the DB locked past busy_timeout: what was\n"
		"deleted stays deleted, a rerun goes on), 78 bad config.\n",
		PRUNE_DEFAULT_BATCH, PRUNE_MAX_BATCH);
}

static int prune_parse_options(int argc, char **argv, struct prune_options *options)
{
	enum { OPT_OLDER_THAN = CLI_OPT_FIRST_TOOL_OPTION, OPT_BATCH };
	static const struct option longs[] = {
		CLI_COMMON_LONG,
		{ "older-than", required_argument, NULL, OPT_OLDER_THAN },
		{ "batch", required_argument, NULL, OPT_BATCH },
		{ "dry-run", no_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	char why[PARSE_WHY_SIZE];
	int opt;

	memset(options, 0, sizeof *options);
	options->age_text = PRUNE_DEFAULT_AGE;
	options->batch = PRUNE_DEFAULT_BATCH;
	while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORT "n", longs, NULL)) != -1) {
		if (cli_common_option(&options->common, opt, optarg))
			continue;
		switch (opt) {
		case OPT_OLDER_THAN:
			options->age_text = optarg;
			break;
		case OPT_BATCH:
			if (parse_int64(optarg, 1, PRUNE_MAX_BATCH, &options->batch, why))
				return cli_usage_error("--batch: %s", why);
			break;
		case 'n':
			options->dry_run = 1;
			break;
		default:
			return cli_bad_option(argv, opt);
		}
	}
	if (optind < argc)
		return cli_usage_error("unexpected argument '%s'", argv[optind]);
	if (parse_duration_ms(options->age_text, &options->age_ms, why))
		return cli_usage_error("--older-than: %s", why);
	if (options->age_ms < PRUNE_MIN_AGE_MS)
		return cli_usage_error("--older-than %s: at least 1d (the last day's codes are what the "
			"report and the morning audit read)", options->age_text);
	return 0;
}

/* One integer from a one-row query with up to two integer parameters; *found
 * is 0 when the row or its value is NULL. 0 or an exit code. */
static int prune_query_int(struct db *db, const char *sql, int64_t a, int64_t b, int64_t *value,
	int *found, const char *what)
{
	sqlite3_stmt *stmt;
	int status, rc;

	if ((status = db_prepare(db, &stmt, sql)))
		return status;
	if (sqlite3_bind_parameter_count(stmt) >= 1)
		sqlite3_bind_int64(stmt, 1, a);
	if (sqlite3_bind_parameter_count(stmt) >= 2)
		sqlite3_bind_int64(stmt, 2, b);
	rc = sqlite3_step(stmt);
	*found = rc == SQLITE_ROW && sqlite3_column_type(stmt, 0) != SQLITE_NULL;
	if (*found)
		*value = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_fail(db, rc, what);
}

/* The codes that may go are those below `upper`: made before the cutoff (ids
 * grow with time, so a binary search over them finds the first code made
 * since, in a few dozen key lookups), and never the newest code. SQLite gives
 * a new row the largest id plus one: with the newest row kept, no id is ever
 * handed out twice, which the depth snapshots' floor_id relies on. */
static int prune_find_upper(struct prune *prune)
{
	int64_t max_id = 0, lo = 1, hi, created;
	int found, status;

	if ((status = prune_query_int(prune->db, "SELECT max(id) FROM codes", 0, 0, &max_id, &found,
			"finding the newest code")))
		return status;
	prune->upper = 0;
	if (!found)
		return 0;
	hi = max_id + 1;
	while (lo < hi) {   /* the first id from which codes were made at or after the cutoff */
		int64_t mid = lo + (hi - lo) / 2;

		if ((status = prune_query_int(prune->db, "SELECT created_at FROM codes WHERE id >= ?1 "
				"ORDER BY id LIMIT 1", mid, 0, &created, &found, "finding the codes made "
				"before the cutoff")))
			return status;
		if (found && created >= (int64_t)prune->cutoff)
			hi = mid;
		else
			lo = mid + 1;
	}
	prune->upper = lo < max_id ? lo : max_id;
	return 0;
}

/* The next pool after `after` ("" for the first) with codes in `state`, by
 * the state index's ranges: *pool is a copy to free, NULL when there is none. */
static int prune_next_pool(struct prune *prune, const char *state, const char *after, char **pool)
{
	sqlite3_stmt *stmt;
	int status, rc;

	if ((status = db_prepare(prune->db, &stmt, "SELECT pool FROM codes INDEXED BY codes_by_state "
			"WHERE state = ?1 AND pool > ?2 ORDER BY pool LIMIT 1")))
		return status;
	sqlite3_bind_text(stmt, 1, state, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, after, -1, SQLITE_STATIC);
	*pool = NULL;
	if ((rc = sqlite3_step(stmt)) == SQLITE_ROW &&
			!(*pool = strdup((const char *)sqlite3_column_text(stmt, 0))))
		rc = SQLITE_NOMEM;
	sqlite3_finalize(stmt);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_fail(prune->db, rc, "listing the pools");
}

/* A pool's published codes are kept from its last depth snapshot on:
 * qrpool-plan's DB-only estimate (Kafka down) counts them. */
static int prune_pool_cutoff(struct prune *prune, const char *state, const char *pool,
	double *cutoff)
{
	sqlite3_stmt *stmt;
	int status, rc;

	*cutoff = prune->cutoff;
	if (strcmp(state, "published"))
		return 0;
	if ((status = db_prepare(prune->db, &stmt,
			"SELECT max(taken_at) FROM depth_snapshots WHERE pool = ?")))
		return status;
	sqlite3_bind_text(stmt, 1, pool, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(stmt)) == SQLITE_ROW && sqlite3_column_type(stmt, 0) != SQLITE_NULL &&
			sqlite3_column_double(stmt, 0) < *cutoff)
		*cutoff = sqlite3_column_double(stmt, 0);
	sqlite3_finalize(stmt);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 :
		db_fail(prune->db, rc, "reading the last depth snapshot");
}

/* The pause after a batch: as long as the lock was held, ended by a signal. */
static void prune_pause(double held)
{
	struct timespec pause;

	if (held > PRUNE_MAX_PAUSE_S)
		held = PRUNE_MAX_PAUSE_S;
	if (held <= 0 || interrupt_requested())
		return;
	pause.tv_sec = (time_t)held;
	pause.tv_nsec = (long)((held - (double)pause.tv_sec) * 1e9);
	nanosleep(&pause, NULL);   /* (a signal ends it: EINTR) */
}

/* One statement stepped to its end with one id bound: its changes, or -1
 * with *status set. */
static int64_t prune_step_id(struct prune *prune, sqlite3_stmt *stmt, int64_t id, int *status,
	const char *what)
{
	int rc;

	sqlite3_reset(stmt);
	sqlite3_bind_int64(stmt, 1, id);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
		;
	if (rc != SQLITE_DONE) {
		*status = db_fail(prune->db, rc, what);
		return -1;
	}
	return sqlite3_changes(prune->db->handle);
}

/* The batch's codes and their images deleted (counted, on a dry run), in
 * *codes and *images. */
static int prune_drop(struct prune *prune, size_t count, int64_t *codes, int64_t *images)
{
	int status = 0;

	*codes = *images = 0;
	for (size_t i = 0; i < count && !status; i++) {
		int64_t id = prune->ids[i], image, code;

		if (prune->options->dry_run) {
			sqlite3_reset(prune->has_image);
			sqlite3_bind_int64(prune->has_image, 1, id);
			image = sqlite3_step(prune->has_image) == SQLITE_ROW;
			code = 1;
		} else {
			/* the image first: it refers to its code */
			if ((image = prune_step_id(prune, prune->drop_image, id, &status,
					"deleting an image")) < 0 ||
			    (code = prune_step_id(prune, prune->drop_code, id, &status,
					"deleting a code")) < 0)
				break;
		}
		*images += image;
		*codes += code;
	}
	sqlite3_reset(prune->has_image);
	return status;
}

/* One batch of a pool's codes in `state` changed before `cutoff`, after id
 * *last: *more is 0 once the pool has none left. */
static int prune_codes_batch(struct prune *prune, int state, const char *pool, double cutoff,
	int64_t *last, int *more)
{
	sqlite3_stmt *stmt = prune->select;
	size_t count = 0;
	int64_t codes = 0, images = 0;
	double began;
	int status, rc;

	if ((status = prune->options->dry_run ? db_exec(prune->db, "BEGIN") :
			db_begin_immediate(prune->db)))
		return status;
	began = db_monotonic();
	sqlite3_reset(stmt);
	sqlite3_bind_text(stmt, 1, prune_states[state], -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, pool, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 3, *last);
	sqlite3_bind_int64(stmt, 4, prune->upper);
	sqlite3_bind_double(stmt, 5, cutoff);
	sqlite3_bind_int64(stmt, 6, prune->options->batch);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
		prune->ids[count++] = sqlite3_column_int64(stmt, 0);
	sqlite3_reset(stmt);
	if (rc != SQLITE_DONE)
		status = db_fail(prune->db, rc, "finding the codes to delete");
	if (!status)
		status = prune_drop(prune, count, &codes, &images);
	if (!status && !prune->options->dry_run)
		status = db_commit(prune->db);
	if (status || prune->options->dry_run)
		db_rollback(prune->db);
	if (status)
		return status;
	prune->codes[state] += codes;   /* (counted once committed) */
	prune->images += images;
	*more = count == (size_t)prune->options->batch;
	if (count)
		*last = prune->ids[count - 1];
	prune->done += (int64_t)count;
	progress_update(&prune->progress, prune->done, NULL);
	if (!prune->options->dry_run && *more)
		prune_pause(db_monotonic() - began);
	return 0;
}

/* Every pool's codes in `state` that may go; a dry run prints their count
 * per pool (every pool with codes in that state). */
static int prune_codes(struct prune *prune, int state)
{
	char *pool = NULL, *next;
	int status;

	for (;;) {
		double cutoff;
		int64_t last = 0, before;
		int more = 1;

		status = prune_next_pool(prune, prune_states[state], pool ? pool : "", &next);
		free(pool);
		if (status || !(pool = next))
			return status;
		if ((status = prune_pool_cutoff(prune, prune_states[state], pool, &cutoff)))
			break;
		before = prune->codes[state];
		while (more && !status) {
			if (interrupt_requested())
				status = EXIT_TEMPFAIL;
			else
				status = prune_codes_batch(prune, state, pool, cutoff, &last, &more);
		}
		if (status)
			break;
		if (prune->options->dry_run)
			printf("%s\t%s\t%lld\n", prune_states[state], pool,
				(long long)(prune->codes[state] - before));
	}
	free(pool);
	return status;
}

/* The progress line's total: every code of the states below the bound, by
 * the index alone (an upper bound of what goes). Only for a terminal. */
static int prune_count_candidates(struct prune *prune)
{
	int64_t count = 0;
	int status, found;

	progress_init(&prune->progress, 0);
	if (!prune->progress.enabled)
		return 0;
	if ((status = prune_query_int(prune->db, "SELECT count(*) FROM codes INDEXED BY codes_by_state "
			"WHERE state IN ('published', 'failed') AND id < ?1", prune->upper, 0, &count, &found,
			"counting the codes")))
		return status;
	prune->progress.total = count;
	return 0;
}

/* Runs that ended before the cutoff, but never a stage's last run or its last
 * successful one, which qrpool-report shows. In batches, as the codes. */
static int prune_runs(struct prune *prune)
{
	sqlite3_stmt *stmt;
	int status, rc;
	int64_t deleted;

	if ((status = db_prepare(prune->db, &stmt, prune->options->dry_run ?
			"SELECT count(*) FROM runs WHERE ended_at < ?1 "
			"AND id NOT IN (SELECT max(id) FROM runs GROUP BY stage) "
			"AND id NOT IN (SELECT max(id) FROM runs WHERE exit_status = 0 GROUP BY stage)" :
			"DELETE FROM runs WHERE id IN (SELECT id FROM runs WHERE ended_at < ?1 "
			"AND id NOT IN (SELECT max(id) FROM runs GROUP BY stage) "
			"AND id NOT IN (SELECT max(id) FROM runs WHERE exit_status = 0 GROUP BY stage) "
			"ORDER BY id LIMIT ?2)")))
		return status;
	sqlite3_bind_double(stmt, 1, prune->cutoff);
	sqlite3_bind_int64(stmt, 2, prune->options->batch);
	do {
		double began = db_monotonic();

		if (interrupt_requested()) {
			status = EXIT_TEMPFAIL;
			break;
		}
		if (prune->options->dry_run) {
			if ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
				prune->runs = sqlite3_column_int64(stmt, 0);
			deleted = 0;
		} else {
			rc = sqlite3_step(stmt);
			deleted = sqlite3_changes(prune->db->handle);
			prune->runs += deleted;
		}
		sqlite3_reset(stmt);
		if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
			status = db_fail(prune->db, rc, "deleting old runs");
			break;
		}
		if (deleted == prune->options->batch)
			prune_pause(db_monotonic() - began);
	} while (deleted == prune->options->batch);
	sqlite3_finalize(stmt);
	return status;
}

static int prune_prepare(struct prune *prune)
{
	int status;

	if (!(prune->ids = malloc((size_t)prune->options->batch * sizeof *prune->ids)))
		return EXIT_INTERNAL;
	/* By the state index: its range for one pool, from the last id on. */
	if ((status = db_prepare(prune->db, &prune->select, "SELECT id FROM codes "
			"INDEXED BY codes_by_state WHERE state = ?1 AND pool = ?2 AND id > ?3 AND id < ?4 "
			"AND updated_at < ?5 ORDER BY id LIMIT ?6")) ||
	    (status = db_prepare(prune->db, &prune->has_image,
			"SELECT 1 FROM images WHERE code_id = ?1")) ||
	    (status = db_prepare(prune->db, &prune->drop_image,
			"DELETE FROM images WHERE code_id = ?1")) ||
	    (status = db_prepare(prune->db, &prune->drop_code,
			"DELETE FROM codes WHERE id = ?1 AND (state = 'published' OR state = 'failed')")))
		return status;
	db_log_plan(prune->db, prune->select, "the codes to delete");
	return 0;
}

static void prune_finalize(struct prune *prune)
{
	sqlite3_finalize(prune->select);
	sqlite3_finalize(prune->has_image);
	sqlite3_finalize(prune->drop_image);
	sqlite3_finalize(prune->drop_code);
	free(prune->ids);
}

/* The rest of a dry run's figures, after the codes' per pool: the images
 * and the runs, in all (no pool). */
static void prune_print(const struct prune *prune)
{
	printf("images\t\t%lld\nruns\t\t%lld\n", (long long)prune->images, (long long)prune->runs);
}

static void prune_summary(const struct prune *prune, int status, double seconds)
{
	char before[64];
	int64_t codes = prune->codes[0] + prune->codes[1];

	parse_format_iso((time_t)prune->cutoff, before, sizeof before);
	log_msg(status ? LOG_WARN : LOG_INFO, "%s %lld codes (%lld published, %lld failed) with %lld "
		"images, and %lld runs, older than %s (before %s), in %.1f s%s",
		prune->options->dry_run ? "would delete" : "deleted", (long long)codes,
		(long long)prune->codes[0], (long long)prune->codes[1], (long long)prune->images,
		(long long)prune->runs, prune->options->age_text, before, seconds,
		status == EXIT_TEMPFAIL ? "; stopped early: a rerun goes on" :
		status ? "; stopped by the error above" : "");
}

static int prune_run(const struct prune_options *options, const struct config *config)
{
	struct prune prune = { .options = options };
	struct db db;
	double started = db_monotonic();
	int status;

	if ((status = db_open(&db, config->db_path, config->busy_timeout_ms)))
		return status;
	db_busy_interruptible(&db);
	prune.db = &db;
	prune.cutoff = (double)time(NULL) - (double)options->age_ms / 1000;
	if (!options->dry_run && (status = db_run_start(&db, "prune"))) {
		db_close(&db);
		return status;
	}
	if (!(status = prune_prepare(&prune)) && !(status = prune_find_upper(&prune)) &&
	    !(status = prune_count_candidates(&prune))) {
		for (int s = 0; s < PRUNE_STATES && !status; s++)
			status = prune_codes(&prune, s);
		if (!status)
			status = prune_runs(&prune);
	}
	progress_end(&prune.progress);
	prune_finalize(&prune);
	if (interrupt_requested())
		status = exitcode_worst(status, EXIT_TEMPFAIL);
	if (!status && options->dry_run)
		prune_print(&prune);
	prune_summary(&prune, status, db_monotonic() - started);
	if (!options->dry_run)
		db_run_end(&db, prune.done, prune.codes[0] + prune.codes[1], status);
	db_close(&db);
	return status;
}

int main(int argc, char **argv)
{
	struct prune_options options;
	struct config config;
	int status;

	db_library_init();
	cli_hold_std_fds();
	log_init(argv[0], 0);
	signal(SIGPIPE, SIG_IGN);
	if ((status = prune_parse_options(argc, argv, &options)))
		return status;
	log_init(argv[0], options.common.verbosity);
	if ((status = cli_help_or_version(&options.common, prune_usage)) >= 0)
		return status;
	if ((status = config_load(&config, options.common.config_path)))
		return status;
	interrupt_install();
	status = options.common.dump_config ? config_dump(&config, stdout) :
		prune_run(&options, &config);
	config_free(&config);
	return exitcode_worst(status, cli_close_stdout());
}

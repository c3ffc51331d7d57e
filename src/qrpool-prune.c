/* qrpool-prune: deletes from the staging DB the history nothing reads any
 * more: codes published or failed long ago (with any image they kept), and
 * old runs. Bindings, plans, and every code still in flight stay. */
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
/* A hundred years: a cutoff before then is a typing slip, not a policy. */
#define PRUNE_MAX_AGE_MS (36500LL * 24 * 3600 * 1000)
#define PRUNE_DEFAULT_BATCH 2000
#define PRUNE_MAX_BATCH 100000
/* After each batch the lock is let go for as long as it was held, up to this:
 * a night's stage waiting on it gets its turn (SQLite's lock wait polls, and
 * a writer that begins again at once would win every time). */
#define PRUNE_MAX_PAUSE_S 1.0
/* A transaction reads at most this many ids' rows per code of a batch: the
 * rows to keep (codes still in flight, or published after a snapshot that
 * stopped being taken) may be millions, and read under the write lock in one
 * go they held it for seconds. */
#define PRUNE_WINDOW_PER_CODE 8
/* Codes dated further ahead than this were made while the clock ran ahead. */
#define PRUNE_CLOCK_SLACK_S 3600
/* After a signal, the run's end is still recorded if the lock comes free
 * within this: its counts are already in its row, batch by batch. */
#define PRUNE_END_WAIT_MS 1000

/* The code states that are history: a code published or failed is never
 * changed again. */
static const char *const prune_states[] = { "published", "failed" };

struct prune_options {
	struct cli_common common;
	const char *age_text;
	int64_t age_ms;
	int64_t batch;
	int dry_run;
};

/* A code of the batch: its id, and its state and pool for the tallies. */
struct prune_code {
	int64_t id;
	int state;                /* index in prune_states */
	char *pool;
};

struct prune_tally {
	int state;
	char *pool;
	int64_t count;
};

struct prune {
	struct db *db;
	const struct prune_options *options;
	double cutoff;            /* unix seconds: what changed before goes */
	int64_t upper;            /* only codes with an id below this go */
	sqlite3_stmt *select, *has_image, *drop_image, *drop_code, *count_run;
	struct prune_code *batch;
	struct prune_tally *tallies;   /* codes per state and pool */
	size_t tally_count;
	struct progress progress;
	int64_t images, runs;
};

static void prune_usage(void)
{
	printf("Usage: qrpool-prune [OPTIONS]\n"
		"Delete from the staging DB the history no tool reads: codes published or failed\n"
		"longer ago than --older-than (with any image still kept), and the runs that\n"
		"ended before then, or started before then and never ended (their process gone).\n"
		"Codes planned or fetched, bindings and plans stay; so do each stage's last run\n"
		"and last successful run (qrpool-report shows them), the newest code, and the\n"
		"codes published since a pool's last depth snapshot. Runs in batches, one\n"
		"transaction each, and lets the lock go between them: run it by day (see the\n"
		"README: qrpool-prune).\n\n"
		"      --older-than AGE  what changed longer ago than AGE goes (default "
		PRUNE_DEFAULT_AGE ",\n"
		"                     at least 1d, at most 36500d; a duration as in the config:\n"
		"                     30d, 720h)\n"
		"      --batch N      codes or runs per transaction (default %d, at most %d)\n"
		"  -n, --dry-run      delete nothing: print what would go (TAB-separated:\n"
		"                     what, pool, count; what = published, failed (a line per\n"
		"                     pool with codes to go), then images, runs (no pool))\n"
		CLI_COMMON_HELP
		"\nExit status: 0 done (nothing left to delete), 64 usage, 70 internal error, 74 I/O\n"
		"error, 75 stopped early (SIGINT, SIGTERM or SIGHUP, or the DB locked by another\n"
		"process past busy_timeout: what was deleted stays deleted, a rerun goes on),\n"
		"78 bad config.\n",
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
	while ((opt = cli_getopt(argc, argv, CLI_COMMON_SHORT "n", longs, NULL)) != -1) {
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
	if (options->age_ms < PRUNE_MIN_AGE_MS) {
		/* "30" is 30 seconds: the unit forgotten, most likely (not for 0,
		 * whose 0d is as short). */
		int bare = !options->age_text[strspn(options->age_text, "0123456789")] &&
			options->age_ms > 0;

		return cli_usage_error("--older-than %s: at least 1d (the last day's codes are what the "
			"report and the morning audit read)%s%s%s", options->age_text,
			bare ? "; a number alone is seconds: " : "", bare ? options->age_text : "",
			bare ? "d for days?" : "");
	}
	if (options->age_ms > PRUNE_MAX_AGE_MS)
		return cli_usage_error("--older-than %s: at most 36500d (a hundred years)",
			options->age_text);
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
 * since, in a few dozen key lookups; were the clock stepped back between
 * nights, the bound would only be off, as each row's own time decides
 * whether it goes), and never the newest code. A code dated more than
 * PRUNE_CLOCK_SLACK_S after now (made while the clock ran ahead, then put
 * back) counts as made before: taken for the first made since, it would keep
 * every older code after it until the clock caught up. SQLite gives
 * a new row the largest id plus one: with the newest row kept, no id is ever
 * handed out twice, which the depth snapshots' floor_id relies on. */
static int prune_find_upper(struct prune *prune)
{
	int64_t max_id = 0, lo = 1, hi, created, now = (int64_t)time(NULL);
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
		if (found && created >= (int64_t)prune->cutoff && created <= now + PRUNE_CLOCK_SLACK_S)
			hi = mid;
		else
			lo = mid + 1;
	}
	prune->upper = lo < max_id ? lo : max_id;
	return 0;
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

/* The batch's codes and their images deleted (the images counted, on a dry
 * run), the images in *images. */
static int prune_drop(struct prune *prune, size_t count, int64_t *images)
{
	int status = 0;

	*images = 0;
	for (size_t i = 0; i < count && !status; i++) {
		int64_t id = prune->batch[i].id, image;

		if (prune->options->dry_run) {
			sqlite3_reset(prune->has_image);
			sqlite3_bind_int64(prune->has_image, 1, id);
			image = sqlite3_step(prune->has_image) == SQLITE_ROW;
		} else if ((image = prune_step_id(prune, prune->drop_image, id, &status,
				"deleting an image")) < 0 ||   /* (first: it refers to its code) */
			   prune_step_id(prune, prune->drop_code, id, &status, "deleting a code") < 0) {
			break;
		}
		*images += image;
	}
	sqlite3_reset(prune->has_image);
	return status;
}

/* Adds the batch's codes to the tallies of their state and pool. 0 or
 * EXIT_INTERNAL. */
static int prune_tally(struct prune *prune, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		struct prune_code *code = &prune->batch[i];
		size_t t = 0;

		while (t < prune->tally_count && (prune->tallies[t].state != code->state ||
				strcmp(prune->tallies[t].pool, code->pool)))
			t++;
		if (t == prune->tally_count) {
			struct prune_tally *grown = realloc(prune->tallies, (t + 1) * sizeof *grown);

			if (!grown) {
				log_error("out of memory for the counts per pool");
				return EXIT_INTERNAL;
			}
			prune->tallies = grown;
			grown[t] = (struct prune_tally){ code->state, code->pool, 0 };
			code->pool = NULL;   /* (the tally has it now) */
			prune->tally_count++;
		}
		prune->tallies[t].count++;
	}
	return 0;
}

/* The codes deleted (counted, on a dry run) in `state`, or in both (-1). */
static int64_t prune_count(const struct prune *prune, int state)
{
	int64_t count = 0;

	for (size_t t = 0; t < prune->tally_count; t++)
		if (state < 0 || prune->tallies[t].state == state)
			count += prune->tallies[t].count;
	return count;
}

static void prune_batch_clear(struct prune *prune, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		free(prune->batch[i].pool);
		prune->batch[i].pool = NULL;
	}
}

/* Steps the select over the ids after `last` and below `end`, filling the
 * batch: its count, or -1 with *status set. */
static long prune_select(struct prune *prune, int64_t last, int64_t end, int *status)
{
	sqlite3_stmt *stmt = prune->select;
	size_t count = 0;
	int rc;

	sqlite3_reset(stmt);
	sqlite3_bind_int64(stmt, 1, last);
	sqlite3_bind_int64(stmt, 2, end);
	sqlite3_bind_double(stmt, 3, prune->cutoff);
	sqlite3_bind_int64(stmt, 4, prune->options->batch);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		struct prune_code *code = &prune->batch[count++];

		code->id = sqlite3_column_int64(stmt, 0);
		code->state = strcmp((const char *)sqlite3_column_text(stmt, 1), "published") != 0;
		if (!(code->pool = strdup((const char *)sqlite3_column_text(stmt, 2)))) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	sqlite3_reset(stmt);
	if (rc != SQLITE_DONE) {
		prune_batch_clear(prune, count);
		if (rc == SQLITE_NOMEM)   /* (ours: strdup's) */
			log_error("out of memory for the pools of a batch");
		*status = rc == SQLITE_NOMEM ? EXIT_INTERNAL :
			db_fail(prune->db, rc, "finding the codes to delete");
		return -1;
	}
	return (long)count;
}

/* The batch's codes added to the run's row, in the batch's transaction: a
 * run stopped before its end is recorded (killed, or the lock held) still
 * says what it deleted. */
static int prune_count_run(struct prune *prune, long count)
{
	int rc;

	sqlite3_reset(prune->count_run);
	sqlite3_bind_int64(prune->count_run, 1, count);
	sqlite3_bind_int64(prune->count_run, 2, prune->db->run_id);
	rc = sqlite3_step(prune->count_run);
	sqlite3_reset(prune->count_run);
	return rc == SQLITE_DONE ? 0 : db_fail(prune->db, rc, "counting the codes in the run's row");
}

/* One batch of the codes that may go, the next after id *last and within
 * the window of ids from there, in one transaction: *more is 0 once the ids
 * below the bound are done. */
static int prune_codes_batch(struct prune *prune, int64_t *last, int *more)
{
	int64_t images = 0, window = prune->options->batch * PRUNE_WINDOW_PER_CODE, end, next;
	double began;
	long count;
	int status, found;

	/* The ids no row has any more (what earlier runs deleted: a year of
	 * nights) are passed in one key lookup, not walked window by window. */
	if ((status = prune_query_int(prune->db, "SELECT min(id) FROM codes WHERE id > ?1", *last, 0,
			&next, &found, "finding the next code")))
		return status;
	if (!found || next >= prune->upper) {
		*more = 0;
		return 0;
	}
	*last = next - 1;
	end = prune->upper - *last > window ? *last + window : prune->upper;
	if ((status = prune->options->dry_run ? db_exec(prune->db, "BEGIN") :
			db_begin_immediate_quietly(prune->db))) {
		if (status == EXIT_TEMPFAIL && !interrupt_requested())   /* (a signal: the summary says) */
			log_error("%s: the batch from code %lld: the DB stayed locked past busy_timeout "
				"(%lld ms) by another process", prune->db->path, (long long)*last + 1,
				(long long)prune->db->busy_timeout_ms);
		return status;
	}
	began = db_monotonic();
	if ((count = prune_select(prune, *last, end, &status)) >= 0)
		status = prune_drop(prune, (size_t)count, &images);
	if (!status && !prune->options->dry_run && count > 0)
		status = prune_count_run(prune, count);
	if (!status && !prune->options->dry_run)
		status = db_commit(prune->db);
	if (status || prune->options->dry_run)
		db_rollback(prune->db);
	if (!status && (status = prune_tally(prune, (size_t)count)) == 0) {   /* once committed */
		prune->images += images;
		/* a full batch goes on after its last id; else the window is done */
		*last = count == prune->options->batch ? prune->batch[count - 1].id : end - 1;
		*more = *last < prune->upper - 1;
		progress_update(&prune->progress, prune_count(prune, -1), NULL);
	}
	if (count > 0)
		prune_batch_clear(prune, (size_t)count);
	if (!status && !prune->options->dry_run)
		prune_pause(db_monotonic() - began);   /* (a window of rows kept held it too) */
	return status;
}

/* Every code that may go, in id order: the rows of a night, whatever their
 * pool, are neighbours in the table, so each page is written once, not once
 * per pool. */
static int prune_codes(struct prune *prune)
{
	int64_t last = 0;
	int more = 1, status = 0;

	while (more && !status)
		status = interrupt_requested() ? EXIT_TEMPFAIL : prune_codes_batch(prune, &last, &more);
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

static void prune_pid_alive(sqlite3_context *context, int argc, sqlite3_value **argv)
{
	(void)argc;
	sqlite3_result_int(context, db_run_pid_alive(sqlite3_value_int64(argv[0])));
}

/* Runs that ended before the cutoff, or started before it and never ended (a
 * run killed, or its host gone: not one whose process still runs), but never
 * a stage's last run or its last successful one, which qrpool-report shows.
 * The last as they were before this run began (?3, its own run: none in a dry
 * run), so a dry run counts what the real one deletes. In batches, as the
 * codes. */
#define PRUNE_RUNS_GONE "coalesce(ended_at, started_at) < ?1 " \
	"AND NOT (ended_at IS NULL AND qrpool_pid_alive(pid)) " \
	"AND id NOT IN (SELECT max(id) FROM runs WHERE id != ?3 GROUP BY stage) " \
	"AND id NOT IN (SELECT max(id) FROM runs WHERE exit_status = 0 GROUP BY stage)"
static int prune_runs(struct prune *prune)
{
	sqlite3_stmt *stmt;
	int status, rc;
	int64_t deleted;

	if ((status = db_prepare(prune->db, &stmt, prune->options->dry_run ?
			"SELECT count(*) FROM runs WHERE " PRUNE_RUNS_GONE :
			"DELETE FROM runs WHERE id IN (SELECT id FROM runs WHERE " PRUNE_RUNS_GONE
			" ORDER BY id LIMIT ?2)")))
		return status;
	sqlite3_bind_double(stmt, 1, prune->cutoff);
	if (!prune->options->dry_run)
		sqlite3_bind_int64(stmt, 2, prune->options->batch);
	sqlite3_bind_int64(stmt, 3, prune->db->run_id);
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
			deleted = rc == SQLITE_DONE ? sqlite3_changes(prune->db->handle) : 0;
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

	if (!(prune->batch = calloc((size_t)prune->options->batch, sizeof *prune->batch))) {
		log_error("out of memory for a batch of %lld codes", (long long)prune->options->batch);
		return EXIT_INTERNAL;
	}
	if (sqlite3_create_function(prune->db->handle, "qrpool_pid_alive", 1, SQLITE_UTF8, NULL,
			prune_pid_alive, NULL, NULL) != SQLITE_OK)
		return db_fail(prune->db, sqlite3_errcode(prune->db->handle), "adding a function");
	/* The table in id order from the last id on, never an index (SQLite
	 * would take the OR of states for two ranges of the state index, each
	 * read whole at every batch). A pool's published codes stay from its
	 * last depth snapshot on: qrpool-plan's DB-only estimate (Kafka down)
	 * counts them. */
	if ((status = db_prepare(prune->db, &prune->select, "SELECT id, state, pool FROM codes "
			"NOT INDEXED WHERE id > ?1 AND id < ?2 AND ((state = 'failed' AND updated_at < ?3) "
			"OR (state = 'published' AND updated_at < min(?3, coalesce((SELECT max(s.taken_at) "
			"FROM depth_snapshots s WHERE s.pool = codes.pool), ?3)))) ORDER BY id LIMIT ?4")) ||
	    (status = db_prepare(prune->db, &prune->has_image,
			"SELECT 1 FROM images WHERE code_id = ?1")) ||
	    (status = db_prepare(prune->db, &prune->drop_image,
			"DELETE FROM images WHERE code_id = ?1")) ||
	    (status = db_prepare(prune->db, &prune->drop_code,
			"DELETE FROM codes WHERE id = ?1 AND (state = 'published' OR state = 'failed')")) ||
	    (status = db_prepare(prune->db, &prune->count_run,
			"UPDATE runs SET items_in = items_in + ?1, items_out = items_out + ?1 WHERE id = ?2")))
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
	sqlite3_finalize(prune->count_run);
	free(prune->batch);
	for (size_t t = 0; t < prune->tally_count; t++)
		free(prune->tallies[t].pool);
	free(prune->tallies);
}

static int prune_by_state_and_pool(const void *a, const void *b)
{
	const struct prune_tally *x = a, *y = b;

	return x->state != y->state ? x->state - y->state : strcmp(x->pool, y->pool);
}

/* A dry run's figures, TAB-separated: the codes per state and pool, then the
 * images and the runs in all (no pool). */
static void prune_print(struct prune *prune)
{
	if (prune->tally_count)   /* (qsort's pointer must not be NULL) */
		qsort(prune->tallies, prune->tally_count, sizeof *prune->tallies,
			prune_by_state_and_pool);
	for (size_t t = 0; t < prune->tally_count; t++)
		printf("%s\t%s\t%lld\n", prune_states[prune->tallies[t].state], prune->tallies[t].pool,
			(long long)prune->tallies[t].count);
	printf("images\t\t%lld\nruns\t\t%lld\n", (long long)prune->images, (long long)prune->runs);
}

static void prune_summary(const struct prune *prune, int status, double seconds)
{
	char before[64];

	parse_format_iso((time_t)prune->cutoff, before, sizeof before);
	log_msg(status ? LOG_WARN : LOG_INFO, "%s %lld codes (%lld published, %lld failed) with %lld "
		"images, and %lld runs, older than %s (before %s), in %.1f s%s",
		prune->options->dry_run ? "would delete" : "deleted", (long long)prune_count(prune, -1),
		(long long)prune_count(prune, 0), (long long)prune_count(prune, 1), (long long)prune->images,
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
		if (!(status = prune_codes(&prune)))
			status = prune_runs(&prune);
	}
	progress_end(&prune.progress);
	if (interrupt_requested())
		status = exitcode_worst(status, EXIT_TEMPFAIL);
	if (!status && options->dry_run)
		prune_print(&prune);
	prune_summary(&prune, status, db_monotonic() - started);
	if (!options->dry_run) {
		if (interrupt_requested())
			db_busy_bounded(&db, PRUNE_END_WAIT_MS);
		db_run_end(&db, prune_count(&prune, -1), prune_count(&prune, -1), status);
	}
	prune_finalize(&prune);   /* (the tallies are the counts) */
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

/* The staging database: SQLite in WAL mode, schema applied and migrated on open. */
#ifndef QRPOOL_DB_H
#define QRPOOL_DB_H

#include <sqlite3.h>
#include <stdint.h>

/* Bytes the WAL file is cut back to after a checkpoint (journal_size_limit). */
#define DB_WAL_SIZE_LIMIT 67108864
#define DB_STRING_(x) #x
#define DB_STRING(x) DB_STRING_(x)

struct db {
	sqlite3 *handle;
	const char *path;
	int busy_timeout_ms;    /* as opened */
	int (*give_up)(void *); /* lock waits end when this says so (db_busy_until; NULL:
	                           busy_timeout whole) */
	void *give_up_arg;
	int64_t run_id;         /* row in runs for this process, 0 if none */
	int unknown_id_hinted;  /* db_unknown_id_hint has said where to look */
	int read_only;          /* opened by db_open_read_only */
};

/* Settles SQLite's library-wide settings: call first thing in main, before
 * any database is opened. */
void db_library_init(void);

/* Opens (creating if needed) and migrates to the newest schema. Returns an
 * exit code: 0, EXIT_IO (cannot open or write), EXIT_CONFIG (a DB from a newer
 * qrpool), EXIT_INTERNAL. Errors are logged. A DB it had to create is warned
 * of (a typo in database.path would otherwise give an empty pool, and a clean
 * audit of it)... */
int db_open(struct db *db, const char *path, int64_t busy_timeout_ms);
/* ... except by the tools whose first run makes it: the stages of the nightly
 * pipeline (which all start at once, before qrpool-plan has made it) and
 * qrpool-claim (whose bindings may live on a host of their own). Either way a
 * DB made is private (mode 0600): it holds the access token. */
int db_open_or_create(struct db *db, const char *path, int64_t busy_timeout_ms);
/* For a reader that must write nothing (qrpool-resolve, which the middle
 * page may run under an account that can only read): the DB as it is, read
 * only, no journal mode set, no schema applied. It must hold `table`, else
 * it is no staging DB of qrpool's (database.path?): EXIT_IO, said. */
int db_open_read_only(struct db *db, const char *path, int64_t busy_timeout_ms,
	const char *table);
void db_close(struct db *db);
/* Settings for a connection that stores images as they come: 0 or an exit
 * code. */
int db_stream_images(struct db *db);

/* The schema version the file is at, and the newest this build knows. */
int db_schema_version(struct db *db);
int db_schema_latest(void);

/* Statement helpers: each logs its own error with the DB path and returns an
 * exit code (0 on success). */
int db_exec(struct db *db, const char *sql);
int db_prepare(struct db *db, sqlite3_stmt **stmt, const char *sql);
/* At -vv: how SQLite runs the statement (EXPLAIN QUERY PLAN), a line a step,
 * "WHAT: query plan: ...". */
void db_log_plan(struct db *db, sqlite3_stmt *stmt, const char *what);
int db_begin_immediate(struct db *db);
/* From now on a wait for another process's lock (busy_timeout at most) ends
 * at once after SIGINT/SIGTERM, so a stop is not held up by it. */
void db_busy_interruptible(struct db *db);
/* From now on a wait for another process's lock (busy_timeout at most) ends
 * when `give_up(arg)` says so, asked every few milliseconds from the thread
 * waiting, signal or not: for what a stop must still record. */
void db_busy_until(struct db *db, int (*give_up)(void *arg), void *arg);
/* From now on another process's lock is waited out `ms` at most, a signal
 * or not (what is left to record after a stop). */
void db_busy_bounded(struct db *db, int ms);
/* BEGIN IMMEDIATE, waiting busy_timeout for another writer: EXIT_TEMPFAIL,
 * said nothing, when it still holds the lock (the caller says what it means). */
int db_begin_immediate_quietly(struct db *db);
/* The same without waiting. */
int db_try_begin_immediate(struct db *db);
int db_commit(struct db *db);
void db_rollback(struct db *db);
/* The exit code that a failed SQLite call should give: I/O-ish errors (full
 * disk, read-only, locked too long) are EXIT_IO or EXIT_TEMPFAIL, the rest internal. */
int db_error_code(struct db *db, int rc);
/* For the first "unknown request id" of a run: " (staging DB PATH: is it the
 * one qrpool-plan wrote? ...)", since a stage given another config than the plan's
 * finds none of its ids; "" afterwards. Not thread-safe: one caller thread. */
const char *db_unknown_id_hint(struct db *db);
int db_fail(struct db *db, int rc, const char *what);

/* Run bookkeeping (table runs): start on entry, end with the counts and exit status. */
int db_run_start(struct db *db, const char *stage);
void db_run_end(struct db *db, int64_t items_in, int64_t items_out, int exit_status);
/* Whether the process of a run's pid still runs. The DB is local, so its runs
 * are this host's: a run never ended may still be going (a claim serving for
 * weeks), or may have been killed, or stopped before it could record its end
 * (another process held the DB's lock). */
int db_run_pid_alive(int64_t pid);

double db_now(void);
/* Seconds on a clock no step of the wall clock moves (NTP, a fix by hand):
 * for timeouts and waits that are lengths of time, not times of day. */
double db_monotonic(void);

#endif

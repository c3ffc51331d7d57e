#include "db.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <time.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <unistd.h>

#include "exitcode.h"
#include "interrupt.h"
#include "log.h"
#include "schema.h"

/* How many more busy_timeouts a locked DB is waited for to record a run. */
#define DB_RUN_START_TRIES 5

double db_now(void)
{
	struct timeval now;

	gettimeofday(&now, NULL);
	return (double)now.tv_sec + now.tv_usec / 1e6;
}

double db_monotonic(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)now.tv_sec + now.tv_nsec / 1e9;
}

int db_error_code(struct db *db, int rc)
{
	(void)db;
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return EXIT_TEMPFAIL;
	case SQLITE_FULL:
	case SQLITE_IOERR:
	case SQLITE_READONLY:
	case SQLITE_CANTOPEN:
	case SQLITE_PERM:
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
	case SQLITE_AUTH:
		return EXIT_IO;
	default:
		return EXIT_INTERNAL;
	}
}

/* Why this user cannot write `file` (access() said EACCES), and the fix:
 * its owner, its mode, or neither (an ACL or a security module). Which is
 * 0 (the DB), 1 (its -wal) or 2 (its -shm). */
static void db_access_fix(const char *file, const struct stat *st, size_t which, char *hint,
	size_t size)
{
	/* -shm is only an index of -wal, made again if missing, but not while a
	 * connection has it mapped; -wal holds committed writes: never removed. */
	const char *or_remove = which == 2 ? ", or remove it while nothing has the DB open (no "
		"qrpool tool, no sqlite3 shell): SQLite makes it again" : "";
	unsigned mode = (unsigned)(st->st_mode & 07777);

	if (st->st_uid != geteuid())
		snprintf(hint, size, " (%s is not writable by this user: owner uid %u, mode %04o; give it "
			"to the user that runs qrpool, chown and chmod 600%s)", file, (unsigned)st->st_uid,
			mode, or_remove);
	else if (!(st->st_mode & S_IWUSR) && which)
		snprintf(hint, size, " (%s is not writable by this user: mode %04o, SQLite made it with "
			"the DB's mode, read-only then; chmod 600 it%s)", file, mode, or_remove);
	else if (!(st->st_mode & S_IWUSR))   /* a reader made -wal and -shm like it, if any */
		snprintf(hint, size, " (%s is not writable by this user: mode %04o; chmod 600 it and any "
			"-wal and -shm beside it, which SQLite made with its mode)", file, mode);
	else
		snprintf(hint, size, " (%s is not writable by this user, though its owner and mode %04o "
			"would let it: an ACL or a security policy denies it)", file, mode);
}

/* Less room than this on the DB's file system, a write error is its being
 * full: SQLite says "disk I/O error" when it cannot even make the -shm. */
#define DB_FULL_BYTES (1024 * 1024)

/* For SQLITE_FULL and SQLITE_IOERR: the file system holding `path` full (of
 * space or of inodes), said with what is left; else "". */
static void db_space_hint(const char *path, char *hint, size_t size)
{
	char copy[PATH_MAX];
	const char *directory;
	struct statvfs fs;
	unsigned long long free_bytes;

	if ((size_t)snprintf(copy, sizeof copy, "%s", path) >= sizeof copy ||
	    statvfs(directory = dirname(copy), &fs) != 0)
		return;
	/* root may use the blocks kept back for it; anyone else may not. */
	free_bytes = (unsigned long long)(geteuid() ? fs.f_bavail : fs.f_bfree) * fs.f_frsize;
	if (free_bytes < DB_FULL_BYTES)
		snprintf(hint, size, " (the file system holding %s is full: %llu KB free; free some "
			"space and run again: the write that failed is undone, nothing committed is "
			"lost)", directory, free_bytes / 1024);
	else if (fs.f_files && !fs.f_favail)
		snprintf(hint, size, " (the file system holding %s has no inodes left: free some "
			"and run again)", directory);
}

const char *db_unknown_id_hint(struct db *db)
{
	static char hint[4200];

	if (db->unknown_id_hinted++)
		return "";
	snprintf(hint, sizeof hint, " (staging DB %s: is it the one qrpool-plan wrote? see "
		"database.path)", db->path);
	return hint;
}

/* A file where the DB's directory, or one above it, should be (a DB's path
 * with a name added after it, a typo): said as such, not as a directory to
 * make or to chmod. 1 with `hint` set. */
static int db_not_a_directory(const char *directory, char *hint, size_t size)
{
	char probe[PATH_MAX];
	struct stat st;

	if ((size_t)snprintf(probe, sizeof probe, "%s", directory) >= sizeof probe)
		return 0;
	for (char *slash;;) {
		if (stat(probe, &st) == 0) {
			if (S_ISDIR(st.st_mode))
				return 0;
			snprintf(hint, size, " (%s is not a directory: database.path names a file "
				"under it)", probe);
			return 1;
		}
		if ((errno != ENOENT && errno != ENOTDIR) || !(slash = strrchr(probe, '/')) ||
		    slash == probe)
			return 0;
		*slash = '\0';
	}
}

/* What SQLite's "readonly database" or "unable to open" means here, for an
 * operator to act on: the first of the DB, its -wal and -shm and their
 * directory that this user cannot write, or "" when every one can be (or
 * the error is another; a write error is told by db_space_hint). SQLite gives -wal and -shm the DB's mode when it
 * makes them, and a run that had only read access leaves them behind: a DB
 * made writable again then still fails, with the same words. The files are
 * where SQLite has them: beside the DB a symbolic link points to. */
static void db_access_hint(const struct db *db, int rc, char *hint, size_t size)
{
	static const char *const suffixes[] = { "", "-wal", "-shm" };
	const char *path = db->handle ? sqlite3_db_filename(db->handle, "main") : NULL, *directory;
	char file[PATH_MAX], copy[PATH_MAX];
	struct stat st;

	hint[0] = '\0';
	if (!path || !*path)
		path = db->path;
	if ((rc & 0xff) == SQLITE_FULL || (rc & 0xff) == SQLITE_IOERR) {
		db_space_hint(path, hint, size);
		return;
	}
	/* (A signal ends the wait early: then no timeout was waited out.) */
	if ((rc & 0xff) == SQLITE_BUSY && !interrupt_requested()) {
		snprintf(hint, size, " (another process held it past busy_timeout, %d ms; `fuser -v "
			"%s` shows which have it open)", db->busy_timeout_ms, path);
		return;
	}
	if ((rc & 0xff) != SQLITE_READONLY && (rc & 0xff) != SQLITE_CANTOPEN)
		return;
	/* (A reader needs no write to the DB itself: a fix of its owner or mode
	 * would lock out the user that writes it.) */
	for (size_t i = db->read_only; i < sizeof suffixes / sizeof *suffixes; i++) {
		if ((size_t)snprintf(file, sizeof file, "%s%s", path, suffixes[i]) >= sizeof file ||
		    stat(file, &st) != 0 || access(file, W_OK) == 0)
			continue;
		if (errno == EROFS) {
			snprintf(hint, size, " (%s is on a file system mounted read-only)", file);
			return;
		}
		if (errno == EACCES) {
			db_access_fix(file, &st, i, hint, size);
			return;
		}
	}
	if ((size_t)snprintf(copy, sizeof copy, "%s", path) >= sizeof copy)
		return;
	directory = dirname(copy);
	if (db_not_a_directory(directory, hint, size))
		return;
	if (access(directory, X_OK) != 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			snprintf(hint, size, " (directory %s does not exist: make it, for the user that "
				"runs qrpool, mode 700)", directory);
		else if (errno == EACCES)
			snprintf(hint, size, " (directory %s cannot be entered by this user: its mode, or a "
				"parent directory's, keeps it out)", directory);
		return;
	}
	if (access(directory, W_OK) == 0)
		return;
	if (errno == EROFS)
		snprintf(hint, size, " (%s is on a file system mounted read-only)", directory);
	else if (errno == EACCES)
		snprintf(hint, size, " (directory %s is not writable by this user: SQLite makes the "
			"DB's -wal and -shm files beside it, even to read%s)", directory, db->read_only ?
			"; a reader that may not make them reads while a qrpool tool has the DB open" : "");
}

/* A lock wait a stop signal ended: no failure of the DB, and the caller says
 * the stop (an error here would be what cron's -q mail shows). */
static int db_stopped_waiting(int rc)
{
	return (rc & 0xff) == SQLITE_BUSY && interrupt_requested();
}

int db_fail(struct db *db, int rc, const char *what)
{
	char hint[PATH_MAX + 256];

	db_access_hint(db, rc, hint, sizeof hint);
	log_msg(db_stopped_waiting(rc) ? LOG_INFO : LOG_ERROR, "%s: %s: %s%s%s", db->path, what,
		db->handle ? sqlite3_errmsg(db->handle) : sqlite3_errstr(rc), hint,
		db_stopped_waiting(rc) ? " (a stop ended the wait for another process's lock)" : "");
	return db_error_code(db, rc);
}

int db_exec(struct db *db, const char *sql)
{
	char *message = NULL, hint[PATH_MAX + 256];
	int rc = sqlite3_exec(db->handle, sql, NULL, NULL, &message);

	if (rc == SQLITE_OK)
		return 0;
	db_access_hint(db, rc, hint, sizeof hint);
	log_msg(db_stopped_waiting(rc) ? LOG_INFO : LOG_ERROR, "%s: %s%s%s", db->path,
		message ? message : sqlite3_errstr(rc), hint,
		db_stopped_waiting(rc) ? " (a stop ended the wait for another process's lock)" : "");
	sqlite3_free(message);
	return db_error_code(db, rc);
}

int db_prepare(struct db *db, sqlite3_stmt **stmt, const char *sql)
{
	int rc = sqlite3_prepare_v2(db->handle, sql, -1, stmt, NULL);

	return rc == SQLITE_OK ? 0 : db_fail(db, rc, "preparing a statement");
}

void db_log_plan(struct db *db, sqlite3_stmt *stmt, const char *what)
{
	sqlite3_stmt *plan;
	char *sql;

	if (!log_enabled(LOG_DEBUG))
		return;
	sql = sqlite3_mprintf("EXPLAIN QUERY PLAN %s", sqlite3_sql(stmt));
	if (sql && sqlite3_prepare_v2(db->handle, sql, -1, &plan, NULL) == SQLITE_OK) {
		while (sqlite3_step(plan) == SQLITE_ROW)
			log_debug("%s: query plan: %s", what, (const char *)sqlite3_column_text(plan, 3));
		sqlite3_finalize(plan);
	}
	sqlite3_free(sql);
}

int db_begin_immediate(struct db *db)
{
	return db_exec(db, "BEGIN IMMEDIATE");
}

#define DB_BUSY_STEP_MS 10

/* busy_timeout's wait, in steps that ask give_up (a signal, by default). */
static int db_busy_wait(void *arg, int count)
{
	const struct db *db = arg;

	if (db->give_up(db->give_up_arg) || (int64_t)count * DB_BUSY_STEP_MS >= db->busy_timeout_ms)
		return 0;
	usleep(DB_BUSY_STEP_MS * 1000);
	return 1;
}

/* The lock wait as configured: busy_timeout, or one that may give up. */
static void db_set_busy_wait(struct db *db)
{
	if (db->give_up)
		sqlite3_busy_handler(db->handle, db_busy_wait, db);
	else
		sqlite3_busy_timeout(db->handle, db->busy_timeout_ms);
}

static int db_interrupted(void *unused)
{
	(void)unused;
	return interrupt_requested();
}

void db_busy_interruptible(struct db *db)
{
	db_busy_until(db, db_interrupted, NULL);
}

void db_busy_until(struct db *db, int (*give_up)(void *arg), void *arg)
{
	db->give_up = give_up;
	db->give_up_arg = arg;
	db_set_busy_wait(db);
}

void db_busy_bounded(struct db *db, int ms)
{
	db->give_up = NULL;
	sqlite3_busy_timeout(db->handle, ms);
}

int db_begin_immediate_quietly(struct db *db)
{
	int rc = sqlite3_exec(db->handle, "BEGIN IMMEDIATE", NULL, NULL, NULL);

	if (rc == SQLITE_OK)
		return 0;
	return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED ? EXIT_TEMPFAIL :
		db_fail(db, rc, "starting a transaction");
}

int db_try_begin_immediate(struct db *db)
{
	int status;

	sqlite3_busy_timeout(db->handle, 0);
	status = db_begin_immediate_quietly(db);
	db_set_busy_wait(db);
	return status;
}

int db_commit(struct db *db)
{
	return db_exec(db, "COMMIT");
}

void db_rollback(struct db *db)
{
	if (!sqlite3_get_autocommit(db->handle))
		sqlite3_exec(db->handle, "ROLLBACK", NULL, NULL, NULL);
}

/* Runs `sql`, waiting out SQLITE_BUSY until `deadline`. The busy handler
 * covers ordinary lock waits, but not all of them: SQLite answers BUSY at
 * once where waiting could deadlock, as when several processes open a new
 * file at the same moment and one switches it to WAL while another reads it.
 * The tools of one pipeline start together, so opening must be patient; but
 * a stop (SIGTERM, Ctrl-C) ends the wait at once. */
static int db_exec_patiently(struct db *db, const char *sql, double deadline)
{
	for (;;) {
		int rc = sqlite3_exec(db->handle, sql, NULL, NULL, NULL);

		if (rc == SQLITE_OK)
			return 0;
		if (((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED) && interrupt_requested()) {
			log_warn("%s: stopped while waiting for another process's lock to open the "
				"staging DB: nothing was done", db->path);
			return EXIT_TEMPFAIL;
		}
		if (((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED) || db_now() >= deadline)
			return db_fail(db, rc, sql);
		usleep(10000 + (unsigned)(rand() % 20000));
	}
}

int db_schema_latest(void)
{
	return schema_step_count ? schema_steps[schema_step_count - 1].version : 0;
}

/* The value of a pragma that reads one integer, or -1. */
static int db_pragma_int(struct db *db, const char *pragma)
{
	sqlite3_stmt *stmt;
	int value = -1;

	if (sqlite3_prepare_v2(db->handle, pragma, -1, &stmt, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(stmt) == SQLITE_ROW)
		value = sqlite3_column_int(stmt, 0);
	sqlite3_finalize(stmt);
	return value;
}

int db_schema_version(struct db *db)
{
	return db_pragma_int(db, "PRAGMA user_version");
}

/* Applies every step newer than the file's version, all in one transaction,
 * so a crash mid-migration leaves the old version intact. Sets *applied when
 * it changed the schema. */
static int db_migrate(struct db *db, double deadline, int *applied)
{
	int version, status, cookie;
	char pragma[64];

	version = db_schema_version(db);
	if (version == db_schema_latest())
		return 0;
	if ((status = db_exec_patiently(db, "BEGIN IMMEDIATE", deadline)))
		return status;
	version = db_schema_version(db);   /* another process may have migrated meanwhile */
	if (version > db_schema_latest()) {
		db_rollback(db);
		log_error("%s: schema version %d is newer than this qrpool knows (%d): "
			"upgrade qrpool before using this database", db->path, version,
			db_schema_latest());
		return EXIT_CONFIG;
	}
	for (int i = 0; i < schema_step_count; i++) {
		if (schema_steps[i].version <= version)
			continue;
		log_info("%s: applying schema %s", db->path, schema_steps[i].name);
		if ((status = db_exec(db, schema_steps[i].sql))) {
			log_error("%s: schema step %s failed", db->path, schema_steps[i].name);
			db_rollback(db);
			return status;
		}
	}
	/* A step may edit a table's text in sqlite_schema (007 does): only a new
	 * schema_version makes other connections read the schema again. */
	cookie = db_pragma_int(db, "PRAGMA schema_version");
	snprintf(pragma, sizeof pragma, "PRAGMA schema_version = %d", cookie + 1);
	status = cookie < 0 ? db_fail(db, sqlite3_errcode(db->handle), "reading schema_version") :
		db_exec(db, pragma);
	if (status) {
		db_rollback(db);
		return status;
	}
	snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", db_schema_latest());
	if ((status = db_exec(db, pragma)) || (status = db_commit(db))) {
		db_rollback(db);
		return status;
	}
	*applied = 1;
	return 0;
}

/* The DB holds the access token: one others may read is said, once a run
 * (a DB made by hand, or by an older qrpool, with the umask's mode). */
static void db_check_private(const char *path)
{
	static int said;
	struct stat st;

	if (!said && stat(path, &st) == 0 && (st.st_mode & S_IROTH)) {
		log_warn("%s: the staging DB is readable by others (mode %04o): it holds the WeChat "
			"access token; chmod 600 it and any -wal and -shm beside it", path,
			(unsigned)(st.st_mode & 07777));
		said = 1;
	}
}

/* What every connection of ours gets: extended result codes (SQLITE_BUSY's
 * kinds told apart) and the configured busy timeout. */
static void db_connection_settings(struct db *db, int64_t busy_timeout_ms)
{
	sqlite3_extended_result_codes(db->handle, 1);
	db->busy_timeout_ms = busy_timeout_ms > 0x7fffffff ? 0x7fffffff : (int)busy_timeout_ms;
	sqlite3_busy_timeout(db->handle, db->busy_timeout_ms);
}

/* database.path naming a directory (the file's name left out) is the
 * config's mistake: said as such (78), not as a file SQLite cannot open. */
static int db_refuse_directory(const char *path)
{
	struct stat st;

	if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
		return 0;
	log_error("%s: database.path names a directory, not the staging DB's file (say "
		"%s%sstaging.db)", path, path, path[strlen(path) - 1] == '/' ? "" : "/");
	return EXIT_CONFIG;
}

static int db_open_as(struct db *db, const char *path, int64_t busy_timeout_ms, int creating)
{
	double deadline = db_now() + (double)busy_timeout_ms / 1000;
	int rc, status, migrated = 0, existed = access(path, F_OK) == 0;

	memset(db, 0, sizeof *db);
	db->path = path;
	if (existed && (status = db_refuse_directory(path)))
		return status;
	/* The DB holds the access token (a secret): made private, and SQLite
	 * gives its -wal and -shm files the same mode. */
	if (!existed) {
		int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

		if (fd >= 0)
			close(fd);
	}
	rc = sqlite3_open_v2(path, &db->handle,
		SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		db_fail(db, rc, "cannot open the staging database");
		db_close(db);
		return EXIT_IO;
	}
	if (!existed && !creating)
		log_warn("%s: there was no staging DB, so an empty one was made: if codes were expected, "
			"database.path names the wrong file (the nightly pipeline makes it on its first "
			"run)", path);
	db_check_private(path);
	db_connection_settings(db, busy_timeout_ms);
	db_busy_interruptible(db);   /* (for the open only: the tool sets its own after) */
	/* WAL lets readers (report, pending) run beside a writer; NORMAL sync in
	 * WAL mode is durable across process crashes, which is what resuming needs.
	 * A reader that holds its snapshot a long while (a backup, an operator's
	 * sqlite3 session) lets the WAL grow by every write meanwhile; once the
	 * checkpoint has caught up, the file goes back to DB_WAL_SIZE_LIMIT rather
	 * than keeping its high-water size for as long as a connection is open. */
	if ((status = db_exec_patiently(db, "PRAGMA journal_mode = WAL", deadline)) ||
	    (status = db_exec_patiently(db, "PRAGMA synchronous = NORMAL", deadline)) ||
	    (status = db_exec_patiently(db, "PRAGMA foreign_keys = ON", deadline)) ||
	    (status = db_exec_patiently(db, "PRAGMA cache_size = -65536", deadline)) ||
	    (status = db_exec_patiently(db, "PRAGMA journal_size_limit = " DB_STRING(DB_WAL_SIZE_LIMIT),
			deadline)) ||
	    (status = db_migrate(db, deadline, &migrated))) {
		db_close(db);
		return status;
	}
	if (migrated) {
		/* This connection still holds the schema as it read it before the
		 * migration (a table text edited in sqlite_schema is not read
		 * again by the connection that edited it): start afresh. */
		db_close(db);
		return db_open_as(db, path, busy_timeout_ms, 1);
	}
	db_busy_until(db, NULL, NULL);
	return 0;
}

int db_stream_images(struct db *db)
{
	/* Images stream in at thousands a second. The WAL is checkpointed every
	 * 32 MB rather than every 4, so pages rewritten by successive batches
	 * reach the database file once. The page cache is held to 16 MB (a
	 * batch of 512 images of 25 KB, and the B-trees' upper pages): an image
	 * page is written once and not read again, so with the usual 64 MB the
	 * cache only grew, each new page a malloc and a page fault (in
	 * bench-fetch, half a page fault per code). */
	int status = db_exec(db, "PRAGMA wal_autocheckpoint = 8000");

	return status ? status : db_exec(db, "PRAGMA cache_size = -16384");
}

void db_library_init(void)
{
	/* SQLite's memory statistics take a global mutex on every allocation
	 * (Debian's build has no lookaside: about twenty per image stored),
	 * which threads then contend for; nothing here reads them. */
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

int db_open_read_only(struct db *db, const char *path, int64_t busy_timeout_ms,
	const char *table)
{
	sqlite3_stmt *stmt = NULL;
	int rc, found = 0;

	memset(db, 0, sizeof *db);
	db->path = path;
	db->read_only = 1;
	if ((rc = db_refuse_directory(path)))
		return rc;
	rc = sqlite3_open_v2(path, &db->handle, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK) {
		db_connection_settings(db, busy_timeout_ms);
		rc = sqlite3_prepare_v2(db->handle, "SELECT 1 FROM sqlite_master WHERE type = 'table' "
			"AND name = ?", -1, &stmt, NULL);
	}
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(stmt, 1, table, -1, SQLITE_STATIC);
		rc = sqlite3_step(stmt);
		found = rc == SQLITE_ROW;
		rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	sqlite3_finalize(stmt);
	if (rc != SQLITE_OK) {
		int status = db_fail(db, rc, "cannot read the staging database");

		db_close(db);
		return status == EXIT_TEMPFAIL ? status : EXIT_IO;
	}
	db_check_private(path);
	if (!found) {
		log_error("%s: no %s table: not a qrpool staging DB (is database.path the one qrpool "
			"writes?)", path, table);
		db_close(db);
		return EXIT_IO;
	}
	return 0;
}

int db_open(struct db *db, const char *path, int64_t busy_timeout_ms)
{
	return db_open_as(db, path, busy_timeout_ms, 0);
}

int db_open_or_create(struct db *db, const char *path, int64_t busy_timeout_ms)
{
	return db_open_as(db, path, busy_timeout_ms, 1);
}

void db_close(struct db *db)
{
	if (db->handle)
		sqlite3_close_v2(db->handle);
	db->handle = NULL;
}

int db_run_start(struct db *db, const char *stage)
{
	sqlite3_stmt *stmt;
	int status, rc;

	if ((status = db_prepare(db, &stmt,
			"INSERT INTO runs (stage, pid, started_at) VALUES (?, ?, ?)")))
		return status;
	sqlite3_bind_text(stmt, 1, stage, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, (sqlite3_int64)getpid());
	sqlite3_bind_double(stmt, 3, db_now());
	/* The stages of a pipeline start together, beside a plan that may hold
	 * the write lock a while: a lock is waited out a few busy_timeouts, as
	 * it is mid-run, before the run is given up (75). */
	for (int tries = 1; (rc = sqlite3_step(stmt)) != SQLITE_DONE; tries++) {
		if ((rc & 0xff) != SQLITE_BUSY || tries > DB_RUN_START_TRIES || interrupt_requested())
			break;
		if (tries == 1)
			log_warn("%s: locked by another process: waiting to record the run (up to %d more "
				"busy_timeouts)", db->path, DB_RUN_START_TRIES);
		sqlite3_reset(stmt);
	}
	sqlite3_finalize(stmt);
	/* Said here: the tools' summaries come after a run that began. */
	if (rc != SQLITE_DONE && (rc & 0xff) == SQLITE_BUSY && interrupt_requested()) {
		log_warn("%s: stopped while waiting for another process's lock to record the %s run: "
			"nothing was done", db->path, stage);
		return EXIT_TEMPFAIL;
	}
	if (rc != SQLITE_DONE)
		return db_fail(db, rc, "recording the run");
	db->run_id = sqlite3_last_insert_rowid(db->handle);
	return 0;
}

int db_run_pid_alive(int64_t pid)
{
	return pid > 0 && pid <= INT32_MAX && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

void db_run_end(struct db *db, int64_t items_in, int64_t items_out, int exit_status)
{
	sqlite3_stmt *stmt;
	int rc;

	if (!db->handle || !db->run_id)
		return;
	if (db_prepare(db, &stmt, "UPDATE runs SET ended_at = ?, items_in = ?, items_out = ?, "
			"exit_status = ? WHERE id = ?"))
		return;
	sqlite3_bind_double(stmt, 1, db_now());
	sqlite3_bind_int64(stmt, 2, items_in);
	sqlite3_bind_int64(stmt, 3, items_out);
	sqlite3_bind_int(stmt, 4, exit_status);
	sqlite3_bind_int64(stmt, 5, db->run_id);
	rc = sqlite3_step(stmt);
	sqlite3_finalize(stmt);
	if (rc != SQLITE_DONE)
		db_fail(db, rc, "recording the end of the run");
}

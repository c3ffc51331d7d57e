#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db.h"
#include "exitcode.h"
#include "log.h"
#include "schema.h"
#include "tap.h"

static char dir[] = "/tmp/qrpool-test-db.XXXXXX";

static int64_t query_int(struct db *db, const char *sql)
{
	sqlite3_stmt *stmt;
	int64_t value = -1;

	if (sqlite3_prepare_v2(db->handle, sql, -1, &stmt, NULL) == SQLITE_OK &&
	    sqlite3_step(stmt) == SQLITE_ROW)
		value = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	return value;
}

/* Opcodes OpenEphemeral in the plan of `sql` on `raw`: a temporary index. */
static int ephemeral_opcodes(sqlite3 *raw, const char *sql)
{
	char explain[512];
	sqlite3_stmt *stmt;
	int count = 0;

	snprintf(explain, sizeof explain, "EXPLAIN %s", sql);
	if (sqlite3_prepare_v2(raw, explain, -1, &stmt, NULL) != SQLITE_OK)
		return -1;
	while (sqlite3_step(stmt) == SQLITE_ROW)
		count += !strcmp((const char *)sqlite3_column_text(stmt, 1), "OpenEphemeral");
	sqlite3_finalize(stmt);
	return count;
}

/* 007 rewrites codes' CHECK on state without a temporary index per row; a
 * connection opened before the migration sees the new rule too. */
static void test_state_check(const char *path)
{
	static const char update[] = "UPDATE codes SET state = 'published' WHERE id = 1";
	sqlite3 *raw, *before;
	struct db db;

	sqlite3_open(path, &raw);
	for (int i = 0; i < schema_step_count; i++)
		if (schema_steps[i].version < 7)
			sqlite3_exec(raw, schema_steps[i].sql, NULL, NULL, NULL);
	sqlite3_exec(raw, "PRAGMA user_version = 6; INSERT INTO codes (id, request_id, pool, "
		"created_at, updated_at) VALUES (1, 'abcDEF0123456789', 'poster', 1, 1)",
		NULL, NULL, NULL);
	is_int(ephemeral_opcodes(raw, update), 1, "before 007, the CHECK builds a temporary index");
	sqlite3_open(path, &before);
	is_int(sqlite3_exec(before, "SELECT count(*) FROM codes", NULL, NULL, NULL), SQLITE_OK,
		"a connection has read the old schema");

	is_int(db_open(&db, path, 1000), 0, "the DB is migrated past 007");
	is_int(ephemeral_opcodes(db.handle, update), 0, "after it, no temporary index");
	is_int(sqlite3_exec(before, "SELECT count(*) FROM codes", NULL, NULL, NULL), SQLITE_OK,
		"the connection opened before reads on");
	is_int(ephemeral_opcodes(before, update), 0, "and has no temporary index either");
	is_int(sqlite3_exec(before, "UPDATE codes SET state = 'lost' WHERE id = 1", NULL, NULL,
		NULL), SQLITE_CONSTRAINT, "which still refuses a state outside the four");
	for (int i = 0; i < 4; i++) {
		static const char *const states[] = { "fetched", "published", "failed", "planned" };
		char sql[96];
		snprintf(sql, sizeof sql, "UPDATE codes SET state = '%s' WHERE id = 1", states[i]);
		is_int(sqlite3_exec(db.handle, sql, NULL, NULL, NULL), SQLITE_OK, "'%s' is accepted",
			states[i]);
	}
	is_int(query_int(&db, "SELECT count(*) FROM pragma_integrity_check WHERE "
		"integrity_check <> 'ok'"), 0, "the integrity check passes");
	sqlite3_close(before);
	sqlite3_close(raw);
	db_close(&db);
}

/* A DB made by the previous schema version, with data, is migrated in place. */
static void test_migration(const char *path)
{
	int previous = schema_steps[schema_step_count - 2].version;
	char pragma[64];
	sqlite3 *raw;
	struct db db;

	sqlite3_open(path, &raw);
	for (int i = 0; i < schema_step_count - 1; i++)
		sqlite3_exec(raw, schema_steps[i].sql, NULL, NULL, NULL);
	snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", previous);
	sqlite3_exec(raw, pragma, NULL, NULL, NULL);
	sqlite3_exec(raw, "INSERT INTO codes (request_id, pool, state, created_at, updated_at) "
		"VALUES ('abcDEF0123456789', 'poster', 'fetched', 1, 1)", NULL, NULL, NULL);
	sqlite3_close(raw);

	is_int(db_open(&db, path, 1000), 0, "a DB at version %d opens", previous);
	is_int(db_schema_version(&db), db_schema_latest(), "and is migrated to version %d",
		db_schema_latest());
	is_int(query_int(&db, "SELECT count(*) FROM codes WHERE request_id = 'abcDEF0123456789' "
		"AND state = 'fetched'"), 1, "its data is kept");
	is_int(query_int(&db, "SELECT count(*) FROM sqlite_master WHERE name = 'runs'"), 1,
		"the new tables exist");
	is_int(query_int(&db, "SELECT count(*) FROM pragma_journal_mode WHERE journal_mode = 'wal'"), 1,
		"in WAL mode");
	db_close(&db);
	is_int(db_open(&db, path, 1000), 0, "reopening a current DB works");
	db_close(&db);
}

static void test_newer_refused(const char *path)
{
	char pragma[64];
	sqlite3 *raw;
	struct db db;

	sqlite3_open(path, &raw);
	snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", db_schema_latest() + 1);
	sqlite3_exec(raw, pragma, NULL, NULL, NULL);
	sqlite3_close(raw);
	is_int(db_open(&db, path, 1000), EXIT_CONFIG, "a DB from a newer qrpool is refused");
}

static void test_fresh(const char *path)
{
	struct db db;

	is_int(db_open(&db, path, 1000), 0, "a new DB is created");
	is_int(db_schema_version(&db), db_schema_latest(), "at the newest schema");
	is_int(db_run_start(&db, "test"), 0, "a run is recorded");
	db_run_end(&db, 3, 2, 0);
	is_int(query_int(&db, "SELECT items_in * 10 + items_out FROM runs"), 32, "with its counts");
	db_close(&db);
	is_int(db_open(&db, "/nonexistent-dir/x.db", 1000), EXIT_IO, "an impossible path is an I/O error");
}

/* A reader holding its snapshot while 8 MB more than the limit is written:
 * the WAL grows past the limit; once the reader is gone and a checkpoint
 * caught up, the next write cuts the file back to DB_WAL_SIZE_LIMIT. */
static void test_wal_size_limit(const char *path)
{
	char wal[300];
	struct db db;
	struct stat st;
	sqlite3 *reader = NULL;
	int64_t written = 0;

	snprintf(wal, sizeof wal, "%s-wal", path);
	is_int(db_open(&db, path, 1000), 0, "a DB for the WAL's size");
	is_int(query_int(&db, "PRAGMA journal_size_limit"), DB_WAL_SIZE_LIMIT,
		"journal_size_limit is set at open");
	db_exec(&db, "CREATE TABLE filler (bytes BLOB)");
	sqlite3_open(path, &reader);
	sqlite3_exec(reader, "BEGIN; SELECT count(*) FROM codes", NULL, NULL, NULL);
	while (written < DB_WAL_SIZE_LIMIT + 8 * 1048576) {
		db_exec(&db, "INSERT INTO filler VALUES (randomblob(1048576))");
		written += 1048576;
	}
	if (stat(wal, &st) != 0)
		st.st_size = -1;
	ok(st.st_size > DB_WAL_SIZE_LIMIT,
		"behind a reader's snapshot the WAL grows past the limit (%lld bytes)",
		(long long)st.st_size);
	sqlite3_exec(reader, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(reader);
	db_exec(&db, "PRAGMA wal_checkpoint(PASSIVE)");
	db_exec(&db, "INSERT INTO filler VALUES (x'00')");
	if (stat(wal, &st) != 0)
		st.st_size = -1;
	ok(st.st_size >= 0 && st.st_size <= DB_WAL_SIZE_LIMIT,
		"the reader gone and the checkpoint done, the next write cuts it back (%lld bytes)",
		(long long)st.st_size);
	db_close(&db);
}

int main(void)
{
	char path[256], fresh[256], checked[256], wal_limit[256];

	log_init("test_db", -1);
	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof path, "%s/old.db", dir);
	snprintf(fresh, sizeof fresh, "%s/fresh.db", dir);
	snprintf(checked, sizeof checked, "%s/check.db", dir);
	snprintf(wal_limit, sizeof wal_limit, "%s/wal.db", dir);
	test_migration(path);
	test_newer_refused(path);
	test_fresh(fresh);
	test_state_check(checked);
	test_wal_size_limit(wal_limit);
	{
		char command[300];
		snprintf(command, sizeof command, "rm -rf %s", dir);
		if (system(command) != 0)
			return 1;
	}
	return tap_done();
}

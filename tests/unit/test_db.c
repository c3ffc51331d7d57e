#include <stdlib.h>
#include <string.h>
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
	ok(query_int(&db, "PRAGMA journal_mode = WAL") != -1, "journal mode readable");
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

int main(void)
{
	char path[256], fresh[256], checked[256];

	log_init("test_db", -1);
	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof path, "%s/old.db", dir);
	snprintf(fresh, sizeof fresh, "%s/fresh.db", dir);
	snprintf(checked, sizeof checked, "%s/check.db", dir);
	test_migration(path);
	test_newer_refused(path);
	test_fresh(fresh);
	test_state_check(checked);
	{
		char command[300];
		snprintf(command, sizeof command, "rm -rf %s", dir);
		if (system(command) != 0)
			return 1;
	}
	return tap_done();
}

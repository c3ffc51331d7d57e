#include <stdlib.h>
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
	char path[256], fresh[256];

	log_init("test_db", -1);
	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof path, "%s/old.db", dir);
	snprintf(fresh, sizeof fresh, "%s/fresh.db", dir);
	test_migration(path);
	test_newer_refused(path);
	test_fresh(fresh);
	{
		char command[300];
		snprintf(command, sizeof command, "rm -rf %s", dir);
		if (system(command) != 0)
			return 1;
	}
	return tap_done();
}

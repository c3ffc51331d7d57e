/* store.c: a batch of outcomes written in one transaction, in code order
 * (outcomes of one code in the order they came), and the stored items'
 * lines printed in the order the outcomes came. An image left over from an
 * earlier run is replaced. A batch kept while another process holds the DB
 * grows (its arena moved several times) and is stored whole later. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"
#include "tap.h"

static int64_t number(struct db *db, const char *sql)
{
	sqlite3_stmt *stmt;
	int64_t n = -1;

	if (db_prepare(db, &stmt, sql))
		return -1;
	if (sqlite3_step(stmt) == SQLITE_ROW)
		n = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	return n;
}

static const char *text(struct db *db, const char *sql, char *buffer, size_t size)
{
	sqlite3_stmt *stmt;

	*buffer = '\0';
	if (db_prepare(db, &stmt, sql))
		return buffer;
	if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0))
		snprintf(buffer, size, "%s", sqlite3_column_text(stmt, 0));
	sqlite3_finalize(stmt);
	return buffer;
}

static void stage(struct db *db)
{
	char sql[200];

	db_exec(db, "BEGIN");
	for (int i = 1; i <= 6; i++) {
		snprintf(sql, sizeof sql, "INSERT INTO codes (id, request_id, pool, state, created_at, "
			"updated_at) VALUES (%d, 'rid%d', 'p', 'planned', 1, 1)", i, i);
		db_exec(db, sql);
	}
	/* a run that stored code 3's image, and was rolled back to planned by hand */
	db_exec(db, "INSERT INTO images (code_id, bytes) VALUES (3, X'0102')");
	db_exec(db, "COMMIT");
}

#define BIG_FIRST 7
#define BIG_COUNT 60
#define BIG_SIZE 5000       /* 60 x 5000 bytes: the arena's first 64 KB outgrown twice */

static void stage_big(struct db *db)
{
	char sql[200];

	db_exec(db, "BEGIN");
	for (int i = BIG_FIRST; i < BIG_FIRST + BIG_COUNT; i++) {
		snprintf(sql, sizeof sql, "INSERT INTO codes (id, request_id, pool, state, created_at, "
			"updated_at) VALUES (%d, 'rid%d', 'p', 'planned', 1, 1)", i, i);
		db_exec(db, sql);
	}
	db_exec(db, "COMMIT");
}

/* Code `code`'s big image: bytes that differ from code to code. */
static void big_image(int64_t code, unsigned char *bytes)
{
	for (int i = 0; i < BIG_SIZE; i++)
		bytes[i] = (unsigned char)(code * 31 + i * 7 + i / 256);
}

static void add_big_images(struct store_batch *batch, int from, int to)
{
	unsigned char bytes[BIG_SIZE];
	char line[32];

	for (int code = from; code < to; code++) {
		big_image(code, bytes);
		snprintf(line, sizeof line, "rid%d\tp", code);
		store_add_image(batch, code, line, "image/png", bytes, BIG_SIZE, 1);
	}
}

/* The big images stored whole: the count of codes whose bytes differ. */
static int big_images_wrong(struct db *db)
{
	unsigned char expected[BIG_SIZE];
	sqlite3_stmt *stmt;
	int wrong = 0;

	if (db_prepare(db, &stmt, "SELECT code_id, bytes FROM images WHERE code_id >= ?"))
		return -1;
	sqlite3_bind_int(stmt, 1, BIG_FIRST);
	while (sqlite3_step(stmt) == SQLITE_ROW) {
		big_image(sqlite3_column_int64(stmt, 0), expected);
		wrong += sqlite3_column_bytes(stmt, 1) != BIG_SIZE ||
			memcmp(sqlite3_column_blob(stmt, 1), expected, BIG_SIZE);
	}
	sqlite3_finalize(stmt);
	return wrong;
}

static void add_image(struct store_batch *batch, int64_t code, const char *bytes, int attempts)
{
	char line[32];

	snprintf(line, sizeof line, "rid%lld\tp", (long long)code);
	store_add_image(batch, code, line, "image/jpeg", bytes, strlen(bytes), attempts);
}

int main(void)
{
	char path[] = "/tmp/qrpool-test-store.XXXXXX", buffer[256];
	struct store_batch batch;
	struct store store;
	struct db db;
	FILE *out = tmpfile();

	close(mkstemp(path));
	if (db_open_or_create(&db, path, 1000) || store_open(&store, &db))
		return 1;
	stage(&db);

	memset(&batch, 0, sizeof batch);
	add_image(&batch, 5, "five", 1);
	store_add_attempt(&batch, 2, 2, -1, "system error");
	add_image(&batch, 3, "three", 1);
	add_image(&batch, 1, "one", 1);
	store_add_attempt(&batch, 4, 1, -1, "system error");
	add_image(&batch, 2, "two", 1);     /* after its failed attempts, in the same batch */
	store_add_failure(&batch, 6, 1, 40097, "invalid args");
	is_int(store_flush(&store, &batch, out), 0, "the batch is committed");
	is_int((int)batch.stored, 4, "4 images stored");
	is_int((int)batch.count, 0, "and the batch emptied");

	is_int((int)number(&db, "SELECT count(*) FROM codes WHERE state = 'fetched'"), 4,
		"4 codes fetched");
	is_int((int)number(&db, "SELECT attempts FROM codes WHERE id = 2"), 3,
		"code 2: its failed attempts and then its image, in that order (3 attempts)");
	is_str(text(&db, "SELECT state FROM codes WHERE id = 2", buffer, sizeof buffer), "fetched",
		"code 2 fetched");
	is_str(text(&db, "SELECT state || ' ' || attempts || ' ' || errcode FROM codes WHERE id = 4",
		buffer, sizeof buffer), "planned 1 -1", "code 4 still planned, its attempt counted");
	is_str(text(&db, "SELECT state || ' ' || errcode FROM codes WHERE id = 6", buffer,
		sizeof buffer), "failed 40097", "code 6 failed with its errcode");
	is_int((int)number(&db, "SELECT count(*) FROM images"), 4, "one image per stored code");
	is_str(text(&db, "SELECT CAST(bytes AS TEXT) FROM images WHERE code_id = 3", buffer,
		sizeof buffer), "three", "code 3's leftover image replaced by the new one");

	rewind(out);
	{
		size_t got = fread(buffer, 1, sizeof buffer - 1, out);

		buffer[got] = '\0';
	}
	is_str(buffer, "rid5\tp\nrid3\tp\nrid1\tp\nrid2\tp\n",
		"the stored items printed in the order their images came");

	/* A code no longer planned (another run stored it) is neither stored nor printed. */
	rewind(out);
	add_image(&batch, 1, "again", 1);
	is_int(store_flush(&store, &batch, out), 0, "a second batch is committed");
	is_int((int)batch.skipped, 1, "the image of a code already fetched is skipped");
	is_str(text(&db, "SELECT CAST(bytes AS TEXT) FROM images WHERE code_id = 1", buffer,
		sizeof buffer), "one", "and its stored image kept");

	/* Another process holds the DB: the batch is kept, grows, and goes in later. */
	{
		struct db other;
		int status;

		stage_big(&db);
		add_big_images(&batch, BIG_FIRST, BIG_FIRST + BIG_COUNT / 2);
		if (db_open(&other, path, 1000) || db_begin_immediate(&other))
			return 1;
		is_int(store_flush(&store, &batch, out), STORE_BUSY, "the DB held elsewhere: busy");
		is_int((int)batch.count, BIG_COUNT / 2, "... and the batch kept");
		add_big_images(&batch, BIG_FIRST + BIG_COUNT / 2, BIG_FIRST + BIG_COUNT);
		db_rollback(&other);
		db_close(&other);
		rewind(out);
		status = store_flush(&store, &batch, out);
		is_int(status, 0, "the grown batch is committed once the DB is free");
		is_int((int)number(&db, "SELECT count(*) FROM images WHERE code_id >= 7"), BIG_COUNT,
			"all %d images of %d bytes stored", BIG_COUNT, BIG_SIZE);
		is_int(big_images_wrong(&db), 0, "each with its own bytes");
	}

	store_batch_free(&batch);
	store_close(&store);
	db_close(&db);
	fclose(out);
	unlink(path);
	return tap_done();
}

/* publish_committer.c: batches of confirmed deliveries recorded on the
 * committer's thread; a batch whose commit fails (the disk full here) is
 * tried once more at the end and, failing again, counted as delivered but
 * unrecorded, its codes left 'fetched' and none of its lines printed. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exitcode.h"
#include "publish_committer.h"
#include "tap.h"

#define CODES 3000

static int64_t count_state(struct db *db, const char *state)
{
	sqlite3_stmt *stmt;
	int64_t n = -1;

	if (db_prepare(db, &stmt, "SELECT count(*) FROM codes WHERE state = ?"))
		return -1;
	sqlite3_bind_text(stmt, 1, state, -1, SQLITE_STATIC);
	if (sqlite3_step(stmt) == SQLITE_ROW)
		n = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	return n;
}

static void stage(struct db *db)
{
	char sql[200];

	db_exec(db, "DELETE FROM codes");
	db_exec(db, "BEGIN");
	for (int i = 1; i <= CODES; i++) {
		snprintf(sql, sizeof sql, "INSERT INTO codes (id, request_id, pool, state, created_at, "
			"updated_at) VALUES (%d, 'rid%05d', 'p', 'fetched', 1, 1)", i, i);
		db_exec(db, sql);
	}
	db_exec(db, "COMMIT");
}

static struct publish_batch *batch_of_all(void)
{
	struct publish_batch *batch = calloc(1, sizeof *batch);

	batch->deliveries = calloc(CODES, sizeof *batch->deliveries);
	batch->count = batch->capacity = CODES;
	for (int i = 0; i < CODES; i++) {
		struct publish_message *message = malloc(sizeof *message + 16);

		message->code_id = i + 1;
		message->drop_image = 0;
		snprintf(message->line, 16, "rid%05d\tp", i + 1);
		batch->deliveries[i] = (struct publish_delivery){ message, 0, i, 1 };
	}
	return batch;
}

/* Runs one batch through a committer; `limit` caps the DB's size (pages) on
 * the committer's connection, so that the rows cannot grow. */
static int run(struct config *config, int limit, struct publish_committer *committer, long *printed)
{
	FILE *out = tmpfile();
	char pragma[64], line[64];
	int status;

	if ((status = publish_committer_start(committer, config, out)))
		return status;
	if (limit) {
		snprintf(pragma, sizeof pragma, "PRAGMA max_page_count = %d", limit);
		db_exec(&committer->db, pragma);
	}
	publish_committer_submit(committer, batch_of_all());
	status = publish_committer_finish(committer);
	rewind(out);
	for (*printed = 0; fgets(line, sizeof line, out); )
		(*printed)++;
	fclose(out);
	return status;
}

/* Batches of 100 deliveries each, from code `first` on. */
static struct publish_batch *batch_of(int first, int count)
{
	struct publish_batch *batch = calloc(1, sizeof *batch);

	batch->deliveries = calloc((size_t)count, sizeof *batch->deliveries);
	batch->count = batch->capacity = (size_t)count;
	for (int i = 0; i < count; i++) {
		struct publish_message *message = malloc(sizeof *message + 16);

		message->code_id = first + i;
		message->drop_image = 0;
		snprintf(message->line, 16, "rid%05d\tp", first + i);
		batch->deliveries[i] = (struct publish_delivery){ message, 0, first + i, 1 };
	}
	return batch;
}

/* One batch fails for good (a row refused): the later ones are still
 * recorded, the hand-over never waits for room that would not come, and only
 * that batch is left unrecorded after its last try. */
static void test_one_batch_fails(struct config *config, struct db *db)
{
	struct publish_committer committer;
	FILE *out = tmpfile();
	int batches = PUBLISH_QUEUE_MAX * 3, status;

	stage(db);
	db_exec(db, "CREATE TRIGGER refuse_one BEFORE UPDATE ON codes WHEN old.id = 150 "
		"BEGIN SELECT RAISE(ABORT, 'refused'); END");
	if (publish_committer_start(&committer, config, out)) {
		ok(0, "committer started");
		return;
	}
	alarm(60);   /* a hand-over waiting for room forever fails the test */
	for (int i = 0; i < batches; i++)
		publish_committer_submit(&committer, batch_of(1 + i * 100, 100));
	status = publish_committer_finish(&committer);
	alarm(0);
	ok(status != 0, "a failed batch: not 0 (%d)", status);
	is_int((int)committer.unrecorded, 100, "only its 100 deliveries unrecorded");
	is_int((int)committer.published, (batches - 1) * 100, "every other batch recorded");
	is_int((int)count_state(db, "published"), (batches - 1) * 100, "and published in the DB");
	db_exec(db, "DROP TRIGGER refuse_one");
	fclose(out);
}

/* Two batches refused (a row each); by the end one is accepted: the last
 * tries go on after the first fails again, so only that one is unrecorded. */
static void test_last_tries_go_on(struct config *config, struct db *db)
{
	struct publish_committer committer;
	FILE *out = tmpfile();

	stage(db);
	db_exec(db, "CREATE TRIGGER refuse_a BEFORE UPDATE ON codes WHEN old.id = 150 "
		"BEGIN SELECT RAISE(ABORT, 'refused'); END");
	db_exec(db, "CREATE TRIGGER refuse_b BEFORE UPDATE ON codes WHEN old.id = 450 "
		"BEGIN SELECT RAISE(ABORT, 'refused'); END");
	if (publish_committer_start(&committer, config, out)) {
		ok(0, "committer started");
		return;
	}
	for (int i = 0; i < 6; i++)
		publish_committer_submit(&committer, batch_of(1 + i * 100, 100));
	for (int tries = 0; publish_committer_published(&committer) < 400 && tries < 500; tries++)
		usleep(10000);
	db_exec(db, "DROP TRIGGER refuse_b");   /* the second refusal was passing */
	publish_committer_finish(&committer);
	is_int((int)committer.unrecorded, 100, "last tries: the second set-aside batch tried too");
	is_int((int)committer.published, 500, "and recorded");
	db_exec(db, "DROP TRIGGER refuse_a");
	fclose(out);
}

static struct db *lock_holder;

static void *commit_later(void *ms)
{
	usleep((useconds_t)(intptr_t)ms * 1000);
	db_exec(lock_holder, "COMMIT");
	return NULL;
}

/* No signal, the deliveries waited for until give_up_at: a batch handed over
 * after it still waits out another writer's short transaction (busy_timeout),
 * rather than being left unrecorded to go to Kafka again. */
static void test_late_batch_waits_for_a_lock(struct config *config, struct db *db)
{
	struct publish_committer committer;
	FILE *out = tmpfile();
	pthread_t thread;

	stage(db);
	if (publish_committer_start(&committer, config, out)) {
		ok(0, "committer started");
		return;
	}
	publish_committer_finishing(&committer, db_now() - 0.01);
	lock_holder = db;
	db_exec(db, "BEGIN IMMEDIATE");   /* 300 ms, within busy_timeout (1 s) */
	pthread_create(&thread, NULL, commit_later, (void *)(intptr_t)300);
	publish_committer_submit(&committer, batch_of(1, 100));
	is_int(publish_committer_finish(&committer), 0, "a batch past give_up_at, a 300 ms lock: 0");
	pthread_join(thread, NULL);
	is_int((int)committer.unrecorded, 0, "... nothing unrecorded");
	is_int((int)committer.published, 100, "... the batch recorded");
	fclose(out);
}

/* A delivery Kafka confirms without an offset (a retried batch it had
 * already written: -1001) is published, its offset recorded as unknown. */
static void test_offset_unknown(struct config *config, struct db *db)
{
	struct publish_committer committer;
	struct publish_batch *batch = batch_of(1, 2);
	sqlite3_stmt *stmt;
	FILE *out = tmpfile();
	char got[64] = "";

	stage(db);
	batch->deliveries[1].offset = -1001;
	is_int(publish_committer_start(&committer, config, out), 0, "a committer started");
	publish_committer_submit(&committer, batch);
	is_int(publish_committer_finish(&committer), 0, "two deliveries, one without an offset: exit 0");
	fclose(out);
	if (!db_prepare(db, &stmt, "SELECT group_concat(state || ':' || coalesce(kafka_offset, 'NULL'), "
			"' ') FROM (SELECT * FROM codes WHERE id <= 2 ORDER BY id)")) {
		if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0))
			snprintf(got, sizeof got, "%s", (const char *)sqlite3_column_text(stmt, 0));
		sqlite3_finalize(stmt);
	}
	is_str(got, "published:1 published:NULL", "both published, the second's offset unknown (NULL)");
}

int main(void)
{
	char path[] = "/tmp/qrpool-test-committer.XXXXXX";
	struct publish_committer committer;
	struct config config;
	struct db db;
	long printed;
	int pages;

	close(mkstemp(path));
	memset(&config, 0, sizeof config);
	config.db_path = path;
	config.busy_timeout_ms = 1000;
	if (db_open(&db, path, 1000))
		return 1;

	stage(&db);
	db_exec(&db, "PRAGMA wal_checkpoint(TRUNCATE)");
	{
		sqlite3_stmt *stmt;
		db_prepare(&db, &stmt, "PRAGMA page_count");
		sqlite3_step(stmt);
		pages = sqlite3_column_int(stmt, 0);
		sqlite3_finalize(stmt);
	}
	is_int(run(&config, pages, &committer, &printed), EXIT_IO, "disk full: exit 74");
	is_int((int)committer.unrecorded, CODES, "every delivery counted as unrecorded");
	is_int((int)committer.published, 0, "none counted as published");
	is_int((int)printed, 0, "no line printed");
	is_int((int)count_state(&db, "fetched"), CODES, "every code still fetched");

	is_int(run(&config, 0, &committer, &printed), 0, "room again: exit 0");
	is_int((int)committer.unrecorded, 0, "nothing unrecorded");
	is_int((int)committer.published, CODES, "every delivery recorded");
	is_int((int)printed, CODES, "every line printed");
	is_int((int)count_state(&db, "published"), CODES, "every code published");

	test_one_batch_fails(&config, &db);
	test_last_tries_go_on(&config, &db);
	test_late_batch_waits_for_a_lock(&config, &db);
	test_offset_unknown(&config, &db);
	db_close(&db);
	unlink(path);
	return tap_done();
}

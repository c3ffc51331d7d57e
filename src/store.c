#include "store.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "exitcode.h"
#include "log.h"
#include "sha256.h"

static const char *const store_state_names[] = { "planned", "fetched", "published", "failed" };

const char *store_state_name(enum code_state state)
{
	return store_state_names[state];
}

int store_open(struct store *store, struct db *db)
{
	int status;

	memset(store, 0, sizeof *store);
	store->db = db;
	if ((status = db_prepare(db, &store->lookup,
			"SELECT id, state, pool FROM codes WHERE request_id = ?")) ||
	    (status = db_prepare(db, &store->save_code, "UPDATE codes SET state = 'fetched', "
			"content_type = ?, sha256 = ?, fetched_at = ?, updated_at = ?, "
			"attempts = attempts + ?, errcode = NULL, last_error = NULL "
			"WHERE id = ? AND state = 'planned'")) ||
	    /* An image left by an earlier run is replaced. Not with INSERT OR
	     * REPLACE: that would open a statement journal (a 64 KB buffer,
	     * and a copy of every page changed) for each image. */
	    (status = db_prepare(db, &store->save_image, "INSERT INTO images (code_id, bytes) "
			"VALUES (?, ?) ON CONFLICT (code_id) DO UPDATE SET bytes = excluded.bytes")) ||
	    (status = db_prepare(db, &store->attempt, "UPDATE codes SET attempts = attempts + ?, "
			"errcode = ?, last_error = ?, updated_at = ? WHERE id = ? AND state = 'planned'")) ||
	    (status = db_prepare(db, &store->fail, "UPDATE codes SET state = 'failed', "
			"attempts = attempts + ?, errcode = ?, last_error = ?, updated_at = ? "
			"WHERE id = ? AND state = 'planned'"))) {
		store_close(store);
		return status;
	}
	return 0;
}

void store_close(struct store *store)
{
	sqlite3_finalize(store->lookup);
	sqlite3_finalize(store->save_code);
	sqlite3_finalize(store->save_image);
	sqlite3_finalize(store->attempt);
	sqlite3_finalize(store->fail);
	memset(store, 0, sizeof *store);
}

int store_lookup(struct store *store, const char *request_id, struct code_row *row)
{
	const char *state;
	int rc;

	sqlite3_reset(store->lookup);
	sqlite3_bind_text(store->lookup, 1, request_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(store->lookup);
	if (rc == SQLITE_DONE)
		return 1;
	if (rc != SQLITE_ROW)
		return db_fail(store->db, rc, "looking up a request id");
	row->id = sqlite3_column_int64(store->lookup, 0);
	state = (const char *)sqlite3_column_text(store->lookup, 1);
	row->state = STATE_FAILED;
	for (int i = 0; i < 4; i++)
		if (!strcmp(state, store_state_names[i]))
			row->state = (enum code_state)i;
	snprintf(row->pool, sizeof row->pool, "%s", sqlite3_column_text(store->lookup, 2));
	sqlite3_reset(store->lookup);
	return 0;
}

static struct store_entry *store_append(struct store_batch *batch)
{
	struct store_entry *entry;

	if (batch->count == batch->capacity) {
		size_t capacity = batch->capacity ? batch->capacity * 2 : 64;
		struct store_entry *entries = realloc(batch->entries, capacity * sizeof *entries);
		if (!entries)
			return NULL;
		batch->entries = entries;
		batch->capacity = capacity;
	}
	entry = &batch->entries[batch->count++];
	memset(entry, 0, sizeof *entry);
	entry->finished_at = db_now();
	return entry;
}

/* Room for `size` bytes at the arena's end: their offset, or (size_t)-1. */
static size_t store_reserve(struct store_batch *batch, size_t size)
{
	size_t at = batch->arena_used;

	if (size > batch->arena_size - at) {
		size_t arena_size = batch->arena_size ? batch->arena_size : 65536;
		unsigned char *arena;

		if (size > SIZE_MAX / 4 - at)
			return (size_t)-1;
		while (arena_size - at < size)
			arena_size *= 2;
		if (!(arena = realloc(batch->arena, arena_size)))
			return (size_t)-1;
		batch->arena = arena;
		batch->arena_size = arena_size;
	}
	batch->arena_used += size;
	return at;
}

int store_add_image(struct store_batch *batch, int64_t code_id, const char *line,
	const char *content_type, const void *bytes, size_t size, int attempts)
{
	size_t length = strlen(line) + 1;
	size_t at = size < SIZE_MAX / 4 ? store_reserve(batch, length + size) : (size_t)-1;
	struct store_entry *entry;

	if (at == (size_t)-1 || !(entry = store_append(batch))) {
		if (at != (size_t)-1)
			batch->arena_used = at;
		return EXIT_INTERNAL;
	}
	entry->outcome = OUTCOME_IMAGE;
	entry->code_id = code_id;
	entry->content_type = (char *)content_type;
	entry->attempts = attempts;
	entry->line = at;
	entry->bytes = at + length;
	entry->size = size;
	memcpy(batch->arena + entry->line, line, length);
	memcpy(batch->arena + entry->bytes, bytes, size);
	sha256_hex(bytes, size, entry->sha256);
	return 0;
}

static int store_add_refusal(struct store_batch *batch, enum store_outcome outcome, int64_t code_id,
	int attempts, int errcode, const char *error)
{
	struct store_entry *entry = store_append(batch);

	if (!entry)
		return EXIT_INTERNAL;
	entry->outcome = outcome;
	entry->code_id = code_id;
	entry->attempts = attempts;
	entry->errcode = errcode;
	entry->error = error ? strdup(error) : NULL;
	return 0;
}

int store_add_attempt(struct store_batch *batch, int64_t code_id, int attempts, int errcode,
	const char *error)
{
	return store_add_refusal(batch, OUTCOME_ATTEMPT, code_id, attempts, errcode, error);
}

int store_add_failure(struct store_batch *batch, int64_t code_id, int attempts, int errcode,
	const char *error)
{
	return store_add_refusal(batch, OUTCOME_FAILED, code_id, attempts, errcode, error);
}

/* Runs one entry's statements; sets *stored when an image row was written. */
static int store_write_entry(struct store *store, const struct store_batch *batch,
	const struct store_entry *entry, int *stored)
{
	sqlite3_stmt *stmt = entry->outcome == OUTCOME_IMAGE ? store->save_code :
		entry->outcome == OUTCOME_ATTEMPT ? store->attempt : store->fail;
	int rc;

	*stored = 0;
	sqlite3_reset(stmt);
	if (entry->outcome == OUTCOME_IMAGE) {
		sqlite3_bind_text(stmt, 1, entry->content_type, -1, SQLITE_STATIC);
		sqlite3_bind_text(stmt, 2, entry->sha256, 64, SQLITE_STATIC);
		sqlite3_bind_int64(stmt, 3, (sqlite3_int64)entry->finished_at);
		sqlite3_bind_int64(stmt, 4, (sqlite3_int64)entry->finished_at);
		sqlite3_bind_int(stmt, 5, entry->attempts);
		sqlite3_bind_int64(stmt, 6, entry->code_id);
	} else {
		sqlite3_bind_int(stmt, 1, entry->attempts);
		if (entry->errcode)
			sqlite3_bind_int(stmt, 2, entry->errcode);
		else
			sqlite3_bind_null(stmt, 2);
		sqlite3_bind_text(stmt, 3, entry->error, -1, SQLITE_STATIC);
		sqlite3_bind_int64(stmt, 4, (sqlite3_int64)entry->finished_at);
		sqlite3_bind_int64(stmt, 5, entry->code_id);
	}
	if ((rc = sqlite3_step(stmt)) != SQLITE_DONE)
		return db_fail(store->db, rc, "recording a code");
	if (entry->outcome != OUTCOME_IMAGE || sqlite3_changes(store->db->handle) == 0)
		return 0;
	sqlite3_reset(store->save_image);
	sqlite3_bind_int64(store->save_image, 1, entry->code_id);
	sqlite3_bind_blob(store->save_image, 2, batch->arena + entry->bytes, (int)entry->size,
		SQLITE_STATIC);
	if ((rc = sqlite3_step(store->save_image)) != SQLITE_DONE)
		return db_fail(store->db, rc, "storing an image");
	*stored = 1;
	return 0;
}

/* The batch's outcomes are let go unrecorded (its transaction failed). */
static void store_count_unrecorded(struct store_batch *batch)
{
	for (size_t i = 0; i < batch->count; i++) {
		if (batch->entries[i].outcome == OUTCOME_IMAGE)
			batch->unrecorded_images++;
		else if (batch->entries[i].outcome == OUTCOME_FAILED)
			batch->unrecorded_failures++;
	}
}

static void store_clear(struct store_batch *batch)
{
	for (size_t i = 0; i < batch->count; i++)
		free(batch->entries[i].error);
	batch->count = 0;
	batch->arena_used = 0;
}

struct store_order {
	int64_t code_id;
	size_t index;             /* in the batch */
};

static int store_by_code(const void *a, const void *b)
{
	const struct store_order *x = a, *y = b;

	if (x->code_id != y->code_id)
		return (x->code_id > y->code_id) - (x->code_id < y->code_id);
	return (x->index > y->index) - (x->index < y->index);
}

/* The batch's entries in code order, those of one code in the order they
 * came: rows and images are then written in key order within the batch,
 * which the B-trees take more cheaply than the order calls finish in. */
static struct store_order *store_sorted(const struct store_batch *batch)
{
	struct store_order *order = malloc(batch->count * sizeof *order);

	if (!order)
		return NULL;
	for (size_t i = 0; i < batch->count; i++)
		order[i] = (struct store_order){ batch->entries[i].code_id, i };
	qsort(order, batch->count, sizeof *order, store_by_code);
	return order;
}

int store_flush(struct store *store, struct store_batch *batch, FILE *out)
{
	char *printable = NULL;
	struct store_order *order = NULL;
	int status = 0;

	if (!batch->count)
		return 0;
	printable = calloc(batch->count, 1);
	order = store_sorted(batch);
	if (!printable || !order) {
		free(printable);
		free(order);
		return EXIT_INTERNAL;
	}
	/* A lock held past busy_timeout is the caller's to say (a warning while
	 * the batch can wait), not an error line in a run that ends well. */
	if ((status = db_begin_immediate_quietly(store->db))) {
		if (status == EXIT_TEMPFAIL) {
			free(printable);
			free(order);
			return STORE_BUSY;   /* locked by another process: the batch waits */
		}
		store_count_unrecorded(batch);
		goto out;
	}
	for (size_t i = 0; i < batch->count && !status; i++) {
		int stored;
		status = store_write_entry(store, batch, &batch->entries[order[i].index], &stored);
		printable[order[i].index] = (char)stored;
	}
	if (!status)
		status = db_commit(store->db);
	if (status) {
		db_rollback(store->db);
		store_count_unrecorded(batch);
		goto out;
	}
	for (size_t i = 0; i < batch->count; i++) {
		if (batch->entries[i].outcome != OUTCOME_IMAGE)
			continue;
		if (!printable[i]) {
			batch->skipped++;
			continue;
		}
		batch->stored++;
		if ((fputs((char *)batch->arena + batch->entries[i].line, out) == EOF ||
		     putc('\n', out) == EOF) && !status)
			status = cli_stdout_failed();
	}
	if (fflush(out) != 0 && !status)
		status = cli_stdout_failed();
out:
	free(printable);
	free(order);
	store_clear(batch);
	return status;
}

void store_let_go(struct store_batch *batch)
{
	store_count_unrecorded(batch);
	store_clear(batch);
}

void store_batch_free(struct store_batch *batch)
{
	store_clear(batch);
	free(batch->entries);
	free(batch->arena);
	memset(batch, 0, sizeof *batch);
}

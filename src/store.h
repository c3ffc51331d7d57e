/* Staged codes as the filters (fetch, render, publish) see them: look an item
 * up, then record outcomes in batched transactions and emit an item line only
 * once its transaction has committed. */
#ifndef QRPOOL_STORE_H
#define QRPOOL_STORE_H

#include <stdint.h>
#include <stdio.h>

#include "db.h"

enum code_state { STATE_PLANNED, STATE_FETCHED, STATE_PUBLISHED, STATE_FAILED };

struct code_row {
	int64_t id;
	enum code_state state;
	char pool[128];
};

struct store {
	struct db *db;
	sqlite3_stmt *lookup;
	sqlite3_stmt *save_code, *save_image, *attempt, *fail;
};

int store_open(struct store *store, struct db *db);
void store_close(struct store *store);

/* Returns 0 (found), 1 (no such request id) or an exit code. */
int store_lookup(struct store *store, const char *request_id, struct code_row *row);
const char *store_state_name(enum code_state state);

enum store_outcome { OUTCOME_IMAGE, OUTCOME_ATTEMPT, OUTCOME_FAILED };

struct store_entry {
	enum store_outcome outcome;
	int64_t code_id;
	size_t line;              /* in the arena: item line to emit after commit (images only) */
	char *content_type;       /* static string */
	size_t bytes;             /* in the arena: the image */
	size_t size;
	char sha256[65];
	int attempts;             /* calls this run made for the item */
	int errcode;
	char *error;              /* owned; NULL if none */
	double finished_at;
};

struct store_batch {
	struct store_entry *entries;
	size_t count, capacity;
	/* The images and item lines, one after another: a malloc and a free
	 * fewer per image (of a size malloc keeps no ready list for). */
	unsigned char *arena;
	size_t arena_used, arena_size;
	int64_t stored, skipped;  /* images committed; images not stored (already done elsewhere) */
	/* Outcomes of a flush that failed (a full disk, an I/O error), let go:
	 * their codes stay planned. */
	int64_t unrecorded_images, unrecorded_failures;
};

/* Queues an image for `code_id` (copied; sha256 computed here). `line` is the
 * item line to print once committed, without its newline. */
int store_add_image(struct store_batch *batch, int64_t code_id, const char *line,
	const char *content_type, const void *bytes, size_t size, int attempts);
/* Queues a transient failure: attempts counted, error noted, still planned. */
int store_add_attempt(struct store_batch *batch, int64_t code_id, int attempts, int errcode,
	const char *error);
/* Queues a permanent refusal of this one item: state failed. */
int store_add_failure(struct store_batch *batch, int64_t code_id, int attempts, int errcode,
	const char *error);

/* Commits everything queued in one transaction, then writes the stored items'
 * lines to `out`. An image whose code is no longer 'planned' (another run
 * stored it first) is not stored again and not printed. Returns 0;
 * STORE_BUSY when another process held the DB for the whole busy timeout:
 * the batch is kept, for a later flush; or an exit code: then nothing of the
 * batch is recorded (counted in unrecorded_*) and nothing printed. */
#define STORE_BUSY 1
int store_flush(struct store *store, struct store_batch *batch, FILE *out);
/* Lets the batch go unrecorded (a lock that outlasted the run), counted in
 * unrecorded_*. */
void store_let_go(struct store_batch *batch);
void store_batch_free(struct store_batch *batch);

#endif

/* qrpool-resolve's lookups: what the middle page does when a code is
 * scanned. Redis first; on a miss the bindings table, and the answer is put
 * back into Redis. Ids are resolved in batches, pipelined to Redis. */
#ifndef QRPOOL_RESOLVE_H
#define QRPOOL_RESOLVE_H

#include <stdint.h>
#include <stdio.h>

#include "binding.h"
#include "cache.h"
#include "config.h"
#include "db.h"
#include "rid.h"

#define RESOLVE_BATCH 256

struct resolver {
	const struct config *config;
	struct cache cache;
	struct db db;                  /* opened on the first miss */
	struct binding_store bindings;
	int db_open;
	char ids[RESOLVE_BATCH][RID_SCENE_MAX + 1];
	size_t count;                  /* ids waiting in the batch */
	int64_t from_cache, from_db, unknown;
	int64_t bad_cached;            /* cached values that were no record (answered from the DB) */
};

/* Returns 0 or EXIT_CONFIG (the Redis password cannot be read). */
int resolve_open(struct resolver *resolver, const struct config *config);
void resolve_close(struct resolver *resolver);

/* Queues one id (checked by the caller with rid_is_scene), resolving the
 * batch when it is full. Returns 0 or an exit code. */
int resolve_add(struct resolver *resolver, const char *id, FILE *out);
/* Resolves what is queued, printing "request_id TAB json" lines to `out` in
 * the order given, up to the first id the database could not answer (it
 * failed: locked past busy_timeout, an I/O error). Unknown ids are logged
 * and counted. 0 or an exit code. */
int resolve_flush(struct resolver *resolver, FILE *out);
/* 1 when `status` ends the run: an id left unanswered (a DB failure) or
 * stdout gone. Bad ids (EXIT_DATA) do not: the next ones are answered. */
int resolve_stops(int status);

#endif

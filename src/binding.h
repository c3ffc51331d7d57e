/* The bindings table: which parameters each handed-out code carries. The
 * system of record; Redis only caches it. */
#ifndef QRPOOL_BINDING_H
#define QRPOOL_BINDING_H

#include <stdint.h>

#include "db.h"

struct binding {
	const char *request_id;
	const char *pool;
	const char *params;       /* compact JSON object */
	double bound_at;
	int32_t kafka_partition;
	int64_t kafka_offset;
};

struct binding_store {
	struct db *db;
	sqlite3_stmt *insert, *lookup, *remove;
};

/* Returned by binding_insert when the code is bound already, and by
 * binding_lookup for an unknown id (both below every exit code). */
#define BINDING_EXISTS 1
#define BINDING_UNKNOWN 1

int binding_open(struct binding_store *store, struct db *db);
void binding_close(struct binding_store *store);

/* Records one binding in its own transaction. Returns 0 (committed),
 * BINDING_EXISTS (the code was bound before: nothing written), or an exit code. */
int binding_insert(struct binding_store *store, const struct binding *binding);

/* The parameters bound to `request_id`, malloc'd in *params. Returns 0,
 * BINDING_UNKNOWN, or an exit code. */
int binding_lookup(struct binding_store *store, const char *request_id, char **params);

/* Removes a binding just inserted (its code turned out to be bound
 * elsewhere), in its own transaction. Returns 0 or an exit code. */
int binding_remove(struct binding_store *store, const char *request_id);

#endif

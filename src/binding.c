#include "binding.h"

#include <stdlib.h>
#include <string.h>

#include "exitcode.h"
#include "log.h"

int binding_open(struct binding_store *store, struct db *db)
{
	int status;

	memset(store, 0, sizeof *store);
	store->db = db;
	if ((status = db_prepare(db, &store->insert, "INSERT INTO bindings (request_id, pool, params, "
			"bound_at, kafka_partition, kafka_offset) VALUES (?, ?, ?, ?, ?, ?)")) ||
	    (status = db_prepare(db, &store->lookup,
			"SELECT params FROM bindings WHERE request_id = ?")) ||
	    (status = db_prepare(db, &store->remove, "DELETE FROM bindings WHERE request_id = ?"))) {
		binding_close(store);
		return status;
	}
	return 0;
}

void binding_close(struct binding_store *store)
{
	sqlite3_finalize(store->insert);
	sqlite3_finalize(store->lookup);
	sqlite3_finalize(store->remove);
	store->insert = store->lookup = store->remove = NULL;
}

int binding_insert(struct binding_store *store, const struct binding *binding)
{
	sqlite3_stmt *stmt = store->insert;
	int rc;

	sqlite3_reset(stmt);
	sqlite3_bind_text(stmt, 1, binding->request_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, binding->pool, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 3, binding->params, -1, SQLITE_STATIC);
	sqlite3_bind_double(stmt, 4, binding->bound_at);
	sqlite3_bind_int(stmt, 5, binding->kafka_partition);
	sqlite3_bind_int64(stmt, 6, binding->kafka_offset);
	rc = sqlite3_step(stmt);
	sqlite3_reset(stmt);
	/* The primary key is what makes a redelivered code recognisable. */
	if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
		return BINDING_EXISTS;
	return rc == SQLITE_DONE ? 0 : db_fail(store->db, rc, "recording a binding");
}

int binding_lookup(struct binding_store *store, const char *request_id, char **params)
{
	sqlite3_stmt *stmt = store->lookup;
	int rc, status = BINDING_UNKNOWN;

	sqlite3_reset(stmt);
	sqlite3_bind_text(stmt, 1, request_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		*params = strdup((const char *)sqlite3_column_text(stmt, 0));
		status = *params ? 0 : EXIT_INTERNAL;
	} else if (rc != SQLITE_DONE)
		status = db_fail(store->db, rc, "looking up a binding");
	sqlite3_reset(stmt);
	return status;
}

int binding_remove(struct binding_store *store, const char *request_id)
{
	sqlite3_stmt *stmt = store->remove;
	int rc;

	sqlite3_reset(stmt);
	sqlite3_bind_text(stmt, 1, request_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	sqlite3_reset(stmt);
	return rc == SQLITE_DONE ? 0 : db_fail(store->db, rc, "removing a binding");
}

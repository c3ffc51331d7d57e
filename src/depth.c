#include "depth.h"

#include <string.h>

#include "exitcode.h"

int depth_count_states(struct db *db, const struct config *config, struct pool_counts *counts)
{
	sqlite3_stmt *stmt;
	int status, rc;

	memset(counts, 0, config->pool_count * sizeof *counts);
	/* Grouping over the (state, pool) index reads the index only. */
	if ((status = db_prepare(db, &stmt,
			"SELECT pool, state, count(*) FROM codes GROUP BY state, pool")))
		return status;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *pool = (const char *)sqlite3_column_text(stmt, 0);
		const char *state = (const char *)sqlite3_column_text(stmt, 1);
		int64_t count = sqlite3_column_int64(stmt, 2);

		for (size_t i = 0; i < config->pool_count; i++) {
			struct pool_counts *c = &counts[i];
			if (strcmp(config->pools[i].name, pool))
				continue;
			if (!strcmp(state, "planned"))
				c->planned = count;
			else if (!strcmp(state, "fetched"))
				c->fetched = count;
			else if (!strcmp(state, "published"))
				c->published = count;
			else
				c->failed = count;
		}
	}
	sqlite3_finalize(stmt);
	return rc == SQLITE_DONE ? 0 : db_fail(db, rc, "counting codes by state");
}

int depth_measure(const struct config *config, const struct pool_counts *counts,
	size_t pool_index, struct pool_depth *out)
{
	(void)config;
	out->depth = counts[pool_index].published;
	out->lost = 0;
	out->measured = 0;
	return 0;
}

#include "resolve.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exitcode.h"
#include "log.h"
#include "params.h"

int resolve_open(struct resolver *resolver, const struct config *config)
{
	memset(resolver, 0, sizeof *resolver);
	resolver->config = config;
	return cache_open(&resolver->cache, config);
}

void resolve_close(struct resolver *resolver)
{
	cache_close(&resolver->cache);
	if (resolver->db_open) {
		binding_close(&resolver->bindings);
		db_close(&resolver->db);
	}
	resolver->db_open = 0;
}

/* The DB is opened only when Redis misses, and never created: a missing file
 * means a wrong path, not an empty record. */
static int resolve_open_db(struct resolver *resolver)
{
	const struct config *config = resolver->config;
	struct stat st;
	int status;

	if (resolver->db_open)
		return 0;
	if (stat(config->db_path, &st) != 0) {
		log_error("%s: %s: no bindings to fall back on", config->db_path, strerror(errno));
		return EXIT_IO;
	}
	/* SQLite would take an empty file for a new DB and write a schema into
	 * it: resolve makes none, and an emptied DB has no bindings either. */
	if (S_ISREG(st.st_mode) && st.st_size == 0) {
		log_error("%s: the file is empty (a DB made on purpose and never used, or one emptied by "
			"mistake): no bindings to fall back on", config->db_path);
		return EXIT_IO;
	}
	if ((status = db_open_read_only(&resolver->db, config->db_path, config->busy_timeout_ms,
			"bindings")))
		return status;
	if ((status = binding_open(&resolver->bindings, &resolver->db))) {
		db_close(&resolver->db);
		return status;
	}
	resolver->db_open = 1;
	return 0;
}

/* Fills the misses from the bindings table and puts them back into Redis. */
static int resolve_misses(struct resolver *resolver, char **values)
{
	const char *warm_ids[RESOLVE_BATCH], *warm_values[RESOLVE_BATCH];
	size_t warm = 0;
	int status = 0;

	for (size_t i = 0; i < resolver->count && !status; i++) {
		if (values[i])
			continue;
		if ((status = resolve_open_db(resolver)))
			break;
		status = binding_lookup(&resolver->bindings, resolver->ids[i], &values[i]);
		if (status == BINDING_UNKNOWN) {
			log_error("unknown request id '%s': no code was bound to it", resolver->ids[i]);
			resolver->unknown++;
			/* Answered all the same: a co-process reading one line per id
			 * written would otherwise wait for this one forever. */
			values[i] = strdup("null");
			status = values[i] ? 0 : EXIT_INTERNAL;
		} else if (!status) {
			warm_ids[warm] = resolver->ids[i];
			warm_values[warm++] = values[i];
			resolver->from_db++;
		}
	}
	if (warm && cache_on(&resolver->cache))
		cache_put_many(&resolver->cache, warm_ids, warm_values, warm);
	return status;
}

/* The longest value a record of PARAMS_MAX_BYTES can be cached as: its
 * compact form writes each real with 17 digits ("0.1" as 19 characters). */
#define RESOLVE_CACHED_MAX (PARAMS_MAX_BYTES * 8)

/* A cached value is printed only if it looks like a record as claim caches
 * it: one JSON object on one line ({...}, no control character: JSON
 * escapes them), at most RESOLVE_CACHED_MAX. Whoever can write to Redis must
 * not be able to add lines for other ids, nor answer with what is no
 * record; a whole JSON parse would cost more than the lookup. One that is
 * not is a miss, answered (and cached again) from the DB. */
static int resolve_looks_like_record(const char *value, size_t length)
{
	if (length < 2 || length > RESOLVE_CACHED_MAX || value[0] != '{' || value[length - 1] != '}')
		return 0;
	for (size_t i = 0; i < length; i++)
		if ((unsigned char)value[i] < 0x20 || value[i] == 0x7f)
			return 0;
	return 1;
}

static void resolve_check_cached(struct resolver *resolver, const char *id, char **value)
{
	if (!*value || resolve_looks_like_record(*value, strlen(*value)))
		return;
	log_warn("%s: the value cached in Redis is no record (one JSON object on one line, at most "
		"%d bytes): answered from the staging DB, and cached again from it", id,
		RESOLVE_CACHED_MAX);
	resolver->bad_cached++;
	free(*value);
	*value = NULL;
}

int resolve_flush(struct resolver *resolver, FILE *out)
{
	const char *ids[RESOLVE_BATCH];
	char *values[RESOLVE_BATCH];
	int status, written = 0, unanswered = 0;

	for (size_t i = 0; i < resolver->count; i++)
		ids[i] = resolver->ids[i];
	cache_get_many(&resolver->cache, ids, resolver->count, values);
	for (size_t i = 0; i < resolver->count; i++) {
		resolve_check_cached(resolver, ids[i], &values[i]);
		resolver->from_cache += values[i] != NULL;
	}
	status = resolve_misses(resolver, values);
	/* What is known is printed even when the database failed for the rest,
	 * up to the first id it could not answer: the answers stay in the order
	 * of the ids (a co-process reads one line per id written), and the run
	 * ends there (resolve_stops). */
	for (size_t i = 0; i < resolver->count; i++) {
		unanswered |= !values[i];
		if (!unanswered && !written && fprintf(out, "%s\t%s\n", ids[i], values[i]) < 0)
			written = EXIT_IO;
		free(values[i]);
	}
	resolver->count = 0;
	return exitcode_worst(status, written);
}

int resolve_stops(int status)
{
	return status != 0 && status != EXIT_DATA;
}

int resolve_add(struct resolver *resolver, const char *id, FILE *out)
{
	snprintf(resolver->ids[resolver->count++], sizeof resolver->ids[0], "%s", id);
	return resolver->count == RESOLVE_BATCH ? resolve_flush(resolver, out) : 0;
}

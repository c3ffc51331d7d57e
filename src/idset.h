/* A set of code ids, for the stages that must see each code once per run:
 * an input listing a request id twice would otherwise have it fetched,
 * rendered or sent twice, or printed twice for the next stage. */
#ifndef QRPOOL_IDSET_H
#define QRPOOL_IDSET_H

#include <stddef.h>
#include <stdint.h>

/* Open addressing, at most half full; ids are rowids, so never 0 (the empty
 * slot). Zeroed is empty. */
struct idset {
	int64_t *ids;
	size_t count, capacity;   /* capacity: 2^(64 - shift) */
	int shift;
};

/* Adds `id` (> 0): 1 if it was new, 0 if already there, -1 when out of memory. */
int idset_add(struct idset *set, int64_t id);
void idset_free(struct idset *set);

#endif

#include "idset.h"

#include <stdlib.h>

/* The slot of `id` in a table of 2^(64 - shift): the high bits of a
 * multiplicative hash, which strided ids spread as well as sequential ones. */
static size_t idset_slot(int64_t id, int shift)
{
	return (size_t)(((uint64_t)id * UINT64_C(0x9E3779B97F4A7C15)) >> shift);
}

static int idset_grow(struct idset *set)
{
	int shift = set->capacity ? set->shift - 1 : 52;   /* 4096 slots first */
	size_t capacity = (size_t)1 << (64 - shift), at;
	int64_t *grown = calloc(capacity, sizeof *grown);

	if (!grown)
		return -1;
	for (size_t i = 0; i < set->capacity; i++) {
		if (!set->ids[i])
			continue;
		for (at = idset_slot(set->ids[i], shift); grown[at]; at = (at + 1) & (capacity - 1))
			;
		grown[at] = set->ids[i];
	}
	free(set->ids);
	set->ids = grown;
	set->capacity = capacity;
	set->shift = shift;
	return 0;
}

int idset_add(struct idset *set, int64_t id)
{
	size_t mask, at;

	if ((set->count + 1) * 2 > set->capacity && idset_grow(set))
		return -1;
	mask = set->capacity - 1;
	for (at = idset_slot(id, set->shift); set->ids[at]; at = (at + 1) & mask)
		if (set->ids[at] == id)
			return 0;
	set->ids[at] = id;
	set->count++;
	return 1;
}

void idset_free(struct idset *set)
{
	free(set->ids);
	set->ids = NULL;
	set->count = set->capacity = 0;
	set->shift = 0;
}

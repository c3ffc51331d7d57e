#include <stdlib.h>

#include "idset.h"
#include "tap.h"

/* Ids as the stages meet them: sequential rowids, strided ones (a pool's
 * codes among others), and large ones; each added twice. */
static void test_add_twice(int64_t first, int64_t stride, long count, const char *what)
{
	struct idset set = { 0 };
	long added = 0, repeated = 0, failed = 0;

	for (int round = 0; round < 2; round++)
		for (long i = 0; i < count; i++) {
			int got = idset_add(&set, first + i * stride);
			added += got == 1 && round == 0;
			repeated += got == 0 && round == 1;
			failed += got != (round == 0);
		}
	is_int(added, count, "%s: each new id added once", what);
	is_int(repeated, count, "%s: each repeat found", what);
	is_int(failed, 0, "%s: no other answer", what);
	is_int(set.count, count, "%s: the count", what);
	ok(set.capacity >= 2 * set.count, "%s: at most half full (%zu of %zu)", what, set.count,
		set.capacity);
	idset_free(&set);
	ok(!set.ids && !set.count && !set.capacity, "%s: freed, empty again", what);
}

int main(void)
{
	struct idset set = { 0 };

	test_add_twice(1, 1, 100000, "sequential");
	test_add_twice(7, 4096, 50000, "strided by 4096");
	test_add_twice(INT64_MAX - 1000000, 997, 1000, "near INT64_MAX");
	is_int(idset_add(&set, 42), 1, "a fresh set takes an id");
	is_int(idset_add(&set, 42), 0, "and knows it");
	idset_free(&set);
	is_int(idset_add(&set, 42), 1, "a freed set is usable again");
	idset_free(&set);
	return tap_done();
}

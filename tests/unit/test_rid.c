#include <stdlib.h>

#include "rid.h"
#include "tap.h"

static int compare_ids(const void *a, const void *b)
{
	return memcmp(a, b, RID_LENGTH);
}

/* One million ids: all 16 characters of base62, all different. */
static void test_million_unique(void)
{
	enum { COUNT = 1000000 };
	char (*ids)[RID_LENGTH] = malloc((size_t)COUNT * RID_LENGTH);
	struct rid_source source;
	long bad = 0, duplicates = 0;
	char id[RID_LENGTH + 1];

	rid_source_init(&source);
	for (long i = 0; i < COUNT; i++) {
		if (rid_mint(&source, id) != 0 || strlen(id) != RID_LENGTH)
			bad++;
		for (int c = 0; c < RID_LENGTH; c++)
			if (!strchr("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", id[c]))
				bad++;
		if (!rid_is_scene(id, RID_LENGTH))
			bad++;
		memcpy(ids[i], id, RID_LENGTH);
	}
	qsort(ids, COUNT, RID_LENGTH, compare_ids);
	for (long i = 1; i < COUNT; i++)
		duplicates += !memcmp(ids[i - 1], ids[i], RID_LENGTH);
	is_int(bad, 0, "1,000,000 ids are 16 base62 characters and valid scenes");
	is_int(duplicates, 0, "1,000,000 ids are unique");
	free(ids);
}

/* Every character should appear about equally often: a modulo bias would
 * make the first 8 characters of the alphabet ~25%% more frequent. */
static void test_uniform(void)
{
	long counts[128] = { 0 }, min = -1, max = 0;
	struct rid_source source;
	char id[RID_LENGTH + 1];

	rid_source_init(&source);
	for (int i = 0; i < 62500; i++) {
		rid_mint(&source, id);
		for (int c = 0; c < RID_LENGTH; c++)
			counts[(unsigned char)id[c]]++;
	}
	for (int c = 0; c < 128; c++)
		if (counts[c]) {
			min = min < 0 || counts[c] < min ? counts[c] : min;
			max = counts[c] > max ? counts[c] : max;
		}
	/* 1,000,000 characters over 62 symbols: ~16,129 each, sd ~ 125. */
	ok(min > 15500 && max < 16800, "characters are uniform (min %ld, max %ld)", min, max);
}

static void test_scene(void)
{
	ok(rid_is_scene("abc!#$&'()*+,/:;=?@-._~", 23), "the scene punctuation is accepted");
	ok(!rid_is_scene("abc def", 7), "a space is refused");
	ok(!rid_is_scene("", 0), "empty is refused");
	ok(rid_is_scene("0123456789abcdef0123456789abcdef", 32), "32 characters are accepted");
	ok(!rid_is_scene("0123456789abcdef0123456789abcdefg", 33), "33 characters are refused");
	ok(!rid_is_scene("caf\xc3\xa9", 5), "non-ASCII is refused");
	ok(rid_is_base62("AbC019xyz", 9), "base62: letters and digits");
	ok(!rid_is_base62("$(id);x", 7) && !rid_is_base62("../x", 4) && !rid_is_base62("a.b", 3),
		"base62: no scene punctuation");
	ok(!rid_is_base62("", 0) && !rid_is_base62("0123456789abcdef0123456789abcdefg", 33),
		"base62: 1 to 32 characters");
}

int main(void)
{
	test_million_unique();
	test_uniform();
	test_scene();
	return tap_done();
}

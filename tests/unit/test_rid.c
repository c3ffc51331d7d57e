#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "rid.h"
#include "tap.h"

/* rid.c's getrandom(), seen from here: this program's own definition is the
 * one rid.o is linked against. By default it is the kernel's (the system
 * call); a test may have it hand out bytes of its own, or fail, to prove
 * where the ids come from. */
static enum { KERNEL, PATTERN, FAIL } getrandom_mode;
static long getrandom_calls, getrandom_flags_seen;
static unsigned getrandom_next;

ssize_t getrandom(void *buffer, size_t length, unsigned int flags)
{
	unsigned char *bytes = buffer;

	getrandom_calls++;
	getrandom_flags_seen |= flags;
	switch (getrandom_mode) {
	case PATTERN:
		/* Short reads, and an EINTR before every third: rid.c must loop. */
		if (getrandom_calls % 3 == 0) {
			errno = EINTR;
			return -1;
		}
		length = length > 1000 ? 1000 : length;
		for (size_t i = 0; i < length; i++)
			bytes[i] = (unsigned char)(getrandom_next++ % 256);
		return (ssize_t)length;
	case FAIL:
		errno = ENOSYS;
		return -1;
	default:
		return syscall(SYS_getrandom, buffer, length, flags);
	}
}

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

/* The ids are made of the kernel's random bytes and nothing else: with
 * getrandom() handing out 0, 1, 2, ... each byte below 248 is one character
 * (byte % 62), the others are dropped. A failing getrandom() is an error,
 * not a weaker id. */
static void test_from_getrandom(void)
{
	struct rid_source source;
	char id[RID_LENGTH + 1], expected[RID_LENGTH + 1];
	const char *alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	unsigned byte = 0;
	int good = 1;

	getrandom_mode = PATTERN;
	getrandom_calls = getrandom_flags_seen = 0;
	getrandom_next = 0;
	rid_source_init(&source);
	for (int n = 0; n < 1000; n++) {   /* 16,000+ bytes: several refills */
		for (int c = 0; c < RID_LENGTH; byte++)
			if (byte % 256 < 248)
				expected[c++] = alphabet[byte % 256 % 62];
		expected[RID_LENGTH] = '\0';
		if (rid_mint(&source, id) != 0 || strcmp(id, expected)) {
			if (good)
				printf("# id %d: got %s, expected %s\n", n, id, expected);
			good = 0;
		}
	}
	ok(good, "1,000 ids are the bytes getrandom() handed out, in base62, those of 248 and above "
		"dropped (through short reads and EINTR)");
	ok(getrandom_calls > 20, "... asked of getrandom() (%ld calls)", getrandom_calls);
	is_int(getrandom_flags_seen, 0, "... blocking until the kernel's pool is ready (no GRND_NONBLOCK, "
		"no GRND_RANDOM)");
	getrandom_mode = FAIL;
	rid_source_init(&source);
	is_int(rid_mint(&source, id), -1, "a getrandom() that fails: no id");
	getrandom_mode = KERNEL;
}

int main(void)
{
	test_from_getrandom();
	test_million_unique();
	test_uniform();
	test_scene();
	return tap_done();
}

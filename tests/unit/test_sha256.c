/* sha256.c: FIPS 180-4's example digests, the same context reused call after
 * call (a digest must not carry anything over from the one before), and
 * threads hashing at once, each with its own context. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sha256.h"
#include "tap.h"

#define THREADS 4
#define ROUNDS 20000

static pthread_barrier_t start;   /* the threads hash at the same time */

static const char *const empty_digest =
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
static const char *const abc_digest =
	"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

/* Hashes "abc" and "" in turn: the count of wrong digests. */
static void *hash_alternately(void *unused)
{
	char hex[SHA256_HEX_SIZE];
	long wrong = 0;

	(void)unused;
	pthread_barrier_wait(&start);
	for (int i = 0; i < ROUNDS; i++) {
		sha256_hex("abc", 3, hex);
		wrong += strcmp(hex, abc_digest) != 0;
		sha256_hex("", 0, hex);
		wrong += strcmp(hex, empty_digest) != 0;
	}
	return (void *)wrong;
}

int main(void)
{
	static const char two_blocks[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	char hex[SHA256_HEX_SIZE];
	char *million = malloc(1000000);
	pthread_t threads[THREADS];
	long wrong = 0;

	sha256_hex("abc", 3, hex);
	is_str(hex, abc_digest, "\"abc\"");
	sha256_hex("", 0, hex);
	is_str(hex, empty_digest, "the empty string, after \"abc\" on the same context");
	sha256_hex(two_blocks, strlen(two_blocks), hex);
	is_str(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
		"a message of two blocks");
	memset(million, 'a', 1000000);
	sha256_hex(million, 1000000, hex);
	is_str(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
		"one million times 'a'");
	free(million);

	pthread_barrier_init(&start, NULL, THREADS);
	for (int i = 0; i < THREADS; i++)
		pthread_create(&threads[i], NULL, hash_alternately, NULL);
	for (int i = 0; i < THREADS; i++) {
		void *result;
		pthread_join(threads[i], &result);
		wrong += (long)result;
	}
	pthread_barrier_destroy(&start);
	is_int(wrong, 0, "%d threads hashing at once, each %d digests: all right", THREADS,
		2 * ROUNDS);
	return tap_done();
}

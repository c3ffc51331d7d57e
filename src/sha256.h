/* SHA-256 (FIPS 180-4), for the digest stored and sent with every image. */
#ifndef QRPOOL_SHA256_H
#define QRPOOL_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_HEX_SIZE 65

struct sha256 {
	uint32_t state[8];
	uint64_t length;
	unsigned char block[64];
	size_t used;
};

void sha256_init(struct sha256 *ctx);
void sha256_update(struct sha256 *ctx, const void *data, size_t size);
void sha256_final(struct sha256 *ctx, unsigned char digest[32]);
/* One call: hex digest of `data` into `hex` (64 characters and a NUL). */
void sha256_hex(const void *data, size_t size, char hex[SHA256_HEX_SIZE]);

#endif

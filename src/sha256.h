/* SHA-256 (FIPS 180-4), for the digest stored and sent with every image:
 * OpenSSL's libcrypto, which uses the CPU's SHA instructions where there are
 * some (six times our own portable C here, a twentieth of fetch's CPU). */
#ifndef QRPOOL_SHA256_H
#define QRPOOL_SHA256_H

#include <stddef.h>

#define SHA256_HEX_SIZE 65

/* Hex digest of `data` into `hex` (64 characters and a NUL). */
void sha256_hex(const void *data, size_t size, char hex[SHA256_HEX_SIZE]);

#endif

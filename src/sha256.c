#include "sha256.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>

/* OpenSSL 3's one-shot SHA256() looks the algorithm up and makes a context
 * for every call: a third of its time for a 2 KB image. The algorithm is
 * looked up once here, and each thread keeps a context (freed when the
 * thread ends). */
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static pthread_key_t sha256_key;
static EVP_MD *sha256_md;
static int sha256_ready;

static void sha256_context_free(void *context)
{
	EVP_MD_CTX_free(context);
}

static void sha256_setup(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
	sha256_ready = sha256_md && pthread_key_create(&sha256_key, sha256_context_free) == 0;
}

/* 0, or -1 when OpenSSL could not be set up this way. */
static int sha256_digest(const void *data, size_t size, unsigned char *digest)
{
	EVP_MD_CTX *context;

	pthread_once(&sha256_once, sha256_setup);
	if (!sha256_ready)
		return -1;
	if (!(context = pthread_getspecific(sha256_key))) {
		if (!(context = EVP_MD_CTX_new()))
			return -1;
		if (pthread_setspecific(sha256_key, context)) {
			EVP_MD_CTX_free(context);
			return -1;
		}
	}
	return EVP_DigestInit_ex2(context, sha256_md, NULL) && EVP_DigestUpdate(context, data, size) &&
		EVP_DigestFinal_ex(context, digest, NULL) ? 0 : -1;
}

void sha256_hex(const void *data, size_t size, char hex[SHA256_HEX_SIZE])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char digest[SHA256_DIGEST_LENGTH];

	if (sha256_digest(data, size, digest))
		SHA256(data, size, digest);
	for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
		hex[2 * i] = digits[digest[i] >> 4];
		hex[2 * i + 1] = digits[digest[i] & 15];
	}
	hex[2 * SHA256_DIGEST_LENGTH] = '\0';
}

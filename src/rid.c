#include "rid.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

static const char rid_alphabet[] =
	"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

void rid_source_init(struct rid_source *source)
{
	source->used = source->filled = 0;
}

static int rid_refill(struct rid_source *source)
{
	size_t got = 0;

	while (got < sizeof source->pool) {
		ssize_t n = getrandom(source->pool + got, sizeof source->pool - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		got += (size_t)n;
	}
	source->used = 0;
	source->filled = got;
	return 0;
}

int rid_mint(struct rid_source *source, char out[RID_LENGTH + 1])
{
	size_t produced = 0;

	while (produced < RID_LENGTH) {
		unsigned char byte;

		if (source->used == source->filled && rid_refill(source))
			return -1;
		byte = source->pool[source->used++];
		/* 248 = 4 * 62: rejecting the bytes above it keeps every character
		 * equally likely (no modulo bias). */
		if (byte < 248)
			out[produced++] = rid_alphabet[byte % 62];
	}
	out[RID_LENGTH] = '\0';
	return 0;
}

/* 1 if `id` is 1 to RID_SCENE_MAX characters, each a letter, a digit or
 * (if `extra`) one of those characters. */
static int rid_is_of(const char *id, size_t length, const char *extra)
{
	if (length < 1 || length > RID_SCENE_MAX)
		return 0;
	for (size_t i = 0; i < length; i++) {
		unsigned char c = (unsigned char)id[i];
		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c && extra && strchr(extra, c))))
			return 0;
	}
	return 1;
}

int rid_is_scene(const char *id, size_t length)
{
	return rid_is_of(id, length, "!#$&'()*+,/:;=?@-._~");
}

int rid_is_base62(const char *id, size_t length)
{
	return rid_is_of(id, length, NULL);
}

/* Request ids: 16 base62 characters from the kernel's CSPRNG (95 bits). They
 * sit in WeChat's scene (max 32 characters) and key the bound parameters, so
 * they must be unguessable, never sequential. */
#ifndef QRPOOL_RID_H
#define QRPOOL_RID_H

#include <stddef.h>

#define RID_LENGTH 16
#define RID_SCENE_MAX 32

/* Random bytes are read from getrandom() in blocks, not one call per id. */
struct rid_source {
	unsigned char pool[4096];
	size_t used, filled;
};

void rid_source_init(struct rid_source *source);
/* Writes RID_LENGTH characters and a NUL. Returns 0, or -1 if the kernel
 * would not give random bytes (errno set). */
int rid_mint(struct rid_source *source, char out[RID_LENGTH + 1]);

/* 1 if `id` (length bytes) is a valid WeChat scene: 1 to 32 characters from
 * 0-9 A-Z a-z and !#$&'()*+,/:;=?@-._~ */
int rid_is_scene(const char *id, size_t length);

/* 1 if `id` is 1 to 32 letters and digits, as every id qrpool mints is: a
 * name safe as a file name and in a shell's words. */
int rid_is_base62(const char *id, size_t length);

#endif

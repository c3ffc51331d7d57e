/* Link codes: a URL encoded with libqrencode and written as a PNG by libpng
 * into memory. A struct renderer holds what one thread reuses from one code
 * to the next; nothing here touches files, the DB or stdout. */
#ifndef QRPOOL_RENDER_H
#define QRPOOL_RENDER_H

#include <stddef.h>

#include "config.h"

#define RENDER_CONTENT_TYPE "image/png"
#define RENDER_ERROR_SIZE 200

/* PNG bytes; the buffer is kept and reused by the next render into it. */
struct render_image {
	unsigned char *bytes;
	size_t size, capacity;
};

/* Memory for libpng and zlib, handed out by bumping a pointer and taken back
 * all at once before the next image: allocating and freeing zlib's ~200 KB of
 * state per image costs more than compressing a small image does. */
struct render_arena {
	unsigned char *base;
	size_t used, capacity;
};

struct renderer {
	struct render_arena arena;
	unsigned char *row;          /* one pixel row, packed 1 bit per pixel */
	size_t row_capacity;
	char error[RENDER_ERROR_SIZE];
};

void render_init(struct renderer *renderer);
void render_free(struct renderer *renderer);
void render_image_free(struct render_image *image);

/* Encodes `text` (`length` bytes, byte mode) with the pool's level and
 * min_version, and writes the PNG into `image`. Returns 0, or -1 with the
 * reason in renderer->error. */
int render_code(struct renderer *renderer, const struct pool_config *pool, const char *text,
	size_t length, struct render_image *image);

#endif

#include "render.h"

#include <png.h>
#include <qrencode.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "exitcode.h"
#include "log.h"
#include "qrfit.h"

#define RENDER_ARENA_INITIAL (512 * 1024)
#define RENDER_ARENA_ALIGN 16

void render_init(struct renderer *renderer)
{
	memset(renderer, 0, sizeof *renderer);
}

void render_free(struct renderer *renderer)
{
	free(renderer->arena.base);
	free(renderer->row);
	memset(renderer, 0, sizeof *renderer);
}

void render_image_free(struct render_image *image)
{
	free(image->bytes);
	memset(image, 0, sizeof *image);
}

/* --- the arena behind libpng's and zlib's allocations --------------------- */

/* Takes back everything handed out. Grows first if the last image overflowed
 * into malloc, so the arena settles at the size one image needs. */
static int render_arena_reset(struct render_arena *arena)
{
	size_t wanted = arena->used > arena->capacity ? arena->used * 2 : RENDER_ARENA_INITIAL;

	arena->used = 0;
	if (wanted <= arena->capacity)
		return 0;
	free(arena->base);
	arena->capacity = 0;
	if (!(arena->base = malloc(wanted)))
		return -1;
	arena->capacity = wanted;
	return 0;
}

static png_voidp render_arena_alloc(png_structp png, png_alloc_size_t size)
{
	struct render_arena *arena = png_get_mem_ptr(png);
	size_t rounded = (size + RENDER_ARENA_ALIGN - 1) & ~(size_t)(RENDER_ARENA_ALIGN - 1);
	void *block;

	if (arena->used <= arena->capacity && rounded <= arena->capacity - arena->used) {
		block = arena->base + arena->used;
		arena->used += rounded;
		return block;
	}
	/* Counted as used, so the next reset grows the arena to fit. */
	arena->used += rounded;
	return malloc(size);
}

static void render_arena_release(png_structp png, png_voidp block)
{
	struct render_arena *arena = png_get_mem_ptr(png);
	unsigned char *bytes = block;

	if (bytes && !(bytes >= arena->base && bytes < arena->base + arena->capacity))
		free(block);
}

/* --- libpng callbacks ------------------------------------------------------ */

static void render_on_png_error(png_structp png, png_const_charp message)
{
	struct renderer *renderer = png_get_error_ptr(png);

	snprintf(renderer->error, sizeof renderer->error, "libpng: %s", message);
	png_longjmp(png, 1);
}

/* A warning is about the file being less than ideal, never about losing
 * data; our fixed settings do not produce any, and a log line per image from
 * a worker thread would drown the real messages. */
static void render_on_png_warning(png_structp png, png_const_charp message)
{
	(void)png;
	(void)message;
}

static void render_on_png_write(png_structp png, png_bytep data, size_t length)
{
	struct render_image *image = png_get_io_ptr(png);

	if (length > image->capacity - image->size) {
		size_t capacity = image->capacity ? image->capacity : 1024;
		unsigned char *bytes;

		while (capacity - image->size < length)
			capacity *= 2;
		if (!(bytes = realloc(image->bytes, capacity)))
			png_error(png, "out of memory for the image");
		image->bytes = bytes;
		image->capacity = capacity;
	}
	memcpy(image->bytes + image->size, data, length);
	image->size += length;
}

static void render_on_png_flush(png_structp png)
{
	(void)png;   /* the image is in memory: nothing to flush */
}

/* --- the image --------------------------------------------------------------- */

/* Sets pixels [first, end) of a packed 1-bit row, whole bytes where it can. */
static void render_fill_pixels(unsigned char *row, int first, int end)
{
	for (; first < end && (first & 7); first++)
		row[first >> 3] |= (unsigned char)(0x80 >> (first & 7));
	for (; end - first >= 8; first += 8)
		row[first >> 3] = 0xff;
	for (; first < end; first++)
		row[first >> 3] |= (unsigned char)(0x80 >> (first & 7));
}

/* Packs module row `y` (negative or past the symbol: quiet zone) into
 * 1-bit pixels, a run of dark modules at a time: palette index 1 is a dark
 * module, 0 the background. */
static void render_pack_row(const struct pool_config *pool, const QRcode *code, int y,
	unsigned char *row, size_t row_bytes)
{
	const unsigned char *modules;

	memset(row, 0, row_bytes);
	if (y < 0 || y >= code->width)
		return;
	modules = code->data + (size_t)y * (size_t)code->width;
	for (int x = 0; x < code->width; x++) {
		int start = x;

		while (x < code->width && (modules[x] & 1))
			x++;
		if (x > start)
			render_fill_pixels(row, (start + pool->margin) * pool->module_px,
				(x + pool->margin) * pool->module_px);
	}
}

/* Everything between setjmp and the last libpng call: a libpng error jumps
 * back here with renderer->error set. No local changes after setjmp. */
static int render_write_png(png_structp png, png_infop info, struct renderer *renderer,
	const struct pool_config *pool, const QRcode *code)
{
	png_color palette[2] = {
		{ (png_byte)pool->background.r, (png_byte)pool->background.g, (png_byte)pool->background.b },
		{ (png_byte)pool->foreground.r, (png_byte)pool->foreground.g, (png_byte)pool->foreground.b },
	};
	int modules = code->width + 2 * pool->margin;
	png_uint_32 pixels = (png_uint_32)(modules * pool->module_px);

	if (setjmp(png_jmpbuf(png)))
		return -1;
	png_set_IHDR(png, info, pixels, pixels, 1, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE,
		PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	png_set_PLTE(png, info, palette, 2);
	png_set_compression_level(png, pool->png_compression);
	/* Filters cannot help 1-bit rows; trying them only costs time. */
	png_set_filter(png, PNG_FILTER_TYPE_BASE, PNG_FILTER_NONE);
	png_write_info(png, info);
	for (int y = -pool->margin; y < code->width + pool->margin; y++) {
		render_pack_row(pool, code, y, renderer->row, (pixels + 7) / 8);
		for (int repeat = 0; repeat < pool->module_px; repeat++)
			png_write_row(png, renderer->row);
	}
	png_write_end(png, NULL);
	return 0;
}

static int render_prepare_row(struct renderer *renderer, size_t row_bytes)
{
	unsigned char *row;

	if (row_bytes <= renderer->row_capacity)
		return 0;
	if (!(row = realloc(renderer->row, row_bytes)))
		return -1;
	renderer->row = row;
	renderer->row_capacity = row_bytes;
	return 0;
}

static int render_png(struct renderer *renderer, const struct pool_config *pool, const QRcode *code,
	struct render_image *image)
{
	size_t pixels = (size_t)(code->width + 2 * pool->margin) * (size_t)pool->module_px;
	png_structp png;
	png_infop info = NULL;
	int status;

	if (render_prepare_row(renderer, (pixels + 7) / 8) ||
	    render_arena_reset(&renderer->arena)) {
		snprintf(renderer->error, sizeof renderer->error, "out of memory");
		return -1;
	}
	png = png_create_write_struct_2(PNG_LIBPNG_VER_STRING, renderer, render_on_png_error,
		render_on_png_warning, &renderer->arena, render_arena_alloc, render_arena_release);
	if (png)
		info = png_create_info_struct(png);
	if (!info) {
		png_destroy_write_struct(&png, NULL);
		snprintf(renderer->error, sizeof renderer->error, "libpng: cannot set up a writer");
		return -1;
	}
	image->size = 0;
	png_set_write_fn(png, image, render_on_png_write, render_on_png_flush);
	status = render_write_png(png, info, renderer, pool, code);
	png_destroy_write_struct(&png, &info);
	return status;
}

int render_code(struct renderer *renderer, const struct pool_config *pool, const char *text,
	size_t length, struct render_image *image)
{
	QRcode *code;
	int status;

	/* Byte mode for the whole URL: every code of a pool then has the same
	 * version, and the check at config load is exact whatever the ids are. */
	code = QRcode_encodeData((int)length, (const unsigned char *)text, pool->min_version,
		qrfit_level(pool->ec_level));
	if (!code) {
		snprintf(renderer->error, sizeof renderer->error, "libqrencode: %s",
			errno == ERANGE ? "the URL is too long for a QR code at this level" : strerror(errno));
		return -1;
	}
	status = render_png(renderer, pool, code, image);
	QRcode_free(code);
	return status;
}

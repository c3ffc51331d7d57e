/* render: codes encoded and written as PNG in memory, read back with libpng
 * and compared module by module with libqrencode's own symbol. */
#include <png.h>
#include <qrencode.h>
#include <stdlib.h>
#include <string.h>

#include "exitcode.h"
#include "log.h"
#include "qrfit.h"
#include "render.h"
#include "tap.h"

/* A PNG read back: palette indices, one byte per pixel. */
struct decoded {
	png_uint_32 width, height;
	int bit_depth, color_type, palette_size;
	png_color palette[256];
	unsigned char *pixels;
};

struct memory_reader {
	const unsigned char *bytes;
	size_t size, at;
};

static void read_from_memory(png_structp png, png_bytep out, size_t length)
{
	struct memory_reader *reader = png_get_io_ptr(png);

	if (length > reader->size - reader->at)
		png_error(png, "read past the end");
	memcpy(out, reader->bytes + reader->at, length);
	reader->at += length;
}

static int decode_rows(png_structp png, png_infop info, struct decoded *out)
{
	png_colorp palette;

	if (setjmp(png_jmpbuf(png)))
		return -1;
	png_read_info(png, info);
	png_get_IHDR(png, info, &out->width, &out->height, &out->bit_depth, &out->color_type,
		NULL, NULL, NULL);
	if (png_get_PLTE(png, info, &palette, &out->palette_size))
		memcpy(out->palette, palette, (size_t)out->palette_size * sizeof *palette);
	png_set_packing(png);   /* 1-bit indices to one byte each */
	png_read_update_info(png, info);
	if (!(out->pixels = malloc((size_t)out->width * out->height)))
		return -1;
	for (png_uint_32 y = 0; y < out->height; y++)
		png_read_row(png, out->pixels + (size_t)y * out->width, NULL);
	png_read_end(png, NULL);
	return 0;
}

static int decode(const struct render_image *image, struct decoded *out)
{
	struct memory_reader reader = { image->bytes, image->size, 0 };
	png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
	png_infop info = png ? png_create_info_struct(png) : NULL;
	int status = -1;

	memset(out, 0, sizeof *out);
	if (info) {
		png_set_read_fn(png, &reader, read_from_memory);
		status = decode_rows(png, info, out);
	}
	png_destroy_read_struct(&png, &info, NULL);
	return status;
}

static struct pool_config link_pool(char level, int module_px, int margin, int min_version)
{
	struct pool_config pool = { 0 };

	pool.name = "link";
	pool.source = POOL_LINK;
	pool.url_prefix = "https://m.example.com/q/";
	pool.ec_level = level;
	pool.module_px = module_px;
	pool.margin = margin;
	pool.foreground = (struct rgb){ 0x10, 0x20, 0x30 };
	pool.background = (struct rgb){ 0xF0, 0xE0, 0xD0 };
	pool.min_version = min_version;
	pool.png_compression = 1;
	return pool;
}

/* Every module's pixels hold the symbol's bit; the quiet zone is background. */
static int matches_symbol(const struct decoded *image, const QRcode *code, int module_px, int margin)
{
	int modules = code->width + 2 * margin;

	for (int y = 0; y < modules * module_px; y++)
		for (int x = 0; x < modules * module_px; x++) {
			int mx = x / module_px - margin, my = y / module_px - margin;
			int dark = mx >= 0 && my >= 0 && mx < code->width && my < code->width &&
				(code->data[my * code->width + mx] & 1);
			if (image->pixels[(size_t)y * image->width + (size_t)x] != dark)
				return 0;
		}
	return 1;
}

static void test_one(char level, int module_px, int margin, int min_version, const char *url,
	int expected_version)
{
	struct pool_config pool = link_pool(level, module_px, margin, min_version);
	struct render_image image = { 0 };
	struct renderer renderer;
	struct decoded decoded;
	QRcode *code = QRcode_encodeData((int)strlen(url), (const unsigned char *)url, min_version,
		level == 'L' ? QR_ECLEVEL_L : level == 'M' ? QR_ECLEVEL_M :
		level == 'Q' ? QR_ECLEVEL_Q : QR_ECLEVEL_H);
	png_uint_32 pixels = (png_uint_32)((code->width + 2 * margin) * module_px);

	render_init(&renderer);
	is_int(render_code(&renderer, &pool, url, strlen(url), &image), 0,
		"level %c, %d px, margin %d: rendered", level, module_px, margin);
	is_int(code->version, expected_version, "version %d as expected", expected_version);
	ok(image.size > 8 && !png_sig_cmp(image.bytes, 0, 8), "a PNG signature");
	is_int(decode(&image, &decoded), 0, "libpng reads it back");
	is_int(decoded.width, pixels, "width = (modules + 2 x margin) x module_px = %u", pixels);
	is_int(decoded.height, pixels, "height the same");
	is_int(decoded.bit_depth, 1, "1 bit per pixel");
	is_int(decoded.color_type, PNG_COLOR_TYPE_PALETTE, "a palette image");
	ok(decoded.palette_size == 2 && decoded.palette[0].red == 0xF0 &&
		decoded.palette[0].green == 0xE0 && decoded.palette[0].blue == 0xD0 &&
		decoded.palette[1].red == 0x10 && decoded.palette[1].green == 0x20 &&
		decoded.palette[1].blue == 0x30, "palette: background, foreground");
	ok(decoded.pixels && matches_symbol(&decoded, code, module_px, margin),
		"every pixel matches libqrencode's symbol");
	free(decoded.pixels);
	QRcode_free(code);
	render_image_free(&image);
	render_free(&renderer);
}

/* A renderer and an image buffer reused give the same bytes each time. */
static void test_reuse(void)
{
	struct pool_config pool = link_pool('M', 4, 4, 0);
	const char *url = "https://m.example.com/q/0123456789abcdef";
	struct render_image image = { 0 };
	struct renderer renderer;
	unsigned char *first;
	size_t size;
	int same = 1;

	render_init(&renderer);
	render_code(&renderer, &pool, url, strlen(url), &image);
	size = image.size;
	first = malloc(size);
	memcpy(first, image.bytes, size);
	for (int i = 0; i < 50; i++) {
		struct pool_config big = link_pool('H', 16, 8, 20);
		render_code(&renderer, &big, url, strlen(url), &image);
		render_code(&renderer, &pool, url, strlen(url), &image);
		same &= image.size == size && !memcmp(image.bytes, first, size);
	}
	ok(same, "reusing the renderer and buffer gives identical bytes");
	free(first);
	render_image_free(&image);
	render_free(&renderer);
}

static void test_too_long(void)
{
	struct pool_config pool = link_pool('H', 4, 4, 0);
	struct render_image image = { 0 };
	struct renderer renderer;
	char *url = malloc(1300);

	memset(url, 'a', 1300);
	render_init(&renderer);
	is_int(render_code(&renderer, &pool, url, 1300, &image), -1, "1300 bytes at H: refused");
	is_str(renderer.error, "libqrencode: the URL is too long for a QR code at this level",
		"with the reason");
	render_free(&renderer);
	render_image_free(&image);
	free(url);
}

static void test_versions(void)
{
	is_int(qrfit_version_for(40, 'M', 0), 3, "40 bytes at M: version 3");
	is_int(qrfit_version_for(40, 'M', 7), 7, "min_version 7 is kept");
	is_int(qrfit_version_for(2331, 'M', 0), 40, "2331 bytes at M: version 40");
	is_int(qrfit_version_for(2332, 'M', 0), 0, "2332 bytes at M: nothing fits");
	is_int(qrfit_version_for(2953, 'L', 0), 40, "2953 bytes at L: version 40");
}

static int check_prefix(const char *prefix, char level, int min_version)
{
	struct pool_config pools[2] = { link_pool(level, 4, 4, min_version), { 0 } };
	struct config config = { 0 };

	pools[0].url_prefix = (char *)prefix;
	pools[0].line = 7;
	pools[1].name = "poster";
	pools[1].source = POOL_WECHAT;
	config.path = "test.cfg";
	config.pools = pools;
	config.pool_count = 2;
	return qrfit_check_config(&config);
}

static void test_config_check(void)
{
	char *long_prefix = malloc(2400);

	memcpy(long_prefix, "https://", 8);
	memset(long_prefix + 8, 'a', 2320);
	long_prefix[2328] = '\0';
	is_int(check_prefix("https://m.example.com/q/", 'M', 0), 0, "a short prefix fits");
	is_int(check_prefix("https://m.example.com/q/", 'M', 3), 0, "it fits min_version 3 at M");
	is_int(check_prefix("https://m.example.com/q/", 'M', 2), EXIT_CONFIG,
		"but not min_version 2: config error");
	is_int(check_prefix(long_prefix, 'L', 0), 0, "2328 characters fit version 40 at L");
	is_int(check_prefix(long_prefix, 'M', 0), EXIT_CONFIG,
		"2328 + 16 characters do not fit at M: config error");
	free(long_prefix);
}

int main(void)
{
	log_init("test_render", -1);
	test_one('M', 4, 4, 0, "https://m.example.com/q/0123456789abcdef", 3);
	test_one('L', 1, 0, 0, "https://m.example.com/q/0123456789abcdef", 3);
	test_one('H', 8, 2, 10, "https://m.example.com/q/ZZZZZZZZZZZZZZZZ", 10);
	test_one('Q', 3, 4, 0, "https://m.example.com/a/very/long/path/?with=query&and=more&x=0123456789abcdef", 7);
	test_reuse();
	test_too_long();
	test_versions();
	test_config_check();
	return tap_done();
}

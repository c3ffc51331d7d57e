/* The fake's "sun codes": standard QR codes of the scene (libqrencode), so
 * tests can decode them with zbarimg, drawn exactly `width` pixels square.
 * Thousands a second on two cores: each distinct row is drawn once and fed
 * straight to the encoder (no full bitmap), the JPEG is grey when the colour
 * is, and the transparent PNG is a 1-bit palette. A 430 px JPEG takes about
 * 0.5 ms, a PNG 0.3 ms. */
#include <stdio.h>      /* before jpeglib.h, which needs FILE and size_t */
#include <jpeglib.h>
#include <png.h>
#include <qrencode.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "fake_wechat.h"
#include "log.h"

/* Modules of white border on each side, as the QR standard asks. */
#define FAKE_QUIET_ZONE 4
#define FAKE_JPEG_QUALITY 85
/* The most a JPEG COM segment holds (its length field counts itself). */
#define FAKE_COM_MAX (65535 - 2)
/* Palette indices of the transparent PNG. */
#define FAKE_PNG_LIGHT 0
#define FAKE_PNG_DARK 1

/* How modules map to pixels, and the row being drawn. */
struct fake_layout {
	const QRcode *qr;
	int width, scale, offset, channels;
	unsigned char dark[3], light[3];   /* pixel values: grey, RGB or palette index */
	unsigned char color[3];            /* the modules' colour */
	unsigned char *row;
	int row_module;          /* the module row `row` shows; -1: quiet zone */
};

/* `count` copies of one pixel, by doubling: per-pixel copies cost more than
 * the JPEG encoder itself. */
static void fake_fill(unsigned char *out, const unsigned char *pixel, int channels, int count)
{
	size_t total = (size_t)count * (size_t)channels, done = (size_t)channels;

	if (count <= 0)
		return;
	if (channels == 1) {
		memset(out, pixel[0], total);
		return;
	}
	memcpy(out, pixel, (size_t)channels);
	for (; done < total; done *= 2)
		memcpy(out + done, out, done < total - done ? done : total - done);
}

/* Rows within one module row are identical: redraw only when it changes. */
static void fake_layout_row(struct fake_layout *layout, int y)
{
	const QRcode *qr = layout->qr;
	int module_y = y < layout->offset ? -1 : (y - layout->offset) / layout->scale;

	if (module_y >= qr->width)
		module_y = -1;
	if (module_y == layout->row_module)
		return;
	layout->row_module = module_y;
	fake_fill(layout->row, layout->light, layout->channels, layout->width);
	for (int module_x = 0; module_y >= 0 && module_x < qr->width; module_x++)
		if (qr->data[module_y * qr->width + module_x] & 1)
			fake_fill(layout->row + (layout->offset + module_x * layout->scale) * layout->channels,
				layout->dark, layout->channels, layout->scale);
}

/* Integer scaling keeps every module the same size, which decoders like;
 * what is left over widens the quiet zone. */
static int fake_layout_init(struct fake_layout *layout, const QRcode *qr,
	const struct fake_image_request *request)
{
	int grey = request->color[0] == request->color[1] && request->color[1] == request->color[2];

	memset(layout, 0, sizeof *layout);
	layout->qr = qr;
	layout->width = request->width;
	layout->scale = request->width / (qr->width + 2 * FAKE_QUIET_ZONE);
	if (layout->scale < 1)
		return -1;
	layout->offset = (request->width - qr->width * layout->scale) / 2;
	layout->channels = request->hyaline || grey ? 1 : 3;
	memcpy(layout->color, request->color, 3);
	memcpy(layout->dark, request->color, 3);
	memset(layout->light, 255, 3);
	if (request->hyaline) {
		/* Palette indices; the PNG's palette holds the colours. */
		layout->dark[0] = FAKE_PNG_DARK;
		layout->light[0] = FAKE_PNG_LIGHT;
	}
	layout->row_module = -2;
	layout->row = malloc((size_t)layout->width * (size_t)layout->channels);
	return layout->row ? 0 : -1;
}

/* libjpeg's default error handler exits the process; ours jumps back. */
struct fake_jpeg_error {
	struct jpeg_error_mgr base;
	jmp_buf jump;
};

static void fake_jpeg_fail(j_common_ptr cinfo)
{
	char message[JMSG_LENGTH_MAX];

	cinfo->err->format_message(cinfo, message);
	log_error("JPEG encoding failed: %s", message);
	longjmp(((struct fake_jpeg_error *)cinfo->err)->jump, 1);
}

static void fake_jpeg_rows(struct jpeg_compress_struct *cinfo, struct fake_layout *layout)
{
	JSAMPROW row = layout->row;

	for (int y = 0; y < layout->width; y++) {
		fake_layout_row(layout, y);
		jpeg_write_scanlines(cinfo, &row, 1);
	}
}

/* *data is allocated by libjpeg; the caller frees it, even on failure. */
static int fake_jpeg_encode(struct fake_layout *layout, unsigned char **data,
	unsigned long *size)
{
	struct jpeg_compress_struct cinfo;
	struct fake_jpeg_error error;

	cinfo.err = jpeg_std_error(&error.base);
	error.base.error_exit = fake_jpeg_fail;
	if (setjmp(error.jump)) {
		jpeg_destroy_compress(&cinfo);
		return -1;
	}
	jpeg_create_compress(&cinfo);
	jpeg_mem_dest(&cinfo, data, size);
	cinfo.image_width = cinfo.image_height = (JDIMENSION)layout->width;
	cinfo.input_components = layout->channels;
	cinfo.in_color_space = layout->channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
	jpeg_set_defaults(&cinfo);
	jpeg_set_quality(&cinfo, FAKE_JPEG_QUALITY, TRUE);
	cinfo.dct_method = JDCT_IFAST;
	jpeg_start_compress(&cinfo, TRUE);
	fake_jpeg_rows(&cinfo, layout);
	jpeg_finish_compress(&cinfo);
	jpeg_destroy_compress(&cinfo);
	return 0;
}

/* A growing memory buffer for libpng's output. */
struct fake_buffer {
	unsigned char *data;
	size_t size, capacity;
};

static void fake_png_write(png_structp png, png_bytep bytes, size_t length)
{
	struct fake_buffer *buffer = png_get_io_ptr(png);

	if (buffer->size + length > buffer->capacity) {
		size_t capacity = (buffer->size + length) * 2;
		unsigned char *grown = realloc(buffer->data, capacity);

		if (!grown)
			png_error(png, "out of memory");
		buffer->data = grown;
		buffer->capacity = capacity;
	}
	memcpy(buffer->data + buffer->size, bytes, length);
	buffer->size += length;
}

static void fake_png_flush(png_structp png)
{
	(void)png;
}

static void fake_png_fail(png_structp png, png_const_charp message)
{
	log_error("PNG encoding failed: %s", message);
	png_longjmp(png, 1);
}

/* A two-colour palette PNG, one bit a pixel, its light colour transparent:
 * a quarter of the work of RGBA for zlib and libpng. The transparent colour
 * is white, not black, so a reader that drops transparency still sees dark
 * modules on a light background. */
static void fake_png_rows(png_structp png, png_infop info, struct fake_layout *layout)
{
	png_color palette[2];
	png_byte alpha[2];

	palette[FAKE_PNG_LIGHT] = (png_color){ 255, 255, 255 };
	palette[FAKE_PNG_DARK] = (png_color){ layout->color[0], layout->color[1], layout->color[2] };
	alpha[FAKE_PNG_LIGHT] = 0;
	alpha[FAKE_PNG_DARK] = 255;
	png_set_IHDR(png, info, (png_uint_32)layout->width, (png_uint_32)layout->width, 1,
		PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
		PNG_FILTER_TYPE_DEFAULT);
	png_set_PLTE(png, info, palette, 2);
	png_set_tRNS(png, info, alpha, 2, NULL);
	/* Rows repeat `scale` times: the "up" filter turns repeats into zeros. */
	png_set_filter(png, PNG_FILTER_TYPE_BASE, PNG_FILTER_UP);
	png_set_compression_level(png, 1);
	png_set_compression_strategy(png, Z_RLE);
	png_write_info(png, info);
	png_set_packing(png);
	for (int y = 0; y < layout->width; y++) {
		fake_layout_row(layout, y);
		png_write_row(png, layout->row);
	}
	png_write_end(png, info);
}

/* buffer->data is the caller's to free, even on failure. */
static int fake_png_encode(struct fake_layout *layout, struct fake_buffer *buffer)
{
	png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, fake_png_fail, NULL);
	png_infop info = png ? png_create_info_struct(png) : NULL;

	if (!info) {
		png_destroy_write_struct(&png, NULL);
		return -1;
	}
	if (setjmp(png_jmpbuf(png))) {
		png_destroy_write_struct(&png, &info);
		return -1;
	}
	png_set_write_fn(png, buffer, fake_png_write, fake_png_flush);
	fake_png_rows(png, info, layout);
	png_destroy_write_struct(&png, &info);
	return 0;
}

static int fake_image_encode(struct fake_layout *layout, int hyaline,
	struct fake_image *image)
{
	struct fake_buffer buffer = { NULL, 0, 0 };
	unsigned long jpeg_size = 0;
	int status;

	if (hyaline) {
		status = fake_png_encode(layout, &buffer);
		image->content_type = "image/png";
		image->extension = "png";
	} else {
		status = fake_jpeg_encode(layout, &buffer.data, &jpeg_size);
		buffer.size = jpeg_size;
		image->content_type = "image/jpeg";
		image->extension = "jpeg";
	}
	if (status) {
		free(buffer.data);
		return -1;
	}
	image->data = buffer.data;
	image->size = buffer.size;
	return 0;
}

int fake_image_render(const struct fake_image_request *request, struct fake_image *image)
{
	QRcode *qr = QRcode_encodeString(request->scene, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
	struct fake_layout layout;
	int status = -1;

	if (!qr) {
		log_error("cannot encode a QR code of the scene");
		return -1;
	}
	if (fake_layout_init(&layout, qr, request) == 0)
		status = fake_image_encode(&layout, request->hyaline, image);
	else
		log_error("cannot lay out a %d px QR code", request->width);
	free(layout.row);
	QRcode_free(qr);
	return status;
}

/* Filler that no compression shrinks much (xorshift), as image data. */
static void fake_pad_fill(unsigned char *out, size_t size)
{
	uint64_t x = 0x9E3779B97F4A7C15u;

	for (size_t i = 0; i < size; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		out[i] = (unsigned char)x;
	}
}

/* JPEG: COM segments (at most 65,533 bytes each) right after SOI. */
static size_t fake_pad_jpeg(const struct fake_image *image, unsigned char *out, size_t extra)
{
	size_t at = 2;

	memcpy(out, image->data, 2);
	while (extra > 0) {   /* (at least 4 left each time round) */
		size_t payload = extra - 4;

		if (payload > FAKE_COM_MAX)
			payload = extra - 4 - FAKE_COM_MAX < 4 ? FAKE_COM_MAX - 4 : FAKE_COM_MAX;

		out[at] = 0xFF;
		out[at + 1] = 0xFE;
		out[at + 2] = (unsigned char)((payload + 2) >> 8);
		out[at + 3] = (unsigned char)(payload + 2);
		fake_pad_fill(out + at + 4, payload);
		at += 4 + payload;
		extra -= 4 + payload;
	}
	memcpy(out + at, image->data + 2, image->size - 2);
	return at + image->size - 2;
}

/* PNG: one private ancillary chunk ("qrPd", safe to copy) before IEND. */
static size_t fake_pad_png(const struct fake_image *image, unsigned char *out, size_t extra)
{
	size_t head = image->size - 12, payload = extra - 12;
	unsigned char *chunk = out + head;
	uLong crc;

	memcpy(out, image->data, head);
	chunk[0] = (unsigned char)(payload >> 24);
	chunk[1] = (unsigned char)(payload >> 16);
	chunk[2] = (unsigned char)(payload >> 8);
	chunk[3] = (unsigned char)payload;
	memcpy(chunk + 4, "qrPd", 4);
	fake_pad_fill(chunk + 8, payload);
	crc = crc32(crc32(0L, Z_NULL, 0), chunk + 4, (uInt)(payload + 4));
	for (int i = 0; i < 4; i++)
		chunk[8 + payload + (size_t)i] = (unsigned char)(crc >> (24 - 8 * i));
	memcpy(out + head + extra, image->data + head, 12);
	return image->size + extra;
}

int fake_image_pad(struct fake_image *image, size_t at_least)
{
	size_t extra = at_least > image->size ? at_least - image->size : 0;
	int jpeg = !strcmp(image->content_type, "image/jpeg");
	unsigned char *out;

	if (!extra)
		return 0;
	/* Whole segments or a whole chunk: a COM segment is 4 bytes at least, a chunk 12. */
	extra = extra < 12 ? 12 : extra;
	if (!(out = malloc(image->size + extra))) {
		log_error("out of memory padding an image");
		return -1;
	}
	image->size = jpeg ? fake_pad_jpeg(image, out, extra) : fake_pad_png(image, out, extra);
	free(image->data);
	image->data = out;
	return 0;
}

/* The fake's "sun codes": standard QR codes of the scene (libqrencode), so
 * tests can decode them with zbarimg, drawn exactly `width` pixels square.
 * Rows are drawn one at a time straight into the encoder: no full bitmap,
 * and a grey JPEG when the colour is grey, to keep a 430 px code near a
 * millisecond of CPU. */
#include <stdio.h>      /* before jpeglib.h, which needs FILE and size_t */
#include <jpeglib.h>
#include <png.h>
#include <qrencode.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "fake_wechat.h"
#include "log.h"

/* Modules of white border on each side, as the QR standard asks. */
#define FAKE_QUIET_ZONE 4
#define FAKE_JPEG_QUALITY 85

/* How modules map to pixels, and the row being drawn. */
struct fake_layout {
	const QRcode *qr;
	int width, scale, offset, channels;
	unsigned char dark[4], light[4];
	unsigned char *row;
};

static void fake_layout_row(const struct fake_layout *layout, int y)
{
	int channels = layout->channels, module_y = (y - layout->offset) / layout->scale;

	for (int x = 0; x < layout->width; x++)
		memcpy(layout->row + x * channels, layout->light, (size_t)channels);
	if (y < layout->offset || module_y >= layout->qr->width)
		return;
	for (int module_x = 0; module_x < layout->qr->width; module_x++) {
		unsigned char *pixel = layout->row + (layout->offset + module_x * layout->scale) * channels;

		if (!(layout->qr->data[module_y * layout->qr->width + module_x] & 1))
			continue;
		for (int i = 0; i < layout->scale; i++, pixel += channels)
			memcpy(pixel, layout->dark, (size_t)channels);
	}
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
	layout->channels = request->hyaline ? 4 : grey ? 1 : 3;
	memcpy(layout->dark, request->color, 3);
	memset(layout->light, 255, 3);
	/* Transparent white, not transparent black: a reader that drops the
	 * alpha channel still sees dark modules on a light background. */
	layout->dark[3] = 255;
	layout->light[3] = 0;
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

static void fake_jpeg_rows(struct jpeg_compress_struct *cinfo, const struct fake_layout *layout)
{
	JSAMPROW row = layout->row;

	for (int y = 0; y < layout->width; y++) {
		fake_layout_row(layout, y);
		jpeg_write_scanlines(cinfo, &row, 1);
	}
}

/* *data is allocated by libjpeg; the caller frees it, even on failure. */
static int fake_jpeg_encode(const struct fake_layout *layout, unsigned char **data,
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

static void fake_png_rows(png_structp png, png_infop info, const struct fake_layout *layout)
{
	png_set_IHDR(png, info, (png_uint_32)layout->width, (png_uint_32)layout->width, 8,
		PNG_COLOR_TYPE_RGBA, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
		PNG_FILTER_TYPE_DEFAULT);
	/* Rows repeat `scale` times: the "up" filter turns repeats into zeros,
	 * which the fastest zlib level squeezes well enough. */
	png_set_filter(png, PNG_FILTER_TYPE_BASE, PNG_FILTER_UP);
	png_set_compression_level(png, 1);
	png_write_info(png, info);
	for (int y = 0; y < layout->width; y++) {
		fake_layout_row(layout, y);
		png_write_row(png, layout->row);
	}
	png_write_end(png, info);
}

/* buffer->data is the caller's to free, even on failure. */
static int fake_png_encode(const struct fake_layout *layout, struct fake_buffer *buffer)
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

static int fake_image_encode(const struct fake_layout *layout, int hyaline,
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

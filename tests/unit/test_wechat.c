/* wechat.c: WECHAT.md's errcode table, answers told apart, images checked
 * (whole, right kind, right width), request bodies, masked URLs. */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "tap.h"
#include "wechat.h"

struct bytes {
	unsigned char data[4096];
	size_t size;
};

static void put(struct bytes *b, const void *data, size_t size)
{
	memcpy(b->data + b->size, data, size);
	b->size += size;
}

static void put16(struct bytes *b, unsigned value)
{
	unsigned char be[2] = { (unsigned char)(value >> 8), (unsigned char)value };
	put(b, be, 2);
}

static void put32(struct bytes *b, unsigned long value)
{
	unsigned char be[4] = { (unsigned char)(value >> 24), (unsigned char)(value >> 16),
		(unsigned char)(value >> 8), (unsigned char)value };
	put(b, be, 4);
}

/* A JPEG's structure (SOI, APP0, SOF0, SOS, scan bytes, EOI): what the checker reads. */
static struct bytes jpeg(unsigned width, int with_eoi)
{
	static const unsigned char app0[] = { 0xFF, 0xE0, 0, 16, 'J', 'F', 'I', 'F', 0, 1, 1, 0, 0, 1,
		0, 1, 0, 0 };
	static const unsigned char sos[] = { 0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 63, 0 };
	struct bytes b = { .size = 0 };

	put(&b, "\xFF\xD8", 2);
	put(&b, app0, sizeof app0);
	put(&b, "\xFF\xC0\x00\x0B\x08", 5);
	put16(&b, width);   /* height */
	put16(&b, width);
	put(&b, "\x01\x01\x11\x00", 4);
	put(&b, sos, sizeof sos);
	put(&b, "\x12\x34\xFF\x00\x56", 5);
	if (with_eoi)
		put(&b, "\xFF\xD9", 2);
	return b;
}

static void chunk(struct bytes *b, const char *type, const void *data, unsigned long size)
{
	put32(b, size);
	put(b, type, 4);
	put(b, data, size);
	put32(b, 0);   /* CRC: not checked */
}

static struct bytes png(unsigned long width, int with_iend, int trailing)
{
	struct bytes b = { .size = 0 }, header = { .size = 0 };

	put(&b, "\x89PNG\r\n\x1A\n", 8);
	put32(&header, width);
	put32(&header, width);
	put(&header, "\x08\x06\x00\x00\x00", 5);
	chunk(&b, "IHDR", header.data, header.size);
	chunk(&b, "IDAT", "\x78\x9C\x01\x02", 4);
	if (with_iend)
		chunk(&b, "IEND", "", 0);
	if (trailing)
		put(&b, "junk", 4);
	return b;
}

static void test_errcodes(void)
{
	static const struct { int errcode; enum wechat_action action; } table[] = {
		{ -1, WECHAT_RETRY }, { 40001, WECHAT_TOKEN }, { 40014, WECHAT_TOKEN },
		{ 42001, WECHAT_TOKEN }, { 41001, WECHAT_INTERNAL }, { 45009, WECHAT_QUOTA },
		{ 45011, WECHAT_QUOTA }, { 41030, WECHAT_POOL_STOP }, { 40097, WECHAT_POOL_STOP },
		{ 40129, WECHAT_ITEM_FAILED }, { 40169, WECHAT_ITEM_FAILED }, { 47001, WECHAT_INTERNAL },
		{ 48001, WECHAT_ACCOUNT_STOP }, { 45063, WECHAT_ACCOUNT_STOP }, { 85096, WECHAT_POOL_STOP },
		{ 99999, WECHAT_RETRY },
	};

	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
		is_int(wechat_errcode_action(table[i].errcode), table[i].action, "errcode %d: action %d",
			table[i].errcode, table[i].action);
	ok(strstr(wechat_errcode_meaning(41030), "page") != NULL, "41030 is explained as a page problem");
}

static void classify(long status, const char *type, const struct bytes *body, int width,
	enum wechat_action action, int errcode, const char *what)
{
	struct wechat_answer answer;

	wechat_classify(status, type, body->data, body->size, width, &answer);
	is_int(answer.action, action, "%s: action", what);
	is_int(answer.errcode, errcode, "%s: errcode", what);
}

static struct bytes text(const char *s)
{
	struct bytes b = { .size = 0 };
	put(&b, s, strlen(s));
	return b;
}

static void test_classify(void)
{
	struct bytes good_jpeg = jpeg(430, 1), cut_jpeg = jpeg(430, 0), narrow = jpeg(280, 1);
	struct bytes padded_jpeg = jpeg(430, 1);
	struct bytes near = jpeg(420, 1), wide = jpeg(538, 1);
	struct bytes good_png = png(430, 1, 0), cut_png = png(430, 0, 0), long_png = png(430, 1, 1);
	struct bytes busy = text("{\"errcode\":-1,\"errmsg\":\"system error rid: 1\"}");
	struct bytes page = text("{\"errcode\":41030,\"errmsg\":\"invalid page rid: 2\"}");
	struct bytes quota = text(" {\"errcode\":45009,\"errmsg\":\"reach max api minute quota\"}");
	struct bytes html = text("<html>bad gateway</html>"), empty = { .size = 0 };
	struct bytes no_errcode = text("{\"hello\":1}");
	struct wechat_answer answer;

	classify(200, "image/jpeg", &good_jpeg, 430, WECHAT_STORE, 0, "whole JPEG");
	wechat_classify(200, "image/jpeg", good_jpeg.data, good_jpeg.size, 430, &answer);
	is_str(answer.content_type, "image/jpeg", "whole JPEG: stored as image/jpeg");
	is_str(answer.note, "", "... with nothing to note");
	/* WECHAT.md does not promise the exact width: an image a little off is
	 * a code all the same (rejecting it would spend the night's quota). */
	classify(200, "image/jpeg", &near, 430, WECHAT_STORE, 0, "JPEG 420 px for 430 asked");
	wechat_classify(200, "image/jpeg", near.data, near.size, 430, &answer);
	is_str(answer.note, "is 420 px wide where width 430 was asked", "... noted");
	classify(200, "image/jpeg", &wide, 430, WECHAT_RETRY, 0, "JPEG 538 px for 430 asked (> 1/4 off)");
	classify(200, "image/jpeg", &cut_jpeg, 430, WECHAT_RETRY, 0, "JPEG without EOI");
	classify(200, "image/jpeg", &narrow, 430, WECHAT_RETRY, 0, "JPEG 280 px for 430 asked");
	classify(200, "image/png", &good_png, 430, WECHAT_STORE, 0, "whole PNG");
	classify(200, "image/png", &cut_png, 430, WECHAT_RETRY, 0, "PNG without IEND");
	/* Bytes after the end marker (padding by an encoder or a proxy): the
	 * image is whole, stored without them, and noted. */
	classify(200, "image/png", &long_png, 430, WECHAT_STORE, 0, "PNG with bytes after IEND");
	wechat_classify(200, "image/png", long_png.data, long_png.size, 430, &answer);
	is_int((int)answer.image_size, (int)long_png.size - 4, "... stored without them");
	is_str(answer.note, "has 4 bytes after its end marker (those left out)", "... noted");
	is_int(answer.note_kinds, WECHAT_NOTE_TRAILING, "... of its kind");
	put(&padded_jpeg, "\0\0\0\n", 4);
	wechat_classify(200, "image/jpeg", padded_jpeg.data, padded_jpeg.size, 440, &answer);
	is_int(answer.action, WECHAT_STORE, "JPEG with bytes after EOI: stored");
	is_int((int)answer.image_size, (int)good_jpeg.size, "... without them");
	is_str(answer.note, "is 430 px wide where width 440 was asked; has 4 bytes after its end "
		"marker (those left out)", "... both notes, in turn");
	classify(200, "image/jpeg", &good_png, 430, WECHAT_STORE, 0, "PNG labelled image/jpeg");
	wechat_classify(200, "image/jpeg", good_png.data, good_png.size, 430, &answer);
	is_str(answer.content_type, "image/png", "... stored as what its bytes are");
	is_str(answer.note, "is labelled image/jpeg but is image/png (stored as image/png)", "... noted");
	wechat_classify(200, "image/png", near.data, near.size, 430, &answer);
	is_str(answer.note, "is labelled image/png but is image/jpeg (stored as image/jpeg); is 420 px "
		"wide where width 430 was asked", "both oddities of one image noted");
	is_int(answer.note_kinds, WECHAT_NOTE_LABEL | WECHAT_NOTE_WIDTH, "... both kinds");
	classify(200, "image/jpeg", &busy, 430, WECHAT_RETRY, -1, "JSON labelled image/jpeg");
	classify(200, "application/json; encoding=utf-8", &page, 430, WECHAT_POOL_STOP, 41030,
		"41030");
	classify(200, "image/jpeg", &quota, 430, WECHAT_QUOTA, 45009, "45009 after a space");
	classify(200, "application/json", &no_errcode, 430, WECHAT_RETRY, 0, "JSON without errcode");
	{
		/* beyond an int: no wrap round to 40001 (a token refresh) */
		struct bytes huge = text("{\"errcode\":4295007297,\"errmsg\":\"?\"}");

		classify(200, "application/json", &huge, 430, WECHAT_RETRY, 0, "errcode 2^32 + 40001");
	}
	classify(502, "text/html", &html, 430, WECHAT_RETRY, 0, "HTTP 502");
	classify(429, "image/jpeg", &good_jpeg, 430, WECHAT_RETRY, 0, "HTTP 429 even with an image");
	classify(200, "text/html", &html, 430, WECHAT_RETRY, 0, "HTML with 200");
	wechat_classify(200, "text/html", html.data, html.size, 430, &answer);
	is_str(answer.message, "content type text/html is not an image (nor are its bytes)",
		"... said so");
	wechat_classify(200, "image/jpeg", html.data, html.size, 430, &answer);
	ok(!strncmp(answer.message, "bad image: ", 11), "HTML labelled an image: a bad image (%s)",
		answer.message);
	classify(200, "image/jpeg", &empty, 430, WECHAT_RETRY, 0, "empty body");
	wechat_classify(200, "application/octet-stream", narrow.data, narrow.size, 430, &answer);
	is_str(answer.message, "bad image: image is 280 px wide, 430 requested (labelled "
		"application/octet-stream)", "an image too narrow, not labelled one: what is wrong with it");
	wechat_classify(200, NULL, cut_jpeg.data, cut_jpeg.size, 430, &answer);
	ok(!strncmp(answer.message, "bad image: JPEG is truncated", 28) &&
		strstr(answer.message, "(labelled nothing)"), "a JPEG cut short, with no label: %s",
		answer.message);
	/* The bytes decide, not the label (a gateway's, or none): a whole image is stored. */
	wechat_classify(200, NULL, good_jpeg.data, good_jpeg.size, 430, &answer);
	is_int(answer.action, WECHAT_STORE, "a JPEG with no content type: stored");
	is_str(answer.note, "is labelled (nothing) but is image/jpeg (stored as image/jpeg)",
		"... noted");
	wechat_classify(200, "application/octet-stream", good_png.data, good_png.size, 430, &answer);
	is_int(answer.action, WECHAT_STORE, "a PNG labelled application/octet-stream: stored");
	is_str(answer.content_type, "image/png", "... as image/png");
	ok(answer.note_kinds & WECHAT_NOTE_LABEL, "... the label noted");
	wechat_classify(200, "Image/JPEG; charset=binary", good_jpeg.data, good_jpeg.size, 430, &answer);
	is_int(answer.action, WECHAT_STORE, "a JPEG labelled Image/JPEG (types are case-insensitive): "
		"stored");
	is_str(answer.note, "", "... nothing to note");
}

/* A JPEG as test_classify's, its parts given: SEGMENT after APP0 (or none),
 * SCAN as the entropy-coded data, then TAIL (EOI, or not). */
static struct bytes jpeg_of(const char *segment, size_t segment_size, const char *scan,
	size_t scan_size, const char *tail, size_t tail_size)
{
	struct bytes b = jpeg(430, 0);

	b.size -= 5 + 10 + 13;   /* back to the end of APP0: scan, SOS, SOF0 */
	put(&b, segment, segment_size);
	put(&b, "\xFF\xC0\x00\x0B\x08\x01\xAE\x01\xAE\x01\x01\x11\x00", 13);
	put(&b, "\xFF\xDA\x00\x08\x01\x01\x00\x00\x3F\x00", 10);
	put(&b, scan, scan_size);
	put(&b, tail, tail_size);
	return b;
}

static void test_image_check(void)
{
	/* An APP1 holding a thumbnail, its own EOI inside. */
	static const char thumbnail[] = "\xFF\xE1\x00\x08\xFF\xD8\xFF\xD9\x00\x00";
	struct bytes b = jpeg(1280, 1);
	struct wechat_image image;
	char why[120] = "";

	is_int(wechat_image_check(b.data, b.size, 1280, &image, why, sizeof why), 0, "1280 px JPEG");
	is_int((int)image.size, (int)b.size, "... all of it the image");
	b.data[b.size - 6] = 0x00;   /* scan bytes change: the structure stays whole */
	is_int(wechat_image_check(b.data, b.size, 1280, &image, why, sizeof why), 0,
		"scan bytes are not parsed");
	b = jpeg(430, 1);
	b.data[3] = 0xFF;            /* APP0 length now runs past the end */
	b.data[4] = 0xFF;
	is_int(wechat_image_check(b.data, b.size, 430, &image, why, sizeof why), -1,
		"segment running past the end");
	ok(*why != '\0', "the reason is given: %s", why);
	b = png(0x10000, 1, 0);
	is_int(wechat_image_check(b.data, b.size, 430, &image, why, sizeof why), -1, "PNG too wide");

	/* The scan is read to its end marker: stuffed bytes, restarts and fill
	 * bytes are data; a second scan (progressive) after a table is read too. */
	b = jpeg_of("", 0, "\x12\xFF\x00\xFF\xD0\x34\xFF\xFF\xD1\x56", 10, "\xFF\xD9", 2);
	is_int(wechat_image_check(b.data, b.size, 430, &image, why, sizeof why), 0,
		"FF00, RST and fill bytes in the scan: whole");
	is_int((int)image.size, (int)b.size, "... to its EOI");
	b = jpeg_of("", 0, "\x12\x34\xFF\xC4\x00\x04\x00\x00"
		"\xFF\xDA\x00\x08\x01\x01\x00\x00\x3F\x00\x56", 19, "\xFF\xD9", 2);
	is_int(wechat_image_check(b.data, b.size, 430, &image, why, sizeof why), 0,
		"two scans with a table between: whole");
	b = jpeg_of(thumbnail, sizeof thumbnail - 1, "\x12\x34", 2, "", 0);
	is_int(wechat_image_check(b.data, b.size, 430, &image, why, sizeof why), -1,
		"cut short, a thumbnail's EOI in APP1: truncated all the same");
	is_str(why, "JPEG is truncated (no end-of-image marker)", "... said so");
	b = jpeg_of(thumbnail, sizeof thumbnail - 1, "\x12\x34", 2, "\xFF\xD9\xFF\xD9", 4);
	is_int(wechat_image_check(b.data, b.size, 430, &image, why, sizeof why), 0,
		"with a thumbnail, whole");
	is_int((int)image.size, (int)b.size - 2, "... ending at the first EOI after its scan");
	b = jpeg_of("\x00\x00", 2, "\x12\x34", 2, "\xFF\xD9", 2);
	is_int(wechat_image_check(b.data, b.size, 430, &image, why, sizeof why), 0,
		"stray bytes between segments, skipped to the next marker as libjpeg does: whole");
	b = jpeg_of("", 0, "\x12\x34\xFF", 3, "", 0);
	is_int(wechat_image_check(b.data, b.size, 430, &image, why, sizeof why), -1,
		"cut after an FF of the scan: truncated");
	b = jpeg(430, 0);
	b.size -= 5 + 10;            /* SOI, APP0, SOF0, then the end */
	put(&b, "\xFF\xD9", 2);
	is_int(wechat_image_check(b.data, b.size, 430, &image, why, sizeof why), -1,
		"EOI with no scan: refused");
}

static void test_request_body(void)
{
	struct pool_config pool = { .page = "pages/r/index", .width = 430, .env_version = "trial",
		.check_path = 1, .is_hyaline = 1, .line_color = { 1, 2, 3 } };
	char *template = wechat_pool_body(&pool), body[512], tiny[40];
	json_t *parsed;

	ok(template != NULL, "pool body built");
	ok(wechat_request_body(template, "Ab3$&'()*+,/:;=?@-._~", body, sizeof body) > 0, "body built");
	parsed = json_loads(body, 0, NULL);
	is_str(json_string_value(json_object_get(parsed, "scene")), "Ab3$&'()*+,/:;=?@-._~",
		"scene as given");
	is_str(json_string_value(json_object_get(parsed, "page")), "pages/r/index", "page");
	is_int(json_integer_value(json_object_get(parsed, "width")), 430, "width");
	is_str(json_string_value(json_object_get(parsed, "env_version")), "trial", "env_version");
	ok(json_is_true(json_object_get(parsed, "check_path")), "check_path");
	ok(json_is_true(json_object_get(parsed, "is_hyaline")), "is_hyaline");
	ok(json_is_false(json_object_get(parsed, "auto_color")), "auto_color");
	is_int(json_integer_value(json_object_get(json_object_get(parsed, "line_color"), "b")), 3,
		"line_color");
	json_decref(parsed);
	is_int(wechat_request_body(template, "a\"b", body, sizeof body), -1,
		"a scene that would need escaping is refused");
	is_int(wechat_request_body(template, "", body, sizeof body), -1, "an empty scene is refused");
	is_int(wechat_request_body(template, "abc", tiny, sizeof tiny), -1, "a body too long is refused");
	{
		int length = wechat_request_body(template, "abc", body, sizeof body);

		is_int(length, (int)strlen(body), "the length returned is the body's");
		ok(!strncmp(body, "{\"scene\":\"abc\",", 15) && body[length - 1] == '}',
			"the scene first, then the pool's fields: %s", body);
		is_int(wechat_request_body(template, "abc", body, (size_t)length + 1), length,
			"a buffer of exactly its size with the NUL fits");
		is_int(wechat_request_body(template, "abc", body, (size_t)length), -1,
			"one byte less does not");
	}
	free(template);
}

static void test_mask(void)
{
	static const char *const cases[][2] = {
		{ "https://api.weixin.qq.com/wxa/getwxacodeunlimit?access_token=SECRETTOKEN",
		  "https://api.weixin.qq.com/wxa/getwxacodeunlimit?access_token=***" },
		{ "http://h/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=S3CR3T&x=1",
		  "http://h/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=***&x=1" },
		{ "http://h/p?my_secret=kept", "http://h/p?my_secret=kept" },
		{ "http://h/p", "http://h/p" },
	};
	char out[256], tiny[12];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		wechat_mask_url(cases[i][0], out, sizeof out);
		is_str(out, cases[i][1], "masked: %s", cases[i][1]);
	}
	wechat_mask_url("http://h/?access_token=LONGSECRET", tiny, sizeof tiny);
	ok(!strstr(tiny, "LONG"), "a short buffer never holds the secret: %s", tiny);
}

static void test_token_answers(void)
{
	static const struct { const char *body; int status; enum wechat_action action; } cases[] = {
		{ "{\"access_token\":\"T0K3N\",\"expires_in\":7200}", 0, WECHAT_RETRY },
		{ "{\"errcode\":40125,\"errmsg\":\"invalid appsecret\"}", -1, WECHAT_POOL_STOP },
		{ "{\"errcode\":40013,\"errmsg\":\"invalid appid\"}", -1, WECHAT_POOL_STOP },
		{ "{\"errcode\":40002,\"errmsg\":\"invalid grant_type\"}", -1, WECHAT_INTERNAL },
		{ "{\"errcode\":-1,\"errmsg\":\"system busy\"}", -1, WECHAT_RETRY },
		{ "{\"access_token\":\"a&b\",\"expires_in\":7200}", -1, WECHAT_RETRY },
		{ "{\"access_token\":\"T\"}", -1, WECHAT_RETRY },
		{ "<html>", -1, WECHAT_RETRY },
	};
	char token[WECHAT_TOKEN_MAX + 1] = "";
	int64_t expires = 0;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct wechat_answer answer;
		int status = wechat_parse_token(cases[i].body, strlen(cases[i].body), token, &expires,
			&answer);
		is_int(status, cases[i].status, "token answer %s: status", cases[i].body);
		if (status)
			is_int(answer.action, cases[i].action, "token answer %s: action", cases[i].body);
	}
	is_str(token, "T0K3N", "the token read");
	is_int(expires, 7200, "its lifetime");
	{
		static const char limit[] = "{\"errcode\":45009,\"errmsg\":\"reach max api daily quota "
			"limit, could get access_token by getStableAccessToken, more details at "
			"https://mmbizurl.cn/s/JtxxFh33r rid: 6965aef2-130b878a-1b55c042\"}";
		struct wechat_answer answer;

		wechat_parse_token(limit, strlen(limit), token, &expires, &answer);
		ok(strstr(answer.message, "errcode 45009: its daily call limit is reached") != NULL,
			"a token endpoint's 45009 named: %s", answer.message);
		ok(strstr(answer.message, "(reach max api daily quota... rid: 6965aef2-130b878a-1b55c042)") !=
			NULL, "... a long errmsg cut in its middle, its rid kept");
	}
	{
		/* A gateway echoing the classic request's query: the secret is masked,
		 * in a short errmsg and in a long one cut around its rid. */
		static const char echo[] = "{\"errcode\":40013,\"errmsg\":\"bad appid=wx1&"
			"secret=0123456789abcdef0123456789abcdef rid: 1\"}";
		static const char long_echo[] = "{\"errcode\":40013,\"errmsg\":\"secret="
			"0123456789abcdef0123456789abcdef&appid=wx1: the gateway refused this request, "
			"for a reason of its own rid: 2\"}";
		struct wechat_answer answer;

		log_add_secret("0123456789abcdef0123456789abcdef", 32);
		wechat_parse_token(echo, strlen(echo), token, &expires, &answer);
		ok(strstr(answer.message, "(bad appid=wx1&secret=*** rid: 1)") != NULL,
			"an errmsg echoing the secret: masked (%s)", answer.message);
		wechat_parse_token(long_echo, strlen(long_echo), token, &expires, &answer);
		ok(!strstr(answer.message, "0123") && !strstr(answer.message, "cdef") &&
			strstr(answer.message, "rid: 2"), "... a long one too, cut after: %s", answer.message);
	}
	{
		/* A quoted URL's access_token, even one no log knows of (cut short by
		 * the gateway): masked up to the space after it, the rid kept. */
		static const char echo[] = "{\"errcode\":40001,\"errmsg\":\"gw POST /wxa/getwxacodeunlimit"
			"?access_token=UnregisteredTok rid: 3\"}";
		struct wechat_answer answer;

		wechat_parse_token(echo, strlen(echo), token, &expires, &answer);
		ok(strstr(answer.message, "(gw POST /wxa/getwxacodeunlimit?access_token=*** rid: 3)") != NULL,
			"a quoted URL's access_token masked, the rid kept: %s", answer.message);
	}
}

/* What may go into a request line as it is. */
static void test_token_ok(void)
{
	static const char *const bad[] = { "", "a b", "a\tb", "a\rb", "a\x01b", "a\x7f", "caf\xc3\xa9",
		"a&b", "a?b", "a#b", "a%41" };
	char longest[WECHAT_TOKEN_MAX + 2];

	ok(wechat_token_ok("86_Ab-c.d~e*f!"), "letters, digits and other printable marks");
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ok(!wechat_token_ok(bad[i]), "refused: bad token %zu", i);
	memset(longest, 'a', sizeof longest - 1);
	longest[WECHAT_TOKEN_MAX] = '\0';
	ok(wechat_token_ok(longest), "WECHAT_TOKEN_MAX characters");
	longest[WECHAT_TOKEN_MAX] = 'a';
	longest[WECHAT_TOKEN_MAX + 1] = '\0';
	ok(!wechat_token_ok(longest), "one more is refused");
}

int main(void)
{
	test_errcodes();
	test_classify();
	test_image_check();
	test_request_body();
	test_mask();
	test_token_answers();
	test_token_ok();
	return tap_done();
}

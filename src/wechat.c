#include "wechat.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "rid.h"

struct wechat_errcode {
	int errcode;
	enum wechat_action action;
	const char *meaning;
};

/* WECHAT.md's table for getwxacodeunlimit. */
static const struct wechat_errcode wechat_code_errors[] = {
	{ -1, WECHAT_RETRY, "system busy" },
	{ 40001, WECHAT_TOKEN, "access token invalid" },
	{ 40014, WECHAT_TOKEN, "access token not the latest" },
	{ 42001, WECHAT_TOKEN, "access token expired" },
	{ 41001, WECHAT_INTERNAL, "access token missing from the request" },
	{ 45009, WECHAT_QUOTA, "minute quota reached" },
	{ 45011, WECHAT_QUOTA, "minute quota reached, retry next minute" },
	{ 41030, WECHAT_POOL_STOP, "invalid page: missing from the published version, "
		"a leading '/' or a query string (check the pool's page and check_path)" },
	{ 40097, WECHAT_POOL_STOP, "invalid env_version" },
	{ 40129, WECHAT_ITEM_FAILED, "invalid characters in the scene" },
	{ 40169, WECHAT_ITEM_FAILED, "invalid scene length" },
	{ 47001, WECHAT_INTERNAL, "the request body is not JSON" },
	{ 48001, WECHAT_ACCOUNT_STOP, "api unauthorized: account type, or the account is not verified" },
	{ 45063, WECHAT_ACCOUNT_STOP, "no permission to generate codes" },
	{ 85096, WECHAT_POOL_STOP, "scancode_time is reserved: a bug in the pool's page" },
	{ 0, WECHAT_RETRY, NULL },
};

/* Answers of cgi-bin/token and cgi-bin/stable_token. */
static const struct wechat_errcode wechat_token_errors[] = {
	{ -1, WECHAT_RETRY, "system busy" },
	{ 40001, WECHAT_POOL_STOP, "invalid credential: wrong app secret" },
	{ 40002, WECHAT_INTERNAL, "invalid grant_type" },
	{ 40013, WECHAT_POOL_STOP, "invalid appid" },
	{ 40125, WECHAT_POOL_STOP, "invalid app secret" },
	{ 40164, WECHAT_POOL_STOP, "this server's IP is not in the account's whitelist" },
	{ 40243, WECHAT_POOL_STOP, "the app secret is frozen" },
	{ 89503, WECHAT_POOL_STOP, "an administrator must confirm this server's IP" },
	/* Limits of the endpoints themselves, cleared by time (or WeChat's
	 * clear_quota): tried again later, the current token used meanwhile. */
	{ 45009, WECHAT_RETRY, "its daily call limit is reached (cgi-bin/token: 2,000 a day, "
		"stable_token: 500,000)" },
	{ 45011, WECHAT_RETRY, "calls too frequent (stable_token allows 10,000 a minute)" },
	{ 0, WECHAT_RETRY, NULL },
};

/* Characters of WeChat's errmsg a message shows: with the longest meaning
 * and its errcode, the whole fits wechat_answer.message. */
#define WECHAT_ERRMSG_SHOWN 60

static const struct wechat_errcode *wechat_find(const struct wechat_errcode *table, int errcode)
{
	for (; table->meaning; table++)
		if (table->errcode == errcode)
			return table;
	return NULL;
}

/* Codes we do not know are retried: bounded, and the item stays planned. */
enum wechat_action wechat_errcode_action(int errcode)
{
	const struct wechat_errcode *known = wechat_find(wechat_code_errors, errcode);
	return known ? known->action : WECHAT_RETRY;
}

const char *wechat_errcode_meaning(int errcode)
{
	const struct wechat_errcode *known = wechat_find(wechat_code_errors, errcode);
	return known ? known->meaning : "unknown errcode";
}

char *wechat_pool_body(const struct pool_config *pool)
{
	json_t *body = json_pack("{s:s, s:i, s:s, s:b, s:b, s:{s:i, s:i, s:i}, s:b}",
		"page", pool->page, "width", pool->width, "env_version", pool->env_version,
		"check_path", pool->check_path, "auto_color", pool->auto_color,
		"line_color", "r", pool->line_color.r, "g", pool->line_color.g, "b", pool->line_color.b,
		"is_hyaline", pool->is_hyaline);
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;

	json_decref(body);
	return text;
}

int wechat_request_body(const char *pool_body, const char *scene, char *buf, size_t size)
{
	static const char head[] = "{\"scene\":\"";
	size_t scene_length = strlen(scene), rest, length;

	if (!rid_is_scene(scene, scene_length) || pool_body[0] != '{')
		return -1;
	/* {"scene":"<scene>",<the pool's fields>}: copied, not printed (per call) */
	rest = strlen(pool_body + 1);
	length = sizeof head - 1 + scene_length + 2 + rest;
	if (length >= size || length > INT_MAX)
		return -1;
	memcpy(buf, head, sizeof head - 1);
	memcpy(buf + sizeof head - 1, scene, scene_length);
	memcpy(buf + sizeof head - 1 + scene_length, "\",", 2);
	memcpy(buf + sizeof head + 1 + scene_length, pool_body + 1, rest + 1);
	return (int)length;
}

static void wechat_why(char *why, size_t size, const char *text)
{
	snprintf(why, size, "%s", text);
}

static uint32_t wechat_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Start-of-frame markers carry the image size; C4, C8 and CC share the range
 * but are other segments. */
static int wechat_jpeg_is_sof(unsigned marker)
{
	return marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
}

/* The end of a scan's entropy-coded data from `pos`: stuffed bytes (FF 00),
 * restart markers and fill bytes belong to it; any other marker ends it.
 * Returns that marker's position, or `size` when the data runs to the end. */
static size_t wechat_jpeg_scan_end(const unsigned char *b, size_t size, size_t pos)
{
	while (pos + 1 < size) {
		const unsigned char *ff = memchr(b + pos, 0xFF, size - pos - 1);
		unsigned next;

		if (!ff)
			break;
		pos = (size_t)(ff - b);
		next = b[pos + 1];
		if (next == 0x00 || (next >= 0xD0 && next <= 0xD7))
			pos += 2;
		else if (next == 0xFF)
			pos++;
		else
			return pos;
	}
	return size;
}

/* Walks the segments for the frame width and the scans to the end-of-image
 * marker: a truncated body loses its end first, and a thumbnail's EOI inside
 * a segment is not taken for the image's. */
static int wechat_jpeg_width(const unsigned char *b, size_t size, struct wechat_image *image,
	char *why, size_t why_size)
{
	size_t pos = 2;
	int scanned = 0;

	while (pos + 2 <= size) {
		unsigned marker;
		size_t length;

		if (b[pos] != 0xFF) {
			/* Bytes between segments: libjpeg skips them (with a
			 * warning) to the next marker, and so does this. */
			const unsigned char *next = memchr(b + pos, 0xFF, size - pos);

			if (!next)
				break;
			pos = (size_t)(next - b);
			continue;
		}
		marker = b[pos + 1];
		if (marker == 0xFF) {   /* fill byte */
			pos++;
			continue;
		}
		if (marker == 0xD9) {
			if (!scanned)
				return wechat_why(why, why_size, "JPEG ends before any scan"), -1;
			image->size = pos + 2;
			return 0;
		}
		if (pos + 4 > size)
			break;
		length = (size_t)b[pos + 2] << 8 | b[pos + 3];
		if (length < 2 || pos + 2 + length > size)
			return wechat_why(why, why_size, "JPEG is truncated (a segment runs past the end)"), -1;
		if (wechat_jpeg_is_sof(marker)) {
			if (length < 7)
				return wechat_why(why, why_size, "JPEG frame header too short"), -1;
			image->width = (long)b[pos + 7] << 8 | b[pos + 8];
		}
		pos += 2 + length;
		if (marker == 0xDA) {
			if (image->width < 0)
				break;
			scanned = 1;
			pos = wechat_jpeg_scan_end(b, size, pos);
		}
	}
	return wechat_why(why, why_size, image->width < 0 ? "JPEG has no frame header before its scan" :
		"JPEG is truncated (no end-of-image marker)"), -1;
}

/* IHDR first, then chunks by their lengths up to IEND. */
static int wechat_png_width(const unsigned char *b, size_t size, struct wechat_image *image,
	char *why, size_t why_size)
{
	size_t pos = 8;
	int data = 0;

	if (size < 8 + 25 || wechat_be32(b + 8) != 13 || memcmp(b + 12, "IHDR", 4))
		return wechat_why(why, why_size, "PNG without its IHDR header"), -1;
	image->width = (long)wechat_be32(b + 16);
	while (pos + 12 <= size) {
		uint32_t length = wechat_be32(b + pos);
		const unsigned char *type = b + pos + 4;

		if (length > size - pos - 12)
			return wechat_why(why, why_size, "PNG is truncated (a chunk runs past the end)"), -1;
		pos += 12 + (size_t)length;
		data |= !memcmp(type, "IDAT", 4);
		if (!memcmp(type, "IEND", 4)) {
			if (!data)
				return wechat_why(why, why_size, "PNG has no image data"), -1;
			image->size = pos;
			return 0;
		}
	}
	return wechat_why(why, why_size, "PNG is truncated (no IEND chunk)"), -1;
}

int wechat_image_check(const unsigned char *body, size_t size, int width,
	struct wechat_image *image, char *why, size_t why_size)
{
	static const unsigned char png_signature[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n' };
	int status;

	image->width = -1;
	image->size = 0;
	image->content_type = NULL;   /* (neither JPEG nor PNG) */
	if (size >= 3 && body[0] == 0xFF && body[1] == 0xD8 && body[2] == 0xFF) {
		image->content_type = "image/jpeg";
		status = wechat_jpeg_width(body, size, image, why, why_size);
	} else if (size >= 8 && !memcmp(body, png_signature, 8)) {
		image->content_type = "image/png";
		status = wechat_png_width(body, size, image, why, why_size);
	} else {
		snprintf(why, why_size, "%s", size ? "body is neither JPEG nor PNG" : "empty body");
		return -1;
	}
	if (status)
		return -1;
	if (image->width * 4 < (long)width * 3 || image->width * 4 > (long)width * 5) {
		snprintf(why, why_size, "image is %ld px wide, %d requested", image->width, width);
		return -1;
	}
	return 0;
}

static int wechat_is_transient_status(long status)
{
	return status == 408 || status == 429 || status >= 500;
}

/* WeChat's errmsg as messages show it: at most WECHAT_ERRMSG_SHOWN
 * characters, a longer one cut in its middle so that its " rid: ..." (the
 * id WeChat's support asks for) stays. */
static const char *wechat_errmsg_shown(const char *errmsg, char out[WECHAT_ERRMSG_SHOWN + 1])
{
	const char *rid;
	char *masked;

	if (!errmsg)
		return "";
	/* A gateway or proxy may echo the request, the secret or the token in
	 * its query with it: masked, whole, before it is cut (a token also as
	 * the query's access_token=, should the echo cut it short). */
	/* (A value masked grows by 3 at most, and each comes after 7 bytes.) */
	if (!(masked = malloc(2 * strlen(errmsg) + 1)))
		return "(errmsg not shown: out of memory)";
	wechat_mask_url(errmsg, masked, 2 * strlen(errmsg) + 1);
	log_redact(masked);
	rid = strstr(masked, " rid: ");
	if (strlen(masked) <= WECHAT_ERRMSG_SHOWN)
		memcpy(out, masked, strlen(masked) + 1);
	else if (rid && strlen(rid) + 3 < WECHAT_ERRMSG_SHOWN)
		snprintf(out, WECHAT_ERRMSG_SHOWN + 1, "%.*s...%s",
			(int)(WECHAT_ERRMSG_SHOWN - 3 - strlen(rid)), masked, rid);
	else
		snprintf(out, WECHAT_ERRMSG_SHOWN + 1, "%.*s", WECHAT_ERRMSG_SHOWN, masked);
	free(masked);
	return out;
}

/* An errcode as an int; 0 (none) when absent, or beyond an int's range, so
 * that no bogus number wraps round to one of meaning (2^32 + 40001). */
static int wechat_errcode_of(const json_t *errcode)
{
	json_int_t value = json_is_integer(errcode) ? json_integer_value(errcode) : 0;

	return value >= INT_MIN && value <= INT_MAX ? (int)value : 0;
}

/* An error body: {"errcode":N,"errmsg":"..."}; errmsg is kept short. */
static void wechat_classify_json(const unsigned char *body, size_t size, struct wechat_answer *answer)
{
	json_t *root = json_loadb((const char *)body, size, 0, NULL);
	json_t *errcode = root ? json_object_get(root, "errcode") : NULL;
	const char *errmsg = root ? json_string_value(json_object_get(root, "errmsg")) : NULL;
	char shown[WECHAT_ERRMSG_SHOWN + 1];

	if (wechat_errcode_of(errcode) == 0) {
		answer->action = WECHAT_RETRY;
		snprintf(answer->message, sizeof answer->message, "a JSON answer without an errcode");
	} else {
		answer->errcode = wechat_errcode_of(errcode);
		answer->action = wechat_errcode_action(answer->errcode);
		snprintf(answer->message, sizeof answer->message, "errcode %d: %s (%s)", answer->errcode,
			wechat_errcode_meaning(answer->errcode), wechat_errmsg_shown(errmsg, shown));
	}
	json_decref(root);
}

static int wechat_looks_json(const char *content_type, const unsigned char *body, size_t size)
{
	size_t i = 0;

	while (i < size && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n'))
		i++;
	return (i < size && body[i] == '{') || (content_type && strcasestr(content_type, "json"));
}

/* Adds a note of `kind` to the answer's, after any other. */
static void wechat_note(struct wechat_answer *answer, int kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void wechat_note(struct wechat_answer *answer, int kind, const char *fmt, ...)
{
	size_t used = strlen(answer->note);
	va_list args;

	if (used && used + 2 < sizeof answer->note) {
		memcpy(answer->note + used, "; ", 3);
		used += 2;
	}
	va_start(args, fmt);
	vsnprintf(answer->note + used, sizeof answer->note - used, fmt, args);
	va_end(args);
	answer->note_kinds |= kind;
}

void wechat_classify(long http_status, const char *content_type, const unsigned char *body,
	size_t size, int width, struct wechat_answer *answer)
{
	char why[120];
	struct wechat_image image;

	memset(answer, 0, sizeof *answer);
	answer->action = WECHAT_RETRY;
	if (wechat_is_transient_status(http_status)) {
		snprintf(answer->message, sizeof answer->message, "HTTP %ld", http_status);
		return;
	}
	/* Errors come with HTTP 200 and sometimes with an image content type:
	 * a leading '{' is an error whatever the headers say. */
	if (wechat_looks_json(content_type, body, size)) {
		wechat_classify_json(body, size, answer);
		return;
	}
	if (http_status != 200) {
		snprintf(answer->message, sizeof answer->message, "HTTP %ld", http_status);
		return;
	}
	/* The bytes decide, not the label: a gateway may label a whole image
	 * application/octet-stream, or give none, and media types are
	 * case-insensitive (Image/JPEG). Refused for its label, each such
	 * image's call would be spent for nothing, all night. */
	if (wechat_image_check(body, size, width, &image, why, sizeof why)) {
		int labelled = content_type && !strncasecmp(content_type, "image/", 6);

		if (!image.content_type && !labelled)   /* (a gateway's page, say) */
			snprintf(answer->message, sizeof answer->message, "content type %.60s is not an "
				"image (nor are its bytes)", content_type ? content_type : "(none)");
		else if (labelled)
			snprintf(answer->message, sizeof answer->message, "bad image: %s", why);
		else
			snprintf(answer->message, sizeof answer->message, "bad image: %s (labelled %.60s)",
				why, content_type ? content_type : "nothing");
		return;
	}
	answer->content_type = image.content_type;
	answer->image_size = image.size;
	/* A whole image is a code: a label or a width other than expected, or
	 * bytes after its end, are noted (said once a run), and the image
	 * stored as what its bytes are. */
	if (!content_type || strncasecmp(content_type, image.content_type, strlen(image.content_type)))
		wechat_note(answer, WECHAT_NOTE_LABEL, "is labelled %.60s but is %s (stored as %s)",
			content_type ? content_type : "(nothing)", image.content_type, image.content_type);
	if (image.width != width)
		wechat_note(answer, WECHAT_NOTE_WIDTH, "is %ld px wide where width %d was asked",
			image.width, width);
	if (image.size < size)
		wechat_note(answer, WECHAT_NOTE_TRAILING, "has %zu bytes after its end marker "
			"(those left out)", size - image.size);
	answer->action = WECHAT_STORE;
}

static void wechat_token_error(json_t *root, struct wechat_answer *answer)
{
	json_t *errcode = json_object_get(root, "errcode");
	const char *errmsg = json_string_value(json_object_get(root, "errmsg"));
	const struct wechat_errcode *known;
	char shown[WECHAT_ERRMSG_SHOWN + 1];

	answer->errcode = wechat_errcode_of(errcode);
	known = wechat_find(wechat_token_errors, answer->errcode);
	answer->action = known ? known->action : WECHAT_RETRY;
	snprintf(answer->message, sizeof answer->message, "errcode %d: %s (%s)",
		answer->errcode, known ? known->meaning : "unknown errcode", wechat_errmsg_shown(errmsg, shown));
}

int wechat_token_ok(const char *token)
{
	size_t length = strlen(token);

	if (!length || length > WECHAT_TOKEN_MAX)
		return 0;
	for (const unsigned char *c = (const unsigned char *)token; *c; c++)
		if (*c <= ' ' || *c >= 0x7f || strchr("&?#%", *c))
			return 0;
	return 1;
}

int wechat_parse_token(const char *body, size_t size, char token[WECHAT_TOKEN_MAX + 1],
	int64_t *expires_in_s, struct wechat_answer *answer)
{
	json_t *root = json_loadb(body, size, 0, NULL);
	const char *value = root ? json_string_value(json_object_get(root, "access_token")) : NULL;
	json_t *expires = root ? json_object_get(root, "expires_in") : NULL;
	int status = -1;

	memset(answer, 0, sizeof *answer);
	answer->action = WECHAT_RETRY;
	if (!root)
		snprintf(answer->message, sizeof answer->message, "the answer is not JSON");
	else if (!value)
		wechat_token_error(root, answer);
	else if (!wechat_token_ok(value) || !json_is_integer(expires) ||
	    json_integer_value(expires) <= 0)
		snprintf(answer->message, sizeof answer->message,
			"malformed access_token or expires_in");
	else {
		strcpy(token, value);
		*expires_in_s = json_integer_value(expires);
		status = 0;
	}
	json_decref(root);
	return status;
}

void wechat_mask_url(const char *url, char *out, size_t size)
{
	static const char *const secrets[] = { "access_token=", "secret=" };
	size_t used = 0;
	char previous = '\0';

	while (*url && used + 1 < size) {
		size_t i;

		for (i = 0; i < 2; i++)
			if ((previous == '?' || previous == '&') &&
			    !strncmp(url, secrets[i], strlen(secrets[i])))
				break;
		if (i < 2) {
			size_t length = strlen(secrets[i]);
			used += (size_t)snprintf(out + used, size - used, "%s***", secrets[i]);
			used = used < size ? used : size - 1;
			/* (A URL quoted in a text ends at a space or a quote.) */
			url += length + strcspn(url + length, "&# \t\"'");
			previous = '*';
			continue;
		}
		previous = *url;
		out[used++] = *url++;
	}
	if (size)
		out[used] = '\0';
}

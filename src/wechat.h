/* What qrpool knows of WeChat (WECHAT.md): the getwxacodeunlimit request body
 * of a pool, how to read an answer, what each errcode means for the pipeline,
 * and how to check an image before it is stored. No I/O here, so every rule
 * is unit tested on its own. */
#ifndef QRPOOL_WECHAT_H
#define QRPOOL_WECHAT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* Tokens are up to 512 characters (WECHAT.md). */
#define WECHAT_TOKEN_MAX 512

enum wechat_action {
	WECHAT_STORE,        /* a valid image: store it */
	WECHAT_RETRY,        /* transient: retry with backoff, bounded */
	WECHAT_TOKEN,        /* token invalid or expired: refresh once, retry once */
	WECHAT_QUOTA,        /* minute quota reached: no calls until the next minute */
	WECHAT_ITEM_FAILED,  /* this one item is refused for good */
	WECHAT_POOL_STOP,    /* the pool is refused: stop it, exit 69 */
	WECHAT_ACCOUNT_STOP, /* the account is refused: stop every wechat pool, exit 69 */
	WECHAT_INTERNAL,     /* a bug on our side: exit 70 */
};

#define WECHAT_NOTE_LABEL 1   /* labelled otherwise than its bytes */
#define WECHAT_NOTE_WIDTH 2   /* a few pixels off the width asked */
#define WECHAT_NOTE_TRAILING 4 /* bytes after the image's end, not stored */

struct wechat_answer {
	enum wechat_action action;
	int errcode;                  /* WeChat's errcode; 0 when the answer had none */
	const char *content_type;     /* "image/jpeg" or "image/png" when action is STORE */
	size_t image_size;            /* STORE: the image's bytes, the body's first ones */
	char message[384];            /* what happened, for logs and last_error */
	char note[200];               /* STORE: how the image differs from the request ("") */
	int note_kinds;               /* ... WECHAT_NOTE_* or'ed, or 0 */
};

/* What wechat_image_check found in a body. */
struct wechat_image {
	const char *content_type;     /* "image/jpeg" or "image/png" */
	long width;                   /* as the image declares it */
	size_t size;                  /* up to and with its end marker (JPEG EOI, PNG IEND) */
};

/* The JSON body of a pool's requests without the scene, as text made once
 * per run (malloc'd); NULL when out of memory. */
char *wechat_pool_body(const struct pool_config *pool);
/* The body for one scene: the pool's body with the scene put first, written
 * into `buf` without any allocation (this runs for every call). Scenes are
 * checked: their alphabet needs no JSON escaping. Returns the length, or -1
 * for an invalid scene or a body that does not fit. */
int wechat_request_body(const char *pool_body, const char *scene, char *buf, size_t size);

/* Reads a getwxacodeunlimit answer. `width` is the width requested. */
void wechat_classify(long http_status, const char *content_type, const unsigned char *body,
	size_t size, int width, struct wechat_answer *answer);

/* Checks that `body` is a whole JPEG or PNG about `width` pixels wide (within
 * a quarter: WECHAT.md does not promise the exact width, and an image that
 * differs a little is a code all the same, where rejecting it would spend the
 * night's quota on retries). Bytes after the image's end marker (padding by
 * some encoder or proxy) are left out of image->size, not refused. Returns 0
 * and fills `image`, or -1 with the reason in `why`. */
int wechat_image_check(const unsigned char *body, size_t size, int width,
	struct wechat_image *image, char *why, size_t why_size);

/* What an errcode of getwxacodeunlimit means and what the pipeline does. */
enum wechat_action wechat_errcode_action(int errcode);
const char *wechat_errcode_meaning(int errcode);

/* 1 if `token` can be an access token: 1 to WECHAT_TOKEN_MAX printable
 * ASCII characters, none that would end or break a URL's query value (so it
 * goes into a call's request line as it is). */
int wechat_token_ok(const char *token);

/* Reads a token endpoint answer: 0 with the token and its lifetime, or -1
 * with answer->action (RETRY, POOL_STOP for bad credentials, INTERNAL). */
int wechat_parse_token(const char *body, size_t size, char token[WECHAT_TOKEN_MAX + 1],
	int64_t *expires_in_s, struct wechat_answer *answer);

/* Copies `url` with the values of access_token and secret replaced by "***",
 * so a URL can be logged. */
void wechat_mask_url(const char *url, char *out, size_t size);

#endif

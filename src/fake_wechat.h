/* The fake WeChat server (bin/fake-wechat) used by tests, benchmarks and the
 * demo: what its modules share. It answers as /work/shared/WECHAT.md says;
 * tests/fake-wechat.md documents its options, faults and statistics. */
#ifndef QRPOOL_FAKE_WECHAT_H
#define QRPOOL_FAKE_WECHAT_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "rid.h"

/* --- options (fake_wechat_options.c) ------------------------------------- */

#define FAKE_HTTP_STATUS_MAX 8

/* Fault injection; rates are probabilities per call. All are on
 * getwxacodeunlimit but token_errcode, on both token endpoints. */
struct fake_faults {
	int64_t latency_ms, jitter_ms, slow_ms;
	double busy_rate, http5xx_rate, truncate_rate, empty_rate, padded_rate, json_as_image_rate,
		drop_rate, slow_rate, html_rate, not_image_rate;
	int64_t fail_after;      /* calls after the first this many answer -1; -1: never */
	int errcode;             /* --errcode CODE:P: this error (enum fake_error) ... */
	double errcode_rate;     /* ... with this probability */
	unsigned http_status[FAKE_HTTP_STATUS_MAX]; /* --http-status CODES:P: one of these ... */
	int http_status_count;
	double http_status_rate; /* ... with this probability */
	int token_errcode;       /* --token-errcode CODE:P (enum fake_error) ... */
	double token_errcode_rate;
};

/* The token endpoints' own limits (WECHAT.md); 0 refuses every call. */
struct fake_token_limits {
	int64_t classic_daily;   /* cgi-bin/token calls a day */
	int64_t stable_per_minute, stable_daily; /* cgi-bin/stable_token calls */
	int64_t forced_daily;    /* force_refresh calls that refresh, a day */
	int64_t forced_gap_ms;   /* a force_refresh sooner after the last one does not refresh */
	int64_t day_ms;          /* the length of a "day" (shortened for tests) */
};

struct fake_options {
	const char *listen, *port_file, *stats_file, *appid, *secret, *secret_file, *pages;
	const char *quota_at;    /* "arrival" or "answer": when a call is counted */
	const char *quota_window; /* "aligned" (clock minutes) or "rolling" (any minute) */
	const char *errcode;     /* --errcode CODE:P, parsed into faults */
	const char *http_status; /* --http-status CODES:P, parsed into faults */
	const char *token_errcode; /* --token-errcode CODE:P, parsed into faults */
	const char *image_type;  /* images' Content-Type ("none": no header); NULL: theirs */
	int64_t port, max_connections;
	int64_t token_lifetime_ms, token_grace_ms, stable_margin_ms;
	int64_t minute_ms, quota, quota_errcode;
	int64_t seed;            /* -1: seeded from the kernel */
	int64_t retry_after_ms;  /* Retry-After of 429 and 503 answers; -1: none */
	int64_t image_bytes;     /* images padded to at least this size; 0: as made */
	int64_t token_length;    /* characters of an access token (WeChat's: up to 512) */
	struct fake_faults faults;
	struct fake_token_limits token_limits;
	int verbosity;
	char secret_buffer[512]; /* the secret read from --secret-file */
};

/* Fills `options` from argv. Returns 0 to run, -1 when --help or --version
 * was answered, or an exit status. */
int fake_options_parse(struct fake_options *options, int argc, char **argv);

/* 1 if `page` is one of the comma-separated `pages`. */
int fake_page_published(const char *pages, const char *page);

/* --- errors --------------------------------------------------------------- */

enum fake_error {
	FAKE_OK,
	FAKE_ERR_BUSY, FAKE_ERR_TOKEN_INVALID, FAKE_ERR_GRANT_TYPE, FAKE_ERR_APPID,
	FAKE_ERR_ENV_VERSION, FAKE_ERR_SECRET_INVALID, FAKE_ERR_SCENE_CHARS,
	FAKE_ERR_SCENE_LENGTH, FAKE_ERR_TOKEN_MISSING, FAKE_ERR_PAGE, FAKE_ERR_TOKEN_EXPIRED,
	FAKE_ERR_QUOTA, FAKE_ERR_QUOTA_SLOWER, FAKE_ERR_FORMAT,
	/* a token endpoint's daily limit: after FAKE_ERR_QUOTA, which
	 * fake_error_of() finds first for 45009 */
	FAKE_ERR_DAILY_LIMIT,
	/* only injected (--errcode, --token-errcode): nothing in a request can
	 * earn them here */
	FAKE_ERR_TOKEN_NOT_LATEST, FAKE_ERR_UNAUTHORIZED, FAKE_ERR_NO_PERMISSION,
	FAKE_ERR_SCANCODE_TIME, FAKE_ERR_IP_WHITELIST, FAKE_ERR_SECRET_FROZEN, FAKE_ERR_IP_CONFIRM,
	FAKE_ERR_COUNT
};

int fake_error_code(enum fake_error error);
/* The error of a WeChat errcode, or FAKE_OK when the table has none. */
enum fake_error fake_error_of(int code);
const char *fake_error_message(enum fake_error error);

/* --- time and randomness --------------------------------------------------- */

/* Wall-clock milliseconds: quota windows align to the clients' clocks. */
int64_t fake_now_ms(void);

/* A small PRNG (splitmix64), one per connection so faults are reproducible
 * with --seed and need no lock. */
struct fake_random {
	uint64_t state;
};

uint64_t fake_random_next(struct fake_random *random);
/* Uniform in [0, 1). */
double fake_random_unit(struct fake_random *random);
/* 1 with probability `rate`. */
int fake_random_hit(struct fake_random *random, double rate);

/* Optional fields of a JSON object: absent or null gives `fallback`; a value
 * of another type returns -1 (WeChat's 47001). */
int fake_json_bool(const json_t *body, const char *key, int fallback, int *out);
int fake_json_string(const json_t *body, const char *key, const char *fallback, const char **out);

/* --- access tokens (fake_wechat_tokens.c) ----------------------------------- */

/* Tokens are "fk_" and random characters, FAKE_TOKEN_LENGTH long unless
 * --token-length says otherwise (FAKE_TOKEN_MIN to FAKE_TOKEN_MAX, WeChat's
 * longest). */
#define FAKE_TOKEN_LENGTH (3 + 5 * RID_LENGTH)
#define FAKE_TOKEN_MIN (3 + RID_LENGTH)
#define FAKE_TOKEN_MAX 512
/* Tokens remembered; older ones answer 40001 like any unknown string. */
#define FAKE_TOKEN_KEEP 1024

enum fake_token_kind { FAKE_TOKEN_CLASSIC, FAKE_TOKEN_STABLE, FAKE_TOKEN_STABLE_FORCED,
	FAKE_TOKEN_KIND_COUNT };

struct fake_token {
	char value[FAKE_TOKEN_MAX + 1];
	int stable;
	int64_t expires_ms, revoked_ms;
};

/* Calls counted against the limits, per day and per minute. */
struct fake_token_usage {
	int64_t day, minute;     /* the indexes the counts are of */
	int64_t classic_today, stable_today, forced_today, stable_this_minute;
	int64_t last_forced_ms;  /* the last force_refresh that refreshed; INT64_MIN: none */
};

struct fake_tokens {
	pthread_mutex_t lock;
	struct rid_source random;
	struct fake_token ring[FAKE_TOKEN_KEEP];
	size_t next, count;
	long stable_slot;        /* the current stable token's ring slot, or -1 */
	int64_t lifetime_ms, grace_ms, stable_margin_ms, minute_ms;
	size_t length;           /* of every token */
	struct fake_token_limits limits;
	struct fake_token_usage usage;
	uint64_t issued[FAKE_TOKEN_KIND_COUNT];
};

void fake_tokens_init(struct fake_tokens *tokens, const struct fake_options *options);
void fake_tokens_destroy(struct fake_tokens *tokens);
/* Issues a token of `kind` (stable: the current one while it is not due for
 * rotation) into `value` and its remaining life in ms into *life_ms. Returns
 * FAKE_OK, FAKE_ERR_DAILY_LIMIT or FAKE_ERR_QUOTA_SLOWER (the endpoint's
 * limits: nothing issued), or FAKE_ERR_BUSY when the kernel gave no random
 * bytes. */
enum fake_error fake_tokens_issue(struct fake_tokens *tokens, enum fake_token_kind kind,
	int64_t now_ms, char value[FAKE_TOKEN_MAX + 1], int64_t *life_ms);
/* FAKE_OK, FAKE_ERR_TOKEN_INVALID or FAKE_ERR_TOKEN_EXPIRED. */
enum fake_error fake_tokens_check(struct fake_tokens *tokens, const char *value, int64_t now_ms);
/* Test controls: every token issued so far answers 40001 (revoke) or 42001. */
void fake_tokens_revoke_all(struct fake_tokens *tokens, int64_t now_ms);
void fake_tokens_expire_all(struct fake_tokens *tokens, int64_t now_ms);
void fake_tokens_issued(struct fake_tokens *tokens, uint64_t issued[FAKE_TOKEN_KIND_COUNT]);

/* --- statistics and the minute quota (fake_wechat_stats.c) ------------------ */

enum fake_endpoint { FAKE_EP_TOKEN, FAKE_EP_STABLE_TOKEN, FAKE_EP_CODE, FAKE_EP_COUNT };

enum fake_fault { FAKE_FAULT_NONE, FAKE_FAULT_BUSY, FAKE_FAULT_HTTP5XX, FAKE_FAULT_TRUNCATE,
	FAKE_FAULT_JSON_AS_IMAGE, FAKE_FAULT_DROP, FAKE_FAULT_SLOW, FAKE_FAULT_FAIL_AFTER,
	FAKE_FAULT_ERRCODE, FAKE_FAULT_HTTP_STATUS, FAKE_FAULT_EMPTY, FAKE_FAULT_TOKEN_ERRCODE,
	FAKE_FAULT_PADDED, FAKE_FAULT_HTML, FAKE_FAULT_NOT_IMAGE, FAKE_FAULT_COUNT };

struct fake_window {
	int64_t index;
	uint64_t calls, charged, ok, quota_refused;
};

struct fake_endpoint_stats {
	uint64_t requests, ok, errors[FAKE_ERR_COUNT];
};

struct fake_stats {
	pthread_mutex_t lock;
	int64_t minute_ms, quota, started_ms;
	/* --quota-window rolling: the times of the last `quota` charged calls
	 * (a ring, `recent_next` the oldest once it is full); NULL: aligned. */
	int64_t *recent;
	size_t recent_count, recent_next;
	struct fake_window *windows;    /* only windows that had calls, by index */
	size_t window_count, window_capacity;
	struct fake_endpoint_stats endpoints[FAKE_EP_COUNT];
	uint64_t faults[FAKE_FAULT_COUNT];
	uint64_t connections_total, connections_open, connections_max, not_found;
};

void fake_stats_init(struct fake_stats *stats, const struct fake_options *options);
void fake_stats_destroy(struct fake_stats *stats);
/* Counts a request; returns its 1-based number on that endpoint. */
uint64_t fake_stats_request(struct fake_stats *stats, enum fake_endpoint endpoint);
void fake_stats_answer(struct fake_stats *stats, enum fake_endpoint endpoint,
	enum fake_error error);
void fake_stats_fault(struct fake_stats *stats, enum fake_fault fault);
void fake_stats_not_found(struct fake_stats *stats);
/* Takes one call from the quota of the window holding `now_ms` (rolling: of
 * the minute before it). Returns 1 and the window's index when charged, 0
 * when the quota is spent. */
int fake_stats_charge(struct fake_stats *stats, int64_t now_ms, int64_t *window);
/* A charged call of `window` answered with a whole image. */
void fake_stats_image(struct fake_stats *stats, int64_t window);
void fake_stats_connection(struct fake_stats *stats, int opened);
/* The statistics as a JSON text (malloc'd), or NULL when out of memory. */
char *fake_stats_json(struct fake_stats *stats, struct fake_tokens *tokens);

/* --- images (fake_wechat_image.c) ------------------------------------------ */

struct fake_image_request {
	const char *scene;
	int width;               /* pixels, already within 280..1280 */
	int hyaline;             /* transparent PNG instead of a JPEG */
	unsigned char color[3];  /* the modules' colour */
};

struct fake_image {
	unsigned char *data;     /* malloc'd */
	size_t size;
	const char *content_type, *extension;
};

/* A standard QR code of the scene, exactly `width` pixels square. Returns 0,
 * or -1 (logged) when encoding failed. */
int fake_image_render(const struct fake_image_request *request, struct fake_image *image);
/* Pads the image to `at_least` bytes or a little more, staying a valid image
 * of the same code: COM segments after a JPEG's SOI, a private chunk before
 * a PNG's IEND (--image-bytes: WeChat's images are larger than ours). Returns
 * 0, or -1 (logged) when out of memory. */
int fake_image_pad(struct fake_image *image, size_t at_least);

/* --- the HTTP server (fake_wechat_http.c, fake_wechat_code.c) --------------- */

struct fake_server {
	const struct fake_options *options;
	struct fake_tokens tokens;
	struct fake_stats stats;
	struct MHD_Daemon *daemon;
	atomic_int stopping;             /* handlers cut their sleeps short */
	atomic_int_fast64_t outage_until_ms; /* getwxacodeunlimit answers 503 until then */
	atomic_int_fast64_t busy_until_ms;   /* ... errcode -1 until then (charged) */
	atomic_uint_fast64_t connection_serial;
	uint64_t seed;
};

/* One request being answered. */
struct fake_call {
	struct MHD_Connection *connection;
	struct fake_random *random;      /* the connection's */
	enum fake_endpoint endpoint;     /* FAKE_EP_COUNT: not a WeChat endpoint */
	uint64_t number;                 /* the request's number on its endpoint */
	char *body;
	size_t length, capacity;
	int too_large;
};

/* Starts serving on options->listen; the bound port goes to *port. Returns
 * 0, or -1 (logged). */
int fake_server_start(struct fake_server *server, const struct fake_options *options,
	unsigned *port);
/* Stops serving: waits for the connections' threads. */
void fake_server_stop(struct fake_server *server);
/* Frees what start set up, after the last look at the statistics. */
void fake_server_free(struct fake_server *server);

/* Answers: each returns what the MHD access handler must return. */
enum MHD_Result fake_reply_error(struct fake_server *server, struct fake_call *call,
	enum fake_error error);
/* An error body as WeChat sends it, under any content type (for faults). */
enum MHD_Result fake_reply_error_as(struct fake_call *call, enum fake_error error,
	const char *content_type);
enum MHD_Result fake_reply_text(struct fake_call *call, unsigned status, const char *text);
/* fake_reply_text, and for 429 and 503 a Retry-After (--retry-after) if set. */
enum MHD_Result fake_reply_unavailable(struct fake_server *server, struct fake_call *call,
	unsigned status, const char *text);
/* Sends the first `size` bytes of the image; takes image->data. */
enum MHD_Result fake_reply_image(struct fake_call *call, struct fake_image *image, size_t size);

/* Sleeps `ms`, waking early when the server stops. Returns 0, or -1 if stopping. */
int fake_sleep(struct fake_server *server, int64_t ms);

/* POST /wxa/getwxacodeunlimit */
enum MHD_Result fake_handle_code(struct fake_server *server, struct fake_call *call);

#endif

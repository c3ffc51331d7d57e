/* libcurl set up the one way every WeChat call needs: timeouts, TLS
 * verification on (with the configured CA bundle), HTTP(S) only, no signals,
 * and the answer collected in memory up to a limit. */
#ifndef QRPOOL_HTTP_H
#define QRPOOL_HTTP_H

#include <curl/curl.h>
#include <stddef.h>

#include "config.h"

/* Answers larger than this are cut off (and then fail validation). */
#define HTTP_BODY_LIMIT (8u << 20)

struct http_body {
	unsigned char *data;
	size_t size, capacity;
};

/* Applies the common options and points the answer at `body`. Returns 0, or
 * -1 when libcurl refused an option (logged). */
int http_setup(CURL *easy, const struct wechat_config *wechat, struct http_body *body);
/* 1 if the environment names a proxy for http:// or https:// URLs (the
 * variables libcurl reads); the calls then go through it. */
int http_proxy_in_environment(void);
void http_body_free(struct http_body *body);

#endif

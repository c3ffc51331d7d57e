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
	char error[CURL_ERROR_SIZE];   /* libcurl's words for the last failure */
};

/* Applies the common options and points the answer at `body`. Returns 0, or
 * -1 when libcurl refused an option (logged). */
int http_setup(CURL *easy, const struct wechat_config *wechat, struct http_body *body);
/* What went wrong with a transfer that ended with `rc`, in `buffer`:
 * libcurl's own words for this one (its error buffer: "SSL certificate
 * problem: self-signed certificate") when it left any, else its words for
 * the code; for a certificate not trusted, where trusted ones come from.
 * A user:password@ in it (a proxy URL libcurl quotes) is masked. */
const char *http_error(const struct http_body *body, CURLcode rc, char *buffer, size_t size);
/* The configured CA bundle (wechat.ca_bundle), checked before any call: a
 * file this user can read holding a PEM certificate, or the config error
 * (78, logged) that every call would otherwise fail with, as "try again"
 * all night. 0 when none is set (the system's CAs). */
int http_check_ca(const struct config *config);
/* 1 if the calls to `api_base` go through a proxy named in the environment
 * (the variables libcurl reads, no_proxy too). An http:// api_base (a local
 * stand-in) goes through one only if it is on this host too: the secret is
 * in clear. */
int http_proxy_applies(const char *api_base);
/* Where the calls go, for messages: the api_base (its user:password@
 * masked), and " via the environment's proxy" when one applies. */
const char *http_where(const char *api_base, char *buffer, size_t size);
void http_body_free(struct http_body *body);

#endif

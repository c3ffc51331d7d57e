#include "http.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "log.h"

static size_t http_write(char *data, size_t size, size_t count, void *user)
{
	struct http_body *body = user;
	size_t length = size * count;

	if (length > HTTP_BODY_LIMIT - body->size)
		return 0;   /* makes curl fail the transfer: CURLE_WRITE_ERROR */
	if (body->size + length > body->capacity) {
		size_t capacity = body->capacity ? body->capacity : 16384;
		unsigned char *data_new;

		while (capacity < body->size + length)
			capacity *= 2;
		data_new = realloc(body->data, capacity);
		if (!data_new)
			return 0;
		body->data = data_new;
		body->capacity = capacity;
	}
	memcpy(body->data + body->size, data, length);
	body->size += length;
	return length;
}

/* For https:// URLs, the variables libcurl reads (http_proxy is only for
 * http://, and only in lower case). */
static int http_proxy_in_environment(void)
{
	static const char *const names[] = { "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY" };

	for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
		const char *value = getenv(names[i]);

		if (value && *value)
			return 1;
	}
	return 0;
}

/* 1 if an IPv4 CIDR entry of no_proxy ("10.0.0.0/8", `length` bytes)
 * holds `host`. */
static int http_no_proxy_cidr(const char *entry, size_t length, const char *host)
{
	char text[INET_ADDRSTRLEN + 4];
	const char *slash = memchr(entry, '/', length);
	struct in_addr network, address;
	long bits;
	char *end;

	if (!slash || length >= sizeof text || (size_t)(slash - entry) >= INET_ADDRSTRLEN)
		return 0;
	memcpy(text, entry, length);
	text[length] = '\0';
	text[slash - entry] = '\0';
	bits = strtol(text + (slash - entry) + 1, &end, 10);
	if (*end || end == text + (slash - entry) + 1 || bits < 0 || bits > 32 ||
	    inet_pton(AF_INET, text, &network) != 1 || inet_pton(AF_INET, host, &address) != 1)
		return 0;
	return bits == 0 || !((ntohl(network.s_addr) ^ ntohl(address.s_addr)) >> (32 - bits));
}

/* 1 if no_proxy (or NO_PROXY) exempts `url`'s host, as libcurl reads it:
 * "*", or comma-separated names each matching the host or a domain above it
 * (a leading dot optional), case aside, or IPv4 networks in CIDR notation.
 * (Never more than libcurl exempts: when it says so, no proxy is set.) */
static int http_no_proxy(const char *url)
{
	const char *list = getenv("no_proxy");
	char host[256];
	size_t host_length;

	if (!list || !*list)
		list = getenv("NO_PROXY");
	if (!list || !*list || config_url_host(url, host, sizeof host))
		return 0;
	host_length = strlen(host);
	while (*list) {
		const char *entry = list + strspn(list, ", \t");
		size_t length = strcspn(entry, ", \t");

		list = entry + length;
		if ((length == 1 && *entry == '*') || http_no_proxy_cidr(entry, length, host))
			return 1;
		if (length && *entry == '.') {
			entry++;
			length--;
		}
		if (length && length <= host_length &&
		    !strncasecmp(host + host_length - length, entry, length) &&
		    (length == host_length || host[host_length - length - 1] == '.'))
			return 1;
	}
	return 0;
}

int http_proxy_applies(const char *api_base)
{
	const char *proxy;

	if (http_no_proxy(api_base))
		return 0;
	if (strncmp(api_base, "http://", 7))
		return http_proxy_in_environment();
	/* A local stand-in (config refuses http:// to another host): the
	 * secret goes in clear, so only to a proxy on this host too. libcurl
	 * takes http_proxy for http://, else all_proxy. */
	if (!(proxy = getenv("http_proxy")) || !*proxy)
		if (!(proxy = getenv("all_proxy")) || !*proxy)
			proxy = getenv("ALL_PROXY");
	return proxy && *proxy && config_loopback_url(proxy);
}

int http_setup(CURL *easy, const struct wechat_config *wechat, struct http_body *body)
{
	CURLcode rc = CURLE_OK;

	/* Each option is set in turn and the first failure kept. */
#define HTTP_SET(option, value) if (rc == CURLE_OK) rc = curl_easy_setopt(easy, option, value)
	HTTP_SET(CURLOPT_NOSIGNAL, 1L);
	HTTP_SET(CURLOPT_PROTOCOLS_STR, "http,https");
	HTTP_SET(CURLOPT_CONNECTTIMEOUT_MS, (long)wechat->connect_timeout_ms);
	HTTP_SET(CURLOPT_TIMEOUT_MS, (long)wechat->timeout_ms);
	HTTP_SET(CURLOPT_SSL_VERIFYPEER, 1L);
	HTTP_SET(CURLOPT_SSL_VERIFYHOST, 2L);
	HTTP_SET(CURLOPT_TCP_KEEPALIVE, 1L);
	HTTP_SET(CURLOPT_USERAGENT, "qrpool-fetch");
	HTTP_SET(CURLOPT_WRITEFUNCTION, http_write);
	HTTP_SET(CURLOPT_WRITEDATA, body);
	if (wechat->ca_bundle)
		HTTP_SET(CURLOPT_CAINFO, wechat->ca_bundle);
	/* No proxy: said once here, or libcurl would look for one (five
	 * getenv() and copies) at every call. With one, libcurl reads the
	 * variables itself, no_proxy included. */
	if (!http_proxy_applies(wechat->api_base)) {
		HTTP_SET(CURLOPT_PROXY, "");
		HTTP_SET(CURLOPT_NOPROXY, "");
	}
#undef HTTP_SET
	if (rc != CURLE_OK) {
		log_error("libcurl: %s", curl_easy_strerror(rc));
		return -1;
	}
	return 0;
}

const char *http_where(const char *api_base, char *buffer, size_t size)
{
	char shown[256];

	snprintf(buffer, size, "%s%s", config_url_shown(api_base, shown, sizeof shown),
		http_proxy_applies(api_base) ? " via the environment's proxy" : "");
	return buffer;
}

void http_body_free(struct http_body *body)
{
	free(body->data);
	memset(body, 0, sizeof *body);
}

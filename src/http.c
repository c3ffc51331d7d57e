#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509_vfy.h>

#include "config.h"
#include "exitcode.h"
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

/* libcurl 7.88's Curl_cidr4_match: `host` within `network`/`bits` (0 or
 * none: the exact address). */
static int http_cidr4_match(const char *host, const char *network, unsigned bits)
{
	struct in_addr a, n;
	uint32_t mask;

	if (bits > 32 || inet_pton(AF_INET, host, &a) != 1 || inet_pton(AF_INET, network, &n) != 1)
		return 0;
	mask = bits && bits < 32 ? ~UINT32_C(0) << (32 - bits) : ~UINT32_C(0);
	return !((ntohl(a.s_addr) ^ ntohl(n.s_addr)) & mask);
}

/* One no_proxy token against the host, as libcurl 7.88's
 * Curl_check_noproxy does: an IPv4 host by address or CIDR only; a name
 * (an IPv6 address among them: libcurl gets it without brackets) equal to
 * the token or below it as a domain, leading and trailing dots aside, case
 * aside. */
static int http_no_proxy_token(const char *host, size_t host_length, int ipv4, const char *token,
	size_t length)
{
	char check[128], *slash;

	if (ipv4) {
		if (length >= sizeof check)
			return 0;
		memcpy(check, token, length);
		check[length] = '\0';
		if ((slash = strchr(check, '/')))
			*slash = '\0';
		return http_cidr4_match(host, check, slash ? (unsigned)atoi(slash + 1) : 0);
	}
	if (length && token[length - 1] == '.')
		length--;
	if (length && *token == '.') {
		token++;
		length--;
	}
	if (length == host_length)
		return !strncasecmp(token, host, length);
	return length < host_length && host[host_length - length - 1] == '.' &&
		!strncasecmp(token, host + host_length - length, length);
}

/* 1 if no_proxy (or NO_PROXY) exempts `url`'s host, as libcurl 7.88 reads
 * it (only a whole value of "*" exempts every host; tokens separated by
 * commas and blanks), checked against curl 7.88.1 itself: nothing may go
 * direct that libcurl would send through the proxy, since when this says
 * so no proxy is set at all. */
static int http_no_proxy(const char *url)
{
	const char *p = getenv("no_proxy");
	char host[256];
	size_t host_length;
	struct in_addr address;
	int ipv4;

	if (!p || !*p)
		p = getenv("NO_PROXY");
	if (!p || !*p || config_url_host(url, host, sizeof host) || !*host)
		return 0;
	if (!strcmp(p, "*"))
		return 1;
	host_length = strlen(host);
	ipv4 = inet_pton(AF_INET, host, &address) == 1;
	if (!ipv4 && host[host_length - 1] == '.')
		host_length--;
	while (*p) {
		size_t length = strcspn(p, ", \t");

		if (length && http_no_proxy_token(host, host_length, ipv4, p, length))
			return 1;
		p += length;
		p += strspn(p, ", \t");
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
	HTTP_SET(CURLOPT_ERRORBUFFER, body->error);
	/* The bundle alone: libcurl would trust the system's CA directory
	 * (Debian's build: /etc/ssl/certs) beside it. */
	if (wechat->ca_bundle) {
		HTTP_SET(CURLOPT_CAINFO, wechat->ca_bundle);
		HTTP_SET(CURLOPT_CAPATH, NULL);
	}
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

/* Replaces text[at, at + length) with "***", within `size`. */
static void http_mask_span(char *text, size_t size, size_t at, size_t length)
{
	size_t tail = strlen(text + at + length) + 1;

	if (at + 3 + tail > size)
		tail = size - at - 3;   /* (cut; at + 3 < size: see the callers) */
	memmove(text + at + 3, text + at + length, tail);
	memcpy(text + at, "***", 3);
	text[size - 1] = '\0';
}

/* Masks in `text` (of `size` bytes) the user:password of each proxy named
 * in the environment, as libcurl quotes a proxy URL it cannot use: whole,
 * the password as given (a '/', a space or an '@' in it too), and perhaps
 * cut short at the end of its 255 bytes. */
static void http_mask_proxy_userinfo(char *text, size_t size)
{
	static const char *const names[] = { "http_proxy", "HTTP_PROXY", "https_proxy",
		"HTTPS_PROXY", "all_proxy", "ALL_PROXY" };

	for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
		const char *proxy = getenv(names[i]), *start, *at;
		size_t length, text_length, k;
		char *found;

		if (!proxy || !(at = strrchr(proxy, '@')))
			continue;
		start = strstr(proxy, "://");
		start = start && start < at ? start + 3 : proxy;
		if (!(length = (size_t)(at - start)))
			continue;
		/* Whole, followed by its '@'. */
		for (found = text; (found = memmem(found, strlen(found), start, length + 1)) &&
				(size_t)(found - text) + 3 < size; found += 3)
			http_mask_span(text, size, (size_t)(found - text), length);
		/* Cut short: the text ends within it, right after "//" or a quote. */
		text_length = strlen(text);
		for (k = length < text_length ? length : text_length; k > 0; k--) {
			size_t from = text_length - k;

			if (!strncmp(text + from, start, k) &&
			    (from == 0 || text[from - 1] == '/' || text[from - 1] == '\'')) {
				if (from + 3 < size)
					http_mask_span(text, size, from, k);
				break;
			}
		}
	}
}

/* `text` into `buffer` (cut to `size`), each user:password@ in it as ***@:
 * a second guard, past the proxies of the environment (a password with a
 * separator in it is masked up to the separator only). */
static void http_copy_masked(char *buffer, size_t size, const char *text)
{
	size_t used = 0;

	while (*text && used + 1 < size) {
		size_t span = strcspn(text, " '\"/@");

		/* (user@ alone: no password) */
		if (text[span] == '@' && memchr(text, ':', span)) {
			used += (size_t)snprintf(buffer + used, size - used, "***");
			text += span;
		} else {
			if (text[span])
				span++;   /* the separator too */
			used += (size_t)snprintf(buffer + used, size - used, "%.*s", (int)span, text);
			text += span;
		}
		if (used >= size)
			used = size - 1;
	}
	buffer[used] = '\0';
}

const char *http_error(const struct http_body *body, CURLcode rc, char *buffer, size_t size)
{
	char text[CURL_ERROR_SIZE + 256];
	const char *said = curl_easy_strerror(rc);
	size_t length = strlen(body->error);

	/* (libcurl ends some with a line break.) */
	while (length && (body->error[length - 1] == '\n' || body->error[length - 1] == '\r'))
		length--;
	/* libcurl keeps the first error of a transfer: when a kept-alive
	 * connection died under a call and its resend then failed otherwise
	 * (a refused connect, a certificate), the buffer still says the
	 * first. The code says the last. */
	if (length && rc != CURLE_RECV_ERROR && rc != CURLE_SEND_ERROR &&
	    (!strncmp(body->error, "Recv failure", 12) || !strncmp(body->error, "Send failure", 12)))
		snprintf(text, sizeof text, "%s (after a kept-alive connection failed: %.*s)", said,
			(int)length, body->error);
	else
		snprintf(text, sizeof text, "%.*s", length ? (int)length : (int)strlen(said),
			length ? body->error : said);
	if (rc == CURLE_PEER_FAILED_VERIFICATION)
		snprintf(text + strlen(text), sizeof text - strlen(text), " (TLS is verified: a "
			"certificate for api_base's host, signed by a CA of wechat.ca_bundle, else of the "
			"system's)");
	http_mask_proxy_userinfo(text, sizeof text);
	http_copy_masked(buffer, size, text);
	return buffer;
}

int http_check_ca(const struct config *config)
{
	const char *path = config->wechat.ca_bundle;
	unsigned long error;
	X509_STORE *store;
	int fd, loaded;

	if (!path)
		return 0;
	if ((fd = config_open_file(path)) == -2) {
		log_error("%s: wechat.ca_bundle %s is not a file: it names one bundle of PEM "
			"certificates (libcurl's CAINFO)", config->path, path);
		return EXIT_CONFIG;
	}
	if (fd < 0) {
		log_error("%s: wechat.ca_bundle %s: %s: no call to WeChat could be verified",
			config->path, path, strerror(errno));
		return EXIT_CONFIG;
	}
	close(fd);
	/* Read as libcurl has OpenSSL read it for each connection
	 * (SSL_CTX_load_verify_file): what fails here would fail every call. */
	ERR_clear_error();
	if (!(store = X509_STORE_new()))
		return EXIT_INTERNAL;
	loaded = X509_STORE_load_file(store, path);
	X509_STORE_free(store);
	if (loaded == 1)
		return 0;
	error = ERR_peek_error();   /* (the first: the cause) */
	log_error("%s: wechat.ca_bundle %s: OpenSSL cannot read a certificate from it (%s): it "
		"must hold PEM certificates ('-----BEGIN CERTIFICATE-----'); every call to WeChat "
		"would fail its TLS check", config->path, path,
		error && ERR_reason_error_string(error) ? ERR_reason_error_string(error) : "no reason given");
	ERR_clear_error();
	return EXIT_CONFIG;
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

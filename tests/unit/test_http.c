/* http.c: whether the calls go through the environment's proxy, no_proxy
 * read as libcurl reads it; what a failed transfer is said as; config.c's
 * host of a URL. */
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "tap.h"

static void clear_proxies(void)
{
	static const char *const names[] = { "http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy",
		"ALL_PROXY", "no_proxy", "NO_PROXY" };

	for (size_t i = 0; i < sizeof names / sizeof *names; i++)
		unsetenv(names[i]);
}

static void test_url_host(void)
{
	static const char *const cases[][2] = {
		{ "https://api.weixin.qq.com", "api.weixin.qq.com" },
		{ "https://api.weixin.qq.com:443/cgi-bin", "api.weixin.qq.com" },
		{ "http://user:pw@127.0.0.1:8080/x?y#z", "127.0.0.1" },
		{ "http://[::1]:8080/", "::1" },
		{ "proxy.corp:3128", "proxy.corp" },
	};
	char host[64];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		is_int(config_url_host(cases[i][0], host, sizeof host), 0, "host of %s", cases[i][0]);
		is_str(host, cases[i][1], "... is %s", cases[i][1]);
	}
	is_int(config_url_host("http://[::1/", host, sizeof host), -1, "an unclosed bracket");
	is_int(config_url_host("https://a.very.long.host.name.example/", host, 8), -1, "too long");
	ok(config_loopback_url("http://[::1]:9/"), "[::1] is loopback");
	ok(config_loopback_url("http://me:pw@localhost:9/"), "localhost with userinfo is loopback");
	ok(!config_loopback_url("http://127.0.0.1.example.com/"), "a name starting 127.0.0.1 is not");
}

static void test_no_proxy(void)
{
	static const struct { const char *no_proxy; const char *api_base; int applies; } cases[] = {
		{ NULL, "https://api.weixin.qq.com", 1 },
		{ "", "https://api.weixin.qq.com", 1 },
		{ "*", "https://api.weixin.qq.com", 0 },
		{ "weixin.qq.com", "https://api.weixin.qq.com", 0 },
		{ ".weixin.qq.com", "https://api.weixin.qq.com/", 0 },
		{ "localhost, API.WEIXIN.QQ.COM", "https://api.weixin.qq.com:443/x", 0 },
		{ "qq.com", "https://api.weixin.qq.com", 0 },
		{ "eixin.qq.com", "https://api.weixin.qq.com", 1 },
		{ "api.weixin.qq.com.cn", "https://api.weixin.qq.com", 1 },
		{ "example.com,other.org", "https://api.weixin.qq.com", 1 },
		{ "10.0.0.0/8", "https://10.1.2.3:8443", 0 },
		{ "10.0.0.0/8", "https://11.1.2.3:8443", 1 },
		{ "10.1.2.3/32", "https://10.1.2.3", 0 },
		{ "10.0.0.0/x", "https://10.1.2.3", 1 },
		{ "10.0.0.0/8", "https://api.weixin.qq.com", 1 },
		/* As curl 7.88.1 reads them (it proxies each of these): */
		{ "0.0.0.0/0", "https://192.0.2.1", 1 },
		{ "localhost,*", "https://api.weixin.qq.com", 1 },
		{ " *", "https://api.weixin.qq.com", 1 },
		{ "2.3", "https://10.1.2.3", 1 },
		{ "::1/128", "https://[::1]:8443", 1 },
		/* ... and sends these direct: */
		{ "10.1.2.3", "https://10.1.2.3", 0 },
		{ "example.com weixin.qq.com", "https://api.weixin.qq.com", 0 },
		{ "a , ,qq.com.", "https://api.weixin.qq.com", 0 },
		{ "::1", "https://[::1]:8443", 0 },
		{ "weixin.qq.com", "https://api.weixin.qq.com.", 0 },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		clear_proxies();
		setenv("https_proxy", "http://proxy.corp:3128", 1);
		if (cases[i].no_proxy)
			setenv("no_proxy", cases[i].no_proxy, 1);
		is_int(http_proxy_applies(cases[i].api_base), cases[i].applies, "no_proxy '%s', %s: %s",
			cases[i].no_proxy ? cases[i].no_proxy : "(unset)", cases[i].api_base,
			cases[i].applies ? "via the proxy" : "direct");
	}
	clear_proxies();
	setenv("HTTPS_PROXY", "http://proxy.corp:3128", 1);
	setenv("NO_PROXY", "weixin.qq.com", 1);
	ok(!http_proxy_applies("https://api.weixin.qq.com"), "NO_PROXY, upper case, read too");
	clear_proxies();
	setenv("http_proxy", "http://127.0.0.1:3128", 1);
	ok(http_proxy_applies("http://127.0.0.1:8080"), "http:// api_base, a proxy on this host: via it");
	setenv("no_proxy", "127.0.0.1", 1);
	ok(!http_proxy_applies("http://127.0.0.1:8080"), "... unless no_proxy names the host");
	clear_proxies();
	ok(!http_proxy_applies("https://api.weixin.qq.com"), "no proxy variable: direct");
}

static void test_error(void)
{
	static const struct { const char *error; CURLcode rc; const char *said; } cases[] = {
		{ "", CURLE_COULDNT_CONNECT, "Couldn't connect to server" },
		{ "Failed to connect to 127.0.0.1 port 9 after 0 ms: Couldn't connect to server\n",
		  CURLE_COULDNT_CONNECT,
		  "Failed to connect to 127.0.0.1 port 9 after 0 ms: Couldn't connect to server" },
		{ "SSL certificate problem: self-signed certificate", CURLE_PEER_FAILED_VERIFICATION,
		  "SSL certificate problem: self-signed certificate (TLS is verified: a certificate "
		  "for api_base's host, signed by a CA of wechat.ca_bundle, else of the system's)" },
		{ "", CURLE_PEER_FAILED_VERIFICATION, "SSL peer certificate or SSH remote key was not "
		  "OK (TLS is verified: a certificate for api_base's host, signed by a CA of "
		  "wechat.ca_bundle, else of the system's)" },
		{ "Unsupported proxy syntax in 'http://user:pw@[bad'", CURLE_COULDNT_RESOLVE_PROXY,
		  "Unsupported proxy syntax in 'http://***@[bad'" },
		{ "Unsupported proxy syntax in 'u:p@h:x'", CURLE_COULDNT_RESOLVE_PROXY,
		  "Unsupported proxy syntax in '***@h:x'" },
		{ "Unsupported proxy syntax in 'http://user@h:x'", CURLE_COULDNT_RESOLVE_PROXY,
		  "Unsupported proxy syntax in 'http://user@h:x'" },
		{ "a:b@c:d@e", CURLE_COULDNT_RESOLVE_PROXY, "***@***@e" },
		{ "@:x@", CURLE_COULDNT_RESOLVE_PROXY, "@***@" },
	};
	struct http_body body;
	char said[400], small[12];

	memset(&body, 0, sizeof body);
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		snprintf(body.error, sizeof body.error, "%s", cases[i].error);
		is_str(http_error(&body, cases[i].rc, said, sizeof said), cases[i].said,
			"libcurl's error %zu (code %d) is said as '%s'", i, (int)cases[i].rc, cases[i].said);
	}
	/* A proxy of the environment, quoted as given: its password masked
	 * whole, separators in it and all, and when the quote is cut short. */
	{
		static const struct { const char *proxy, *error, *said; } proxies[] = {
			{ "http://user:pa/ss@proxy:8080", "Unsupported proxy syntax in 'http://user:pa/ss@proxy:8080'",
			  "Unsupported proxy syntax in 'http://***@proxy:8080'" },
			{ "http://user:p@ss@proxy", "Unsupported proxy syntax in 'http://user:p@ss@proxy'",
			  "Unsupported proxy syntax in 'http://***@proxy'" },
			{ "user:pa ss'x@proxy", "Unsupported proxy syntax in 'user:pa ss'x@proxy'",
			  "Unsupported proxy syntax in '***@proxy'" },
			{ "http://user:a-long-password@proxy", "Unsupported proxy syntax in 'http://user:a-long-pa",
			  "Unsupported proxy syntax in 'http://***" },
			{ "http://u:p@proxy", "Failed to connect to proxy port 3128: u:p", "Failed to connect to proxy port 3128: u:p" },
		};

		for (size_t i = 0; i < sizeof proxies / sizeof *proxies; i++) {
			clear_proxies();
			setenv(i % 2 ? "HTTPS_PROXY" : "https_proxy", proxies[i].proxy, 1);
			snprintf(body.error, sizeof body.error, "%s", proxies[i].error);
			is_str(http_error(&body, CURLE_COULDNT_RESOLVE_PROXY, said, sizeof said),
				proxies[i].said, "proxy %zu: said as '%s'", i, proxies[i].said);
		}
		clear_proxies();
	}
	/* The first error of a transfer stays in libcurl's buffer: a kept-alive
	 * connection that died under the call, then a resend that failed. */
	snprintf(body.error, sizeof body.error, "%s", "Recv failure: Connection reset by peer");
	is_str(http_error(&body, CURLE_COULDNT_CONNECT, said, sizeof said), "Couldn't connect to "
		"server (after a kept-alive connection failed: Recv failure: Connection reset by peer)",
		"a stale reset said as what came first");
	is_str(http_error(&body, CURLE_RECV_ERROR, said, sizeof said),
		"Recv failure: Connection reset by peer", "... and as itself when it is the end");
	snprintf(body.error, sizeof body.error, "%s", "in 'http://user:password@h'");
	is_str(http_error(&body, CURLE_COULDNT_RESOLVE_PROXY, small, sizeof small), "in 'http://",
		"cut to the buffer, and nothing of a password before its mask");
	is_str(http_error(&body, CURLE_COULDNT_RESOLVE_PROXY, small, 1), "", "a buffer of one byte");
}

int main(void)
{
	test_url_host();
	test_no_proxy();
	test_error();
	return tap_done();
}

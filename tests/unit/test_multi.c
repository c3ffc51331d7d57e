/* multi.c: curl's sockets on epoll. Calls to a small keep-alive HTTP server
 * on loopback, named by this machine's host name so that curl's resolver (its
 * own socket pair, which curl closes itself) takes part, with fresh
 * connections, reused ones and no DNS cache: every call succeeds, and once a
 * round's calls are done epoll watches nothing (a socket left registered after
 * its close would keep reporting events under a number that may come back).
 * The calls alternate between two shards (multi handles), and each socket's
 * events must reach the one that watches it.
 * (A version that kept idle connections' sockets registered, to save two
 * epoll_ctl per call, left registrations of sockets curl closed without its
 * close callback: the resolver's, a losing connect attempt's.) */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "db.h"
#include "multi.h"
#include "tap.h"

#define ROUNDS 6
#define CALLS 4

static int listener;

/* One connection: an answer per request, kept alive until the client closes. */
static void *serve(void *argument)
{
	int fd = (int)(long)argument;
	char request[4096];
	size_t used = 0;
	ssize_t got;
	static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

	while ((got = read(fd, request + used, sizeof request - 1 - used)) > 0) {
		char *end;

		used += (size_t)got;
		request[used] = '\0';
		while ((end = strstr(request, "\r\n\r\n"))) {
			size_t length = (size_t)(end + 4 - request);

			if (write(fd, answer, sizeof answer - 1) < 0)
				break;
			memmove(request, request + length, used - length + 1);
			used -= length;
		}
		if (used == sizeof request - 1)
			break;
	}
	close(fd);
	return NULL;
}

static void *accept_loop(void *unused)
{
	(void)unused;
	for (;;) {
		int fd = accept(listener, NULL, NULL);
		pthread_t thread;

		if (fd < 0)
			return NULL;
		pthread_create(&thread, NULL, serve, (void *)(long)fd);
		pthread_detach(thread);
	}
}

static size_t discard(char *data, size_t size, size_t count, void *user)
{
	(void)data;
	(void)user;
	return size * count;
}

/* The descriptors in the interest list of epoll descriptor `epoll_fd`
 * (said), or -1. */
static int watched_by_epoll(int epoll_fd)
{
	char path[64], line[256];
	FILE *info;
	int count = 0, tfd;

	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", epoll_fd);
	if (!(info = fopen(path, "r")))
		return -1;
	while (fgets(line, sizeof line, info))
		if (sscanf(line, "tfd: %d", &tfd) == 1) {
			printf("# fd %d still in epoll\n", tfd);
			count++;
		}
	fclose(info);
	return count;
}

/* Waits (multi_wait) for `seconds`, or until a call is done or timed out:
 * 'd' done (its result in *result), 't' timed out, '-' neither. */
static int wait_for_call(struct multi *multi, double seconds, CURLcode *result)
{
	double until = db_monotonic() + seconds;

	do {
		CURLMsg *message;

		multi_wait(multi, until - db_monotonic(), 0);
		while ((message = multi_info_read(multi)))
			if (message->msg == CURLMSG_DONE) {
				*result = message->data.result;
				return 'd';
			}
		if (multi_timed_out(multi) != MULTI_NONE)
			return 't';
	} while (db_monotonic() < until);
	return '-';
}

/* Drives the call until its request is sent (1 s at most): 1 once it is. */
static int wait_until_sent(struct multi *multi, CURL *easy)
{
	double until = db_monotonic() + 1;
	long sent = 0;

	while (!sent && db_monotonic() < until) {
		multi_wait(multi, 0.01, 0);
		curl_easy_getinfo(easy, CURLINFO_REQUEST_SIZE, &sent);
	}
	return sent > 0;
}

/* A call's timeout (0.4 s here) counts the time spent listening, not the
 * time the caller was held up elsewhere: an answer that came meanwhile is
 * read, and a silent server is given its whole timeout of listening. */
static void test_timeouts(int port)
{
	char url[64];
	struct sockaddr_in address = { .sin_family = AF_INET };
	socklen_t length = sizeof address;
	int silent = socket(AF_INET, SOCK_STREAM, 0);
	char silent_url[128];
	struct multi multi;
	CURL *easy = curl_easy_init();
	CURLcode result = CURLE_OK;
	double started;
	int got;

	address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (silent < 0 || bind(silent, (struct sockaddr *)&address, sizeof address) ||
	    listen(silent, 8) || getsockname(silent, (struct sockaddr *)&address, &length) ||
	    multi_open(&multi, -1, 1, 0.4)) {
		ok(0, "a silent server and a multi handle");
		return;
	}
	/* The kernel accepts its connections; nobody reads or answers. The
	 * server that does answer is named by address: no resolver to wait for. */
	snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
	snprintf(silent_url, sizeof silent_url, "http://127.0.0.1:%d/", ntohs(address.sin_port));
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);

	curl_easy_setopt(easy, CURLOPT_URL, silent_url);
	started = db_monotonic();
	multi_add(&multi, 0, easy);
	got = wait_for_call(&multi, 3, &result);
	is_int(got, 't', "a silent server: the call times out");
	ok(db_monotonic() - started >= 0.4 && db_monotonic() - started < 2.5,
		"... after its timeout (%.2f s)", db_monotonic() - started);
	multi_remove(&multi, 0, easy);
	is_int(multi_timed_out(&multi), MULTI_NONE, "... and once ended, no call is timed out");

	/* Answered while the caller was away three timeouts long: read, OK. */
	curl_easy_setopt(easy, CURLOPT_URL, url);
	multi_add(&multi, 0, easy);
	is_int(wait_until_sent(&multi, easy), 1, "a request sent");
	usleep(1200 * 1000);
	got = wait_for_call(&multi, 3, &result);
	is_int(got, 'd', "an answer that came while the caller was held up 1.2 s is read");
	is_int(result, CURLE_OK, "... and the call succeeded");
	multi_remove(&multi, 0, easy);

	/* Silent, and the caller away longer than the timeout: the stall does
	 * not count, so the call is not timed out at once but after listening. */
	curl_easy_setopt(easy, CURLOPT_URL, silent_url);
	multi_add(&multi, 0, easy);
	multi_wait(&multi, 0, 0);
	usleep(1200 * 1000);
	started = db_monotonic();
	got = wait_for_call(&multi, 0.2, &result);
	is_int(got, '-', "a silent server, the caller held up 1.2 s: not timed out by the stall");
	got = wait_for_call(&multi, 3, &result);
	is_int(got, 't', "... but after its timeout's listening");
	ok(db_monotonic() - started >= 0.35, "... (%.2f s after the stall)", db_monotonic() - started);
	multi_remove(&multi, 0, easy);

	curl_easy_cleanup(easy);
	multi_close(&multi);
	close(silent);
}

/* Runs the calls to completion; the number that succeeded. Adds the waits
 * it took to *waits. */
static int run_round(struct multi *multi, CURL **easy, int count, int *waits)
{
	int done = 0, succeeded = 0;
	double until = db_now() + 10;

	for (int i = 0; i < count; i++)
		multi_add(multi, (size_t)i, easy[i]);
	while (done < count && db_now() < until) {
		CURLMsg *message;

		multi_wait(multi, 0.5, 0);
		++*waits;
		while ((message = multi_info_read(multi))) {
			int slot = 0;

			if (message->msg != CURLMSG_DONE)
				continue;
			while (slot < count && easy[slot] != message->easy_handle)
				slot++;
			succeeded += message->data.result == CURLE_OK;
			multi_remove(multi, (size_t)slot, message->easy_handle);
			done++;
		}
	}
	return succeeded;
}

int main(void)
{
	struct sockaddr_in address = { .sin_family = AF_INET };
	socklen_t length = sizeof address;
	struct addrinfo *found = NULL, hints = { .ai_family = AF_INET };
	char host[256] = "", url[512];
	CURL *easy[CALLS];
	struct multi multi;
	pthread_t thread;
	int stale = 0, succeeded = 0, waits = 0;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	listener = socket(AF_INET, SOCK_STREAM, 0);
	if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof address) ||
	    listen(listener, 64) || getsockname(listener, (struct sockaddr *)&address, &length))
		return 1;
	pthread_create(&thread, NULL, accept_loop, NULL);
	/* The host name goes through curl's resolver; "localhost" would not
	 * (curl answers it itself), nor would an address. */
	gethostname(host, sizeof host - 1);
	if (!*host || getaddrinfo(host, NULL, &hints, &found) ||
	    ntohl(((struct sockaddr_in *)found->ai_addr)->sin_addr.s_addr) >> 24 != 127) {
		printf("# this machine's name (%s) is not a loopback address: 127.0.0.1 is called\n", host);
		snprintf(host, sizeof host, "127.0.0.1");
	}
	if (found)
		freeaddrinfo(found);
	snprintf(url, sizeof url, "http://%s:%d/", host, ntohs(address.sin_port));

	/* Room for two shards' calls: the calls alternate between them. */
	if (multi_open(&multi, -1, 2 * MULTI_SHARD_SLOTS, 5) || multi.shard_count != 2)
		return 1;
	for (int i = 0; i < CALLS; i++) {
		easy[i] = curl_easy_init();
		curl_easy_setopt(easy[i], CURLOPT_URL, url);
		curl_easy_setopt(easy[i], CURLOPT_WRITEFUNCTION, discard);
		curl_easy_setopt(easy[i], CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(easy[i], CURLOPT_DNS_CACHE_TIMEOUT, 0L);   /* a lookup per connection */
		multi_share(&multi, easy[i]);
		/* Half the calls make a fresh connection, half reuse one. */
		curl_easy_setopt(easy[i], CURLOPT_FRESH_CONNECT, (long)(i % 2));
	}
	for (int round = 0; round < ROUNDS; round++) {
		succeeded += run_round(&multi, easy, CALLS, &waits);
		stale += watched_by_epoll(multi.epoll_fd);
	}
	is_int(succeeded, ROUNDS * CALLS, "every call to %s succeeded", url);
	is_int(stale, 0, "after each round's calls, epoll watches nothing");
	/* An event handed to the wrong shard is ignored by curl, and the socket,
	 * still readable, wakes every wait at once (over a million of them). */
	ok(waits <= ROUNDS * CALLS * 10, "each event went to its socket's shard (%d waits for %d calls)",
		waits, ROUNDS * CALLS);
	for (int i = 0; i < CALLS; i++)
		curl_easy_cleanup(easy[i]);
	multi_close(&multi);
	test_timeouts(ntohs(address.sin_port));
	close(listener);
	curl_global_cleanup();
	return tap_done();
}

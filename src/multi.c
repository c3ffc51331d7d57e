#include "multi.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "db.h"
#include "log.h"

#define MULTI_EVENTS 256

/* What epoll watches for `socket` (0: not registered), growing the table. */
static unsigned char *multi_slot(struct multi *multi, curl_socket_t socket)
{
	if (socket < 0)
		return NULL;
	if ((size_t)socket >= multi->watched_size) {
		size_t size = multi->watched_size ? multi->watched_size : 256;
		unsigned char *grown;

		while (size <= (size_t)socket)
			size *= 2;
		if (!(grown = realloc(multi->watched, size)))
			return NULL;
		memset(grown + multi->watched_size, 0, size - multi->watched_size);
		multi->watched = grown;
		multi->watched_size = size;
	}
	return &multi->watched[socket];
}

/* A connection's socket that curl is done with for now (the connection goes
 * back to its cache) stays registered, marked parked: most are wanted again,
 * for reading, by the next call, which then costs no epoll_ctl at all. A
 * parked socket that becomes ready (the server closed the idle connection)
 * is dropped then. Only sockets opened through multi_on_open are parked: their
 * close is told to multi_on_close. Others (the threaded resolver's socket
 * pair) curl closes itself, and the slot would outlive them: they leave epoll
 * when curl is done with them, as before. */
static int multi_on_socket(CURL *easy, curl_socket_t socket, int what, void *user, void *known)
{
	struct multi *multi = user;
	struct epoll_event event = { .data.fd = socket };
	unsigned char *slot = multi_slot(multi, socket);
	unsigned char owned = slot ? *slot & MULTI_OWNED : 0;
	unsigned char registered = slot ? *slot & (MULTI_REGISTERED | CURL_POLL_INOUT) : 0;
	unsigned char wanted;

	(void)easy;
	(void)known;
	if (what == CURL_POLL_REMOVE) {
		if (owned && registered) {
			*slot |= MULTI_PARKED;
			return 0;
		}
		if (registered || !slot)
			epoll_ctl(multi->epoll_fd, EPOLL_CTL_DEL, socket, NULL);
		if (slot)
			*slot = owned;
		return 0;
	}
	event.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
	wanted = (unsigned char)((what & CURL_POLL_INOUT) | MULTI_REGISTERED);
	if (registered == wanted ||
	    (registered && epoll_ctl(multi->epoll_fd, EPOLL_CTL_MOD, socket, &event) == 0)) {
		*slot = wanted | owned;
		return 0;
	}
	if (epoll_ctl(multi->epoll_fd, EPOLL_CTL_ADD, socket, &event) &&
	    (errno != EEXIST || epoll_ctl(multi->epoll_fd, EPOLL_CTL_MOD, socket, &event))) {
		/* Its events never come: the call times out and is retried (an
		 * error returned here would abort the whole multi handle). */
		log_error("epoll_ctl: %s", strerror(errno));
		if (slot)
			*slot = owned;
		return 0;
	}
	if (slot)
		*slot = wanted | owned;
	return 0;
}

/* curl opens a connection's socket (as it would itself, close-on-exec
 * besides): its slot starts afresh, unregistered, and owned. */
static curl_socket_t multi_on_open(void *user, curlsocktype purpose, struct curl_sockaddr *address)
{
	struct multi *multi = user;
	curl_socket_t socket_fd = socket(address->family, address->socktype | SOCK_CLOEXEC,
		address->protocol);
	unsigned char *slot;

	(void)purpose;
	if (socket_fd < 0)
		return CURL_SOCKET_BAD;
	if ((slot = multi_slot(multi, socket_fd)))
		*slot = MULTI_OWNED;
	return socket_fd;
}

/* curl closes a connection's socket; its number may come back for another
 * one. It leaves epoll first, in case a copy of the descriptor lives on
 * somewhere (which would keep the registration, and its events, alive). */
static int multi_on_close(void *user, curl_socket_t socket)
{
	struct multi *multi = user;

	if (socket >= 0 && (size_t)socket < multi->watched_size) {
		if (multi->watched[socket] & MULTI_REGISTERED)
			epoll_ctl(multi->epoll_fd, EPOLL_CTL_DEL, socket, NULL);
		multi->watched[socket] = 0;
	}
	return close(socket);
}

static int multi_on_timer(CURLM *curl, long timeout_ms, void *user)
{
	struct multi *multi = user;

	(void)curl;
	multi->curl_wake = timeout_ms < 0 ? 0 : db_now() + (double)timeout_ms / 1000;
	return 0;
}

int multi_open(struct multi *multi, int input_fd, long connections)
{
	memset(multi, 0, sizeof *multi);
	multi->input_fd = input_fd;
	multi->input_pollable = 1;
	multi->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (multi->epoll_fd < 0) {
		log_error("epoll_create1: %s", strerror(errno));
		return -1;
	}
	if (!connections)
		return 0;
	multi->curl = curl_multi_init();
	if (!multi->curl) {
		log_error("libcurl: cannot create a multi handle");
		return -1;
	}
	/* Connections are kept and reused, up to one per call in flight. */
	curl_multi_setopt(multi->curl, CURLMOPT_MAX_TOTAL_CONNECTIONS, connections);
	curl_multi_setopt(multi->curl, CURLMOPT_MAXCONNECTS, connections);
	curl_multi_setopt(multi->curl, CURLMOPT_SOCKETFUNCTION, multi_on_socket);
	curl_multi_setopt(multi->curl, CURLMOPT_SOCKETDATA, multi);
	curl_multi_setopt(multi->curl, CURLMOPT_TIMERFUNCTION, multi_on_timer);
	curl_multi_setopt(multi->curl, CURLMOPT_TIMERDATA, multi);
	return 0;
}

int multi_setup_easy(struct multi *multi, CURL *easy)
{
	return curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, multi_on_open) != CURLE_OK ||
		curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, multi) != CURLE_OK ||
		curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, multi_on_close) != CURLE_OK ||
		curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, multi) != CURLE_OK ? -1 : 0;
}

void multi_close(struct multi *multi)
{
	if (multi->curl)
		curl_multi_cleanup(multi->curl);   /* (closes the cached connections: multi_on_close) */
	if (multi->epoll_fd > 0)
		close(multi->epoll_fd);
	free(multi->watched);
	memset(multi, 0, sizeof *multi);
}

/* The input is watched only while wanted: level-triggered, a readable input
 * nobody reads would wake the loop at once, again and again. */
static void multi_watch_input(struct multi *multi, int want)
{
	struct epoll_event event = { .events = EPOLLIN, .data.fd = multi->input_fd };

	if (!multi->input_pollable || want == multi->input_watched)
		return;
	if (epoll_ctl(multi->epoll_fd, want ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, multi->input_fd,
			&event) == 0)
		multi->input_watched = want;
	else if (errno == EPERM)
		multi->input_pollable = 0;   /* a regular file: reads never wait */
}

void multi_wait(struct multi *multi, double wake, int want_input)
{
	struct epoll_event events[MULTI_EVENTS];
	double now = db_now();
	int count, running, timeout_ms;

	multi_watch_input(multi, want_input);
	if (multi->curl_wake && multi->curl_wake < wake)
		wake = multi->curl_wake;
	if (want_input && !multi->input_pollable)
		wake = now;   /* a file has more to read now */
	timeout_ms = wake > now ? (int)((wake - now) * 1000) + 1 : 0;
	count = epoll_wait(multi->epoll_fd, events, MULTI_EVENTS, timeout_ms);
	for (int i = 0; i < count && multi->curl; i++) {
		int fd = events[i].data.fd;
		int flags = (events[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
			(events[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
			(events[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);

		if (fd == multi->input_fd && multi->input_watched)
			continue;
		if (fd >= 0 && (size_t)fd < multi->watched_size && (multi->watched[fd] & MULTI_PARKED)) {
			/* Idle in curl's cache, and ready: the server closed it,
			 * most likely. curl finds out when it tries to reuse it. */
			epoll_ctl(multi->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
			multi->watched[fd] &= MULTI_OWNED;
			continue;
		}
		curl_multi_socket_action(multi->curl, fd, flags, &running);
	}
	if (multi->curl && multi->curl_wake && db_now() >= multi->curl_wake) {
		multi->curl_wake = 0;
		curl_multi_socket_action(multi->curl, CURL_SOCKET_TIMEOUT, 0, &running);
	}
}

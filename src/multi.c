#include "multi.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "db.h"
#include "log.h"

#define MULTI_EVENTS 256

static int multi_on_socket(CURL *easy, curl_socket_t socket, int what, void *user, void *known)
{
	struct multi *multi = user;
	struct epoll_event event = { .data.fd = socket };

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		epoll_ctl(multi->epoll_fd, EPOLL_CTL_DEL, socket, NULL);
		return 0;
	}
	event.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
	if (known && epoll_ctl(multi->epoll_fd, EPOLL_CTL_MOD, socket, &event) == 0)
		return 0;
	if (epoll_ctl(multi->epoll_fd, EPOLL_CTL_ADD, socket, &event) &&
	    (errno != EEXIST || epoll_ctl(multi->epoll_fd, EPOLL_CTL_MOD, socket, &event)))
		/* Its events never come: the call times out and is retried (an
		 * error returned here would abort the whole multi handle). */
		log_error("epoll_ctl: %s", strerror(errno));
	curl_multi_assign(multi->curl, socket, multi);   /* marks the socket as known */
	return 0;
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

void multi_close(struct multi *multi)
{
	if (multi->curl)
		curl_multi_cleanup(multi->curl);
	if (multi->epoll_fd > 0)
		close(multi->epoll_fd);
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
		int flags = (events[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
			(events[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
			(events[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);

		if (events[i].data.fd != multi->input_fd || !multi->input_watched)
			curl_multi_socket_action(multi->curl, events[i].data.fd, flags, &running);
	}
	if (multi->curl && multi->curl_wake && db_now() >= multi->curl_wake) {
		multi->curl_wake = 0;
		curl_multi_socket_action(multi->curl, CURL_SOCKET_TIMEOUT, 0, &running);
	}
}

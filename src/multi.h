/* libcurl's multi interface driven by epoll (curl_multi_socket_action): each
 * wake-up costs what its ready sockets cost, not a walk over every connection
 * in flight, which is what keeps hundreds of calls in flight cheap. The input
 * descriptor is watched on demand beside curl's sockets. */
#ifndef QRPOOL_MULTI_H
#define QRPOOL_MULTI_H

#include <curl/curl.h>

struct multi {
	CURLM *curl;              /* NULL when the run makes no calls */
	int epoll_fd;
	double curl_wake;         /* when curl wants its timeout action; 0: never */
	int input_fd;
	int input_watched;
	int input_pollable;       /* 0 for regular files: always readable, never watched */
};

/* Returns 0, or -1 (logged). `connections`: 0 for no curl at all. */
int multi_open(struct multi *multi, int input_fd, long connections);
void multi_close(struct multi *multi);

/* Waits until `wake` (unix seconds) at most for curl's sockets, and for the
 * input if `want_input`, and lets curl act on what happened. Completed
 * transfers are then read with curl_multi_info_read. */
void multi_wait(struct multi *multi, double wake, int want_input);

#endif

/* libcurl's multi interface driven by epoll (curl_multi_socket_action): each
 * wake-up costs what its ready sockets cost, not a walk over every connection
 * in flight, which is what keeps hundreds of calls in flight cheap. The input
 * descriptor is watched on demand beside curl's sockets.
 *
 * The calls are spread evenly over several multi handles ("shards") of at
 * most MULTI_SHARD_SLOTS calls each, every one with its own connection cache
 * (a connection is reused by later calls of its shard only):
 * curl 7.88 walks its whole cache when a transfer is removed (looking for a
 * connect-only connection to close) and the host's connections when one
 * starts (looking for an idle one), which with a thousand connections was a
 * tenth of qrpool-fetch's CPU time. The shards share their DNS cache and
 * TLS sessions. */
#ifndef QRPOOL_MULTI_H
#define QRPOOL_MULTI_H

#include <stddef.h>
#include <curl/curl.h>

#define MULTI_SHARD_SLOTS 64

struct multi_shard {
	CURLM *curl;
	size_t index;
	struct multi *multi;
	double wake;              /* when curl wants its timeout action (db_monotonic()); 0: never */
};

struct multi {
	struct multi_shard *shards;   /* none when the run makes no calls */
	size_t shard_count;
	size_t reading;           /* multi_info_read's place */
	CURLSH *share;
	unsigned *owner;          /* by socket: 1 + the shard that registered it, 0: none */
	size_t owner_size;
	int epoll_fd;
	int input_fd;
	int input_watched;
	int input_pollable;       /* 0 for regular files: always readable, never watched */
};

/* Returns 0, or -1 (logged). `slots`: the calls that may be in flight at
 * once, numbered 0 to slots - 1; 0 for no curl at all. */
int multi_open(struct multi *multi, int input_fd, long slots);
/* After every easy handle given to multi_share is cleaned up. */
void multi_close(struct multi *multi);

/* The multi handle that call slot `slot` is added to and removed from (NULL
 * when opened for no calls). */
CURLM *multi_handle(const struct multi *multi, size_t slot);
/* Makes an easy handle use the shared DNS cache and TLS sessions: 0 or -1. */
int multi_share(const struct multi *multi, CURL *easy);

/* Waits `wait` seconds at most (less when curl's own timers come first; 0 or
 * less: not at all) for curl's sockets, and for the input if `want_input`,
 * and lets curl act on what happened. Completed transfers are then read with
 * multi_info_read. */
void multi_wait(struct multi *multi, double wait, int want_input);
/* The next message of any shard (as curl_multi_info_read), or NULL once all
 * are read. */
CURLMsg *multi_info_read(struct multi *multi);

#endif

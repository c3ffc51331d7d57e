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
 * TLS sessions.
 *
 * A call's timeout is kept here, not by libcurl, and counts only the time
 * the caller was listening: in multi_wait, or between two of them for
 * MULTI_STALL at most. A longer time away (a thread held up waiting for a
 * locked DB, a blocking token request, a write to a slow reader) does not
 * count: answers that came in meanwhile wait in their sockets and are read,
 * where libcurl's own timeout, counted on the wall clock, would fail them
 * unread (and the calls, already paid for, would be made again). */
#ifndef QRPOOL_MULTI_H
#define QRPOOL_MULTI_H

#include <stddef.h>
#include <curl/curl.h>

#define MULTI_SHARD_SLOTS 64
#define MULTI_STALL 0.25          /* seconds away from multi_wait that still count as listening */
#define MULTI_NONE ((size_t)-1)

/* A call in flight, in the list of them oldest first (they share one timeout,
 * so the oldest is the first to time out). */
struct multi_call {
	double deadline;          /* on the listening clock */
	size_t prev, next;        /* slots, or MULTI_NONE */
	int listed;
};

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
	struct multi_call *calls; /* by slot */
	size_t oldest, newest;    /* the calls in flight: MULTI_NONE when none */
	double timeout;           /* a call's, in seconds of listening; 0: none */
	double listened;          /* the listening clock: seconds (see above) */
	double left_at;           /* when multi_wait last returned (db_monotonic()) */
	double stalled;           /* seconds away from it, in stretches longer than MULTI_STALL,
	                           * with a call in flight */
};

/* Returns 0, or -1 (logged). `slots`: the calls that may be in flight at
 * once, numbered 0 to slots - 1; 0 for no curl at all. `timeout`: a call's,
 * in seconds of listening (0: none; the easy handles must have no
 * CURLOPT_TIMEOUT of their own, which would count the wall clock). */
int multi_open(struct multi *multi, int input_fd, long slots, double timeout);
/* After every easy handle given to multi_share is cleaned up. */
void multi_close(struct multi *multi);

/* The multi handle that call slot `slot` is added to and removed from (NULL
 * when opened for no calls). */
CURLM *multi_handle(const struct multi *multi, size_t slot);
/* Makes an easy handle use the shared DNS cache and TLS sessions: 0 or -1. */
int multi_share(const struct multi *multi, CURL *easy);
/* Starts call slot `slot` (curl_multi_add_handle), its timeout running from
 * now. */
CURLMcode multi_add(struct multi *multi, size_t slot, CURL *easy);
/* Ends it, done or not (curl_multi_remove_handle); a slot not started is
 * let be. */
void multi_remove(struct multi *multi, size_t slot, CURL *easy);
/* The slot of a call past its timeout, to be ended (multi_remove) as timed
 * out, or MULTI_NONE. */
size_t multi_timed_out(const struct multi *multi);

/* Waits `wait` seconds at most (less when curl's own timers or a call's
 * timeout come first; 0 or less: not at all) for curl's sockets, and for the
 * input if `want_input`, and lets curl act on what happened. Completed
 * transfers are then read with multi_info_read, and timed out ones with
 * multi_timed_out. */
void multi_wait(struct multi *multi, double wait, int want_input);
/* The next message of any shard (as curl_multi_info_read), or NULL once all
 * are read. */
CURLMsg *multi_info_read(struct multi *multi);

#endif

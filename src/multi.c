#include "multi.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "db.h"
#include "log.h"

#define MULTI_EVENTS 256
#define MULTI_ROUNDS 8              /* of MULTI_EVENTS: more than the sockets of 1,024 calls */
#define MULTI_INPUT UINT32_MAX      /* the shard field of the input's epoll data */

static uint64_t multi_tag(uint32_t shard, int fd)
{
	return (uint64_t)shard << 32 | (uint32_t)fd;
}

/* Notes which shard registered `socket`: 0 or -1 (out of memory). */
static int multi_own(struct multi *multi, curl_socket_t socket, unsigned owner)
{
	if ((size_t)socket >= multi->owner_size) {
		size_t size = (size_t)socket * 2 + 64;
		unsigned *grown = realloc(multi->owner, size * sizeof *grown);

		if (!grown)
			return -1;
		memset(grown + multi->owner_size, 0, (size - multi->owner_size) * sizeof *grown);
		multi->owner = grown;
		multi->owner_size = size;
	}
	multi->owner[socket] = owner;
	return 0;
}

static int multi_on_socket(CURL *easy, curl_socket_t socket, int what, void *user, void *known)
{
	struct multi_shard *shard = user;
	struct multi *multi = shard->multi;
	unsigned owner = (unsigned)shard->index + 1;
	struct epoll_event event = { .data.u64 = multi_tag((uint32_t)shard->index, socket) };

	(void)easy;
	if (socket < 0)
		return 0;
	if (what == CURL_POLL_REMOVE) {
		/* Only its own registration: a number another shard has
		 * registered since is that shard's socket now. */
		if ((size_t)socket < multi->owner_size && multi->owner[socket] == owner) {
			epoll_ctl(multi->epoll_fd, EPOLL_CTL_DEL, socket, NULL);
			multi->owner[socket] = 0;
		}
		return 0;
	}
	event.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
	if (multi_own(multi, socket, owner))
		log_error("out of memory watching a socket");
	else if (known && epoll_ctl(multi->epoll_fd, EPOLL_CTL_MOD, socket, &event) == 0)
		return 0;
	else if (epoll_ctl(multi->epoll_fd, EPOLL_CTL_ADD, socket, &event) &&
	    (errno != EEXIST || epoll_ctl(multi->epoll_fd, EPOLL_CTL_MOD, socket, &event)))
		/* Its events never come: the call times out and is retried (an
		 * error returned here would abort the whole multi handle). */
		log_error("epoll_ctl: %s", strerror(errno));
	curl_multi_assign(shard->curl, socket, shard);   /* marks the socket as known */
	return 0;
}

static int multi_on_timer(CURLM *curl, long timeout_ms, void *user)
{
	struct multi_shard *shard = user;

	(void)curl;
	/* On the monotonic clock: a step back of the wall clock would hold
	 * libcurl's timeouts (a silent peer's call) that much longer. */
	shard->wake = timeout_ms < 0 ? 0 : db_monotonic() + (double)timeout_ms / 1000;
	return 0;
}

static int multi_open_shard(struct multi *multi, size_t index, long slots)
{
	struct multi_shard *shard = &multi->shards[index];

	shard->index = index;
	shard->multi = multi;
	if (!(shard->curl = curl_multi_init())) {
		log_error("libcurl: cannot create a multi handle");
		return -1;
	}
	/* Connections are kept and reused, up to one per call in flight. */
	curl_multi_setopt(shard->curl, CURLMOPT_MAX_TOTAL_CONNECTIONS, slots);
	curl_multi_setopt(shard->curl, CURLMOPT_MAXCONNECTS, slots);
	curl_multi_setopt(shard->curl, CURLMOPT_SOCKETFUNCTION, multi_on_socket);
	curl_multi_setopt(shard->curl, CURLMOPT_SOCKETDATA, shard);
	curl_multi_setopt(shard->curl, CURLMOPT_TIMERFUNCTION, multi_on_timer);
	curl_multi_setopt(shard->curl, CURLMOPT_TIMERDATA, shard);
	return 0;
}

int multi_open(struct multi *multi, int input_fd, long slots, double timeout)
{
	size_t count = (size_t)(slots + MULTI_SHARD_SLOTS - 1) / MULTI_SHARD_SLOTS;

	memset(multi, 0, sizeof *multi);
	multi->input_fd = input_fd;
	multi->input_pollable = 1;
	multi->oldest = multi->newest = MULTI_NONE;
	multi->timeout = timeout;
	multi->left_at = db_monotonic();
	multi->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (multi->epoll_fd < 0) {
		log_error("epoll_create1: %s", strerror(errno));
		return -1;
	}
	if (slots <= 0)
		return 0;
	if (!(multi->shards = calloc(count, sizeof *multi->shards)) ||
	    !(multi->calls = calloc((size_t)slots, sizeof *multi->calls)) ||
	    !(multi->share = curl_share_init()) ||
	    curl_share_setopt(multi->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK ||
	    curl_share_setopt(multi->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION)
			!= CURLSHE_OK) {
		log_error("libcurl: cannot share the DNS cache and TLS sessions");
		return -1;
	}
	multi->shard_count = count;
	/* Slot i goes to shard i % count: shard s has every count-th slot. */
	for (size_t i = 0; i < count; i++)
		if (multi_open_shard(multi, i, (long)(((size_t)slots - i + count - 1) / count)))
			return -1;
	return 0;
}

void multi_close(struct multi *multi)
{
	for (size_t i = 0; i < multi->shard_count; i++)
		if (multi->shards[i].curl)
			curl_multi_cleanup(multi->shards[i].curl);
	free(multi->shards);
	free(multi->calls);
	if (multi->share && curl_share_cleanup(multi->share) != CURLSHE_OK)
		log_error("libcurl: the shared DNS cache is still in use (an easy handle not cleaned up)");
	free(multi->owner);
	if (multi->epoll_fd > 0)
		close(multi->epoll_fd);
	memset(multi, 0, sizeof *multi);
}

CURLM *multi_handle(const struct multi *multi, size_t slot)
{
	return multi->shard_count ? multi->shards[slot % multi->shard_count].curl : NULL;
}

int multi_share(const struct multi *multi, CURL *easy)
{
	return curl_easy_setopt(easy, CURLOPT_SHARE, multi->share) == CURLE_OK ? 0 : -1;
}

/* The listening clock now, between two waits: the time since the last one
 * counts while it is short. */
static double multi_listening(const struct multi *multi)
{
	double away = db_monotonic() - multi->left_at;

	return away <= MULTI_STALL ? multi->listened + away : multi->listened;
}

CURLMcode multi_add(struct multi *multi, size_t slot, CURL *easy)
{
	struct multi_call *call = &multi->calls[slot];
	CURLMcode rc = curl_multi_add_handle(multi_handle(multi, slot), easy);

	if (rc != CURLM_OK)
		return rc;
	call->deadline = multi_listening(multi) + multi->timeout;
	call->prev = multi->newest;
	call->next = MULTI_NONE;
	call->listed = 1;
	if (multi->newest == MULTI_NONE)
		multi->oldest = slot;
	else
		multi->calls[multi->newest].next = slot;
	multi->newest = slot;
	return CURLM_OK;
}

void multi_remove(struct multi *multi, size_t slot, CURL *easy)
{
	struct multi_call *call = &multi->calls[slot];

	if (!call->listed)
		return;
	curl_multi_remove_handle(multi_handle(multi, slot), easy);
	if (call->prev == MULTI_NONE)
		multi->oldest = call->next;
	else
		multi->calls[call->prev].next = call->next;
	if (call->next == MULTI_NONE)
		multi->newest = call->prev;
	else
		multi->calls[call->next].prev = call->prev;
	call->listed = 0;
}

size_t multi_timed_out(const struct multi *multi)
{
	size_t oldest = multi->oldest;

	return multi->timeout > 0 && oldest != MULTI_NONE &&
		multi->calls[oldest].deadline <= multi->listened ? oldest : MULTI_NONE;
}

/* The input is watched only while wanted: level-triggered, a readable input
 * nobody reads would wake the loop at once, again and again. */
static void multi_watch_input(struct multi *multi, int want)
{
	struct epoll_event event = { .events = EPOLLIN,
		.data.u64 = multi_tag(MULTI_INPUT, multi->input_fd) };

	if (!multi->input_pollable || want == multi->input_watched)
		return;
	if (epoll_ctl(multi->epoll_fd, want ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, multi->input_fd,
			&event) == 0)
		multi->input_watched = want;
	else if (errno == EPERM)
		multi->input_pollable = 0;   /* a regular file: reads never wait */
}

void multi_wait(struct multi *multi, double wait, int want_input)
{
	struct epoll_event events[MULTI_EVENTS];
	double entered = db_monotonic(), now = entered;   /* (libcurl's wakes are monotonic) */
	int count, running, timeout_ms, rounds = 0;

	if (now - multi->left_at <= MULTI_STALL)
		multi->listened += now - multi->left_at;
	else if (multi->oldest != MULTI_NONE)   /* (away with no call in flight holds none up) */
		multi->stalled += now - multi->left_at;
	if (multi->timeout > 0 && multi->oldest != MULTI_NONE &&
	    multi->calls[multi->oldest].deadline - multi->listened < wait)
		wait = multi->calls[multi->oldest].deadline - multi->listened;
	multi_watch_input(multi, want_input);
	for (size_t i = 0; i < multi->shard_count; i++)
		if (multi->shards[i].wake && multi->shards[i].wake - now < wait)
			wait = multi->shards[i].wake - now;
	if (want_input && !multi->input_pollable)
		wait = 0;   /* a file has more to read now */
	timeout_ms = wait > 0 ? (int)(wait * 1000) + 1 : 0;
	/* Every socket ready is served before any timeout is judged (after a
	 * stall there may be more than one epoll_wait returns; the rounds are
	 * bounded, in case some stay ready). */
	do {
		count = epoll_wait(multi->epoll_fd, events, MULTI_EVENTS, timeout_ms);
		for (int i = 0; i < count; i++) {
			uint32_t shard = (uint32_t)(events[i].data.u64 >> 32);
			int flags = (events[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
				(events[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
				(events[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);

			if (shard < multi->shard_count)
				curl_multi_socket_action(multi->shards[shard].curl,
					(curl_socket_t)(uint32_t)events[i].data.u64, flags, &running);
		}
		timeout_ms = 0;
	} while (count == MULTI_EVENTS && ++rounds < MULTI_ROUNDS);
	now = db_monotonic();
	for (size_t i = 0; i < multi->shard_count; i++)
		if (multi->shards[i].wake && now >= multi->shards[i].wake) {
			multi->shards[i].wake = 0;
			curl_multi_socket_action(multi->shards[i].curl, CURL_SOCKET_TIMEOUT, 0,
				&running);
		}
	multi->left_at = db_monotonic();
	multi->listened += multi->left_at - entered;
}

CURLMsg *multi_info_read(struct multi *multi)
{
	int queued;

	for (; multi->reading < multi->shard_count; multi->reading++) {
		CURLMsg *message = curl_multi_info_read(multi->shards[multi->reading].curl, &queued);

		if (message)
			return message;
	}
	multi->reading = 0;
	return NULL;
}

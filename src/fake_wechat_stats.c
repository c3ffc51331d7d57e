/* What the fake WeChat server counts, and its per-minute quota.
 *
 * The quota works like WeChat's: per aligned window (index = floor(now_ms /
 * minute_ms), wall clock), the first `quota` getwxacodeunlimit calls that
 * pass the token checks are charged; later ones in that window get 45009 (or
 * 45011). Charged calls include those that then fail field checks or get an
 * injected fault: WeChat counts what reaches it, so clients must too.
 *
 * JSON served at GET /_stats and written to --stats-file at exit:
 * {
 *   "uptime_ms": N,
 *   "minute_ms": N, "quota_per_minute": N,
 *   "calls_total": N,            every getwxacodeunlimit request
 *   "ok_total": N,               of those, answered with a whole image
 *   "quota_violations": N,       windows in which more calls came than the quota
 *                                (the rest answered 45009/45011)
 *   "over_budget_attempts": N,   calls answered 45009/45011 (quota spent)
 *   "errcodes": {"40001": N, ...}  JSON errors of every endpoint, by errcode
 *   "endpoints": {"token"|"stable_token"|"getwxacodeunlimit":
 *                 {"requests": N, "ok": N, "errcodes": {...}}},
 *   "tokens_issued": {"classic": N, "stable": N, "stable_forced": N},
 *   "faults": {"busy": N, "http5xx": N, "truncate": N, "json_as_image": N, "errcode": N,
 *              "drop": N, "slow": N, "fail_after": N, "http_status": N, "empty": N,
 *              "token_errcode": N, "padded": N, "html": N, "not_image": N},
 *   "connections": {"total": N, "open": N, "max_concurrent": N},
 *   "not_found": N,              requests for unknown paths
 *   "windows": [{"index": N, "start_ms": N, "calls": N, "charged": N, "ok": N,
 *                "quota_refused": N}, ...]   windows with calls, oldest first
 * }
 * "calls" of a window counts the calls that passed the token checks;
 * charged + quota_refused = calls. */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_wechat.h"
#include "log.h"

static const char *const fake_endpoint_names[FAKE_EP_COUNT] = {
	[FAKE_EP_TOKEN] = "token",
	[FAKE_EP_STABLE_TOKEN] = "stable_token",
	[FAKE_EP_CODE] = "getwxacodeunlimit",
};

static const char *const fake_fault_names[FAKE_FAULT_COUNT] = {
	[FAKE_FAULT_NONE] = NULL,
	[FAKE_FAULT_BUSY] = "busy",
	[FAKE_FAULT_HTTP5XX] = "http5xx",
	[FAKE_FAULT_TRUNCATE] = "truncate",
	[FAKE_FAULT_JSON_AS_IMAGE] = "json_as_image",
	[FAKE_FAULT_DROP] = "drop",
	[FAKE_FAULT_SLOW] = "slow",
	[FAKE_FAULT_FAIL_AFTER] = "fail_after",
	[FAKE_FAULT_ERRCODE] = "errcode",
	[FAKE_FAULT_HTTP_STATUS] = "http_status",
	[FAKE_FAULT_EMPTY] = "empty",
	[FAKE_FAULT_TOKEN_ERRCODE] = "token_errcode",
	[FAKE_FAULT_PADDED] = "padded",
	[FAKE_FAULT_HTML] = "html",
	[FAKE_FAULT_NOT_IMAGE] = "not_image",
};

static const char *const fake_token_kind_names[FAKE_TOKEN_KIND_COUNT] = {
	[FAKE_TOKEN_CLASSIC] = "classic",
	[FAKE_TOKEN_STABLE] = "stable",
	[FAKE_TOKEN_STABLE_FORCED] = "stable_forced",
};

void fake_stats_init(struct fake_stats *stats, const struct fake_options *options)
{
	memset(stats, 0, sizeof *stats);
	pthread_mutex_init(&stats->lock, NULL);
	stats->minute_ms = options->minute_ms;
	stats->quota = options->quota;
	stats->started_ms = fake_now_ms();
	if (!strcmp(options->quota_window, "rolling") && options->quota > 0 &&
	    !(stats->recent = calloc((size_t)options->quota, sizeof *stats->recent)))
		log_error("out of memory for the rolling quota window: windows aligned instead");
}

void fake_stats_destroy(struct fake_stats *stats)
{
	free(stats->windows);
	free(stats->recent);
	pthread_mutex_destroy(&stats->lock);
}

uint64_t fake_stats_request(struct fake_stats *stats, enum fake_endpoint endpoint)
{
	uint64_t number;

	pthread_mutex_lock(&stats->lock);
	number = ++stats->endpoints[endpoint].requests;
	pthread_mutex_unlock(&stats->lock);
	return number;
}

void fake_stats_answer(struct fake_stats *stats, enum fake_endpoint endpoint, enum fake_error error)
{
	pthread_mutex_lock(&stats->lock);
	if (error == FAKE_OK)
		stats->endpoints[endpoint].ok++;
	else
		stats->endpoints[endpoint].errors[error]++;
	pthread_mutex_unlock(&stats->lock);
}

void fake_stats_fault(struct fake_stats *stats, enum fake_fault fault)
{
	pthread_mutex_lock(&stats->lock);
	stats->faults[fault]++;
	pthread_mutex_unlock(&stats->lock);
}

void fake_stats_not_found(struct fake_stats *stats)
{
	pthread_mutex_lock(&stats->lock);
	stats->not_found++;
	pthread_mutex_unlock(&stats->lock);
}

void fake_stats_connection(struct fake_stats *stats, int opened)
{
	pthread_mutex_lock(&stats->lock);
	if (opened) {
		stats->connections_total++;
		if (++stats->connections_open > stats->connections_max)
			stats->connections_max = stats->connections_open;
	} else {
		stats->connections_open--;
	}
	pthread_mutex_unlock(&stats->lock);
}

/* The window `index`, created in order if new; NULL when out of memory.
 * Searched from the newest: calls nearly always land in the last window. */
static struct fake_window *fake_stats_window(struct fake_stats *stats, int64_t index)
{
	size_t at = stats->window_count;

	while (at > 0 && stats->windows[at - 1].index >= index) {
		if (stats->windows[at - 1].index == index)
			return &stats->windows[at - 1];
		at--;
	}
	if (stats->window_count == stats->window_capacity) {
		size_t capacity = stats->window_capacity ? stats->window_capacity * 2 : 64;
		struct fake_window *grown = realloc(stats->windows, capacity * sizeof *grown);

		if (!grown)
			return NULL;
		stats->windows = grown;
		stats->window_capacity = capacity;
	}
	memmove(&stats->windows[at + 1], &stats->windows[at],
		(stats->window_count - at) * sizeof *stats->windows);
	stats->window_count++;
	memset(&stats->windows[at], 0, sizeof *stats->windows);
	stats->windows[at].index = index;
	return &stats->windows[at];
}

/* --quota-window rolling: charged while fewer than `quota` calls were charged
 * in the minute before now_ms or after it (a slow call's arrival time comes
 * after quicker calls' that arrived later): the oldest of the latest `quota`
 * is older. The ring is kept in time order, its oldest at recent_next once
 * it is full, so a call charged out of order does not hide an older one. */
static int fake_stats_charge_rolling(struct fake_stats *stats, int64_t now_ms)
{
	size_t quota = (size_t)stats->quota, at = stats->recent_next;

	if (stats->recent_count == quota && stats->recent[at] > now_ms - stats->minute_ms)
		return 0;
	stats->recent[at] = now_ms;   /* (over the oldest, when full) */
	stats->recent_next = (at + 1) % quota;
	if (stats->recent_count < quota)
		stats->recent_count++;
	for (size_t moved = 1; moved < stats->recent_count; moved++) {
		size_t before = (at + quota - 1) % quota;
		int64_t earlier = stats->recent[before];

		if (earlier <= now_ms)
			break;
		stats->recent[before] = now_ms;
		stats->recent[at] = earlier;
		at = before;
	}
	return 1;
}

int fake_stats_charge(struct fake_stats *stats, int64_t now_ms, int64_t *index)
{
	struct fake_window *window;
	int charged = 1;

	*index = now_ms / stats->minute_ms;
	pthread_mutex_lock(&stats->lock);
	window = fake_stats_window(stats, *index);
	if (window) {
		window->calls++;
		charged = window->charged < (uint64_t)stats->quota;
		if (stats->recent)
			charged = fake_stats_charge_rolling(stats, now_ms);
		if (charged)
			window->charged++;
		else
			window->quota_refused++;
	}
	pthread_mutex_unlock(&stats->lock);
	if (!window)
		log_error("out of memory counting quota windows");
	return charged;
}

void fake_stats_image(struct fake_stats *stats, int64_t index)
{
	struct fake_window *window;

	pthread_mutex_lock(&stats->lock);
	window = fake_stats_window(stats, index);
	if (window)
		window->ok++;
	pthread_mutex_unlock(&stats->lock);
}

/* {"errcode": count} for the errors counted in `errors`, adding them to `sum`.
 * Two errors of one errcode (45009 a minute's or a day's) share its count. */
static json_t *fake_stats_errcodes(const uint64_t errors[FAKE_ERR_COUNT],
	uint64_t sum[FAKE_ERR_COUNT])
{
	json_t *object = json_object();

	for (int e = FAKE_OK + 1; object && e < FAKE_ERR_COUNT; e++) {
		char key[16];
		json_int_t before;

		if (!errors[e])
			continue;
		if (sum)
			sum[e] += errors[e];
		snprintf(key, sizeof key, "%d", fake_error_code((enum fake_error)e));
		before = json_integer_value(json_object_get(object, key));
		if (json_object_set_new(object, key, json_integer(before + (json_int_t)errors[e]))) {
			json_decref(object);
			object = NULL;
		}
	}
	return object;
}

static json_t *fake_stats_endpoints(const struct fake_stats *stats, uint64_t sum[FAKE_ERR_COUNT])
{
	json_t *object = json_object();

	for (int e = 0; object && e < FAKE_EP_COUNT; e++) {
		const struct fake_endpoint_stats *counts = &stats->endpoints[e];
		json_t *entry = json_pack("{s:I,s:I,s:o}", "requests", (json_int_t)counts->requests,
			"ok", (json_int_t)counts->ok, "errcodes", fake_stats_errcodes(counts->errors, sum));

		if (json_object_set_new(object, fake_endpoint_names[e], entry)) {
			json_decref(object);
			object = NULL;
		}
	}
	return object;
}

/* {"name": count} over a table of names; NULL names are skipped. */
static json_t *fake_stats_named(const char *const *names, const uint64_t *counts, int count)
{
	json_t *object = json_object();

	for (int i = 0; object && i < count; i++)
		if (names[i] && json_object_set_new(object, names[i], json_integer((json_int_t)counts[i]))) {
			json_decref(object);
			object = NULL;
		}
	return object;
}

static json_t *fake_stats_windows(const struct fake_stats *stats, uint64_t *violations,
	uint64_t *refused)
{
	json_t *array = json_array();

	for (size_t i = 0; array && i < stats->window_count; i++) {
		const struct fake_window *w = &stats->windows[i];

		/* Asked for more than the quota (charging itself stops there). */
		*violations += w->calls > (uint64_t)stats->quota;
		*refused += w->quota_refused;
		if (json_array_append_new(array, json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}",
				"index", (json_int_t)w->index, "start_ms", (json_int_t)(w->index * stats->minute_ms),
				"calls", (json_int_t)w->calls, "charged", (json_int_t)w->charged,
				"ok", (json_int_t)w->ok, "quota_refused", (json_int_t)w->quota_refused))) {
			json_decref(array);
			array = NULL;
		}
	}
	return array;
}

static json_t *fake_stats_build(const struct fake_stats *stats,
	const uint64_t issued[FAKE_TOKEN_KIND_COUNT])
{
	uint64_t sum[FAKE_ERR_COUNT] = { 0 }, violations = 0, refused = 0;
	json_t *endpoints = fake_stats_endpoints(stats, sum);
	json_t *windows = fake_stats_windows(stats, &violations, &refused);
	const struct fake_endpoint_stats *code = &stats->endpoints[FAKE_EP_CODE];

	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o,s:o,s:o,s:o,s:{s:I,s:I,s:I},s:I,s:o}",
		"uptime_ms", (json_int_t)(fake_now_ms() - stats->started_ms),
		"minute_ms", (json_int_t)stats->minute_ms, "quota_per_minute", (json_int_t)stats->quota,
		"calls_total", (json_int_t)code->requests, "ok_total", (json_int_t)code->ok,
		"quota_violations", (json_int_t)violations, "over_budget_attempts", (json_int_t)refused,
		"errcodes", fake_stats_errcodes(sum, NULL), "endpoints", endpoints,
		"tokens_issued", fake_stats_named(fake_token_kind_names, issued, FAKE_TOKEN_KIND_COUNT),
		"faults", fake_stats_named(fake_fault_names, stats->faults, FAKE_FAULT_COUNT),
		"connections", "total", (json_int_t)stats->connections_total,
		"open", (json_int_t)stats->connections_open,
		"max_concurrent", (json_int_t)stats->connections_max,
		"not_found", (json_int_t)stats->not_found, "windows", windows);
}

char *fake_stats_json(struct fake_stats *stats, struct fake_tokens *tokens)
{
	uint64_t issued[FAKE_TOKEN_KIND_COUNT];
	json_t *root;
	char *text = NULL;

	fake_tokens_issued(tokens, issued);
	pthread_mutex_lock(&stats->lock);
	root = fake_stats_build(stats, issued);
	pthread_mutex_unlock(&stats->lock);
	if (root)
		text = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
	json_decref(root);
	return text;
}

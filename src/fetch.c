#include "fetch.h"

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli.h"
#include "db.h"
#include "exitcode.h"
#include "http.h"
#include "idset.h"
#include "input.h"
#include "interrupt.h"
#include "log.h"
#include "multi.h"
#include "progress.h"
#include "quota.h"
#include "rid.h"
#include "store.h"
#include "token.h"
#include "wechat.h"

#define FETCH_BATCH_MAX 512         /* outcomes committed per transaction */
#define FETCH_BATCH_AGE 0.25        /* seconds an outcome may wait for its commit */
#define FETCH_BACKOFF_FIRST 0.25    /* seconds before the first retry, doubled each time */
#define FETCH_BACKOFF_MAX 30.0
#define FETCH_RETRY_AFTER_MAX 300.0
/* Calls failing one after another (an outage): no new call for a pause, then
 * one call as a probe, the pause doubling while probes fail. */
#define FETCH_OUTAGE_PAUSE_FIRST 2.0
#define FETCH_OUTAGE_PAUSE_MAX 60.0
#define FETCH_OUTAGE_GIVE_UP 5      /* quota minutes of outage a run without a deadline waits out */
#define FETCH_WAIT_MAX 0.25         /* the loop looks at signals and deadlines this often */
#define FETCH_HOLD_IDLE_MAX 1.0     /* seconds reserved calls may stay unused before going back */
#define FETCH_PASS_BUFFER 65536     /* bytes of passed-on lines kept while reading a batch */

enum fetch_stop {
	FETCH_RUNNING,
	FETCH_DEADLINE,     /* no new calls; the input is still read to pass other items on */
	FETCH_FAILING,      /* WeChat keeps failing: as a deadline */
	FETCH_SIGNAL,       /* no new calls, no more input; calls in flight get a grace time */
	FETCH_FATAL,        /* an internal or I/O error: as a signal */
};

/* One planned item of a wechat pool, from its line to its outcome. */
struct fetch_job {
	struct fetch_job *next;     /* in the ready queue */
	int64_t code_id;
	size_t pool;
	int calls, failures, token_retried;
	double due;                 /* not before (backoff; db_monotonic) */
	int errcode;
	char error[sizeof ((struct wechat_answer *)0)->message];
	char request_id[RID_SCENE_MAX + 1];
	char line[];                /* the item line, printed once stored */
};

struct fetch_transfer {
	CURL *easy;
	struct fetch_job *job;      /* NULL when idle */
	struct http_body body;
	char request[2048];         /* the JSON body, alive until the transfer ends */
	char token[WECHAT_TOKEN_MAX + 1];   /* the token it was sent with... */
	uint64_t token_generation;          /* ... as adopted then (the same text may come back) */
	uint64_t target_generation;         /* the token in its request target (direct calls) */
	int64_t sent_ms;              /* wall clock: the quota window it was sent in */
	int64_t sent_monotonic_ms;    /* for its answer time */
	struct quota_slot charged;  /* the quota windows it was charged to */
	struct fetcher *fetcher;
	int requests;               /* times libcurl sent it (more than once: resent) */
};

/* Scene refusals (40129, 40169) in a row in one pool, with no code of it
 * fetched between, that stop the pool. Ids are minted valid (WECHAT.md: "should
 * never happen"), and WeChat's 40169 also means "the data is not json string":
 * a run of them says the calls reach WeChat mangled, not that the ids are bad. */
#define FETCH_SCENE_STREAK 20

struct fetch_pool {
	char *body;                 /* the request body without the scene */
	int stopped;
	/* Items refused as scenes since the pool's last code: judged when the
	 * streak ends (a code: failed) or reaches FETCH_SCENE_STREAK (left planned). */
	struct fetch_job *refused[FETCH_SCENE_STREAK];
	int refused_count;
};

/* Items refused for good that are each said as a warning. */
#define FETCH_REFUSALS_SAID 10

struct fetch_counts {
	int64_t read, passed, jobs, failed, left, calls, retried, gave_up, quota_refused, bad;
	int64_t resent;   /* calls libcurl sent again on a fresh connection */
};

struct fetcher {
	const struct fetch_options *options;
	const struct config *config;
	FILE *out;
	struct db db;
	struct store store;
	struct idset seen;            /* the codes of the lines taken so far */
	struct store_batch batch;
	/* Intervals are measured on the monotonic clock (db_monotonic), so a
	 * step of the wall clock in the night neither stretches nor cuts them:
	 * batch_since, flush_after, the jobs' due, outage_since, probe_at,
	 * stop_at, quota_used_at and options->for_until. The token's expiry,
	 * the quota's windows and --until are times of day: db_now. */
	double batch_since;
	double flush_after;           /* the DB was locked: no flush before then (but at the end) */
	struct quota quota;
	struct token_cache token;
	struct input input;
	struct multi multi;
	CURLU *url;                   /* the calls' URL, parsed once (see fetch_url) */
	uint64_t url_generation;      /* ... the token's generation it carries, if any */
	int direct;                   /* no proxy: the token goes in each call's request target */
	char *url_path;               /* ... after this path */
	struct curl_slist *headers;
	struct fetch_transfer *transfers;
	struct fetch_transfer **idle;
	size_t idle_count, active, lookahead;
	struct fetch_job *ready_head, *ready_tail;
	size_t ready_count;
	struct fetch_job **delayed;   /* a min-heap on due */
	size_t delayed_count, delayed_capacity;
	struct fetch_pool *pools;
	struct fetch_counts counts;
	int consecutive_failures, failure_limit;
	double outage_since;          /* 0, or when calls started failing one after another */
	double outage_pause, probe_at; /* no call before probe_at, then one */
	int probe_out;                /* that one is in flight */
	int token_outage;             /* the failure at hand: a new token refused */
	int image_noted;              /* the kinds of images unlike the request said (once a run) */
	enum fetch_stop stop;
	double stop_at;
	int status;                   /* the worst exit status so far */
	double wake_at;               /* a call waits for the token or the quota until then (db_now) */
	double quota_used_at;         /* when a call last took quota */
	int64_t spent_window;         /* the last window logged as spent */
	int spent_windows;            /* windows answered 45009 since a code was last fetched */
	uint64_t random;              /* backoff jitter */
	int pending_output;           /* passed-through lines not flushed yet */
	struct progress progress;
};

static void fetch_stop_now(struct fetcher *f)
{
	if (f->stop != FETCH_SIGNAL && f->stop != FETCH_FATAL)
		f->stop_at = db_monotonic();
	f->stop = FETCH_FATAL;
}

/* Internal and I/O errors stop the run; others (a DB busy for too long while
 * reserving quota) are tried again by the loop. */
static void fetch_fail(struct fetcher *f, int status)
{
	f->status = exitcode_worst(f->status, status);
	if (status == EXIT_INTERNAL || status == EXIT_IO)
		fetch_stop_now(f);
}

static double fetch_random_unit(struct fetcher *f)
{
	f->random ^= f->random << 13;
	f->random ^= f->random >> 7;
	f->random ^= f->random << 17;
	return (double)(f->random >> 11) / 9007199254740992.0;
}

/* --- job queues: a FIFO of ready jobs, a heap of jobs waiting out a backoff --- */

static void fetch_ready_push(struct fetcher *f, struct fetch_job *job, int front)
{
	job->next = NULL;
	if (!f->ready_head)
		f->ready_head = f->ready_tail = job;
	else if (front) {
		job->next = f->ready_head;
		f->ready_head = job;
	} else {
		f->ready_tail->next = job;
		f->ready_tail = job;
	}
	f->ready_count++;
}

static struct fetch_job *fetch_ready_pop(struct fetcher *f)
{
	struct fetch_job *job = f->ready_head;

	if (job) {
		f->ready_head = job->next;
		if (!f->ready_head)
			f->ready_tail = NULL;
		f->ready_count--;
	}
	return job;
}

static int fetch_delay_push(struct fetcher *f, struct fetch_job *job)
{
	size_t i;

	if (f->delayed_count == f->delayed_capacity) {
		size_t capacity = f->delayed_capacity ? f->delayed_capacity * 2 : 256;
		struct fetch_job **heap = realloc(f->delayed, capacity * sizeof *heap);
		if (!heap)
			return EXIT_INTERNAL;
		f->delayed = heap;
		f->delayed_capacity = capacity;
	}
	for (i = f->delayed_count++; i > 0 && f->delayed[(i - 1) / 2]->due > job->due; i = (i - 1) / 2)
		f->delayed[i] = f->delayed[(i - 1) / 2];
	f->delayed[i] = job;
	return 0;
}

static struct fetch_job *fetch_delay_pop(struct fetcher *f)
{
	struct fetch_job *top = f->delayed[0], *last = f->delayed[--f->delayed_count];
	size_t i = 0, child;

	while ((child = 2 * i + 1) < f->delayed_count) {
		if (child + 1 < f->delayed_count && f->delayed[child + 1]->due < f->delayed[child]->due)
			child++;
		if (last->due <= f->delayed[child]->due)
			break;
		f->delayed[i] = f->delayed[child];
		i = child;
	}
	if (f->delayed_count)
		f->delayed[i] = last;
	return top;
}

static void fetch_promote_due(struct fetcher *f, double mono)
{
	while (f->delayed_count && f->delayed[0]->due <= mono)
		fetch_ready_push(f, fetch_delay_pop(f), 0);
}

/* --- the deadline: --until on the wall clock, --for on the monotonic one --- */

static int fetch_has_deadline(const struct fetcher *f)
{
	return f->options->until > 0 || f->options->for_until > 0;
}

/* Seconds left before the earlier deadline (<= 0: reached); HUGE_VAL: none. */
static double fetch_deadline_in(const struct fetcher *f, double now, double mono)
{
	double left = HUGE_VAL;

	if (f->options->until > 0)
		left = f->options->until - now;
	if (f->options->for_until > 0 && f->options->for_until - mono < left)
		left = f->options->for_until - mono;
	return left;
}

/* --- outcomes ------------------------------------------------------------- */

static void fetch_batch_note(struct fetcher *f)
{
	if (f->batch.count == 0)
		f->batch_since = db_monotonic();
}

/* The job ends this run still planned; its calls and last error are recorded. */
static void fetch_leave(struct fetcher *f, struct fetch_job *job)
{
	int status = 0;

	if (job->calls) {
		fetch_batch_note(f);
		status = store_add_attempt(&f->batch, job->code_id, job->calls, job->errcode,
			*job->error ? job->error : NULL);
	}
	f->counts.left++;
	free(job);
	if (status)
		fetch_fail(f, status);
}

static void fetch_note_error(struct fetch_job *job, const struct wechat_answer *answer)
{
	job->errcode = answer->errcode;
	snprintf(job->error, sizeof job->error, "%s", answer->message);
}

/* WeChat has failed for long with no deadline given: the run stops (75). */
static void fetch_give_up(struct fetcher *f, const char *what)
{
	log_error("%s, and no deadline (--until, --for) says how long to keep trying: no new calls, "
		"items stay planned", what);
	f->stop = FETCH_FAILING;
	f->status = exitcode_worst(f->status, EXIT_TEMPFAIL);
}

/* A transient failure. After failure_limit in a row, WeChat (or the way to
 * it) is taken for down: no new call for a pause, then one call as a probe,
 * the pause doubling while the probes fail, until a call succeeds (calls then
 * resume) or the deadline comes. A run without a deadline gives up after
 * FETCH_OUTAGE_GIVE_UP quota minutes (5 minutes against WeChat). A brief
 * outage no longer costs the rest of the night. */
static void fetch_outage_note(struct fetcher *f, const struct wechat_answer *answer)
{
	double now = db_monotonic();

	if (++f->consecutive_failures < f->failure_limit || f->stop != FETCH_RUNNING)
		return;
	if (!f->outage_since) {
		char where[320];

		f->outage_since = now;
		f->outage_pause = FETCH_OUTAGE_PAUSE_FIRST;
		if (f->token_outage)
			log_warn("WeChat refused the new token too, before any call with it succeeded (%s): "
				"no new call for %.0f s, then one to see whether WeChat takes tokens again",
				answer->message, f->outage_pause);
		else
			log_warn("%d calls in a row to %s failed (last: %s): no new call for %.0f s, then "
				"one to see whether WeChat answers again", f->consecutive_failures, http_where(
				f->config->wechat.api_base, where, sizeof where), answer->message,
				f->outage_pause);
	} else if (f->probe_out) {
		f->outage_pause = f->outage_pause * 2 < FETCH_OUTAGE_PAUSE_MAX ?
			f->outage_pause * 2 : FETCH_OUTAGE_PAUSE_MAX;
		log_info("WeChat still failing (%s): the next try in %.0f s", answer->message,
			f->outage_pause);
	}
	f->probe_out = 0;
	f->probe_at = now + f->outage_pause;
	if (!fetch_has_deadline(f) && now - f->outage_since >=
	    FETCH_OUTAGE_GIVE_UP * (double)f->config->wechat.quota_minute_ms / 1000) {
		char what[sizeof ((struct wechat_answer *)0)->message + 100];

		snprintf(what, sizeof what, "calls have failed for %.0f s (last: %s)",
			now - f->outage_since, answer->message);
		fetch_give_up(f, what);
	}
}

static void fetch_retry(struct fetcher *f, struct fetch_job *job, const struct wechat_answer *answer,
	double retry_after)
{
	double delay;
	int exponent = job->failures < 16 ? job->failures : 16;

	job->failures++;
	fetch_note_error(job, answer);
	fetch_outage_note(f, answer);
	if (job->failures > f->config->wechat.retries) {
		log_warn("%s: giving up for this run after %d failed calls (last: %s); it stays planned",
			job->request_id, job->failures, answer->message);
		f->counts.gave_up++;
		fetch_leave(f, job);
		return;
	}
	f->counts.retried++;
	log_info("%s: %s; retrying", job->request_id, answer->message);
	/* Jittered (half to all of the delay), so the retries of a burst do not
	 * come back together. */
	delay = FETCH_BACKOFF_FIRST * (double)(1 << exponent);
	delay = (delay < FETCH_BACKOFF_MAX ? delay : FETCH_BACKOFF_MAX) * (0.5 + fetch_random_unit(f) / 2);
	if (retry_after > delay)
		delay = retry_after < FETCH_RETRY_AFTER_MAX ? retry_after : FETCH_RETRY_AFTER_MAX;
	job->due = db_monotonic() + delay;
	if (fetch_delay_push(f, job)) {
		fetch_leave(f, job);
		fetch_fail(f, EXIT_INTERNAL);
	}
}

static void fetch_judge_refused(struct fetcher *f, size_t pool, int failed);

static void fetch_stop_pool(struct fetcher *f, size_t pool, const char *why)
{
	if (f->pools[pool].stopped)
		return;
	f->pools[pool].stopped = 1;
	f->status = exitcode_worst(f->status, EXIT_UPSTREAM);
	log_error("pool %s stopped: WeChat %s; its items stay planned", f->config->pools[pool].name, why);
	fetch_judge_refused(f, pool, 0);   /* (its refusals not judged: planned with the rest) */
}

/* Bad credentials, or an account refused (48001, 45063), concern the appid:
 * every wechat pool stops, none spending a call more to learn the same. */
static void fetch_stop_all_pools(struct fetcher *f, const char *what, const char *why)
{
	char message[300];

	snprintf(message, sizeof message, "refused %s of appid %s (%s)", what,
		f->config->wechat.appid, why);
	for (size_t i = 0; i < f->config->pool_count; i++)
		if (f->config->pools[i].source == POOL_WECHAT)
			fetch_stop_pool(f, i, message);
}

static void fetch_quota_refused(struct fetcher *f, struct fetch_transfer *transfer)
{
	int64_t window = transfer->sent_ms / f->config->wechat.quota_minute_ms;
	int status = quota_spent(&f->quota, transfer->sent_ms);

	f->counts.quota_refused++;
	if (status)
		fetch_fail(f, status);
	if (window == f->spent_window)
		return;
	log_warn("WeChat answered that the minute quota is used up: no calls until the next minute");
	f->spent_window = window;
	/* Spent by others minute after minute (the online services, another
	 * appid user): without a deadline, given up as an outage is. */
	if (++f->spent_windows >= FETCH_OUTAGE_GIVE_UP && !fetch_has_deadline(f) &&
	    f->stop == FETCH_RUNNING) {
		char what[120];

		snprintf(what, sizeof what, "WeChat's minute quota was used up (45009 or 45011) in %d "
			"minutes with no code fetched since", f->spent_windows);
		fetch_give_up(f, what);
	}
}

static void fetch_store(struct fetcher *f, struct fetch_transfer *transfer,
	const struct wechat_answer *answer)
{
	struct fetch_job *job = transfer->job;
	int status;

	fetch_batch_note(f);
	token_worked(&f->token, transfer->token_generation);
	if (answer->note_kinds & ~f->image_noted) {
		f->image_noted |= answer->note_kinds;
		log_warn("%s: WeChat's image %s: stored all the same, as the rest will be (said once a "
			"run; check the codes print as the posters need)", job->request_id, answer->note);
	}
	f->spent_windows = 0;
	fetch_judge_refused(f, job->pool, 1);   /* (WeChat takes this pool's calls) */
	status = store_add_image(&f->batch, job->code_id, job->line, answer->content_type,
		transfer->body.data, answer->image_size, job->calls);
	free(job);
	if (status)
		fetch_fail(f, status);
}

/* An item WeChat refused for good, judged so: marked failed. */
static void fetch_fail_item(struct fetcher *f, struct fetch_job *job)
{
	int status;

	/* Said one by one up to a point: a 1% refusal rate would otherwise put
	 * hundreds of lines into the night's mail. The rest at -v. */
	if (f->counts.failed == FETCH_REFUSALS_SAID && !log_enabled(LOG_INFO))
		log_warn("more items refused for good are not each said (-v says them): the summary "
			"counts them, and qrpool-pending --state failed lists them with their errcode");
	if (f->counts.failed < FETCH_REFUSALS_SAID)
		log_warn("%s: refused by WeChat for good: %s", job->request_id, job->error);
	else
		log_info("%s: refused by WeChat for good: %s", job->request_id, job->error);
	fetch_batch_note(f);
	status = store_add_failure(&f->batch, job->code_id, job->calls, job->errcode, job->error);
	f->counts.failed++;
	/* A partial failure is never 0: the item is gone from the pipe. */
	f->status = exitcode_worst(f->status, EXIT_DATA);
	free(job);
	if (status)
		fetch_fail(f, status);
}

/* The pool's scene refusals since its last code, judged: failed items after
 * all (a code of the pool came after them, or the run came to its end), or
 * left planned (the pool stopped, the run was stopped). */
static void fetch_judge_refused(struct fetcher *f, size_t pool, int failed)
{
	struct fetch_pool *p = &f->pools[pool];

	for (int i = 0; i < p->refused_count; i++)
		if (failed)
			fetch_fail_item(f, p->refused[i]);
		else
			fetch_leave(f, p->refused[i]);
	p->refused_count = 0;
}

/* A scene refusal (40129, 40169): the item is failed (WECHAT.md), unless
 * FETCH_SCENE_STREAK of them come in a row with no code of the pool between:
 * then the pool stops as for a wrong page (69), those items left planned. */
static void fetch_refuse_item(struct fetcher *f, struct fetch_job *job,
	const struct wechat_answer *answer)
{
	struct fetch_pool *p = &f->pools[job->pool];
	char why[sizeof job->error + 320];

	fetch_note_error(job, answer);
	if (p->stopped) {   /* in flight at the stop: planned as the pool's others */
		fetch_leave(f, job);
		return;
	}
	p->refused[p->refused_count++] = job;
	if (p->refused_count < FETCH_SCENE_STREAK)
		return;
	snprintf(why, sizeof why, "refused %d request ids in a row as scenes, with no code fetched "
		"between (%s): the ids are minted valid, so something changes the calls on the way (a "
		"proxy or gateway rewriting their body?) or WeChat's rules changed, and none is marked failed",
		FETCH_SCENE_STREAK, job->error);
	fetch_stop_pool(f, job->pool, why);   /* (and the refused ones left planned) */
}

/* An answer that is not a transient failure (an image, a refusal, the quota
 * or the token): WeChat answers, and an outage is over. */
static void fetch_outage_over(struct fetcher *f, const struct wechat_answer *answer)
{
	if (f->outage_since)
		log_warn("WeChat answers again (%s), after %.0f s of failed calls: calls resume",
			answer->action == WECHAT_STORE ? "an image" : answer->message,
			db_monotonic() - f->outage_since);
	f->outage_since = 0;
	f->probe_out = 0;
	f->consecutive_failures = 0;
}

static void fetch_token_refused(struct fetcher *f, struct fetch_transfer *transfer,
	const struct wechat_answer *answer)
{
	struct fetch_job *job = transfer->job;
	/* (asked before token_refused, which may drop the token) */
	int current = transfer->token_generation == f->token.generation;
	int suspect = current && f->token.suspect;
	int status = token_refused(&f->token, transfer->token, transfer->token_generation);

	/* Locked: the token is dropped here all the same; the next read of the
	 * DB row skips it as the refused one. */
	if (status && status != EXIT_TEMPFAIL)
		fetch_fail(f, status);
	/* One refresh and one retry for a token refused (WECHAT.md). Beyond
	 * that, and for the token that replaced a refused one refused too before
	 * any call with it succeeded, a counted failure: calls refused whatever
	 * the token are an outage (its pause, and a run without a deadline gives
	 * up), where a refresh a call would be a storm on the token endpoint. */
	if (suspect || job->token_retried) {
		if (suspect && f->consecutive_failures < f->failure_limit - 1)
			f->consecutive_failures = f->failure_limit - 1;
		f->token_outage = suspect;
		fetch_retry(f, job, answer, 0);
		f->token_outage = 0;
		return;
	}
	if (current)
		fetch_outage_over(f, answer);   /* WeChat answers (about our token) */
	f->probe_out = 0;   /* (a probe answered about an older token: the next goes) */
	job->token_retried = 1;
	fetch_note_error(job, answer);
	fetch_ready_push(f, job, 1);
}

/* Acts on one answer as WECHAT.md's table says. */
static void fetch_act(struct fetcher *f, struct fetch_transfer *transfer,
	const struct wechat_answer *answer, double retry_after)
{
	struct fetch_job *job = transfer->job;

	if (answer->action != WECHAT_RETRY && answer->action != WECHAT_TOKEN)
		fetch_outage_over(f, answer);   /* (a token refusal: fetch_token_refused decides) */
	switch (answer->action) {
	case WECHAT_STORE:
		fetch_store(f, transfer, answer);
		break;
	case WECHAT_RETRY:
		fetch_retry(f, job, answer, retry_after);
		break;
	case WECHAT_TOKEN:
		fetch_token_refused(f, transfer, answer);
		break;
	case WECHAT_QUOTA:
		fetch_quota_refused(f, transfer);
		fetch_ready_push(f, job, 1);   /* not the item's fault: no failure counted */
		break;
	case WECHAT_ITEM_FAILED:
		fetch_refuse_item(f, job, answer);
		break;
	case WECHAT_POOL_STOP:
		fetch_note_error(job, answer);
		fetch_stop_pool(f, job->pool, answer->message);
		fetch_leave(f, job);
		break;
	case WECHAT_ACCOUNT_STOP:
		fetch_note_error(job, answer);
		fetch_stop_all_pools(f, "the account", answer->message);
		fetch_leave(f, job);
		break;
	case WECHAT_INTERNAL:
		log_error("WeChat answered %s: a bug in qrpool-fetch; stopping", answer->message);
		fetch_note_error(job, answer);
		fetch_leave(f, job);
		fetch_fail(f, EXIT_INTERNAL);
		break;
	}
}

static void fetch_answer(struct fetcher *f, struct fetch_transfer *transfer, CURLcode result)
{
	struct wechat_answer answer;
	curl_off_t retry_after = 0;
	const char *content_type = NULL;
	long http_status = 0;

	if (result != CURLE_OK) {
		memset(&answer, 0, sizeof answer);
		answer.action = WECHAT_RETRY;
		http_error(&transfer->body, result, answer.message, sizeof answer.message);
	} else {
		int64_t now_ms = quota_now_ms();
		quota_observe(&f->quota, now_ms, quota_monotonic_ms() - transfer->sent_monotonic_ms);
		quota_answered(&f->quota, &transfer->charged, now_ms);
		curl_easy_getinfo(transfer->easy, CURLINFO_RESPONSE_CODE, &http_status);
		curl_easy_getinfo(transfer->easy, CURLINFO_CONTENT_TYPE, &content_type);
		curl_easy_getinfo(transfer->easy, CURLINFO_RETRY_AFTER, &retry_after);
		wechat_classify(http_status, content_type, transfer->body.data, transfer->body.size,
			f->config->pools[transfer->job->pool].width, &answer);
	}
	fetch_act(f, transfer, &answer, (double)retry_after);
}

/* --- calls ------------------------------------------------------------------ */

static void fetch_release(struct fetcher *f, struct fetch_transfer *transfer)
{
	multi_remove(&f->multi, (size_t)(transfer - f->transfers), transfer->easy);
	transfer->job = NULL;
	explicit_bzero(transfer->token, sizeof transfer->token);
	f->idle[f->idle_count++] = transfer;
	f->active--;
}

/* The calls done, and those past their timeout (see multi.h: not libcurl's). */
static void fetch_collect(struct fetcher *f)
{
	CURLMsg *message;
	size_t slot;

	while ((message = multi_info_read(&f->multi))) {
		struct fetch_transfer *transfer;
		char *pointer = NULL;

		if (message->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(message->easy_handle, CURLINFO_PRIVATE, &pointer);
		transfer = (struct fetch_transfer *)pointer;
		fetch_answer(f, transfer, message->data.result);
		fetch_release(f, transfer);
	}
	while ((slot = multi_timed_out(&f->multi)) != MULTI_NONE) {
		/* (libcurl did not end it: what its error buffer holds, if
		 * anything, is of a step it got past, not of the timeout.) */
		f->transfers[slot].body.error[0] = '\0';
		fetch_answer(f, &f->transfers[slot], CURLE_OPERATION_TIMEDOUT);
		fetch_release(f, &f->transfers[slot]);
	}
}

/* The calls' URL as a URL handle they share: libcurl takes its parts as
 * they are, where a URL string would be parsed and written back out (byte by
 * byte, in libcurl 7.88) for every call. Without a proxy the handle has no
 * query: the token goes in each call's request target (fetch_target), so
 * that libcurl has no long query to copy and print again per call either.
 * Through a proxy, which may need the whole URL, the token is in the
 * handle's query, made again when the token changes. NULL when it cannot be
 * made (logged). */
static CURLU *fetch_url(struct fetcher *f)
{
	char url[WECHAT_TOKEN_MAX + 1024];
	int made = !f->url;
	CURLUcode rc;

	if (f->url && (f->direct || f->url_generation == f->token.generation))
		return f->url;
	if (made && !(f->url = curl_url())) {
		log_error("libcurl: cannot make a URL handle");
		return NULL;
	}
	snprintf(url, sizeof url, "%s/wxa/getwxacodeunlimit%s%s", f->config->wechat.api_base,
		f->direct ? "" : "?access_token=", f->direct ? "" : f->token.token);
	/* (the flags CURLOPT_URL parses with) */
	rc = curl_url_set(f->url, CURLUPART_URL, url, CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME);
	explicit_bzero(url, sizeof url);
	if (rc == CURLUE_OK && f->direct && !f->url_path)   /* (sent as libcurl would) */
		rc = curl_url_get(f->url, CURLUPART_PATH, &f->url_path, CURLU_URLENCODE);
	if (rc != CURLUE_OK && !made) {
		/* The handle is as it was, and the calls in flight keep it. */
		log_error("cannot put the new access token in the calls' URL: %s",
			curl_url_strerror(rc));
		return NULL;
	}
	if (rc != CURLUE_OK) {
		char shown[256];

		log_error("%s: wechat.api_base %s: %s", f->config->path, config_url_shown(
			f->config->wechat.api_base, shown, sizeof shown), curl_url_strerror(rc));
		curl_url_cleanup(f->url);
		f->url = NULL;
		return NULL;
	}
	f->url_generation = f->token.generation;
	return f->url;
}

/* A direct call's request target, the URL's path and the token, set on its
 * handle when that last carried another token. 0, or -1 if libcurl refused. */
static int fetch_target(struct fetcher *f, struct fetch_transfer *transfer)
{
	char target[WECHAT_TOKEN_MAX + 1024];
	CURLcode rc;

	if (!f->direct || transfer->target_generation == f->token.generation)
		return 0;
	snprintf(target, sizeof target, "%s?access_token=%s", f->url_path, f->token.token);
	rc = curl_easy_setopt(transfer->easy, CURLOPT_REQUEST_TARGET, target);
	explicit_bzero(target, sizeof target);
	if (rc != CURLE_OK)
		return -1;
	transfer->target_generation = f->token.generation;
	return 0;
}

/* libcurl is about to send a call's request: again, when the kept-alive
 * connection it first went out on died before any answer (it then sends it
 * on a fresh one, unasked). WeChat may have counted the first: the second
 * is paid for in the quota, and counted among the calls. */
static int fetch_on_request(void *data, char *primary_ip, char *local_ip, int primary_port,
	int local_port)
{
	struct fetch_transfer *transfer = data;
	struct fetcher *f = transfer->fetcher;

	(void)primary_ip; (void)local_ip; (void)primary_port; (void)local_port;
	if (transfer->requests++ == 0 || !transfer->job)
		return CURL_PREREQFUNC_OK;
	quota_resent(&f->quota, quota_now_ms());
	transfer->job->calls++;
	f->counts.calls++;
	f->counts.resent++;
	log_debug("%s: the connection died before an answer: libcurl sends the call again on a "
		"fresh one (counted in the quota)", transfer->job->request_id);
	return CURL_PREREQFUNC_OK;
}

static int fetch_start(struct fetcher *f, struct fetch_job *job, int64_t now_ms)
{
	struct fetch_transfer *transfer = f->idle[--f->idle_count];
	CURLU *url = fetch_url(f);
	CURLMcode rc = CURLM_OK;
	int targeted = url ? fetch_target(f, transfer) : -1;
	int length = wechat_request_body(f->pools[job->pool].body, job->request_id, transfer->request,
		sizeof transfer->request);

	strcpy(transfer->token, f->token.token);
	transfer->token_generation = f->token.generation;
	curl_easy_setopt(transfer->easy, CURLOPT_CURLU, url);
	curl_easy_setopt(transfer->easy, CURLOPT_POSTFIELDS, transfer->request);
	curl_easy_setopt(transfer->easy, CURLOPT_POSTFIELDSIZE, (long)length);
	curl_easy_setopt(transfer->easy, CURLOPT_PRIVATE, (char *)transfer);
	transfer->body.size = 0;
	transfer->job = job;
	transfer->requests = 0;
	transfer->sent_ms = now_ms;
	transfer->sent_monotonic_ms = quota_monotonic_ms();
	transfer->charged = f->quota.slot;
	f->active++;
	if (!url || targeted || length < 0 || (rc = multi_add(&f->multi,
			(size_t)(transfer - f->transfers), transfer->easy)) != CURLM_OK) {
		log_error("%s: cannot start a call: %s", job->request_id, !url ? "no URL (see above)" :
			targeted ? "libcurl refused the request target" : length < 0 ?
			"the request body does not fit" : curl_multi_strerror(rc));
		fetch_release(f, transfer);
		fetch_ready_push(f, job, 1);
		f->quota.held++;   /* no call went out: its quota goes back with the rest */
		return EXIT_INTERNAL;
	}
	job->calls++;
	f->counts.calls++;
	if (log_enabled(LOG_DEBUG)) {   /* the call's URL, as WeChat sees it, masked */
		char full[WECHAT_TOKEN_MAX + 1024], masked[sizeof full], shown[sizeof full];

		snprintf(full, sizeof full, "%s/wxa/getwxacodeunlimit?access_token=%s",
			f->config->wechat.api_base, f->token.token);
		wechat_mask_url(full, masked, sizeof masked);
		explicit_bzero(full, sizeof full);
		log_debug("%s: POST %s (pool %s)", job->request_id, config_url_shown(masked, shown,
			sizeof shown), f->config->pools[job->pool].name);
	}
	return 0;
}

/* The token row or the quota ledger stayed locked for busy_timeout: no call
 * now, and no failure either (every item may still be done). Returns 1. The
 * second counts from now, after that wait (not from the loop's start), so
 * the calls in flight get it to be heard. */
static int fetch_db_locked(struct fetcher *f, const char *what)
{
	log_warn("the staging DB is locked by another process: %s; trying again in 1 s", what);
	f->wake_at = db_now() + 1.0;
	return 1;
}

/* The token and one call of quota. Returns 0, 1 (wait until f->wake_at) or
 * an exit code. */
static int fetch_may_call(struct fetcher *f, double now, double mono)
{
	int status = token_get(&f->token, now, mono);

	if (status == 1) {
		f->wake_at = now + (f->token.retry_at - mono);   /* (retry_at is monotonic) */
		return 1;
	}
	if (status == EXIT_UPSTREAM) {
		fetch_stop_all_pools(f, "the credentials", f->token.failure.message);
		return 1;
	}
	if (status == TOKEN_GAVE_UP && fetch_has_deadline(f)) {
		/* The deadline bounds the run: a token service back in ten
		 * minutes still leaves the rest of the night. */
		f->wake_at = now + (f->token.retry_at - mono);
		return 1;
	}
	if (status == EXIT_TEMPFAIL)
		return fetch_db_locked(f, "no token read");
	if (status) {
		/* Without a deadline, as when calls keep failing; an unreadable
		 * secret or a DB error, too: no new calls (the ones in flight
		 * finish), the rest stays planned. */
		log_error("no access token: %s: no new calls, items stay planned",
			f->token.failure.message);
		f->stop = FETCH_FAILING;
		return status == TOKEN_GAVE_UP ? EXIT_TEMPFAIL : status;
	}
	status = quota_take(&f->quota, quota_now_ms());
	if (status == 1)
		f->wake_at = (double)f->quota.retry_at_ms / 1000;
	if (status == EXIT_TEMPFAIL)
		return fetch_db_locked(f, "no quota taken");
	return status;
}

/* Calls reserved but left unused for a while (every item waits for a retry,
 * the token, or more input) go back to the ledger for other runs; otherwise
 * they would be lost to all until this run's slot changes. */
static void fetch_release_idle_quota(struct fetcher *f, double mono)
{
	double idle = (double)f->config->wechat.quota_minute_ms / 1000 / 20;
	int status;

	if (idle > FETCH_HOLD_IDLE_MAX)
		idle = FETCH_HOLD_IDLE_MAX;
	if (!f->quota.held || mono - f->quota_used_at < idle)
		return;
	log_debug("giving back %d unused calls of quota", f->quota.held);
	status = quota_release(&f->quota, quota_now_ms());
	if (status == EXIT_TEMPFAIL) {
		/* A locked ledger: they go back at the next try (as long again
		 * from now: each try waits busy_timeout), or at the end. */
		log_warn("the staging DB is locked by another process: %d unused calls of quota not "
			"given back yet", f->quota.held);
		f->quota_used_at = db_monotonic();
	} else if (status) {
		fetch_fail(f, status);
	}
}

static void fetch_check_stop(struct fetcher *f);

static void fetch_start_calls(struct fetcher *f)
{
	double now = db_now(), mono = db_monotonic();
	int status, started = 0;

	f->wake_at = 0;
	fetch_promote_due(f, mono);
	while (f->stop == FETCH_RUNNING && f->idle_count && f->ready_head) {
		if (f->pools[f->ready_head->pool].stopped) {
			fetch_leave(f, fetch_ready_pop(f));
			continue;
		}
		/* An outage: the calls in flight end first, then one at a time. */
		if (f->outage_since && (f->probe_out || f->active || mono < f->probe_at)) {
			/* (the calls in flight wake the loop as they end) */
			f->wake_at = now + (f->active ? FETCH_WAIT_MAX : f->probe_at - mono);
			break;
		}
		if (started && (!token_cached(&f->token, now, mono) ||
				quota_needs_ledger(&f->quota, quota_now_ms()))) {
			/* The calls queued so far go on the wire first: a wait for the
			 * DB's lock or the token here would send them later, perhaps
			 * in a window their charge did not cover. */
			f->wake_at = now;
			break;
		}
		if ((status = fetch_may_call(f, now, mono)) == 1)
			break;
		if (!status && db_monotonic() - mono > FETCH_WAIT_MAX) {
			/* A token refresh took a while: the deadline or a signal
			 * may have come meanwhile. */
			fetch_check_stop(f);
			now = db_now();
			mono = db_monotonic();
			if (f->stop != FETCH_RUNNING) {
				f->quota.held++;   /* the call taken goes back with the rest */
				break;
			}
		}
		if (!status)
			status = fetch_start(f, fetch_ready_pop(f), quota_now_ms());
		if (status) {
			fetch_fail(f, status);
			break;
		}
		started = 1;
		f->probe_out = f->outage_since != 0;
		f->quota_used_at = mono;
	}
	fetch_release_idle_quota(f, mono);
}

/* --- input ------------------------------------------------------------------ */

/* Input is read when the queue is down to half the lookahead, then up to the
 * whole: lines come in batches, each looked up in one read transaction. */
static int fetch_wants_input_below(const struct fetcher *f, size_t queued)
{
	if (f->stop == FETCH_SIGNAL || f->stop == FETCH_FATAL || input_done(&f->input))
		return 0;
	/* After a deadline the rest is read only to pass other items on. */
	return f->stop != FETCH_RUNNING || f->ready_count + f->delayed_count < queued;
}

static int fetch_wants_input(const struct fetcher *f)
{
	return fetch_wants_input_below(f, f->lookahead / 2);
}

static int fetch_pass(struct fetcher *f, const struct item *item)
{
	if (item_write(f->out, item))
		return cli_stdout_failed();
	f->counts.passed++;
	f->pending_output = 1;
	return 0;
}

static int fetch_queue(struct fetcher *f, const struct item *item, int64_t code_id, size_t pool)
{
	struct fetch_job *job = calloc(1, sizeof *job + item_line_size(item));
	size_t length = strlen(item->request_id);

	if (!job)
		return EXIT_INTERNAL;
	job->code_id = code_id;
	job->pool = pool;
	/* (copied, not printed: this runs for every code; calloc ended it) */
	memcpy(job->request_id, item->request_id, length < sizeof job->request_id ?
		length : sizeof job->request_id - 1);
	item_line_copy(item, job->line);
	f->counts.jobs++;
	fetch_ready_push(f, job, 0);
	return 0;
}

static void fetch_bad_line(struct fetcher *f, const struct item *item, const char *fmt,
	const char *a, const char *b)
{
	char why[256];

	snprintf(why, sizeof why, fmt, a, b);
	log_line_error("%s:%ld: %s; line skipped", f->input.name, item->line_number, why);
	f->counts.bad++;
}

static int fetch_take_item(struct fetcher *f, const struct item *item)
{
	const struct pool_config *pool;
	struct code_row row;
	int status;

	f->counts.read++;
	if ((status = store_lookup(&f->store, item->request_id, &row)) > 1)
		return status;
	if (status == 1) {
		fetch_bad_line(f, item, "unknown request id '%s'%s", item->request_id,
			db_unknown_id_hint(&f->db));
		return 0;
	}
	if (strcmp(row.pool, item->pool)) {
		fetch_bad_line(f, item, "the staging DB has this request id in pool '%s', not '%s'", row.pool,
			item->pool);
		return 0;
	}
	if (!(pool = config_pool(f->config, row.pool))) {
		fetch_bad_line(f, item, "pool '%s' is not in the configuration%s", row.pool, "");
		return 0;
	}
	/* A repeat would be fetched twice (both copies planned), or printed twice. */
	if ((status = idset_add(&f->seen, row.id)) <= 0) {
		if (status < 0)
			return EXIT_INTERNAL;
		fetch_bad_line(f, item, "request id '%s' was listed before in this input%s", item->request_id,
			" (taken once)");
		return 0;
	}
	if (pool->source != POOL_WECHAT || row.state != STATE_PLANNED)
		return fetch_pass(f, item);
	if (f->stop != FETCH_RUNNING || f->pools[pool - f->config->pools].stopped) {
		f->counts.left++;
		return 0;
	}
	return fetch_queue(f, item, row.id, (size_t)(pool - f->config->pools));
}

static void fetch_read_input(struct fetcher *f)
{
	FILE *out = f->out;
	char *passed = NULL;
	size_t passed_size = 0;
	struct item item;
	int filled = 0, status, reading;

	if (!fetch_wants_input(f))
		return;
	/* One snapshot for the batch's lookups, not one per line. Lines passed
	 * on meanwhile are kept in memory and written after it: a write blocked
	 * by a slow next stage must not hold the snapshot, which would stop
	 * every checkpoint of the staging DB. */
	reading = db_exec(&f->db, "BEGIN") == 0;
	if (reading && !(f->out = open_memstream(&passed, &passed_size)))
		f->out = out;
	while (fetch_wants_input_below(f, f->lookahead) &&
	       (f->out == out || ftell(f->out) < FETCH_PASS_BUFFER)) {
		if (input_next(&f->input, &item)) {
			if ((status = fetch_take_item(f, &item)))
				fetch_fail(f, status);
			continue;
		}
		if (filled || f->input.eof)
			break;
		if (input_fill(&f->input))
			fetch_fail(f, EXIT_IO);
		filled = 1;
	}
	if (f->out != out) {
		fclose(f->out);
		f->out = out;
	}
	if (reading && (status = db_commit(&f->db)))
		fetch_fail(f, status);
	if (passed_size && fwrite(passed, 1, passed_size, out) != passed_size)
		fetch_fail(f, cli_stdout_failed());
	free(passed);
	if (input_done(&f->input) && !f->progress.total)
		f->progress.total = f->counts.jobs;
}

/* --- the loop --------------------------------------------------------------- */

static void fetch_flush(struct fetcher *f, int force)
{
	int status = 0;

	if (f->batch.count && (force || ((f->batch.count >= FETCH_BATCH_MAX ||
	    db_monotonic() - f->batch_since >= FETCH_BATCH_AGE) && db_monotonic() >= f->flush_after))) {
		int64_t images = f->batch.unrecorded_images, failures = f->batch.unrecorded_failures;

		/* At the end a locked DB is waited out a few times, then the
		 * batch is lost (its codes stay planned, to fetch again). */
		for (int tries = force ? 3 : 1;
		     (status = store_flush(&f->store, &f->batch, f->out)) == STORE_BUSY && --tries;)
			;
		images = f->batch.unrecorded_images - images;
		failures = f->batch.unrecorded_failures - failures;
		if (images || failures)   /* (the DB's error is said) */
			log_error("%lld fetched and %lld refused codes were not committed; they stay "
				"planned for a rerun", (long long)images, (long long)failures);
		if (status == STORE_BUSY && !force) {
			log_warn("the staging DB is locked by another process: %zu outcomes wait for "
				"their commit", f->batch.count);
			/* Each try blocks for busy_timeout: let the calls in flight be
			 * served in between. */
			f->flush_after = db_monotonic() + 1.0;
			status = 0;
		} else if (status == STORE_BUSY) {
			log_error("the staging DB stayed locked: %zu outcomes not recorded (their codes "
				"stay planned)", f->batch.count);
			store_let_go(&f->batch);   /* (counted for the summary) */
			status = EXIT_TEMPFAIL;
		}
	}
	else if (f->pending_output && fflush(f->out)) {
		status = cli_stdout_failed();
	}
	if (!f->batch.count)
		f->pending_output = 0;
	if (status) {
		/* The batch is lost (its codes stay planned): do not fetch more.
		 * After a signal that is the stop (the next stage stopped too). */
		fetch_fail(f, status);
		if (status == EXIT_TEMPFAIL && interrupt_requested())
			fetch_check_stop(f);
		else
			fetch_stop_now(f);
	}
}

static void fetch_check_stop(struct fetcher *f)
{
	double mono = db_monotonic();

	if (interrupt_requested() && f->stop != FETCH_SIGNAL && f->stop != FETCH_FATAL) {
		log_info("signal %d: no new calls; waiting up to %.0f s for %zu calls in flight "
			"(the same signal again cuts them)",
			interrupt_requested(), f->options->grace_s, f->active);
		f->stop = FETCH_SIGNAL;
		f->stop_at = mono;
		f->status = exitcode_worst(f->status, EXIT_TEMPFAIL);
	}
	if (f->stop == FETCH_RUNNING && fetch_deadline_in(f, db_now(), mono) <= 0) {
		log_info("deadline reached: no new calls; %zu in flight finish", f->active);
		f->stop = FETCH_DEADLINE;
	}
}

/* Calls still in flight when the grace time after a signal is over are cut. */
static void fetch_abort_transfers(struct fetcher *f)
{
	for (size_t i = 0; i < (size_t)f->config->wechat.concurrency && f->transfers; i++) {
		struct fetch_transfer *transfer = &f->transfers[i];
		if (!transfer->job)
			continue;
		snprintf(transfer->job->error, sizeof transfer->job->error, "interrupted");
		fetch_leave(f, transfer->job);
		fetch_release(f, transfer);
	}
}

static int fetch_finished(struct fetcher *f)
{
	int stopping = f->stop == FETCH_SIGNAL || f->stop == FETCH_FATAL;

	if (stopping && f->active &&
	    (db_monotonic() - f->stop_at >= f->options->grace_s || interrupt_insisted()))
		fetch_abort_transfers(f);
	if (f->active || fetch_wants_input(f))
		return 0;
	return f->stop != FETCH_RUNNING || (!f->ready_count && !f->delayed_count && input_done(&f->input));
}

/* Seconds to wait at most, from `now` (wall clock) and `mono` (monotonic)
 * read at one moment: each time is measured against its own clock. */
static double fetch_next_wait(const struct fetcher *f, double now, double mono)
{
	double wait = FETCH_WAIT_MAX, deadline = fetch_deadline_in(f, now, mono);

	if (f->stop == FETCH_RUNNING && f->idle_count && f->ready_head && f->wake_at - now < wait)
		wait = f->wake_at - now;
	if (f->stop == FETCH_RUNNING && f->idle_count && f->delayed_count &&
	    f->delayed[0]->due - mono < wait)
		wait = f->delayed[0]->due - mono;
	if (f->batch.count) {
		double due = f->batch_since + FETCH_BATCH_AGE;

		if (due < f->flush_after)
			due = f->flush_after;
		if (due - mono < wait)
			wait = due - mono;
	}
	if (f->stop == FETCH_RUNNING && deadline < wait)
		wait = deadline;
	return wait;
}

static void fetch_wait(struct fetcher *f)
{
	multi_wait(&f->multi, fetch_next_wait(f, db_now(), db_monotonic()), fetch_wants_input(f));
}

static void fetch_show_progress(struct fetcher *f)
{
	char extra[96];

	if (!f->progress.enabled)
		return;
	if (f->outage_since)
		snprintf(extra, sizeof extra, "WeChat failing for %.0f s, %zu in flight",
			db_monotonic() - f->outage_since, f->active);
	else if (!f->config->has_wechat)
		snprintf(extra, sizeof extra, "no wechat pools: items passed on");
	else
		snprintf(extra, sizeof extra, "quota %lld/%d this minute, %zu in flight",
			(long long)quota_taken_now(&f->quota, quota_now_ms()), f->quota.budget, f->active);
	progress_update(&f->progress, f->batch.stored + f->counts.failed, extra);
}

static void fetch_loop(struct fetcher *f)
{
	for (;;) {
		fetch_check_stop(f);
		fetch_read_input(f);
		fetch_start_calls(f);
		if (fetch_finished(f))
			break;
		fetch_wait(f);
		fetch_collect(f);
		fetch_flush(f, 0);
		fetch_show_progress(f);
	}
}

/* --- setup and the end of a run ---------------------------------------------- */

static int fetch_open_transfers(struct fetcher *f)
{
	size_t count = (size_t)f->config->wechat.concurrency;

	f->direct = !http_proxy_applies(f->config->wechat.api_base);
	f->transfers = calloc(count, sizeof *f->transfers);
	f->idle = calloc(count, sizeof *f->idle);
	f->headers = curl_slist_append(NULL, "Content-Type: application/json");
	if (!f->transfers || !f->idle || !f->headers || multi_open(&f->multi, f->input.fd, (long)count,
			(double)f->config->wechat.timeout_ms / 1000))
		return EXIT_INTERNAL;
	for (size_t i = 0; i < count; i++) {
		struct fetch_transfer *transfer = &f->transfers[i];

		transfer->easy = curl_easy_init();
		if (!transfer->easy || http_setup(transfer->easy, &f->config->wechat, &transfer->body) ||
		    /* (timed by multi instead: the time fetch listens) */
		    curl_easy_setopt(transfer->easy, CURLOPT_TIMEOUT_MS, 0L) != CURLE_OK ||
		    multi_share(&f->multi, transfer->easy) ||
		    curl_easy_setopt(transfer->easy, CURLOPT_HTTPHEADER, f->headers) != CURLE_OK ||
		    curl_easy_setopt(transfer->easy, CURLOPT_PREREQFUNCTION, fetch_on_request) != CURLE_OK ||
		    curl_easy_setopt(transfer->easy, CURLOPT_PREREQDATA, transfer) != CURLE_OK)
			return EXIT_INTERNAL;
		transfer->fetcher = f;
		f->idle[f->idle_count++] = transfer;
	}
	return 0;
}

static int fetch_open_pools(struct fetcher *f)
{
	f->pools = calloc(f->config->pool_count, sizeof *f->pools);
	if (!f->pools)
		return EXIT_INTERNAL;
	for (size_t i = 0; i < f->config->pool_count; i++) {
		const struct pool_config *pool = &f->config->pools[i];

		if (pool->source != POOL_WECHAT)
			continue;
		if (!(f->pools[i].body = wechat_pool_body(pool)))
			return EXIT_INTERNAL;
		/* Checked here, not at the first call: a run would take quota for
		 * nothing and end with 70 on a setting. */
		if (strlen(f->pools[i].body) + RID_SCENE_MAX + sizeof "{\"scene\":\"\"," - 1
				> sizeof f->transfers->request) {
			log_error("%s: pool '%s': page is too long (%zu bytes): the request to WeChat "
				"would not fit in %zu bytes", f->config->path, pool->name, strlen(pool->page),
				sizeof f->transfers->request);
			return EXIT_CONFIG;
		}
	}
	return 0;
}

static int fetch_open(struct fetcher *f, const struct fetch_options *options,
	const struct config *config, int in_fd, FILE *out)
{
	const struct wechat_config *w = &config->wechat;
	int status;

	memset(f, 0, sizeof *f);
	f->options = options;
	f->config = config;
	f->out = out;
	f->random = (uint64_t)getpid() << 32 ^ (uint64_t)(db_now() * 1e6) ^ 0x9E3779B97F4A7C15u;
	f->lookahead = (size_t)w->concurrency * 2 + 64;
	f->failure_limit = w->concurrency * 4 > 100 ? w->concurrency * 4 : 100;
	f->spent_window = -1;
	input_init(&f->input, in_fd, "stdin");
	progress_init(&f->progress, 0);
	if ((status = db_open_or_create(&f->db, config->db_path, config->busy_timeout_ms)))
		return status;
	if ((status = db_stream_images(&f->db)) ||
	    (status = store_open(&f->store, &f->db)) || (status = db_run_start(&f->db, "fetch")) ||
	    (status = fetch_open_pools(f)))
		return status;
	if (!config->has_wechat)
		return multi_open(&f->multi, in_fd, 0, 0) ? EXIT_INTERNAL : 0;
	if ((status = quota_open(&f->quota, &f->db, w->appid, config_wechat_budget(config),
			w->quota_minute_ms)) ||
	    (status = token_open(&f->token, &f->db, config)))
		return status;
	return fetch_open_transfers(f);
}

static void fetch_abandon_queued(struct fetcher *f)
{
	/* Scene refusals with no code of their pool after them: failed when the
	 * run came to its end (the input's, or the deadline), as WECHAT.md
	 * says; after a stop (a signal, WeChat failing, an error) the streak
	 * was cut short, not judged: planned, for the rerun to judge. */
	for (size_t i = 0; f->pools && i < f->config->pool_count; i++)
		fetch_judge_refused(f, i, f->stop == FETCH_RUNNING || f->stop == FETCH_DEADLINE);
	while (f->ready_head)
		fetch_leave(f, fetch_ready_pop(f));
	while (f->delayed_count)
		fetch_leave(f, fetch_delay_pop(f));
}

static void fetch_close(struct fetcher *f)
{
	for (size_t i = 0; f->transfers && i < (size_t)f->config->wechat.concurrency; i++) {
		if (f->transfers[i].easy)
			curl_easy_cleanup(f->transfers[i].easy);
		http_body_free(&f->transfers[i].body);
	}
	if (f->multi.epoll_fd > 0)
		multi_close(&f->multi);
	curl_url_cleanup(f->url);   /* (after the calls that used it) */
	curl_free(f->url_path);
	curl_slist_free_all(f->headers);
	free(f->transfers);
	free(f->idle);
	free(f->delayed);
	for (size_t i = 0; f->pools && i < f->config->pool_count; i++)
		free(f->pools[i].body);
	free(f->pools);
	if (f->token.db)
		token_close(&f->token);
	if (f->quota.db)
		quota_close(&f->quota, 0);   /* (fetch_run gave back what was held) */
	store_batch_free(&f->batch);
	if (f->store.db)
		store_close(&f->store);
	idset_free(&f->seen);
	input_free(&f->input);
	db_close(&f->db);
}

static double fetch_cpu_seconds(void)
{
	struct rusage usage;

	getrusage(RUSAGE_SELF, &usage);
	return (double)usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 +
		(double)usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6;
}

static void fetch_summary(struct fetcher *f, double started)
{
	static const char *const endings[] = { "done", "deadline reached", "WeChat kept failing",
		"interrupted", "stopped by an error" };
	const struct fetch_counts *c = &f->counts;
	double cpu = fetch_cpu_seconds(), elapsed = db_monotonic() - started;
	int64_t stored = f->batch.stored, lost_failed = f->batch.unrecorded_failures;
	/* A batch a failed flush let go left its codes planned, refused ones too. */
	int64_t left = c->left + f->batch.unrecorded_images + lost_failed;
	char line[1000], unread[128] = "", resent[80] = "", twice[160] = "", held[112] = "";

	/* The counts are of the items read: after a stop, those not read yet
	 * stay as they were too (so many more planned than "left planned"). */
	if (!input_done(&f->input))
		snprintf(unread, sizeof unread, "; the input after line %ld was not read (its items stay "
			"as they were)", f->input.line_number);
	if (c->resent)
		snprintf(resent, sizeof resent, " (%lld sent again by libcurl on a fresh connection)",
			(long long)c->resent);
	/* Two runs over the same codes (a resume typed beside a fill): each
	 * called WeChat for them, one stored them. */
	if (f->batch.skipped)
		snprintf(twice, sizeof twice, " (and %lld fetched by another run meanwhile: called "
			"twice, not printed; resume by hand under the fills' lock)",
			(long long)f->batch.skipped);
	/* Time away from the calls (their timeouts do not count it): a long
	 * one explains a slow run. */
	if (f->multi.stalled >= 1)
		snprintf(held, sizeof held, "; held up %.1f s away from its calls (a locked staging "
			"DB, a token request, a slow next stage)", f->multi.stalled);
	snprintf(line, sizeof line, "%s: fetched %lld%s, failed %lld, left planned %lld "
		"(%lld gave up after retries), passed through %lld, bad lines %lld; %lld calls%s, "
		"%lld retried, %lld quota refusals; %.1f s, %.0f codes/s, cpu %.1f us per code%s%s",
		f->stop || !f->status ? endings[f->stop] : "input read to its end", (long long)stored,
		twice, (long long)(c->failed - lost_failed), (long long)left,
		(long long)c->gave_up, (long long)c->passed, (long long)(c->bad + f->input.bad_lines),
		(long long)c->calls, resent, (long long)c->retried, (long long)c->quota_refused, elapsed,
		elapsed > 0 ? (double)stored / elapsed : 0, stored ? cpu * 1e6 / (double)stored : 0,
		held, unread);
	if (f->status || f->batch.skipped)
		log_warn("%s", line);
	else
		log_info("%s", line);
}

int fetch_run(const struct fetch_options *options, const struct config *config, int in_fd,
	FILE *out)
{
	struct fetcher f;
	double started = db_monotonic();
	int status = fetch_open(&f, options, config, in_fd, out), drain = status != 0;
	long long buffered = 0;

	if (!status) {
		fetch_loop(&f);
		fetch_abort_transfers(&f);
		fetch_abandon_queued(&f);
		fetch_flush(&f, 1);
		if (f.quota.db && (status = quota_end(&f.quota, quota_now_ms())) == EXIT_TEMPFAIL)
			/* No item is lost by it: other runs lose those calls, and
			 * only until the window ends (a past one gets nothing back). */
			log_warn("the staging DB stayed locked by another process: the quota ledger is "
				"not updated at the end (%d reserved calls not given back)", f.quota.held);
		else if (status)
			fetch_fail(&f, status);
		progress_end(&f.progress);
		if (f.counts.left)
			f.status = exitcode_worst(f.status, EXIT_TEMPFAIL);
		if (f.counts.bad || f.input.bad_lines)
			f.status = exitcode_worst(f.status, EXIT_DATA);
		fetch_summary(&f, started);
		status = f.status;
		/* A signal to this stage alone must not cut off the one before
		 * (a 74 night); after one to the whole pipeline its input ends soon. */
		drain = f.stop == FETCH_SIGNAL && !input_done(&f.input);
		buffered = input_buffered_lines(&f.input);   /* let go with the rest */
	}
	/* Also when the setup failed after the run was recorded as started. */
	db_run_end(&f.db, f.counts.read, f.batch.stored + f.counts.passed, status);
	fetch_close(&f);
	if (drain && in_fd == STDIN_FILENO) {
		if (out == stdout)
			cli_release_stdout();   /* the stage after us need not wait */
		cli_drain_stdin("their codes stay as they were (a rerun fetches the planned ones)",
			buffered);
	}
	return status;
}

/* Access tokens of the fake WeChat server, as WECHAT.md describes them:
 * - cgi-bin/token issues a new "classic" token on every call, and every older
 *   classic token stops working after the grace period;
 * - cgi-bin/stable_token returns the current stable token while it has more
 *   than the rotation margin to live, else a new one (the old one keeps
 *   working until it expires); force_refresh issues a new one and the old one
 *   stops after the grace period. Classic and stable tokens never affect each
 *   other.
 * A token is dead from min(expires, revoked): 42001 if it expired first,
 * 40001 if it was revoked first.
 * Limits (fake_token_limits): cgi-bin/token so many calls a day, stable_token
 * so many a minute (45011) and a day (45009), force_refresh so many a day
 * (45009), and a force_refresh sooner than the gap after the last one does
 * not refresh: it answers as a plain call. Days start at midnight Beijing
 * time (UTC+8), WeChat's; minutes are the quota's (--minute). */
#include <stdint.h>
#include <string.h>

#include "fake_wechat.h"
#include "log.h"

void fake_tokens_init(struct fake_tokens *tokens, const struct fake_options *options)
{
	memset(tokens, 0, sizeof *tokens);
	pthread_mutex_init(&tokens->lock, NULL);
	rid_source_init(&tokens->random);
	tokens->stable_slot = -1;
	tokens->lifetime_ms = options->token_lifetime_ms;
	tokens->grace_ms = options->token_grace_ms;
	tokens->stable_margin_ms = options->stable_margin_ms;
	tokens->limits = options->token_limits;
	tokens->minute_ms = options->minute_ms;
	tokens->length = (size_t)options->token_length;
	tokens->usage.day = tokens->usage.minute = INT64_MIN;
	tokens->usage.last_forced_ms = INT64_MIN;
}

void fake_tokens_destroy(struct fake_tokens *tokens)
{
	pthread_mutex_destroy(&tokens->lock);
}

static int64_t fake_token_end(const struct fake_token *token)
{
	return token->expires_ms < token->revoked_ms ? token->expires_ms : token->revoked_ms;
}

/* Every token of one family (classic or stable) stops after the grace period. */
static void fake_tokens_retire(struct fake_tokens *tokens, int stable, int64_t now_ms,
	int64_t grace_ms)
{
	int64_t until = now_ms + grace_ms;

	for (size_t i = 0; i < tokens->count; i++)
		if (tokens->ring[i].stable == stable && tokens->ring[i].revoked_ms > until)
			tokens->ring[i].revoked_ms = until;
}

/* Real tokens look like random text of 100-odd characters; ours are random
 * too, so a test cannot pass by guessing one. */
static struct fake_token *fake_tokens_mint(struct fake_tokens *tokens, enum fake_token_kind kind,
	int64_t now_ms)
{
	/* The current stable token is never the one overwritten: classic
	 * tokens, however many, do not touch it. */
	size_t slot = (long)tokens->next == tokens->stable_slot ? (tokens->next + 1) % FAKE_TOKEN_KEEP :
		tokens->next;
	struct fake_token *token = &tokens->ring[slot];
	int stable = kind != FAKE_TOKEN_CLASSIC;
	char value[FAKE_TOKEN_MAX + RID_LENGTH + 1] = "fk_";

	for (size_t at = 3; at < tokens->length; at += RID_LENGTH)
		if (rid_mint(&tokens->random, value + at))
			return NULL;
	value[tokens->length] = '\0';
	memcpy(token->value, value, tokens->length + 1);
	token->stable = stable;
	token->expires_ms = now_ms + tokens->lifetime_ms;
	token->revoked_ms = INT64_MAX;
	if (stable)
		tokens->stable_slot = (long)slot;
	tokens->next = (slot + 1) % FAKE_TOKEN_KEEP;
	if (tokens->count < FAKE_TOKEN_KEEP)
		tokens->count++;
	tokens->issued[kind]++;
	return token;
}

static struct fake_token *fake_tokens_stable(struct fake_tokens *tokens, enum fake_token_kind kind,
	int64_t now_ms)
{
	struct fake_token *current = NULL;

	if (kind == FAKE_TOKEN_STABLE_FORCED) {
		/* WECHAT.md: force_refresh invalidates the previous token (at once,
		 * where a classic fetch leaves it a grace period). */
		fake_tokens_retire(tokens, 1, now_ms, 0);
		return fake_tokens_mint(tokens, kind, now_ms);
	}
	if (tokens->stable_slot >= 0)
		current = &tokens->ring[tokens->stable_slot];
	if (current && fake_token_end(current) - now_ms > tokens->stable_margin_ms)
		return current;
	return fake_tokens_mint(tokens, kind, now_ms);
}

#define FAKE_BEIJING_OFFSET_MS (8 * 3600 * INT64_C(1000))

/* Counts a call against its endpoint's limits: FAKE_OK, or the error that
 * answers it (nothing counted). A force_refresh too soon after the last one
 * becomes a plain call (*kind). */
static enum fake_error fake_tokens_admit(struct fake_tokens *tokens, enum fake_token_kind *kind,
	int64_t now_ms)
{
	const struct fake_token_limits *limits = &tokens->limits;
	struct fake_token_usage *usage = &tokens->usage;
	int64_t day = (now_ms + FAKE_BEIJING_OFFSET_MS) / limits->day_ms;
	int64_t minute = now_ms / tokens->minute_ms;

	if (usage->day != day) {
		usage->day = day;
		usage->classic_today = usage->stable_today = usage->forced_today = 0;
	}
	if (usage->minute != minute) {
		usage->minute = minute;
		usage->stable_this_minute = 0;
	}
	if (*kind == FAKE_TOKEN_CLASSIC) {
		if (usage->classic_today >= limits->classic_daily)
			return FAKE_ERR_DAILY_LIMIT;
		usage->classic_today++;
		return FAKE_OK;
	}
	if (usage->stable_today >= limits->stable_daily)
		return FAKE_ERR_DAILY_LIMIT;
	if (usage->stable_this_minute >= limits->stable_per_minute)
		return FAKE_ERR_QUOTA_SLOWER;
	if (*kind == FAKE_TOKEN_STABLE_FORCED) {
		if (usage->last_forced_ms != INT64_MIN &&
		    now_ms - usage->last_forced_ms < limits->forced_gap_ms)
			*kind = FAKE_TOKEN_STABLE;
		else if (usage->forced_today >= limits->forced_daily)
			return FAKE_ERR_DAILY_LIMIT;
	}
	usage->stable_today++;
	usage->stable_this_minute++;
	if (*kind == FAKE_TOKEN_STABLE_FORCED) {
		usage->forced_today++;
		usage->last_forced_ms = now_ms;
	}
	return FAKE_OK;
}

enum fake_error fake_tokens_issue(struct fake_tokens *tokens, enum fake_token_kind kind,
	int64_t now_ms, char value[FAKE_TOKEN_MAX + 1], int64_t *life_ms)
{
	struct fake_token *token = NULL;
	enum fake_error error;

	pthread_mutex_lock(&tokens->lock);
	error = fake_tokens_admit(tokens, &kind, now_ms);
	if (error == FAKE_OK && kind == FAKE_TOKEN_CLASSIC) {
		fake_tokens_retire(tokens, 0, now_ms, tokens->grace_ms);
		token = fake_tokens_mint(tokens, kind, now_ms);
	} else if (error == FAKE_OK) {
		token = fake_tokens_stable(tokens, kind, now_ms);
	}
	if (token) {
		memcpy(value, token->value, sizeof token->value);
		*life_ms = fake_token_end(token) - now_ms;
	}
	pthread_mutex_unlock(&tokens->lock);
	if (error == FAKE_OK && !token) {
		log_error("no random bytes for a token");
		error = FAKE_ERR_BUSY;
	}
	return error;
}

enum fake_error fake_tokens_check(struct fake_tokens *tokens, const char *value, int64_t now_ms)
{
	enum fake_error result = FAKE_ERR_TOKEN_INVALID;

	if (strlen(value) != tokens->length)
		return result;
	pthread_mutex_lock(&tokens->lock);
	/* Newest first: the token in use is almost always among the last few. */
	for (size_t n = 0; n < tokens->count; n++) {
		const struct fake_token *token =
			&tokens->ring[(tokens->next + FAKE_TOKEN_KEEP - 1 - n) % FAKE_TOKEN_KEEP];

		if (strcmp(token->value, value))
			continue;
		if (now_ms < fake_token_end(token))
			result = FAKE_OK;
		else if (token->expires_ms <= token->revoked_ms)
			result = FAKE_ERR_TOKEN_EXPIRED;
		break;
	}
	pthread_mutex_unlock(&tokens->lock);
	return result;
}

void fake_tokens_revoke_all(struct fake_tokens *tokens, int64_t now_ms)
{
	pthread_mutex_lock(&tokens->lock);
	for (size_t i = 0; i < tokens->count; i++)
		if (tokens->ring[i].revoked_ms > now_ms)
			tokens->ring[i].revoked_ms = now_ms;
	pthread_mutex_unlock(&tokens->lock);
}

void fake_tokens_expire_all(struct fake_tokens *tokens, int64_t now_ms)
{
	pthread_mutex_lock(&tokens->lock);
	for (size_t i = 0; i < tokens->count; i++)
		if (tokens->ring[i].expires_ms > now_ms)
			tokens->ring[i].expires_ms = now_ms;
	pthread_mutex_unlock(&tokens->lock);
}

void fake_tokens_issued(struct fake_tokens *tokens, uint64_t issued[FAKE_TOKEN_KIND_COUNT])
{
	pthread_mutex_lock(&tokens->lock);
	memcpy(issued, tokens->issued, sizeof tokens->issued);
	pthread_mutex_unlock(&tokens->lock);
}

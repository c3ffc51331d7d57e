/* The access token, shared by every qrpool-fetch process through the
 * wechat_tokens row of the staging DB.
 *
 * One process at a time refreshes (it holds a lease on the row); the others
 * keep the current token meanwhile, or wait for the new one. A token WeChat
 * refused (40001/40014/42001) is dropped only if it is still the cached one,
 * so a burst of refusals of one old token causes one refresh, not a storm.
 * Sources: stable (cgi-bin/stable_token, never forced), classic (cgi-bin/token,
 * which invalidates every other holder's token), command (prints the token,
 * for a central token service) and file. */
#ifndef QRPOOL_TOKEN_H
#define QRPOOL_TOKEN_H

#include <curl/curl.h>
#include <stdint.h>

#include "config.h"
#include "db.h"
#include "http.h"
#include "wechat.h"

struct token_cache {
	struct db *db;
	const struct config *config;
	const char *source;               /* the source's name, the row's key */
	char token[WECHAT_TOKEN_MAX + 1]; /* "" when none */
	uint64_t generation;              /* counts tokens adopted, the same text again included */
	char refused[WECHAT_TOKEN_MAX + 1];   /* the last token WeChat refused */
	/* The pauses (retry_at, refused_again_at) are on the monotonic clock
	 * (db_monotonic): a step of the wall clock neither stretches nor cuts
	 * them. The token's expiry is a time of day (unix seconds). */
	double refused_again_at;          /* it may be taken again from then on... */
	double refused_backoff;           /* ... and then only this much later: 0 after a success */
	int replacing;                    /* a token was refused: the next one replaces it */
	int suspect;                      /* this token replaced a refused one, and no call
	                                   * with it has succeeded yet */
	double suspect_backoff;           /* the pause before a refresh after a suspect token
	                                   * was refused: 1, 2, 4 ... 60 s; 0 after a success */
	double use_until;                 /* trusted until then, then the DB is read again */
	double expires_at;
	double retry_at;                  /* after a failed refresh, or while another refreshes */
	double leased_until;              /* the lease this process last took: still in the DB
	                                     when its release found the DB locked, and ours */
	double backoff;                   /* seconds, doubled after each failed refresh */
	int failures;                     /* refreshes failed in a row */
	int64_t refreshes;                /* by this process */
	int64_t retaken;                  /* refused tokens the endpoint handed back, taken again */
	struct wechat_answer failure;     /* why the last refresh failed */
	int secret_unreadable;            /* ... because the app secret could not be read */
	CURL *easy;
	struct http_body body;
	sqlite3_stmt *select, *lease, *save, *unlease, *drop;
};

/* `db` NULL: a cache for token_check alone (no DB is read or made). */
int token_open(struct token_cache *cache, struct db *db, const struct config *config);
void token_close(struct token_cache *cache);

/* Makes cache->token usable at `now` (unix seconds; `mono`, db_monotonic()'s
 * seconds, for the pauses), refreshing it if due.
 * Returns 0 (cache->token is set), 1 (no token yet: try again at
 * cache->retry_at), TOKEN_GAVE_UP when TOKEN_FAILURES_MAX refreshes in a row
 * failed (backing off 1, 2, 4 ... 60 s: about 4 minutes) with no token to use
 * (retry_at is set all the same: a run with a deadline may go on trying), or
 * an exit code: EXIT_UPSTREAM for refused credentials, EXIT_CONFIG for an app
 * secret that cannot be read (say, its file replaced by an empty one mid-run),
 * EXIT_INTERNAL, or a DB error (EXIT_TEMPFAIL: locked past busy_timeout);
 * cache->failure says why. */
#define TOKEN_GAVE_UP 2
#define TOKEN_FAILURES_MAX 9
int token_get(struct token_cache *cache, double now, double mono);

/* 1 if token_get at `now` answers from memory (a token, or "wait until
 * retry_at"): no DB, no refresh. */
int token_cached(const struct token_cache *cache, double now, double mono);

/* WeChat refused `token`, adopted as `generation`, as invalid or expired. It
 * is dropped only if it is still the cached one, in that generation (a call
 * sent before a refresh says nothing of the token adopted since, even if the
 * text is the same). When the token source hands the same token back, it is
 * taken again (WeChat refuses a valid stable token at times): at once the
 * first time, then after 1, 2, 4 ... 60 s while no call with it succeeds.
 * The token that replaces a refused one is suspect until a call with it
 * succeeds (cache->suspect): refused too, it is not replaced at once; the
 * next refresh waits 1, 2, 4 ... 60 s while new tokens keep being refused, so
 * WeChat refusing every token (or another holder of a classic token taking a
 * new one each time) costs a refresh now and then, not one per call
 * (cgi-bin/token: 2,000 a day, each invalidating the other holders' token).
 * A token cached from an earlier run, or refreshed ahead of its expiry, is
 * not suspect: its refusal costs one refresh at once. Returns 0 or an exit
 * code. */
int token_refused(struct token_cache *cache, const char *token, uint64_t generation);

/* A call with the token of `generation` succeeded: a refused token taken back
 * has proved good (the next refusal takes it back at once). */
void token_worked(struct token_cache *cache, uint64_t generation);

/* Gets a token from the source itself, for qrpool-fetch --check: the proof
 * that the credentials (or the command, or the file) work. Nothing is cached.
 * Returns 0 (*expires_in set), EXIT_UPSTREAM (refused), EXIT_CONFIG (the
 * secret unreadable), EXIT_TEMPFAIL (unreachable, a transient failure) or
 * EXIT_INTERNAL; cache->failure says why. Not for the classic source, whose
 * every fetch invalidates the other holders' token. */
int token_check(struct token_cache *cache, int64_t *expires_in);

/* Reads "TOKEN [EXPIRES_IN]" or WeChat's JSON answer, as printed by a token
 * command or held in a token file. Without an expiry, `default_expires_s`.
 * Returns 0, or -1 with answer->message. (Exposed for tests.) */
int token_parse_text(char *text, size_t size, int64_t default_expires_s,
	char token[WECHAT_TOKEN_MAX + 1], int64_t *expires_in_s, struct wechat_answer *answer);

#endif

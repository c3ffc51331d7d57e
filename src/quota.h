/* The minute quota, shared by every qrpool-fetch process through the
 * quota_windows ledger in the staging DB.
 *
 * WeChat counts calls per appid in wall-clock windows ("minutes"). A process
 * reserves calls in small chunks (one BEGIN IMMEDIATE each), so several runs
 * together never take more than the budget, and gives back what it did not
 * use. The budget goes out at an even pace over the window's first three
 * quarters, never ahead of it, so that no span of a minute (should WeChat's
 * be any 60 s rather than the clock's) sees more of a steady run's calls
 * than the budget and about a chunk.
 *
 * WeChat counts a call when it gets to it, some time after we send it and
 * before its answer comes back. So a call sent shortly before a window ends
 * may be counted in the next one; and if WeChat's clock lags ours, one sent
 * just after a window starts may be counted in the previous one. Calls sent
 * in these bands are charged to both windows. The band before a boundary is
 * half as long again as the slowest recent answers: an answer bounds the
 * delay of calls like it, but a server falling behind at the end of a busy
 * window answers the next ones later still (a band only as long as the
 * slowest answer let 0.1% of the calls past a boundary in bench-fetch). The
 * one after it is a fixed allowance for clock skew. Elsewhere a call is
 * charged to its own window only. A band call answered before the boundary
 * (by more than the skew allowance, in case WeChat's clock is ahead) was
 * counted in the window ending: its charge to the next one is given back
 * to the ledger as the band ends, for that window's pace. */
#ifndef QRPOOL_QUOTA_H
#define QRPOOL_QUOTA_H

#include <stdint.h>

#include "db.h"

/* The time span in which one reservation may be spent. */
struct quota_slot {
	int64_t start_ms, end_ms;
	int64_t first_window, last_window;   /* window indexes charged: one, or two in a band */
};

struct quota {
	struct db *db;
	const char *appid;
	int budget;
	int64_t minute_ms;
	int64_t floor_ms;          /* the least band before a boundary */
	int64_t early_ms;          /* the band after a boundary: WeChat's clock may lag */
	int64_t rtt_window;        /* window of rtt_current_ms */
	int64_t rtt_current_ms, rtt_previous_ms;   /* slowest answers, this and the last window */
	int chunk;                 /* calls reserved per transaction */
	struct quota_slot slot;    /* the slot `held` belongs to */
	int held;                  /* reserved, not yet used */
	int64_t retry_at_ms;       /* nothing to reserve before then (the budget, the pace) */
	struct {                   /* calls taken in a window, as last read and changed since */
		int64_t window, taken;
	} seen[2];                 /* (a slot's windows: the current one and the next) */
	int64_t credit_window;     /* charged there, known to count elsewhere: to give back */
	int credit;
	int64_t spent_window;      /* the last window this process heard 45009 for */
	int spent_unrecorded;      /* ... and could not yet mark in the ledger (locked) */
	struct quota_slot owed_slot;   /* calls sent beyond what was taken (resent by libcurl)... */
	int owed;                  /* ... charged to the ledger at its next transaction */
	sqlite3_stmt *select, *charge, *give_back, *spend;
};

int quota_open(struct quota *quota, struct db *db, const char *appid, int budget, int64_t minute_ms);
/* quota_end if `now_ms` (0: nothing given back), and finalizes. */
void quota_close(struct quota *quota, int64_t now_ms);

/* An answer came `rtt_ms` after its call was sent: WeChat counted the call
 * within that time, so the band before a boundary follows it. */
void quota_observe(struct quota *quota, int64_t now_ms, int64_t rtt_ms);
int64_t quota_late_ms(const struct quota *quota);

/* The slot holding `now_ms` (exposed for tests). */
void quota_slot_at(const struct quota *quota, int64_t now_ms, struct quota_slot *slot);

/* Takes one call at `now_ms`. Returns 0 (granted), 1 (none left, or the
 * pace gives none yet: try again at quota->retry_at_ms) or an exit code. A
 * reservation that waited for the ledger's lock into another slot is not
 * used (1, retry_at_ms 0): the calls it covers would go out in windows it
 * did not charge. */
int quota_take(struct quota *quota, int64_t now_ms);

/* 1 if quota_take at `now_ms` would write the ledger, and so may wait for
 * its lock up to busy_timeout. */
int quota_needs_ledger(const struct quota *quota, int64_t now_ms);

/* A call went out at `now_ms` that no quota_take covered: libcurl sends a
 * request again on a fresh connection when a kept-alive one dies before any
 * answer, and WeChat may have counted both. Paid from what is held for the
 * slot of `now_ms`, else charged to its windows at the next ledger write. */
void quota_resent(struct quota *quota, int64_t now_ms);

/* Calls taken in the window of `now_ms` by all runs, as last read from the
 * ledger and changed by this run since (0 when not read in that window): for
 * the progress line. */
int64_t quota_taken_now(const struct quota *quota, int64_t now_ms);

/* The call charged to `slot` was answered at `now_ms` (any answer). */
void quota_answered(struct quota *quota, const struct quota_slot *slot, int64_t now_ms);

/* WeChat answered 45009/45011 to a call sent at `sent_ms`: that call's window
 * (for a call sent just after a boundary, the one before, as WeChat's clock
 * may lag) is marked spent for all processes. This process stops calling at
 * once, whatever the ledger; a ledger locked past busy_timeout is marked at
 * the next reservation instead. Returns 0 or an exit code (never for a lock). */
int quota_spent(struct quota *quota, int64_t sent_ms);

/* Gives back the calls held (when the slot changes, and when the run leaves
 * them unused for a while). EXIT_TEMPFAIL, unsaid, when the ledger stayed
 * locked: they are still held, to give back at the next try. */
int quota_release(struct quota *quota, int64_t now_ms);
/* At the end of a run: the calls held, and the credit (charged to the next
 * window, known to have counted in the last), go back (EXIT_TEMPFAIL, unsaid,
 * as quota_release). As they do when the slot changes. */
int quota_end(struct quota *quota, int64_t now_ms);

int64_t quota_now_ms(void);
/* A clock for answer times, which a change of the wall clock must not skew. */
int64_t quota_monotonic_ms(void);

#endif

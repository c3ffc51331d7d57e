/* The minute quota, shared by every qrpool-fetch process through the
 * quota_windows ledger in the staging DB.
 *
 * WeChat counts calls per appid in wall-clock windows ("minutes"). A process
 * reserves calls in small chunks (one BEGIN IMMEDIATE each), so several runs
 * together never take more than the budget, and gives back what it did not
 * use. Around each window boundary lies a guard band: a call sent there may
 * be counted by WeChat in either window (clock skew, time on the wire), so it
 * is charged to both. Outside the bands a call is charged to its own window. */
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
	int64_t minute_ms, guard_ms;
	int chunk;                 /* calls reserved per transaction */
	struct quota_slot slot;    /* the slot `held` belongs to */
	int held;                  /* reserved, not yet used */
	int64_t retry_at_ms;       /* nothing to reserve before then */
	int64_t window_taken;      /* calls taken in the current window, as last seen */
	sqlite3_stmt *select, *charge, *give_back, *spend;
};

int quota_open(struct quota *quota, struct db *db, const char *appid, int budget, int64_t minute_ms);
/* Gives back the calls held, and finalizes. */
void quota_close(struct quota *quota, int64_t now_ms);

/* The slot holding `now_ms` (exposed for tests). */
void quota_slot_at(const struct quota *quota, int64_t now_ms, struct quota_slot *slot);

/* Takes one call at `now_ms`. Returns 0 (granted), 1 (none left: try again at
 * quota->retry_at_ms) or an exit code. */
int quota_take(struct quota *quota, int64_t now_ms);

/* WeChat answered 45009/45011 to a call sent at `sent_ms`: every window from
 * then to `now_ms` is marked spent for all processes. Returns 0 or an exit code. */
int quota_spent(struct quota *quota, int64_t sent_ms, int64_t now_ms);

/* Gives back the calls held (at the end of a run, or when idle). */
int quota_release(struct quota *quota, int64_t now_ms);

int64_t quota_now_ms(void);

#endif

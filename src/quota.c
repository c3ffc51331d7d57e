#include "quota.h"

#include <string.h>
#include <time.h>

#include "exitcode.h"

/* Windows older than this are deleted when a run starts. */
#define QUOTA_KEEP_MS (7LL * 24 * 3600 * 1000)

int64_t quota_now_ms(void)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

int64_t quota_monotonic_ms(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static int64_t quota_floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b < 0);
}

static int quota_purge(struct quota *quota, int64_t now_ms)
{
	sqlite3_stmt *stmt;
	int status, rc;

	if ((status = db_prepare(quota->db, &stmt,
			"DELETE FROM quota_windows WHERE appid = ? AND window_start_ms < ?")))
		return status;
	sqlite3_bind_text(stmt, 1, quota->appid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, now_ms - QUOTA_KEEP_MS);
	rc = sqlite3_step(stmt);
	sqlite3_finalize(stmt);
	return rc == SQLITE_DONE ? 0 : db_fail(quota->db, rc, "purging old quota windows");
}

int quota_open(struct quota *quota, struct db *db, const char *appid, int budget, int64_t minute_ms)
{
	int status;

	memset(quota, 0, sizeof *quota);
	quota->db = db;
	quota->appid = appid;
	quota->budget = budget;
	quota->minute_ms = minute_ms;
	/* 250 ms for a real minute; a compressed test minute gets bands in
	 * proportion. Until answers are seen, the band before a boundary assumes
	 * slow ones. */
	quota->floor_ms = minute_ms / 100 > 250 ? 250 : minute_ms / 100 ? minute_ms / 100 : 1;
	quota->early_ms = quota->floor_ms / 2;
	quota->rtt_previous_ms = minute_ms / 8 < 2000 ? minute_ms / 8 : 2000;
	/* Small chunks let concurrent runs share a minute fairly; 1% of the
	 * budget costs one transaction per 1% of the calls. */
	quota->chunk = budget / 100 > 50 ? 50 : budget / 100 ? budget / 100 : 1;
	quota->slot.first_window = quota->slot.last_window = INT64_MIN;
	quota->spent_window = quota->credit_window = INT64_MIN;
	quota->owed_slot.first_window = quota->owed_slot.last_window = INT64_MIN;
	quota->seen[0].window = quota->seen[1].window = INT64_MIN;
	if ((status = db_prepare(db, &quota->select, "SELECT taken, spent, budget FROM quota_windows "
			"WHERE appid = ? AND window_start_ms = ?")) ||
	    (status = db_prepare(db, &quota->charge, "INSERT INTO quota_windows (appid, "
			"window_start_ms, minute_ms, budget, taken) VALUES (?, ?, ?, ?, ?) "
			"ON CONFLICT (appid, window_start_ms) DO UPDATE SET taken = taken + excluded.taken, "
			"budget = max(budget, excluded.budget)")) ||
	    (status = db_prepare(db, &quota->give_back, "UPDATE quota_windows SET taken = max(0, "
			"taken - ?) WHERE appid = ? AND window_start_ms = ?")) ||
	    (status = db_prepare(db, &quota->spend, "INSERT INTO quota_windows (appid, "
			"window_start_ms, minute_ms, budget, refused, spent) VALUES (?, ?, ?, ?, 1, 1) "
			"ON CONFLICT (appid, window_start_ms) DO UPDATE SET refused = refused + 1, spent = 1")) ||
	    (status = quota_purge(quota, quota_now_ms()))) {
		quota_close(quota, 0);
		return status;
	}
	return 0;
}

void quota_close(struct quota *quota, int64_t now_ms)
{
	if (now_ms)
		quota_end(quota, now_ms);
	sqlite3_finalize(quota->select);
	sqlite3_finalize(quota->charge);
	sqlite3_finalize(quota->give_back);
	sqlite3_finalize(quota->spend);
	quota->select = quota->charge = quota->give_back = quota->spend = NULL;
}

int64_t quota_late_ms(const struct quota *quota)
{
	int64_t rtt = quota->rtt_current_ms > quota->rtt_previous_ms ? quota->rtt_current_ms :
		quota->rtt_previous_ms;
	int64_t late = rtt + rtt / 2 + quota->floor_ms / 2;

	if (late < quota->floor_ms)
		late = quota->floor_ms;
	/* A very slow answer (a timeout's worth) says little of the next ones. */
	return late < quota->minute_ms / 4 ? late : quota->minute_ms / 4;
}

void quota_observe(struct quota *quota, int64_t now_ms, int64_t rtt_ms)
{
	int64_t window = quota_floor_div(now_ms, quota->minute_ms);

	if (window != quota->rtt_window) {
		quota->rtt_previous_ms = quota->rtt_current_ms;
		quota->rtt_current_ms = 0;
		quota->rtt_window = window;
	}
	if (rtt_ms > quota->rtt_current_ms)
		quota->rtt_current_ms = rtt_ms;
}

void quota_slot_at(const struct quota *quota, int64_t now_ms, struct quota_slot *slot)
{
	int64_t m = quota->minute_ms, late = quota_late_ms(quota), early = quota->early_ms;
	int64_t window = quota_floor_div(now_ms, m), offset = now_ms - window * m;

	if (offset < early) {             /* just after a boundary */
		slot->first_window = window - 1;
		slot->last_window = window;
		slot->start_ms = window * m;
		slot->end_ms = window * m + early;
	} else if (offset >= m - late) {  /* just before one */
		slot->first_window = window;
		slot->last_window = window + 1;
		slot->start_ms = (window + 1) * m - late;
		slot->end_ms = (window + 1) * m;
	} else {
		slot->first_window = slot->last_window = window;
		slot->start_ms = window * m + early;
		slot->end_ms = (window + 1) * m - late;
	}
}

/* What the ledger says `window` has taken: replaces the older of the two
 * windows seen. */
static void quota_seen_set(struct quota *quota, int64_t window, int64_t taken)
{
	int i = quota->seen[0].window == window ? 0 : quota->seen[1].window == window ? 1 :
		quota->seen[0].window < quota->seen[1].window ? 0 : 1;

	quota->seen[i].window = window;
	quota->seen[i].taken = taken;
}

/* This run changed what `window` has taken by `calls` (a window not seen is
 * let be). */
static void quota_seen_add(struct quota *quota, int64_t window, int64_t calls)
{
	for (int i = 0; i < 2; i++)
		if (quota->seen[i].window == window)
			quota->seen[i].taken = quota->seen[i].taken + calls > 0 ?
				quota->seen[i].taken + calls : 0;
}

/* What `window` has taken as last seen (0 if not seen). */
static int64_t quota_seen_taken(const struct quota *quota, int64_t window)
{
	for (int i = 0; i < 2; i++)
		if (quota->seen[i].window == window)
			return quota->seen[i].taken;
	return 0;
}

int64_t quota_taken_now(const struct quota *quota, int64_t now_ms)
{
	if (quota->minute_ms <= 0)   /* never opened: no wechat pools */
		return 0;
	return quota_seen_taken(quota, quota_floor_div(now_ms, quota->minute_ms));
}

/* The pace of a window: its budget spread evenly from the end of the band
 * after its start to a quarter of the minute and 1% before its end (the
 * widest the band before the end grows, with slow answers), never ahead. A
 * span the same in every window, whatever the answers, is what keeps every
 * span of a minute, the clock's or any other, at the budget (and about a
 * chunk): a window paced faster than the one before would add to its calls
 * still counted. Before the pace starts (in the bands around the window's
 * start, where calls are charged to the window before as well) it holds no
 * call back: what they take of the budget, the pace then waits for. So the
 * window before may use what it has left there, when its calls fell behind
 * its pace. Runs with different budgets (reserves) share the pace of the
 * largest, each stopping at its own. Returns the span; `*start_ms` when the
 * pace starts. */
static int64_t quota_pace(const struct quota *quota, int64_t window, int64_t *start_ms)
{
	int64_t m = quota->minute_ms, span = m - quota->early_ms - m / 4 - m / 100;

	*start_ms = window * m + quota->early_ms;
	return span > 0 ? span : 1;
}

/* The calls `window` may have taken by `now_ms` at the pace of `budget`. */
static int64_t quota_paced(const struct quota *quota, int64_t window, int64_t budget,
	int64_t now_ms)
{
	int64_t start, span = quota_pace(quota, window, &start);

	if (now_ms < start)
		return budget;
	return now_ms - start < span ? budget * (now_ms - start) / span : budget;
}

/* When the pace of `budget` allows `window` a chunk more than `taken`. */
static int64_t quota_paced_next(const struct quota *quota, int64_t window, int64_t budget,
	int64_t taken)
{
	int64_t start, span = quota_pace(quota, window, &start);

	return start + ((taken + quota->chunk) * span + budget - 1) / budget;
}

/* Calls still free in one window, for this budget, at the pace; `*paced`
 * is set to the budget whose pace holds them back, if it does. */
static int quota_free_in(struct quota *quota, int64_t window, int64_t now_ms, int *free_calls,
	int64_t *paced)
{
	int64_t taken = 0, pace_budget = quota->budget, allowed;
	int rc, spent = 0;

	sqlite3_reset(quota->select);
	sqlite3_bind_text(quota->select, 1, quota->appid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(quota->select, 2, window * quota->minute_ms);
	rc = sqlite3_step(quota->select);
	if (rc == SQLITE_ROW) {
		/* Each run's own budget decides (runs may keep different reserves);
		 * the row has the largest of theirs, whose pace they share. */
		taken = sqlite3_column_int64(quota->select, 0);
		spent = sqlite3_column_int(quota->select, 1);
		if (sqlite3_column_int64(quota->select, 2) > pace_budget)
			pace_budget = sqlite3_column_int64(quota->select, 2);
	}
	sqlite3_reset(quota->select);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_fail(quota->db, rc, "reading the quota ledger");
	quota_seen_set(quota, window, taken);
	*free_calls = spent || taken >= quota->budget ? 0 : (int)(quota->budget - taken);
	allowed = quota_paced(quota, window, pace_budget, now_ms);
	*paced = *free_calls > 0 && allowed - taken < *free_calls ? pace_budget : 0;
	if (*paced)
		*free_calls = allowed > taken ? (int)(allowed - taken) : 0;
	return 0;
}

static int quota_step_window(struct quota *quota, sqlite3_stmt *stmt, int64_t window, int calls)
{
	int rc;

	sqlite3_reset(stmt);
	sqlite3_bind_text(stmt, 1, quota->appid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, window * quota->minute_ms);
	sqlite3_bind_int64(stmt, 3, quota->minute_ms);
	sqlite3_bind_int(stmt, 4, quota->budget);
	if (calls)
		sqlite3_bind_int(stmt, 5, calls);
	rc = sqlite3_step(stmt);
	sqlite3_reset(stmt);
	return rc == SQLITE_DONE ? 0 : db_fail(quota->db, rc, "writing the quota ledger");
}

/* The calls resent beyond what was taken, added to their windows whatever
 * the budget says (WeChat counted them): other runs see them taken. In the
 * caller's transaction; quota->owed is cleared once it commits. */
static int quota_charge_owed(struct quota *quota)
{
	int status = 0;

	for (int64_t w = quota->owed_slot.first_window; quota->owed > 0 &&
	     w <= quota->owed_slot.last_window && !status; w++)
		status = quota_step_window(quota, quota->charge, w, quota->owed);
	return status;
}

void quota_resent(struct quota *quota, int64_t now_ms)
{
	struct quota_slot slot;

	quota_slot_at(quota, now_ms, &slot);
	if (slot.first_window == quota->slot.first_window &&
	    slot.last_window == quota->slot.last_window && quota->held > 0) {
		quota->held--;
		return;
	}
	/* Owed already to another slot, not yet in the ledger: the windows of
	 * both are charged with all of it (over rather than under: a window
	 * may be charged a call it did not see, none misses one it did). */
	if (quota->owed == 0) {
		quota->owed_slot = slot;
	} else {
		if (slot.first_window < quota->owed_slot.first_window)
			quota->owed_slot.first_window = slot.first_window;
		if (slot.last_window > quota->owed_slot.last_window)
			quota->owed_slot.last_window = slot.last_window;
	}
	quota->owed++;
}

/* One transaction: what every window of the slot still has, then take up to
 * a chunk of it from each. `*paced_ms`: when the pace gives a chunk more, or
 * 0 when it holds nothing back or a window's budget is what is gone. */
static int quota_reserve(struct quota *quota, int64_t now_ms, int *granted, int64_t *paced_ms)
{
	int status, available = quota->chunk, budget_gone = 0;
	int64_t paced[2] = { 0, 0 };

	*granted = 0;
	*paced_ms = 0;
	/* Locked past busy_timeout: EXIT_TEMPFAIL, which the caller says (a
	 * wait, no error: the run goes on). */
	if ((status = db_begin_immediate_quietly(quota->db)))
		return status;
	if (quota->spent_unrecorded)
		status = quota_step_window(quota, quota->spend, quota->spent_window, 0);
	if (!status)
		status = quota_charge_owed(quota);
	/* (a slot has one window, or two) */
	for (int64_t w = quota->slot.first_window; w <= quota->slot.last_window && !status; w++) {
		int i = (int)(w - quota->slot.first_window), free_calls = 0;

		if ((status = quota_free_in(quota, w, now_ms, &free_calls, &paced[i])))
			break;
		budget_gone |= free_calls == 0 && !paced[i];
		available = free_calls < available ? free_calls : available;
	}
	for (int64_t w = quota->slot.first_window; available > 0 && w <= quota->slot.last_window &&
	     !status; w++)
		status = quota_step_window(quota, quota->charge, w, available);
	if (!status && !(status = db_commit(quota->db))) {
		*granted = available > 0 ? available : 0;
		for (int64_t w = quota->slot.first_window; w <= quota->slot.last_window; w++) {
			int64_t next;

			int64_t pace_budget = paced[w - quota->slot.first_window];

			quota_seen_add(quota, w, *granted);
			if (budget_gone || !pace_budget)
				continue;
			next = quota_paced_next(quota, w, pace_budget, quota_seen_taken(quota, w));
			*paced_ms = next > *paced_ms ? next : *paced_ms;
		}
		quota->spent_unrecorded = 0;
		quota->owed = 0;
		return 0;
	}
	db_rollback(quota->db);
	return status;
}

/* Gives `calls` back to `window` if it is still running (in a transaction). */
static int quota_give_back(struct quota *quota, int64_t window, int calls, int64_t now_ms)
{
	int rc;

	if (calls <= 0 || (window + 1) * quota->minute_ms <= now_ms)
		return 0;   /* only windows still running can use what is given back */
	sqlite3_reset(quota->give_back);
	sqlite3_bind_int(quota->give_back, 1, calls);
	sqlite3_bind_text(quota->give_back, 2, quota->appid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(quota->give_back, 3, window * quota->minute_ms);
	rc = sqlite3_step(quota->give_back);
	sqlite3_reset(quota->give_back);
	return rc == SQLITE_DONE ? 0 : db_fail(quota->db, rc, "giving back quota");
}

/* Gives back the calls held, and the credit too when `with_credit` (as the
 * slot changes, when the band that earned it is over, and at the end).
 * Locked past busy_timeout: EXIT_TEMPFAIL, unsaid (the caller says it: a
 * wait, not an error). */
static int quota_give_back_all(struct quota *quota, int64_t now_ms, int with_credit)
{
	int credit = with_credit && quota->credit_window != quota->spent_window ? quota->credit : 0;
	int status;

	if (!quota->held && !quota->spent_unrecorded && !credit && !quota->owed)
		return 0;
	if ((status = db_begin_immediate_quietly(quota->db)))
		return status;
	if (quota->spent_unrecorded)   /* a 45009 the ledger was locked for */
		status = quota_step_window(quota, quota->spend, quota->spent_window, 0);
	if (!status)
		status = quota_charge_owed(quota);
	for (int64_t w = quota->slot.first_window; w <= quota->slot.last_window && !status; w++)
		status = quota_give_back(quota, w, quota->held, now_ms);
	if (!status)
		status = quota_give_back(quota, quota->credit_window, credit, now_ms);
	if (!status && !(status = db_commit(quota->db))) {
		for (int64_t w = quota->slot.first_window; w <= quota->slot.last_window; w++)
			quota_seen_add(quota, w, -quota->held);
		quota_seen_add(quota, quota->credit_window, -credit);
		if (quota->held)
			quota->retry_at_ms = 0;   /* set at their grant, as if they were used */
		quota->held = 0;
		quota->spent_unrecorded = 0;
		quota->owed = 0;
		if (with_credit)
			quota->credit = 0;
		return 0;
	}
	db_rollback(quota->db);
	return status;
}

int quota_release(struct quota *quota, int64_t now_ms)
{
	return quota_give_back_all(quota, now_ms, 0);
}

int quota_end(struct quota *quota, int64_t now_ms)
{
	return quota_give_back_all(quota, now_ms, 1);
}

/* Marks `window` spent and counts one more refusal there, if the ledger is
 * free: never waits for its lock (EXIT_TEMPFAIL then). */
static int quota_try_spend(struct quota *quota, int64_t window)
{
	int status = db_try_begin_immediate(quota->db);

	if (status)
		return status;
	if ((status = quota_step_window(quota, quota->spend, window, 0)) ||
	    (status = db_commit(quota->db)))
		db_rollback(quota->db);
	return status;
}

/* A 45009 the ledger was locked for, marked now if the lock is free: the
 * other runs learn of it while the window lasts. */
static void quota_mark_pending(struct quota *quota)
{
	if (quota->spent_unrecorded && !quota_try_spend(quota, quota->spent_window))
		quota->spent_unrecorded = 0;
}

int quota_needs_ledger(const struct quota *quota, int64_t now_ms)
{
	struct quota_slot slot;

	quota_slot_at(quota, now_ms, &slot);
	if (slot.first_window != quota->slot.first_window || slot.last_window != quota->slot.last_window)
		return 1;   /* a release, a reservation: most likely both */
	return quota->held == 0 && now_ms >= quota->retry_at_ms;
}

int quota_take(struct quota *quota, int64_t now_ms)
{
	struct quota_slot slot;
	int status, granted;
	int64_t paced_ms, waited_since = quota_monotonic_ms();   /* the ledger's lock may be waited for */

	quota_slot_at(quota, now_ms, &slot);
	if (slot.first_window != quota->slot.first_window || slot.last_window != quota->slot.last_window) {
		/* What is held was charged to other windows: give it back; and the
		 * credit, to the ledger, where the window's pace (every run's) counts
		 * it free. */
		if ((status = quota_give_back_all(quota, now_ms, 1)))
			return status;
		quota->retry_at_ms = 0;
	}
	quota->slot = slot;
	if (quota->held > 0) {
		quota->held--;
		return 0;
	}
	if (now_ms < quota->retry_at_ms) {
		quota_mark_pending(quota);
		return 1;
	}
	if ((status = quota_reserve(quota, now_ms, &granted, &paced_ms)))
		return status;
	/* The ledger's lock may have been waited for: the calls reserved are
	 * for the slot of `now_ms` only. */
	quota_slot_at(quota, now_ms + (quota_monotonic_ms() - waited_since), &slot);
	if (slot.first_window != quota->slot.first_window || slot.last_window != quota->slot.last_window) {
		quota->held = granted;   /* given back as the next take changes slot */
		quota->retry_at_ms = 0;
		return 1;
	}
	if (granted == 0) {
		/* The pace gives more then; or another run may give calls back:
		 * look again a little later. */
		int64_t poll = quota->minute_ms / 50 > 0 ? quota->minute_ms / 50 : 1;
		int64_t retry = paced_ms > now_ms ? paced_ms : now_ms + poll;

		quota->retry_at_ms = retry < quota->slot.end_ms ? retry : quota->slot.end_ms;
		return 1;
	}
	quota->held = granted - 1;
	/* Once these are spent, the pace gives no more before then: no
	 * transaction to learn it. */
	quota->retry_at_ms = paced_ms < quota->slot.end_ms ? paced_ms : quota->slot.end_ms;
	return 0;
}

void quota_answered(struct quota *quota, const struct quota_slot *slot, int64_t now_ms)
{
	/* WeChat's clock may run ahead of ours by as much as the band after a
	 * boundary allows for: an answer later than that before our boundary may
	 * have been counted after WeChat's. */
	if (slot->first_window == slot->last_window ||
	    now_ms >= slot->last_window * quota->minute_ms - quota->early_ms)
		return;
	if (quota->credit_window != slot->last_window) {
		quota->credit_window = slot->last_window;
		quota->credit = 0;
	}
	quota->credit++;
}

int quota_spent(struct quota *quota, int64_t sent_ms)
{
	/* Only the window the call was sent in: one answered after a boundary
	 * does not say the next window is full (if it is, its own calls will be
	 * refused and mark it), and marking it would idle every run for a whole
	 * minute whenever WeChat's limit runs out in the last moments of one. A
	 * call sent just after a boundary may have counted in the window before
	 * (WeChat's clock may lag ours): that one is marked. */
	int64_t spent = quota_floor_div(sent_ms - quota->early_ms, quota->minute_ms);
	int status;

	/* What is held was charged to the spent window too: this process stops
	 * there and then, whether or not the ledger can be written. */
	if (quota->slot.first_window <= spent && spent <= quota->slot.last_window) {
		quota->held = 0;
		quota->retry_at_ms = quota->slot.end_ms;
	}
	if (quota->credit_window == spent)
		quota->credit = 0;
	if (quota->spent_unrecorded && spent <= quota->spent_window)
		return 0;   /* to be marked; an older window's mark is worth nothing */
	/* Not waiting for the lock: a burst of refusals would each wait
	 * busy_timeout, with the loop stalled. */
	status = quota_try_spend(quota, spent);
	if (spent > quota->spent_window) {   /* the newest: marked later if locked */
		quota->spent_window = spent;
		quota->spent_unrecorded = status != 0;
	}
	return status == EXIT_TEMPFAIL ? 0 : status;
}

/* quota.c: two "processes" (two connections to one staging DB) share one
 * budget per window; bands around boundaries charge both windows; unused
 * calls go back; a 45009 stops the window for everyone. */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "quota.h"
#include "tap.h"

#define MINUTE 60000
#define T0 ((int64_t)29000000 * MINUTE)   /* a window start */

static int64_t ledger(struct db *db, int64_t window, const char *column)
{
	char sql[160];
	sqlite3_stmt *stmt;
	int64_t value = -1;

	/* A column name cannot be a parameter; the value is one. */
	snprintf(sql, sizeof sql, "SELECT %s FROM quota_windows WHERE window_start_ms = ?", column);
	if (db_prepare(db, &stmt, sql))
		return -2;
	sqlite3_bind_int64(stmt, 1, window * MINUTE);
	if (sqlite3_step(stmt) == SQLITE_ROW)
		value = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	return value;
}

static void test_slots(struct db *db)
{
	struct quota quota;
	struct quota_slot slot;
	int64_t w = T0 / MINUTE;

	quota_open(&quota, db, "wxslots", 1000, MINUTE);
	quota_observe(&quota, T0 + 1000, 100);
	quota_observe(&quota, T0 + MINUTE + 1000, 100);   /* the first guess is forgotten */
	quota_observe(&quota, T0 + 2 * MINUTE + 1000, 100);
	ok(quota_late_ms(&quota) >= 150 && quota_late_ms(&quota) <= 300,
		"band before a boundary: half as long again as the slowest answer, and a margin (%lld ms)",
		(long long)quota_late_ms(&quota));
	quota_slot_at(&quota, T0 + 2 * MINUTE + 30000, &slot);
	ok(slot.first_window == w + 2 && slot.last_window == w + 2, "mid-window: its own window");
	quota_slot_at(&quota, T0 + 3 * MINUTE - 100, &slot);
	ok(slot.first_window == w + 2 && slot.last_window == w + 3, "just before a boundary: both");
	quota_slot_at(&quota, T0 + 3 * MINUTE + 10, &slot);
	ok(slot.first_window == w + 2 && slot.last_window == w + 3, "just after one: both");
	quota_observe(&quota, T0 + 2 * MINUTE + 2000, 50000);
	is_int(quota_late_ms(&quota), MINUTE / 4, "a timeout's worth is capped at a quarter minute");
	quota_close(&quota, 0);
}

/* After a window's pace has ended (a quarter of the minute and 1% before its
 * end), before the band at its end: the pace has given its whole budget. */
static int64_t paced_out(int64_t window)
{
	return (window + 1) * MINUTE - MINUTE / 4;
}

/* Two runs take calls at `now` by turns until neither gets more: what each
 * got. */
static void take_turns(struct quota *qa, struct quota *qb, int64_t now, int *granted_a,
	int *granted_b)
{
	int refused = 0;

	*granted_a = *granted_b = 0;
	while (refused < 2) {
		int ra = quota_take(qa, now), rb = quota_take(qb, now);

		*granted_a += ra == 0;
		*granted_b += rb == 0;
		refused = (ra == 1) + (rb == 1);
	}
}

/* Two runs take turns until neither gets more: together exactly the budget. */
static void test_shared_budget(struct db *a, struct db *b)
{
	struct quota qa, qb;
	int64_t w = T0 / MINUTE + 10, now;
	int granted_a, granted_b;

	quota_open(&qa, a, "wxshare", 1000, MINUTE);
	quota_open(&qb, b, "wxshare", 1000, MINUTE);
	now = paced_out(w);
	is_str(qa.appid, qb.appid, "both runs count for one appid");
	take_turns(&qa, &qb, now, &granted_a, &granted_b);
	is_int(granted_a + granted_b, 1000, "two runs together get the budget, no more");
	ok(granted_a >= 400 && granted_b >= 400, "shared fairly (%d and %d)", granted_a, granted_b);
	is_int(ledger(a, w, "taken"), 1000, "the ledger says 1000 taken");
	ok(qa.retry_at_ms > now && qa.retry_at_ms <= now + MINUTE / 50,
		"a refused run looks again a little later (another may give back)");
	quota_close(&qa, now);
	quota_close(&qb, now);
}

static void test_give_back(struct db *db)
{
	struct quota quota;
	int64_t now = T0 + 20 * MINUTE + 20000, w = now / MINUTE;

	quota_open(&quota, db, "wxback", 1000, MINUTE);
	is_int(quota_take(&quota, now), 0, "one call taken");
	is_int(ledger(db, w, "taken"), quota.chunk, "a chunk is reserved (%d)", quota.chunk);
	is_int(quota_release(&quota, now), 0, "released");
	is_int(ledger(db, w, "taken"), 1, "the unused rest went back");
	quota_close(&quota, now);
}

/* A call libcurl sent again: paid from what is held, else charged to the
 * ledger beyond the budget at the next write, where other runs see it. */
static void test_resent(struct db *db)
{
	struct quota quota;
	int64_t w = T0 / MINUTE + 22, now;

	quota_open(&quota, db, "wxresent", 2, MINUTE);
	now = paced_out(w);   /* (the pace gives a budget of 2 late) */
	is_int(quota.chunk, 1, "a budget of 2: one call a reservation");
	is_int(quota_take(&quota, now), 0, "one call taken");
	quota_resent(&quota, now + 10);
	is_int(quota.owed, 1, "sent again with nothing held: owed");
	is_int(quota_take(&quota, now + 20), 1, "... and paid at the next reservation: none left");
	is_int(ledger(db, w, "taken"), 2, "... the ledger has both calls");
	quota_resent(&quota, now + 30);
	is_int(quota_release(&quota, now + 40), 0, "another sent again, then released");
	is_int(ledger(db, w, "taken"), 3, "... charged beyond the budget: WeChat counted it");
	quota_close(&quota, now);

	/* Resends owed in mid-window, then one in the band before its end,
	 * none written yet: all reach the ledger, none dropped. */
	w += 2;
	quota_open(&quota, db, "wxresent2", 2, MINUTE);
	now = paced_out(w) - 1000;
	is_int(quota_take(&quota, now), 0, "a run winding down: its last call taken");
	quota_resent(&quota, now + 10);
	quota_resent(&quota, now + 20);
	quota_resent(&quota, (w + 1) * MINUTE - 50);
	is_int(quota_end(&quota, now + 30), 0, "ended with 3 resends owed");
	is_int(ledger(db, w, "taken"), 4, "... the window has its call and the 3 resends");
	quota_close(&quota, 0);
}

static void test_band_charges_both(struct db *db)
{
	struct quota quota;
	int64_t boundary = T0 + 31 * MINUTE, w = boundary / MINUTE;

	quota_open(&quota, db, "wxband", 1000, MINUTE);
	is_int(quota_take(&quota, boundary - 10), 0, "a call 10 ms before a boundary");
	is_int(ledger(db, w - 1, "taken"), quota.chunk, "charged to the window ending");
	is_int(ledger(db, w, "taken"), quota.chunk, "and to the one starting");
	is_int(quota_take(&quota, boundary + MINUTE / 2), 0, "a call mid-window");
	is_int(ledger(db, w, "taken"), 1 + quota.chunk, "only its window, after the band's rest "
		"went back");
	quota_close(&quota, boundary + MINUTE / 2);
}

/* A band call answered before the boundary counted in the window ending: its
 * charge to the next window goes back to the ledger as the band ends, where
 * that window's pace counts it free. */
static void test_credit(struct db *db)
{
	struct quota quota;
	struct quota_slot sent;
	int64_t boundary = T0 + 51 * MINUTE, w = boundary / MINUTE;

	quota_open(&quota, db, "wxcredit", 1000, MINUTE);
	is_int(quota_take(&quota, boundary - 10), 0, "a band call");
	sent = quota.slot;
	quota_answered(&quota, &sent, boundary - quota.early_ms - 5);
	quota_answered(&quota, &sent, boundary - quota.early_ms + 5);
	quota_answered(&quota, &sent, boundary + 5);
	is_int(quota.credit, 1, "one credit: answered well before the boundary; the others may count "
		"after it (or after WeChat's, if its clock is ahead)");
	is_int(quota_take(&quota, boundary + MINUTE / 2), 0, "a call in the next window");
	is_int(ledger(db, w, "taken"), quota.chunk, "the credit went back: the window has only the "
		"chunk reserved in it");
	is_int(quota.credit, 0, "... and no credit is left");
	quota_close(&quota, boundary + MINUTE / 2);

	/* A run that ends in the band gives its credit back with the calls it
	 * holds: the next window's ledger keeps only what may count there. */
	boundary += 2 * MINUTE;
	w = boundary / MINUTE;
	quota_open(&quota, db, "wxcredit", 1000, MINUTE);
	is_int(quota_take(&quota, boundary - 10), 0, "a band call, at the end of a run");
	sent = quota.slot;
	quota_answered(&quota, &sent, boundary - quota.early_ms - 5);
	is_int(ledger(db, w, "taken"), quota.chunk, "a chunk charged to the next window");
	is_int(quota_end(&quota, boundary - 5), 0, "the run ends before the boundary");
	is_int(ledger(db, w, "taken"), 0, "the held calls and the credit given back to the next window");
	is_int(ledger(db, w - 1, "taken"), 1, "the window ending keeps its call");
	quota_close(&quota, boundary - 5);
}

/* The progress line's "quota N/budget this minute": the calls taken in the
 * window of now, by every run, also in the bands around a boundary and while
 * a credit is spent without reading the ledger. */
static void test_taken_now(struct db *a, struct db *b)
{
	struct quota qa, qb;
	struct quota_slot sent;
	int64_t boundary = T0 + 71 * MINUTE, w = boundary / MINUTE;

	quota_open(&qa, a, "wxshown", 1000, MINUTE);
	quota_open(&qb, b, "wxshown", 1000, MINUTE);
	is_int(quota_taken_now(&qa, boundary - MINUTE / 2), 0, "nothing read yet: 0");
	is_int(quota_take(&qb, boundary - MINUTE / 2), 0, "another run takes calls mid-window");
	is_int(quota_take(&qa, boundary - 10), 0, "this one a call 10 ms before the boundary");
	is_int(quota_taken_now(&qa, boundary - 10), 2 * qa.chunk,
		"before the boundary: the window ending's calls, both runs' (not the next window's)");
	sent = qa.slot;
	quota_answered(&qa, &sent, boundary - qa.early_ms - 5);   /* a credit in the next window */
	is_int(quota_take(&qa, boundary + 10), 0, "a call 10 ms after it (the band's calls held)");
	is_int(quota_taken_now(&qa, boundary + 10), qa.chunk,
		"after the boundary: the new window's, the band's chunk");
	is_int(quota_take(&qa, boundary + MINUTE / 2), 0, "mid-window: a call spent from the credit");
	is_int(quota_taken_now(&qa, boundary + MINUTE / 2), ledger(a, w, "taken"),
		"... the new window's calls as the ledger has them (the band's rest given back), not 0");
	ok(ledger(a, w, "taken") > 0, "... (%lld)", (long long)ledger(a, w, "taken"));
	quota_close(&qa, boundary + MINUTE / 2);
	quota_close(&qb, boundary + MINUTE / 2);
}

static void test_spent(struct db *a, struct db *b)
{
	struct quota qa, qb;
	int64_t now = T0 + 40 * MINUTE + 20000, w = now / MINUTE;

	quota_open(&qa, a, "wxspent", 1000, MINUTE);
	quota_open(&qb, b, "wxspent", 1000, MINUTE);
	is_int(quota_take(&qa, now), 0, "a call");
	is_int(quota_spent(&qa, now), 0, "WeChat answered 45009");
	is_int(ledger(a, w, "spent"), 1, "the window is marked spent");
	is_int(ledger(a, w, "refused"), 1, "the refusal is counted");
	is_int(quota_take(&qa, now + 400), 1, "no more calls in that window here");
	is_int(quota_take(&qb, now + 400), 1, "nor in the other run");
	is_int(quota_take(&qb, now + MINUTE), 0, "the next window is open again");
	quota_close(&qa, now + MINUTE);
	quota_close(&qb, now + MINUTE);
}

/* A 45009 answered after a boundary marks the window the call was sent in,
 * not the next one: that one may well have room. */
static void test_spent_late(struct db *db)
{
	struct quota quota;
	int64_t boundary = T0 + 61 * MINUTE, w = boundary / MINUTE;

	quota_open(&quota, db, "wxlate", 1000, MINUTE);
	is_int(quota_take(&quota, boundary - MINUTE / 2), 0, "a call");
	is_int(quota_spent(&quota, boundary - MINUTE / 2), 0, "answered 45009 after the boundary");
	is_int(ledger(db, w - 1, "spent"), 1, "its window is spent");
	ok(ledger(db, w, "spent") != 1, "the next one is not");
	is_int(quota_take(&quota, boundary + MINUTE / 2), 0, "calls go on in the next window");
	quota_close(&quota, boundary + MINUTE / 2);
}

/* A 45009 for a call sent just after a boundary, inside the allowance for
 * WeChat's clock lagging ours, marks the window before: the new one goes on. */
static void test_spent_early(struct db *db)
{
	struct quota quota;
	int64_t boundary = T0 + 81 * MINUTE, w = boundary / MINUTE;

	quota_open(&quota, db, "wxearly", 1000, MINUTE);
	is_int(quota_take(&quota, boundary + 10), 0, "a call 10 ms after a boundary");
	is_int(quota_spent(&quota, boundary + 10), 0, "answered 45009");
	is_int(ledger(db, w - 1, "spent"), 1, "the window before is marked spent");
	ok(ledger(db, w, "spent") != 1, "the new one is not");
	is_int(quota_take(&quota, boundary + MINUTE / 2), 0, "calls go on in the new window");
	quota_close(&quota, boundary + MINUTE / 2);
}

/* Holds the DB's write lock from another process for `ms`; returns once it
 * is held. */
static pid_t hold_lock(const char *path, int ms)
{
	int ready[2];
	pid_t child;
	char byte;

	if (pipe(ready) || (child = fork()) < 0)
		return -1;
	if (child == 0) {
		struct db locker;

		if (db_open(&locker, path, 5000) || db_begin_immediate(&locker))
			_exit(1);
		if (write(ready[1], "x", 1) != 1)
			_exit(1);
		usleep((useconds_t)ms * 1000);
		db_rollback(&locker);
		_exit(0);
	}
	close(ready[1]);
	if (read(ready[0], &byte, 1) != 1)
		child = -1;
	close(ready[0]);
	return child;
}

/* A connection of its own and a quota on it; 0 when both are open. */
static int open_quota(const char *path, struct db *db, struct quota *quota, const char *appid,
	int64_t minute)
{
	if (db_open(db, path, 5000)) {
		ok(0, "a connection");
		return -1;
	}
	quota_open(quota, db, appid, 1000, minute);
	return 0;
}

/* Two 45009s for one window while another process holds the ledger: neither
 * waits for the lock nor fails, this run stops calling at once, and the
 * ledger is not marked yet. Returns 0 once set up so. */
static int spent_while_locked(const char *path, struct db *db, struct quota *quota,
	const char *appid, int64_t now)
{
	int64_t started;
	pid_t locker;
	int status = 0;

	if (open_quota(path, db, quota, appid, MINUTE))
		return -1;
	is_int(quota_take(quota, now), 0, "a call");
	locker = hold_lock(path, 600);
	ok(locker > 0, "another process holds the DB");
	started = quota_monotonic_ms();
	is_int(quota_spent(quota, now), 0, "45009 with the ledger locked: not a failure");
	is_int(quota_spent(quota, now + 1), 0, "another for the same window");
	ok(quota_monotonic_ms() - started < 300, "neither waited for the lock (%lld ms)",
		(long long)(quota_monotonic_ms() - started));
	is_int(quota_take(quota, now + 400), 1, "this run makes no more calls in the window");
	waitpid(locker, &status, 0);
	ok(ledger(db, now / MINUTE, "spent") != 1, "not yet marked in the ledger");
	return 0;
}

/* ... and the window is marked with the next reservation, or as the run ends. */
static void test_spent_locked(const char *path)
{
	for (int at_end = 0; at_end < 2; at_end++) {
		struct db db;
		struct quota quota;
		int64_t now = T0 + (90 + 5 * at_end) * MINUTE + 20000, w = now / MINUTE;

		if (spent_while_locked(path, &db, &quota, at_end ? "wxpending" : "wxlocked", now))
			return;
		if (!at_end)
			is_int(quota_take(&quota, now + MINUTE), 0, "the next window: a reservation");
		quota_close(&quota, now + MINUTE);
		is_int(ledger(&db, w, "spent"), 1, at_end ? "marked as the run ended" :
			"which marked the spent window too");
		db_close(&db);
	}
}

/* A mark pending for the window running is not replaced by a late answer's
 * for the window before, and is written as soon as the lock is free, while
 * this run still waits for the next window. */
static void test_spent_pending_marked(const char *path)
{
	struct db db;
	struct quota quota;
	int64_t now = T0 + 100 * MINUTE + 20000, w = now / MINUTE;
	pid_t locker;
	int status = 0;

	if (open_quota(path, &db, &quota, "wxmarked", MINUTE))
		return;
	is_int(quota_take(&quota, now), 0, "a call");
	locker = hold_lock(path, 400);
	ok(locker > 0, "another process holds the DB");
	is_int(quota_spent(&quota, now), 0, "45009 for the window running: pending");
	is_int(quota_spent(&quota, now - MINUTE / 2), 0, "a late 45009 for the window before");
	waitpid(locker, &status, 0);
	is_int(quota_take(&quota, now + 1000), 1, "still waiting for the next window");
	is_int(ledger(&db, w, "spent"), 1, "the window running is marked meanwhile");
	ok(ledger(&db, w - 1, "spent") != 1, "the one before is not");
	quota_close(&quota, now + MINUTE);
	db_close(&db);
}

/* A reservation that waited for the ledger's lock past the end of its slot is
 * not used: its calls would go out in a window it did not charge. */
static void test_reserve_waited(const char *path)
{
	struct db db;
	struct quota quota;
	int64_t minute = 1000, now = T0 + 500, w = now / minute;   /* mid-window */
	pid_t locker;
	int status = 0;

	if (open_quota(path, &db, &quota, "wxwaited", minute))
		return;
	locker = hold_lock(path, 700);
	ok(locker > 0, "another process holds the DB for 0.7 s of a 1 s window");
	is_int(quota_take(&quota, now), 1, "the reservation came too late for its window: no call");
	is_int((int)quota.retry_at_ms, 0, "try again at once");
	waitpid(locker, &status, 0);
	is_int(quota_take(&quota, now + 700), 0, "a call in the window it is now");
	ok(quota.slot.first_window == w + 1 || quota.slot.last_window == w + 1,
		"charged to the new window");
	quota_close(&quota, now + 700);
	db_close(&db);
}

/* The wait for the lock may come in giving calls back as the slot changes:
 * it counts as well. */
static void test_release_waited(const char *path)
{
	struct db db;
	struct quota quota;
	int64_t minute = 1000, boundary = T0 + 7 * minute;
	pid_t locker;
	int status = 0;

	if (open_quota(path, &db, &quota, "wxrelease", minute))
		return;
	is_int(quota_take(&quota, boundary + 1), 0, "a call just after a boundary (calls held)");
	locker = hold_lock(path, 950);
	ok(locker > 0, "another process holds the DB for 0.95 s");
	is_int(quota_take(&quota, boundary + 50), 1,
		"the give-back waited into the next window: no call");
	waitpid(locker, &status, 0);
	quota_close(&quota, boundary + minute);
	db_close(&db);
}

/* Runs with different reserves share a window: each stops at its own budget,
 * whichever wrote the window's row first. */
static void test_own_budget(struct db *a, struct db *b)
{
	struct quota small, large;
	int64_t w = T0 / MINUTE + 70, now;
	int calls = 0;

	quota_open(&small, a, "wxown", 30, MINUTE);
	quota_open(&large, b, "wxown", 200, MINUTE);
	now = paced_out(w);
	while (quota_take(&small, now) == 0)
		calls++;
	is_int(calls, 30, "the run keeping a large reserve stops at its budget");
	calls = 0;
	while (quota_take(&large, now) == 0)
		calls++;
	is_int(calls, 170, "the other goes on to its own");
	is_int(ledger(a, w, "taken"), 200, "together: the larger budget, no more");
	quota_close(&small, now);
	quota_close(&large, now);
}

/* The budget goes out evenly over the window, never ahead of the pace: a
 * run that could send it all at once gets, at any moment, what the pace has
 * reached, in chunks. WeChat's minute, if it is any 60 s rather than the
 * clock's, then never sees more than the budget. */
static void test_paced(struct db *a, struct db *b)
{
	struct quota qa, qb;
	int64_t w = T0 / MINUTE + 110, start, span, now;
	int calls = 0;

	quota_open(&qa, a, "wxpaced", 1000, MINUTE);
	quota_open(&qb, b, "wxpaced", 1000, MINUTE);
	start = w * MINUTE + qa.early_ms;
	span = MINUTE - qa.early_ms - MINUTE / 4 - MINUTE / 100;
	is_int(quota_take(&qa, start), 1, "at the window's start: no call");
	is_int(qa.retry_at_ms, start + (qa.chunk * span + 999) / 1000,
		"... the first chunk when the pace has reached it (%lld ms on)",
		(long long)(qa.retry_at_ms - start));
	now = qa.retry_at_ms;
	while (quota_take(&qa, now) == 0)
		calls++;
	is_int(calls, qa.chunk, "... then a chunk");
	ok(qa.retry_at_ms > now, "... and the next later: no transaction to learn it");
	now = start + (500 * span + 999) / 1000;   /* (where the pace reaches 500) */
	while (quota_take(&qa, now) == 0)
		calls++;
	is_int(calls, 500, "halfway: half the budget");
	is_int(quota_take(&qb, now), 1, "... another run, too, waits for the pace");
	is_int(ledger(a, w, "taken"), 500, "... the ledger agrees");
	now = paced_out(w);
	while (quota_take(&qb, now) == 0)
		calls++;
	is_int(calls, 1000, "after the pace, before the band at its end: the whole budget");
	now = (w + 1) * MINUTE - 10;
	calls = 0;
	while (quota_take(&qa, now) == 0)
		calls++;
	quota_release(&qa, now);
	ok(ledger(a, w + 1, "taken") <= 0 && calls == 0,
		"in the band: the window ending has nothing left, the next is not charged");
	quota_close(&qa, now);
	quota_close(&qb, now);

	/* Calls that fell behind the pace (answers slower than the concurrency
	 * could carry) may go in the band, charged to both windows: the next
	 * window's pace then waits for them. */
	w += 2;   /* (each case in windows of its own: ledger() reads any appid's) */
	quota_open(&qa, a, "wxpaced-band", 1000, MINUTE);
	for (calls = 0; calls < 970 && quota_take(&qa, paced_out(w)) == 0; calls++)
		;
	quota_release(&qa, paced_out(w));
	now = (w + 1) * MINUTE - 10;
	calls = 0;
	while (quota_take(&qa, now) == 0)
		calls++;
	is_int(calls, 30, "in the band: what the window ending had left");
	is_int(ledger(a, w + 1, "taken"), 30, "... charged to the next window too");
	now = (w + 1) * MINUTE + qa.early_ms;
	is_int(quota_take(&qa, now), 1, "the next window: none at its start");
	is_int(qa.retry_at_ms, now + ((30 + qa.chunk) * span + 999) / 1000,
		"... until its pace has passed the band's calls by a chunk");
	quota_close(&qa, now);

	/* A run started late in a window gets what the pace has reached,
	 * nothing more. */
	quota_open(&qa, a, "wxlate-start", 1000, MINUTE);
	now = start + 4 * MINUTE + 3 * span / 4;
	calls = 0;
	while (quota_take(&qa, now) == 0)
		calls++;
	is_int(calls, 1000 * (3 * span / 4) / span / qa.chunk * qa.chunk,
		"started three quarters in: three quarters (in whole chunks)");
	quota_close(&qa, now);
}

/* Runs under one pace: equal budgets share it; a smaller budget (a larger
 * reserve) goes at the larger one's pace, up to its own budget; a slow
 * answer, which widens the band, does not hurry the pace; a credit goes
 * back to the ledger, not out ahead of the pace; calls given back may be
 * taken again at once. */
static void test_pace_shared(struct db *a, struct db *b)
{
	struct quota qa, qb, small;
	int64_t w = T0 / MINUTE + 130, start, span, now;
	int calls_a, calls_b;
	struct quota_slot sent;

	quota_open(&qa, a, "wxpace-share", 1000, MINUTE);
	quota_open(&qb, b, "wxpace-share", 1000, MINUTE);
	start = w * MINUTE + qa.early_ms;
	span = MINUTE - qa.early_ms - MINUTE / 4 - MINUTE / 100;
	now = start + (600 * span + 999) / 1000;   /* the pace at 600 */
	take_turns(&qa, &qb, now, &calls_a, &calls_b);
	is_int(calls_a + calls_b, 600, "two runs at one pace: together what it has reached");
	ok(calls_a >= 200 && calls_b >= 200, "... shared (%d and %d)", calls_a, calls_b);
	quota_close(&qa, now);
	quota_close(&qb, now);

	w += 2;   /* (each case in windows of its own: ledger() reads any appid's) */
	start += 2 * MINUTE;
	quota_open(&qa, a, "wxpace-own", 1000, MINUTE);
	quota_open(&small, b, "wxpace-own", 600, MINUTE);
	now = start + (500 * span + 999) / 1000;
	for (calls_a = 0; quota_take(&qa, now) == 0; calls_a++)
		;
	is_int(calls_a, 500, "a run of budget 1000 at the pace of 500");
	is_int(quota_take(&small, now), 1, "... one of budget 600 waits for that pace too");
	now = start + (700 * span + 999) / 1000;
	for (calls_b = 0; quota_take(&small, now) == 0; calls_b++)
		;
	is_int(calls_b, 100, "at 700: the smaller takes at the larger's pace, up to its own 600");
	for (calls_a = 0; quota_take(&qa, now) == 0; calls_a++)
		;
	is_int(calls_a, 100, "... the larger the rest of its pace");
	quota_close(&qa, now);
	quota_close(&small, now);

	w += 2;
	start += 2 * MINUTE;
	quota_open(&qa, a, "wxpace-slow", 1000, MINUTE);
	quota_open(&qb, b, "wxpace-slow", 1000, MINUTE);
	now = start + (300 * span + 999) / 1000;
	for (calls_a = 0; quota_take(&qa, now) == 0; calls_a++)
		;
	quota_observe(&qb, now, 5000);
	ok(quota_late_ms(&qb) > quota_late_ms(&qa), "a run that saw a 5 s answer: its band grew");
	is_int(quota_take(&qb, now), 1, "... the pace gives it no more than the other run had (%d)",
		calls_a);
	quota_close(&qa, now);
	quota_close(&qb, now);

	w += 2;
	start += 2 * MINUTE;
	quota_open(&qa, a, "wxpace-back", 1000, MINUTE);
	now = start + (qa.chunk * span + 999) / 1000;   /* the pace at a chunk */
	is_int(quota_take(&qa, now), 0, "a call (the chunk the pace allows reserved)");
	is_int(quota_release(&qa, now + 10), 0, "... the rest given back");
	is_int(quota_take(&qa, now + 20), 0, "... and taken again at once, not at the pace's next "
		"chunk, as if they had been used");
	quota_close(&qa, now + 20);

	/* Band calls answered before the boundary (calls behind the pace sent
	 * in the band): their charge to the next window goes back to the
	 * ledger, so they do not go out again at once as that window's pace
	 * starts. */
	w += 2;
	quota_open(&qa, a, "wxpace-credit", 1000, MINUTE);
	while (quota_take(&qa, paced_out(w)) == 0 && ledger(a, w, "taken") < 970)
		;
	quota_release(&qa, paced_out(w));
	now = (w + 1) * MINUTE - 2 * qa.early_ms - 10;
	for (calls_a = 0; quota_take(&qa, now) == 0; calls_a++)
		;
	sent = qa.slot;
	for (int i = 0; i < calls_a; i++)
		quota_answered(&qa, &sent, now + 5);
	is_int(qa.credit, calls_a, "%d band calls answered before the boundary", calls_a);
	now = (w + 1) * MINUTE + qa.early_ms;
	is_int(quota_take(&qa, now), 1, "the next window's pace starts: no call");
	is_int(ledger(a, w + 1, "taken"), 0, "... its ledger had the band's charges given back");
	quota_close(&qa, now);
}

int main(void)
{
	char path[] = "/tmp/qrpool-test-quota.XXXXXX";
	int fd = mkstemp(path);
	struct db a, b;

	close(fd);
	if (db_open(&a, path, 5000) || db_open(&b, path, 5000)) {
		ok(0, "staging DB opened");
		return tap_done();
	}
	test_slots(&a);
	test_shared_budget(&a, &b);
	test_give_back(&a);
	test_resent(&a);
	test_band_charges_both(&a);
	test_credit(&a);
	test_taken_now(&a, &b);
	test_spent(&a, &b);
	test_spent_late(&a);
	test_own_budget(&a, &b);
	test_spent_early(&a);
	test_spent_locked(path);
	test_reserve_waited(path);
	test_release_waited(path);
	test_spent_pending_marked(path);
	test_paced(&a, &b);
	test_pace_shared(&a, &b);
	db_close(&a);
	db_close(&b);
	unlink(path);
	return tap_done();
}

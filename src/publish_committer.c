#include "publish_committer.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "exitcode.h"
#include "interrupt.h"
#include "log.h"

void publish_batch_free(struct publish_batch *batch)
{
	while (batch) {
		struct publish_batch *next = batch->next;

		for (size_t i = 0; i < batch->count; i++)
			free(batch->deliveries[i].message);
		free(batch->deliveries);
		free(batch);
		batch = next;
	}
}

/* Records one delivery; *recorded is 0 when another run had recorded the code. */
static int committer_record(struct publish_committer *committer,
	const struct publish_delivery *delivery, int *recorded)
{
	sqlite3_stmt *stmt = committer->mark_published;
	int rc;

	sqlite3_reset(stmt);
	sqlite3_bind_int(stmt, 1, delivery->partition);
	/* None when Kafka confirms a retried batch it had already written
	 * (idempotence's duplicate): delivered, its offset unknown. */
	if (delivery->offset >= 0)
		sqlite3_bind_int64(stmt, 2, delivery->offset);
	else
		sqlite3_bind_null(stmt, 2);
	sqlite3_bind_int64(stmt, 3, delivery->at);
	sqlite3_bind_int64(stmt, 4, delivery->at);
	sqlite3_bind_int64(stmt, 5, delivery->message->code_id);
	if ((rc = sqlite3_step(stmt)) != SQLITE_DONE)
		return db_fail(&committer->db, rc, "recording a delivery");
	*recorded = sqlite3_changes(committer->db.handle) > 0;
	if (!*recorded || !delivery->message->drop_image)
		return 0;
	stmt = committer->drop_image;
	sqlite3_reset(stmt);
	sqlite3_bind_int64(stmt, 1, delivery->message->code_id);
	if ((rc = sqlite3_step(stmt)) != SQLITE_DONE)
		return db_fail(&committer->db, rc, "dropping a published image");
	return 0;
}

/* Prints the committed batch's recorded items and counts them. */
static int committer_print(struct publish_committer *committer, const struct publish_batch *batch,
	const char *recorded)
{
	int64_t published = 0, already = 0;
	int failed = 0;

	/* Once stdout failed (the next stage gone), the lines are not written:
	 * the codes are recorded all the same, the DB being the truth. */
	pthread_mutex_lock(&committer->lock);
	committer->printing_since = db_monotonic();
	pthread_mutex_unlock(&committer->lock);
	failed = committer->out_failed;
	for (size_t i = 0; i < batch->count; i++) {
		if (!recorded[i]) {
			already++;
			continue;
		}
		published++;
		failed = failed || fputs(batch->deliveries[i].message->line, committer->out) == EOF ||
			putc('\n', committer->out) == EOF;
	}
	failed = failed || fflush(committer->out) != 0;
	if (failed && !committer->out_failed)
		log_error("writing to stdout: %s", strerror(errno));
	committer->out_failed = failed;
	pthread_mutex_lock(&committer->lock);
	committer->printing_since = 0;
	committer->published += published;
	committer->already += already;
	pthread_mutex_unlock(&committer->lock);
	return failed ? EXIT_IO : 0;
}

static int committer_by_code(const void *a, const void *b)
{
	int64_t x = ((const struct publish_delivery *)a)->message->code_id;
	int64_t y = ((const struct publish_delivery *)b)->message->code_id;

	return (x > y) - (x < y);
}

/* One transaction for the batch, then its items on stdout. *committed says
 * whether the transaction was (the status alone cannot: a DB I/O error and a
 * failed write to stdout after the commit are both EXIT_IO). The deliveries
 * come in partition order; rows updated in key order cost the B-trees less. */
static int committer_commit(struct publish_committer *committer, struct publish_batch *batch,
	int *committed)
{
	char *recorded = calloc(batch->count ? batch->count : 1, 1);
	int status;

	*committed = 0;
	if (!recorded)
		return EXIT_INTERNAL;
	qsort(batch->deliveries, batch->count, sizeof *batch->deliveries, committer_by_code);
	status = db_begin_immediate_quietly(&committer->db);
	for (size_t i = 0; !status && i < batch->count; i++) {
		int one = 0;
		status = committer_record(committer, &batch->deliveries[i], &one);
		recorded[i] = (char)one;
	}
	if (!status)
		status = db_commit(&committer->db);
	if (status) {
		db_rollback(&committer->db);
	} else {
		*committed = 1;
		status = committer_print(committer, batch, recorded);
	}
	free(recorded);
	return status;
}

/* 1 once a DB locked by another process is no longer waited out: the end of
 * the input (a stop's too: deliveries Kafka confirms meanwhile must still be
 * recorded, or they go again) came and give_up_at passed, or a second
 * signal. Under the lock. */
static int committer_late(const struct publish_committer *committer)
{
	return interrupt_insisted() || (committer->finishing && db_monotonic() >= committer->give_up_at);
}

/* A lock wait of the committer's (busy_timeout at most) ends early only
 * after a stop, once the stop gives up: with no signal, a batch handed over
 * past give_up_at (the deliveries waited for until then) still gets its
 * busy_timeout. */
static int committer_give_up(void *arg)
{
	struct publish_committer *committer = arg;
	int late;

	if (!interrupt_requested())
		return 0;
	pthread_mutex_lock(&committer->lock);
	late = committer_late(committer);
	pthread_mutex_unlock(&committer->lock);
	return late;
}

/* The oldest waiting batch goes aside, to be tried once more at the end. It
 * leaves the queue, making room. Under the lock. */
static void committer_set_aside(struct publish_committer *committer)
{
	struct publish_batch *batch = committer->queue, **tail = &committer->retry;

	committer->queue = batch->next;
	committer->queued--;
	pthread_cond_broadcast(&committer->changed);
	batch->next = NULL;
	while (*tail)
		tail = &(*tail)->next;
	*tail = batch;
}

/* The oldest batch committed: off the queue, making room. Under the lock. */
static void committer_pop(struct publish_committer *committer)
{
	struct publish_batch *batch = committer->queue;

	committer->queue = batch->next;
	committer->queued--;
	pthread_cond_broadcast(&committer->changed);
	batch->next = NULL;
	publish_batch_free(batch);
}

/* Waits for the oldest batch to try (it stays queued until committed), or
 * NULL once closing with none left. After the DB was found locked, it is
 * tried again every second; once late, it and every batch after it go aside
 * untried (each try would wait busy_timeout). Under the lock. */
static struct publish_batch *committer_next(struct publish_committer *committer,
	const struct timespec *retry_at)
{
	for (;;) {
		if (!committer->queue) {
			if (committer->closing)
				return NULL;
			pthread_cond_wait(&committer->changed, &committer->lock);
		} else if (!committer->locked) {
			return committer->queue;
		} else if (committer_late(committer)) {
			committer_set_aside(committer);
		} else if (pthread_cond_timedwait(&committer->changed, &committer->lock, retry_at) ==
				ETIMEDOUT && !committer_late(committer)) {
			return committer->queue;   /* (late by now: set aside on the next turn) */
		}
	}
}

/* At the end, the batches set aside are tried once more, oldest first. One
 * that fails is left unrecorded; a lock stops the tries (each would wait as
 * long), other failures (a refused row) do not. Under the lock. */
static void committer_last_tries(struct publish_committer *committer)
{
	struct publish_batch *retry = committer->retry, *batch;
	int locked = 0;

	committer->retry = NULL;
	for (batch = retry; batch; batch = batch->next) {
		int committed = 0, status = EXIT_TEMPFAIL;

		if (!locked) {
			pthread_mutex_unlock(&committer->lock);
			status = committer_commit(committer, batch, &committed);
			pthread_mutex_lock(&committer->lock);
		}
		committer->status = exitcode_worst(committer->status, status);
		if (!committed)
			committer->unrecorded += (int64_t)batch->count;
		locked = locked || (!committed && status == EXIT_TEMPFAIL);
	}
	publish_batch_free(retry);
}

static void *committer_run(void *argument)
{
	struct publish_committer *committer = argument;
	struct publish_batch *batch;
	struct timespec retry_at = { 0, 0 };

	pthread_setname_np(pthread_self(), "committer");   /* for top -H and profilers */
	pthread_mutex_lock(&committer->lock);
	while ((batch = committer_next(committer, &retry_at))) {
		int status, committed;

		pthread_mutex_unlock(&committer->lock);
		status = committer_commit(committer, batch, &committed);
		pthread_mutex_lock(&committer->lock);
		if (committed) {
			/* stdout may have failed after the commit: said, and kept */
			committer->status = exitcode_worst(committer->status, status);
			if (committer->locked)
				log_info("the staging DB is free again: the deliveries that waited are recorded");
			committer->locked = 0;
			committer_pop(committer);
		} else if (status == EXIT_TEMPFAIL) {
			/* Another process holding the DB past busy_timeout is no reason
			 * to stop reading: the deliveries wait, tried every second. */
			if (!committer->locked)
				log_warn("the staging DB is locked by another process: deliveries wait for "
					"their commit, tried again every %d s", PUBLISH_LOCKED_RETRY_S);
			committer->locked = 1;
			clock_gettime(CLOCK_MONOTONIC, &retry_at);
			retry_at.tv_sec += PUBLISH_LOCKED_RETRY_S;
		} else {
			/* Another failure (the disk full) stops the reading; the later
			 * batches are still tried, this one once more at the end. */
			committer->status = exitcode_worst(committer->status, status);
			committer_set_aside(committer);
		}
	}
	committer_last_tries(committer);
	committer->done = 1;
	pthread_cond_broadcast(&committer->changed);
	pthread_mutex_unlock(&committer->lock);
	return NULL;
}

static void committer_release(struct publish_committer *committer)
{
	sqlite3_finalize(committer->mark_published);
	sqlite3_finalize(committer->drop_image);
	committer->mark_published = committer->drop_image = NULL;
	db_close(&committer->db);
}

static int committer_prepare(struct publish_committer *committer)
{
	struct db *db = &committer->db;
	int status;

	if ((status = db_prepare(db, &committer->mark_published, "UPDATE codes SET "
			"state = 'published', kafka_partition = ?, kafka_offset = ?, published_at = ?, "
			"updated_at = ? WHERE id = ? AND state = 'fetched'")) ||
	    (status = db_prepare(db, &committer->drop_image, "DELETE FROM images WHERE code_id = ?")))
		return status;
	return 0;
}

int publish_committer_start(struct publish_committer *committer, const struct config *config,
	FILE *out)
{
	pthread_condattr_t attr;
	sigset_t all, saved;
	int status, rc;

	memset(committer, 0, sizeof *committer);
	committer->out = out;
	if ((status = db_open(&committer->db, config->db_path, config->busy_timeout_ms)))
		return status;
	if ((status = committer_prepare(committer))) {
		committer_release(committer);
		return status;
	}
	pthread_mutex_init(&committer->lock, NULL);
	/* Its timed waits on the monotonic clock, as every wait here: a step of
	 * the wall clock (NTP, a VM resumed) must not stretch a retry. */
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&committer->changed, &attr);
	pthread_condattr_destroy(&attr);
	db_busy_until(&committer->db, committer_give_up, committer);
	/* Signals are for the main thread, whose waits they must end; here one
	 * would only interrupt a write to stdout. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &saved);
	rc = pthread_create(&committer->thread, NULL, committer_run, committer);
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
	if (rc) {
		log_error("cannot start a thread: %s", strerror(rc));
		committer_release(committer);   /* (its lock waits ask for the mutex) */
		pthread_cond_destroy(&committer->changed);
		pthread_mutex_destroy(&committer->lock);
		return EXIT_INTERNAL;
	}
	committer->running = 1;
	return 0;
}

/* Waits on `changed` for 100 ms at most: waits that a signal must be able to
 * end (the handler only sets a flag) are made of these. Under the lock. */
static void committer_wait_briefly(struct publish_committer *committer)
{
	struct timespec until;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_nsec += 100 * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&committer->changed, &committer->lock, &until);
}

int publish_committer_submit(struct publish_committer *committer, struct publish_batch *batch)
{
	struct publish_batch **tail;
	int status;

	pthread_mutex_lock(&committer->lock);
	/* Behind (stdout blocked, the DB slow): wait for room, in short waits,
	 * as a signal must end the reading and not this wait. */
	while (committer->queued >= PUBLISH_QUEUE_MAX && !interrupt_requested() &&
	       !committer_late(committer))
		committer_wait_briefly(committer);
	for (tail = &committer->queue; *tail; tail = &(*tail)->next)
		;
	batch->next = NULL;
	*tail = batch;
	committer->queued++;
	pthread_cond_broadcast(&committer->changed);
	status = committer->status;
	pthread_mutex_unlock(&committer->lock);
	return status;
}

int publish_committer_full(struct publish_committer *committer)
{
	int full;

	pthread_mutex_lock(&committer->lock);
	full = committer->queued >= PUBLISH_QUEUE_MAX;
	pthread_mutex_unlock(&committer->lock);
	return full;
}

int64_t publish_committer_published(struct publish_committer *committer)
{
	int64_t published;

	if (!committer->running && !committer->abandoned)   /* (the lock is gone once joined) */
		return committer->published;
	pthread_mutex_lock(&committer->lock);
	published = committer->published;
	pthread_mutex_unlock(&committer->lock);
	return published;
}

void publish_committer_finishing(struct publish_committer *committer, double give_up_at)
{
	if (!committer->running)
		return;
	pthread_mutex_lock(&committer->lock);
	if (!committer->finishing)
		committer->give_up_at = give_up_at;
	committer->finishing = 1;
	pthread_cond_broadcast(&committer->changed);
	pthread_mutex_unlock(&committer->lock);
}

/* Waits for the thread's end, in short waits: a second signal gives up on a
 * thread stuck writing to a stdout nobody reads (its batch committed, its
 * lines not all out for PUBLISH_STUCK_SECONDS), and only then: a committer
 * still recording deliveries is waited for, or they would go again. 1 if it
 * ended. */
static int committer_wait_done(struct publish_committer *committer)
{
	int done;

	pthread_mutex_lock(&committer->lock);
	while (!committer->done && !(interrupt_insisted() && committer->printing_since > 0 &&
			db_monotonic() - committer->printing_since >= PUBLISH_STUCK_SECONDS))
		committer_wait_briefly(committer);
	done = committer->done;
	pthread_mutex_unlock(&committer->lock);
	return done;
}

int publish_committer_finish(struct publish_committer *committer)
{
	if (!committer->running)
		return committer->status;
	publish_committer_finishing(committer, 0);
	pthread_mutex_lock(&committer->lock);
	committer->closing = 1;
	pthread_cond_broadcast(&committer->changed);
	pthread_mutex_unlock(&committer->lock);
	if (!committer_wait_done(committer)) {
		/* Stuck in a write to stdout (or a commit): left to the process's
		 * end, which must not flush stdout (publish_run's caller _exits). */
		log_warn("given up at a second signal with stdout not read: the lines of codes "
			"already published may not all be written (the staging DB has them as "
			"published), and deliveries not yet recorded stay fetched");
		committer->abandoned = 1;
		committer->running = 0;
		return EXIT_TEMPFAIL;
	}
	pthread_join(committer->thread, NULL);
	committer->running = 0;
	committer_release(committer);   /* (its lock waits ask for the mutex) */
	pthread_cond_destroy(&committer->changed);
	pthread_mutex_destroy(&committer->lock);
	return committer->status;
}

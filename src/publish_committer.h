/* The publisher's committer: records confirmed deliveries in the staging DB
 * on a thread and a connection of its own, one transaction per batch, and
 * prints each batch's items once it committed. Recording costs as much as
 * everything else the publisher does per code, so the thread that looks
 * codes up and feeds Kafka hands the batches over rather than waiting. */
#ifndef QRPOOL_PUBLISH_COMMITTER_H
#define QRPOOL_PUBLISH_COMMITTER_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "db.h"

/* Batches waiting beyond this make the hand-over wait: memory stays bounded
 * when the disk is slower than Kafka. */
#define PUBLISH_QUEUE_MAX 8
/* A committer writing one batch's lines this long is stuck on stdout. */
#define PUBLISH_STUCK_SECONDS 1.0
/* A commit that met the DB locked past busy_timeout is tried again after this. */
#define PUBLISH_LOCKED_RETRY_S 1

struct publish_message {      /* one message on its way, Kafka's opaque */
	int64_t code_id;
	int drop_image;
	char line[];              /* the item line to print once recorded, no newline */
};

struct publish_delivery {     /* a confirmed delivery waiting for its commit */
	struct publish_message *message;
	int32_t partition;
	int64_t offset;
	int64_t at;               /* unix seconds of the confirmation */
};

struct publish_batch {
	struct publish_delivery *deliveries;
	size_t count, capacity;
	struct publish_batch *next;
};

struct publish_committer {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t changed;       /* a batch came, or left, or the end came */
	struct publish_batch *queue;  /* waiting, oldest first; the oldest leaves once committed */
	struct publish_batch *retry;  /* set aside: tried once more at the end */
	size_t queued;
	int finishing;                /* the input ended: a locked DB is waited out until... */
	double give_up_at;            /* ... this (db_monotonic time) */
	int closing;                  /* no more batches will come */
	int running;                  /* the thread was started and not joined */
	int done;                     /* the thread's work is over (under the lock) */
	int abandoned;                /* given up at a second signal while stuck: see finish */
	double printing_since;        /* db_monotonic() when the batch's lines began to go out; 0 */
	int locked;                   /* the oldest batch met the DB locked (said once) */
	struct db db;
	sqlite3_stmt *mark_published, *drop_image;
	FILE *out;
	int out_failed;               /* a write to `out` failed: said once, no more lines */
	/* Under the lock: */
	int64_t published;            /* recorded and printed */
	int64_t already;              /* delivered, but another run had recorded the code */
	int status;                   /* worst outcome: a failed commit, stdout */
	int64_t unrecorded;           /* delivered, but no commit could record them */
};

/* Opens its DB connection and starts the thread. 0 or an exit code. */
int publish_committer_start(struct publish_committer *committer, const struct config *config,
	FILE *out);

/* Hands a batch over (taken over, even on failure); waits while
 * PUBLISH_QUEUE_MAX batches wait already (a DB locked by another process
 * holds them up), but not after SIGINT/SIGTERM. Returns the committer's
 * status so far: not 0 once a commit failed otherwise than on a lock, and
 * reading should stop. */
int publish_committer_submit(struct publish_committer *committer, struct publish_batch *batch);

/* 1 if a batch handed over now would wait for room. */
int publish_committer_full(struct publish_committer *committer);

/* The codes recorded so far, for the progress line. */
int64_t publish_committer_published(struct publish_committer *committer);

/* The input ended: a DB locked by another process is waited out until
 * `give_up_at` (db_monotonic time; not after SIGINT/SIGTERM), and the hand-over
 * waits no longer either. */
void publish_committer_finishing(struct publish_committer *committer, double give_up_at);

/* Commits what waits, stops the thread and closes its connection. The
 * batches set aside (a failed commit, or a lock not waited out) get one more
 * try, oldest first: one that fails again is left unrecorded, and after one
 * that meets the lock again so are the rest, untried. Returns its status;
 * the counts are final. */
int publish_committer_finish(struct publish_committer *committer);

void publish_batch_free(struct publish_batch *batch);

#endif

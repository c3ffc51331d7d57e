/* A pool's consumer for qrpool-claim: a member of the pool's consumer group
 * (the online services' group, so depth stays true) that commits offsets only
 * for codes the caller has finished with, synchronously, and that can tell an
 * empty pool from a slow one. */
#ifndef QRPOOL_CONSUMER_H
#define QRPOOL_CONSUMER_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* consumer_next's answers besides 0 (a message) and exit codes. */
#define CONSUMER_EMPTY 1
#define CONSUMER_STOPPED 2
#define CONSUMER_UNASSIGNED 3   /* the group gave this member no partition */

struct consumer_partition {
	int32_t id;
	int at_end;                   /* caught up with the end offset */
	int64_t stored;               /* the offset to commit (past our last code), or -1 */
	int64_t acked;                /* the last offset the broker confirmed we committed, or -1 */
};

struct consumer {
	rd_kafka_t *handle;
	const struct pool_config *pool;
	const char *brokers;          /* for messages */
	int64_t timeout_ms;           /* kafka.timeout: silence this long = unreachable */
	struct consumer_partition *partitions;
	size_t partition_count, partition_capacity;
	int assigned;                 /* we hold an assignment (maybe of no partition) */
	int cooperative;              /* the group's rebalance protocol is COOPERATIVE */
	int ever_assigned;            /* the group has answered us once */
	double last_progress;         /* monotonic seconds of the last sign of life */
	double all_at_end_since;      /* 0 while some partition may hold codes */
	int brokers_down;             /* set by the error callback */
	char refused[256];            /* why Kafka refuses us (ACLs), from the error callback */
	char auth_refused[256];       /* why it refused our authentication, likewise */
	int stored;                   /* offsets stored since the last commit */
	int commit_lost;              /* partitions went to others with offsets not committed */
	int commit_failures;          /* synchronous commits failed in a row (the first is logged) */
	int async_failed;             /* a commit sent at once was refused: checked before the next */
	int paused;                   /* the assignment is paused: the caller waits for input */
	int idle_status;              /* an exit code an event said while paused, for consumer_next */
};

/* Codes handed out whose commit Kafka has not acknowledged, at most: beyond
 * (or once a commit sent at once was refused), consumer_commits_hold waits
 * for one before the next code. */
#define CONSUMER_UNACKED_MAX 8

/* Before the next code is taken: when CONSUMER_UNACKED_MAX codes handed out
 * wait for Kafka to acknowledge their commit, or a commit sent at once was
 * refused, commits what is stored and waits for the answer. Returns 0, or
 * EXIT_TEMPFAIL (logged) when Kafka refuses it: every code handed out past
 * it could reach an online service as well, so the caller stops. */
int consumer_commits_hold(struct consumer *consumer);

/* Joins the pool's group (subscribes to its topic). The struct must stay in
 * place until consumer_close: librdkafka's callbacks point at it. Returns 0,
 * EXIT_CONFIG (a bad kafka property) or EXIT_INTERNAL, logged. */
int consumer_open(struct consumer *consumer, const struct config *config,
	const struct pool_config *pool);

/* The next code. 0 with *message set (the caller destroys it and calls
 * consumer_done when it is bound or skipped); CONSUMER_EMPTY when every
 * assigned partition is at its end and nothing came for `wait_ms`
 * (CONSUMER_UNASSIGNED when none was assigned for that long);
 * CONSUMER_STOPPED on SIGINT/SIGTERM; EXIT_TEMPFAIL when Kafka does not answer;
 * EXIT_UPSTREAM when it refuses us (topic or group not authorized). */
int consumer_next(struct consumer *consumer, int64_t wait_ms, rd_kafka_message_t **message);

/* Serves the group, without waiting, while the caller waits for its next
 * record: rebalances are answered (a revocation commits first) instead of
 * held up, and the member is not put out for not polling. The partitions are
 * paused first, which drops what was fetched for them (it is fetched again,
 * from the next code, when consumer_next resumes them), so no code is taken. */
void consumer_idle(struct consumer *consumer);

/* Marks `message` finished: its offset is stored and committed at once,
 * asynchronously (the online services share the group: a partition handed to
 * one of them must not carry a bound code past its committed offset). */
void consumer_done(struct consumer *consumer, const rd_kafka_message_t *message);

/* Commits every finished offset, synchronously. 0 or EXIT_TEMPFAIL (logged:
 * the first of failures in a row as an error, a retry's at debug level, and
 * the commit that ends them). consumer->stored is 0 once nothing is left to
 * commit. Also EXIT_TEMPFAIL, with nothing more to commit, when partitions were
 * taken from us before their offsets could be committed (consumer->commit_lost). */
int consumer_commit(struct consumer *consumer);

/* Leaves the group and frees everything (commit first). */
void consumer_close(struct consumer *consumer);

/* A header's value as a string in buf, or NULL if absent. A value too long
 * for buf is cut and ends in "...": it matches no digest or pool name, so a
 * mangled header fails its check rather than being taken for none. */
const char *consumer_header(const rd_kafka_message_t *message, const char *name, char *buf,
	size_t size);

#endif

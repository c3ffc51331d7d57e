/* Kafka through librdkafka. Client settings come from the config file's kafka
 * section: bootstrap.servers from kafka.brokers, then every kafka.properties
 * entry passed to librdkafka untouched (SASL, SSL, compression, linger...), as
 * kcat's -X does. We never rename a librdkafka setting. */
#ifndef QRPOOL_KAFKA_H
#define QRPOOL_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"

/* A client configuration for a producer or a consumer. A producer is always
 * idempotent with acks=all: those two are forced (with a warning when
 * kafka.properties says otherwise), message.timeout.ms defaults to
 * kafka.timeout, and queue.buffering.max.kbytes to KAFKA_QUEUE_KBYTES.
 * librdkafka's own log lines become ours at info level (-v): a client's
 * complaints about a broker it cannot reach are details; the caller reports
 * what failed. `opaque` is handed to the callbacks. Returns
 * NULL after logging "file: kafka.properties: why" (a config error). */
rd_kafka_conf_t *kafka_conf_new(const struct config *config, rd_kafka_type_t type, void *opaque);

/* A producer's queue.buffering.max.kbytes unless kafka.properties sets it:
 * the images held for Kafka (librdkafka's default is 1 GB). */
#define KAFKA_QUEUE_KBYTES 65536

/* Sets one librdkafka property on `conf`: for a caller's own settings on top
 * of kafka_conf_new's. 0, or -1 after logging "file: kafka: why". */
int kafka_conf_set(rd_kafka_conf_t *conf, const struct config *config, const char *key,
	const char *value);

/* The value kafka.properties gives `key` (the last entry naming it, as that
 * is the one librdkafka keeps), or NULL when none names it. */
const char *kafka_property(const struct config *config, const char *key);

/* Whether the config names any broker (kafka.brokers, or bootstrap.servers
 * among the properties). */
int kafka_configured(const struct config *config);
/* 0 when it does; else EXIT_CONFIG, said: for a stage that needs Kafka,
 * which no later run without a config change would reach. */
int kafka_require(const struct config *config);
/* 0, or EXIT_CONFIG (said) when librdkafka refuses kafka.properties or a
 * pool's topic_properties: a typo there is a config error, not Kafka being
 * down. */
int kafka_check_config(const struct config *config);

/* A pool's topic settings for the producer `rk`: its defaults (the topic
 * properties among kafka.properties) with the pool's topic_properties over
 * them, acks=all and queuing.strategy=fifo forced again (warned of when
 * weakened). 0 with *out to give rd_kafka_topic_new (NULL when the pool has
 * none: the defaults), or EXIT_CONFIG (said: "file:line: pool 'x':
 * topic_properties: why"). */
int kafka_topic_conf_new(rd_kafka_t *rk, const struct config *config, const struct pool_config *pool,
	rd_kafka_topic_conf_t **out);
/* Writes a pool's topic settings as kafka_conf_dump does, after the client's
 * `conf`; nothing when it has no topic_properties. 0, EXIT_CONFIG or EXIT_IO. */
int kafka_topic_conf_dump(rd_kafka_conf_t *conf, const struct config *config,
	const struct pool_config *pool, FILE *out);

/* Creates the client from `conf`, which it consumes either way. NULL after
 * logging. */
rd_kafka_t *kafka_client_new(rd_kafka_type_t type, rd_kafka_conf_t *conf);

/* Writes librdkafka's merged settings, "# key = value" per line (libconfig
 * comments), secrets masked: what kcat's -X dump shows. 0 or -1. */
int kafka_conf_dump(rd_kafka_conf_t *conf, FILE *out);

/* Whether an error means Kafka could not be reached at all, as opposed to
 * one request being refused. */
int kafka_unreachable(rd_kafka_resp_err_t err);
/* A client's authentication refused (librdkafka's __AUTHENTICATION: the SASL
 * handshake or the credentials), said alike by every tool, with the reason
 * its error callback was given. librdkafka then only says the brokers are
 * down, which a rerun would not change: 69. */
#define KAFKA_AUTH_REFUSED "Kafka refused this client's authentication (%s): kafka.properties' " \
	"security.protocol and sasl.* settings must match the cluster's"
/* 1 for errors saying Kafka refuses this client (authorization): no retry
 * or rerun helps until its ACLs change. */
int kafka_refused(rd_kafka_resp_err_t err);
/* The topic's error in the cluster's metadata (not authorized, unknown), or
 * the metadata request's own; else NO_ERROR, with *count its partitions and,
 * when `health` is given, kafka_partition_health's words for them. */
rd_kafka_resp_err_t kafka_topic_metadata(rd_kafka_t *rk, const char *topic, int timeout_ms,
	int *count, char *health, size_t health_size);
/* What in a topic's metadata keeps an acks=all write waiting: partitions
 * without a leader, partitions with fewer replicas in sync than they have.
 * "" when none; the number of such partitions. */
int kafka_partition_health(const rd_kafka_metadata_topic_t *topic, char *out, size_t size);
/* 1 for errors refusing one message for what it is (larger than the client's
 * message.max.bytes or the topic's max.message.bytes, an invalid record):
 * sending it again fails the same way. */
int kafka_message_refused(rd_kafka_resp_err_t err);

struct kafka_depth {
	int64_t depth;        /* messages the pool's group has not consumed yet */
	int64_t lost;         /* messages retention dropped before the group consumed them */
	int64_t end;          /* the partitions' end offsets, summed: end - depth - lost is
	                       * where the group stands, so snapshots give consumption */
	int partitions;       /* 0: the topic does not exist (yet) */
	int ahead;            /* partitions where the group committed past the end (the
	                       * topic recreated, offsets reset): counted as empty */
};

/* Adds one partition: watermarks `low` and `high`, and the group's committed
 * offset (negative: none, so the partition counts from `low`). */
void kafka_depth_add(struct kafka_depth *depth, int64_t low, int64_t high, int64_t committed);

/* A pool's depth in Kafka: per partition, the end offset minus the offset the
 * pool's consumer group committed (from the low watermark where it committed
 * none), summed. Where the low watermark has passed the committed offset, the
 * messages in between were dropped by retention unread: counted in `lost`.
 * Reads only; never joins the group or commits. Takes at most `timeout_ms`.
 * Returns RD_KAFKA_RESP_ERR_NO_ERROR, or the error with `why` filled. Logs
 * nothing itself (it may run on several threads at once): a topic that does
 * not exist is out->partitions == 0. */
rd_kafka_resp_err_t kafka_measure_depth(const struct config *config, const struct pool_config *pool,
	int64_t timeout_ms, struct kafka_depth *out, char *why, size_t why_size);

#endif

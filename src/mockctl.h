/* Control of librdkafka's mock cluster through one-line text commands
 * ("broker-down 2", "produce-error NOT_LEADER_FOR_PARTITION 5"), for fault
 * tests. Parsing and applying are separate, so a command given on the command
 * line is checked before the cluster exists. */
#ifndef QRPOOL_MOCKCTL_H
#define QRPOOL_MOCKCTL_H

#include <stdint.h>
#include <stdio.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define MOCKCTL_TOPIC_NAME_MAX 249   /* Kafka's own limit */
#define MOCKCTL_ALL_BROKERS (-1)     /* the mock's "every broker" id */
#define MOCKCTL_NO_LEADER (-1)       /* the mock's "leader-less partition" */
#define MOCKCTL_WHY_SIZE 200

struct mockctl_topic {
	char name[MOCKCTL_TOPIC_NAME_MAX + 1];
	int partitions;
	int replication;    /* 0: min(3, brokers), as a real cluster's default */
};

enum mockctl_kind {
	MOCKCTL_BROKER_DOWN,
	MOCKCTL_BROKER_UP,
	MOCKCTL_RTT,
	MOCKCTL_LEADER,
	MOCKCTL_ERROR,
	MOCKCTL_BROKER_ERROR,
	MOCKCTL_CLEAR_ERRORS,
	MOCKCTL_TOPIC_ERROR,
	MOCKCTL_CREATE_TOPIC,
	MOCKCTL_COORDINATOR,
};

struct mockctl_command {
	enum mockctl_kind kind;
	int32_t broker;              /* broker id, MOCKCTL_ALL_BROKERS or MOCKCTL_NO_LEADER */
	int32_t partition;
	int16_t api;                 /* Kafka protocol ApiKey, e.g. 0 = Produce */
	rd_kafka_resp_err_t error;
	int count;                   /* how many requests fail */
	int rtt_ms;
	struct mockctl_topic topic;  /* its name: the group id, for MOCKCTL_COORDINATOR */
};

/* "NAME[:PARTITIONS[:REPLICATION]]"; unset parts are 3 partitions and the
 * default replication. */
int mockctl_parse_topic(const char *spec, struct mockctl_topic *topic, char *why);

/* Creates the topic on a cluster of `brokers` brokers. */
int mockctl_create_topic(rd_kafka_mock_cluster_t *cluster, int brokers,
	const struct mockctl_topic *topic, char *why);

/* One command line, without its newline. 0, or -1 with the reason in `why`
 * (at least MOCKCTL_WHY_SIZE bytes). */
int mockctl_parse(const char *line, struct mockctl_command *command, char *why);

/* Applies a parsed command. 0, or -1 with the mock's refusal in `why`. */
int mockctl_apply(rd_kafka_mock_cluster_t *cluster, int brokers,
	const struct mockctl_command *command, char *why);

/* The command list, one indented line per command, for --help. */
int mockctl_print_help(FILE *out);

#endif

#include "mockctl.h"

#include <stdarg.h>
#include <string.h>
#include <strings.h>

#include "parse.h"

#define MOCKCTL_ARGS_MAX 6
#define MOCKCTL_LINE_MAX 512
#define MOCKCTL_COUNT_MAX 100000
#define MOCKCTL_RTT_MAX 600000
#define MOCKCTL_PARTITIONS_MAX 10000

static int mockctl_fail(char *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int mockctl_fail(char *why, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, MOCKCTL_WHY_SIZE, fmt, ap);
	va_end(ap);
	return -1;
}

/* Kafka protocol request names. The public librdkafka headers do not export
 * them (RD_KAFKAP_* is internal), and the numbers are fixed by the protocol. */
static const struct { const char *name; int16_t key; } mockctl_apis[] = {
	{ "Produce", 0 }, { "Fetch", 1 }, { "ListOffsets", 2 }, { "Metadata", 3 },
	{ "OffsetCommit", 8 }, { "OffsetFetch", 9 }, { "FindCoordinator", 10 },
	{ "JoinGroup", 11 }, { "Heartbeat", 12 }, { "LeaveGroup", 13 },
	{ "SyncGroup", 14 }, { "ApiVersions", 18 }, { "InitProducerId", 22 },
	{ "AddPartitionsToTxn", 24 }, { "AddOffsetsToTxn", 25 }, { "EndTxn", 26 },
	{ "TxnOffsetCommit", 28 },
};

static int mockctl_parse_api(const char *text, int16_t *key, char *why)
{
	int64_t number;

	for (size_t i = 0; i < sizeof mockctl_apis / sizeof mockctl_apis[0]; i++)
		if (!strcasecmp(text, mockctl_apis[i].name)) {
			*key = mockctl_apis[i].key;
			return 0;
		}
	if (parse_int64(text, 0, INT16_MAX, &number, NULL) < 0)
		return mockctl_fail(why, "'%s' is not a Kafka API name (Produce, Fetch, "
			"Metadata, ...) or ApiKey number", text);
	*key = (int16_t)number;
	return 0;
}

/* An error by librdkafka's name, with or without the RD_KAFKA_RESP_ERR_
 * prefix, or by number; only codes librdkafka knows, to catch typos. */
static int mockctl_parse_error(const char *text, rd_kafka_resp_err_t *error, char *why)
{
	static const char prefix[] = "RD_KAFKA_RESP_ERR_";
	const struct rd_kafka_err_desc *descs;
	const char *name = text;
	size_t count;
	int64_t number;
	int numeric;

	if (!strncasecmp(name, prefix, sizeof prefix - 1))
		name += sizeof prefix - 1;
	numeric = parse_int64(text, INT32_MIN, INT32_MAX, &number, NULL) == 0;
	rd_kafka_get_err_descs(&descs, &count);
	for (size_t i = 0; i < count; i++) {
		if (!descs[i].name)
			continue;
		if (numeric ? descs[i].code == number : !strcasecmp(descs[i].name, name)) {
			*error = descs[i].code;
			return 0;
		}
	}
	return mockctl_fail(why, "'%s' is not a Kafka error name or code "
		"(e.g. NOT_LEADER_FOR_PARTITION or 6)", text);
}

static int mockctl_parse_number(const char *what, const char *text, int64_t min, int64_t max,
	int64_t *out, char *why)
{
	char reason[PARSE_WHY_SIZE];

	if (parse_int64(text, min, max, out, reason) < 0)
		return mockctl_fail(why, "%s: %s", what, reason);
	return 0;
}

/* "all" or a broker id; the mock numbers its brokers from 1. */
static int mockctl_parse_broker(const char *text, int32_t *broker, char *why)
{
	int64_t id;

	if (!strcmp(text, "all")) {
		*broker = MOCKCTL_ALL_BROKERS;
		return 0;
	}
	if (mockctl_parse_number("broker", text, 1, INT32_MAX, &id, why) < 0)
		return -1;
	*broker = (int32_t)id;
	return 0;
}

/* Topic names are limited to [a-zA-Z0-9._-], so ':' can separate the parts. */
static int mockctl_parse_topic_name(const char *text, size_t length, char *name, char *why)
{
	if (length == 0 || length > MOCKCTL_TOPIC_NAME_MAX)
		return mockctl_fail(why, "a topic name has 1 to %d characters",
			MOCKCTL_TOPIC_NAME_MAX);
	if (strspn(text, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
			< length)
		return mockctl_fail(why, "topic '%.*s': only letters, digits, '.', '_' and '-'",
			(int)length, text);
	memcpy(name, text, length);
	name[length] = '\0';
	return 0;
}

int mockctl_parse_topic(const char *spec, struct mockctl_topic *topic, char *why)
{
	const char *colon = strchr(spec, ':');
	char copy[MOCKCTL_LINE_MAX], *replication;
	int64_t number;

	topic->partitions = 3;
	topic->replication = 0;
	if (mockctl_parse_topic_name(spec, colon ? (size_t)(colon - spec) : strlen(spec),
			topic->name, why) < 0)
		return -1;
	if (!colon)
		return 0;
	if (strlen(colon + 1) >= sizeof copy)
		return mockctl_fail(why, "topic '%s': too long", spec);
	strcpy(copy, colon + 1);
	replication = strchr(copy, ':');
	if (replication)
		*replication++ = '\0';
	if (mockctl_parse_number("partitions", copy, 1, MOCKCTL_PARTITIONS_MAX, &number, why) < 0)
		return -1;
	topic->partitions = (int)number;
	if (!replication)
		return 0;
	if (mockctl_parse_number("replication", replication, 1, INT16_MAX, &number, why) < 0)
		return -1;
	topic->replication = (int)number;
	return 0;
}

int mockctl_create_topic(rd_kafka_mock_cluster_t *cluster, int brokers,
	const struct mockctl_topic *topic, char *why)
{
	int replication = topic->replication ? topic->replication : (brokers < 3 ? brokers : 3);
	rd_kafka_resp_err_t error;

	/* A real cluster refuses more replicas than brokers; the mock would
	 * quietly use fewer, and a test would then check the wrong thing. */
	if (replication > brokers)
		return mockctl_fail(why, "topic %s: replication %d exceeds the %d broker(s)",
			topic->name, replication, brokers);
	error = rd_kafka_mock_topic_create(cluster, topic->name, topic->partitions, replication);
	if (error)
		return mockctl_fail(why, "topic %s: %s", topic->name, rd_kafka_err2name(error));
	return 0;
}

/* Argument parsers, one per command; args[0] is the first argument. */

static int mockctl_args_broker(char **args, int count, struct mockctl_command *command, char *why)
{
	(void)count;
	return mockctl_parse_broker(args[0], &command->broker, why);
}

static int mockctl_args_rtt(char **args, int count, struct mockctl_command *command, char *why)
{
	int64_t ms;

	(void)count;
	if (mockctl_parse_broker(args[0], &command->broker, why) < 0 ||
			mockctl_parse_number("rtt", args[1], 0, MOCKCTL_RTT_MAX, &ms, why) < 0)
		return -1;
	command->rtt_ms = (int)ms;
	return 0;
}

static int mockctl_args_leader(char **args, int count, struct mockctl_command *command, char *why)
{
	int64_t partition;

	(void)count;
	if (mockctl_parse_topic_name(args[0], strlen(args[0]), command->topic.name, why) < 0 ||
			mockctl_parse_number("partition", args[1], 0, MOCKCTL_PARTITIONS_MAX - 1,
				&partition, why) < 0)
		return -1;
	command->partition = (int32_t)partition;
	if (!strcmp(args[2], "none")) {
		command->broker = MOCKCTL_NO_LEADER;
		return 0;
	}
	return mockctl_parse_broker(args[2], &command->broker, why);
}

/* "ERROR [COUNT]" at args[0], shared by the error commands. */
static int mockctl_args_error_count(char **args, int count, struct mockctl_command *command,
	char *why)
{
	int64_t times = 1;

	if (mockctl_parse_error(args[0], &command->error, why) < 0)
		return -1;
	if (count > 1 && mockctl_parse_number("count", args[1], 1, MOCKCTL_COUNT_MAX,
			&times, why) < 0)
		return -1;
	command->count = (int)times;
	return 0;
}

static int mockctl_args_error(char **args, int count, struct mockctl_command *command, char *why)
{
	if (mockctl_parse_api(args[0], &command->api, why) < 0)
		return -1;
	return mockctl_args_error_count(args + 1, count - 1, command, why);
}

static int mockctl_args_produce_error(char **args, int count, struct mockctl_command *command,
	char *why)
{
	command->api = 0;  /* Produce */
	return mockctl_args_error_count(args, count, command, why);
}

static int mockctl_args_broker_error(char **args, int count, struct mockctl_command *command,
	char *why)
{
	int64_t ms = 0;

	if (!strcmp(args[0], "all"))
		return mockctl_fail(why, "broker-error needs one broker id; use 'error' for all");
	if (mockctl_parse_broker(args[0], &command->broker, why) < 0 ||
			mockctl_args_error(args + 1, count - 1, command, why) < 0)
		return -1;
	if (count > 4 && mockctl_parse_number("rtt", args[4], 0, MOCKCTL_RTT_MAX, &ms, why) < 0)
		return -1;
	command->rtt_ms = (int)ms;
	return 0;
}

static int mockctl_args_api(char **args, int count, struct mockctl_command *command, char *why)
{
	(void)count;
	return mockctl_parse_api(args[0], &command->api, why);
}

static int mockctl_args_topic_error(char **args, int count, struct mockctl_command *command,
	char *why)
{
	(void)count;
	if (mockctl_parse_topic_name(args[0], strlen(args[0]), command->topic.name, why) < 0)
		return -1;
	return mockctl_parse_error(args[1], &command->error, why);
}

static int mockctl_args_create_topic(char **args, int count, struct mockctl_command *command,
	char *why)
{
	(void)count;
	return mockctl_parse_topic(args[0], &command->topic, why);
}

static int mockctl_args_coordinator(char **args, int count, struct mockctl_command *command,
	char *why)
{
	(void)count;
	if (strlen(args[0]) >= sizeof command->topic.name)
		return mockctl_fail(why, "group id '%.40s...': longer than %d bytes", args[0],
			MOCKCTL_TOPIC_NAME_MAX);
	strcpy(command->topic.name, args[0]);
	if (mockctl_parse_broker(args[1], &command->broker, why) < 0)
		return -1;
	if (command->broker == MOCKCTL_ALL_BROKERS)
		return mockctl_fail(why, "coordinator: one broker id, not all");
	return 0;
}

typedef int mockctl_args_fn(char **args, int count, struct mockctl_command *command, char *why);

static const struct mockctl_verb {
	const char *name;
	enum mockctl_kind kind;
	int min_args, max_args;
	mockctl_args_fn *parse;
	const char *usage;
	const char *effect;
} mockctl_verbs[] = {
	{ "broker-down", MOCKCTL_BROKER_DOWN, 1, 1, mockctl_args_broker, "ID|all",
		"close its connections, refuse new ones" },
	{ "broker-up", MOCKCTL_BROKER_UP, 1, 1, mockctl_args_broker, "ID|all",
		"accept connections again" },
	{ "rtt", MOCKCTL_RTT, 2, 2, mockctl_args_rtt, "ID|all MS",
		"delay its responses by MS milliseconds" },
	{ "leader", MOCKCTL_LEADER, 3, 3, mockctl_args_leader, "TOPIC PARTITION ID|none",
		"move the leadership (none: leader-less)" },
	{ "error", MOCKCTL_ERROR, 2, 3, mockctl_args_error, "API ERROR [COUNT]",
		"fail the next COUNT (1) API requests" },
	{ "produce-error", MOCKCTL_ERROR, 1, 2, mockctl_args_produce_error, "ERROR [COUNT]",
		"same as: error Produce ERROR [COUNT]" },
	{ "broker-error", MOCKCTL_BROKER_ERROR, 3, 5, mockctl_args_broker_error,
		"ID API ERROR [COUNT [MS]]", "fail its next COUNT API requests, MS late" },
	{ "clear-errors", MOCKCTL_CLEAR_ERRORS, 1, 1, mockctl_args_api, "API",
		"drop the errors 'error' queued for API\n"
		"                                   (not broker-error's: they stay queued)" },
	{ "topic-error", MOCKCTL_TOPIC_ERROR, 2, 2, mockctl_args_topic_error, "TOPIC ERROR",
		"Metadata reports ERROR (NO_ERROR: stop)" },
	{ "create-topic", MOCKCTL_CREATE_TOPIC, 1, 1, mockctl_args_create_topic,
		"NAME[:PARTITIONS[:REPLICATION]]", "create a topic, as --topic does" },
	{ "coordinator", MOCKCTL_COORDINATOR, 2, 2, mockctl_args_coordinator, "GROUP ID",
		"make broker ID the group's coordinator" },
};

int mockctl_print_help(FILE *out)
{
	int failed = 0;

	for (size_t i = 0; i < sizeof mockctl_verbs / sizeof mockctl_verbs[0]; i++) {
		const struct mockctl_verb *verb = &mockctl_verbs[i];
		char synopsis[80];

		snprintf(synopsis, sizeof synopsis, "%s %s", verb->name, verb->usage);
		/* A synopsis too wide for its column gets a line of its own. */
		if (strlen(synopsis) > 32)
			failed |= fprintf(out, "  %s\n%34s", synopsis, "") < 0;
		else
			failed |= fprintf(out, "  %-32s", synopsis) < 0;
		failed |= fprintf(out, " %s\n", verb->effect) < 0;
	}
	return failed ? -1 : 0;
}

static const struct mockctl_verb *mockctl_find_verb(const char *name)
{
	for (size_t i = 0; i < sizeof mockctl_verbs / sizeof mockctl_verbs[0]; i++)
		if (!strcmp(mockctl_verbs[i].name, name))
			return &mockctl_verbs[i];
	return NULL;
}

int mockctl_parse(const char *line, struct mockctl_command *command, char *why)
{
	char copy[MOCKCTL_LINE_MAX], *args[MOCKCTL_ARGS_MAX + 1], *save = NULL, *word;
	const struct mockctl_verb *verb;
	int count = 0;

	if (strlen(line) >= sizeof copy)
		return mockctl_fail(why, "command longer than %d bytes", MOCKCTL_LINE_MAX - 1);
	strcpy(copy, line);
	word = strtok_r(copy, " \t", &save);
	if (!word)
		return mockctl_fail(why, "empty command");
	verb = mockctl_find_verb(word);
	if (!verb)
		return mockctl_fail(why, "unknown command '%s'", word);
	while ((word = strtok_r(NULL, " \t", &save)) && count <= MOCKCTL_ARGS_MAX)
		args[count++] = word;
	if (count < verb->min_args || count > verb->max_args)
		return mockctl_fail(why, "usage: %s %s", verb->name, verb->usage);
	memset(command, 0, sizeof *command);
	command->kind = verb->kind;
	return verb->parse(args, count, command, why);
}

/* The cluster-wide error stack takes an array; fill one on the stack in
 * chunks, so a large COUNT needs no allocation. */
static void mockctl_push_errors(rd_kafka_mock_cluster_t *cluster, const struct mockctl_command *command)
{
	rd_kafka_resp_err_t errors[256];
	int left = command->count;

	for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++)
		errors[i] = command->error;
	while (left > 0) {
		size_t chunk = left < 256 ? (size_t)left : 256;

		rd_kafka_mock_push_request_errors_array(cluster, command->api, chunk, errors);
		left -= (int)chunk;
	}
}

static rd_kafka_resp_err_t mockctl_push_broker_errors(rd_kafka_mock_cluster_t *cluster,
	const struct mockctl_command *command)
{
	rd_kafka_resp_err_t error = RD_KAFKA_RESP_ERR_NO_ERROR;

	/* This call is variadic only: one (error, rtt) pair per call. */
	for (int i = 0; i < command->count && !error; i++)
		error = rd_kafka_mock_broker_push_request_error_rtts(cluster, command->broker,
			command->api, 1, command->error, command->rtt_ms);
	return error;
}

static rd_kafka_resp_err_t mockctl_apply_kind(rd_kafka_mock_cluster_t *cluster,
	const struct mockctl_command *command)
{
	switch (command->kind) {
	case MOCKCTL_BROKER_DOWN:
		return rd_kafka_mock_broker_set_down(cluster, command->broker);
	case MOCKCTL_BROKER_UP:
		return rd_kafka_mock_broker_set_up(cluster, command->broker);
	case MOCKCTL_RTT:
		return rd_kafka_mock_broker_set_rtt(cluster, command->broker, command->rtt_ms);
	case MOCKCTL_LEADER:
		return rd_kafka_mock_partition_set_leader(cluster, command->topic.name,
			command->partition, command->broker);
	case MOCKCTL_ERROR:
		mockctl_push_errors(cluster, command);
		return RD_KAFKA_RESP_ERR_NO_ERROR;
	case MOCKCTL_BROKER_ERROR:
		return mockctl_push_broker_errors(cluster, command);
	case MOCKCTL_CLEAR_ERRORS:
		rd_kafka_mock_clear_request_errors(cluster, command->api);
		return RD_KAFKA_RESP_ERR_NO_ERROR;
	case MOCKCTL_TOPIC_ERROR:
		rd_kafka_mock_topic_set_error(cluster, command->topic.name, command->error);
		return RD_KAFKA_RESP_ERR_NO_ERROR;
	case MOCKCTL_COORDINATOR:
		return rd_kafka_mock_coordinator_set(cluster, "group", command->topic.name,
			command->broker);
	case MOCKCTL_CREATE_TOPIC:
		break;
	}
	return RD_KAFKA_RESP_ERR__INVALID_ARG;
}

int mockctl_apply(rd_kafka_mock_cluster_t *cluster, int brokers,
	const struct mockctl_command *command, char *why)
{
	rd_kafka_resp_err_t error;

	if (command->kind == MOCKCTL_CREATE_TOPIC)
		return mockctl_create_topic(cluster, brokers, &command->topic, why);
	/* The mock refuses unknown ids too, but as BROKER_NOT_AVAILABLE, which
	 * reads like an injected fault rather than a typo in the command. */
	if (command->broker > brokers)
		return mockctl_fail(why, "no broker %d (brokers are 1 to %d)",
			(int)command->broker, brokers);
	error = mockctl_apply_kind(cluster, command);
	if (error)
		return mockctl_fail(why, "%s", rd_kafka_err2name(error));
	return 0;
}

/* kafka-offsets: a topic's watermarks and a group's committed offsets, one
 * line per partition, from a client independent of the one that produced or
 * consumed. kcat cannot read committed offsets; the shell tests need them. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "cli.h"
#include "exitcode.h"
#include "log.h"
#include "parse.h"

struct options {
	const char *bootstrap;
	const char *topic;
	const char *group;           /* NULL: no committed offsets */
	int timeout_ms;
	char **properties;           /* -X key=value */
	size_t property_count;
};

static const char usage[] =
	"Usage: kafka-offsets [--help] -b BOOTSTRAP -t TOPIC [-g GROUP] [-T TIMEOUT] [-X KEY=VALUE]...\n"
	"Prints 'PARTITION LOW HIGH COMMITTED' (tab-separated) for each partition of\n"
	"TOPIC: the watermarks, and GROUP's committed offset (-1: none, or no -g).\n"
	"TIMEOUT (default 10s) bounds each query. -X passes librdkafka properties.\n"
	"Exit status: 0 done, 64 usage, 69 unknown topic, 75 Kafka unreachable or\n"
	"too slow, 74 writing stdout.\n";

static int options_parse(int argc, char **argv, struct options *options)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	char why[PARSE_WHY_SIZE];
	int64_t timeout_ms;
	int opt;

	options->timeout_ms = 10000;
	options->properties = calloc((size_t)argc, sizeof *options->properties);
	if (!options->properties)
		return EXIT_INTERNAL;
	opterr = 0;  /* our own message, in the log format */
	while ((opt = getopt_long(argc, argv, ":b:t:g:T:X:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'b': options->bootstrap = optarg; break;
		case 't': options->topic = optarg; break;
		case 'g': options->group = optarg; break;
		case 'T':
			if (parse_duration_ms(optarg, &timeout_ms, why) < 0 || timeout_ms > INT32_MAX)
				return cli_usage_error("-T: %s", why);
			options->timeout_ms = (int)timeout_ms;
			break;
		case 'X': options->properties[options->property_count++] = optarg; break;
		case 'h': fputs(usage, stdout); return -1;
		case ':': return cli_usage_error("option '%s' needs a value", argv[optind - 1]);
		default: return cli_usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (!options->bootstrap || !options->topic || optind < argc)
		return cli_usage_error("-b and -t are required, and nothing else");
	return 0;
}

static int set_property(rd_kafka_conf_t *conf, const char *key, const char *value)
{
	char reason[512];

	if (rd_kafka_conf_set(conf, key, value, reason, sizeof reason) == RD_KAFKA_CONF_OK)
		return 0;
	return cli_usage_error("%s=%s: %s", key, value, reason);
}

/* A consumer: rd_kafka_committed() needs a group.id, and never joining the
 * group means the query does not disturb its members. */
static rd_kafka_t *client_new(const struct options *options, int *status)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char reason[512];
	rd_kafka_t *client;

	*status = set_property(conf, "bootstrap.servers", options->bootstrap);
	if (!*status)
		*status = set_property(conf, "group.id", options->group ? options->group
			: "kafka-offsets");
	for (size_t i = 0; i < options->property_count && !*status; i++) {
		char *value = strchr(options->properties[i], '=');

		if (!value)
			*status = cli_usage_error("-X %s: expected KEY=VALUE", options->properties[i]);
		else {
			*value = '\0';
			*status = set_property(conf, options->properties[i], value + 1);
		}
	}
	client = *status ? NULL : rd_kafka_new(RD_KAFKA_CONSUMER, conf, reason, sizeof reason);
	if (!client) {
		rd_kafka_conf_destroy(conf);
		if (!*status) {
			log_error("%s", reason);
			*status = EXIT_INTERNAL;
		}
	}
	return client;
}

static int partition_count(rd_kafka_t *client, const struct options *options, int *count)
{
	rd_kafka_topic_t *topic = rd_kafka_topic_new(client, options->topic, NULL);
	const struct rd_kafka_metadata *metadata;
	rd_kafka_resp_err_t error;

	error = rd_kafka_metadata(client, 0, topic, &metadata, options->timeout_ms);
	rd_kafka_topic_destroy(topic);
	if (error) {
		log_error("metadata for %s: %s", options->topic, rd_kafka_err2str(error));
		return EXIT_TEMPFAIL;
	}
	error = metadata->topic_cnt == 1 ? metadata->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
	*count = error ? 0 : metadata->topics[0].partition_cnt;
	rd_kafka_metadata_destroy(metadata);
	if (error) {
		log_error("topic %s: %s", options->topic, rd_kafka_err2str(error));
		return EXIT_UPSTREAM;
	}
	return 0;
}

/* Every partition of the topic, each with `offset` as its query. */
static rd_kafka_topic_partition_list_t *partitions_new(const char *topic, int count, int64_t offset)
{
	rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(count);

	for (int i = 0; i < count; i++)
		rd_kafka_topic_partition_list_add(list, topic, i)->offset = offset;
	return list;
}

/* The first error of a list query: its own, or that of a partition. */
static rd_kafka_resp_err_t list_error(rd_kafka_resp_err_t error,
	const rd_kafka_topic_partition_list_t *list)
{
	for (int i = 0; i < list->cnt && !error; i++)
		error = list->elems[i].err;
	return error;
}

/* Watermarks through ListOffsets with the "earliest" and "latest" timestamps,
 * not rd_kafka_query_watermark_offsets(): before librdkafka 2.3 that call
 * ignores its timeout while a partition's leader is down (librdkafka#2588),
 * and a test helper must not hang. */
static int query_offsets(rd_kafka_t *client, const struct options *options,
	rd_kafka_topic_partition_list_t *lists[3])
{
	static const char *const what[] = { "low watermarks", "high watermarks", "committed offsets" };
	rd_kafka_resp_err_t error = RD_KAFKA_RESP_ERR_NO_ERROR;
	int i;

	for (i = 0; i < 3 && !error; i++) {
		if (i < 2)
			error = list_error(rd_kafka_offsets_for_times(client, lists[i],
				options->timeout_ms), lists[i]);
		else if (options->group)
			error = list_error(rd_kafka_committed(client, lists[i], options->timeout_ms),
				lists[i]);
	}
	if (!error)
		return 0;
	log_error("%s of %s: %s", what[i - 1], options->topic, rd_kafka_err2str(error));
	return EXIT_TEMPFAIL;
}

static int print_offsets(rd_kafka_topic_partition_list_t *lists[3], int with_committed)
{
	for (int i = 0; i < lists[0]->cnt; i++) {
		int64_t committed = with_committed ? lists[2]->elems[i].offset : -1;

		/* librdkafka reports "none committed" as RD_KAFKA_OFFSET_INVALID. */
		if (printf("%" PRId32 "\t%" PRId64 "\t%" PRId64 "\t%" PRId64 "\n",
				lists[0]->elems[i].partition, lists[0]->elems[i].offset,
				lists[1]->elems[i].offset, committed < 0 ? -1 : committed) < 0)
			return EXIT_IO;
	}
	return 0;
}

static int run(const struct options *options)
{
	rd_kafka_topic_partition_list_t *lists[3];
	rd_kafka_t *client;
	int status, count = 0;

	client = client_new(options, &status);
	if (!client)
		return status;
	status = partition_count(client, options, &count);
	lists[0] = partitions_new(options->topic, count, RD_KAFKA_OFFSET_BEGINNING);
	lists[1] = partitions_new(options->topic, count, RD_KAFKA_OFFSET_END);
	lists[2] = partitions_new(options->topic, count, RD_KAFKA_OFFSET_INVALID);
	if (!status)
		status = query_offsets(client, options, lists);
	if (!status)
		status = print_offsets(lists, options->group != NULL);
	for (int i = 0; i < 3; i++)
		rd_kafka_topic_partition_list_destroy(lists[i]);
	rd_kafka_destroy(client);
	return status;
}

int main(int argc, char **argv)
{
	struct options options = { 0 };
	int status;

	log_init(argv[0], 0);
	status = options_parse(argc, argv, &options);
	if (status == -1)
		status = 0;
	else if (!status)
		status = run(&options);
	free(options.properties);
	return exitcode_worst(status, cli_close_stdout());
}

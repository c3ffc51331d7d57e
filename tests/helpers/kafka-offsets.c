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
	"Usage: kafka-offsets -b BOOTSTRAP -t TOPIC [-g GROUP] [-T TIMEOUT] [-X KEY=VALUE]...\n"
	"Prints 'PARTITION LOW HIGH COMMITTED' (tab-separated) for each partition of\n"
	"TOPIC: the watermarks, and GROUP's committed offset (-1: none, or no -g).\n"
	"TIMEOUT (default 10s) bounds each query. -X passes librdkafka properties.\n"
	"Exit status: 0 done, 64 usage, 69 unknown topic, 75 Kafka unreachable or\n"
	"too slow, 74 writing stdout.\n";

static int options_parse(int argc, char **argv, struct options *options)
{
	char why[PARSE_WHY_SIZE];
	int64_t timeout_ms;
	int opt;

	options->timeout_ms = 10000;
	options->properties = calloc((size_t)argc, sizeof *options->properties);
	if (!options->properties)
		return EXIT_INTERNAL;
	while ((opt = getopt(argc, argv, "b:t:g:T:X:h")) != -1) {
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
		default: return EXIT_USAGE;
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

/* All partitions' committed offsets in one OffsetFetch; -1 when the group
 * has none (librdkafka's RD_KAFKA_OFFSET_INVALID). */
static int committed_offsets(rd_kafka_t *client, const struct options *options,
	rd_kafka_topic_partition_list_t *partitions)
{
	rd_kafka_resp_err_t error;

	if (!options->group)
		return 0;
	error = rd_kafka_committed(client, partitions, options->timeout_ms);
	if (error) {
		log_error("committed offsets of %s: %s", options->group, rd_kafka_err2str(error));
		return EXIT_TEMPFAIL;
	}
	return 0;
}

static int print_offsets(rd_kafka_t *client, const struct options *options,
	const rd_kafka_topic_partition_list_t *partitions)
{
	for (int i = 0; i < partitions->cnt; i++) {
		const rd_kafka_topic_partition_t *partition = &partitions->elems[i];
		int64_t low, high, committed = options->group ? partition->offset : -1;
		rd_kafka_resp_err_t error = rd_kafka_query_watermark_offsets(client,
			options->topic, partition->partition, &low, &high, options->timeout_ms);

		if (error) {
			log_error("watermarks of %s [%" PRId32 "]: %s", options->topic,
				partition->partition, rd_kafka_err2str(error));
			return EXIT_TEMPFAIL;
		}
		if (committed < 0)
			committed = -1;
		if (printf("%" PRId32 "\t%" PRId64 "\t%" PRId64 "\t%" PRId64 "\n",
				partition->partition, low, high, committed) < 0)
			return EXIT_IO;
	}
	return 0;
}

static int run(const struct options *options)
{
	rd_kafka_topic_partition_list_t *partitions;
	rd_kafka_t *client;
	int status, count = 0;

	client = client_new(options, &status);
	if (!client)
		return status;
	status = partition_count(client, options, &count);
	partitions = rd_kafka_topic_partition_list_new(count);
	for (int i = 0; i < count; i++)
		rd_kafka_topic_partition_list_add(partitions, options->topic, i);
	if (!status)
		status = committed_offsets(client, options, partitions);
	if (!status)
		status = print_offsets(client, options, partitions);
	rd_kafka_topic_partition_list_destroy(partitions);
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

#include "kafka.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "db.h"
#include "exitcode.h"
#include "log.h"

/* What the design promises for every message: an idempotent producer whose
 * writes all in-sync replicas acknowledged (and which librdkafka requires of
 * one: messages queued in order). The last two are topic settings, forced in
 * a pool's topic_properties too. */
static const char *const kafka_forced[][2] = {
	{ "enable.idempotence", "true" },
	{ "acks", "all" },
	{ "queuing.strategy", "fifo" },
};
#define KAFKA_FORCED_TOPIC 1   /* the first of them that is a topic setting */

/* librdkafka logs with syslog levels; its notices about a broker it cannot
 * reach are for -v, since the caller reports what actually failed. Its
 * refusal of a topic's settings (said only this way) is an error of ours. */
static void kafka_log(const rd_kafka_t *rk, int level, const char *facility, const char *message)
{
	(void)rk;
	log_msg(level <= 3 && !strcmp(facility, "TOPICCONF") ? LOG_ERROR : level <= 5 ? LOG_INFO :
		LOG_DEBUG, "librdkafka %s: %s", facility, message);
}

int kafka_conf_set(rd_kafka_conf_t *conf, const struct config *config, const char *key,
	const char *value)
{
	char why[512];

	if (rd_kafka_conf_set(conf, key, value, why, sizeof why) == RD_KAFKA_CONF_OK)
		return 0;
	log_error("%s: kafka: %s", config->path, why);
	return -1;
}

/* Whether `value` is forced setting i's value ("-1" is acks=all too). */
static int kafka_forced_is(size_t i, const char *value)
{
	return !strcmp(value, kafka_forced[i][1]) ||
		(!strcmp(kafka_forced[i][0], "acks") && !strcmp(value, "-1"));
}

/* Warns when a list of properties (`name`) tries to weaken a forced setting
 * ("acks=1"): the value is overridden, and the operator should know. `where`
 * is the property's file:line. */
static void kafka_check_forced(const char *where, const char *name, const char *key,
	const char *value)
{
	/* (librdkafka takes "topic.acks" for "acks") */
	const char *bare = strncmp(key, "topic.", 6) ? key : key + 6;

	for (size_t i = 0; i < sizeof kafka_forced / sizeof kafka_forced[0]; i++) {
		int same_key = !strcmp(bare, kafka_forced[i][0]) ||
			(!strcmp(kafka_forced[i][0], "acks") && !strcmp(bare, "request.required.acks"));

		if (same_key && !kafka_forced_is(i, value))
			log_warn("%s: %s sets %s=%s: ignored, the producer always uses %s=%s",
				where, name, key, value, kafka_forced[i][0], kafka_forced[i][1]);
	}
}

/* Warns when kafka.properties turns off the checks of the brokers' TLS
 * certificates (it is honoured: a setting passed through untouched): then
 * anyone on the path can pose as the cluster, and read the SASL password. */
static void kafka_check_tls(const char *where, const char *key, const char *value)
{
	static unsigned said;   /* each once a run, not once per client (report makes one per pool) */
	unsigned which = !strcmp(key, "enable.ssl.certificate.verification") &&
			(!strcasecmp(value, "false") || !strcasecmp(value, "f") || !strcmp(value, "0")) ? 1 :
		!strcmp(key, "ssl.endpoint.identification.algorithm") && !strcasecmp(value, "none") ? 2 :
		!strcmp(key, "security.protocol") && !strcasecmp(value, "sasl_plaintext") ? 4 : 0;

	if (!which || (said & which))
		return;
	said |= which;
	if (which == 4)
		log_warn("%s: kafka.properties sets %s=%s: the SASL credentials (in clear with "
			"PLAIN) and every code cross the network unencrypted; SASL_SSL encrypts them",
			where, key, value);
	else
		log_warn("%s: kafka.properties sets %s=%s: the brokers' TLS certificates are not "
			"fully checked, so anyone on the path can pose as the cluster (and read a SASL "
			"password); give their CA in ssl.ca.location instead", where, key, value);
}

/* librdkafka's two kinds of settings, set the same way. */
typedef rd_kafka_conf_res_t (*kafka_setter)(void *conf, const char *key, const char *value,
	char *why, size_t size);

static rd_kafka_conf_res_t kafka_set_client(void *conf, const char *key, const char *value,
	char *why, size_t size)
{
	return rd_kafka_conf_set(conf, key, value, why, size);
}

static rd_kafka_conf_res_t kafka_set_topic(void *conf, const char *key, const char *value,
	char *why, size_t size)
{
	return rd_kafka_topic_conf_set(conf, key, value, why, size);
}

/* Sets every "key=value" of a list (`name`: kafka.properties, a pool's
 * topic_properties) as given; a producer's are checked against the forced
 * settings. */
static int kafka_set_properties(kafka_setter set, void *conf, const struct config *config,
	const struct kafka_properties *properties, const char *name, int producer)
{
	for (size_t i = 0; i < properties->count; i++) {
		const char *property = properties->items[i];
		const char *where = properties->places ? properties->places[i] :
			config->path;   /* (a config made in code has no places) */
		const char *eq = strchr(property, '=');
		char *key = strndup(property, (size_t)(eq - property)), why[512];
		int failed = 0;

		if (!key)
			return -1;
		if (!strcmp(key, "transactional.id")) {
			/* librdkafka would then refuse every message outside a transaction. */
			log_error("%s: %s sets transactional.id: qrpool does not use transactions (each "
				"message is idempotent and stands alone): remove it", where, name);
			failed = 1;
		} else if (set(conf, key, eq + 1, why, sizeof why) != RD_KAFKA_CONF_OK) {
			log_error("%s: %s: %s", where, name, why);
			failed = 1;
		} else {
			kafka_check_tls(where, key, eq + 1);
			if (producer)
				kafka_check_forced(where, name, key, eq + 1);
		}
		free(key);
		if (failed)
			return -1;
	}
	return 0;
}

/* Our defaults go in before the properties, so the properties win. */
static int kafka_set_defaults(rd_kafka_conf_t *conf, const struct config *config,
	rd_kafka_type_t type)
{
	int64_t timeout = config->kafka.timeout_ms;
	char text[32];

	if (config->kafka.brokers &&
	    kafka_conf_set(conf, config, "bootstrap.servers", config->kafka.brokers))
		return -1;
	if (kafka_conf_set(conf, config, "client.id", log_program()))
		return -1;
	/* qrpool does not create topics: a missing or mistyped pool topic is an
	 * error, not a new one-partition topic on a cluster that allows it
	 * (librdkafka's producer asks for that by default). */
	if (kafka_conf_set(conf, config, "allow.auto.create.topics", "false"))
		return -1;
	if (type != RD_KAFKA_PRODUCER)
		return 0;
	snprintf(text, sizeof text, "%lld", (long long)(timeout < 1 ? 1 : timeout > INT32_MAX ?
		INT32_MAX : timeout));
	if (kafka_conf_set(conf, config, "message.timeout.ms", text))
		return -1;
	/* Images waiting for Kafka: librdkafka's 1 GB, copied once more into
	 * the requests, made 2 GB of memory while Kafka was slow. No throughput
	 * is lost at 64 MB (measured). */
	snprintf(text, sizeof text, "%d", KAFKA_QUEUE_KBYTES);
	if (kafka_conf_set(conf, config, "queue.buffering.max.kbytes", text))
		return -1;
	/* A topic missing on the cluster fails its messages after this (30 s by
	 * default): within the run's deadline, so it is said as such rather
	 * than as messages purged at the deadline. */
	snprintf(text, sizeof text, "%lld", (long long)(timeout / 2 < 1 ? 1 : timeout / 2 > 30000 ?
		30000 : timeout / 2));
	return kafka_conf_set(conf, config, "topic.metadata.propagation.max.ms", text);
}

/* A producer's linger.ms must be under its message.timeout.ms (0: none),
 * which is kafka.timeout unless kafka.properties set it: librdkafka refuses
 * the client otherwise, in words that name no setting of ours. 0, or -1 said. */
static int kafka_check_client_linger(const rd_kafka_conf_t *conf, const struct config *config)
{
	char timeout[32], linger[32];
	size_t size = sizeof timeout, linger_size = sizeof linger;
	const char *where = config->path;

	if (rd_kafka_conf_get(conf, "message.timeout.ms", timeout, &size) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_get(conf, "linger.ms", linger, &linger_size) != RD_KAFKA_CONF_OK ||
	    atof(timeout) == 0 || atof(timeout) > atof(linger))
		return 0;
	for (size_t i = 0; config->kafka.properties.places && i < config->kafka.properties.count; i++)
		if (!strncmp(config->kafka.properties.items[i], "linger.ms=", 10) ||
		    !strncmp(config->kafka.properties.items[i], "queue.buffering.max.ms=", 23))
			where = config->kafka.properties.places[i];
	log_error("%s: kafka.properties: linger.ms (%s) must be shorter than %s (%s ms): the "
		"messages would time out before they are sent", where, linger,
		kafka_property(config, "message.timeout.ms") ? "message.timeout.ms" :
		kafka_property(config, "delivery.timeout.ms") ? "delivery.timeout.ms" : "kafka.timeout",
		timeout);
	return -1;
}

rd_kafka_conf_t *kafka_conf_new(const struct config *config, rd_kafka_type_t type, void *opaque)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	int failed;

	rd_kafka_conf_set_log_cb(conf, kafka_log);
	rd_kafka_conf_set_opaque(conf, opaque);
	failed = kafka_set_defaults(conf, config, type) || kafka_set_properties(kafka_set_client, conf,
		config, &config->kafka.properties, "kafka.properties", type == RD_KAFKA_PRODUCER);
	/* Set only where the value differs: librdkafka warns of queuing.strategy
	 * set at all (deprecated), even to its default, fifo. */
	for (size_t i = 0; !failed && type == RD_KAFKA_PRODUCER &&
	     i < sizeof kafka_forced / sizeof kafka_forced[0]; i++) {
		char value[32];
		size_t size = sizeof value;

		if (rd_kafka_conf_get(conf, kafka_forced[i][0], value, &size) != RD_KAFKA_CONF_OK ||
		    !kafka_forced_is(i, value))
			failed = kafka_conf_set(conf, config, kafka_forced[i][0], kafka_forced[i][1]);
	}
	if (!failed && type == RD_KAFKA_PRODUCER)
		failed = kafka_check_client_linger(conf, config);
	if (failed) {
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	return conf;
}

/* librdkafka makes no topic whose messages would time out before they are
 * sent: message.timeout.ms (0: none) must be over the client's linger.ms
 * (`client`: its settings). 0, or -1 said. */
static int kafka_check_linger(rd_kafka_topic_conf_t *conf, const rd_kafka_conf_t *client,
	const struct config *config, const struct pool_config *pool)
{
	char timeout[32], linger[32];
	size_t size = sizeof timeout, linger_size = sizeof linger;

	if (rd_kafka_topic_conf_get(conf, "message.timeout.ms", timeout, &size) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_get(client, "linger.ms", linger, &linger_size) != RD_KAFKA_CONF_OK ||
	    atof(timeout) == 0 || atof(timeout) > atof(linger))
		return 0;
	log_error("%s: pool '%s': topic_properties: message.timeout.ms (%s) must be longer than "
		"linger.ms (%s): its messages would time out before they are sent",
		pool->topic_properties.places ? pool->topic_properties.places[0] : config->path,
		pool->name, timeout, linger);
	return -1;
}

/* The pool's topic_properties over `base` (NULL: librdkafka's defaults),
 * the forced topic settings forced again, into *out (which owns them); *out
 * NULL when the pool has none. `producer`: warn of a forced setting
 * weakened. What librdkafka would refuse only when the topic is made (a
 * message timeout not over the client's linger) is refused here. */
static int kafka_topic_settings(rd_kafka_topic_conf_t *base, const rd_kafka_conf_t *client,
	const struct config *config, const struct pool_config *pool, int producer,
	rd_kafka_topic_conf_t **out)
{
	rd_kafka_topic_conf_t *conf;
	char name[160], why[512];

	*out = NULL;
	if (!pool->topic_properties.count) {
		if (base)
			rd_kafka_topic_conf_destroy(base);
		return 0;
	}
	if (!(conf = base ? base : rd_kafka_topic_conf_new()))
		return EXIT_INTERNAL;
	snprintf(name, sizeof name, "pool '%s': topic_properties", pool->name);
	if (kafka_set_properties(kafka_set_topic, conf, config, &pool->topic_properties, name,
			producer)) {
		rd_kafka_topic_conf_destroy(conf);
		return EXIT_CONFIG;
	}
	for (size_t i = KAFKA_FORCED_TOPIC; i < sizeof kafka_forced / sizeof kafka_forced[0]; i++) {
		char value[32];
		size_t size = sizeof value;

		if (rd_kafka_topic_conf_get(conf, kafka_forced[i][0], value, &size) ==
				RD_KAFKA_CONF_OK && kafka_forced_is(i, value))
			continue;   /* (not set again: see kafka_conf_new) */
		if (rd_kafka_topic_conf_set(conf, kafka_forced[i][0], kafka_forced[i][1], why,
				sizeof why) != RD_KAFKA_CONF_OK) {
			log_error("librdkafka: %s", why);
			rd_kafka_topic_conf_destroy(conf);
			return EXIT_INTERNAL;
		}
	}
	if (kafka_check_linger(conf, client, config, pool)) {
		rd_kafka_topic_conf_destroy(conf);
		return EXIT_CONFIG;
	}
	*out = conf;
	return 0;
}

int kafka_topic_conf_new(rd_kafka_t *rk, const struct config *config, const struct pool_config *pool,
	rd_kafka_topic_conf_t **out)
{
	return kafka_topic_settings(pool->topic_properties.count ? rd_kafka_default_topic_conf_dup(rk) :
		NULL, rd_kafka_conf(rk), config, pool, 1, out);
}

const char *kafka_property(const struct config *config, const char *key)
{
	size_t length = strlen(key);
	const char *value = NULL;

	for (size_t i = 0; i < config->kafka.properties.count; i++) {
		const char *property = config->kafka.properties.items[i];

		if (!strncmp(property, key, length) && property[length] == '=')
			value = property + length + 1;
	}
	return value;
}

int kafka_configured(const struct config *config)
{
	return (config->kafka.brokers && *config->kafka.brokers) ||
		kafka_property(config, "bootstrap.servers") || kafka_property(config, "metadata.broker.list");
}

int kafka_require(const struct config *config)
{
	if (kafka_configured(config))
		return 0;
	log_error("%s: kafka.brokers is not set", config->path);
	return EXIT_CONFIG;
}

int kafka_check_config(const struct config *config)
{
	rd_kafka_conf_t *conf = kafka_conf_new(config, RD_KAFKA_CONSUMER, NULL);
	int status = 0;

	if (!conf)
		return EXIT_CONFIG;
	for (size_t i = 0; i < config->pool_count && !status; i++) {
		rd_kafka_topic_conf_t *topic;

		if (!(status = kafka_topic_settings(NULL, conf, config, &config->pools[i], 0, &topic)) &&
		    topic)
			rd_kafka_topic_conf_destroy(topic);
	}
	rd_kafka_conf_destroy(conf);
	return status;
}

rd_kafka_t *kafka_client_new(rd_kafka_type_t type, rd_kafka_conf_t *conf)
{
	char why[512];
	rd_kafka_t *rk = rd_kafka_new(type, conf, why, sizeof why);

	if (rk)
		return rk;
	rd_kafka_conf_destroy(conf);
	log_error("cannot create the Kafka client: %s", why);
	return NULL;
}

static int kafka_dump_pairs(const char **pairs, size_t count, FILE *out)
{
	int failed = 0;

	for (size_t i = 0; i + 1 < count; i += 2) {
		int secret = config_property_secret(pairs[i], strlen(pairs[i]));
		char *masked = secret ? NULL : config_mask_url_password(pairs[i + 1]);

		failed |= fprintf(out, "# %s = %s\n", pairs[i], secret ? "********" : masked ? masked :
			pairs[i + 1]) < 0;
		free(masked);
	}
	return failed ? -1 : 0;
}

static int kafka_dump_topic(const rd_kafka_topic_conf_t *topic, FILE *out)
{
	size_t count;
	const char **pairs = rd_kafka_topic_conf_dump((rd_kafka_topic_conf_t *)topic, &count);
	int failed = kafka_dump_pairs(pairs, count, out);

	rd_kafka_conf_dump_free(pairs, count);
	return failed;
}

int kafka_conf_dump(rd_kafka_conf_t *conf, FILE *out)
{
	rd_kafka_topic_conf_t *topic = rd_kafka_conf_get_default_topic_conf(conf);
	const char **pairs;
	size_t count;
	int failed;

	pairs = rd_kafka_conf_dump(conf, &count);
	failed = fprintf(out, "# librdkafka settings (merged)\n") < 0 ||
		kafka_dump_pairs(pairs, count, out);
	rd_kafka_conf_dump_free(pairs, count);
	if (topic)
		failed |= kafka_dump_topic(topic, out);
	return failed ? -1 : 0;
}

int kafka_topic_conf_dump(rd_kafka_conf_t *conf, const struct config *config,
	const struct pool_config *pool, FILE *out)
{
	const rd_kafka_topic_conf_t *base = rd_kafka_conf_get_default_topic_conf(conf);
	rd_kafka_topic_conf_t *topic;
	int status = kafka_topic_settings(base ? rd_kafka_topic_conf_dup(base) : NULL, conf, config,
		pool, 1, &topic);

	if (status || !topic)
		return status;
	if (fprintf(out, "# pool %s: topic %s (its topic_properties over the above)\n", pool->name,
			pool->topic) < 0)
		status = EXIT_IO;
	else
		status = kafka_dump_topic(topic, out) ? EXIT_IO : 0;
	rd_kafka_topic_conf_destroy(topic);
	return status;
}

int kafka_unreachable(rd_kafka_resp_err_t err)
{
	switch (err) {
	case RD_KAFKA_RESP_ERR__TRANSPORT:
	case RD_KAFKA_RESP_ERR__TIMED_OUT:
	case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
	case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
	case RD_KAFKA_RESP_ERR__RESOLVE:
	case RD_KAFKA_RESP_ERR__AUTHENTICATION:
	case RD_KAFKA_RESP_ERR__SSL:
		return 1;
	default:
		return 0;
	}
}

int kafka_refused(rd_kafka_resp_err_t err)
{
	switch (err) {
	case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
	case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
	case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
	case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
	case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
		return 1;
	default:
		return 0;
	}
}

int kafka_message_refused(rd_kafka_resp_err_t err)
{
	return err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE || err == RD_KAFKA_RESP_ERR_INVALID_RECORD;
}

/* Milliseconds left until `deadline` (db_monotonic() seconds), never negative. */
static int kafka_remaining_ms(double deadline)
{
	double left = (deadline - db_monotonic()) * 1000;

	return left <= 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

/* Appends to `out` at *used, which counts what would have been written:
 * nothing once the buffer is full (cut, ended). */
static void kafka_appendf(char *out, size_t size, size_t *used, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void kafka_appendf(char *out, size_t size, size_t *used, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*used >= size)
		return;
	va_start(ap, fmt);
	n = vsnprintf(out + *used, size - *used, fmt, ap);
	va_end(ap);
	*used += n > 0 ? (size_t)n : 0;
}

/* Appends "partition[s] A, B, C" to `out` at *used: the first of `ids`
 * (at most 8 kept), of `n`. */
static void kafka_name_partitions(char *out, size_t size, size_t *used, const int32_t *ids, int n)
{
	const int shown = n < 8 ? n : 8;

	kafka_appendf(out, size, used, "%s%s ", *used ? "; " : "", n == 1 ? "partition" : "partitions");
	for (int i = 0; i < shown; i++)
		kafka_appendf(out, size, used, "%s%d", i ? ", " : "", ids[i]);
	if (n > shown)
		kafka_appendf(out, size, used, " and %d more", n - shown);
}

int kafka_partition_health(const rd_kafka_metadata_topic_t *topic, char *out, size_t size)
{
	int32_t leaderless[8];
	int n_leaderless = 0, n_short = 0;
	size_t used = 0;

	*out = '\0';
	for (int i = 0; i < topic->partition_cnt; i++) {
		const rd_kafka_metadata_partition_t *p = &topic->partitions[i];

		if (p->leader < 0 || p->err == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE) {
			if (n_leaderless < 8)
				leaderless[n_leaderless] = p->id;
			n_leaderless++;
		}
	}
	if (n_leaderless) {
		kafka_name_partitions(out, size, &used, leaderless, n_leaderless);
		kafka_appendf(out, size, &used, " %s no leader (a broker down, an election that has not "
			"ended)", n_leaderless == 1 ? "has" : "have");
	}
	/* Each short partition said with its counts: they may differ. */
	for (int i = 0; i < topic->partition_cnt; i++) {
		const rd_kafka_metadata_partition_t *p = &topic->partitions[i];

		if (p->leader < 0 || p->err == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE ||
		    p->isr_cnt >= p->replica_cnt)
			continue;
		if (n_short++ < 8)
			kafka_appendf(out, size, &used, "%spartition %d has %d of its %d replicas in sync",
				used ? "; " : "", p->id, p->isr_cnt, p->replica_cnt);
	}
	if (n_short > 8)
		kafka_appendf(out, size, &used, "; %d more partition%s short of replicas", n_short - 8,
			n_short == 9 ? "" : "s");
	if (n_short)
		kafka_appendf(out, size, &used, " (acks=all: Kafka takes no write while fewer than the "
			"topic's min.insync.replicas are)");
	return n_leaderless + n_short;
}

rd_kafka_resp_err_t kafka_topic_metadata(rd_kafka_t *rk, const char *topic, int timeout_ms,
	int *count, char *health, size_t health_size)
{
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
	const struct rd_kafka_metadata *metadata;
	rd_kafka_resp_err_t err;

	*count = 0;
	if (health && health_size)
		*health = '\0';
	if (!rkt)
		return rd_kafka_last_error();
	err = rd_kafka_metadata(rk, 0, rkt, &metadata, timeout_ms);
	rd_kafka_topic_destroy(rkt);
	if (err)
		return err;
	if (metadata->topic_cnt == 1 && !(err = metadata->topics[0].err)) {
		*count = metadata->topics[0].partition_cnt;
		if (health && health_size)
			kafka_partition_health(&metadata->topics[0], health, health_size);
	}
	rd_kafka_metadata_destroy(metadata);
	return err;
}

/* The topic's partition count; 0 when it does not exist yet. */
static rd_kafka_resp_err_t kafka_partition_count(rd_kafka_t *rk, const char *topic,
	double deadline, int *count)
{
	rd_kafka_resp_err_t err = kafka_topic_metadata(rk, topic, kafka_remaining_ms(deadline), count,
		NULL, 0);

	return err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ? RD_KAFKA_RESP_ERR_NO_ERROR : err;
}

void kafka_depth_add(struct kafka_depth *depth, int64_t low, int64_t high, int64_t committed)
{
	int64_t start = low;

	/* Nothing committed: the group has read nothing here, so what retention
	 * dropped (below the low watermark, from offset 0) went unread too, and
	 * is lost. Otherwise its drop would read as codes taken: a pool the
	 * online service does not consume yet would seem to be emptied. */
	if (committed < 0)
		committed = 0;
	if (committed < low)
		depth->lost += low - committed;
	else
		start = committed;
	/* Past the end: where the group's consumers will read from is their
	 * auto.offset.reset's choice, so nothing is counted (plan makes more
	 * rather than fewer), and the caller says so. */
	depth->ahead += committed > high;
	if (high > start)
		depth->depth += high - start;
	depth->end += high;
	depth->partitions++;
}

/* A list of the topic's partitions, each with `offset` (for ListOffsets: -2
 * asks for the low watermark, -1 for the end). */
static rd_kafka_topic_partition_list_t *kafka_partition_list(const char *topic, int count,
	int64_t offset)
{
	rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(count);

	for (int p = 0; p < count; p++)
		rd_kafka_topic_partition_list_add(list, topic, p)->offset = offset;
	return list;
}

static rd_kafka_resp_err_t kafka_list_error(rd_kafka_resp_err_t err,
	const rd_kafka_topic_partition_list_t *list)
{
	for (int p = 0; !err && p < list->cnt; p++)
		err = list->elems[p].err;
	return err;
}

/* Watermarks come from rd_kafka_offsets_for_times, not
 * rd_kafka_query_watermark_offsets: before librdkafka 2.3 the latter ignores
 * its timeout while a partition's leader is down (librdkafka#2588), and a
 * report under cron must never hang. It also asks each broker once for all
 * its partitions instead of once per partition. */
static rd_kafka_resp_err_t kafka_sum_partitions(rd_kafka_t *rk, const char *topic, int count,
	double deadline, struct kafka_depth *out)
{
	rd_kafka_topic_partition_list_t *low = kafka_partition_list(topic, count, RD_KAFKA_OFFSET_BEGINNING);
	rd_kafka_topic_partition_list_t *high = kafka_partition_list(topic, count, RD_KAFKA_OFFSET_END);
	rd_kafka_topic_partition_list_t *committed = kafka_partition_list(topic, count, RD_KAFKA_OFFSET_INVALID);
	rd_kafka_resp_err_t err;

	err = kafka_list_error(rd_kafka_committed(rk, committed, kafka_remaining_ms(deadline)), committed);
	if (!err)
		err = kafka_list_error(rd_kafka_offsets_for_times(rk, low, kafka_remaining_ms(deadline)), low);
	if (!err)
		err = kafka_list_error(rd_kafka_offsets_for_times(rk, high, kafka_remaining_ms(deadline)), high);
	for (int p = 0; !err && p < count; p++)
		kafka_depth_add(out, low->elems[p].offset, high->elems[p].offset, committed->elems[p].offset);
	rd_kafka_topic_partition_list_destroy(low);
	rd_kafka_topic_partition_list_destroy(high);
	rd_kafka_topic_partition_list_destroy(committed);
	return err;
}

/* The depth reader's error callback: keeps why the cluster refused its
 * authentication (`opaque`, 256 bytes), which its requests then only see as
 * brokers down. Served by its rd_kafka_poll, in the reader's own thread. */
static void kafka_reader_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	(void)rk;
	if (err == RD_KAFKA_RESP_ERR__AUTHENTICATION)
		snprintf(opaque, 256, "%s", reason);
	log_debug("kafka: %s", reason);
}

/* A consumer in the pool's group, which never subscribes: rd_kafka_committed
 * needs the group id, and the handle must not move the group's offsets.
 * `auth_refused` (256 bytes) gets why its authentication was refused. */
static rd_kafka_t *kafka_group_reader(const struct config *config, const struct pool_config *pool,
	char *auth_refused)
{
	rd_kafka_conf_t *conf = kafka_conf_new(config, RD_KAFKA_CONSUMER, auth_refused);

	if (!conf)
		return NULL;
	rd_kafka_conf_set_error_cb(conf, kafka_reader_error);
	if (kafka_conf_set(conf, config, "group.id", pool->group) ||
	    kafka_conf_set(conf, config, "enable.auto.commit", "false")) {
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	return kafka_client_new(RD_KAFKA_CONSUMER, conf);
}

rd_kafka_resp_err_t kafka_measure_depth(const struct config *config, const struct pool_config *pool,
	int64_t timeout_ms, struct kafka_depth *out, char *why, size_t why_size)
{
	double deadline = db_monotonic() + (double)timeout_ms / 1000;
	char auth_refused[256] = "";
	rd_kafka_t *rk = kafka_group_reader(config, pool, auth_refused);
	rd_kafka_resp_err_t err;
	int count = 0;

	memset(out, 0, sizeof *out);
	if (!rk) {
		snprintf(why, why_size, "cannot create a Kafka client (see above)");
		return RD_KAFKA_RESP_ERR__INVALID_ARG;
	}
	err = kafka_partition_count(rk, pool->topic, deadline, &count);
	if (!err && count)
		err = kafka_sum_partitions(rk, pool->topic, count, deadline, out);
	if (err)
		rd_kafka_poll(rk, 0);   /* the errors queued meanwhile, to kafka_reader_error */
	rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
	if (err && kafka_unreachable(err) && *auth_refused) {
		err = RD_KAFKA_RESP_ERR__AUTHENTICATION;
		snprintf(why, why_size, "topic %s, group %s: " KAFKA_AUTH_REFUSED, pool->topic,
			pool->group, auth_refused);
	} else if (err) {
		snprintf(why, why_size, "topic %s, group %s: %s", pool->topic, pool->group,
			rd_kafka_err2str(err));
	}
	return err;
}

/* kafka: settings passed through, forced producer settings, and depth
 * measured against librdkafka's mock cluster (real protocol over loopback). */
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "depth.h"
#include "exitcode.h"
#include "kafka.h"
#include <librdkafka/rdkafka_mock.h>   /* after rdkafka.h, as it demands */
#include "log.h"
#include "tap.h"

/* Data-driven: one partition's watermarks and committed offset. */
static const struct {
	int64_t low, high, committed, depth, lost;
	int ahead;
	const char *what;
} depth_cases[] = {
	{ 0, 10, -1001, 10, 0, 0, "nothing committed: all from the low watermark" },
	{ 0, 10, 4, 6, 0, 0, "committed 4 of 10" },
	{ 0, 10, 10, 0, 0, 0, "all consumed" },
	{ 5, 10, -1001, 5, 5, 0, "nothing committed, 5 dropped: lost unread (not taken)" },
	{ 5, 10, 2, 5, 3, 0, "retention passed the committed offset: 3 lost" },
	{ 5, 10, 5, 5, 0, 0, "committed at the low watermark" },
	{ 0, 0, -1001, 0, 0, 0, "empty partition" },
	{ 0, 10, 12, 0, 0, 1, "committed past the end counts nothing, and is told" },
};

static void test_depth_arithmetic(void)
{
	for (size_t i = 0; i < sizeof depth_cases / sizeof depth_cases[0]; i++) {
		struct kafka_depth depth = { 0 };

		kafka_depth_add(&depth, depth_cases[i].low, depth_cases[i].high, depth_cases[i].committed);
		is_int(depth.depth, depth_cases[i].depth, "depth: %s", depth_cases[i].what);
		is_int(depth.lost, depth_cases[i].lost, "lost: %s", depth_cases[i].what);
		is_int(depth.ahead, depth_cases[i].ahead, "ahead: %s", depth_cases[i].what);
	}
}

/* kafka_partition_health over metadata as a cluster gives it: the mock's
 * replicas are always all in sync, so the short ISR is only seen here. */
static void test_partition_health(void)
{
	int32_t three[] = { 1, 2, 3 }, one[] = { 1 }, two[] = { 1, 2 };
	rd_kafka_metadata_partition_t parts[12];
	rd_kafka_metadata_topic_t topic = { .topic = "qrpool.poster", .partitions = parts };
	char out[1024], small[40];

	for (int i = 0; i < 12; i++)
		parts[i] = (rd_kafka_metadata_partition_t){ .id = i, .leader = 1, .replica_cnt = 3,
			.replicas = three, .isr_cnt = 3, .isrs = three };
	topic.partition_cnt = 3;
	is_int(kafka_partition_health(&topic, out, sizeof out), 0, "health: all well: none");
	is_str(out, "", "health: all well: nothing said");
	parts[1].leader = -1;
	parts[2].leader = -1;
	parts[2].err = RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE;
	is_int(kafka_partition_health(&topic, out, sizeof out), 2, "health: two leaderless");
	is_str(out, "partitions 1, 2 have no leader (a broker down, an election that has not ended)",
		"health: the leaderless named");
	parts[1].leader = 2;
	parts[1].isr_cnt = 1;
	parts[1].isrs = one;
	is_int(kafka_partition_health(&topic, out, sizeof out), 2, "health: one leaderless, one short");
	is_str(out, "partition 2 has no leader (a broker down, an election that has not ended); "
		"partition 1 has 1 of its 3 replicas in sync (acks=all: Kafka takes no write while "
		"fewer than the topic's min.insync.replicas are)", "health: both said");
	parts[2] = parts[0];
	parts[2].id = 2;
	parts[2].isr_cnt = 2;
	parts[2].isrs = two;
	kafka_partition_health(&topic, out, sizeof out);
	is_str(out, "partition 1 has 1 of its 3 replicas in sync; partition 2 has 2 of its 3 "
		"replicas in sync (acks=all: Kafka takes no write while fewer than the topic's "
		"min.insync.replicas are)", "health: each short partition with its counts");
	topic.partition_cnt = 12;
	for (int i = 0; i < 12; i++)
		parts[i].leader = -1;
	is_int(kafka_partition_health(&topic, out, sizeof out), 12, "health: twelve leaderless");
	is_str(out, "partitions 0, 1, 2, 3, 4, 5, 6, 7 and 4 more have no leader (a broker down, an "
		"election that has not ended)", "health: eight named, the rest counted");
	is_int(kafka_partition_health(&topic, small, sizeof small), 12, "health: a small buffer");
	is_int((long long)strlen(small), (long long)sizeof small - 1, "health: ... cut, ended");
}

static struct config test_config(const char *brokers, char **properties, size_t count)
{
	struct config config;

	memset(&config, 0, sizeof config);
	config.path = "test.cfg";
	config.kafka.brokers = (char *)brokers;
	config.kafka.properties.items = properties;
	config.kafka.properties.count = count;
	config.kafka.timeout_ms = 5000;
	return config;
}

static const char *conf_value(rd_kafka_conf_t *conf, const char *key, char *buf, size_t size)
{
	if (rd_kafka_conf_get(conf, key, buf, &size) == RD_KAFKA_CONF_OK)
		return buf;
	if (rd_kafka_topic_conf_get(rd_kafka_conf_get_default_topic_conf(conf), key, buf, &size) ==
	    RD_KAFKA_CONF_OK)
		return buf;
	return "(unset)";
}

static void test_conf(void)
{
	char *properties[] = { "linger.ms=7", "enable.idempotence=false", "acks=1",
		"compression.type=lz4" };
	char *bad[] = { "no.such.property=1" };
	struct config config = test_config("127.0.0.1:1", properties, 4);
	rd_kafka_conf_t *conf = kafka_conf_new(&config, RD_KAFKA_PRODUCER, NULL);
	char buf[256];

	ok(conf != NULL, "a producer configuration");
	is_str(conf_value(conf, "bootstrap.servers", buf, sizeof buf), "127.0.0.1:1",
		"kafka.brokers is bootstrap.servers");
	is_str(conf_value(conf, "linger.ms", buf, sizeof buf), "7", "a property passes through");
	is_str(conf_value(conf, "compression.type", buf, sizeof buf), "lz4",
		"another property passes through");
	is_str(conf_value(conf, "enable.idempotence", buf, sizeof buf), "true",
		"idempotence is forced on");
	is_str(conf_value(conf, "acks", buf, sizeof buf), "-1", "acks=all is forced");
	is_str(conf_value(conf, "message.timeout.ms", buf, sizeof buf), "5000",
		"message.timeout.ms defaults to kafka.timeout");
	is_str(conf_value(conf, "queue.buffering.max.kbytes", buf, sizeof buf), "65536",
		"the queue of images is held to 64 MB");
	rd_kafka_conf_destroy(conf);

	/* librdkafka's producer asks brokers to create a topic it does not
	 * know, unless told: the finished client's settings are what count. */
	for (int set = 0; set < 2; set++) {
		rd_kafka_t *rk;

		config = test_config("127.0.0.1:1", (char *[]){ "allow.auto.create.topics=true" },
			set);
		rk = kafka_client_new(RD_KAFKA_PRODUCER, kafka_conf_new(&config, RD_KAFKA_PRODUCER,
			NULL));
		ok(rk != NULL, "a producer");
		is_str(rk ? conf_value((rd_kafka_conf_t *)rd_kafka_conf(rk),
			"allow.auto.create.topics", buf, sizeof buf) : "", set ? "true" : "false",
			set ? "... that asks for topics to be created when a property says so" :
			"... that does not ask brokers to create a missing topic");
		if (rk)
			rd_kafka_destroy(rk);
	}

	config = test_config("127.0.0.1:1", (char *[]){ "message.timeout.ms=1234" }, 1);
	conf = kafka_conf_new(&config, RD_KAFKA_PRODUCER, NULL);
	is_str(conf_value(conf, "message.timeout.ms", buf, sizeof buf), "1234",
		"a property overrides our default");
	rd_kafka_conf_destroy(conf);
	config = test_config("127.0.0.1:1", (char *[]){ "queue.buffering.max.kbytes=2048" }, 1);
	conf = kafka_conf_new(&config, RD_KAFKA_PRODUCER, NULL);
	is_str(conf_value(conf, "queue.buffering.max.kbytes", buf, sizeof buf), "2048",
		"... that one too");
	rd_kafka_conf_destroy(conf);

	/* TLS checks turned off: honoured (passed through), but never silently;
	 * said once a run, not once per client (report makes one per pool). */
	log_init("test_kafka", 0);   /* warnings shown */
	for (int type = 0; type < 2; type++) {
		char *weakened[] = { "security.protocol=sasl_plaintext",
			"enable.ssl.certificate.verification=False",
			"ssl.endpoint.identification.algorithm=none" };
		char logged[2048];

		config = test_config("127.0.0.1:1", weakened, 3);
		tap_capture_start();
		conf = kafka_conf_new(&config, type ? RD_KAFKA_CONSUMER : RD_KAFKA_PRODUCER, NULL);
		tap_capture_end(logged, sizeof logged);
		ok(conf != NULL, "%s: TLS checks turned off in kafka.properties: honoured",
			type ? "consumer" : "producer");
		if (!type) {
			ok(strstr(logged, "sets enable.ssl.certificate.verification=False: the brokers' "
				"TLS certificates are not fully checked") != NULL, "... with a warning: %s",
				logged);
			ok(strstr(logged, "sets ssl.endpoint.identification.algorithm=none") != NULL,
				"... for each: %s", logged);
			ok(strstr(logged, "sets security.protocol=sasl_plaintext: the SASL credentials") !=
				NULL, "... and for SASL without TLS: %s", logged);
		} else {
			is_str(logged, "", "... said once a run: not again for the next client");
		}
		rd_kafka_conf_destroy(conf);
	}
	config = test_config("127.0.0.1:1", (char *[]){ "enable.ssl.certificate.verification=true",
		"ssl.endpoint.identification.algorithm=https", "security.protocol=sasl_ssl" }, 3);
	{
		char logged[2048];

		tap_capture_start();
		conf = kafka_conf_new(&config, RD_KAFKA_PRODUCER, NULL);
		tap_capture_end(logged, sizeof logged);
		is_str(logged, "", "the TLS checks left on: no warning");
		rd_kafka_conf_destroy(conf);
	}
	log_init("test_kafka", -1);

	config = test_config("127.0.0.1:1", bad, 1);
	ok(kafka_conf_new(&config, RD_KAFKA_PRODUCER, NULL) == NULL, "an unknown property is refused");
	{
		/* A linger.ms not under kafka.timeout (the producer's message
		 * timeout): said with our settings' names, not librdkafka's. */
		char logged[512];
		const char *places[] = { "test.cfg:4" };

		config = test_config("127.0.0.1:1", (char *[]){ "linger.ms=5000" }, 1);
		config.kafka.properties.places = (char **)places;
		config.kafka.timeout_ms = 2000;
		tap_capture_start();
		ok(kafka_conf_new(&config, RD_KAFKA_PRODUCER, NULL) == NULL,
			"linger.ms over kafka.timeout: refused");
		tap_capture_end(logged, sizeof logged);
		ok(strstr(logged, "test.cfg:4: kafka.properties: linger.ms (5000) must be shorter than "
			"kafka.timeout (2000 ms)") != NULL, "... naming both: %s", logged);
		config.kafka.timeout_ms = 6000;
		conf = kafka_conf_new(&config, RD_KAFKA_PRODUCER, NULL);
		ok(conf != NULL, "... under it: taken");
		if (conf)
			rd_kafka_conf_destroy(conf);
	}
	config = test_config(NULL, NULL, 0);
	ok(!kafka_configured(&config), "no brokers: not configured");
	config = test_config(NULL, (char *[]){ "bootstrap.servers=h:9092" }, 1);
	ok(kafka_configured(&config), "bootstrap.servers among the properties: configured");
	config = test_config(NULL, (char *[]){ "auto.offset.reset.x=1", "auto.offset.reset=latest",
		"auto.offset.reset=error" }, 3);
	is_str(kafka_property(&config, "auto.offset.reset"), "error",
		"kafka_property: the last entry for the exact key");
	ok(kafka_property(&config, "auto.offset") == NULL, "kafka_property: a prefix is not the key");
}

/* A pool's topic_properties: over the client's topic defaults (the topic
 * properties among kafka.properties), acks=all forced again and said; a
 * refused one is a config error naming the pool, at kafka_check_config too. */
/* kafka_topic_conf_new with warnings shown, and what it said in `logged`. */
static int topic_conf_said(rd_kafka_t *rk, const struct config *config,
	const struct pool_config *pool, rd_kafka_topic_conf_t **topic, char *logged, size_t size)
{
	int status;

	log_init("test_kafka", 0);
	tap_capture_start();
	status = kafka_topic_conf_new(rk, config, pool, topic);
	tap_capture_end(logged, size);
	log_init("test_kafka", -1);
	return status;
}

/* A topic setting's value, or "-" (none, or no settings). */
static const char *topic_value(rd_kafka_topic_conf_t *topic, const char *key, char *buf,
	size_t size)
{
	return topic && rd_kafka_topic_conf_get(topic, key, buf, &size) == RD_KAFKA_CONF_OK ? buf : "-";
}

static void test_topic_conf(void)
{
	struct config config = test_config("127.0.0.1:1", (char *[]){ "request.timeout.ms=12345",
		"linger.ms=7" }, 2);
	struct pool_config pools[2] = {
		{ .name = "plain", .topic = "qrpool.plain" },
		{ .name = "tuned", .topic = "qrpool.tuned", .topic_properties = { .items = (char *[]){
			"partitioner=murmur2", "acks=1" }, .count = 2 } },
	};
	rd_kafka_t *rk = kafka_client_new(RD_KAFKA_PRODUCER, kafka_conf_new(&config,
		RD_KAFKA_PRODUCER, NULL));
	rd_kafka_topic_conf_t *topic = (rd_kafka_topic_conf_t *)1;
	rd_kafka_topic_t *made;
	char buf[256], logged[2048];

	config.pools = pools;
	config.pool_count = 2;
	is_int(kafka_topic_conf_new(rk, &config, &pools[0], &topic), 0, "a pool without topic_properties");
	ok(topic == NULL, "... takes the client's topic defaults (no settings of its own)");
	is_int(topic_conf_said(rk, &config, &pools[1], &topic, logged, sizeof logged), 0,
		"a pool with topic_properties");
	is_str(topic_value(topic, "partitioner", buf, sizeof buf), "murmur2", "... its own setting");
	is_str(topic_value(topic, "request.timeout.ms", buf, sizeof buf), "12345",
		"... over kafka.properties' topic settings");
	is_str(topic_value(topic, "acks", buf, sizeof buf), "-1", "... acks=all forced again");
	ok(strstr(logged, "test.cfg: pool 'tuned': topic_properties sets acks=1: ignored, the producer "
		"always uses acks=all") != NULL, "... and said: %s", logged);
	if (topic)
		rd_kafka_topic_conf_destroy(topic);
	is_int(kafka_check_config(&config), 0, "kafka_check_config: the pools' settings pass");

	/* Settings librdkafka takes one at a time but refuses when the topic
	 * is made: forced (queuing.strategy, as an idempotent producer needs),
	 * or refused before (a message timeout not over the client's linger). */
	pools[1].topic_properties.items = (char *[]){ "queuing.strategy=lifo", "topic.acks=0" };
	is_int(topic_conf_said(rk, &config, &pools[1], &topic, logged, sizeof logged), 0,
		"queuing.strategy=lifo: taken");
	is_str(topic_value(topic, "queuing.strategy", buf, sizeof buf), "fifo",
		"... and forced back to fifo");
	ok(strstr(logged, "sets queuing.strategy=lifo: ignored, the producer always uses "
		"queuing.strategy=fifo") != NULL, "... said: %s", logged);
	ok(strstr(logged, "sets topic.acks=0: ignored, the producer always uses acks=all") != NULL,
		"acks under its topic. name said too: %s", logged);
	made = rd_kafka_topic_new(rk, "qrpool.tuned", topic);
	ok(made != NULL, "... and librdkafka makes the topic with them");
	if (made)
		rd_kafka_topic_destroy(made);
	pools[1].topic_properties.items = (char *[]){ "message.timeout.ms=5" };
	pools[1].topic_properties.count = 1;
	is_int(topic_conf_said(rk, &config, &pools[1], &topic, logged, sizeof logged), EXIT_CONFIG,
		"message.timeout.ms not over linger.ms (7): refused");
	ok(strstr(logged, "test.cfg: pool 'tuned': topic_properties: message.timeout.ms (5) must be "
		"longer than linger.ms (7)") != NULL, "... said: %s", logged);
	tap_capture_start();
	is_int(kafka_check_config(&config), EXIT_CONFIG, "... by kafka_check_config too");
	tap_capture_end(logged, sizeof logged);
	pools[1].topic_properties.items = (char *[]){ "no.such.topic.property=1" };
	pools[1].topic_properties.count = 1;
	is_int(topic_conf_said(rk, &config, &pools[1], &topic, logged, sizeof logged), EXIT_CONFIG,
		"an unknown topic property: a config error");
	ok(strstr(logged, "test.cfg: pool 'tuned': topic_properties: No such configuration property") !=
		NULL, "... naming the pool: %s", logged);
	tap_capture_start();
	is_int(kafka_check_config(&config), EXIT_CONFIG, "... found by kafka_check_config too");
	tap_capture_end(logged, sizeof logged);
	rd_kafka_destroy(rk);
}

/* Produces `count` messages to `topic` and waits for their delivery. */
static int produce(const char *brokers, const char *topic, int count, size_t size)
{
	struct config config = test_config(brokers, NULL, 0);
	rd_kafka_t *rk = kafka_client_new(RD_KAFKA_PRODUCER,
		kafka_conf_new(&config, RD_KAFKA_PRODUCER, NULL));
	char *value = calloc(1, size);
	int failed = 0;

	for (int i = 0; i < count && !failed; i++) {
		rd_kafka_resp_err_t err;
		while ((err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
				RD_KAFKA_V_VALUE(value, size), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
				RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
			rd_kafka_poll(rk, 10);
		failed = err != 0;
	}
	failed |= rd_kafka_flush(rk, 10000) != 0;
	rd_kafka_destroy(rk);
	free(value);
	return failed ? -1 : 0;
}

/* Commits `offset` on partition 0 for `group`, as an online service would. */
static int commit(const char *brokers, const char *group, const char *topic, int64_t offset)
{
	struct config config = test_config(brokers, NULL, 0);
	rd_kafka_conf_t *conf = kafka_conf_new(&config, RD_KAFKA_CONSUMER, NULL);
	rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
	rd_kafka_t *rk;
	rd_kafka_resp_err_t err;

	rd_kafka_conf_set(conf, "group.id", group, NULL, 0);
	rk = kafka_client_new(RD_KAFKA_CONSUMER, conf);
	rd_kafka_topic_partition_list_add(list, topic, 0)->offset = offset;
	err = rd_kafka_commit(rk, list, 0);
	rd_kafka_topic_partition_list_destroy(list);
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	return err ? -1 : 0;
}

static rd_kafka_resp_err_t measure(const char *brokers, const char *topic, const char *group,
	int64_t timeout_ms, struct kafka_depth *depth)
{
	struct config config = test_config(brokers, NULL, 0);
	struct pool_config pool = { .name = "test", .topic = (char *)topic, .group = (char *)group };
	char why[512];

	return kafka_measure_depth(&config, &pool, timeout_ms, depth, why, sizeof why);
}

/* Several pools read at once (more than DEPTH_READERS), each its own. */
static void test_depths_side_by_side(const char *brokers)
{
	struct config config = test_config(brokers, NULL, 0);
	struct pool_config pools[DEPTH_READERS + 3];
	struct depth_reading readings[DEPTH_READERS + 3];
	size_t count = sizeof readings / sizeof readings[0];
	int right = 0;

	for (size_t i = 0; i < count; i++) {
		pools[i] = (struct pool_config){ .name = "test", .topic = i == 5 ? "new.topic" : "codes",
			.group = i % 2 ? "online" : "another" };
		readings[i] = (struct depth_reading){ .pool = &pools[i] };
	}
	depth_read_kafka(&config, readings, count, 5000);
	for (size_t i = 0; i < count; i++)
		right += !readings[i].err && readings[i].depth.depth == (i == 5 ? 0 : i % 2 ? 6 : 10);
	is_int(right, (int)count, "%zu pools read side by side, each its own depth", count);
}

static void test_depth(const char *brokers, rd_kafka_mock_cluster_t *mock)
{
	char logged[4096], expected[200];
	struct config config = test_config(brokers, NULL, 0);
	struct pool_config pool = { .name = "test", .topic = "small", .group = "online" };
	struct depth_reading small = { .pool = &pool };
	struct kafka_depth depth;
	rd_kafka_resp_err_t err;

	rd_kafka_mock_topic_create(mock, "codes", 2, 1);
	ok(!produce(brokers, "codes", 10, 100), "10 messages produced to partition 0");
	err = measure(brokers, "codes", "online", 5000, &depth);
	is_int(err, 0, "depth measured");
	is_int(depth.depth, 10, "no commits: depth 10");
	is_int(depth.partitions, 2, "both partitions seen");
	ok(!commit(brokers, "online", "codes", 4), "the group commits offset 4");
	measure(brokers, "codes", "online", 5000, &depth);
	is_int(depth.depth, 6, "depth drops by the 4 consumed");
	measure(brokers, "codes", "another", 5000, &depth);
	is_int(depth.depth, 10, "another group's commits do not count");
	err = measure(brokers, "no.such.topic", "online", 5000, &depth);
	is_int(err, 0, "a topic not made yet is no error");
	is_int(depth.depth, 0, "... and has depth 0");
	test_depths_side_by_side(brokers);

	/* The mock keeps 5 MiB per partition: 8 MB drops the oldest unread. */
	rd_kafka_mock_topic_create(mock, "small", 1, 1);
	ok(!commit(brokers, "online", "small", 0), "the group committed offset 0");
	ok(!produce(brokers, "small", 800, 10000), "8 MB produced to one partition");
	log_init("test_kafka", 1);   /* -v: the codes lost are said */
	tap_capture_start();
	depth_read_kafka(&config, &small, 1, 5000);
	tap_capture_end(logged, sizeof logged);
	log_init("test_kafka", -1);
	ok(small.depth.lost > 0 && small.depth.depth + small.depth.lost == 800,
		"retention: %lld lost + %lld left = 800", (long long)small.depth.lost,
		(long long)small.depth.depth);
	snprintf(expected, sizeof expected, "pool test: %lld codes were dropped by retention before "
		"anyone took them", (long long)small.depth.lost);
	ok(strstr(logged, expected) != NULL, "... and said at -v: %s", logged);
	/* ... and where the group never committed (no online consumer yet): the
	 * dropped codes are lost, not taken, or the report would see them used. */
	rd_kafka_mock_topic_create(mock, "unread", 1, 1);
	ok(!produce(brokers, "unread", 800, 10000), "8 MB produced where the group never committed");
	pool.topic = "unread";
	depth_read_kafka(&config, &small, 1, 5000);
	ok(small.depth.lost > 0 && small.depth.depth + small.depth.lost == 800,
		"nothing committed: %lld lost + %lld left = 800", (long long)small.depth.lost,
		(long long)small.depth.depth);
	/* The topic made anew under a group that had read further. */
	rd_kafka_mock_topic_create(mock, "remade", 2, 1);
	ok(!produce(brokers, "remade", 10, 100), "10 messages produced to partition 0");
	ok(!commit(brokers, "online", "remade", 50), "the group committed offset 50");
	pool.topic = "remade";
	log_init("test_kafka", 0);
	tap_capture_start();
	depth_read_kafka(&config, &small, 1, 5000);
	tap_capture_end(logged, sizeof logged);
	log_init("test_kafka", -1);
	is_int(small.depth.depth, 0, "committed past the end: depth 0 there");
	ok(strstr(logged, "pool test: group online has committed past the end of 1 of topic "
		"remade's 2 partitions") != NULL, "... and a warning says so: %s", logged);
}

static void test_unreachable(void)
{
	struct kafka_depth depth;
	double started = db_now();
	rd_kafka_resp_err_t err = measure("127.0.0.1:9", "codes", "online", 1500, &depth);
	double took = db_now() - started;

	ok(kafka_unreachable(err), "no broker listening: unreachable (%s)", rd_kafka_err2str(err));
	ok(took < 3.0, "... told within the timeout (%.1f s for 1.5 s)", took);
}

int main(void)
{
	char why[512];
	rd_kafka_conf_t *conf;
	rd_kafka_t *host;
	rd_kafka_mock_cluster_t *mock;
	char *brokers;

	log_init("test_kafka", -1);
	test_depth_arithmetic();
	test_partition_health();
	test_conf();
	test_topic_conf();
	/* The mock lives in a client handle of its own, which connects nowhere. */
	conf = rd_kafka_conf_new();
	rd_kafka_conf_set(conf, "log_level", "2", NULL, 0);
	host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
	mock = rd_kafka_mock_cluster_new(host, 3);
	brokers = strdup(rd_kafka_mock_cluster_bootstraps(mock));
	test_depth(brokers, mock);
	test_unreachable();
	free(brokers);
	rd_kafka_mock_cluster_destroy(mock);
	rd_kafka_destroy(host);
	return tap_done();
}

#include "publish.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exitcode.h"
#include "interrupt.h"
#include "kafka.h"
#include "log.h"
#include "rid.h"
#include "sha256.h"

/* After giving up on the deliveries left at the deadline, their reports come
 * back at once; this bounds the wait for them. */
#define PUBLISH_PURGE_SECONDS 2.0
/* How long the topics' metadata is asked for after messages failed. */
#define PUBLISH_DIAGNOSE_MS 2000
/* publish_check's answer for a code of a pool whose topic Kafka refuses. */
#define PUBLISH_POOL_REFUSED (-1)

/* A code as the lookup found it: what its message carries besides the key.
 * The strings stay valid until the lookup statement is reset; the image is
 * the code's own, read once the checks passed. */
struct publish_code {
	int64_t id;
	const char *state, *pool, *content_type;
	char sha256[SHA256_HEX_SIZE];
	time_t created;           /* when the image was made */
	int64_t published_at;     /* when it was recorded published, if it was */
	void *bytes;              /* the image, malloc'd; NULL until read, or once produced */
	size_t size;
};

/* Room for one more delivery in the batch being gathered; NULL if memory ran out. */
static struct publish_delivery *publish_batch_append(struct publisher *publisher)
{
	struct publish_batch *batch = publisher->batch;

	if (batch && batch->count >= PUBLISH_BATCH_MAX) {
		/* One poll may bring any number of reports: a full batch waits
		 * for the hand-over as it is, so batches stay bounded. */
		struct publish_batch **tail = &publisher->full;

		while (*tail)
			tail = &(*tail)->next;
		*tail = batch;
		batch = publisher->batch = NULL;
	}
	if (!batch) {
		if (!(batch = publisher->batch = calloc(1, sizeof *batch)))
			return NULL;
		publisher->batch_started = db_monotonic();
	}
	if (batch->count == batch->capacity) {
		size_t capacity = batch->capacity ? batch->capacity * 2 : 256;
		struct publish_delivery *grown = realloc(batch->deliveries, capacity * sizeof *grown);

		if (!grown)
			return NULL;
		batch->deliveries = grown;
		batch->capacity = capacity;
	}
	return &batch->deliveries[batch->count++];
}

/* A message not delivered (its code stays fetched), counted by its pool. */
static void publish_failed(struct publisher *publisher, size_t pool, const char *topic,
	rd_kafka_resp_err_t err)
{
	publisher->counts.failed++;
	if (pool < publisher->config->pool_count)
		publisher->failed[pool]++;
	snprintf(publisher->delivery_error, sizeof publisher->delivery_error, "topic %s: %s",
		topic, rd_kafka_err2str(err));
}

/* Kafka refuses us (not authorized for the topic or the cluster, or its
 * settings refuse idempotent acks=all writes): no rerun fixes that, the ACLs
 * or the settings must change. */
static void publish_refused(struct publisher *publisher, rd_kafka_resp_err_t err)
{
	if (!publisher->client_refused)
		log_error("Kafka refused the messages: %s: %s", rd_kafka_err2str(err), kafka_refused(err) ?
			"its ACLs and credentials must let this client write (with enable.idempotence, "
			"IdempotentWrite on the cluster)" : "the topic's and the "
			"cluster's settings must take idempotent writes with acks=all, and record headers "
			"(message format v2)");
	publisher->status = exitcode_worst(publisher->status, EXIT_UPSTREAM);
	publisher->client_refused = 1;
	publisher->stop = 1;
}

/* Errors of the cluster's settings, not of one message: every message
 * would be refused the same way. */
static int publish_settings_refused(rd_kafka_resp_err_t err)
{
	return err == RD_KAFKA_RESP_ERR_POLICY_VIOLATION ||
		err == RD_KAFKA_RESP_ERR_INVALID_REQUIRED_ACKS ||
		err == RD_KAFKA_RESP_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT;
}

/* One message refused for what it is (kafka_message_refused): the code stays
 * fetched, said with what to change, and the run goes on with the others. */
static void publish_message_refused(struct publisher *publisher, const char *where, const char *id,
	size_t size, rd_kafka_resp_err_t err)
{
	/* The cluster measures the batch, not the message: small images come
	 * back refused all together when librdkafka's batch.size is over the
	 * topic's max.message.bytes. The advice is given once. */
	int advice = err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE && !publisher->size_advice_said;
	char said[1024];

	snprintf(said, sizeof said, "%s%s: Kafka refused its message (an image of %zu bytes): %s; it "
		"stays fetched%s", where, id, size, rd_kafka_err2str(err), advice ? ", and is refused "
		"again until the limit is raised (message.max.bytes in kafka.properties, the topic's "
		"max.message.bytes on the cluster); or, when the images are small, their batch was "
		"too large: batch.size in kafka.properties (1000000 by default) must not be over the "
		"topic's max.message.bytes" : err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ?
		" (see above)" : "");
	if (advice)   /* (said whatever number of lines were before it) */
		log_error("%s", said);
	else
		log_line_error("%s", said);
	publisher->size_advice_said |= advice;
	publisher->counts.refused++;
	publisher->status = exitcode_worst(publisher->status, EXIT_DATA);
}

/* Whether `err` refuses one pool's topic: missing, no valid name, or not
 * for this client (its ACLs). */
static int publish_topic_refused(rd_kafka_resp_err_t err)
{
	return err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
		err == RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION || err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED;
}

/* The pool's topic does not exist on the cluster (which does not create
 * topics on first use), or the cluster takes no topic of that name, or its
 * ACLs refuse it to us: no rerun fixes that, the topic or the ACLs must
 * change. Said once a pool; that pool's later codes stay fetched (counted as
 * not delivered), and the other pools' go on: one forgotten topic must not
 * keep every pool's codes out of Kafka for the night. */
static void publish_no_topic(struct publisher *publisher, size_t pool, const char *topic,
	rd_kafka_resp_err_t err)
{
	int said = pool < publisher->config->pool_count && publisher->refused[pool];

	if (!said && err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED)
		log_error("Kafka refuses this client the topic %s (%s): its ACLs must let this client "
			"describe and write it; the pool's codes stay fetched", topic, rd_kafka_err2str(err));
	else if (!said && err == RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION)
		log_error("Kafka takes no topic named %s (%s): give the pool another topic in the "
			"config; its codes stay fetched", topic, rd_kafka_err2str(err));
	else if (!said)
		log_error("topic %s does not exist on the cluster: create it, with the partitions the "
			"online consumers need (qrpool does not create topics); its codes stay fetched",
			topic);
	if (pool < publisher->config->pool_count)
		publisher->refused[pool] = err;
	else
		publisher->stop = 1;   /* (a report of no pool of ours: cannot happen) */
	publisher->status = exitcode_worst(publisher->status, EXIT_UPSTREAM);
}

/* The pool of a topic handle (pool_count if none). */
static size_t publish_pool_of(const struct publisher *publisher, const rd_kafka_topic_t *rkt)
{
	size_t pool = 0;

	while (pool < publisher->config->pool_count && publisher->topics[pool] != rkt)
		pool++;
	return pool;
}

static void publish_on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *report, void *opaque)
{
	struct publisher *publisher = opaque;
	struct publish_message *message = report->_private;
	struct publish_delivery *delivery;

	(void)rk;
	publisher->in_flight--;
	publisher->last_report = db_monotonic();
	if (report->err && kafka_message_refused(report->err)) {
		char id[RID_SCENE_MAX + 1];

		snprintf(id, sizeof id, "%.*s", (int)strcspn(message->line, "\t"), message->line);
		publish_message_refused(publisher, "", id, report->len, report->err);
		free(message);
		return;
	}
	if (report->err) {
		const char *topic = report->rkt ? rd_kafka_topic_name(report->rkt) : "?";
		size_t pool = publish_pool_of(publisher, report->rkt);

		publish_failed(publisher, pool, topic, report->err);
		/* A message that timed out, or one Kafka refused us the right to
		 * write, says the rest would fare the same: stop reading (a topic
		 * refused: that pool's). */
		if (kafka_unreachable(report->err))
			publisher->stop = 1;
		if (publish_topic_refused(report->err))
			publish_no_topic(publisher, pool, topic, report->err);
		else if (kafka_refused(report->err) || publish_settings_refused(report->err))
			publish_refused(publisher, report->err);
		free(message);
		return;
	}
	publisher->brokers_down = 0;
	if (!(delivery = publish_batch_append(publisher))) {
		/* Delivered but unrecorded: the code stays fetched and goes again. */
		publisher->counts.failed++;
		publisher->status = exitcode_worst(publisher->status, EXIT_INTERNAL);
		publisher->stop = 1;
		free(message);
		return;
	}
	delivery->message = message;
	delivery->partition = report->partition;
	delivery->offset = report->offset;
	delivery->at = (int64_t)time(NULL);
}

/* Whether a TLS failure is one a setting causes (a certificate not
 * trusted, expired or for another name; a protocol or cipher refused), as
 * OpenSSL words it, rather than a connection cut mid-handshake. */
static int publish_tls_setting(const char *reason)
{
	static const char *const words[] = { "certificate", "alert", "wrong version number",
		"unsupported protocol", "no protocols available", "no shared cipher" };

	for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
		if (strstr(reason, words[i]))
			return 1;
	return 0;
}

/* Client errors are mostly passing (a broker reconnecting); only a fatal one
 * ends the run. The last is kept for the summary when deliveries fail. */
static void publish_on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	struct publisher *publisher = opaque;
	char why[512];

	/* Also raised for passing trouble (a broker dropping the connection
	 * mid-handshake, a token refresh): judged at the end (publish_finish). */
	publisher->auth_failed = err == RD_KAFKA_RESP_ERR__AUTHENTICATION;
	if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
		publisher->brokers_down = 1;   /* until a delivery says one is back */
	/* Kept, not only the last: a failed handshake alternates with the
	 * disconnection that follows it. Only what a setting causes: librdkafka
	 * 2.0 also says __SSL of a connection cut mid-handshake (OpenSSL 3's
	 * "unexpected eof"), a broker restarting. */
	if (err == RD_KAFKA_RESP_ERR__SSL && publish_tls_setting(reason))
		snprintf(publisher->tls_error, sizeof publisher->tls_error, "%s", reason);
	if (err != RD_KAFKA_RESP_ERR__FATAL) {
		log_info("Kafka: %s", reason);
		snprintf(publisher->client_error, sizeof publisher->client_error, "%s", reason);
		return;
	}
	err = rd_kafka_fatal_error(rk, why, sizeof why);
	log_error("Kafka: fatal error: %s", why);
	if (kafka_refused(err))
		publish_refused(publisher, err);
	publisher->status = exitcode_worst(publisher->status, EXIT_TEMPFAIL);
	publisher->stop = 1;
}

static int publish_open_producer(struct publisher *publisher)
{
	rd_kafka_conf_t *conf;

	if (kafka_require(publisher->config))
		return EXIT_CONFIG;
	if (!(conf = kafka_conf_new(publisher->config, RD_KAFKA_PRODUCER, publisher)))
		return EXIT_CONFIG;
	rd_kafka_conf_set_dr_msg_cb(conf, publish_on_delivery);
	rd_kafka_conf_set_error_cb(conf, publish_on_error);
	if (!(publisher->producer = kafka_client_new(RD_KAFKA_PRODUCER, conf)))
		return EXIT_CONFIG;
	/* The topics of pools with settings of their own are made now: settings
	 * librdkafka refuses are a config error before any code is read (some
	 * it refuses only when a topic is made, said by it at error level). */
	for (size_t i = 0; i < publisher->config->pool_count; i++) {
		const struct pool_config *pool = &publisher->config->pools[i];
		rd_kafka_topic_conf_t *settings;
		int status = kafka_topic_conf_new(publisher->producer, publisher->config, pool,
			&settings);

		if (status)
			return status;
		if (settings && !(publisher->topics[i] = rd_kafka_topic_new(publisher->producer,
				pool->topic, settings))) {
			log_error("%s: pool '%s': topic_properties: librdkafka refuses them for topic %s "
				"(%s)", pool->topic_properties.places ? pool->topic_properties.places[0] :
				publisher->config->path, pool->name, pool->topic,
				rd_kafka_err2str(rd_kafka_last_error()));
			return EXIT_CONFIG;
		}
	}
	return 0;
}

int publish_open(struct publisher *publisher, const struct config *config, struct db *db,
	int drop_images, FILE *out)
{
	int status;

	memset(publisher, 0, sizeof *publisher);
	publisher->config = config;
	publisher->db = db;
	publisher->drop_images = drop_images;
	publisher->topics = calloc(config->pool_count ? config->pool_count : 1,
		sizeof *publisher->topics);
	publisher->used = calloc(config->pool_count ? config->pool_count : 1, 1);
	publisher->failed = calloc(config->pool_count ? config->pool_count : 1,
		sizeof *publisher->failed);
	publisher->refused = calloc(config->pool_count ? config->pool_count : 1,
		sizeof *publisher->refused);
	if (!publisher->topics || !publisher->used || !publisher->failed || !publisher->refused) {
		free(publisher->topics);
		free(publisher->used);
		free(publisher->failed);
		free(publisher->refused);
		return EXIT_INTERNAL;
	}
	/* Each image is read once: reading it through a mapping of the file saves
	 * a read() and a copy per image (about a sixth of our CPU time). */
	if ((status = db_exec(db, "PRAGMA mmap_size = 1073741824")) ||
	    (status = db_prepare(db, &publisher->lookup, "SELECT c.id, c.state, c.pool, "
			"c.content_type, c.sha256, coalesce(c.fetched_at, c.created_at), c.published_at "
			"FROM codes c WHERE c.request_id = ?")) ||
	    (status = publish_committer_start(&publisher->committer, config, out)) ||
	    (status = publish_open_producer(publisher))) {
		publish_close(publisher);
		return status;
	}
	return 0;
}

void publish_close(struct publisher *publisher)
{
	for (size_t i = 0; publisher->topics && i < publisher->config->pool_count; i++)
		if (publisher->topics[i])
			rd_kafka_topic_destroy(publisher->topics[i]);
	free(publisher->topics);
	free(publisher->used);
	free(publisher->failed);
	free(publisher->refused);
	free(publisher->url);
	idset_free(&publisher->seen);
	if (publisher->producer)
		rd_kafka_destroy(publisher->producer);
	publish_committer_finish(&publisher->committer);
	publish_batch_free(publisher->batch);
	publish_batch_free(publisher->full);
	sqlite3_blob_close(publisher->image);
	sqlite3_finalize(publisher->has_image);
	sqlite3_finalize(publisher->lookup);
	publisher->topics = NULL;
	publisher->used = NULL;
	publisher->failed = NULL;
	publisher->refused = NULL;
	publisher->url = NULL;
	publisher->image = NULL;
	publisher->has_image = NULL;
	publisher->producer = NULL;
	publisher->batch = publisher->full = NULL;
	publisher->lookup = NULL;
}

/* Lookups share one read transaction for PUBLISH_BATCH_SECONDS at most: in
 * WAL mode a statement outside a transaction takes and drops the file locks,
 * which costs more than the lookup itself. Ending it now and then lets the
 * checkpoints of the committer's writes go on. */
static int publish_begin_read(struct publisher *publisher)
{
	int status;

	if (publisher->reading_since > 0)
		return 0;
	if ((status = db_exec(publisher->db, "BEGIN")))
		return status;
	publisher->reading_since = db_monotonic();
	return 0;
}

static void publish_end_read(struct publisher *publisher)
{
	sqlite3_blob_close(publisher->image);   /* it holds the snapshot too */
	publisher->image = NULL;
	if (publisher->reading_since > 0)
		db_rollback(publisher->db);
	publisher->reading_since = 0;
}

/* Steps the lookup for `request_id`: 1 (a row), 0 (none) or an exit code. */
static int publish_step_lookup(struct publisher *publisher, const char *request_id)
{
	sqlite3_stmt *stmt = publisher->lookup;
	int rc;

	sqlite3_reset(stmt);
	sqlite3_bind_text(stmt, 1, request_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		return rc == SQLITE_ROW;
	return db_fail(publisher->db, rc, "looking up a request id");
}

/* Looks the code up, with its image, in the shared read transaction. That
 * snapshot may be older than the line just read (the stage before us
 * commits, then prints), so a code that looks unknown or not ready is looked
 * up again in a fresh one. Returns 0 (found; the statement stays on its row
 * until the caller resets it), 1 (unknown) or an exit code. */
static int publish_lookup(struct publisher *publisher, const char *request_id,
	struct publish_code *code)
{
	sqlite3_stmt *stmt = publisher->lookup;
	int status = publish_begin_read(publisher);

	if (!status)
		status = publish_step_lookup(publisher, request_id);
	if (status == 0 || (status == 1 && strcmp((const char *)sqlite3_column_text(stmt, 1),
			"fetched"))) {
		sqlite3_reset(stmt);
		publish_end_read(publisher);
		status = publish_step_lookup(publisher, request_id);
	}
	if (status != 1)
		return status ? status : 1;
	code->id = sqlite3_column_int64(stmt, 0);
	code->state = (const char *)sqlite3_column_text(stmt, 1);
	code->pool = (const char *)sqlite3_column_text(stmt, 2);
	code->content_type = (const char *)sqlite3_column_text(stmt, 3);
	code->created = (time_t)sqlite3_column_int64(stmt, 5);
	code->published_at = sqlite3_column_int64(stmt, 6);
	code->bytes = NULL;
	code->size = 0;
	if (sqlite3_column_bytes(stmt, 4) == SHA256_HEX_SIZE - 1)
		memcpy(code->sha256, sqlite3_column_text(stmt, 4), SHA256_HEX_SIZE);
	else
		code->sha256[0] = '\0';   /* not recorded: computed once the image is read */
	if (!code->content_type)
		code->content_type = "application/octet-stream";
	return 0;
}

/* 1 if the code has no image stored (its blob handle failed to find the
 * row), 0 if it has, or an exit code. */
static int publish_no_image(struct publisher *publisher, int64_t code_id)
{
	int rc;

	if (!publisher->has_image && (rc = db_prepare(publisher->db, &publisher->has_image,
			"SELECT 1 FROM images WHERE code_id = ?")))
		return rc;
	sqlite3_reset(publisher->has_image);
	sqlite3_bind_int64(publisher->has_image, 1, code_id);
	rc = sqlite3_step(publisher->has_image);
	sqlite3_reset(publisher->has_image);
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		return rc == SQLITE_DONE;
	return db_fail(publisher->db, rc, "looking up an image");
}

/* Reads the code's image into a buffer of its own, in the lookup's
 * transaction, through one blob handle moved from row to row: the bytes are
 * copied once, where a column of the lookup would be copied by SQLite and
 * then again by the producer (and allocated twice), and the images are not
 * joined in the lookup. 0, 1 (no image stored) or an exit code. */
static int publish_read_image(struct publisher *publisher, struct publish_code *code)
{
	int rc = publisher->image ? sqlite3_blob_reopen(publisher->image, code->id) :
		sqlite3_blob_open(publisher->db->handle, "main", "images", "bytes", code->id, 0,
			&publisher->image);
	char why[256];
	int status;

	if (rc == SQLITE_OK) {
		if (!(code->size = (size_t)sqlite3_blob_bytes(publisher->image)))
			return 1;   /* an empty image is none */
		if (!(code->bytes = malloc(code->size)))
			return EXIT_INTERNAL;
		rc = sqlite3_blob_read(publisher->image, code->bytes, (int)code->size, 0);
	}
	if (rc == SQLITE_OK) {
		if (!code->sha256[0])
			sha256_hex(code->bytes, code->size, code->sha256);
		return 0;
	}
	free(code->bytes);
	code->bytes = NULL;
	/* (said before the handle's close or the lookup below replace it) */
	snprintf(why, sizeof why, "%s", sqlite3_errmsg(publisher->db->handle));
	sqlite3_blob_close(publisher->image);   /* a failed handle only fails again */
	publisher->image = NULL;
	/* A missing row fails as SQLITE_ERROR, as some other failures do. */
	if (rc == SQLITE_ERROR && (status = publish_no_image(publisher, code->id)) != 0)
		return status;
	log_error("%s: reading the image of code %lld: %s", publisher->db->path,
		(long long)code->id, why);
	return db_error_code(publisher->db, rc);
}

/* Hands the gathered deliveries to the committer when the batch is full or
 * old enough; a failed commit there ends the reading here. */
static void publish_submit(struct publisher *publisher, struct publish_batch *batch)
{
	int status;

	batch->next = NULL;
	/* The hand-over may wait for room: no read transaction is held meanwhile. */
	if (publish_committer_full(&publisher->committer))
		publish_end_read(publisher);
	if ((status = publish_committer_submit(&publisher->committer, batch))) {
		publisher->status = exitcode_worst(publisher->status, status);
		publisher->stop = 1;
	}
}

static void publish_hand_over(struct publisher *publisher, int now)
{
	struct publish_batch *batch = publisher->batch;

	while (publisher->full) {
		struct publish_batch *full = publisher->full;

		publisher->full = full->next;
		publish_submit(publisher, full);
	}
	if (!batch || (!now && batch->count < PUBLISH_BATCH_MAX &&
			db_monotonic() - publisher->batch_started < PUBLISH_BATCH_SECONDS))
		return;
	publisher->batch = NULL;
	publish_submit(publisher, batch);
}

static int publish_skip(struct publisher *publisher, const struct item *item, const char *source,
	const char *why)
{
	log_line_error("%s:%ld: %s %s; skipped", source, item->line_number, item->request_id, why);
	publisher->counts.skipped++;
	publisher->status = exitcode_worst(publisher->status, EXIT_DATA);
	return 1;
}

/* 1 if the code was published by the run this one waited for (its lock): the
 * input was read from the DB before, and the code is done, not sent again
 * (counted, said at the end), no error. */
static int publish_meanwhile(struct publisher *publisher, const struct publish_code *code)
{
	if (!publisher->waited_from || strcmp(code->state, "published") ||
	    code->published_at < (int64_t)publisher->waited_from)
		return 0;
	publisher->counts.meanwhile++;
	return 1;
}

/* Finds the item's code and checks it is this pool's, ready, and has its
 * image. Returns 0 (ok), 1 (reported and skipped), PUBLISH_POOL_REFUSED (its
 * pool's topic refused: left fetched, *pool set) or an exit code. */
static int publish_check(struct publisher *publisher, const struct item *item, const char *source,
	struct publish_code *code, const struct pool_config **pool)
{
	char why[512];
	int found = publish_lookup(publisher, item->request_id, code), status;

	if (found > 1)
		return found;
	if (found == 1) {
		snprintf(why, sizeof why, "is not in the staging DB%s",
			db_unknown_id_hint(publisher->db));
		return publish_skip(publisher, item, source, why);
	}
	if (strcmp(code->pool, item->pool))
		snprintf(why, sizeof why, "belongs to pool '%s', not '%s'", code->pool, item->pool);
	else if (!(*pool = config_pool(publisher->config, code->pool)))
		snprintf(why, sizeof why, "is of pool '%s', which is not configured", code->pool);
	else if (publish_meanwhile(publisher, code))
		return 1;
	else if (strcmp(code->state, "fetched"))
		snprintf(why, sizeof why, "is %s, not fetched", code->state);
	else if (publisher->refused[*pool - publisher->config->pools])
		return PUBLISH_POOL_REFUSED;   /* (its image not read for nothing) */
	else if ((status = publish_read_image(publisher, code)) > 1)
		return status;
	else if (status == 1)
		snprintf(why, sizeof why, "has no image stored");
	else if ((status = idset_add(&publisher->seen, code->id)) < 0)
		return EXIT_INTERNAL;
	else if (status == 1)
		return 0;
	else
		snprintf(why, sizeof why, "was listed before in this input (sent once)");
	return publish_skip(publisher, item, source, why);
}

/* The code's creation time as ISO-8601 UTC; codes made in the same second
 * share the formatting. */
static const char *publish_created(struct publisher *publisher, time_t created)
{
	struct tm tm;

	if (created != publisher->created || !*publisher->created_text) {
		gmtime_r(&created, &tm);
		strftime(publisher->created_text, sizeof publisher->created_text,
			"%Y-%m-%dT%H:%M:%SZ", &tm);
		publisher->created = created;
	}
	return publisher->created_text;
}

/* url_prefix + request id, for link pools, in a buffer reused per message. */
static const char *publish_url(struct publisher *publisher, const struct pool_config *pool,
	const char *request_id)
{
	size_t prefix = strlen(pool->url_prefix), size = prefix + strlen(request_id) + 1;

	if (size > publisher->url_size) {
		char *grown = realloc(publisher->url, size);
		if (!grown)
			return NULL;
		publisher->url = grown;
		publisher->url_size = size;
	}
	memcpy(publisher->url, pool->url_prefix, prefix);
	memcpy(publisher->url + prefix, request_id, size - prefix);
	return publisher->url;
}

static struct publish_message *publish_message_new(const struct item *item, int64_t code_id,
	int drop_image)
{
	struct publish_message *message = malloc(sizeof *message + item_line_size(item));

	if (!message)
		return NULL;
	message->code_id = code_id;
	message->drop_image = drop_image;
	item_line_copy(item, message->line);
	return message;
}

static rd_kafka_topic_t *publish_topic(struct publisher *publisher, const struct pool_config *pool)
{
	size_t index = (size_t)(pool - publisher->config->pools);

	if (!publisher->topics[index])
		publisher->topics[index] = rd_kafka_topic_new(publisher->producer, pool->topic, NULL);
	publisher->used[index] = 1;
	return publisher->topics[index];
}

/* Makes the code independent of the read transaction (its content type is
 * copied; the image is its own already), and ends that: before a wait that
 * may be long, which must not hold back the checkpoints of the committer's
 * writes. */
static void publish_detach(struct publisher *publisher, struct publish_code *code)
{
	snprintf(publisher->held_type, sizeof publisher->held_type, "%s", code->content_type);
	code->content_type = publisher->held_type;
	sqlite3_reset(publisher->lookup);
	publish_end_read(publisher);
}

/* The producer's queue full, and no delivery report for kafka.timeout
 * (message.timeout.ms set longer, or to 0 for no limit, while the brokers
 * are down): waiting for room would outlast the run's timeout, so reading
 * stops and the run ends 75 with its counts. */
static void publish_check_room(struct publisher *publisher, double full_since)
{
	double timeout = (double)publisher->config->kafka.timeout_ms / 1000;
	double quiet_since = publisher->last_report > full_since ? publisher->last_report : full_since;

	if (db_monotonic() - quiet_since < timeout)
		return;
	log_error("the producer's queue has been full for kafka.timeout (%g s) with no delivery "
		"confirmed or failed meanwhile (message.timeout.ms in kafka.properties or a pool's "
		"topic_properties longer than it?): reading stopped", timeout);
	publisher->status = exitcode_worst(publisher->status, EXIT_TEMPFAIL);
	publisher->stop = 1;
}

/* Hands the message over, and with it the image (the producer frees it once
 * done; code->bytes is then NULL); when the producer's queue is full, serves
 * delivery reports (and hands their batches to the committer) until there is
 * room or a signal comes, with the code detached from the read transaction. */
static rd_kafka_resp_err_t publish_send(struct publisher *publisher, const struct pool_config *pool,
	const struct item *item, struct publish_code *code, struct publish_message *message)
{
	rd_kafka_topic_t *topic = publish_topic(publisher, pool);
	int link = pool->source == POOL_LINK;
	const char *url = link ? publish_url(publisher, pool, item->request_id) : NULL;
	const char *created = publish_created(publisher, code->created);
	rd_kafka_resp_err_t err;
	double full_since = 0;

	if (!topic)
		return rd_kafka_last_error();
	if (link && !url)
		return RD_KAFKA_RESP_ERR__NOENT;
	do {
		err = rd_kafka_producev(publisher->producer, RD_KAFKA_V_RKT(topic),
			RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
			RD_KAFKA_V_KEY(item->request_id, strlen(item->request_id)),
			RD_KAFKA_V_VALUE(code->bytes, code->size),
			RD_KAFKA_V_HEADER("pool", pool->name, -1),
			RD_KAFKA_V_HEADER("content-type", code->content_type, -1),
			RD_KAFKA_V_HEADER("sha256", code->sha256, -1),
			RD_KAFKA_V_HEADER("source", config_source_name(pool->source), -1),
			RD_KAFKA_V_HEADER(link ? "url" : "page", link ? url : pool->page, -1),
			RD_KAFKA_V_HEADER("created", created, -1),
			RD_KAFKA_V_OPAQUE(message), RD_KAFKA_V_END);
		if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
			if (code->content_type != publisher->held_type)
				publish_detach(publisher, code);
			if (full_since == 0)
				full_since = db_monotonic();
			rd_kafka_poll(publisher->producer, 100);
			publish_hand_over(publisher, 0);
			publish_check_room(publisher, full_since);
		}
	} while (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && !publisher->stop && !interrupt_requested() &&
		!publisher->refused[pool - publisher->config->pools]);   /* (refused meanwhile) */
	if (!err)
		code->bytes = NULL;
	return err;
}

static int publish_produce(struct publisher *publisher, const struct item *item, const char *source,
	struct publish_code *code, const struct pool_config *pool)
{
	struct publish_message *message = publish_message_new(item, code->id,
		publisher->drop_images || pool->drop_image_after_publish);
	rd_kafka_resp_err_t err;

	if (!message)
		return EXIT_INTERNAL;
	err = publish_send(publisher, pool, item, code, message);
	if (!err) {
		publisher->in_flight++;
		publisher->counts.produced++;
		return 0;
	}
	free(message);
	if (kafka_message_refused(err)) {
		char where[300];

		snprintf(where, sizeof where, "%s:%ld: ", source, item->line_number);
		publish_message_refused(publisher, where, item->request_id, code->size, err);
		return 0;
	}
	publish_failed(publisher, (size_t)(pool - publisher->config->pools), pool->topic, err);
	if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
		return 0;   /* stopped waiting for room: the run is ending anyway */
	if (publish_topic_refused(err)) {
		publish_no_topic(publisher, (size_t)(pool - publisher->config->pools), pool->topic, err);
		return 0;
	}
	/* Anything else would refuse every message the same way: said once. */
	log_error("%s:%ld: %s: Kafka refused the message: %s; reading stopped", source,
		item->line_number, item->request_id, rd_kafka_err2str(err));
	publisher->stop = 1;
	return EXIT_TEMPFAIL;
}

int publish_item(struct publisher *publisher, const struct item *item, const char *source)
{
	const struct pool_config *pool = NULL;
	struct publish_code code = { .bytes = NULL };
	int status;

	publisher->counts.read++;
	status = publish_check(publisher, item, source, &code, &pool);
	if (status == PUBLISH_POOL_REFUSED) {   /* (said once: counted as not delivered) */
		size_t index = (size_t)(pool - publisher->config->pools);

		publish_failed(publisher, index, pool->topic, publisher->refused[index]);
		status = 0;
	} else if (status == 0) {
		status = publish_produce(publisher, item, source, &code, pool);
	}
	free(code.bytes);   /* not handed over */
	sqlite3_reset(publisher->lookup);
	if (publisher->reading_since == 0) {
		/* looked up outside a transaction: the handle must not keep its snapshot */
		sqlite3_blob_close(publisher->image);
		publisher->image = NULL;
	}
	if (status > 1) {   /* 1 is a skipped item; anything more ends the run */
		publisher->status = exitcode_worst(publisher->status, status);
		publisher->stop = 1;
	}
	publish_serve(publisher, 0);
	return publisher->status;
}

void publish_serve(struct publisher *publisher, int timeout_ms)
{
	rd_kafka_poll(publisher->producer, timeout_ms);
	/* A committer behind (stdout blocked, say) makes the hand-over wait: no
	 * read transaction is held meanwhile. */
	if (publisher->reading_since > 0 && (db_monotonic() - publisher->reading_since >=
			PUBLISH_BATCH_SECONDS || publish_committer_full(&publisher->committer)))
		publish_end_read(publisher);
	publish_hand_over(publisher, 0);
}

/* Waits for the outstanding reports until `deadline` (or, if `yielding`, a
 * second signal), handing batches over meanwhile. */
static void publish_wait(struct publisher *publisher, double deadline, int yielding)
{
	while (publisher->in_flight > 0 && db_monotonic() < deadline &&
			!(yielding && interrupt_insisted())) {
		rd_kafka_poll(publisher->producer, 100);
		publish_hand_over(publisher, 0);
	}
}

/* `word` as one shell word: as it is when that is safe, else single-quoted. */
static void publish_shell_word(const char *word, char *out, size_t size)
{
	size_t used = 0;

	if (strspn(word, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/._+-") ==
	    strlen(word)) {
		snprintf(out, size, "%s", word);
		return;
	}
	out[used++] = '\'';
	for (const char *c = word; *c && used + 6 < size; c++) {
		if (*c == '\'')
			used += (size_t)snprintf(out + used, size - used, "'\\''");
		else
			out[used++] = *c;
	}
	snprintf(out + used, size - used, "'");
}

const char *publish_resume_command(const struct config *config)
{
	static char command[PUBLISH_RESUME_MAX];

	if (!*command) {
		/* The lock the fills took (job.sh says which), else where they take it. */
		const char *lock = getenv("QRPOOL_FILL_LOCK"), *dir = getenv("QRPOOL_LOCK_DIR");
		char path[PATH_MAX], lock_word[PUBLISH_WORD_MAX], config_word[PUBLISH_WORD_MAX] = "";

		if (lock && *lock == '/')
			snprintf(path, sizeof path, "%s", lock);
		else
			snprintf(path, sizeof path, "%s/qrpool-fill.lock", dir && *dir ? dir : "/run/lock");
		publish_shell_word(path, lock_word, sizeof lock_word);
		/* The config this run read (-c, $QRPOOL_CONFIG), where a shell by
		 * hand would read the default's. */
		if (config && config->path && strcmp(config->path, CONFIG_DEFAULT_PATH)) {
			if (!realpath(config->path, path))
				snprintf(path, sizeof path, "%s", config->path);
			publish_shell_word(path, config_word, sizeof config_word);
		}
		snprintf(command, sizeof command, "%s%s%sflock -n -E 75 %s bash -o pipefail -c "
			"'qrpool-pending --state fetched | qrpool-publish'",
			*config_word ? "env QRPOOL_CONFIG=" : "", config_word, *config_word ? " " : "",
			lock_word);
	}
	return command;
}

/* The codes not delivered by topic, when more than one had some: the last
 * error names one topic only, and the mail must not send the reader to the
 * wrong one. "" otherwise. */
static const char *publish_failed_by_topic(const struct publisher *publisher, char *out, size_t size)
{
	size_t used = 0, topics = 0;

	*out = '\0';
	for (size_t i = 0; i < publisher->config->pool_count; i++)
		topics += publisher->failed[i] > 0;
	for (size_t i = 0; topics > 1 && i < publisher->config->pool_count && used < size; i++)
		if (publisher->failed[i])
			used += (size_t)snprintf(out + used, size - used, "%s%s %lld",
				used ? ", " : "by topic: ", publisher->config->pools[i].topic,
				(long long)publisher->failed[i]);
	if (topics > 1 && used < size)
		snprintf(out + used, size - used, "; the last error: ");
	return out;
}

static void publish_summary(struct publisher *publisher)
{
	const struct publish_counts *c = &publisher->counts;
	char by_topic[512];

	if (c->failed) {
		/* After a refusal (69) a rerun helps only once what it said is changed.
		 * A rerun by hand goes under the scripts' lock, where they keep it: a
		 * resume beside a fill would wait for the fill's publish. */
		log_error("%lld of %lld codes not delivered (%s%s%s%s): they stay fetched; publish them "
			"again %s: the next fill feeds them on first (by hand, under the fills' lock: %s)",
			(long long)c->failed, (long long)(c->read - c->skipped - c->meanwhile),
			publish_failed_by_topic(publisher, by_topic, sizeof by_topic), publisher->delivery_error,
			*publisher->client_error ? "; last client error: " : "", publisher->client_error,
			publisher->status == EXIT_UPSTREAM ? "once the refusal above is dealt with" : "later",
			publish_resume_command(publisher->config));
		publisher->status = exitcode_worst(publisher->status, EXIT_TEMPFAIL);
	}
	if (publisher->committer.unrecorded)
		log_error("%lld codes delivered but not recorded (see above): they stay fetched and "
			"go again on the next run", (long long)publisher->committer.unrecorded);
	if (c->refused)
		log_error("%lld code%s refused by Kafka for what %s (see above): %s fetched",
			(long long)c->refused, c->refused == 1 ? "" : "s",
			c->refused == 1 ? "it is" : "they are", c->refused == 1 ? "it stays" : "they stay");
	if (c->skipped + c->bad_lines)
		log_error("%lld line%s skipped (see above)", (long long)(c->skipped + c->bad_lines),
			c->skipped + c->bad_lines == 1 ? "" : "s");
	if (c->meanwhile)
		log_warn("%lld code%s published by the qrpool-publish this run waited for: not "
			"sent again", (long long)c->meanwhile, c->meanwhile == 1 ? " was" : "s were");
	if (c->already)
		log_warn("%lld codes were already recorded as published (by another run meanwhile): "
			"delivered again, not printed", (long long)c->already);
	/* Said whenever the run did not end well (a stop, a failure), as fetch
	 * and render end theirs: the log then tells what was done. */
	log_msg(publisher->status || interrupt_requested() ? LOG_WARN : LOG_INFO,
		"read %lld lines, published %lld, failed %lld, refused %lld, skipped %lld",
		(long long)(c->read + c->bad_lines), (long long)c->published, (long long)c->failed,
		(long long)c->refused, (long long)(c->skipped + c->bad_lines));
}

/* Messages that timed out may have waited on a topic the cluster refuses to
 * describe to us (a missing Describe ACL): asked once, so the run says so
 * (69) rather than "try again later". Or on partitions without a leader, or
 * short of in-sync replicas, which the same answer shows: said, as
 * librdkafka says only "timed out". Not when the client could reach no
 * broker (all down since the last delivery, its authentication or TLS
 * refused): no answer would come. One broker down is no reason: the
 * others answer, and its partitions may be the ones without a leader. */
static void publish_diagnose(struct publisher *publisher)
{
	double deadline = db_monotonic() + PUBLISH_DIAGNOSE_MS / 1000.0;

	for (size_t i = 0; i < publisher->config->pool_count && !publisher->client_refused &&
			!publisher->brokers_down && !publisher->auth_failed && !*publisher->tls_error &&
			db_monotonic() < deadline; i++) {
		char health[1024];
		int partitions;
		rd_kafka_resp_err_t err;

		if (!publisher->used[i] || !publisher->topics[i] || publisher->refused[i])
			continue;
		err = kafka_topic_metadata(publisher->producer, publisher->config->pools[i].topic,
			(int)((deadline - db_monotonic()) * 1000) + 1, &partitions, health, sizeof health);
		/* (not a topic said missing: a broker loading its metadata after a
		 * restart says that of one that exists) */
		if (err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
			publish_no_topic(publisher, i, publisher->config->pools[i].topic, err);
		} else if (kafka_refused(err)) {
			log_error("topic %s: %s", publisher->config->pools[i].topic, rd_kafka_err2str(err));
			publish_refused(publisher, err);
		} else if (!err && *health && publisher->failed[i]) {
			/* Why its messages timed out, which librdkafka does not say. */
			log_error("topic %s, by the cluster's metadata: %s", publisher->config->pools[i].topic,
				health);
		}
	}
}

int publish_finish(struct publisher *publisher)
{
	double deadline = db_monotonic() + (double)publisher->config->kafka.timeout_ms / 1000;

	publish_end_read(publisher);
	publish_committer_finishing(&publisher->committer, deadline);
	log_debug("input done: %lld produced, %lld in flight, %lld published",
		(long long)publisher->counts.produced, (long long)publisher->in_flight,
		(long long)publish_committer_published(&publisher->committer));
	publish_wait(publisher, deadline, 1);
	if (publisher->in_flight > 0) {
		log_warn("%lld deliver%s unconfirmed at %s: given up", (long long)publisher->in_flight,
			publisher->in_flight == 1 ? "y" : "ies",
			interrupt_insisted() ? "a second signal" : "the deadline");
		rd_kafka_purge(publisher->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
		publish_wait(publisher, db_monotonic() + PUBLISH_PURGE_SECONDS, 0);
		if (publisher->in_flight > 0)   /* reports never came: not delivered, as far as we know */
			publisher->status = exitcode_worst(publisher->status, EXIT_TEMPFAIL);
	}
	publish_hand_over(publisher, 1);
	if (publisher->counts.failed && !interrupt_requested())
		publish_diagnose(publisher);
	publisher->status = exitcode_worst(publisher->status,
		publish_committer_finish(&publisher->committer));
	publisher->counts.published = publish_committer_published(&publisher->committer);
	/* Nothing delivered, the last complaint an authentication failure:
	 * credentials or a SASL setup the cluster refuses. A rerun fails the same
	 * way, every night: 69, not 75. */
	if (publisher->auth_failed && publisher->counts.failed && !publisher->counts.published) {
		log_error(KAFKA_AUTH_REFUSED, publisher->client_error);
		publisher->status = exitcode_worst(publisher->status, EXIT_UPSTREAM);
	} else if (*publisher->tls_error && publisher->counts.failed && !publisher->counts.published) {
		/* Likewise a TLS handshake that fails: a CA that does not sign the
		 * brokers' certificates, a certificate expired. */
		log_error("the TLS handshake with Kafka failed (%s): kafka.properties' "
			"security.protocol and ssl.* settings (ssl.ca.location, the client's certificate "
			"and key) must match the cluster's listener", publisher->tls_error);
		publisher->status = exitcode_worst(publisher->status, EXIT_UPSTREAM);
	}
	publisher->counts.already = publisher->committer.abandoned ? 0 : publisher->committer.already;
	publish_summary(publisher);
	return publisher->status;
}

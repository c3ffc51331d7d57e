#include "consumer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exitcode.h"
#include "interrupt.h"
#include "kafka.h"
#include "log.h"

#define CONSUMER_POLL_MS 100

static double consumer_now(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)now.tv_sec + now.tv_nsec / 1e9;
}

static void consumer_error(rd_kafka_t *handle, int err, const char *reason, void *opaque)
{
	struct consumer *consumer = opaque;

	(void)handle;
	if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
		consumer->brokers_down = 1;
	if (kafka_refused(err) && !*consumer->refused)
		snprintf(consumer->refused, sizeof consumer->refused, "%s", reason);
	/* (Kept: a failed handshake alternates with the disconnection after it.) */
	if (err == RD_KAFKA_RESP_ERR__AUTHENTICATION)
		snprintf(consumer->auth_refused, sizeof consumer->auth_refused, "%s", reason);
	log_info("kafka: %s", reason);
}

/* Kafka refuses this client: no wait makes that go away (69). */
static int consumer_refused(const struct consumer *consumer, const char *why)
{
	log_error("pool %s: Kafka refuses this client: %s: its ACLs must let it read topic %s and "
		"join group %s", consumer->pool->name, why, consumer->pool->topic, consumer->pool->group);
	return EXIT_UPSTREAM;
}

static void consumer_track(struct consumer *consumer, const rd_kafka_topic_partition_list_t *parts,
	int add)
{
	for (int i = 0; i < parts->cnt; i++) {
		size_t at = 0;

		while (at < consumer->partition_count && consumer->partitions[at].id != parts->elems[i].partition)
			at++;
		if (!add && at < consumer->partition_count)
			consumer->partitions[at] = consumer->partitions[--consumer->partition_count];
		if (add && at == consumer->partition_count && at < consumer->partition_capacity)
			consumer->partitions[consumer->partition_count++] =
				(struct consumer_partition){ parts->elems[i].partition, 0, -1, -1 };
	}
	consumer->all_at_end_since = 0;
}

static int consumer_reserve(struct consumer *consumer, int count)
{
	size_t need = consumer->partition_count + (size_t)count;
	struct consumer_partition *grown;

	if (need <= consumer->partition_capacity)
		return 0;
	grown = realloc(consumer->partitions, need * sizeof *grown);
	if (!grown)
		return -1;
	consumer->partitions = grown;
	consumer->partition_capacity = need;
	return 0;
}

static struct consumer_partition *consumer_partition(struct consumer *consumer, int32_t id)
{
	for (size_t i = 0; i < consumer->partition_count; i++)
		if (consumer->partitions[i].id == id)
			return &consumer->partitions[i];
	return NULL;
}

/* Whether our own commits, as the broker acknowledged them, cover every code
 * we finished (the commits sent after each code may have done it when a last
 * synchronous one fails, say while the group rebalances). The group's
 * committed offsets would not do: another member may have committed past our
 * codes, which is the very double hand-out to report. Returns how many
 * offsets they leave uncovered (0: all covered). */
static int64_t consumer_unacked(const struct consumer *consumer)
{
	int64_t unacked = 0;

	for (size_t i = 0; i < consumer->partition_count; i++)
		if (consumer->partitions[i].acked < consumer->partitions[i].stored)
			unacked += consumer->partitions[i].stored - consumer->partitions[i].acked;
	return unacked;
}

/* librdkafka's report of a commit of ours (served by the consumer's poll).
 * A partition whose own err is 0 was committed: librdkafka 2.0.2 gives a
 * request-level error (a timeout, the coordinator gone) to every partition
 * of the list before it reports (rd_kafka_cgrp_update_committed_offsets),
 * and in a partial failure the ones that failed carry their own error. */
static void consumer_on_commit(rd_kafka_t *handle, rd_kafka_resp_err_t err,
	rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
	struct consumer *consumer = opaque;

	(void)handle;
	if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
		log_info("kafka: a commit of pool %s failed: %s", consumer->pool->name,
			rd_kafka_err2str(err));
		consumer->async_failed = 1;
	}
	for (int i = 0; offsets && i < offsets->cnt; i++) {
		struct consumer_partition *partition =
			consumer_partition(consumer, offsets->elems[i].partition);

		if (partition && !offsets->elems[i].err && offsets->elems[i].offset > partition->acked)
			partition->acked = offsets->elems[i].offset;
	}
}

static int consumer_commit_now(struct consumer *consumer, const char *when)
{
	rd_kafka_resp_err_t err = rd_kafka_commit(consumer->handle, NULL, 0);

	if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET && consumer_unacked(consumer)) {
		/* A commit retried while claim waits for input: one error, not one a second. */
		log_msg(consumer->commit_failures++ ? LOG_DEBUG : LOG_ERROR,
			"kafka %s: committing the offsets of pool %s%s%s: %s", consumer->brokers,
			consumer->pool->name, *when ? " " : "", when, rd_kafka_err2str(err));
		return EXIT_TEMPFAIL;
	}
	if (consumer->commit_failures > 1)
		log_info("kafka %s: the offsets of pool %s are committed, after %d failed tries",
			consumer->brokers, consumer->pool->name, consumer->commit_failures);
	else if (consumer->commit_failures)
		log_info("kafka %s: the offsets of pool %s are committed, after a failed try",
			consumer->brokers, consumer->pool->name);
	consumer->commit_failures = 0;
	for (size_t i = 0; i < consumer->partition_count; i++)
		if (consumer->partitions[i].acked < consumer->partitions[i].stored)
			consumer->partitions[i].acked = consumer->partitions[i].stored;
	consumer->stored = 0;
	return 0;
}

static void consumer_rebalance(rd_kafka_t *handle, rd_kafka_resp_err_t err,
	rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	struct consumer *consumer = opaque;
	/* NULL while the consumer closes (the revocation rd_kafka_consumer_close
	 * makes): the protocol is then the one it had. */
	const char *protocol = rd_kafka_rebalance_protocol(handle);
	int cooperative = protocol ? !strcmp(protocol, "COOPERATIVE") : consumer->cooperative;

	consumer->cooperative = cooperative;

	consumer->last_progress = consumer_now();
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		if (consumer_reserve(consumer, parts->cnt))
			log_error("out of memory tracking partitions");
		consumer_track(consumer, parts, 1);
		consumer->assigned = consumer->ever_assigned = 1;
		consumer->brokers_down = 0;
		if (cooperative)
			rd_kafka_error_destroy(rd_kafka_incremental_assign(handle, parts));
		else
			rd_kafka_assign(handle, parts);
		if (consumer->paused)   /* assigned while the caller waits for input */
			rd_kafka_pause_partitions(handle, parts);
		log_info("pool %s: %d partition(s) assigned", consumer->pool->name, parts->cnt);
		return;
	}
	/* Partitions we lose go to the online services: what we bound on them
	 * must be committed first, or they would hand those codes out again.
	 * Lost ones (we were thrown out of the group) cannot be committed to. */
	if (consumer->stored && (rd_kafka_assignment_lost(handle) ?
	    consumer_unacked(consumer) :
	    consumer_commit_now(consumer, "before handing partitions back") != 0)) {
		log_error("pool %s: partitions went back to the group before the offsets of codes "
			"bound on them were committed", consumer->pool->name);
		consumer->commit_lost = 1;
		consumer->stored = 0;
		consumer->commit_failures = 0;   /* the next codes' first failure is an error again */
	}
	/* A partition keeps its pause across assignments: one given back while
	 * paused is resumed first, or it would not be fetched when assigned again. */
	if (consumer->paused)
		rd_kafka_resume_partitions(handle, parts);
	consumer_track(consumer, parts, 0);
	/* Until the group assigns again, an empty partition list is no empty pool. */
	if (!consumer->partition_count)
		consumer->assigned = 0;
	if (cooperative)
		rd_kafka_error_destroy(rd_kafka_incremental_unassign(handle, parts));
	else
		rd_kafka_assign(handle, NULL);
	log_info("pool %s: %d partition(s) given back to the group", consumer->pool->name, parts->cnt);
}

/* What claiming relies on, which kafka.properties may not change: offsets
 * are committed by us, only for codes bound, and the end must be seen. */
static const char *const consumer_forced[][2] = {
	{ "enable.auto.commit", "false" },
	{ "enable.auto.offset.store", "false" },
	{ "enable.partition.eof", "true" },
};

static rd_kafka_conf_t *consumer_conf(struct consumer *consumer, const struct config *config,
	const struct pool_config *pool)
{
	rd_kafka_conf_t *conf = kafka_conf_new(config, RD_KAFKA_CONSUMER, consumer);
	int failed;

	if (!conf)
		return NULL;
	/* A default the properties may change: a new group starts at the oldest code. */
	failed = !kafka_property(config, "auto.offset.reset") &&
		kafka_conf_set(conf, config, "auto.offset.reset", "earliest");
	failed = failed || kafka_conf_set(conf, config, "group.id", pool->group);
	for (size_t i = 0; !failed && i < sizeof consumer_forced / sizeof consumer_forced[0]; i++)
		failed = kafka_conf_set(conf, config, consumer_forced[i][0], consumer_forced[i][1]);
	if (failed) {
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	rd_kafka_conf_set_error_cb(conf, consumer_error);
	rd_kafka_conf_set_rebalance_cb(conf, consumer_rebalance);
	rd_kafka_conf_set_offset_commit_cb(conf, consumer_on_commit);
	return conf;
}

static int consumer_subscribe(struct consumer *consumer)
{
	rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
	rd_kafka_resp_err_t err;

	rd_kafka_topic_partition_list_add(topics, consumer->pool->topic, RD_KAFKA_PARTITION_UA);
	err = rd_kafka_subscribe(consumer->handle, topics);
	rd_kafka_topic_partition_list_destroy(topics);
	if (err) {
		log_error("subscribing to %s: %s", consumer->pool->topic, rd_kafka_err2str(err));
		return EXIT_INTERNAL;
	}
	return 0;
}

int consumer_open(struct consumer *consumer, const struct config *config,
	const struct pool_config *pool)
{
	rd_kafka_conf_t *conf;

	memset(consumer, 0, sizeof *consumer);
	consumer->pool = pool;
	consumer->brokers = config->kafka.brokers ? config->kafka.brokers : "(kafka.properties)";
	consumer->timeout_ms = config->kafka.timeout_ms;
	consumer->last_progress = consumer_now();
	if (!(conf = consumer_conf(consumer, config, pool)))
		return EXIT_CONFIG;
	if (!(consumer->handle = kafka_client_new(RD_KAFKA_CONSUMER, conf)))
		return EXIT_CONFIG;
	rd_kafka_poll_set_consumer(consumer->handle);
	return consumer_subscribe(consumer);
}

static int consumer_all_at_end(const struct consumer *consumer)
{
	for (size_t i = 0; i < consumer->partition_count; i++)
		if (!consumer->partitions[i].at_end)
			return 0;
	return consumer->assigned;
}

/* Takes in one event. Returns 0 for a message to hand out, -1 when there is
 * none (an end reached, a passing error), or an exit code. */
static int consumer_event(struct consumer *consumer, rd_kafka_message_t *message, double now)
{
	struct consumer_partition *partition = consumer_partition(consumer, message->partition);

	if (message->err == RD_KAFKA_RESP_ERR__PARTITION_EOF || !message->err) {
		consumer->last_progress = now;
		consumer->brokers_down = 0;   /* they answer again */
		if (partition)
			partition->at_end = message->err != 0;
		if (!message->err)
			return 0;
	} else if (message->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
	           message->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
		/* No rerun fixes that: the topic must be created (as publish says). */
		log_error("pool %s: topic %s does not exist on the cluster: create it, with the "
			"partitions the online consumers need (qrpool does not create topics)",
			consumer->pool->name, consumer->pool->topic);
		return EXIT_UPSTREAM;
	} else if (kafka_refused(message->err)) {
		return consumer_refused(consumer, rd_kafka_message_errstr(message));
	} else
		log_info("kafka: %s", rd_kafka_message_errstr(message));
	return -1;
}

static int consumer_brokers_answer(struct consumer *consumer)
{
	const struct rd_kafka_metadata *metadata = NULL;

	if (rd_kafka_metadata(consumer->handle, 0, NULL, &metadata, 1000) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return 0;
	rd_kafka_metadata_destroy(metadata);
	return 1;
}

/* Whether waiting longer is pointless: the pool is empty, or Kafka is silent. */
static int consumer_give_up(struct consumer *consumer, int64_t wait_ms, double now)
{
	if (*consumer->refused)
		return consumer_refused(consumer, consumer->refused);
	if (!consumer_all_at_end(consumer))
		consumer->all_at_end_since = 0;
	else if (!consumer->all_at_end_since)
		consumer->all_at_end_since = now;
	if (consumer->all_at_end_since && (now - consumer->all_at_end_since) * 1000 >= (double)wait_ms)
		return consumer->partition_count ? CONSUMER_EMPTY : CONSUMER_UNASSIGNED;
	/* All brokers down before the group ever answered: nothing will come
	 * (later, say in a rebalance after an outage, kafka.timeout decides).
	 * Silence is a sign of trouble only while something should come: at the
	 * end of every partition no event comes, and --wait decides. */
	if ((!consumer->ever_assigned && consumer->brokers_down) ||
	    (!consumer->all_at_end_since &&
	     (now - consumer->last_progress) * 1000 >= (double)consumer->timeout_ms)) {
		/* Brokers "down" that refused our authentication: no wait helps. */
		if (!consumer->ever_assigned && *consumer->auth_refused) {
			log_error("pool %s: " KAFKA_AUTH_REFUSED, consumer->pool->name,
				consumer->auth_refused);
			return EXIT_UPSTREAM;
		}
		/* Brokers that answer but no assignment: the group is most likely
		 * waiting out a member that died (a claim killed) or is slow to
		 * rejoin a rebalance, which is not Kafka's silence; a metadata
		 * request (1 s) tells the two apart. */
		if (!consumer->assigned && !consumer->brokers_down && consumer_brokers_answer(consumer))
			log_error("kafka %s: the group %s %s of %s%s within kafka.timeout (%lld ms): a "
				"rebalance waiting for a member that died (it is dropped after "
				"session.timeout.ms) or is slow to rejoin (up to its max.poll.interval.ms)? "
				"cannot take codes from pool %s; try again", consumer->brokers,
				consumer->pool->group, consumer->ever_assigned ? "took back its partitions" :
				"assigned no partition", consumer->pool->topic, consumer->ever_assigned ?
				" and has assigned none again" : "", (long long)consumer->timeout_ms,
				consumer->pool->name);
		else
			log_error("kafka %s: no answer%s: cannot take codes from pool %s", consumer->brokers,
				consumer->brokers_down ? " (all brokers down)" : "", consumer->pool->name);
		return EXIT_TEMPFAIL;
	}
	return 0;
}

/* Pauses or resumes every partition assigned. */
static void consumer_pause(struct consumer *consumer, int pause)
{
	rd_kafka_topic_partition_list_t *parts = NULL;
	rd_kafka_resp_err_t err = rd_kafka_assignment(consumer->handle, &parts);

	if (!err && parts->cnt)
		err = pause ? rd_kafka_pause_partitions(consumer->handle, parts) :
			rd_kafka_resume_partitions(consumer->handle, parts);
	if (err)
		log_info("kafka: %s the partitions of pool %s: %s", pause ? "pausing" : "resuming",
			consumer->pool->name, rd_kafka_err2str(err));
	if (parts)
		rd_kafka_topic_partition_list_destroy(parts);
	consumer->paused = pause;
}

/* Puts a code taken while idle back: its partition is sought back to it and
 * paused, so it comes again, to us or to the partition's next owner. */
static void consumer_unread(struct consumer *consumer, const rd_kafka_message_t *message)
{
	rd_kafka_topic_partition_list_t *back = rd_kafka_topic_partition_list_new(1);
	rd_kafka_error_t *error;

	rd_kafka_topic_partition_list_add(back, rd_kafka_topic_name(message->rkt),
		message->partition)->offset = message->offset;
	rd_kafka_pause_partitions(consumer->handle, back);
	if ((error = rd_kafka_seek_partitions(consumer->handle, back, 0))) {
		log_info("kafka: seeking partition %d back to offset %lld: %s", (int)message->partition,
			(long long)message->offset, rd_kafka_error_string(error));
		rd_kafka_error_destroy(error);
	}
	rd_kafka_topic_partition_list_destroy(back);
}

void consumer_idle(struct consumer *consumer)
{
	rd_kafka_message_t *event;

	if (!consumer->paused)
		consumer_pause(consumer, 1);
	while (!consumer->idle_status && (event = rd_kafka_consumer_poll(consumer->handle, 0))) {
		int status = consumer_event(consumer, event, consumer_now());

		if (status == 0)   /* a code after all (the pause failed?): fetched again later */
			consumer_unread(consumer, event);
		else if (status > 0)   /* a refusal (a topic gone, ACLs): for consumer_next */
			consumer->idle_status = status;
		rd_kafka_message_destroy(event);
	}
}

int consumer_next(struct consumer *consumer, int64_t wait_ms, rd_kafka_message_t **message)
{
	/* The time spent waiting for input says nothing of Kafka. */
	consumer->last_progress = consumer_now();
	if (consumer->paused)
		consumer_pause(consumer, 0);
	if (consumer->idle_status)
		return consumer->idle_status;
	for (;;) {
		rd_kafka_message_t *event;
		double now;
		int status;

		if (interrupt_requested())
			return CONSUMER_STOPPED;
		event = rd_kafka_consumer_poll(consumer->handle, CONSUMER_POLL_MS);
		now = consumer_now();
		if (event) {
			status = consumer_event(consumer, event, now);
			if (status == 0) {
				consumer->all_at_end_since = 0;
				*message = event;
				return 0;
			}
			rd_kafka_message_destroy(event);
			if (status > 0)
				return status;
		}
		if ((status = consumer_give_up(consumer, wait_ms, now)))
			return status;
	}
}

void consumer_done(struct consumer *consumer, const rd_kafka_message_t *message)
{
	struct consumer_partition *partition;
	rd_kafka_topic_partition_list_t *offsets = rd_kafka_topic_partition_list_new(1);
	rd_kafka_resp_err_t err;

	rd_kafka_topic_partition_list_add(offsets, rd_kafka_topic_name(message->rkt),
		message->partition)->offset = message->offset + 1;
	err = rd_kafka_offsets_store(consumer->handle, offsets);
	rd_kafka_topic_partition_list_destroy(offsets);
	if (err) {
		/* The partition was taken from us meanwhile: its next owner will
		 * see the code again and find it bound. */
		log_info("storing offset %lld of partition %d: %s", (long long)message->offset,
			(int)message->partition, rd_kafka_err2str(err));
		return;
	}
	consumer->stored++;
	if ((partition = consumer_partition(consumer, message->partition)))
		partition->stored = message->offset + 1;
	/* Sent now, not waited for: consumer_on_commit hears how it went, and
	 * the next synchronous commit (before waiting for input, before handing
	 * partitions back, at the end) covers a failure. */
	err = rd_kafka_commit(consumer->handle, NULL, 1);
	if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
		log_info("kafka: committing offset %lld of partition %d: %s", (long long)message->offset,
			(int)message->partition, rd_kafka_err2str(err));
}

int consumer_commits_hold(struct consumer *consumer)
{
	int64_t unacked = consumer->handle ? consumer_unacked(consumer) : 0;

	if (!unacked || (!consumer->async_failed && unacked < CONSUMER_UNACKED_MAX))
		return 0;
	if (consumer_commit_now(consumer, "before the next code"))
		return EXIT_TEMPFAIL;
	consumer->async_failed = 0;
	return 0;
}

int consumer_commit(struct consumer *consumer)
{
	if (consumer->stored && consumer_commit_now(consumer, ""))
		return EXIT_TEMPFAIL;
	return consumer->commit_lost ? EXIT_TEMPFAIL : 0;
}

/* A consumer let go before its close was over: librdkafka 2.0.2's
 * rd_kafka_destroy then spins, its group handler waiting for a coordinator
 * that is gone, until a broker answers again. Its close goes on in its own
 * threads (it does not join again); the handle is kept here, and the process
 * ends soon. */
static rd_kafka_t *consumer_let_go;

/* Leaves the group (the revocation commits what is stored), within
 * kafka.timeout: rd_kafka_consumer_close waits, signals or not, as long as no
 * broker answers. Cut short by a signal that comes meanwhile, or a second one
 * (a stop's first signal came before), the member is let go: what was bound
 * is committed already or comes back to be skipped, and the group gives its
 * partitions to others after session.timeout.ms. 1 if it was let go. */
static int consumer_leave(struct consumer *consumer)
{
	rd_kafka_queue_t *queue = rd_kafka_queue_new(consumer->handle);
	rd_kafka_error_t *error = queue ? rd_kafka_consumer_close_queue(consumer->handle, queue) : NULL;
	double deadline = consumer_now() + (double)consumer->timeout_ms / 1000;
	int signalled = interrupt_requested() != 0, closed = 0;

	while (queue && !error && !(closed = rd_kafka_consumer_closed(consumer->handle)) &&
	       consumer_now() < deadline && !interrupt_insisted() &&
	       !(!signalled && interrupt_requested())) {
		/* The close's own events (no callback serves this queue). */
		rd_kafka_event_t *event = rd_kafka_queue_poll(queue, 100);

		if (event && rd_kafka_event_type(event) == RD_KAFKA_EVENT_REBALANCE)
			consumer_rebalance(consumer->handle, rd_kafka_event_error(event),
				rd_kafka_event_topic_partition_list(event), consumer);
		else if (event && rd_kafka_event_type(event) == RD_KAFKA_EVENT_OFFSET_COMMIT)
			consumer_on_commit(consumer->handle, rd_kafka_event_error(event),
				rd_kafka_event_topic_partition_list(event), consumer);
		rd_kafka_event_destroy(event);
	}
	if (error) {
		log_info("kafka: closing the consumer of pool %s: %s", consumer->pool->name,
			rd_kafka_error_string(error));
		rd_kafka_error_destroy(error);
	}
	if (queue)
		rd_kafka_queue_destroy(queue);
	if (!closed)
		log_warn("kafka %s: pool %s's consumer did not leave group %s%s: let go (the group "
			"gives its partitions to others after session.timeout.ms)", consumer->brokers,
			consumer->pool->name, consumer->pool->group, consumer_now() >= deadline ?
			" within kafka.timeout" : interrupt_requested() ? " before the signal" : "");
	return !closed;
}

void consumer_close(struct consumer *consumer)
{
	if (consumer->handle && consumer_leave(consumer))
		consumer_let_go = consumer->handle;
	else if (consumer->handle)
		rd_kafka_destroy(consumer->handle);
	free(consumer->partitions);
	memset(consumer, 0, sizeof *consumer);
}

const char *consumer_header(const rd_kafka_message_t *message, const char *name, char *buf,
	size_t size)
{
	rd_kafka_headers_t *headers = NULL;
	const void *value;
	size_t length;

	if (rd_kafka_message_headers(message, &headers) != RD_KAFKA_RESP_ERR_NO_ERROR ||
	    rd_kafka_header_get_last(headers, name, &value, &length) != RD_KAFKA_RESP_ERR_NO_ERROR ||
	    !value || size < 4)
		return NULL;
	if (length < size) {
		memcpy(buf, value, length);
		buf[length] = '\0';
	} else {
		memcpy(buf, value, length = size - 4);
		memcpy(buf + size - 4, "...", 4);
	}
	/* A NUL inside must not make "poster\0x" read as "poster". */
	for (char *nul; (nul = memchr(buf, '\0', length));)
		*nul = '?';
	return buf;
}

#include "claim.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "binding.h"
#include "cache.h"
#include "consumer.h"
#include "db.h"
#include "exitcode.h"
#include "imagefile.h"
#include "interrupt.h"
#include "item.h"
#include "kafka.h"
#include "log.h"
#include "params.h"
#include "parse.h"
#include "rid.h"
#include "sha256.h"

/* claim_take's answer for a message not handed out (bound before, or not a
 * usable code): its offset is committed and the next one is tried. */
#define CLAIM_SKIPPED 1

/* Idle this long on stdin, claim leaves the pool's group until the next record. */
#define CLAIM_IDLE_LEAVE_MS 10000
#define CLAIM_IDLE_TICK_MS 250      /* ... waited in ticks, a signal looked for between */
#define CLAIM_COMMIT_RETRY_MS 1000  /* a failed commit tried again while idle */

/* A record, a UTF-8 BOM before it (3 bytes) and a CR after: longer lines are
 * only counted. */
#define CLAIM_LINE_KEPT (PARAMS_MAX_BYTES + 4)

struct claim {
	const struct claim_options *options;
	const struct config *config;
	const struct pool_config *pool;
	struct db db;
	struct binding_store bindings;
	struct cache cache;
	struct consumer consumer;
	int dir_fd;
	int in_fd;
	long line_number;
	long first_unbound;           /* the line of the first record not bound */
	int64_t records, bound, redelivered, elsewhere, unusable, bad_lines, not_cached;
	int commit_lost;              /* a consumer closed while idle had lost a commit */
};

/* Keys name files in --out and go into stdout's lines: letters and digits
 * only, as qrpool mints them (a scene's $, ( or ; would reach the file names
 * a script handles). */
static int claim_key_ok(const rd_kafka_message_t *message, char id[RID_SCENE_MAX + 1])
{
	const char *key = message->key;

	if (!key || !rid_is_base62(key, message->key_len))
		return 0;
	memcpy(id, key, message->key_len);
	id[message->key_len] = '\0';
	return 1;
}

/* Why this message cannot be handed out, or NULL; sets *extension. */
static const char *claim_unusable(const rd_kafka_message_t *message, const char **extension)
{
	char type[64], digest[SHA256_HEX_SIZE + 1], actual[SHA256_HEX_SIZE];

	*extension = imagefile_extension(consumer_header(message, "content-type", type, sizeof type),
		message->payload, message->len);
	if (!*extension)
		return "the value is not a JPEG or PNG image of its content type";
	if (consumer_header(message, "sha256", digest, sizeof digest)) {
		sha256_hex(message->payload, message->len, actual);
		if (strcmp(digest, actual))
			return "the image does not match its sha256 header";
	}
	return NULL;
}

static int claim_print(struct claim *claim, const struct imagefile *file, const char *id)
{
	/* Flushed per line: after a crash, stdout lists exactly the codes handed out. */
	if (printf("%s\t%s/%s\n", id, claim->options->out, file->name) < 0 || fflush(stdout) != 0) {
		log_error("writing to stdout: %s", strerror(errno));
		clearerr(stdout);   /* said once: not again as stdout is closed */
		return EXIT_IO;
	}
	return 0;
}

/* With Redis, once the code is bound here: its key set to `params` only if
 * no one has (SET NX). A key already set was set by no claim of this DB
 * (which would have found the binding first, as redelivered), so by a claim
 * with another staging DB, or another environment using the same prefix:
 * the code is theirs. The binding is removed and the code skipped, not
 * handed out (CLAIM_SKIPPED; an exit code if the binding cannot be removed:
 * the code then comes back, and is found bound here). Redis unreachable:
 * bound all the same, not cached (*cached 0). */
static int claim_cache(struct claim *claim, const char *id, const char *params, int *cached)
{
	int held, status;

	*cached = 0;
	if (!claim->config->has_redis)
		return 0;
	if ((held = cache_set_new(&claim->cache, id, params)) <= 0) {
		*cached = held == 0;
		return 0;
	}
	log_warn("%s: skipped, not handed out: its Redis key %s%s was set already (by a claim "
		"with another staging DB, or by another environment using redis.prefix '%s')", id,
		claim->config->redis.prefix, id, claim->config->redis.prefix);
	claim->elsewhere++;
	if ((status = binding_remove(&claim->bindings, id)))
		log_error("%s: its binding here could not be removed: it is not handed out, and "
			"comes back as redelivered", id);
	return status ? status : CLAIM_SKIPPED;
}

/* Binds one message to `params`: image staged, binding committed, Redis key
 * set, file renamed into place, line printed, in that order, so a crash
 * anywhere leaves no visible file without a binding, and no key without one.
 * Sets *bound once the binding is committed and its key set (or Redis off):
 * the code is then taken, whatever fails after. */
static int claim_take(struct claim *claim, const rd_kafka_message_t *message, const char *params,
	int *bound)
{
	char id[RID_SCENE_MAX + 1], pool[128];
	const char *extension = NULL, *why = "its key is not a request id that can name a file";
	struct binding binding;
	struct imagefile file;
	int status, cached;

	if (consumer_header(message, "pool", pool, sizeof pool) && strcmp(pool, claim->pool->name)) {
		/* Not a bad message but a topic shared by two pools (a pool renamed,
		 * its topic kept?): skipping would consume the other pool's codes. */
		log_error("pool %s: partition %d offset %lld holds a code of pool %s: is topic %s "
			"shared with it? nothing more is taken", claim->pool->name, (int)message->partition,
			(long long)message->offset, pool, claim->pool->topic);
		return EXIT_CONFIG;
	}
	if (!claim_key_ok(message, id) || (why = claim_unusable(message, &extension))) {
		log_warn("pool %s: partition %d offset %lld: skipped: %s", claim->pool->name,
			(int)message->partition, (long long)message->offset, why);
		claim->unusable++;
		return CLAIM_SKIPPED;
	}
	if ((status = imagefile_stage(&file, claim->dir_fd, claim->options->out, id, extension,
			message->payload, message->len)))
		return status;
	binding = (struct binding){ id, claim->pool->name, params, db_now(), message->partition,
		message->offset };
	if ((status = binding_insert(&claim->bindings, &binding)) == BINDING_EXISTS) {
		log_info("%s: bound already (redelivered: a crash or a rebalance came before its "
			"offset was committed): skipped", id);
		claim->redelivered++;
		status = CLAIM_SKIPPED;
	}
	if (status == 0)
		status = claim_cache(claim, id, params, &cached);
	if (status) {
		imagefile_discard(&file);
		return status;
	}
	claim->bound++;
	*bound = 1;
	/* The cache is best effort; the binding above is the record. */
	claim->not_cached += !cached && claim->config->has_redis;
	if ((status = imagefile_commit(&file)) == 0)
		status = claim_print(claim, &file, id);
	if (status)
		log_error("%s is bound to line %ld's record (in bindings), so it goes to no one else, "
			"but its line was not printed", id, claim->line_number);
	return status;
}

/* Takes codes until one is bound to `params`. */
static int claim_bind_next(struct claim *claim, const char *params)
{
	int status;

	if (!claim->consumer.handle &&
	    (status = consumer_open(&claim->consumer, claim->config, claim->pool)))
		return status;
	for (;;) {
		rd_kafka_message_t *message;
		int bound = 0;

		/* Kafka refusing the commits of the codes handed out: no more, or
		 * each could go to an online service too. */
		if ((status = consumer_commits_hold(&claim->consumer)) ||
		    (status = consumer_next(&claim->consumer, claim->options->wait_ms, &message)))
			return status;
		status = claim_take(claim, message, params, &bound);
		/* Bound or skipped: done with it. On an error before its binding (or
		 * in removing the binding of a code bound elsewhere) it stays
		 * uncommitted, so the code comes back next time. */
		if (bound || status == 0 || status == CLAIM_SKIPPED)
			consumer_done(&claim->consumer, message);
		rd_kafka_message_destroy(message);
		if (status != CLAIM_SKIPPED)
			return status;
	}
}

/* The read function under claim's input. Before it waits for a record, the
 * offsets of the codes bound so far are committed: a member idle longer than
 * max.poll.interval.ms is put out of the group, and its partitions must not
 * carry bound codes to the online services. A commit that fails is tried
 * again every CLAIM_COMMIT_RETRY_MS while it waits (the member stays, so the
 * codes are not handed to another one before their offsets are committed).
 * Idle CLAIM_IDLE_LEAVE_MS with nothing left to commit, it leaves the group (a
 * person at a prompt must not hold the pool's partitions from the online
 * services, nor hold up their rebalances), and joins again for the next
 * record. It waits in short polls, so SIGINT/SIGTERM stop a run whose input is
 * an idle pipe. */
static ssize_t claim_read_input(void *cookie, char *buffer, size_t size)
{
	struct claim *claim = cookie;
	struct consumer *consumer = &claim->consumer;
	ssize_t got = interrupt_requested() ? -2 : interrupt_read(claim->in_fd, buffer, size, 0);
	int idle = 0, since_try = CLAIM_COMMIT_RETRY_MS;

	if (got != -2)
		return got;
	while (!interrupt_requested() && consumer->handle) {
		if (consumer->stored && since_try >= CLAIM_COMMIT_RETRY_MS) {
			consumer_commit(consumer);   /* logged; retried at the end too */
			since_try = idle = 0;
		}
		consumer_idle(consumer);   /* rebalances answered, no code taken */
		if (!consumer->stored && idle >= CLAIM_IDLE_LEAVE_MS) {
			log_info("stdin idle for %d s: leaving group %s until the next record",
				CLAIM_IDLE_LEAVE_MS / 1000, claim->pool->group);
			claim->commit_lost |= consumer->commit_lost;   /* said at the end, as 75 */
			consumer_close(consumer);
			break;
		}
		if ((got = interrupt_read(claim->in_fd, buffer, size, CLAIM_IDLE_TICK_MS)) != -2)
			return got;
		idle += CLAIM_IDLE_TICK_MS;
		since_try += CLAIM_IDLE_TICK_MS;
	}
	/* After a signal: EINTR at once. */
	return interrupt_read_blocking(claim->in_fd, buffer, size, 0, NULL, NULL);
}

/* Reads the next record. 1 with *params (malloc'd), 0 at the end, or an exit
 * code. Bad lines are reported and skipped: no code is taken for them. */
static int claim_read_record(struct claim *claim, FILE *in, char line[CLAIM_LINE_KEPT],
	char **params)
{
	ssize_t length;
	char why[200];
	int last, ended;

	if (interrupt_requested())
		return CONSUMER_STOPPED;
	/* At most CLAIM_LINE_KEPT bytes of a line are kept: a huge one costs no memory. */
	while ((length = item_getline(in, line, CLAIM_LINE_KEPT, &last, &ended)) >= 0) {
		/* params_parse drops a BOM: it does not count toward the limit. */
		size_t bom = parse_bom_length(line, (size_t)length < CLAIM_LINE_KEPT ? (size_t)length :
			CLAIM_LINE_KEPT);

		claim->line_number++;
		if (item_overlong(length - (ssize_t)bom, last, PARAMS_MAX_BYTES))
			params_too_long((size_t)length - bom - (last == '\r'), why, sizeof why);
		else if (params_blank(line + bom, (size_t)length - bom))   /* a BOM alone is blank too */
			continue;
		else if (params_parse(line, (size_t)length, params, why, sizeof why) == 0) {
			claim->records++;
			return 1;
		}
		log_line_error("line %ld: %s", claim->line_number, why);
		claim->bad_lines++;
	}
	/* A signal while waiting for input interrupts the read: a stop, not an I/O error. */
	if (ferror(in) && interrupt_requested())
		return CONSUMER_STOPPED;
	if (ferror(in)) {
		log_error("reading stdin failed: %s", strerror(errno));
		return EXIT_IO;
	}
	return 0;
}

static int claim_loop(struct claim *claim, FILE *in)
{
	char line[CLAIM_LINE_KEPT], *params = NULL;
	int status = 0, record_pending = 0;

	while (claim->options->count < 0 || claim->bound < claim->options->count) {
		long long bound = claim->bound;

		if ((status = claim_read_record(claim, in, line, &params)) != 1)
			break;
		status = claim_bind_next(claim, params);
		free(params);
		if (status) {
			record_pending = claim->bound == bound;   /* it may be bound, stdout failing */
			break;
		}
	}
	/* The current line when its record got no code, else the next one. */
	claim->first_unbound = claim->line_number + !record_pending;
	return status;
}

/* The run's end in words, and its exit status. */
static int claim_summarise(struct claim *claim, int status)
{
	char why[640];

	/* Where to start again: said whatever stopped the records' reading. */
	if (status == CONSUMER_EMPTY)
		snprintf(why, sizeof why, "pool %s is empty", claim->pool->name);
	else if (status == CONSUMER_UNASSIGNED)
		/* Not "empty": an operator would fill a pool that is full. */
		snprintf(why, sizeof why, "pool %s: the group %s gave this claim no partition of %s "
			"(its other members, the online services, hold them all: a claim in their group "
			"needs them to be fewer than the topic's partitions)", claim->pool->name,
			claim->pool->group, claim->pool->topic);
	else
		snprintf(why, sizeof why, status == CONSUMER_STOPPED ? "interrupted" : "stopped");
	if (status && claim->first_unbound > 0)
		log_error("%s: bound %lld code%s; line %ld and after were not bound", why,
			(long long)claim->bound, claim->bound == 1 ? "" : "s", claim->first_unbound);
	if (status == CONSUMER_EMPTY || status == CONSUMER_UNASSIGNED || status == CONSUMER_STOPPED)
		status = EXIT_TEMPFAIL;
	if (claim->not_cached)
		log_warn("%lld binding%s not cached in redis: qrpool-resolve falls back to the "
			"database and re-warms the cache", (long long)claim->not_cached,
			claim->not_cached == 1 ? "" : "s");
	if (claim->bad_lines) {
		log_error("%lld bad parameter line%s: no code taken for %s", (long long)claim->bad_lines,
			claim->bad_lines == 1 ? "" : "s", claim->bad_lines == 1 ? "it" : "them");
		status = exitcode_worst(status, EXIT_DATA);
	}
	if (claim->elsewhere)
		log_warn("%lld code%s skipped as bound elsewhere (%s Redis key%s set already): do two "
			"environments share redis.prefix '%s', or do a pool's claims use two staging DBs?",
			(long long)claim->elsewhere, claim->elsewhere == 1 ? "" : "s",
			claim->elsewhere == 1 ? "its" : "their", claim->elsewhere == 1 ? " was" : "s were",
			claim->config->redis.prefix);
	log_info("pool %s: %lld bound, %lld redelivered and skipped, %lld bound elsewhere skipped, "
		"%lld unusable skipped", claim->pool->name, (long long)claim->bound,
		(long long)claim->redelivered, (long long)claim->elsewhere, (long long)claim->unusable);
	return status;
}

static int claim_open(struct claim *claim)
{
	int status;

	if ((status = db_open_or_create(&claim->db, claim->config->db_path,
			claim->config->busy_timeout_ms)))
		return status;
	/* FULL: a binding must survive power loss once its offset is committed,
	 * or a handed-out code would resolve to nothing. */
	if ((status = db_exec(&claim->db, "PRAGMA synchronous = FULL")) ||
	    (status = binding_open(&claim->bindings, &claim->db)) ||
	    (status = db_run_start(&claim->db, "claim")))
		return status;
	if ((claim->dir_fd = imagefile_open_dir(claim->options->out)) < 0)
		return EXIT_IO;
	return cache_open(&claim->cache, claim->config);
}

static void claim_close(struct claim *claim, int status)
{
	consumer_close(&claim->consumer);
	cache_close(&claim->cache);
	if (claim->dir_fd >= 0)
		close(claim->dir_fd);
	binding_close(&claim->bindings);
	db_run_end(&claim->db, claim->records, claim->bound, status);
	db_close(&claim->db);
}

int claim_run(const struct claim_options *options, const struct config *config, FILE *in)
{
	static const cookie_io_functions_t input_functions = { .read = claim_read_input };
	struct claim claim = { .options = options, .config = config, .dir_fd = -1,
		.in_fd = fileno(in) };
	FILE *polled = fopencookie(&claim, "r", input_functions);
	int status, commit_failed;

	claim.pool = config_pool(config, options->pool);
	if (!polled) {
		log_error("reading stdin: %s", strerror(errno));
		status = EXIT_INTERNAL;
	} else if (!(status = kafka_require(config)) &&   /* before anything is made */
	           !(status = kafka_check_config(config)) &&
	           !(status = claim_open(&claim)))
		status = claim_loop(&claim, polled);
	if (polled)
		fclose(polled);
	/* Every binding is committed to the DB by now; only then the offsets. */
	commit_failed = (claim.consumer.handle && consumer_commit(&claim.consumer)) ||
		claim.commit_lost;
	if (commit_failed)
		log_error("the %lld codes bound are recorded, and qrpool-claim skips them when they "
			"come back, but some offsets are not committed: until it runs again and "
			"commits past them, the group may hand them out", (long long)claim.bound);
	status = claim_summarise(&claim, status);
	if (commit_failed)
		status = exitcode_worst(status, EXIT_TEMPFAIL);
	claim_close(&claim, status);
	return status;
}

#include "cache.h"

#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "exitcode.h"
#include "log.h"

static struct timeval cache_timeval(int64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000 * 1000) };
	return tv;
}

/* A failure turns the cache off for CACHE_RETRY_S: one warning, no timeout
 * paid again for every binding or lookup meanwhile; then the next one
 * connects again (a long-lived resolve must not stay off for one blip). */
static int cache_fail(struct cache *cache, const char *what, const char *why)
{
	if (!cache->failing)
		log_warn("redis %s: %s: %s; the cache is off, tried again every %d s (bindings stay in "
			"the database)", cache->where, what, why, CACHE_RETRY_S);
	else
		log_debug("redis %s: %s: %s", cache->where, what, why);
	cache->failing = 1;
	cache->retry_at = db_monotonic() + CACHE_RETRY_S;
	if (cache->redis)
		redisFree(cache->redis);
	cache->redis = NULL;
	return -1;
}

/* One command's reply, NULL when it failed or was an error (the cache is
 * then off). */
static redisReply *cache_vreply(struct cache *cache, const char *what, const char *format,
	va_list ap)
{
	redisReply *reply = redisvCommand(cache->redis, format, ap);
	char why[256];

	if (!reply) {
		cache_fail(cache, what, cache->redis->errstr);
		return NULL;
	}
	if (reply->type != REDIS_REPLY_ERROR)
		return reply;
	snprintf(why, sizeof why, "%s", reply->str);
	freeReplyObject(reply);
	cache_fail(cache, what, why);
	return NULL;
}

static redisReply *cache_reply(struct cache *cache, const char *what, const char *format, ...)
{
	redisReply *reply;
	va_list ap;

	va_start(ap, format);
	reply = cache_vreply(cache, what, format, ap);
	va_end(ap);
	return reply;
}

/* One command whose reply must not be an error (AUTH, SELECT). */
static int cache_command_ok(struct cache *cache, const char *what, const char *format, ...)
{
	redisReply *reply;
	va_list ap;

	va_start(ap, format);
	reply = cache_vreply(cache, what, format, ap);
	va_end(ap);
	if (!reply)
		return -1;
	freeReplyObject(reply);
	return 0;
}

static int cache_login(struct cache *cache, const struct config *config)
{
	char password[512];
	int status;

	if ((status = config_read_redis_password(config, password, sizeof password)))
		return status;
	if (password[0])
		cache_command_ok(cache, "AUTH", "AUTH %s", password);
	explicit_bzero(password, sizeof password);
	if (cache->redis && cache->config->redis.database)
		cache_command_ok(cache, "SELECT", "SELECT %d", cache->config->redis.database);
	return 0;
}

static int cache_connect(struct cache *cache, const struct config *config)
{
	const struct redis_config *r = &config->redis;
	struct timeval connect_timeout = cache_timeval(r->connect_timeout_ms);

	if (r->unix_socket) {
		snprintf(cache->where, sizeof cache->where, "%s", r->unix_socket);
		cache->redis = redisConnectUnixWithTimeout(r->unix_socket, connect_timeout);
	} else {
		snprintf(cache->where, sizeof cache->where, "%s:%d", r->host, r->port);
		cache->redis = redisConnectWithTimeout(r->host, r->port, connect_timeout);
	}
	/* An unreachable cache is no reason to stop: warned, then off. */
	if (!cache->redis || cache->redis->err) {
		cache_fail(cache, "connecting", cache->redis ? cache->redis->errstr : "out of memory");
		return 0;
	}
	if (redisSetTimeout(cache->redis, cache_timeval(r->timeout_ms)) != REDIS_OK) {
		cache_fail(cache, "setting the timeout", cache->redis->errstr);
		return 0;
	}
	return cache_login(cache, config);
}

int cache_open(struct cache *cache, const struct config *config)
{
	memset(cache, 0, sizeof *cache);
	cache->config = config;
	return config->has_redis ? cache_connect(cache, config) : 0;
}

/* Connected, or connected again once CACHE_RETRY_S have passed since a
 * failure. */
static int cache_ready(struct cache *cache)
{
	if (cache->redis || !cache->failing || db_monotonic() < cache->retry_at)
		return cache->redis != NULL;
	if (cache_connect(cache, cache->config) || !cache->redis)
		return 0;
	log_warn("redis %s: connected again: the cache is on", cache->where);
	cache->failing = 0;
	return 1;
}

void cache_close(struct cache *cache)
{
	if (cache->redis)
		redisFree(cache->redis);
	cache->redis = NULL;
}

int cache_on(const struct cache *cache)
{
	return cache->redis != NULL;
}

/* Reads `count` pipelined replies; keeps GET values when `values` is given.
 * Every reply is read even after a bad one, so the connection stays in step.
 * A GET answered with an error (a key of another type: WRONGTYPE) is that
 * key's miss, said once a run; a SET refused turns the cache off. */
static int cache_read_replies(struct cache *cache, const char *what, size_t count, char **values)
{
	char why[256] = "";

	for (size_t i = 0; i < count; i++) {
		redisReply *reply = NULL;

		if (redisGetReply(cache->redis, (void **)&reply) != REDIS_OK)
			return cache_fail(cache, what, cache->redis->errstr);
		if (reply->type == REDIS_REPLY_ERROR && values) {
			if (!cache->get_error_said++)
				log_warn("redis %s: GET of a key answered '%.200s': taken as a miss", cache->where,
					reply->str);
		} else if (reply->type == REDIS_REPLY_ERROR) {
			snprintf(why, sizeof why, "%s", reply->str);
		} else if (values && reply->type == REDIS_REPLY_STRING) {
			values[i] = strndup(reply->str, reply->len);
		}
		freeReplyObject(reply);
	}
	return why[0] ? cache_fail(cache, what, why) : 0;
}

int cache_put_many(struct cache *cache, const char *const *request_ids,
	const char *const *params, size_t count)
{
	long long ttl_ms = (long long)cache->config->redis.ttl_ms;   /* PX: a ttl of 1500ms is not 1 s */

	if (!cache_ready(cache))
		return -1;
	for (size_t i = 0; i < count; i++) {
		if (redisAppendCommand(cache->redis, "SET %s%s %s PX %lld", cache->config->redis.prefix,
				request_ids[i], params[i], ttl_ms) != REDIS_OK)
			return cache_fail(cache, "SET", cache->redis->errstr);
	}
	return cache_read_replies(cache, "SET", count, NULL);
}

int cache_set_new(struct cache *cache, const char *request_id, const char *params)
{
	redisReply *reply;
	int set;

	if (!cache_ready(cache) ||
	    !(reply = cache_reply(cache, "SET", "SET %s%s %s PX %lld NX", cache->config->redis.prefix,
			request_id, params, (long long)cache->config->redis.ttl_ms)))
		return -1;
	set = reply->type != REDIS_REPLY_NIL;
	freeReplyObject(reply);
	return set ? 0 : CACHE_HELD;
}

int cache_get_many(struct cache *cache, const char *const *request_ids, size_t count,
	char **values)
{
	memset(values, 0, count * sizeof *values);
	if (!cache_ready(cache))
		return -1;
	for (size_t i = 0; i < count; i++) {
		if (redisAppendCommand(cache->redis, "GET %s%s", cache->config->redis.prefix,
				request_ids[i]) != REDIS_OK)
			return cache_fail(cache, "GET", cache->redis->errstr);
	}
	if (cache_read_replies(cache, "GET", count, values)) {
		for (size_t i = 0; i < count; i++) {
			free(values[i]);
			values[i] = NULL;
		}
		return -1;
	}
	return 0;
}

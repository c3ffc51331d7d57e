/* The Redis cache of bindings, the keys the online middle page reads:
 * key = redis.prefix + request_id, value = the parameters' compact JSON,
 * expiring after redis.ttl. The cache is best effort: a failure is warned
 * about once, and the cache is off (callers fall back to the bindings table)
 * until the first use CACHE_RETRY_S later, which connects again. */
#ifndef QRPOOL_CACHE_H
#define QRPOOL_CACHE_H

#include <stddef.h>

#include "config.h"

struct redisContext;

/* Seconds the cache stays off after a failure. */
#define CACHE_RETRY_S 5

struct cache {
	struct redisContext *redis;   /* NULL: not configured, or off after a failure */
	const struct config *config;  /* its redis section; the password, to connect again */
	char where[300];              /* host:port or the socket, for messages */
	int failing;                  /* off after a failure (warned once until it is back) */
	double retry_at;              /* monotonic seconds: then connect again */
	long get_error_said;          /* GETs answered with an error */
};

/* Connects when the config has a redis section. Returns 0 (connected, or no
 * cache configured), or EXIT_CONFIG when the password cannot be read. A
 * server that cannot be reached is a warning and leaves the cache off. */
int cache_open(struct cache *cache, const struct config *config);
void cache_close(struct cache *cache);
int cache_on(const struct cache *cache);

/* Sets `count` keys at once (pipelined), each with the TTL. Returns 0 or -1
 * (cache now off). */
int cache_put_many(struct cache *cache, const char *const *request_ids,
	const char *const *params, size_t count);
/* claim's binding, set only if the key is free (SET NX): a code a claim with
 * another staging DB bound, or another environment using the same prefix,
 * must not be handed out here too (claim then removes its own binding).
 * Returns 0 (set), CACHE_HELD (the key was set already), or -1 (cache off:
 * nothing known). */
#define CACHE_HELD 1
int cache_set_new(struct cache *cache, const char *request_id, const char *params);

/* Gets `count` keys at once (pipelined): values[i] is malloc'd JSON, or NULL
 * on a miss. Returns 0, or -1 (cache now off; every value NULL). */
int cache_get_many(struct cache *cache, const char *const *request_ids, size_t count,
	char **values);

#endif

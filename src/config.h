/* The configuration file (libconfig): -c FILE, else $QRPOOL_CONFIG, else
 * /etc/qrpool/qrpool.cfg. See qrpool.cfg(5) and README.md for every setting. */
#ifndef QRPOOL_CONFIG_H
#define QRPOOL_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_DEFAULT_PATH "/etc/qrpool/qrpool.cfg"
/* The longest wechat page accepted (fetch's request body, 2 KB, must hold it). */
#define CONFIG_PAGE_MAX 1024
/* The longest api_base accepted (the calls' URLs, with the token or the
 * secret, are made in buffers of 1 to 2 KB). */
#define CONFIG_API_BASE_MAX 256

enum pool_source { POOL_WECHAT, POOL_LINK };
enum token_source { TOKEN_STABLE, TOKEN_CLASSIC, TOKEN_COMMAND, TOKEN_FILE };

struct rgb { int r, g, b; };

/* A link pool's foreground against its background: WCAG's contrast ratio. */
#define CONFIG_CONTRAST_MIN 2.0

/* "key=value" strings for librdkafka, passed untouched. */
struct kafka_properties {
	char **items;
	char **places;              /* where each was set, "file:line", for messages; NULL in a
	                             * config made in code */
	size_t count;
};

struct pool_config {
	char *name;
	enum pool_source source;
	int line;                   /* where the pool is defined, for messages */
	char *topic;                /* Kafka topic; default "qrpool.<name>" */
	char *group;                /* consumer group of the online service */
	double cover_hours;         /* stock wanted, in hours of forecast demand */
	double safety;              /* margin on top of the forecast: 0.2 = +20% */
	int drop_image_after_publish;
	struct kafka_properties topic_properties;   /* its topic's librdkafka settings (publish) */
	/* wechat pools */
	char *page;
	int width;
	char *env_version;
	int check_path;
	int is_hyaline;
	int auto_color;
	struct rgb line_color;
	/* link pools */
	char *url_prefix;
	char *url_prefix_place;     /* its "file:line", for messages (an @include's file) */
	char ec_level;              /* 'L', 'M', 'Q' or 'H' */
	int module_px;
	int margin;                 /* quiet zone in modules */
	struct rgb foreground, background;
	int min_version;            /* 0: smallest that fits */
	int png_compression;        /* zlib level 0-9 */
};

struct wechat_config {
	char *appid;
	char *secret;               /* inline secret; masked in dumps */
	char *secret_file;
	char *api_base;
	enum token_source token_source;
	char *token_command;
	char *token_file;
	int quota_per_minute;
	int reserve_per_minute;
	int64_t quota_minute_ms;    /* quota window length: 60s; shorter only against the fake */
	int concurrency;
	int64_t connect_timeout_ms;
	int64_t timeout_ms;
	int retries;                /* transient failures tolerated per item */
	char *ca_bundle;
};

struct kafka_config {
	char *brokers;
	struct kafka_properties properties;   /* every client's */
	int64_t timeout_ms;         /* delivery and drain deadline */
};

/* The Redis cache of bindings (qrpool-claim writes, qrpool-resolve reads). */
struct redis_config {
	char *host;
	int port;
	char *unix_socket;          /* when set, used instead of host and port */
	int database;               /* SELECT index */
	char *prefix;               /* keys are prefix + request_id */
	int64_t ttl_ms;
	int64_t connect_timeout_ms;
	int64_t timeout_ms;         /* per command */
	char *password;             /* inline password; masked in dumps */
	char *password_file;
	int plaintext;              /* a password may go to another host in clear */
};

struct config {
	char *path;
	char *db_path;
	int64_t busy_timeout_ms;
	int has_wechat;             /* a wechat section was given */
	struct wechat_config wechat;
	struct kafka_config kafka;
	int has_redis;              /* a redis section was given */
	struct redis_config redis;
	struct pool_config *pools;
	size_t pool_count;
};

/* Loads and checks the file. Returns 0, or EXIT_CONFIG after logging
 * "file:line: message" (and freeing what it had read). `path` NULL means
 * $QRPOOL_CONFIG, else the default. */
int config_load(struct config *config, const char *path);
void config_free(struct config *config);

const struct pool_config *config_pool(const struct config *config, const char *name);
/* "a, b, c": the known pool names, for messages. */
void config_pool_names(const struct config *config, char *buf, size_t size);

/* The budget per minute this pipeline may use: quota - reserve. */
int config_wechat_budget(const struct config *config);
/* --reserve N (fetch, plan): replaces reserve_per_minute for this run only;
 * negative: keep the config's. Returns 0 or EXIT_USAGE (logged). */
int config_apply_reserve(struct config *config, int64_t reserve);

/* Reads the app secret (inline or from secret_file) into buf. Returns 0 or
 * EXIT_CONFIG. The secret is never logged. */
int config_read_secret(const struct config *config, char *buf, size_t size);
/* Opens a file to read without waiting on it: a FIFO or a device there
 * would hold the run in open(), where a stop is not heard. The descriptor
 * (blocking again), -1 (errno) when it cannot be opened, or -2 when it is
 * no regular file (said as CONFIG_NOT_A_FILE). */
int config_open_file(const char *path);
#define CONFIG_NOT_A_FILE "it is not a regular file (a FIFO, a device, a directory?)"
/* Reads up to `size` bytes of a file holding a secret (the app secret, a
 * token) from `fd`, without stdio, whose buffer would keep a copy once
 * freed; EINTR retried. The bytes read, or -1 (errno) on a read error. */
ssize_t config_read_secret_fd(int fd, char *buf, size_t size);

/* Reads the Redis password (inline or from password_file) into buf; an empty
 * string when neither is set. Returns 0 or EXIT_CONFIG. Never logged. */
int config_read_redis_password(const struct config *config, char *buf, size_t size);

/* Prints the merged configuration in libconfig syntax, secrets masked. */
int config_dump(const struct config *config, FILE *out);

const char *config_source_name(enum pool_source source);
/* 1 if the librdkafka property `key` (its first `length` bytes) holds a
 * secret: the file naming it must be private, and dumps mask its value. */
int config_property_secret(const char *key, size_t length);
/* A librdkafka property's value with the password of a URL in it
 * (https://user:PASSWORD@host/..., an OAuth token endpoint's, say) masked:
 * a copy to free, or NULL when it holds none (or memory ran out). */
char *config_mask_url_password(const char *value);
const char *config_token_source_name(enum token_source source);
/* 1 if a URL (scheme:// optional, as in a proxy variable) names this host:
 * a loopback address (127.0.0.0/8, [::1]) or localhost, with or without a
 * user:password@ and a port. */
int config_loopback_url(const char *url);
/* The host a URL (scheme:// optional) names, without user:password@, port or
 * an IPv6 address's brackets, into `name`. Returns 0, or -1 when it does not
 * fit or a bracket is not closed. */
int config_url_host(const char *url, char *name, size_t size);
/* `url` to show: as it is, or with a user:password@ before its host masked
 * (in `buffer`, cut to its `size`). */
const char *config_url_shown(const char *url, char *buffer, size_t size);

#endif

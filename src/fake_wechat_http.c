/* The fake WeChat server's HTTP side (libmicrohttpd): one thread per
 * connection, so a handler may simply sleep to inject latency while hundreds
 * of other keep-alive connections go on. Also the token, statistics and
 * control endpoints, which are too small for modules of their own. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "fake_wechat.h"
#include "log.h"

/* Request bodies are small JSON objects; anything larger is a client bug. */
#define FAKE_BODY_MAX 65536
/* Idle keep-alive connections are closed after this many seconds. */
#define FAKE_IDLE_TIMEOUT 120
/* Sleeps wake this often to see whether the server is stopping. */
#define FAKE_SLEEP_STEP_MS 50

static const char fake_json_type[] = "application/json; encoding=utf-8";

typedef enum MHD_Result (*fake_handler)(struct fake_server *server, struct fake_call *call);

/* Sends `data` (taken), with a Content-Type (none if NULL) and one more
 * header if `header`. */
static enum MHD_Result fake_reply(struct fake_call *call, unsigned status,
	const char *content_type, const char *header, const char *value, void *data, size_t size)
{
	struct MHD_Response *response =
		MHD_create_response_from_buffer(size, data, MHD_RESPMEM_MUST_FREE);
	enum MHD_Result result = MHD_NO;

	if (!response) {
		free(data);
		return MHD_NO;
	}
	if ((!content_type ||
	     MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) == MHD_YES) &&
	    (!header || MHD_add_response_header(response, header, value) == MHD_YES))
		result = MHD_queue_response(call->connection, status, response);
	MHD_destroy_response(response);
	return result;
}

/* Takes a copy of `text`: MHD frees what it sends. */
static enum MHD_Result fake_reply_copy(struct fake_call *call, unsigned status,
	const char *content_type, const char *text, const char *header, const char *value)
{
	char *copy = strdup(text);

	return copy ? fake_reply(call, status, content_type, header, value, copy, strlen(copy)) :
		MHD_NO;
}

enum MHD_Result fake_reply_text(struct fake_call *call, unsigned status, const char *text)
{
	return fake_reply_copy(call, status, "text/html; charset=utf-8", text, NULL, NULL);
}

enum MHD_Result fake_reply_unavailable(struct fake_server *server, struct fake_call *call,
	unsigned status, const char *text)
{
	int64_t ms = server->options->retry_after_ms;
	char seconds[24];

	if (ms < 0 || (status != 429 && status != 503))
		return fake_reply_text(call, status, text);
	snprintf(seconds, sizeof seconds, "%lld", (long long)((ms + 999) / 1000));
	return fake_reply_copy(call, status, "text/html; charset=utf-8", text,
		MHD_HTTP_HEADER_RETRY_AFTER, seconds);
}

enum MHD_Result fake_reply_error_as(struct fake_call *call, enum fake_error error,
	const char *content_type)
{
	char *body;
	int length = asprintf(&body, "{\"errcode\":%d,\"errmsg\":\"%s rid: %08x-%08x-%08x\"}",
		fake_error_code(error), fake_error_message(error),
		(unsigned)fake_random_next(call->random), (unsigned)fake_random_next(call->random),
		(unsigned)fake_random_next(call->random));

	if (length < 0)
		return MHD_NO;
	return fake_reply(call, 200, content_type, NULL, NULL, body, (size_t)length);
}

enum MHD_Result fake_reply_error(struct fake_server *server, struct fake_call *call,
	enum fake_error error)
{
	if (call->endpoint < FAKE_EP_COUNT)
		fake_stats_answer(&server->stats, call->endpoint, error);
	log_debug("answered errcode %d", fake_error_code(error));
	return fake_reply_error_as(call, error, fake_json_type);
}

enum MHD_Result fake_reply_image(struct fake_call *call, struct fake_image *image, size_t size)
{
	char disposition[64];

	snprintf(disposition, sizeof disposition, "attachment; filename=\"wxacode.%s\"",
		image->extension);
	return fake_reply(call, 200, image->content_type, MHD_HTTP_HEADER_CONTENT_DISPOSITION, disposition,
		image->data, size);
}

int fake_sleep(struct fake_server *server, int64_t ms)
{
	struct timespec deadline;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += ms / 1000;
	deadline.tv_nsec += (ms % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	while (!atomic_load(&server->stopping)) {
		struct timespec now, step;
		int64_t left;

		clock_gettime(CLOCK_MONOTONIC, &now);
		left = (int64_t)(deadline.tv_sec - now.tv_sec) * 1000 +
			(deadline.tv_nsec - now.tv_nsec) / 1000000;
		if (left <= 0)
			return 0;
		left = left < FAKE_SLEEP_STEP_MS ? left : FAKE_SLEEP_STEP_MS;
		step.tv_sec = 0;
		step.tv_nsec = (long)left * 1000000;
		nanosleep(&step, NULL);
	}
	return -1;
}

/* --- token endpoints ------------------------------------------------------- */

/* The checks both token endpoints make, in WeChat's order. A wrong secret is
 * 40001 and an empty one 40125, as WECHAT.md lists them. */
static enum fake_error fake_credentials(const struct fake_options *options, const char *grant_type,
	const char *appid, const char *secret)
{
	if (!grant_type || strcmp(grant_type, "client_credential"))
		return FAKE_ERR_GRANT_TYPE;
	if (!appid || strcmp(appid, options->appid))
		return FAKE_ERR_APPID;
	if (!secret || !*secret)
		return FAKE_ERR_SECRET_INVALID;
	if (strcmp(secret, options->secret))
		return FAKE_ERR_TOKEN_INVALID;
	return FAKE_OK;
}

/* Credentials checked: the injected fault (--token-errcode), the endpoint's
 * limits, or a token. */
static enum MHD_Result fake_issue(struct fake_server *server, struct fake_call *call,
	enum fake_token_kind kind)
{
	const struct fake_faults *faults = &server->options->faults;
	char token[FAKE_TOKEN_MAX + 1], *body;
	int64_t life_ms = 0;
	enum fake_error error;
	int length;

	if (fake_random_hit(call->random, faults->token_errcode_rate)) {
		fake_stats_fault(&server->stats, FAKE_FAULT_TOKEN_ERRCODE);
		return fake_reply_error(server, call, (enum fake_error)faults->token_errcode);
	}
	if ((error = fake_tokens_issue(&server->tokens, kind, fake_now_ms(), token, &life_ms)))
		return fake_reply_error(server, call, error);
	length = asprintf(&body, "{\"access_token\":\"%s\",\"expires_in\":%lld}", token,
		(long long)(life_ms / 1000));
	if (length < 0)
		return MHD_NO;
	fake_stats_answer(&server->stats, call->endpoint, FAKE_OK);
	return fake_reply(call, 200, fake_json_type, NULL, NULL, body, (size_t)length);
}

/* GET /cgi-bin/token?grant_type=client_credential&appid=APPID&secret=SECRET */
static enum MHD_Result fake_handle_token(struct fake_server *server, struct fake_call *call)
{
	enum fake_error error = fake_credentials(server->options,
		MHD_lookup_connection_value(call->connection, MHD_GET_ARGUMENT_KIND, "grant_type"),
		MHD_lookup_connection_value(call->connection, MHD_GET_ARGUMENT_KIND, "appid"),
		MHD_lookup_connection_value(call->connection, MHD_GET_ARGUMENT_KIND, "secret"));

	if (error != FAKE_OK)
		return fake_reply_error(server, call, error);
	return fake_issue(server, call, FAKE_TOKEN_CLASSIC);
}

/* POST /cgi-bin/stable_token with a JSON body. */
static enum MHD_Result fake_handle_stable_token(struct fake_server *server, struct fake_call *call)
{
	json_t *body = json_loadb(call->body ? call->body : "", call->length, 0, NULL);
	const char *grant_type, *appid, *secret;
	enum fake_error error = FAKE_ERR_FORMAT;
	int force = 0;
	enum MHD_Result result;

	if (json_is_object(body) && !fake_json_string(body, "grant_type", NULL, &grant_type) &&
	    !fake_json_string(body, "appid", NULL, &appid) &&
	    !fake_json_string(body, "secret", NULL, &secret) &&
	    !fake_json_bool(body, "force_refresh", 0, &force))
		error = fake_credentials(server->options, grant_type, appid, secret);
	if (error != FAKE_OK)
		result = fake_reply_error(server, call, error);
	else
		result = fake_issue(server, call, force ? FAKE_TOKEN_STABLE_FORCED : FAKE_TOKEN_STABLE);
	json_decref(body);
	return result;
}

/* --- test endpoints -------------------------------------------------------- */

static enum MHD_Result fake_handle_stats(struct fake_server *server, struct fake_call *call)
{
	char *text = fake_stats_json(&server->stats, &server->tokens);

	if (!text)
		return MHD_NO;
	return fake_reply(call, 200, "application/json", NULL, NULL, text, strlen(text));
}

/* Every token, classic and stable, answers 40001 from now on, at once (as
 * another holder's force_refresh and a classic fetch with no grace left
 * would; a classic fetch with its grace period is a GET /cgi-bin/token). */
static enum MHD_Result fake_handle_invalidate(struct fake_server *server, struct fake_call *call)
{
	fake_tokens_revoke_all(&server->tokens, fake_now_ms());
	log_info("every token issued so far is now invalid (40001)");
	return fake_reply_copy(call, 200, "application/json", "{\"ok\":true}\n", NULL, NULL);
}

static enum MHD_Result fake_handle_expire(struct fake_server *server, struct fake_call *call)
{
	fake_tokens_expire_all(&server->tokens, fake_now_ms());
	log_info("every token issued so far has now expired (42001)");
	return fake_reply_copy(call, 200, "application/json", "{\"ok\":true}\n", NULL, NULL);
}

/* POST /_control/{outage,busy}?for=MS: sets `until` MS ms from now. */
static enum MHD_Result fake_control_for(struct fake_call *call, atomic_int_fast64_t *until,
	const char *what)
{
	const char *value = MHD_lookup_connection_value(call->connection, MHD_GET_ARGUMENT_KIND, "for");
	char *end;
	long long ms = value ? strtoll(value, &end, 10) : -1;

	if (!value || !*value || *end || ms < 0 || ms > 86400000)
		return fake_reply_text(call, 400, "for=MS (0 to 86400000) expected\n");
	atomic_store(until, fake_now_ms() + ms);
	log_info("getwxacodeunlimit answers %s for %lld ms", what, ms);
	return fake_reply_copy(call, 200, "application/json", "{\"ok\":true}\n", NULL, NULL);
}

/* The gateway's outage: 503 at once, nothing charged. */
static enum MHD_Result fake_handle_outage(struct fake_server *server, struct fake_call *call)
{
	return fake_control_for(call, &server->outage_until_ms, "503");
}

/* A burst of -1 "system busy" (WECHAT.md: persisting across retries),
 * charged like any call that reaches WeChat. */
static enum MHD_Result fake_handle_busy(struct fake_server *server, struct fake_call *call)
{
	return fake_control_for(call, &server->busy_until_ms, "errcode -1");
}

/* --- routing and the MHD callbacks ------------------------------------------ */

static const struct fake_route {
	const char *method, *path;
	enum fake_endpoint endpoint;
	fake_handler handler;
} fake_routes[] = {
	{ "GET", "/cgi-bin/token", FAKE_EP_TOKEN, fake_handle_token },
	{ "POST", "/cgi-bin/stable_token", FAKE_EP_STABLE_TOKEN, fake_handle_stable_token },
	{ "POST", "/wxa/getwxacodeunlimit", FAKE_EP_CODE, fake_handle_code },
	{ "GET", "/_stats", FAKE_EP_COUNT, fake_handle_stats },
	{ "POST", "/_control/invalidate-tokens", FAKE_EP_COUNT, fake_handle_invalidate },
	{ "POST", "/_control/expire-tokens", FAKE_EP_COUNT, fake_handle_expire },
	{ "POST", "/_control/outage", FAKE_EP_COUNT, fake_handle_outage },
	{ "POST", "/_control/busy", FAKE_EP_COUNT, fake_handle_busy },
};

static enum MHD_Result fake_route(struct fake_server *server, struct fake_call *call,
	const char *method, const char *path)
{
	int path_known = 0;

	/* The URL's query is not in `path`: tokens and secrets never reach the log. */
	log_debug("%s %s", method, path);
	if (call->too_large)
		return fake_reply_text(call, 413, "request body too large\n");
	for (size_t i = 0; i < sizeof fake_routes / sizeof fake_routes[0]; i++) {
		const struct fake_route *route = &fake_routes[i];

		if (strcmp(route->path, path))
			continue;
		path_known = 1;
		if (strcmp(route->method, method))
			continue;
		call->endpoint = route->endpoint;
		if (route->endpoint < FAKE_EP_COUNT)
			call->number = fake_stats_request(&server->stats, route->endpoint);
		return route->handler(server, call);
	}
	if (path_known)
		return fake_reply_text(call, 405, "method not allowed\n");
	fake_stats_not_found(&server->stats);
	return fake_reply_text(call, 404, "not found\n");
}

static void fake_call_append(struct fake_call *call, const char *data, size_t size)
{
	if (call->too_large || call->length + size > FAKE_BODY_MAX) {
		call->too_large = 1;
		return;
	}
	if (call->length + size + 1 > call->capacity) {
		size_t capacity = (call->length + size + 1) * 2;
		char *grown = realloc(call->body, capacity);

		if (!grown) {
			call->too_large = 1;
			return;
		}
		call->body = grown;
		call->capacity = capacity;
	}
	memcpy(call->body + call->length, data, size);
	call->length += size;
	call->body[call->length] = '\0';
}

static struct fake_call *fake_call_new(struct MHD_Connection *connection)
{
	const union MHD_ConnectionInfo *info =
		MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct fake_call *call;

	if (!info || !info->socket_context)
		return NULL;
	call = calloc(1, sizeof *call);
	if (call) {
		call->connection = connection;
		call->random = info->socket_context;
		call->endpoint = FAKE_EP_COUNT;
	}
	return call;
}

/* MHD calls this first with no body, then once per piece of the body, then
 * once more with none: only then is the request whole. */
static enum MHD_Result fake_access(void *cls, struct MHD_Connection *connection, const char *url,
	const char *method, const char *version, const char *upload_data, size_t *upload_data_size,
	void **request_context)
{
	struct fake_call *call = *request_context;

	(void)version;
	if (!call) {
		*request_context = call = fake_call_new(connection);
		return call ? MHD_YES : MHD_NO;
	}
	if (*upload_data_size) {
		fake_call_append(call, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	return fake_route(cls, call, method, url);
}

static void fake_completed(void *cls, struct MHD_Connection *connection, void **request_context,
	enum MHD_RequestTerminationCode code)
{
	struct fake_call *call = *request_context;

	(void)cls;
	(void)connection;
	(void)code;
	if (call) {
		free(call->body);
		free(call);
		*request_context = NULL;
	}
}

/* Each connection gets its own PRNG, seeded from the server's seed and the
 * connection's number: one client's run replays with the same --seed. */
static void fake_connection_event(void *cls, struct MHD_Connection *connection,
	void **socket_context, enum MHD_ConnectionNotificationCode code)
{
	struct fake_server *server = cls;

	(void)connection;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		struct fake_random mix = { server->seed + atomic_fetch_add(&server->connection_serial, 1) };
		struct fake_random *random = malloc(sizeof *random);

		if (random)
			random->state = fake_random_next(&mix);
		*socket_context = random;
		fake_stats_connection(&server->stats, 1);
	} else {
		free(*socket_context);
		*socket_context = NULL;
		fake_stats_connection(&server->stats, 0);
	}
}

/* MHD's own messages (a dropped connection, a client reset...) are routine
 * here: debug level. */
static void fake_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char message[512];
	size_t length;

	(void)cls;
	vsnprintf(message, sizeof message, fmt, ap);
	length = strlen(message);
	while (length && message[length - 1] == '\n')
		message[--length] = '\0';
	log_debug("libmicrohttpd: %s", message);
}

static uint64_t fake_seed(const struct fake_options *options)
{
	uint64_t seed;

	if (options->seed >= 0)
		return (uint64_t)options->seed;
	if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
		seed = (uint64_t)fake_now_ms();
	return seed;
}

static struct MHD_Daemon *fake_daemon_start(struct fake_server *server,
	const struct sockaddr_in *address)
{
	const struct fake_options *options = server->options;

	return MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
			MHD_USE_POLL | MHD_USE_ERROR_LOG,
		(uint16_t)options->port, NULL, NULL, fake_access, server,
		MHD_OPTION_EXTERNAL_LOGGER, fake_mhd_log, server,
		MHD_OPTION_SOCK_ADDR, address,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)options->max_connections,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)FAKE_IDLE_TIMEOUT,
		MHD_OPTION_NOTIFY_COMPLETED, fake_completed, server,
		MHD_OPTION_NOTIFY_CONNECTION, fake_connection_event, server,
		MHD_OPTION_END);
}

int fake_server_start(struct fake_server *server, const struct fake_options *options,
	unsigned *port)
{
	struct sockaddr_in address;
	const union MHD_DaemonInfo *info;

	memset(server, 0, sizeof *server);
	server->options = options;
	server->seed = fake_seed(options);
	fake_tokens_init(&server->tokens, options);
	fake_stats_init(&server->stats, options);
	memset(&address, 0, sizeof address);
	address.sin_family = AF_INET;
	address.sin_port = htons((uint16_t)options->port);
	if (inet_pton(AF_INET, options->listen, &address.sin_addr) != 1)
		return -1;
	errno = 0;
	server->daemon = fake_daemon_start(server, &address);
	info = server->daemon ? MHD_get_daemon_info(server->daemon, MHD_DAEMON_INFO_BIND_PORT) : NULL;
	if (!info) {
		log_error("cannot listen on %s:%lld: %s", options->listen, (long long)options->port,
			errno ? strerror(errno) : "libmicrohttpd failed (-vv tells more)");
		return -1;
	}
	*port = info->port;
	return 0;
}

void fake_server_stop(struct fake_server *server)
{
	atomic_store(&server->stopping, 1);
	if (server->daemon)
		MHD_stop_daemon(server->daemon);
	server->daemon = NULL;
}

void fake_server_free(struct fake_server *server)
{
	fake_tokens_destroy(&server->tokens);
	fake_stats_destroy(&server->stats);
}

/* POST /wxa/getwxacodeunlimit: latency, then the token and quota checks,
 * injected faults, the body's fields, and the image (tests/fake-wechat.md
 * lists the order). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "fake_wechat.h"
#include "log.h"
#include "parse.h"

#define FAKE_WIDTH_DEFAULT 430
#define FAKE_WIDTH_MIN 280
#define FAKE_WIDTH_MAX 1280
/* Bytes after a padded image (--padded-rate). */
#define FAKE_PADDING 16

/* The fields of a request, defaults applied. */
struct fake_code_request {
	const char *scene, *page, *env_version;
	int check_path, auto_color;
	struct fake_image_request image;
};

/* A number, or a string holding one (clients send both), clamped to
 * min..max as WeChat clamps. Absent gives `fallback`. */
static int fake_json_number(const json_t *body, const char *key, int fallback, int min, int max,
	int *out)
{
	const json_t *value = json_object_get(body, key);
	int64_t number = fallback;
	double real;

	if (json_is_integer(value)) {
		number = json_integer_value(value);
	} else if (json_is_real(value)) {
		real = json_real_value(value);
		number = real < min ? min : real > max ? max : (int64_t)real;
	} else if (json_is_string(value)) {   /* "10" or "10.5", as the number would be */
		if (parse_int64(json_string_value(value), INT64_MIN, INT64_MAX, &number, NULL)) {
			if (parse_double(json_string_value(value), -1e300, 1e300, &real, NULL))
				return -1;
			number = real < min ? min : real > max ? max : (int64_t)real;
		}
	} else if (value && !json_is_null(value)) {
		return -1;
	}
	*out = number < min ? min : number > max ? max : (int)number;
	return 0;
}

static int fake_code_color(const json_t *body, struct fake_code_request *request)
{
	static const char *const channels[3] = { "r", "g", "b" };
	const json_t *color = json_object_get(body, "line_color");

	memset(request->image.color, 0, sizeof request->image.color);
	if (!color || json_is_null(color) || request->auto_color)
		return 0;
	if (!json_is_object(color))
		return -1;
	for (int i = 0; i < 3; i++) {
		int value;

		if (fake_json_number(color, channels[i], 0, 0, 255, &value))
			return -1;
		request->image.color[i] = (unsigned char)value;
	}
	return 0;
}

/* Wrong types are 47001, as WeChat answers a body it cannot read. */
static enum fake_error fake_code_fields(const json_t *body, struct fake_code_request *request)
{
	if (!json_is_object(body) ||
	    fake_json_string(body, "scene", "", &request->scene) ||
	    fake_json_string(body, "page", "", &request->page) ||
	    fake_json_string(body, "env_version", "release", &request->env_version) ||
	    fake_json_bool(body, "check_path", 1, &request->check_path) ||
	    fake_json_bool(body, "is_hyaline", 0, &request->image.hyaline) ||
	    fake_json_bool(body, "auto_color", 0, &request->auto_color) ||
	    fake_json_number(body, "width", FAKE_WIDTH_DEFAULT, FAKE_WIDTH_MIN, FAKE_WIDTH_MAX,
		&request->image.width) ||
	    fake_code_color(body, request))
		return FAKE_ERR_FORMAT;
	request->image.scene = request->scene;
	return FAKE_OK;
}

static enum fake_error fake_code_check(const struct fake_options *options,
	const struct fake_code_request *request)
{
	static const char *const envs[] = { "release", "trial", "develop" };
	size_t scene_length = strlen(request->scene), characters = 0;
	int env_known = 0;

	/* WECHAT.md counts characters: a UTF-8 continuation byte is none. */
	for (size_t i = 0; i < scene_length; i++)
		characters += ((unsigned char)request->scene[i] & 0xC0) != 0x80;
	if (characters < 1 || characters > RID_SCENE_MAX)
		return FAKE_ERR_SCENE_LENGTH;
	if (!rid_is_scene(request->scene, scene_length))
		return FAKE_ERR_SCENE_CHARS;
	/* An empty page is the home page, always there. */
	if (request->page[0] == '/' || strchr(request->page, '?'))
		return FAKE_ERR_PAGE;
	if (request->page[0] && request->check_path &&
	    !fake_page_published(options->pages, request->page))
		return FAKE_ERR_PAGE;
	for (size_t i = 0; i < sizeof envs / sizeof envs[0]; i++)
		env_known |= !strcmp(request->env_version, envs[i]);
	return env_known ? FAKE_OK : FAKE_ERR_ENV_VERSION;
}

/* Latency, jitter and the "slow" fault, before any answer. */
static int fake_code_delay(struct fake_server *server, struct fake_call *call)
{
	const struct fake_faults *faults = &server->options->faults;
	int64_t ms = faults->latency_ms;

	if (faults->jitter_ms > 0)
		ms += (int64_t)(fake_random_unit(call->random) * (double)(faults->jitter_ms + 1));
	if (fake_random_hit(call->random, faults->slow_rate)) {
		fake_stats_fault(&server->stats, FAKE_FAULT_SLOW);
		ms += faults->slow_ms;
	}
	return fake_sleep(server, ms);
}

/* The fault that replaces this call's answer, if any. Each has its own draw,
 * so several rates of 1.0 still show the first of them. */
static enum fake_fault fake_code_fault(const struct fake_faults *faults, struct fake_call *call,
	uint64_t number)
{
	if (faults->fail_after >= 0 && number > (uint64_t)faults->fail_after)
		return FAKE_FAULT_FAIL_AFTER;
	if (fake_random_hit(call->random, faults->drop_rate))
		return FAKE_FAULT_DROP;
	if (fake_random_hit(call->random, faults->http5xx_rate))
		return FAKE_FAULT_HTTP5XX;
	if (fake_random_hit(call->random, faults->http_status_rate))
		return FAKE_FAULT_HTTP_STATUS;
	if (fake_random_hit(call->random, faults->busy_rate))
		return FAKE_FAULT_BUSY;
	if (fake_random_hit(call->random, faults->json_as_image_rate))
		return FAKE_FAULT_JSON_AS_IMAGE;
	if (fake_random_hit(call->random, faults->errcode_rate))
		return FAKE_FAULT_ERRCODE;
	return FAKE_FAULT_NONE;
}

static enum MHD_Result fake_code_fault_reply(struct fake_server *server, struct fake_call *call,
	enum fake_fault fault)
{
	static const unsigned statuses[] = { 500, 502, 503 };
	const struct fake_faults *faults = &server->options->faults;

	fake_stats_fault(&server->stats, fault);
	switch (fault) {
	case FAKE_FAULT_DROP:
		return MHD_NO;
	case FAKE_FAULT_HTTP5XX:
		return fake_reply_unavailable(server, call, statuses[fake_random_next(call->random) % 3],
			"<html><body>upstream error</body></html>\n");
	case FAKE_FAULT_HTTP_STATUS:
		return fake_reply_unavailable(server, call, faults->http_status[
			fake_random_next(call->random) % (unsigned)faults->http_status_count],
			"<html><body>gateway error</body></html>\n");
	case FAKE_FAULT_JSON_AS_IMAGE:
		/* The error a client must read (a quota, a page refused), not only
		 * one it would retry anyway as a bad image. */
		return fake_reply_error_as(call, faults->errcode_rate > 0 ?
			(enum fake_error)faults->errcode : FAKE_ERR_BUSY, "image/jpeg");
	case FAKE_FAULT_ERRCODE:
		return fake_reply_error(server, call, (enum fake_error)server->options->faults.errcode);
	default:
		return fake_reply_error(server, call, FAKE_ERR_BUSY);
	}
}

static enum MHD_Result fake_code_image(struct fake_server *server, struct fake_call *call,
	const struct fake_code_request *request, int64_t window)
{
	struct fake_image image;
	size_t size;

	if (fake_image_render(&request->image, &image))
		return fake_reply_error(server, call, FAKE_ERR_BUSY);
	if (fake_image_pad(&image, (size_t)server->options->image_bytes)) {
		free(image.data);
		return fake_reply_error(server, call, FAKE_ERR_BUSY);
	}
	size = image.size;
	if (server->options->image_type)   /* (a gateway's label, or none) */
		image.content_type = strcmp(server->options->image_type, "none") ?
			server->options->image_type : NULL;
	/* Whole as HTTP goes, but the image is empty or stops half way: only a
	 * client that checks the image itself notices. */
	if (fake_random_hit(call->random, server->options->faults.empty_rate)) {
		fake_stats_fault(&server->stats, FAKE_FAULT_EMPTY);
		free(image.data);   /* MHD is not asked to free what it may not keep */
		image.data = NULL;
		size = 0;
	} else if (fake_random_hit(call->random, server->options->faults.truncate_rate)) {
		fake_stats_fault(&server->stats, FAKE_FAULT_TRUNCATE);
		size /= 2;
	} else if (fake_random_hit(call->random, server->options->faults.html_rate)) {
		/* A gateway's page in place of the image, with a 200. */
		fake_stats_fault(&server->stats, FAKE_FAULT_HTML);
		free(image.data);
		return fake_reply_text(call, 200, "<html><body>please try again later</body></html>\n");
	} else if (fake_random_hit(call->random, server->options->faults.not_image_rate) &&
		   size >= 6) {
		/* Labelled as the image, the bytes of another kind (a GIF). */
		fake_stats_fault(&server->stats, FAKE_FAULT_NOT_IMAGE);
		memcpy(image.data, "GIF89a", 6);
	} else {
		fake_stats_answer(&server->stats, FAKE_EP_CODE, FAKE_OK);
		fake_stats_image(&server->stats, window);
		/* A whole image and bytes after it, as some encoders pad. */
		if (fake_random_hit(call->random, server->options->faults.padded_rate)) {
			unsigned char *padded = realloc(image.data, size + FAKE_PADDING);

			if (padded) {
				fake_stats_fault(&server->stats, FAKE_FAULT_PADDED);
				memset(padded + size, 0, FAKE_PADDING);
				image.data = padded;
				size += FAKE_PADDING;
			}
		}
	}
	return fake_reply_image(call, &image, size);
}

/* Fields, after token and quota: a bad body still costs a call. */
static enum MHD_Result fake_code_answer(struct fake_server *server, struct fake_call *call,
	int64_t window)
{
	struct fake_code_request request;
	const char *type = MHD_lookup_connection_value(call->connection, MHD_HEADER_KIND,
		MHD_HTTP_HEADER_CONTENT_TYPE);
	/* WECHAT.md: form posts are refused (libcurl's default for a POST). */
	int form = type && (!strncasecmp(type, "application/x-www-form-urlencoded", 33) ||
		!strncasecmp(type, "multipart/form-data", 19));
	json_t *body = form ? NULL : json_loadb(call->body ? call->body : "", call->length, 0, NULL);
	enum fake_error error = body ? fake_code_fields(body, &request) : FAKE_ERR_FORMAT;
	enum MHD_Result result;

	if (error == FAKE_OK)
		error = fake_code_check(server->options, &request);
	if (error == FAKE_OK)
		result = fake_code_image(server, call, &request, window);
	else
		result = fake_reply_error(server, call, error);
	json_decref(body);
	return result;
}

enum MHD_Result fake_handle_code(struct fake_server *server, struct fake_call *call)
{
	const char *token = MHD_lookup_connection_value(call->connection, MHD_GET_ARGUMENT_KIND,
		"access_token");
	/* The token and the quota are judged as the call arrives (a server
	 * refuses before it does the work); the latency is the work. With
	 * --quota-at answer, as the answer leaves: the latency was all on the
	 * way in. */
	int64_t judged_ms = fake_now_ms(), window;
	enum fake_error error;
	enum fake_fault fault;

	if (fake_now_ms() < atomic_load(&server->outage_until_ms)) {
		/* A gateway whose upstream is down: nothing reaches WeChat, nothing is charged. */
		fake_stats_fault(&server->stats, FAKE_FAULT_HTTP5XX);
		return fake_reply_unavailable(server, call, 503,
			"<html><body>service unavailable</body></html>\n");
	}
	if (fake_code_delay(server, call))
		return MHD_NO;
	if (!strcmp(server->options->quota_at, "answer"))
		judged_ms = fake_now_ms();
	if (!token || !*token)
		return fake_reply_error(server, call, FAKE_ERR_TOKEN_MISSING);
	error = fake_tokens_check(&server->tokens, token, judged_ms);
	if (error != FAKE_OK)
		return fake_reply_error(server, call, error);
	if (!fake_stats_charge(&server->stats, judged_ms, &window))
		return fake_reply_error(server, call, server->options->quota_errcode == 45011 ?
			FAKE_ERR_QUOTA_SLOWER : FAKE_ERR_QUOTA);
	fault = judged_ms < atomic_load(&server->busy_until_ms) ? FAKE_FAULT_BUSY :
		fake_code_fault(&server->options->faults, call, call->number);
	if (fault != FAKE_FAULT_NONE)
		return fake_code_fault_reply(server, call, fault);
	return fake_code_answer(server, call, window);
}

/* Small pieces every part of the fake WeChat server uses: the error table,
 * the clock, the per-connection PRNG and JSON field readers. */
#include <jansson.h>
#include <time.h>

#include "fake_wechat.h"

/* errmsg texts as WeChat words them (without the " rid: ..." suffix). */
static const struct {
	int code;
	const char *message;
} fake_errors[FAKE_ERR_COUNT] = {
	[FAKE_OK] = { 0, "ok" },
	[FAKE_ERR_BUSY] = { -1, "system busy" },
	[FAKE_ERR_TOKEN_INVALID] =
		{ 40001, "invalid credential, access_token is invalid or not latest" },
	[FAKE_ERR_GRANT_TYPE] = { 40002, "invalid grant_type" },
	[FAKE_ERR_APPID] = { 40013, "invalid appid" },
	[FAKE_ERR_ENV_VERSION] = { 40097, "invalid args: env_version" },
	[FAKE_ERR_SECRET_INVALID] = { 40125, "invalid appsecret" },
	[FAKE_ERR_SCENE_CHARS] = { 40129, "invalid scene" },
	[FAKE_ERR_SCENE_LENGTH] = { 40169, "invalid length for scene, or the data is not json string" },
	[FAKE_ERR_TOKEN_MISSING] = { 41001, "access_token missing" },
	[FAKE_ERR_PAGE] = { 41030, "invalid page" },
	[FAKE_ERR_TOKEN_EXPIRED] = { 42001, "access_token expired" },
	[FAKE_ERR_QUOTA] = { 45009, "reach max api minute quota limit" },
	[FAKE_ERR_QUOTA_SLOWER] =
		{ 45011, "api minute-quota reach limit, must slower, retry next minute" },
	[FAKE_ERR_FORMAT] = { 47001, "data format error" },
	[FAKE_ERR_DAILY_LIMIT] = { 45009, "reach max api daily quota limit" },
	[FAKE_ERR_TOKEN_NOT_LATEST] = { 40014, "invalid access_token" },
	[FAKE_ERR_UNAUTHORIZED] = { 48001, "api unauthorized" },
	[FAKE_ERR_NO_PERMISSION] = { 45063, "no permission to generate wxacode" },
	[FAKE_ERR_SCANCODE_TIME] = { 85096, "not allow include scancode_time field" },
	[FAKE_ERR_IP_WHITELIST] =
		{ 40164, "invalid ip 127.0.0.1 ipv6 ::ffff:127.0.0.1, not in whitelist" },
	[FAKE_ERR_SECRET_FROZEN] = { 40243, "AppSecret is frozen, unfreeze it in the admin console" },
	[FAKE_ERR_IP_CONFIRM] = { 89503, "this ip needs the administrator's confirmation" },
};

int fake_error_code(enum fake_error error)
{
	return fake_errors[error].code;
}

enum fake_error fake_error_of(int code)
{
	for (int e = FAKE_OK + 1; e < FAKE_ERR_COUNT; e++)
		if (fake_errors[e].code == code)
			return (enum fake_error)e;
	return FAKE_OK;
}

const char *fake_error_message(enum fake_error error)
{
	return fake_errors[error].message;
}

int64_t fake_now_ms(void)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

uint64_t fake_random_next(struct fake_random *random)
{
	uint64_t z = (random->state += UINT64_C(0x9E3779B97F4A7C15));

	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

double fake_random_unit(struct fake_random *random)
{
	return (double)(fake_random_next(random) >> 11) * 0x1.0p-53;
}

int fake_random_hit(struct fake_random *random, double rate)
{
	return rate > 0 && fake_random_unit(random) < rate;
}

/* A bool field: absent gives `fallback`; another type is a format error. */
int fake_json_bool(const json_t *body, const char *key, int fallback, int *out)
{
	const json_t *value = json_object_get(body, key);

	if (!value || json_is_null(value)) {
		*out = fallback;
		return 0;
	}
	if (!json_is_boolean(value))
		return -1;
	*out = json_is_true(value);
	return 0;
}

int fake_json_string(const json_t *body, const char *key, const char *fallback,
	const char **out)
{
	const json_t *value = json_object_get(body, key);

	if (!value || json_is_null(value)) {
		*out = fallback;
		return 0;
	}
	if (!json_is_string(value))
		return -1;
	*out = json_string_value(value);
	return 0;
}

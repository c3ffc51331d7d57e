#include "qrfit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exitcode.h"
#include "log.h"
#include "rid.h"

/* Byte-mode capacity of version 40 at level L, the most any QR code holds. */
#define QRFIT_MAX_BYTES 2953

QRecLevel qrfit_level(char level)
{
	switch (level) {
	case 'L': return QR_ECLEVEL_L;
	case 'Q': return QR_ECLEVEL_Q;
	case 'H': return QR_ECLEVEL_H;
	default: return QR_ECLEVEL_M;
	}
}

int qrfit_version_for(size_t length, char level, int min_version)
{
	unsigned char *filler;
	QRcode *code;
	int version;

	if (length > QRFIT_MAX_BYTES || !(filler = malloc(length ? length : 1)))
		return 0;
	memset(filler, 'x', length);
	code = QRcode_encodeData((int)length, filler, min_version, qrfit_level(level));
	free(filler);
	version = code ? code->version : 0;
	QRcode_free(code);
	return version;
}

/* The most bytes that still fit `version` at `level`. */
static size_t qrfit_capacity(int version, char level)
{
	size_t low = 0, high = QRFIT_MAX_BYTES + 1;

	while (high - low > 1) {
		size_t middle = low + (high - low) / 2;
		int needed = qrfit_version_for(middle, level, 0);

		if (needed && needed <= version)
			low = middle;
		else
			high = middle;
	}
	return low;
}

/* "L 16, M 10, Q 4, H -": per level, the longest url_prefix that leaves room
 * for a request id in `version` ("-": not even the id fits). */
static void qrfit_describe_room(int version, char *buf, size_t size)
{
	static const char levels[] = "LMQH";
	size_t used = 0;

	buf[0] = '\0';
	for (int i = 0; i < 4 && used < size; i++) {
		long room = (long)qrfit_capacity(version, levels[i]) - RID_LENGTH;

		if (room >= 0)
			used += (size_t)snprintf(buf + used, size - used, "%s%c %ld", i ? ", " : "",
				levels[i], room);
		else
			used += (size_t)snprintf(buf + used, size - used, "%s%c -", i ? ", " : "", levels[i]);
	}
}

/* Where url_prefix is set, as config errors name it (its @include's file). */
static const char *qrfit_place(const struct config *config, const struct pool_config *pool)
{
	return pool->url_prefix_place ? pool->url_prefix_place : config->path;
}

static int qrfit_check_pool(const struct config *config, const struct pool_config *pool)
{
	size_t length = strlen(pool->url_prefix) + RID_LENGTH;
	int limit = pool->min_version ? pool->min_version : 40;
	int needed = qrfit_version_for(length, pool->ec_level, 0);
	char room[96];

	if (needed && needed <= limit)
		return 0;
	qrfit_describe_room(limit, room, sizeof room);
	if (!needed)
		log_error("%s: pool '%s': url_prefix (%zu characters) plus a %d-character request id "
			"does not fit even QR version 40 at ec_level %c; the longest prefix that fits, per "
			"ec_level: %s", qrfit_place(config, pool), pool->name, strlen(pool->url_prefix),
			RID_LENGTH, pool->ec_level, room);
	else
		log_error("%s: pool '%s': url_prefix (%zu characters) plus a %d-character request id "
			"needs QR version %d at ec_level %c, above min_version = %d; raise min_version to %d, "
			"or fit version %d with a prefix of at most, per ec_level: %s",
			qrfit_place(config, pool), pool->name, strlen(pool->url_prefix), RID_LENGTH, needed, pool->ec_level,
			pool->min_version, needed, limit, room);
	return EXIT_CONFIG;
}

int qrfit_check_config(const struct config *config)
{
	for (size_t i = 0; i < config->pool_count; i++)
		if (config->pools[i].source == POOL_LINK && qrfit_check_pool(config, &config->pools[i]))
			return EXIT_CONFIG;
	return 0;
}

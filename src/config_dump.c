/* config_dump: the merged configuration (defaults filled in) in libconfig
 * syntax, so an operator sees exactly what a tool will use. Secrets masked. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "exitcode.h"
#include "log.h"

/* `text` as a libconfig string, quotes included. */
static void config_dump_quoted(FILE *out, const char *text)
{
	putc('"', out);
	for (const char *p = text; *p; p++) {
		if (*p == '"' || *p == '\\')
			putc('\\', out);
		putc(*p, out);
	}
	putc('"', out);
}

static void config_dump_string(FILE *out, const char *indent, const char *name, const char *value)
{
	if (!value)
		return;
	fprintf(out, "%s%s = ", indent, name);
	config_dump_quoted(out, value);
	fputs(";\n", out);
}

/* A list of librdkafka properties, secret values (sasl.password,
 * ssl.key.pem and the like) masked. */
static void config_dump_properties(FILE *out, const char *indent, const char *name,
	const struct kafka_properties *properties)
{
	fprintf(out, "%s%s = [", indent, name);
	for (size_t i = 0; i < properties->count; i++) {
		const char *p = properties->items[i];
		int key_length = (int)(strchr(p, '=') - p);
		char *masked = NULL;

		fputs(i ? ", " : " ", out);
		if (config_property_secret(p, (size_t)key_length))
			fprintf(out, "\"%.*s=********\"", key_length, p);
		else
			config_dump_quoted(out, (masked = config_mask_url_password(p)) ? masked : p);
		free(masked);
	}
	fputs(" ];\n", out);
}

static void config_dump_color(FILE *out, const char *name, struct rgb color)
{
	fprintf(out, "    %s = \"#%02X%02X%02X\";\n", name, color.r, color.g, color.b);
}

static void config_dump_pool(FILE *out, const struct pool_config *pool, int last)
{
	fprintf(out, "  {\n");
	config_dump_string(out, "    ", "name", pool->name);
	config_dump_string(out, "    ", "source", config_source_name(pool->source));
	config_dump_string(out, "    ", "topic", pool->topic);
	config_dump_string(out, "    ", "group", pool->group);
	fprintf(out, "    cover_hours = %g;\n    safety = %g;\n", pool->cover_hours, pool->safety);
	fprintf(out, "    drop_image_after_publish = %s;\n",
		pool->drop_image_after_publish ? "true" : "false");
	if (pool->topic_properties.count)
		config_dump_properties(out, "    ", "topic_properties", &pool->topic_properties);
	if (pool->source == POOL_WECHAT) {
		config_dump_string(out, "    ", "page", pool->page);
		fprintf(out, "    width = %d;\n", pool->width);
		config_dump_string(out, "    ", "env_version", pool->env_version);
		fprintf(out, "    check_path = %s;\n    is_hyaline = %s;\n    auto_color = %s;\n",
			pool->check_path ? "true" : "false", pool->is_hyaline ? "true" : "false",
			pool->auto_color ? "true" : "false");
		fprintf(out, "    line_color = { r = %d; g = %d; b = %d; };\n", pool->line_color.r,
			pool->line_color.g, pool->line_color.b);
	} else {
		config_dump_string(out, "    ", "url_prefix", pool->url_prefix);
		fprintf(out, "    ec_level = \"%c\";\n    module_px = %d;\n    margin = %d;\n",
			pool->ec_level, pool->module_px, pool->margin);
		config_dump_color(out, "foreground", pool->foreground);
		config_dump_color(out, "background", pool->background);
		fprintf(out, "    min_version = %d;\n    png_compression = %d;\n", pool->min_version,
			pool->png_compression);
	}
	fprintf(out, "  }%s\n", last ? "" : ",");
}

static void config_dump_redis(FILE *out, const struct redis_config *r)
{
	fprintf(out, "redis = {\n");
	if (r->unix_socket)
		config_dump_string(out, "  ", "unix_socket", r->unix_socket);
	else {
		config_dump_string(out, "  ", "host", r->host);
		fprintf(out, "  port = %d;\n", r->port);
	}
	fprintf(out, "  database = %d;\n", r->database);
	config_dump_string(out, "  ", "prefix", r->prefix);
	fprintf(out, "  ttl = \"%lldms\";\n  connect_timeout = \"%lldms\";\n  timeout = \"%lldms\";\n",
		(long long)r->ttl_ms, (long long)r->connect_timeout_ms, (long long)r->timeout_ms);
	if (r->password)
		fprintf(out, "  password = \"********\";\n");
	config_dump_string(out, "  ", "password_file", r->password_file);
	if (r->plaintext)
		fprintf(out, "  plaintext = true;\n");
	fprintf(out, "};\n");
}

int config_dump(const struct config *config, FILE *out)
{
	const struct wechat_config *w = &config->wechat;
	char shown[1024];

	fprintf(out, "# merged configuration from %s\n", config->path);
	fprintf(out, "database = {\n");
	config_dump_string(out, "  ", "path", config->db_path);
	fprintf(out, "  busy_timeout = \"%lldms\";\n};\n", (long long)config->busy_timeout_ms);
	if (config->has_wechat) {
		fprintf(out, "wechat = {\n");
		config_dump_string(out, "  ", "appid", w->appid);
		if (w->secret)
			fprintf(out, "  secret = \"********\";\n");
		config_dump_string(out, "  ", "secret_file", w->secret_file);
		config_dump_string(out, "  ", "api_base", config_url_shown(w->api_base, shown,
			sizeof shown));
		fprintf(out, "  token = {\n");
		config_dump_string(out, "    ", "source", config_token_source_name(w->token_source));
		config_dump_string(out, "    ", "command", w->token_command);
		config_dump_string(out, "    ", "file", w->token_file);
		fprintf(out, "  };\n  quota_per_minute = %d;\n  reserve_per_minute = %d;\n"
			"  quota_minute = \"%lldms\";\n  concurrency = %d;\n  connect_timeout = \"%lldms\";\n"
			"  timeout = \"%lldms\";\n  retries = %d;\n", w->quota_per_minute, w->reserve_per_minute,
			(long long)w->quota_minute_ms, w->concurrency,
			(long long)w->connect_timeout_ms, (long long)w->timeout_ms, w->retries);
		config_dump_string(out, "  ", "ca_bundle", w->ca_bundle);
		fprintf(out, "};\n");
	}
	fprintf(out, "kafka = {\n");
	config_dump_string(out, "  ", "brokers", config->kafka.brokers);
	fprintf(out, "  timeout = \"%lldms\";\n", (long long)config->kafka.timeout_ms);
	config_dump_properties(out, "  ", "properties", &config->kafka.properties);
	fprintf(out, "};\n");
	if (config->has_redis)
		config_dump_redis(out, &config->redis);
	fprintf(out, "pools = (\n");
	for (size_t i = 0; i < config->pool_count; i++)
		config_dump_pool(out, &config->pools[i], i + 1 == config->pool_count);
	fprintf(out, ");\n");
	if (ferror(out)) {
		log_error("writing the configuration failed");
		return EXIT_IO;
	}
	return 0;
}

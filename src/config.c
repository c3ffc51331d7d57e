#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <libconfig.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "exitcode.h"
#include "log.h"
#include "parse.h"

/* Context for one load: the file name for messages. */
struct config_reader {
	const char *file;
	char *shown;              /* PATH_MAX bytes: config_source's answer */
};

/* 1 if `text` is all printable ASCII, no space: what a page or a secret is. */
static int config_printable(const char *text)
{
	for (; *text; text++)
		if ((unsigned char)*text < 0x21 || (unsigned char)*text > 0x7e)
			return 0;
	return 1;
}

static int config_error_at(const struct config_reader *reader, const config_setting_t *setting,
	const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* `file` as a path that names it from anywhere: libconfig names an @included
 * file as the @include wrote it, relative to the config's own directory
 * (where the loader reads from: see config_load). */
static const char *config_full_name(const char *read_path, const char *file, char *out,
	size_t size)
{
	const char *slash = strrchr(read_path, '/');

	if (!file || file[0] == '/' || read_path[0] != '/' || !slash)
		return file;
	snprintf(out, size, "%.*s/%s", (int)(slash - read_path), read_path, file);
	return out;
}

/* The file a setting was read from: the main file, or one it @includes
 * (valid until the next call). */
static const char *config_source(const struct config_reader *reader, const config_setting_t *setting)
{
	const char *file = setting ? config_setting_source_file(setting) : NULL;

	return file ? config_full_name(reader->file, file, reader->shown, PATH_MAX) : reader->file;
}

static int config_error_at(const struct config_reader *reader, const config_setting_t *setting,
	const char *fmt, ...)
{
	char *message = NULL;
	va_list ap;

	/* (Whole, as long as it is: a path and its fix cut short would name
	 * another file; the log line marks its own cut.) */
	va_start(ap, fmt);
	if (vasprintf(&message, fmt, ap) < 0)
		message = NULL;
	va_end(ap);
	/* A setting that is missing has no line: the file alone is named. */
	if (setting)
		log_error("%s:%d: %s", config_source(reader, setting),
			config_setting_source_line(setting), message ? message : fmt);
	else
		log_error("%s: %s", reader->file, message ? message : fmt);
	free(message);
	return EXIT_CONFIG;
}

/* Unknown names are errors: a misspelt key silently taking its default is
 * how a night's run goes wrong. Every setting of `group` must be in one of
 * the `lists_count` NULL-ended key lists. */
static int config_check_keys_in(const struct config_reader *reader, const config_setting_t *group,
	const char *section, const char *const *const *lists, size_t lists_count)
{
	int count = config_setting_length(group);

	/* A section given as one value (database = "/path";) has no settings to
	 * look up: every one would silently take its default. */
	if (config_setting_type(group) != CONFIG_TYPE_GROUP)
		return config_error_at(reader, group, "%s must be a group of settings: %s = { ... };",
			section, config_setting_name(group) ? config_setting_name(group) : section);
	for (int i = 0; i < count; i++) {
		const config_setting_t *child = config_setting_get_elem(group, (unsigned)i);
		const char *name = config_setting_name(child);
		int found = 0;

		for (size_t l = 0; l < lists_count && !found; l++)
			for (const char *const *k = lists[l]; *k && !found; k++)
				found = name && !strcmp(name, *k);
		if (!found)
			return config_error_at(reader, child, "unknown setting '%s' in %s", name ? name : "?",
				section);
	}
	return 0;
}

static int config_check_keys(const struct config_reader *reader, const config_setting_t *group,
	const char *section, const char *const *known)
{
	return config_check_keys_in(reader, group, section, &known, 1);
}

static int config_get_string(const struct config_reader *reader, const config_setting_t *group,
	const char *name, const char *fallback, char **out)
{
	const config_setting_t *setting = group ? config_setting_get_member(group, name) : NULL;
	const char *value = fallback;

	if (setting) {
		if (config_setting_type(setting) != CONFIG_TYPE_STRING)
			return config_error_at(reader, setting, "'%s' must be a string", name);
		value = config_setting_get_string(setting);
	}
	free(*out);
	*out = value ? strdup(value) : NULL;
	return 0;
}

/* A file's path: absolute, since the tools run from cron (in $HOME) as well
 * as by hand, and a relative path would name a different file in each. */
static int config_get_path(const struct config_reader *reader, const config_setting_t *group,
	const char *name, const char *fallback, char **out)
{
	int status = config_get_string(reader, group, name, fallback, out);

	if (!status && *out && **out && **out != '/')
		return config_error_at(reader, config_setting_get_member(group, name),
			"%s '%s' must be an absolute path: relative, it would name another file in each "
			"directory a tool runs from", name, *out);
	return status;
}

static int config_get_int(const struct config_reader *reader, const config_setting_t *group,
	const char *name, int min, int max, int fallback, int *out)
{
	const config_setting_t *setting = group ? config_setting_get_member(group, name) : NULL;
	long long value;

	*out = fallback;
	if (!setting)
		return 0;
	if (config_setting_type(setting) != CONFIG_TYPE_INT &&
	    config_setting_type(setting) != CONFIG_TYPE_INT64)
		return config_error_at(reader, setting, "'%s' must be a whole number", name);
	value = config_setting_get_int64(setting);
	if (value < min || value > max)
		return config_error_at(reader, setting, "'%s' is %lld, must be %d to %d", name, value,
			min, max);
	*out = (int)value;
	return 0;
}

static int config_get_double(const struct config_reader *reader, const config_setting_t *group,
	const char *name, double min, double max, double fallback, double *out)
{
	const config_setting_t *setting = group ? config_setting_get_member(group, name) : NULL;
	double value;

	*out = fallback;
	if (!setting)
		return 0;
	switch (config_setting_type(setting)) {
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		value = (double)config_setting_get_int64(setting);
		break;
	case CONFIG_TYPE_FLOAT:
		value = config_setting_get_float(setting);
		break;
	default:
		return config_error_at(reader, setting, "'%s' must be a number", name);
	}
	if (!(value >= min && value <= max))
		return config_error_at(reader, setting, "'%s' is %g, must be %g to %g", name, value, min,
			max);
	*out = value;
	return 0;
}

static int config_get_bool(const struct config_reader *reader, const config_setting_t *group,
	const char *name, int fallback, int *out)
{
	const config_setting_t *setting = group ? config_setting_get_member(group, name) : NULL;

	*out = fallback;
	if (!setting)
		return 0;
	if (config_setting_type(setting) != CONFIG_TYPE_BOOL)
		return config_error_at(reader, setting, "'%s' must be true or false", name);
	*out = config_setting_get_bool(setting);
	return 0;
}

/* A duration is a string ("90s", "5m", "1h30m") or a whole number of seconds. */
static int config_get_duration(const struct config_reader *reader, const config_setting_t *group,
	const char *name, int64_t fallback_ms, int64_t *out_ms)
{
	const config_setting_t *setting = group ? config_setting_get_member(group, name) : NULL;
	char why[PARSE_WHY_SIZE];

	*out_ms = fallback_ms;
	if (!setting)
		return 0;
	if (config_setting_type(setting) == CONFIG_TYPE_INT ||
	    config_setting_type(setting) == CONFIG_TYPE_INT64) {   /* (whole seconds; 20L too) */
		long long seconds = config_setting_get_int64(setting);
		if (seconds < 0)
			return config_error_at(reader, setting, "'%s' must not be negative", name);
		if (seconds > INT64_MAX / 1000)
			return config_error_at(reader, setting, "'%s' is too long", name);
		*out_ms = seconds * 1000;
		return 0;
	}
	if (config_setting_type(setting) != CONFIG_TYPE_STRING)
		return config_error_at(reader, setting, "'%s' must be a duration like \"30s\"", name);
	if (parse_duration_ms(config_setting_get_string(setting), out_ms, why))
		return config_error_at(reader, setting, "'%s': %s", name, why);
	return 0;
}

/* Colours are "#RRGGBB" strings or { r = 0; g = 0; b = 0; } groups (as WeChat's line_color). */
static int config_get_color(const struct config_reader *reader, const config_setting_t *group,
	const char *name, struct rgb fallback, struct rgb *out)
{
	const config_setting_t *setting = group ? config_setting_get_member(group, name) : NULL;
	static const char *const keys[] = { "r", "g", "b", NULL };
	int status;

	*out = fallback;
	if (!setting)
		return 0;
	if (config_setting_type(setting) == CONFIG_TYPE_STRING) {
		const char *text = config_setting_get_string(setting);
		unsigned r, g, b;
		int consumed = 0;

		/* Six hex digits exactly: sscanf's %x alone would take "#-1-1-1" (a
		 * sign, as 255 each: white on white), "# 0 0 0" or "#0x0x0x". */
		if (strlen(text) != 7 || text[0] != '#' || strspn(text + 1, "0123456789abcdefABCDEF") != 6 ||
		    sscanf(text, "#%2x%2x%2x%n", &r, &g, &b, &consumed) != 3 || consumed != 7)
			return config_error_at(reader, setting, "'%s' must be \"#RRGGBB\"", name);
		out->r = (int)r;
		out->g = (int)g;
		out->b = (int)b;
		return 0;
	}
	if (config_setting_type(setting) != CONFIG_TYPE_GROUP)
		return config_error_at(reader, setting, "'%s' must be \"#RRGGBB\" or { r; g; b; }", name);
	if ((status = config_check_keys(reader, setting, name, keys)) ||
	    (status = config_get_int(reader, setting, "r", 0, 255, fallback.r, &out->r)) ||
	    (status = config_get_int(reader, setting, "g", 0, 255, fallback.g, &out->g)) ||
	    (status = config_get_int(reader, setting, "b", 0, 255, fallback.b, &out->b)))
		return status;
	return 0;
}

/* Whether a librdkafka property holds a secret (sasl.password,
 * ssl.key.password, sasl.oauthbearer.client.secret, ssl.key.pem, ...). */
int config_property_secret(const char *key, size_t length)
{
	/* sasl.oauthbearer.config may hold a client secret under any name. The
	 * marks are matched in any case, and short enough to catch a misspelt
	 * key ("sasl.pasword", "Sasl.Password"), which librdkafka refuses, but
	 * only after --dump-config would have shown its value. */
	static const char *const marks[] = { "pass", "pasw", "pwd", "secret", "ssl.key.pem",
		"jaas", "oauthbearer.config" };

	for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++) {
		size_t mark = strlen(marks[i]);

		for (size_t at = 0; at + mark <= length; at++)
			if (!strncasecmp(key + at, marks[i], mark))
				return 1;
	}
	return 0;
}

/* The password of the first URL with user:password@ in `value`: 1 with its
 * offset and length, else 0. */
static int config_url_password(const char *value, size_t *start, size_t *length)
{
	const char *scheme = strstr(value, "://"), *authority, *end, *at = NULL, *colon;

	if (!scheme)
		return 0;
	authority = scheme + 3;
	end = authority + strcspn(authority, "/?# \t,;");
	for (const char *p = authority; p < end; p++)
		if (*p == '@')
			at = p;   /* (the last: a password may hold an @) */
	if (!at || !(colon = memchr(authority, ':', (size_t)(at - authority))) || colon + 1 == at)
		return 0;
	*start = (size_t)(colon + 1 - value);
	*length = (size_t)(at - (colon + 1));
	return 1;
}

char *config_mask_url_password(const char *value)
{
	size_t start, length;
	char *masked;

	if (!config_url_password(value, &start, &length) ||
	    asprintf(&masked, "%.*s********%s", (int)start, value, value + start + length) < 0)
		return NULL;
	return masked;
}

/* A secret from the config, masked in every log line from now on (see
 * log_add_secret). In a value of words (sasl.oauthbearer.config's
 * "principal=... scope=...", which librdkafka's messages quote from one of
 * its words on), each "key=value" word whose key names a secret (a
 * clientSecret=...: the marks of config_property_secret), and its value, too;
 * the other words (a principal, a scope, a PEM's "-----BEGIN") are left to
 * be shown. */
static void config_register_secret(const char *value)
{
	log_add_secret(value, strlen(value));
	for (const char *word = value + strspn(value, " \t"); *word; word += strspn(word, " \t")) {
		size_t n = strcspn(word, " \t");
		const char *eq = memchr(word, '=', n);

		if (eq && eq > word && config_property_secret(word, (size_t)(eq - word))) {
			log_add_secret(word, n);
			log_add_secret(eq + 1, (size_t)(word + n - (eq + 1)));
		}
		word += n;
	}
}

/* Refuses a CA bundle anyone but this user and root may change: they could
 * add a CA of theirs and pose as WeChat or the Kafka cluster. */
static int config_check_ca(const struct config_reader *reader, const config_setting_t *setting,
	const char *what, const char *path)
{
	struct stat st;
	char why[PATH_MAX + 128], fix[PATH_MAX + 128];

	/* Nor may they replace it (libcurl reads it again at each connection):
	 * a directory on the way they may change lets them rename another file
	 * over it. */
	if ((stat(path, &st) == 0 &&
	     cli_others_may_change(&st, path, why, sizeof why, fix, sizeof fix)) ||
	    cli_others_may_replace(path, why, sizeof why, fix, sizeof fix))
		return config_error_at(reader, setting, "%s %s is %s: whoever that lets change it "
			"could add a CA of theirs and pose as the server; %s", what, path, why, fix);
	return 0;
}

/* Refuses a file that group or others can read, as ssh does with keys. */
static int config_check_private(const struct config_reader *reader, const config_setting_t *setting,
	const char *path, const char *what)
{
	struct stat st;
	char *full;
	int status;

	/* Not there, or not for this user to see: nothing to check now. Only
	 * the tools that read it need it (fetch the app secret, claim and
	 * resolve Redis's password), and they check it as they read it; a host
	 * that runs only report, or a monitoring user, has no business with it.
	 * Any other failure (a path through a file) is the config's error. */
	if (stat(path, &st) != 0) {
		if (errno == ENOENT || errno == EACCES)
			return 0;
		return config_error_at(reader, setting, "%s %s: %s", what, path, strerror(errno));
	}
	if (!(st.st_mode & (S_IRWXG | S_IRWXO)))
		return 0;
	/* A relative include is next to the config file, our directory while
	 * loading: the advice names it whole, to work from anywhere. */
	full = realpath(path, NULL);
	status = config_error_at(reader, setting,
		"%s %s is accessible by group or others (mode %04o): it holds a secret; "
		"run chmod 600 %s", what, path, (unsigned)(st.st_mode & 07777), full ? full : path);
	free(full);
	return status;
}

/* A kafka.properties entry naming a file librdkafka reads: absolute (the
 * tool opens it from wherever it runs, which the checks here must see too);
 * a CA bundle others cannot write; a private key or keytab readable by no
 * one else. "probe" (librdkafka finds the system's CAs) names no file. */
static int config_check_property_file(const struct config_reader *reader,
	const config_setting_t *item, const char *name, const char *text, const char *eq)
{
	enum { PLAIN, CA, PRIVATE };
	static const struct { const char *key; int kind; } files[] = {
		{ "ssl.ca.location", CA }, { "ssl.crl.location", PLAIN },
		{ "ssl.certificate.location", PLAIN }, { "ssl.key.location", PRIVATE },
		{ "ssl.keystore.location", PRIVATE }, { "sasl.kerberos.keytab", PRIVATE },
	};
	size_t length = (size_t)(eq - text);
	const char *path = eq + 1;

	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		if (strlen(files[i].key) != length || strncmp(text, files[i].key, length))
			continue;
		if (!*path || !strcmp(path, "probe"))
			return 0;
		if (*path != '/')
			return config_error_at(reader, item, "%s %s '%s' must be an "
				"absolute path: relative, it would name another file in each directory a "
				"tool runs from", name, files[i].key, path);
		if (files[i].kind == CA)
			return config_check_ca(reader, item, files[i].key, path);
		return files[i].kind == PRIVATE ?
			config_check_private(reader, item, path, files[i].key) : 0;
	}
	return 0;
}

static int config_load_database(const struct config_reader *reader, config_t *cf, struct config *config)
{
	static const char *const keys[] = { "path", "busy_timeout", NULL };
	const config_setting_t *group = config_lookup(cf, "database");
	int status;

	if (group && (status = config_check_keys(reader, group, "database", keys)))
		return status;
	if ((status = config_get_path(reader, group, "path", "/var/lib/qrpool/staging.db",
			&config->db_path)) ||
	    (status = config_get_duration(reader, group, "busy_timeout", 10000, &config->busy_timeout_ms)))
		return status;
	/* Runs at once (a fetch and a publish, two fetches) wait for each
	 * other's transactions: with no wait they would fail at once. */
	if (config->busy_timeout_ms < 100)
		return config_error_at(reader, config_setting_get_member(group, "busy_timeout"),
			"busy_timeout (%lld ms) must be at least 100ms: runs at once wait that long for "
			"each other's transactions", (long long)config->busy_timeout_ms);
	if (!*config->db_path)
		return config_error_at(reader, config_setting_get_member(group, "path"),
			"database path is empty");
	return 0;
}

static int config_load_token(const struct config_reader *reader, const config_setting_t *wechat,
	struct wechat_config *w)
{
	static const char *const keys[] = { "source", "command", "file", NULL };
	static const char *const names[] = { "stable", "classic", "command", "file" };
	const config_setting_t *group = config_setting_get_member(wechat, "token");
	char *source = NULL;
	int status, found = 0;

	if (group && (status = config_check_keys(reader, group, "wechat.token", keys)))
		return status;
	if ((status = config_get_string(reader, group, "source", "stable", &source)) ||
	    (status = config_get_string(reader, group, "command", NULL, &w->token_command)) ||
	    (status = config_get_path(reader, group, "file", NULL, &w->token_file))) {
		free(source);
		return status;
	}
	for (int i = 0; i < 4; i++)
		if (!strcmp(source, names[i])) {
			w->token_source = (enum token_source)i;
			found = 1;
		}
	free(source);
	if (!found)
		return config_error_at(reader, config_setting_get_member(group, "source"),
			"token source must be stable, classic, command or file");
	if (w->token_source == TOKEN_COMMAND && !w->token_command)
		return config_error_at(reader, group, "token source 'command' needs token.command");
	if (w->token_source == TOKEN_FILE && !w->token_file)
		return config_error_at(reader, group, "token source 'file' needs token.file");
	return 0;
}

/* Names that go into file names, Kafka topics and metric labels as they are
 * (a topic is Kafka's: these characters, at most 249 of them, not . or ..). */
static int config_name_ok(const char *name, size_t longest)
{
	if (!*name || strlen(name) > longest || !strcmp(name, ".") || !strcmp(name, ".."))
		return 0;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '-' || *p == '_' || *p == '.'))
			return 0;
	return 1;
}

/* The '@' that ends a URL's user:password@, or NULL if it has none. */
static const char *config_url_userinfo_end(const char *url)
{
	const char *authority = strstr(url, "://");

	if (!authority)
		return NULL;
	authority += 3;
	return memchr(authority, '@', strcspn(authority, "/?#"));
}

int config_url_host(const char *url, char *name, size_t size)
{
	const char *scheme = strstr(url, "://"), *authority = url, *at;
	size_t host;

	if (scheme && (size_t)(scheme - url) < strcspn(url, "/?#@"))
		authority = scheme + 3;
	host = strcspn(authority, "/?#");
	if ((at = memchr(authority, '@', host))) {   /* user:password@ goes before the host */
		host -= (size_t)(at + 1 - authority);
		authority = at + 1;
	}
	if (authority[0] == '[') {   /* [IPv6]:port */
		const char *end = memchr(authority, ']', host);

		if (!end)
			return -1;
		host = (size_t)(end - authority - 1);
		authority++;
	} else {
		host = strcspn(authority, ":/?#");
	}
	if (host >= size)
		return -1;
	memcpy(name, authority, host);
	name[host] = '\0';
	return 0;
}

int config_loopback_url(const char *url)
{
	struct in_addr address;
	char name[64];

	if (config_url_host(url, name, sizeof name))
		return 0;
	if (!strcmp(name, "::1") || !strcasecmp(name, "localhost"))
		return 1;
	return inet_pton(AF_INET, name, &address) == 1 && (ntohl(address.s_addr) >> 24) == 127;
}

static int config_load_wechat(const struct config_reader *reader, config_t *cf, struct config *config)
{
	static const char *const keys[] = { "appid", "secret", "secret_file", "api_base", "token",
		"quota_per_minute", "reserve_per_minute", "quota_minute", "concurrency", "connect_timeout",
		"timeout", "retries", "ca_bundle", NULL };
	const config_setting_t *group = config_lookup(cf, "wechat");
	struct wechat_config *w = &config->wechat;
	int status;

	config->has_wechat = group != NULL;
	if (group && (status = config_check_keys(reader, group, "wechat", keys)))
		return status;
	if ((status = config_get_string(reader, group, "appid", NULL, &w->appid)) ||
	    (status = config_get_string(reader, group, "secret", NULL, &w->secret)) ||
	    (status = config_get_path(reader, group, "secret_file", NULL, &w->secret_file)) ||
	    (status = config_get_string(reader, group, "api_base", "https://api.weixin.qq.com",
			&w->api_base)) ||
	    (status = config_get_int(reader, group, "quota_per_minute", 1, 10000000, 5000,
			&w->quota_per_minute)) ||
	    (status = config_get_int(reader, group, "reserve_per_minute", 0, 10000000, 500,
			&w->reserve_per_minute)) ||
	    (status = config_get_duration(reader, group, "quota_minute", 60000, &w->quota_minute_ms)) ||
	    (status = config_get_int(reader, group, "concurrency", 1, 1024, 32, &w->concurrency)) ||
	    (status = config_get_duration(reader, group, "connect_timeout", 5000,
			&w->connect_timeout_ms)) ||
	    (status = config_get_duration(reader, group, "timeout", 15000, &w->timeout_ms)) ||
	    (status = config_get_int(reader, group, "retries", 0, 100, 5, &w->retries)) ||
	    (status = config_get_path(reader, group, "ca_bundle", NULL, &w->ca_bundle)))
		return status;
	if (!group)
		return 0;
	/* An empty secret is none (a config shared with hosts that need none):
	 * a tool whose token source needs one then says so (78), rather than
	 * WeChat refusing it (69) after a call spent. */
	if (w->secret && !*w->secret) {
		free(w->secret);
		w->secret = NULL;
	}
	if (w->secret)
		config_register_secret(w->secret);
	if (w->ca_bundle && (status = config_check_ca(reader,
			config_setting_get_member(group, "ca_bundle"), "ca_bundle", w->ca_bundle)))
		return status;
	if (!w->appid)
		return config_error_at(reader, group, "the wechat section needs an appid (the "
			"mini-program's, wx and 16 hex digits)");
	if (!config_name_ok(w->appid, 100))
		return config_error_at(reader, config_setting_get_member(group, "appid"),
			"appid '%.40s%s' must be 1 to 100 letters, digits, '-', '_' or '.', not . or .. "
			"(a WeChat appid is wx and 16 hex digits)", w->appid, strlen(w->appid) > 40 ? "..." : "");
	if (w->reserve_per_minute >= w->quota_per_minute)
		return config_error_at(reader, config_setting_get_member(group, "reserve_per_minute"),
			"reserve_per_minute (%d) leaves nothing of quota_per_minute (%d)",
			w->reserve_per_minute, w->quota_per_minute);
	if (w->quota_minute_ms < 100 || w->quota_minute_ms > 3600000)
		return config_error_at(reader, config_setting_get_member(group, "quota_minute"),
			"quota_minute must be 100ms to 1h (60s against WeChat; shorter only for tests)");
	if (w->secret && w->secret_file)
		return config_error_at(reader, group, "give secret or secret_file, not both");
	if (w->secret && (status = config_check_private(reader, config_setting_get_member(group, "secret"),
			config_source(reader, config_setting_get_member(group, "secret")), "config file")))
		return status;
	if (w->secret_file && (status = config_check_private(reader,
			config_setting_get_member(group, "secret_file"), w->secret_file, "secret_file")))
		return status;
	if (strncmp(w->api_base, "https://", 8) && strncmp(w->api_base, "http://", 7))
		return config_error_at(reader, config_setting_get_member(group, "api_base"),
			"api_base must be an http:// or https:// URL");
	/* The calls' paths are appended to it: a query or a fragment would
	 * end up before them, and every call would miss (a 404 all night). */
	if (strpbrk(w->api_base, "?#"))
		return config_error_at(reader, config_setting_get_member(group, "api_base"),
			"api_base must not have a query or a fragment ('%c'): the calls' paths are "
			"appended to it", *strpbrk(w->api_base, "?#"));
	/* (the calls' URLs are made in buffers sized for it) */
	if (strlen(w->api_base) > CONFIG_API_BASE_MAX)
		return config_error_at(reader, config_setting_get_member(group, "api_base"),
			"api_base is longer than %d characters", CONFIG_API_BASE_MAX);
	/* A gateway's user:password@ is a secret as well (masked where shown). */
	if (config_url_userinfo_end(w->api_base) && (status = config_check_private(reader,
			config_setting_get_member(group, "api_base"), config_source(reader,
			config_setting_get_member(group, "api_base")), "config file")))
		return status;
	if (!config_loopback_url(w->api_base)) {
		char shown[128];
		const char *base = config_url_shown(w->api_base, shown, sizeof shown);

		if (!strncmp(w->api_base, "http://", 7))
			return config_error_at(reader, config_setting_get_member(group, "api_base"),
				"api_base '%.60s' is plain http to another host: the app secret and the "
				"access token would cross the network in clear; use https:// (http:// is for "
				"a local stand-in, on 127.0.0.1, localhost or [::1])", base);
		/* A test's short minute against the real WeChat (a config copied
		 * from the demo) would spend the appid's whole minute in its first
		 * seconds, and leave the online services nothing for the rest of it;
		 * a longer one that is not whole minutes is no slower rate: its
		 * windows (aligned on the epoch, as WeChat's minutes are) straddle
		 * WeChat's minutes, and two budgets can fall in one of them. */
		if (w->quota_minute_ms < 60000 || w->quota_minute_ms % 60000)
			return config_error_at(reader, config_setting_get_member(group, "quota_minute"),
				"quota_minute is %s WeChat's minute (60s) with api_base '%.60s': %s "
				"(another length is for a local stand-in, on 127.0.0.1, localhost or [::1])",
				w->quota_minute_ms < 60000 ? "shorter than" : "not a whole number of", base,
				w->quota_minute_ms < 60000 ? "each short window would spend the quota of a "
				"whole minute" : "its windows would straddle WeChat's minutes, and one of "
				"them could take two windows' calls (whole minutes, 2m, are a slower rate)");
	}
	/* The paths are appended with their '/': "host/" would make "host//cgi-bin", a 404. */
	for (size_t length = strlen(w->api_base); length > 8 && w->api_base[length - 1] == '/';)
		w->api_base[--length] = '\0';
	/* 0 would be libcurl's "no timeout": a hung call would hold the run past
	 * its deadline. Over an hour is no timeout either, in effect. */
	if (w->connect_timeout_ms < 100 || w->timeout_ms < 100 ||
	    w->connect_timeout_ms > 3600000 || w->timeout_ms > 3600000) {
		const char *name = w->timeout_ms < 100 || w->timeout_ms > 3600000 ? "timeout" :
			"connect_timeout";

		return config_error_at(reader, config_setting_get_member(group, name), "wechat.%s must "
			"be 100ms to 1h (0 is no timeout at all: a call that hangs would outlast the "
			"deadline)", name);
	}
	return config_load_token(reader, group, w);
}

/* A list of "key=value" strings for librdkafka (`name` says which, in
 * messages), each kept with its file and line; a secret's file must be
 * private, and a file named must pass config_check_property_file. */
static int config_load_properties(const struct config_reader *reader, const config_setting_t *list,
	const char *name, struct kafka_properties *properties)
{
	size_t url_password, url_password_length;
	int status, count;

	if (!list)
		return 0;
	if (!config_setting_is_aggregate(list) || config_setting_type(list) == CONFIG_TYPE_GROUP)
		return config_error_at(reader, list, "%s must be a list of \"key=value\" strings", name);
	count = config_setting_length(list);
	properties->items = calloc((size_t)count + 1, sizeof *properties->items);
	properties->places = calloc((size_t)count + 1, sizeof *properties->places);
	if (!properties->items || !properties->places)
		return config_error_at(reader, list, "out of memory");
	for (int i = 0; i < count; i++) {
		const config_setting_t *item = config_setting_get_elem(list, (unsigned)i);
		const char *text = config_setting_get_string(item);
		const char *eq = text ? strchr(text, '=') : NULL;

		if (!eq || eq == text)
			return config_error_at(reader, item, "%s entry %d must be \"key=value\"", name, i + 1);
		if (config_property_secret(text, (size_t)(eq - text)) &&
		    (config_register_secret(eq + 1), (status = config_check_private(reader, item,
				config_source(reader, item), "config file"))))
			return status;
		/* A URL's password in any property (an OAuth endpoint's): masked in
		 * the logs, as in the dumps (config_mask_url_password). */
		if (config_url_password(eq + 1, &url_password, &url_password_length))
			log_add_secret(eq + 1 + url_password, url_password_length);
		if ((status = config_check_property_file(reader, item, name, text, eq)))
			return status;
		if (asprintf(&properties->places[properties->count], "%s:%d",
				config_source(reader, item), config_setting_source_line(item)) < 0)
			return config_error_at(reader, item, "out of memory");
		properties->items[properties->count++] = strdup(text);
	}
	return 0;
}

static int config_load_kafka(const struct config_reader *reader, config_t *cf, struct config *config)
{
	static const char *const keys[] = { "brokers", "properties", "timeout", NULL };
	const config_setting_t *group = config_lookup(cf, "kafka");
	struct kafka_config *k = &config->kafka;
	int status;

	if (group && (status = config_check_keys(reader, group, "kafka", keys)))
		return status;
	if ((status = config_get_string(reader, group, "brokers", NULL, &k->brokers)) ||
	    (status = config_get_duration(reader, group, "timeout", 60000, &k->timeout_ms)))
		return status;
	/* librdkafka reads 0 as no timeout, and less than a second fails healthy
	 * brokers' deliveries and depth queries as "cannot be reached". */
	if (k->timeout_ms < 1000)
		return config_error_at(reader, config_setting_get_member(group, "timeout"),
			"kafka.timeout must be at least 1s (it is each delivery's deadline and the wait "
			"for the brokers' answers)");
	return config_load_properties(reader, group ? config_setting_get_member(group, "properties") :
		NULL, "kafka.properties", &k->properties);
}

/* Inline password and password_file follow the wechat secret's rules: one or
 * the other, and neither readable by group or others. */
static int config_check_password(const struct config_reader *reader, const config_setting_t *group,
	const struct redis_config *r)
{
	int status;

	if (r->password && r->password_file)
		return config_error_at(reader, group, "give password or password_file, not both");
	if (r->password && (status = config_check_private(reader,
			config_setting_get_member(group, "password"),
			config_source(reader, config_setting_get_member(group, "password")), "config file")))
		return status;
	if (r->password_file && (status = config_check_private(reader,
			config_setting_get_member(group, "password_file"), r->password_file, "password_file")))
		return status;
	return 0;
}

static int config_load_redis(const struct config_reader *reader, config_t *cf, struct config *config)
{
	static const char *const keys[] = { "host", "port", "unix_socket", "database", "prefix", "ttl",
		"connect_timeout", "timeout", "password", "password_file", "plaintext", NULL };
	const config_setting_t *group = config_lookup(cf, "redis");
	struct redis_config *r = &config->redis;
	int status;

	config->has_redis = group != NULL;
	if (!group)
		return 0;
	if ((status = config_check_keys(reader, group, "redis", keys)) ||
	    (status = config_get_string(reader, group, "host", "127.0.0.1", &r->host)) ||
	    (status = config_get_int(reader, group, "port", 1, 65535, 6379, &r->port)) ||
	    (status = config_get_path(reader, group, "unix_socket", NULL, &r->unix_socket)) ||
	    (status = config_get_int(reader, group, "database", 0, 1000000, 0, &r->database)) ||
	    (status = config_get_string(reader, group, "prefix", "qrpool:rid:", &r->prefix)) ||
	    (status = config_get_duration(reader, group, "ttl", 30LL * 86400 * 1000, &r->ttl_ms)) ||
	    (status = config_get_duration(reader, group, "connect_timeout", 1000,
			&r->connect_timeout_ms)) ||
	    (status = config_get_duration(reader, group, "timeout", 1000, &r->timeout_ms)) ||
	    (status = config_get_string(reader, group, "password", NULL, &r->password)) ||
	    (status = config_get_path(reader, group, "password_file", NULL, &r->password_file)) ||
	    (status = config_get_bool(reader, group, "plaintext", 0, &r->plaintext)))
		return status;
	if (r->password && !*r->password) {   /* none: no AUTH, as with none given */
		free(r->password);
		r->password = NULL;
	}
	if (r->password)
		config_register_secret(r->password);
	if (r->unix_socket && (config_setting_get_member(group, "host") ||
			config_setting_get_member(group, "port")))
		return config_error_at(reader, group, "give host and port, or unix_socket, not both");
	/* hiredis takes a bare name or address: "[::1]" (a URL's form) or
	 * "host:6380" resolve to nothing, and the cache would be off all along. */
	if (!r->unix_socket && (r->host[0] == '[' || (strchr(r->host, ':') &&
			strchr(r->host, ':') == strrchr(r->host, ':'))))
		return config_error_at(reader, config_setting_get_member(group, "host"),
			"redis host '%.60s': %s", r->host, r->host[0] == '[' ?
			"an IPv6 address goes without brackets (host = \"::1\")" :
			"the port goes apart (port = 6380), the host alone in host");
	/* Redis expires keys in whole seconds; a TTL under one would be no cache. */
	if (r->ttl_ms < 1000)
		return config_error_at(reader, config_setting_get_member(group, "ttl"),
			"redis ttl must be at least 1s");
	/* A cache: a Redis that hangs must cost each binding or lookup little,
	 * the database answering instead. */
	if (r->connect_timeout_ms <= 0 || r->timeout_ms <= 0 ||
	    r->connect_timeout_ms > 60000 || r->timeout_ms > 60000)
		return config_error_at(reader, group, "redis timeouts must be above zero and at most 1m "
			"(a cache: the database answers when Redis does not)");
	/* hiredis 0.14 (Debian 12's) has no TLS: AUTH would carry the password
	 * in clear, as plain http would the app secret (refused likewise). */
	if ((r->password || r->password_file) && !r->unix_socket && !r->plaintext &&
	    strcmp(r->host, "::1") && !config_loopback_url(r->host))
		return config_error_at(reader, config_setting_get_member(group, "host") ?
			config_setting_get_member(group, "host") : group,
			"redis host '%.60s' is another machine, and the Redis client here has no TLS: the "
			"password would cross the network in clear; reach it through a TLS tunnel on this "
			"machine (stunnel, spiped: host = \"127.0.0.1\"), or set plaintext = true in the "
			"redis section if the network between is private", r->host);
	return config_check_password(reader, group, r);
}


static int config_load_wechat_pool(const struct config_reader *reader, const config_setting_t *group,
	struct pool_config *pool)
{
	static const struct rgb black = { 0, 0, 0 };
	int status;

	if ((status = config_get_string(reader, group, "page", NULL, &pool->page)) ||
	    (status = config_get_int(reader, group, "width", 280, 1280, 430, &pool->width)) ||
	    (status = config_get_string(reader, group, "env_version", "release", &pool->env_version)) ||
	    (status = config_get_bool(reader, group, "check_path", 1, &pool->check_path)) ||
	    (status = config_get_bool(reader, group, "is_hyaline", 0, &pool->is_hyaline)) ||
	    (status = config_get_bool(reader, group, "auto_color", 0, &pool->auto_color)) ||
	    (status = config_get_color(reader, group, "line_color", black, &pool->line_color)))
		return status;
	if (!pool->page)
		return config_error_at(reader, group, "pool '%s' (source wechat) needs a page", pool->name);
	if (!*pool->page)
		return config_error_at(reader, config_setting_get_member(group, "page"),
			"pool '%s': page is empty", pool->name);
	if (!config_printable(pool->page))
		return config_error_at(reader, config_setting_get_member(group, "page"),
			"pool '%s': page holds a space or a byte that is not printable ASCII (a mini-program "
			"page is a path such as pages/r/index)", pool->name);
	/* A path needs neither: escaped in the request's JSON, they would make
	 * it longer than the limit below counts. */
	if (strpbrk(pool->page, "\"\\"))
		return config_error_at(reader, config_setting_get_member(group, "page"),
			"pool '%s': page holds a '\"' or a '\\' (a mini-program page is a path such as "
			"pages/r/index)", pool->name);
	/* fetch's request body (2 KB, with the scene and the other fields) holds
	 * it: refused here, so plan mints no code for a pool fetch would refuse. */
	if (strlen(pool->page) > CONFIG_PAGE_MAX)
		return config_error_at(reader, config_setting_get_member(group, "page"),
			"pool '%s': page is too long (%zu bytes, at most %d: a mini-program page is a path "
			"such as pages/r/index)", pool->name, strlen(pool->page), CONFIG_PAGE_MAX);
	if (pool->page[0] == '/' || strchr(pool->page, '?'))
		return config_error_at(reader, config_setting_get_member(group, "page"),
			"page '%s' must not start with '/' or carry a query string (WeChat answers 41030)",
			pool->page);
	if (strcmp(pool->env_version, "release") && strcmp(pool->env_version, "trial") &&
	    strcmp(pool->env_version, "develop"))
		return config_error_at(reader, config_setting_get_member(group, "env_version"),
			"env_version must be release, trial or develop");
	return 0;
}

/* Why no URL-prefix rule could route the codes of `prefix`, or scanners
 * would read it otherwise than written, or NULL (WECHAT.md: protocol and
 * domain exact, sub-paths only under a rule ending in '/', query parameters
 * prefix-matched; the base62 id appended as it is). The rule itself may be
 * the prefix or a shorter one: `.../q/c-` is routed by `.../q/`. */
static const char *config_url_prefix_problem(const char *prefix)
{
	const char *host = !strncmp(prefix, "https://", 8) ? prefix + 8 :
		!strncmp(prefix, "http://", 7) ? prefix + 7 : NULL;
	const char *port;
	size_t authority;

	if (!host || !*host || strchr("/:?", *host))
		return "must be an http:// or https:// URL with a host";
	for (const char *p = prefix; *p; p++) {
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7F)
			return "holds a space, a control character or a non-ASCII byte: a code's URL is "
				"printable ASCII (a path percent-encoded, %E4%BE%8B; a host in punycode, "
				"xn--...), or scanners read it differently";
		if (strchr("\"\\<>{}|^`", *p))
			return "holds a character a URL must percent-encode";
		if (*p == '#')
			return "holds a '#': the request id would be a fragment, which no rule matches";
		if (*p == '%' && !(isxdigit((unsigned char)p[1]) && isxdigit((unsigned char)p[2])))
			return "holds a '%' not followed by two hex digits";
	}
	authority = strcspn(host, "/?");
	if (memchr(host, '@', authority))
		return "carries a user:password@: it would be printed on every code, and no rule holds one";
	for (const char *p = host; p < host + authority && *p != ':'; p++)
		if (*p >= 'A' && *p <= 'Z')
			return "has upper-case letters in its host: write it in lower case, as registered "
				"(the domain must match exactly)";
	if (host[strcspn(host, ":/?") - 1] == '.')
		return "has a host ending in '.': write it as registered (the domain must match exactly)";
	if (memchr(host, '%', authority))
		return "has a percent-escape in its host: write the host as registered (the domain "
			"must match exactly)";
	if ((port = memchr(host, ':', authority))) {
		size_t digits = (size_t)(host + authority - port - 1);
		const char *standard = prefix[4] == 's' ? "443" : "80";

		if (!digits || strspn(port + 1, "0123456789") != digits)
			return "has a port that is not a number";
		if (digits == strlen(standard) && !strncmp(port + 1, standard, digits))
			return "names the scheme's default port: scanners drop it, and the scanned URL "
				"would not start with the prefix (leave the port out)";
	}
	if (host[authority] != '/')
		return "has no path: the request id would join the host name (end it with '/', as "
			"https://m.example.com/q/)";
	/* "/./" and "/../" (or a path ending in "/." or "/..") are resolved by URL
	 * parsers: the scanned URL would not start with the prefix. */
	for (const char *p = host + authority; *p && *p != '?'; p++)
		if (*p == '/' && p[1] == '.' && (p[2] == '/' || !p[2] || p[2] == '?' ||
				(p[2] == '.' && (p[3] == '/' || !p[3] || p[3] == '?'))))
			return "has a '.' or '..' path segment, which URL parsers resolve away: write the "
				"path it stands for";
	return NULL;
}

/* WCAG's relative luminance of an sRGB colour: 0 (black) to 1 (white). */
static double config_luminance(struct rgb color)
{
	const int channels[3] = { color.r, color.g, color.b };
	const double weights[3] = { 0.2126, 0.7152, 0.0722 };
	double sum = 0;

	for (int i = 0; i < 3; i++) {
		double v = channels[i] / 255.0;

		sum += weights[i] * (v <= 0.03928 ? v / 12.92 : pow((v + 0.055) / 1.055, 2.4));
	}
	return sum;
}

static int config_load_link_pool(const struct config_reader *reader, const config_setting_t *group,
	struct pool_config *pool)
{
	static const struct rgb black = { 0, 0, 0 }, white = { 255, 255, 255 };
	const char *problem;
	char *level = NULL;
	double contrast;
	int status;

	if ((status = config_get_string(reader, group, "url_prefix", NULL, &pool->url_prefix)) ||
	    (status = config_get_string(reader, group, "ec_level", "M", &level)) ||
	    (status = config_get_int(reader, group, "module_px", 2, 64, 4, &pool->module_px)) ||
	    (status = config_get_int(reader, group, "margin", 0, 64, 4, &pool->margin)) ||
	    (status = config_get_color(reader, group, "foreground", black, &pool->foreground)) ||
	    (status = config_get_color(reader, group, "background", white, &pool->background)) ||
	    (status = config_get_int(reader, group, "min_version", 0, 40, 0, &pool->min_version)) ||
	    (status = config_get_int(reader, group, "png_compression", 0, 9, 1, &pool->png_compression))) {
		free(level);
		return status;
	}
	if (strlen(level) != 1 || !strchr("LMQH", level[0])) {
		free(level);
		return config_error_at(reader, config_setting_get_member(group, "ec_level"),
			"ec_level must be L, M, Q or H");
	}
	pool->ec_level = level[0];
	free(level);
	/* A scanner needs contrast, dark modules on a light ground: many read
	 * nothing else, and a faint code does not survive print. */
	contrast = (config_luminance(pool->background) + 0.05) /
		(config_luminance(pool->foreground) + 0.05);
	if (contrast < CONFIG_CONTRAST_MIN)
		return config_error_at(reader, config_setting_get_member(group, "foreground") ?
			config_setting_get_member(group, "foreground") :
			config_setting_get_member(group, "background"),
			"pool '%s': foreground on background has a contrast of %.2f:1%s; at least %.0f:1, the "
			"foreground the darker, or scanners cannot read its codes", pool->name,
			floor((contrast < 1 ? 1 / contrast : contrast) * 100) / 100,   /* 1.999: not 2.00 */
			contrast < 1 ? " the wrong way round" : "", CONFIG_CONTRAST_MIN);
	if (!pool->url_prefix)
		return config_error_at(reader, group, "pool '%s' (source link) needs a url_prefix",
			pool->name);
	if (asprintf(&pool->url_prefix_place, "%s:%d",
			config_source(reader, config_setting_get_member(group, "url_prefix")),
			config_setting_source_line(config_setting_get_member(group, "url_prefix"))) < 0) {
		pool->url_prefix_place = NULL;
		return config_error_at(reader, group, "out of memory");
	}
	if ((problem = config_url_prefix_problem(pool->url_prefix))) {
		char shown[512];   /* (its password, if any, not shown) */

		return config_error_at(reader, config_setting_get_member(group, "url_prefix"),
			"pool '%s': url_prefix '%s' %s", pool->name,
			config_url_shown(pool->url_prefix, shown, sizeof shown), problem);
	}
	return 0;
}

/* The settings of one source's pools. */
static const char *const config_wechat_pool_keys[] = { "page", "width", "env_version", "check_path",
	"is_hyaline", "auto_color", "line_color", NULL };
static const char *const config_link_pool_keys[] = { "url_prefix", "ec_level", "module_px", "margin",
	"foreground", "background", "min_version", "png_compression", NULL };

/* A setting of the other source's pools would be read by nothing: a pool
 * copied from one of the other kind, or a source changed, silently rendering
 * with defaults. */
static int config_check_source_keys(const struct config_reader *reader,
	const config_setting_t *group, const struct pool_config *pool)
{
	const char *const *other = pool->source == POOL_WECHAT ? config_link_pool_keys :
		config_wechat_pool_keys;

	for (const char *const *k = other; *k; k++)
		if (config_setting_get_member(group, *k))
			return config_error_at(reader, config_setting_get_member(group, *k),
				"pool '%s' (source %s): '%s' is a setting of %s pools, which this one is "
				"not", pool->name, pool->source == POOL_WECHAT ? "wechat" : "link", *k,
				pool->source == POOL_WECHAT ? "link" : "wechat");
	return 0;
}

static int config_load_pool(const struct config_reader *reader, const config_setting_t *group,
	struct pool_config *pool)
{
	static const char *const keys[] = { "name", "source", "topic", "group", "cover_hours", "safety",
		"drop_image_after_publish", "topic_properties", NULL };
	const char *const *const lists[] = { keys, config_wechat_pool_keys, config_link_pool_keys };
	char *source = NULL, section[128] = "a pool";
	const char *name;
	int status;

	pool->line = config_setting_source_line(group);
	if (config_setting_type(group) != CONFIG_TYPE_GROUP)
		return config_error_at(reader, group, "each entry of pools must be a group { ... }");
	if (config_setting_lookup_string(group, "name", &name) == CONFIG_TRUE)
		snprintf(section, sizeof section, "pool '%.100s'", name);
	if ((status = config_check_keys_in(reader, group, section, lists, 3)) ||
	    (status = config_get_string(reader, group, "name", NULL, &pool->name)) ||
	    (status = config_get_string(reader, group, "source", NULL, &source)))
		goto out;
	status = EXIT_CONFIG;
	if (!pool->name || !config_name_ok(pool->name, 100)) {
		config_error_at(reader, group, "a pool needs a name of 1 to 100 letters, digits, '-', "
			"'_' or '.', and not . or ..");
		goto out;
	}
	if (!source || (strcmp(source, "wechat") && strcmp(source, "link"))) {
		config_error_at(reader, group, "pool '%s' needs source = \"wechat\" or \"link\"", pool->name);
		goto out;
	}
	pool->source = !strcmp(source, "wechat") ? POOL_WECHAT : POOL_LINK;
	if ((status = config_check_source_keys(reader, group, pool)) ||
	    (status = config_get_string(reader, group, "topic", NULL, &pool->topic)) ||
	    (status = config_get_string(reader, group, "group", NULL, &pool->group)) ||
	    (status = config_get_double(reader, group, "cover_hours", 1, 24 * 366, 24, &pool->cover_hours)) ||
	    (status = config_get_double(reader, group, "safety", 0, 100, 0.2, &pool->safety)) ||
	    (status = config_get_bool(reader, group, "drop_image_after_publish", 1,
			&pool->drop_image_after_publish)) ||
	    (status = config_load_properties(reader, config_setting_get_member(group,
			"topic_properties"), "topic_properties", &pool->topic_properties)))
		goto out;
	if (pool->topic && !config_name_ok(pool->topic, 249)) {
		status = config_error_at(reader, config_setting_get_member(group, "topic"), "pool '%s': "
			"topic '%.100s%s' is no Kafka topic name: 1 to 249 letters, digits, '-', '_' or '.', "
			"and not . or ..", pool->name, pool->topic, strlen(pool->topic) > 100 ? "..." : "");
		goto out;
	}
	if (pool->group && !*pool->group) {
		status = config_error_at(reader, config_setting_get_member(group, "group"), "pool '%s': "
			"group is empty (leave it out for qrpool-online.%s)", pool->name, pool->name);
		goto out;
	}
	if (!pool->topic && asprintf(&pool->topic, "qrpool.%s", pool->name) < 0)
		pool->topic = NULL;
	if (!pool->group && asprintf(&pool->group, "qrpool-online.%s", pool->name) < 0)
		pool->group = NULL;
	status = pool->source == POOL_WECHAT ? config_load_wechat_pool(reader, group, pool) :
		config_load_link_pool(reader, group, pool);
out:
	free(source);
	return status;
}

static int config_load_pools(const struct config_reader *reader, config_t *cf, struct config *config)
{
	const config_setting_t *list = config_lookup(cf, "pools");
	int status, count;

	if (!list)
		return config_error_at(reader, NULL, "no pools defined (pools = ( { name = ...; } );)");
	if (config_setting_type(list) != CONFIG_TYPE_LIST)
		return config_error_at(reader, list, "pools must be a list: pools = ( { ... }, { ... } );");
	count = config_setting_length(list);
	if (count == 0)
		return config_error_at(reader, list, "pools is empty: define at least one pool "
			"(pools = ( { name = ...; } );)");
	config->pools = calloc((size_t)count + 1, sizeof *config->pools);
	if (!config->pools)
		return config_error_at(reader, list, "out of memory");
	for (int i = 0; i < count; i++) {
		const config_setting_t *group = config_setting_get_elem(list, (unsigned)i);
		struct pool_config *pool = &config->pools[i];

		config->pool_count++;
		if ((status = config_load_pool(reader, group, pool)))
			return status;
		for (int j = 0; j < i; j++) {
			if (!strcmp(config->pools[j].name, pool->name))
				return config_error_at(reader, group, "pool '%s' is defined twice (first at line %d)",
					pool->name, config->pools[j].line);
			/* One topic is one pool: its depth, its consumers' codes. */
			if (!strcmp(config->pools[j].topic, pool->topic))
				return config_error_at(reader, group, "pools '%s' and '%s' share topic %s: "
					"each pool needs a topic of its own", config->pools[j].name, pool->name,
					pool->topic);
		}
		if (pool->source == POOL_WECHAT && !config->has_wechat)
			return config_error_at(reader, group, "pool '%s' has source wechat but there is no "
				"wechat section", pool->name);
	}
	return 0;
}

/* Why libconfig could not read the file (its errno is not kept). */
static const char *config_unreadable_why(const char *path)
{
	struct stat st;
	FILE *file;

	if (stat(path, &st) != 0)
		return strerror(errno);
	if (S_ISDIR(st.st_mode))
		return "it is a directory";
	if (!(file = fopen(path, "r")))
		return strerror(errno);
	fclose(file);
	return "read error";
}

/* The `i`th file read: libconfig lists the config file first, then each
 * file it @includes; NULL past the last. */
static const char *config_file_read(const config_t *cf, const char *read_path, unsigned i,
	char *shown, size_t size)
{
	if (!cf->num_filenames)
		return i ? NULL : read_path;
	return i < cf->num_filenames ? config_full_name(read_path, cf->filenames[i], shown, size) : NULL;
}

/* The config file and each file it @includes: none may be changed by anyone
 * but this user and root, or they could run commands as this user
 * (token.command) or send the app secret where they like (api_base). */
static int config_writable_said(const char *file, const char *why, const char *fix)
{
	log_error("%s: the config file is %s: whoever that lets change it could make the tools run "
		"a command of theirs (token.command) or send the app secret elsewhere (api_base); %s",
		file, why, fix);
	return EXIT_CONFIG;
}

/* The config's path as given, from where it was given (before the loader
 * moves to its directory): it is read as resolved, but a link of another
 * user's on the way chose which file. */
static int config_check_given(const char *path)
{
	char why[PATH_MAX + 128], fix[PATH_MAX + 128];

	return cli_others_may_replace(path, why, sizeof why, fix, sizeof fix) ?
		config_writable_said(path, why, fix) : 0;
}

static int config_check_writers(const config_t *cf, const char *read_path)
{
	char shown[PATH_MAX], why[PATH_MAX + 128], fix[PATH_MAX + 128];
	const char *file;

	for (unsigned i = 0; (file = config_file_read(cf, read_path, i, shown, sizeof shown)); i++) {
		struct stat st;

		/* (Its directories too: a rename there swaps in another file between
		 * libconfig's read and this look at the one in its place.) */
		if ((stat(file, &st) == 0 &&
		     cli_others_may_change(&st, file, why, sizeof why, fix, sizeof fix)) ||
		    cli_others_may_replace(file, why, sizeof why, fix, sizeof fix))
			return config_writable_said(file, why, fix);
	}
	return 0;
}

/* libconfig 1.5 reads a whole number written without L into 32 bits, cut
 * without a word: busy_timeout = 4294967301 would be 5 s, quota_per_minute =
 * 4294972296 would be 5000, and no setting's range check could tell. So the
 * files' text is looked at for such a number before any setting is read.
 * (Zeroed once read: the text may hold a secret inline.) */
static int config_check_wide_numbers(const config_t *cf, const char *read_path)
{
	char shown[PATH_MAX], number[48];
	const char *file;

	for (unsigned i = 0; (file = config_file_read(cf, read_path, i, shown, sizeof shown)); i++) {
		size_t capacity = 0, length = 0;
		char *text = NULL, *grown;
		ssize_t got = 0;
		int fd, line, read_errno;

		if ((fd = open(file, O_RDONLY | O_CLOEXEC)) < 0) {
			log_error("%s: cannot read the config file: %s", file, strerror(errno));
			return EXIT_CONFIG;
		}
		while (got >= 0 && length == capacity) {
			if (!(grown = malloc(capacity * 2 + 4096))) {
				got = -1;
				errno = ENOMEM;
				break;
			}
			if (text) {
				memcpy(grown, text, length);
				explicit_bzero(text, length);
				free(text);
			}
			text = grown;
			capacity = capacity * 2 + 4096;
			if ((got = config_read_secret_fd(fd, text + length, capacity - length)) > 0)
				length += (size_t)got;
		}
		read_errno = got < 0 ? errno : 0;
		close(fd);
		line = got < 0 ? 0 : parse_config_wide_number(text, length, number, sizeof number);
		if (text)
			explicit_bzero(text, capacity);
		free(text);
		if (got < 0) {
			log_error("%s: cannot read the config file: %s", file, strerror(read_errno));
			return EXIT_CONFIG;
		}
		if (line) {
			log_error("%s:%d: the number %s does not fit in 32 bits, and libconfig would read "
				"it cut to its low 32 bits without a word: write it %sL if it is meant (a "
				"64-bit number, then checked against its setting's range)", file, line,
				number, number);
			return EXIT_CONFIG;
		}
	}
	return 0;
}

/* Loads the file `path` names, read as `read_path`. */
static int config_load_file(struct config *config, const char *path, const char *read_path)
{
	char shown[PATH_MAX], error_file[PATH_MAX];
	struct config_reader reader = { .file = read_path, .shown = shown };
	config_t cf;
	int status;

	/* (read_path is absolute when it could be: as libconfig names the settings'
	 * file, and as every message names the config, its own file:line ones and
	 * the rest alike: whole, to act on from anywhere) */
	config->path = strdup(read_path);
	config_init(&cf);
	if (!config_read_file(&cf, read_path)) {
		if (config_error_type(&cf) == CONFIG_ERR_FILE_IO)
			log_error("%s: cannot read the config file: %s", path,
				config_unreadable_why(read_path));
		else
			log_error("%s:%d: %s", config_error_file(&cf) ? config_full_name(read_path,
				config_error_file(&cf), error_file, sizeof error_file) : path,
				config_error_line(&cf), config_error_text(&cf));
		config_destroy(&cf);
		config_free(config);
		return EXIT_CONFIG;
	}
	if (!(status = config_check_writers(&cf, read_path)) &&
	    !(status = config_check_wide_numbers(&cf, read_path))) {
		static const char *const keys[] = { "database", "wechat", "kafka", "redis", "pools",
			NULL };
		status = config_check_keys(&reader, config_root_setting(&cf), "the file", keys);
	}
	if (!status && !(status = config_load_database(&reader, &cf, config)) &&
	    !(status = config_load_wechat(&reader, &cf, config)) &&
	    !(status = config_load_kafka(&reader, &cf, config)) &&
	    !(status = config_load_redis(&reader, &cf, config)))
		status = config_load_pools(&reader, &cf, config);
	config_destroy(&cf);
	if (status)
		config_free(config);   /* a failed load leaves nothing to free */
	return status;
}

/* Loaded from the file's own directory, so that a relative @include is the
 * file next to it, from cron as by hand (libconfig 1.5 takes it from the
 * working directory, and would put its include_dir before absolute ones). */
int config_load(struct config *config, const char *path)
{
	const char *core_dumps = getenv("QRPOOL_CORE_DUMPS");
	char *full, *dir;
	int here, moved, status;

	/* The config brings the secrets into memory (the app secret, Redis's
	 * and SASL's passwords; fetch adds the access token): no core file
	 * holds them, and no other process of the user reads them through
	 * /proc or ptrace, unless asked for to debug a crash. */
	if (!core_dumps || strcmp(core_dumps, "1"))
		prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	memset(config, 0, sizeof *config);
	if (!path)
		path = getenv("QRPOOL_CONFIG");
	if (!path || !*path)
		path = CONFIG_DEFAULT_PATH;
	if ((status = config_check_given(path)))
		return status;
	full = realpath(path, NULL);
	dir = full ? strdup(full) : NULL;
	here = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	moved = here >= 0 && dir && chdir(dirname(dir)) == 0;
	status = config_load_file(config, path, moved ? full : path);
	if (moved && fchdir(here) != 0) {
		log_error("cannot return to the working directory: %s", strerror(errno));
		if (!status)
			config_free(config);
		status = EXIT_IO;
	}
	if (here >= 0)
		close(here);
	free(dir);
	free(full);
	return status;
}

static void config_free_properties(struct kafka_properties *properties)
{
	for (size_t i = 0; i < properties->count; i++) {
		free(properties->items[i]);
		if (properties->places)
			free(properties->places[i]);
	}
	free(properties->items);
	free(properties->places);
}

static void config_free_pool(struct pool_config *pool)
{
	config_free_properties(&pool->topic_properties);
	free(pool->name);
	free(pool->topic);
	free(pool->group);
	free(pool->page);
	free(pool->env_version);
	free(pool->url_prefix);
	free(pool->url_prefix_place);
}

static void config_free_redis(struct redis_config *r)
{
	if (r->password)
		explicit_bzero(r->password, strlen(r->password));
	free(r->password);
	free(r->password_file);
	free(r->host);
	free(r->unix_socket);
	free(r->prefix);
}

void config_free(struct config *config)
{
	struct wechat_config *w = &config->wechat;

	for (size_t i = 0; i < config->pool_count; i++)
		config_free_pool(&config->pools[i]);
	free(config->pools);
	config_free_properties(&config->kafka.properties);
	free(config->kafka.brokers);
	if (w->secret)
		explicit_bzero(w->secret, strlen(w->secret));
	free(w->secret);
	free(w->secret_file);
	free(w->appid);
	free(w->api_base);
	free(w->token_command);
	free(w->token_file);
	free(w->ca_bundle);
	config_free_redis(&config->redis);
	free(config->db_path);
	free(config->path);
	memset(config, 0, sizeof *config);
}

const struct pool_config *config_pool(const struct config *config, const char *name)
{
	for (size_t i = 0; i < config->pool_count; i++)
		if (!strcmp(config->pools[i].name, name))
			return &config->pools[i];
	return NULL;
}

void config_pool_names(const struct config *config, char *buf, size_t size)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < config->pool_count && used < size; i++)
		used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? ", " : "",
			config->pools[i].name);
}

int config_apply_reserve(struct config *config, int64_t reserve)
{
	if (reserve < 0)
		return 0;
	if (reserve >= config->wechat.quota_per_minute)
		return cli_usage_error("--reserve %lld leaves nothing of quota_per_minute (%d)",
			(long long)reserve, config->wechat.quota_per_minute);
	config->wechat.reserve_per_minute = (int)reserve;
	return 0;
}

int config_wechat_budget(const struct config *config)
{
	return config->wechat.quota_per_minute - config->wechat.reserve_per_minute;
}

int config_open_file(const char *path)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC), flags, err;
	struct stat st;

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode)) {
		close(fd);
		return -2;
	}
	if ((flags = fcntl(fd, F_GETFL)) >= 0 && fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == 0)
		return fd;
	err = errno;
	close(fd);
	errno = err;
	return -1;
}

ssize_t config_read_secret_fd(int fd, char *buf, size_t size)
{
	size_t length = 0;
	ssize_t got;

	while (length < size && ((got = read(fd, buf + length, size - length)) > 0 ||
			(got < 0 && errno == EINTR)))
		length += got > 0 ? (size_t)got : 0;
	return length < size && got < 0 ? -1 : (ssize_t)length;
}

/* A secret given inline (`inline_value`) or in a file (`file`), trailing
 * newline and blanks dropped. `name` is the inline setting, for messages.
 * Read without stdio, whose buffer would keep a copy of it once freed. */
static int config_read_secret_text(const struct config *config, const char *name,
	const char *inline_value, const char *file_path, char *buf, size_t size)
{
	const char *problem = NULL;
	struct stat st;
	ssize_t length, got = 0;
	int fd, read_errno;

	if (inline_value) {
		if (strlen(inline_value) >= size) {
			log_error("%s: %s is too long", config->path, name);
			return EXIT_CONFIG;
		}
		strcpy(buf, inline_value);
		return 0;
	}
	if ((fd = config_open_file(file_path)) < 0) {
		log_error("%s: cannot read %s_file %s: %s", config->path, name, file_path,
			fd == -2 ? CONFIG_NOT_A_FILE : strerror(errno));
		return EXIT_CONFIG;
	}
	/* Checked again as read: the file may have come (or changed) since the
	 * config was loaded, hours ago for a night's fetch. */
	if (fstat(fd, &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO))) {
		close(fd);
		log_error("%s: %s_file %s is accessible by group or others (mode %04o): it holds a "
			"secret; run chmod 600 %s", config->path, name, file_path,
			(unsigned)(st.st_mode & 07777), file_path);
		return EXIT_CONFIG;
	}
	length = config_read_secret_fd(fd, buf, size);
	/* A full buffer is too long, unless only its last byte is over and that
	 * is the line's end (a secret of size - 1 and its newline). */
	if (length == (ssize_t)size && buf[size - 1] && strchr("\n\r ", buf[size - 1])) {
		char more;

		got = config_read_secret_fd(fd, &more, 1);
		length -= got == 0;
	}
	read_errno = length < 0 || got < 0 ? errno : 0;
	close(fd);
	if (read_errno)
		problem = strerror(read_errno);
	else if (length == (ssize_t)size)
		problem = "is too long";
	else if (memchr(buf, '\0', (size_t)length))
		problem = "holds a NUL byte";
	if (!problem) {
		buf[length] = '\0';
		while (length && (buf[length - 1] == '\n' || buf[length - 1] == '\r' ||
				buf[length - 1] == ' '))
			buf[--length] = '\0';
		if (!length)
			problem = "is empty";
	}
	if (problem) {
		explicit_bzero(buf, size);
		log_error("%s: %s_file %s %s%s", config->path, name, file_path,
			read_errno ? "cannot be read: " : "", problem);
		return EXIT_CONFIG;
	}
	config_register_secret(buf);
	return 0;
}

int config_read_secret(const struct config *config, char *buf, size_t size)
{
	const struct wechat_config *w = &config->wechat;
	int status;

	if (!w->secret && !w->secret_file) {
		log_error("%s: wechat needs secret or secret_file for this token source", config->path);
		return EXIT_CONFIG;
	}
	if ((status = config_read_secret_text(config, "wechat.secret", w->secret, w->secret_file, buf,
			size)))
		return status;
	if (!config_printable(buf)) {
		/* Said without the secret: where, and what to look for. */
		explicit_bzero(buf, size);
		log_error("%s: the app secret (%s) holds a space, a line break or a byte that is not "
			"printable ASCII: a WeChat AppSecret is 32 hexadecimal characters (was the file "
			"saved in another encoding, or with a second line?)", config->path,
			w->secret_file ? w->secret_file : "wechat.secret");
		return EXIT_CONFIG;
	}
	return 0;
}

int config_read_redis_password(const struct config *config, char *buf, size_t size)
{
	const struct redis_config *r = &config->redis;

	buf[0] = '\0';
	if (!r->password && !r->password_file)
		return 0;
	return config_read_secret_text(config, "redis.password", r->password, r->password_file, buf,
		size);
}

const char *config_source_name(enum pool_source source)
{
	return source == POOL_WECHAT ? "wechat" : "link";
}

const char *config_token_source_name(enum token_source source)
{
	static const char *const names[] = { "stable", "classic", "command", "file" };
	return names[source];
}

const char *config_url_shown(const char *url, char *buffer, size_t size)
{
	const char *at = config_url_userinfo_end(url), *authority;

	if (!at)
		return url;
	authority = strstr(url, "://") + 3;
	snprintf(buffer, size, "%.*s***%s", (int)(authority - url), url, at);
	return buffer;
}

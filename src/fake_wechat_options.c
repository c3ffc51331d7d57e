/* Command line of bin/fake-wechat. Options are a table (name, kind, field,
 * range) so each new one is a line, not another case in a long switch. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "exitcode.h"
#include "fake_wechat.h"
#include "log.h"
#include "parse.h"

#define FAKE_HELP \
	"Usage: fake-wechat --appid ID (--secret-file FILE | --secret S) [options]\n" \
	"A fake WeChat API server on loopback, for tests, benchmarks and the demo:\n" \
	"cgi-bin/token, cgi-bin/stable_token and wxa/getwxacodeunlimit as the project's\n" \
	"tests/WECHAT.md describes them, plus GET /_stats and\n" \
	"POST /_control/{invalidate,expire}-tokens and /_control/{outage,busy}?for=MS.\n" \
	"How to run it and what it reports:\n" \
	"tests/fake-wechat.md in the source.\n" \
	"\n" \
	"  --listen ADDR            IPv4 loopback address (default 127.0.0.1)\n" \
	"  --port N                 0 picks a free port (default)\n" \
	"  --port-file FILE         write the bound port there once listening\n" \
	"  --stats-file FILE        write the statistics (JSON) there at exit\n" \
	"  --appid ID               the one mini-program served\n" \
	"  --secret-file FILE       its secret, first line of FILE (keeps it out of argv)\n" \
	"  --secret S               its secret, on the command line\n" \
	"  --pages LIST             published pages, comma-separated (default pages/index/index)\n" \
	"  --token-lifetime D       access token lifetime (default 7200s)\n" \
	"  --token-length N         characters in a token (19 to 512, WeChat's longest;\n" \
	"                           default 83)\n" \
	"  --token-grace D          how long a replaced classic token still works (default 300s)\n" \
	"  --stable-margin D        stable token rotates when it has less to live\n" \
	"                           (default 300s, at most half the lifetime)\n" \
	"  --minute D               length of a quota minute (default 60s)\n" \
	"  --quota N                getwxacodeunlimit calls per minute (default 5000)\n" \
	"  --quota-errcode N        45009 (default) or 45011 once the quota is spent\n" \
	"  --quota-at WHEN          a call counts in the minute it arrives in (arrival,\n" \
	"                           default) or the one its answer leaves in (answer: as\n" \
	"                           if all its latency came before WeChat counted it)\n" \
	"  --quota-window KIND      aligned (default): a minute of the clock, as the\n" \
	"                           quota counts are shown; rolling: any minute, the\n" \
	"                           quota refused while N calls were charged in the\n" \
	"                           minute before (\"work again about a minute later\")\n" \
	"  --max-connections N      concurrent connections served (default 1000)\n" \
	"  --image-bytes N          images padded to N bytes at least, as WeChat's are\n" \
	"                           larger (tens to hundreds of KB; default: as made)\n" \
	"  --image-type TYPE        images labelled TYPE (as a gateway may relabel\n" \
	"                           them: application/octet-stream), or none: no\n" \
	"                           Content-Type (default: image/jpeg or image/png)\n" \
	"The token endpoints' limits (45009 beyond a day's, 45011 beyond a minute's):\n" \
	"  --token-daily N          cgi-bin/token calls a day (default 2000)\n" \
	"  --stable-per-minute N    cgi-bin/stable_token calls a minute (default 10000)\n" \
	"  --stable-daily N         and a day (default 500000)\n" \
	"  --forced-daily N         force_refresh calls that refresh, a day (default 20)\n" \
	"  --forced-gap D           a force_refresh sooner after the last does not\n" \
	"                           refresh (default 30s)\n" \
	"  --day D                  length of a day, from midnight UTC+8 (default 24h)\n" \
	"  --token-errcode CODE:P   errcode CODE (-1, 40164, 40243, 89503, 45009 or\n" \
	"                           45011) from both token endpoints instead of a token\n" \
	"Faults on getwxacodeunlimit (P: probability 0 to 1 per call):\n" \
	"  --latency MS, --jitter MS  fixed delay plus a uniform random extra; a bare\n" \
	"                           number is milliseconds, or give a unit (2s)\n" \
	"  --slow-rate P --slow D   some answers come D late (default D 10s)\n" \
	"  --busy-rate P            errcode -1 \"system busy\"\n" \
	"  --http5xx-rate P         HTTP 500, 502 or 503\n" \
	"  --http-status CODES:P    HTTP status, one of CODES (400-599, comma-separated:\n" \
	"                           408,429:0.1)\n" \
	"  --truncate-rate P        an image cut in half (HTTP-wise complete)\n" \
	"  --empty-rate P           an empty image (HTTP 200, image/jpeg, no bytes)\n" \
	"  --padded-rate P          a whole image followed by 16 zero bytes\n" \
	"  --retry-after D          429 and 503 answers (faults, outage) carry a\n" \
	"                           Retry-After of D (whole seconds, rounded up)\n" \
	"  --json-as-image-rate P   an error body labelled image/jpeg: --errcode's error\n" \
	"                           if given (a rate above 0), else errcode -1\n" \
	"  --html-rate P            HTTP 200 with an HTML page (text/html), no image\n" \
	"  --not-image-rate P       HTTP 200, image/jpeg, bytes that are no JPEG or PNG\n" \
	"  --drop-rate P            the connection closes without an answer\n" \
	"  --fail-after N           every call after the Nth answers errcode -1\n" \
	"  --errcode CODE:P         WeChat's errcode CODE (one of its table, e.g. 40014,\n" \
	"                           48001, 45063, 85096) instead of the image\n" \
	"  --seed N                 seed of the fault PRNG (default: random)\n" \
	"  -v, --verbose            log each request (debug); -q, --quiet: errors only\n" \
	"  -h, --help, -V, --version\n" \
	"Durations: 500ms, 90s, 5m, 2h. Ports and statistics: see tests/fake-wechat.md.\n" \
	"Exit status: 0 stopped by SIGTERM/SIGINT with statistics written, 64 usage,\n" \
	"70 internal error, 74 I/O error (secret file, port or stats file, listening).\n"

#define FAKE_DAY_MS (86400 * INT64_C(1000))
#define FAKE_YEAR_MS (365 * FAKE_DAY_MS)

enum fake_option_kind { FAKE_TEXT, FAKE_INT, FAKE_DURATION, FAKE_MILLIS, FAKE_RATE };

struct fake_option {
	const char *name;
	enum fake_option_kind kind;
	size_t offset;
	int64_t min, max;
};

#define FAKE_FIELD(field) offsetof(struct fake_options, field)

static const struct fake_option fake_option_table[] = {
	{ "listen", FAKE_TEXT, FAKE_FIELD(listen), 0, 0 },
	{ "port", FAKE_INT, FAKE_FIELD(port), 0, 65535 },
	{ "port-file", FAKE_TEXT, FAKE_FIELD(port_file), 0, 0 },
	{ "stats-file", FAKE_TEXT, FAKE_FIELD(stats_file), 0, 0 },
	{ "appid", FAKE_TEXT, FAKE_FIELD(appid), 0, 0 },
	{ "secret", FAKE_TEXT, FAKE_FIELD(secret), 0, 0 },
	{ "secret-file", FAKE_TEXT, FAKE_FIELD(secret_file), 0, 0 },
	{ "pages", FAKE_TEXT, FAKE_FIELD(pages), 0, 0 },
	{ "token-lifetime", FAKE_DURATION, FAKE_FIELD(token_lifetime_ms), 1000, FAKE_YEAR_MS },
	{ "token-grace", FAKE_DURATION, FAKE_FIELD(token_grace_ms), 0, FAKE_YEAR_MS },
	{ "stable-margin", FAKE_DURATION, FAKE_FIELD(stable_margin_ms), 0, FAKE_YEAR_MS },
	{ "minute", FAKE_DURATION, FAKE_FIELD(minute_ms), 1, FAKE_DAY_MS },
	{ "quota", FAKE_INT, FAKE_FIELD(quota), 0, INT32_MAX },
	{ "quota-errcode", FAKE_INT, FAKE_FIELD(quota_errcode), 45009, 45011 },
	{ "quota-at", FAKE_TEXT, FAKE_FIELD(quota_at), 0, 0 },
	{ "quota-window", FAKE_TEXT, FAKE_FIELD(quota_window), 0, 0 },
	{ "errcode", FAKE_TEXT, FAKE_FIELD(errcode), 0, 0 },
	{ "http-status", FAKE_TEXT, FAKE_FIELD(http_status), 0, 0 },
	{ "token-errcode", FAKE_TEXT, FAKE_FIELD(token_errcode), 0, 0 },
	{ "token-daily", FAKE_INT, FAKE_FIELD(token_limits.classic_daily), 0, INT64_MAX },
	{ "stable-per-minute", FAKE_INT, FAKE_FIELD(token_limits.stable_per_minute), 0, INT64_MAX },
	{ "stable-daily", FAKE_INT, FAKE_FIELD(token_limits.stable_daily), 0, INT64_MAX },
	{ "forced-daily", FAKE_INT, FAKE_FIELD(token_limits.forced_daily), 0, INT64_MAX },
	{ "forced-gap", FAKE_DURATION, FAKE_FIELD(token_limits.forced_gap_ms), 0, FAKE_DAY_MS },
	{ "day", FAKE_DURATION, FAKE_FIELD(token_limits.day_ms), 1000, FAKE_YEAR_MS },
	{ "max-connections", FAKE_INT, FAKE_FIELD(max_connections), 1, 100000 },
	{ "latency", FAKE_MILLIS, FAKE_FIELD(faults.latency_ms), 0, FAKE_DAY_MS },
	{ "jitter", FAKE_MILLIS, FAKE_FIELD(faults.jitter_ms), 0, FAKE_DAY_MS },
	{ "slow", FAKE_DURATION, FAKE_FIELD(faults.slow_ms), 0, FAKE_DAY_MS },
	{ "slow-rate", FAKE_RATE, FAKE_FIELD(faults.slow_rate), 0, 0 },
	{ "busy-rate", FAKE_RATE, FAKE_FIELD(faults.busy_rate), 0, 0 },
	{ "http5xx-rate", FAKE_RATE, FAKE_FIELD(faults.http5xx_rate), 0, 0 },
	{ "truncate-rate", FAKE_RATE, FAKE_FIELD(faults.truncate_rate), 0, 0 },
	{ "empty-rate", FAKE_RATE, FAKE_FIELD(faults.empty_rate), 0, 0 },
	{ "padded-rate", FAKE_RATE, FAKE_FIELD(faults.padded_rate), 0, 0 },
	{ "json-as-image-rate", FAKE_RATE, FAKE_FIELD(faults.json_as_image_rate), 0, 0 },
	{ "html-rate", FAKE_RATE, FAKE_FIELD(faults.html_rate), 0, 0 },
	{ "not-image-rate", FAKE_RATE, FAKE_FIELD(faults.not_image_rate), 0, 0 },
	{ "drop-rate", FAKE_RATE, FAKE_FIELD(faults.drop_rate), 0, 0 },
	{ "fail-after", FAKE_INT, FAKE_FIELD(faults.fail_after), 0, INT64_MAX },
	{ "seed", FAKE_INT, FAKE_FIELD(seed), 0, INT64_MAX },
	{ "retry-after", FAKE_DURATION, FAKE_FIELD(retry_after_ms), 0, FAKE_DAY_MS },
	{ "image-bytes", FAKE_INT, FAKE_FIELD(image_bytes), 0, 8 << 20 },
	{ "image-type", FAKE_TEXT, FAKE_FIELD(image_type), 0, 0 },
	{ "token-length", FAKE_INT, FAKE_FIELD(token_length), FAKE_TOKEN_MIN, FAKE_TOKEN_MAX },
};

#define FAKE_OPTION_COUNT (sizeof fake_option_table / sizeof fake_option_table[0])

static void fake_options_defaults(struct fake_options *options)
{
	memset(options, 0, sizeof *options);
	options->listen = "127.0.0.1";
	options->pages = "pages/index/index";
	options->max_connections = 1000;
	options->token_lifetime_ms = 7200 * 1000;
	options->token_grace_ms = 300 * 1000;
	options->stable_margin_ms = -1;
	options->minute_ms = 60 * 1000;
	options->quota = 5000;
	options->quota_errcode = 45009;
	options->quota_at = "arrival";
	options->quota_window = "aligned";
	options->seed = -1;
	options->retry_after_ms = -1;
	options->token_length = FAKE_TOKEN_LENGTH;
	options->faults.slow_ms = 10 * 1000;
	options->faults.fail_after = -1;
	/* WECHAT.md's limits of the token endpoints */
	options->token_limits.classic_daily = 2000;
	options->token_limits.stable_per_minute = 10000;
	options->token_limits.stable_daily = 500000;
	options->token_limits.forced_daily = 20;
	options->token_limits.forced_gap_ms = 30 * 1000;
	options->token_limits.day_ms = FAKE_DAY_MS;
	options->verbosity = 1;
}

/* A whole number or a duration, as milliseconds; a bare number means ms. */
static int fake_parse_number(const struct fake_option *option, const char *arg, int64_t *out,
	char *why)
{
	if (option->kind == FAKE_INT)
		return parse_int64(arg, option->min, option->max, out, why);
	if (option->kind == FAKE_MILLIS && !parse_int64(arg, 0, INT64_MAX, out, NULL))
		; /* milliseconds */
	else if (parse_duration_ms(arg, out, why))
		return -1;
	if (*out < option->min || *out > option->max) {
		snprintf(why, PARSE_WHY_SIZE, "%s is out of range (%lld ms to %lld ms)", arg,
			(long long)option->min, (long long)option->max);
		return -1;
	}
	return 0;
}

static int fake_option_set(struct fake_options *options, const struct fake_option *option,
	const char *arg)
{
	char why[PARSE_WHY_SIZE];
	char *field = (char *)options + option->offset;
	int failed;

	switch (option->kind) {
	case FAKE_TEXT:
		*(const char **)(void *)field = arg;
		return 0;
	case FAKE_RATE:
		failed = parse_double(arg, 0, 1, (double *)(void *)field, why);
		break;
	default:
		failed = fake_parse_number(option, arg, (int64_t *)(void *)field, why);
		break;
	}
	return failed ? cli_usage_error("--%s: %s", option->name, why) : 0;
}

/* Reads the first line of the secret file: the secret stays out of argv,
 * where any user could read it in ps. */
static int fake_read_secret(struct fake_options *options)
{
	FILE *file = fopen(options->secret_file, "r");
	size_t length;
	int failed, read_error;

	if (!file) {
		log_error("%s: %s", options->secret_file, strerror(errno));
		return EXIT_IO;
	}
	failed = !fgets(options->secret_buffer, sizeof options->secret_buffer, file);
	read_error = ferror(file);
	if (fclose(file) != 0 || read_error) {
		log_error("%s: cannot read the secret", options->secret_file);
		return EXIT_IO;
	}
	length = failed ? 0 : strcspn(options->secret_buffer, "\r\n");
	options->secret_buffer[length] = '\0';
	if (!length)
		return cli_usage_error("%s: the first line holds no secret", options->secret_file);
	options->secret = options->secret_buffer;
	return 0;
}

/* Only loopback: the server is for tests and knows no real secret. */
static int fake_check_listen(const char *listen)
{
	struct in_addr address;

	if (inet_pton(AF_INET, listen, &address) != 1)
		return cli_usage_error("--listen: '%s' is not an IPv4 address", listen);
	if ((ntohl(address.s_addr) >> 24) != 127)
		return cli_usage_error("--listen: %s is not a loopback address (127.0.0.0/8)", listen);
	return 0;
}

/* "CODE:P", or "CODE,CODE...:P" where `max` allows: the codes, each within
 * min..max_code, into codes[], the probability into *rate. Returns how many
 * codes, or -1 (said). */
static int fake_parse_codes(const char *name, const char *text, int64_t min_code, int64_t max_code,
	int64_t codes[], int max, double *rate)
{
	const char *colon = strchr(text, ':');
	char why[PARSE_WHY_SIZE];
	int count = 0;

	if (!colon)
		return cli_usage_error("--%s: %s:P, as %s:0.5", name, max > 1 ? "CODE[,CODE...]" : "CODE",
			text), -1;
	for (const char *p = text; p < colon; count++) {
		size_t length = strcspn(p, ",:");
		char code[16];

		if (count == max)
			return cli_usage_error("--%s: at most %d codes", name, max), -1;
		if (length >= sizeof code)
			return cli_usage_error("--%s: '%.*s' is not a code", name, (int)length, p), -1;
		memcpy(code, p, length);
		code[length] = '\0';
		if (parse_int64(code, min_code, max_code, &codes[count], why))
			return cli_usage_error("--%s: %s", name, why), -1;
		p += length + (p[length] == ',');
	}
	if (!count)
		return cli_usage_error("--%s: no code before the ':'", name), -1;
	if (parse_double(colon + 1, 0, 1, rate, why))
		return cli_usage_error("--%s: %s", name, why), -1;
	return count;
}

/* --errcode, --token-errcode and --http-status into faults. */
static int fake_parse_fault_codes(struct fake_options *options)
{
	/* What the token endpoints answer that no request can earn here. */
	static const enum fake_error token_errors[] = { FAKE_ERR_BUSY, FAKE_ERR_IP_WHITELIST,
		FAKE_ERR_SECRET_FROZEN, FAKE_ERR_IP_CONFIRM, FAKE_ERR_DAILY_LIMIT,
		FAKE_ERR_QUOTA_SLOWER };
	struct fake_faults *faults = &options->faults;
	int64_t codes[FAKE_HTTP_STATUS_MAX];
	int count;

	if (options->errcode) {
		if (fake_parse_codes("errcode", options->errcode, -1, 99999, codes, 1,
			&faults->errcode_rate) < 0)
			return EXIT_USAGE;
		if ((faults->errcode = (int)fake_error_of((int)codes[0])) == FAKE_OK)
			return cli_usage_error("--errcode: %lld is not an errcode of WECHAT.md's table",
				(long long)codes[0]);
	}
	if (options->token_errcode) {
		if (fake_parse_codes("token-errcode", options->token_errcode, -1, 99999, codes, 1,
			&faults->token_errcode_rate) < 0)
			return EXIT_USAGE;
		for (size_t i = 0; i < sizeof token_errors / sizeof token_errors[0]; i++)
			if (fake_error_code(token_errors[i]) == codes[0])
				faults->token_errcode = (int)token_errors[i];
		if (faults->token_errcode == FAKE_OK)
			return cli_usage_error("--token-errcode: %lld is not one to inject there "
				"(-1, 40164, 40243, 89503, 45009, 45011)", (long long)codes[0]);
	}
	if (options->http_status) {
		if ((count = fake_parse_codes("http-status", options->http_status, 400, 599, codes,
			FAKE_HTTP_STATUS_MAX, &faults->http_status_rate)) < 0)
			return EXIT_USAGE;
		for (int i = 0; i < count; i++)
			faults->http_status[i] = (unsigned)codes[i];
		faults->http_status_count = count;
	}
	return 0;
}

static int fake_options_check(struct fake_options *options)
{
	int64_t half_life = options->token_lifetime_ms / 2;

	if (!options->appid || !*options->appid)
		return cli_usage_error("--appid is required");
	if (!options->secret == !options->secret_file)
		return cli_usage_error("give the secret with exactly one of --secret-file and --secret");
	if (options->secret && !*options->secret)
		return cli_usage_error("--secret is empty");
	if (options->quota_errcode != 45009 && options->quota_errcode != 45011)
		return cli_usage_error("--quota-errcode: 45009 or 45011");
	if (strcmp(options->quota_at, "arrival") && strcmp(options->quota_at, "answer"))
		return cli_usage_error("--quota-at: arrival or answer");
	if (strcmp(options->quota_window, "aligned") && strcmp(options->quota_window, "rolling"))
		return cli_usage_error("--quota-window: aligned or rolling");
	if (fake_parse_fault_codes(options))
		return EXIT_USAGE;
	if (options->stable_margin_ms < 0)
		options->stable_margin_ms = half_life < 300 * 1000 ? half_life : 300 * 1000;
	else if (options->stable_margin_ms >= options->token_lifetime_ms)
		return cli_usage_error("--stable-margin must be shorter than --token-lifetime");
	if (fake_check_listen(options->listen))
		return EXIT_USAGE;
	return options->secret_file ? fake_read_secret(options) : 0;
}

static int fake_options_loop(struct fake_options *options, int argc, char **argv,
	const struct option *longopts)
{
	struct cli_common common = { .verbosity = options->verbosity };
	int opt, status = 0;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "vqhV", longopts, NULL)) != -1) {
		if (opt >= CLI_OPT_FIRST_TOOL_OPTION) {
			status = fake_option_set(options,
				&fake_option_table[opt - CLI_OPT_FIRST_TOOL_OPTION], optarg);
			if (status)
				return status;
		} else if (opt == '?' || !cli_common_option(&common, opt, optarg)) {
			return cli_usage_error("bad option or missing value: '%s'", argv[optind - 1]);
		}
	}
	options->verbosity = common.verbosity;
	if (optind < argc)
		return cli_usage_error("unexpected argument '%s'", argv[optind]);
	if (common.help)
		return printf("%s", FAKE_HELP) < 0 ? EXIT_IO : -1;
	if (common.version) {
		cli_print_version();
		return -1;
	}
	return 0;
}

int fake_options_parse(struct fake_options *options, int argc, char **argv)
{
	struct option longopts[FAKE_OPTION_COUNT + 5] = {
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
	};
	int status;

	fake_options_defaults(options);
	log_init(argv[0], options->verbosity);
	for (size_t i = 0; i < FAKE_OPTION_COUNT; i++)
		longopts[4 + i] = (struct option){ fake_option_table[i].name, required_argument, NULL,
			CLI_OPT_FIRST_TOOL_OPTION + (int)i };
	status = fake_options_loop(options, argc, argv, longopts);
	log_init(argv[0], options->verbosity);
	return status ? status : fake_options_check(options);
}

int fake_page_published(const char *pages, const char *page)
{
	size_t length = strlen(page);

	for (const char *p = pages; *p;) {
		size_t entry = strcspn(p, ",");

		if (entry == length && !strncmp(p, page, length))
			return 1;
		p += entry + (p[entry] == ',');
	}
	return 0;
}

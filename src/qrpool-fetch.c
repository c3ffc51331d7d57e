/* qrpool-fetch: gets each planned item's code from WeChat (getwxacodeunlimit)
 * inside the shared minute quota and before a deadline, stores it in the
 * staging DB and passes every other item through. */
#include <curl/curl.h>
#include <malloc.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "db.h"
#include "exitcode.h"
#include "fetch.h"
#include "interrupt.h"
#include "log.h"
#include "parse.h"
#include "token.h"

/* Calls in flight get this long to finish after SIGINT/SIGTERM. */
#define FETCH_GRACE_S 5.0

/* An --until time that passed less than this long ago is reached, not
 * tomorrow's. */
#define FETCH_UNTIL_JUST_PASSED_S (10 * 60)

struct fetch_cli {
	struct cli_common common;
	struct fetch_options run;
	int64_t reserve;          /* --reserve; -1: the config's reserve_per_minute */
	const char *until;        /* --until as given */
	double until_hours;       /* how far away it is */
	int until_tomorrow;       /* that time has passed today */
	int until_passed_s;       /* > 0: it passed this long ago, and counts as reached */
	int check;                /* --check: the credentials only */
};

static void fetch_usage(void)
{
	printf("Usage: qrpool-fetch [OPTIONS] < ITEMS\n"
		"Read item lines (request_id TAB pool) on stdin; for each planned item of a wechat\n"
		"pool get its code from WeChat (getwxacodeunlimit, scene = request_id), inside the\n"
		"minute quota shared by every qrpool-fetch run, store it in the staging DB and print\n"
		"the item line once stored. Other items (link pools, items not planned) are\n"
		"printed untouched, in their order.\n\n"
		"  --until HH:MM      deadline, local time: no call starts after it (a time\n"
		"                     already past today is tomorrow's, warned about when\n"
		"                     that is more than 12 hours away; passed less than 10\n"
		"                     minutes ago, it is reached)\n"
		"  --for DURATION     deadline as a duration (90s, 5m, 1h30m); with --until the\n"
		"                     earlier one counts. Calls in flight at the deadline finish,\n"
		"                     items not done stay planned, the rest of the input is still\n"
		"                     read to pass other items on, and the exit status is 75.\n"
		"  --reserve N        calls per minute left to the online services, instead of\n"
		"                     wechat.reserve_per_minute (a daytime backfill leaves more)\n"
		"  --check            only check the credentials: get a token from the token\n"
		"                     source now (stable_token without force_refresh, which\n"
		"                     disturbs no other holder; the command; the file), cache\n"
		"                     nothing, read no input, make no call of quota; say so on\n"
		"                     stdout. Not for the classic source (64): its every fetch\n"
		"                     invalidates the other holders' token.\n"
		CLI_COMMON_HELP
		"\nSIGINT/SIGTERM/SIGHUP: no new calls, calls in flight get %.0f s, then the rest of stdin\n"
		"is read to its end and let go (the stage before is not cut off), exit 75. The\n"
		"same signal again from the same sender a second or more later (a second Ctrl-C)\n"
		"cuts both.\n"
		"\n" EXITCODE_HELP
		"65: some lines were malformed or named unknown request ids (skipped), or\n"
		"    WeChat refused items for good (40129, 40169: marked failed).\n"
		"69: WeChat refused a pool (invalid page or env_version, no permission, 20\n"
		"    scenes in a row: calls mangled on the way?) or the credentials; that\n"
		"    pool's items stay planned, other pools go on.\n"
		"75: deadline or signal with work left, or items still failing after retries,\n"
		"    or calls failing one after another for 5 quota minutes (wechat.quota_minute;\n"
		"    5 minutes against WeChat) with no deadline.\n",
		FETCH_GRACE_S);
}

static int fetch_parse_options(int argc, char **argv, struct fetch_cli *cli)
{
	enum { OPT_UNTIL = CLI_OPT_FIRST_TOOL_OPTION, OPT_FOR, OPT_RESERVE, OPT_CHECK };
	static const struct option longs[] = {
		CLI_COMMON_LONG,
		{ "until", required_argument, NULL, OPT_UNTIL },
		{ "for", required_argument, NULL, OPT_FOR },
		{ "reserve", required_argument, NULL, OPT_RESERVE },
		{ "check", no_argument, NULL, OPT_CHECK },
		{ NULL, 0, NULL, 0 },
	};
	char why[PARSE_WHY_SIZE];
	int opt, minutes;
	int64_t ms;
	time_t until, now;
	double for_until;
	struct tm today, deadline;

	memset(cli, 0, sizeof *cli);
	cli->run.grace_s = FETCH_GRACE_S;
	cli->reserve = -1;
	while ((opt = cli_getopt(argc, argv, CLI_COMMON_SHORT, longs, NULL)) != -1) {
		if (cli_common_option(&cli->common, opt, optarg))
			continue;
		switch (opt) {
		case OPT_UNTIL:
			if (parse_time_of_day(optarg, &minutes, why))
				return cli_usage_error("--until: %s", why);
			cli->until = optarg;
			/* Passed moments ago (a fill started at 05:59:59 whose fetch
			 * starts at 06:00:01) is reached, not tomorrow's: fetching
			 * all day long, through the peak, is never what was meant.
			 * Measured from the last time the clock showed it (yesterday's
			 * when today's is ahead: 23:59 at 00:00:01), so a DST change
			 * does not move the line. */
			until = parse_last_local_time(now = time(NULL), minutes);
			if (until < now && now - until < FETCH_UNTIL_JUST_PASSED_S) {
				cli->until_passed_s = (int)(now - until);
				until = now;
			} else {
				until = parse_next_local_time(now, minutes);
			}
			cli->until_hours = (double)(until - now) / 3600;
			localtime_r(&now, &today);
			localtime_r(&until, &deadline);
			cli->until_tomorrow = deadline.tm_yday != today.tm_yday;
			if (!cli->run.until || until < cli->run.until)   /* (given twice: the earlier) */
				cli->run.until = (double)until;
			break;
		case OPT_FOR:
			if (parse_duration_ms(optarg, &ms, why))
				return cli_usage_error("--for: %s", why);
			for_until = db_monotonic() + (double)ms / 1000;
			if (!cli->run.for_until || for_until < cli->run.for_until)
				cli->run.for_until = for_until;
			break;
		case OPT_RESERVE:
			if (parse_int64(optarg, 0, 10000000, &cli->reserve, why))
				return cli_usage_error("--reserve: %s", why);
			break;
		case OPT_CHECK:
			cli->check = 1;
			break;
		default:
			return cli_bad_option(argv, opt);
		}
	}
	if (optind < argc)
		return cli_usage_error("unexpected argument '%s': items come on stdin", argv[optind]);
	return 0;
}

/* --check: a token from the source itself, and what it proves, on stdout. */
static int fetch_check(const struct config *config)
{
	const struct wechat_config *w = &config->wechat;
	struct token_cache cache;
	int64_t expires_in = 0;
	int status;
	/* A command's or a file's token is not shown to WeChat: only a call of
	 * quota could tell whether it takes it. */
	int unasked = w->token_source == TOKEN_COMMAND || w->token_source == TOKEN_FILE;

	if (!config->has_wechat) {
		log_error("%s: no wechat section: no credentials to check", config->path);
		return EXIT_CONFIG;
	}
	if (w->token_source == TOKEN_CLASSIC)
		return cli_usage_error("--check: the token source is 'classic', whose every fetch "
			"invalidates the token of every other holder of appid %s: not checked (a fetch "
			"of one code checks it)", w->appid);
	/* No DB: the check reads no cached token and keeps none (nor makes a
	 * DB, which a run as root would leave root's). */
	if (!(status = token_open(&cache, NULL, config))) {
		status = token_check(&cache, &expires_in);
		if (status)
			log_error("appid %s, token source %s: %s", w->appid, cache.source,
				cache.failure.message);
		else if (printf("appid %s: %s (token source %s; its token is good for %lld s more%s)\n",
				w->appid, unasked ? "the token source works" : "the credentials work",
				cache.source, (long long)expires_in, unasked ? "; whether WeChat takes it is "
				"not asked: a fetch of one code tells" : "") < 0)
			status = EXIT_IO;
	}
	token_close(&cache);
	return status;
}

int main(int argc, char **argv)
{
	struct fetch_cli cli;
	struct config config;
	int status;

	db_library_init();
	cli_hold_std_fds();
	log_init(argv[0], 0);
	if ((status = fetch_parse_options(argc, argv, &cli)))
		return status;
	log_init(argv[0], cli.common.verbosity);
	if ((status = cli_help_or_version(&cli.common, fetch_usage)) >= 0)
		return status;
	if (!cli.common.dump_config && !cli.check && isatty(STDIN_FILENO))
		return cli_usage_error("item lines come from a pipe (qrpool-plan ... | qrpool-fetch), "
			"and stdin is a terminal");
	/* A time already past is tomorrow's: most of a day away, likely a slip
	 * at 3 a.m. (a night run started in the evening is not warned about). */
	if (cli.until_passed_s)
		log_warn("--until %s: that time passed %d s ago: the deadline is reached, no call "
			"starts (a deadline a day away is --for's to give)", cli.until, cli.until_passed_s);
	else if (cli.until && cli.until_tomorrow && cli.until_hours > 12)
		log_warn("--until %s: that time has passed today, so the deadline is tomorrow's, "
			"%.1f hours from now", cli.until, cli.until_hours);
	if ((status = config_load(&config, cli.common.config_path)))
		return status;
	status = config_apply_reserve(&config, cli.reserve);
	if (status) {
		config_free(&config);
		return status;
	}
	if (cli.common.dump_config) {
		status = config_dump(&config, stdout);
	} else if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error("libcurl failed to initialise");
		status = EXIT_INTERNAL;
	} else {
		/* Images are copied, stored and freed by the hundred: keeping freed
		 * memory in the heap, rather than trimming it back to the kernel and
		 * faulting it in again, costs less CPU per code (about 10%). */
		mallopt(M_TRIM_THRESHOLD, 256 << 20);
		mallopt(M_TOP_PAD, 64 << 20);
		mallopt(M_MMAP_THRESHOLD, 32 << 20);
		interrupt_install();
		status = cli.check ? fetch_check(&config) :
			fetch_run(&cli.run, &config, STDIN_FILENO, stdout);
		curl_global_cleanup();
	}
	config_free(&config);
	return exitcode_worst(status, cli_close_stdout());
}

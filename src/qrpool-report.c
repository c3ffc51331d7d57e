/* qrpool-report: pool health from the staging DB and Kafka, as a table, JSON,
 * a Prometheus textfile or a monitoring-plugin check. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "db.h"
#include "exitcode.h"
#include "kafka.h"
#include "log.h"
#include "parse.h"
#include "report.h"

enum report_format { FORMAT_TABLE, FORMAT_JSON, FORMAT_PROM, FORMAT_CHECK };

/* The most --check waits for Kafka: the whole check then ends within a
 * monitoring agent's usual 10 s (check_nrpe's default), and says why itself. */
#define REPORT_CHECK_KAFKA_MS 7000
#define REPORT_CHECK_LOCK_MS 1000   /* a check waits this long for another writer at most */

struct report_options {
	struct cli_common common;
	enum report_format format;
	const char *prom_path;
	double warn_hours, crit_hours;
	int night_start, night_end;
};

static void report_usage(void)
{
	printf("Usage: qrpool-report [OPTIONS]\n"
		"Pool health: depth and codes lost (from Kafka), consumption over the last hour\n"
		"and day, hours of cover, backlog by state, failures by errcode, WeChat quota used,\n"
		"and the last successful run of each stage. Each run records a depth snapshot,\n"
		"so rates need two runs some minutes apart (cron runs it every 5 minutes).\n\n"
		"  -j, --json             JSON (schema in the README) instead of the table\n"
		"      --prom FILE        write a Prometheus textfile (atomically) instead\n"
		"      --check            monitoring-plugin check: one line, perfdata, exit 0-3;\n"
		"                         Kafka waited for 7 s at most (within check_nrpe's 10 s)\n"
		"      --warn-hours H     check: WARNING below H hours of cover (default 12)\n"
		"      --crit-hours H     check: CRITICAL below H hours of cover (default 4, or\n"
		"                         --warn-hours if that is lower)\n"
		"      --night HH:MM-HH:MM  the night window for quota figures (default 01:00-06:00)\n"
		CLI_COMMON_HELP
		"\nExit status: 0 done, 64 usage, 69 Kafka refused this client's authentication\n"
		"(depth unknown; the rest is reported), 70 internal error, 74 I/O error, 75 try\n"
		"again later, 78 bad config.\n"
		"75 also means: Kafka could not be read (depth unknown; the rest is reported);\n"
		"78 also: kafka.brokers is not set (the same, but no later run does better);\n"
		"74 also: the staging DB could not record the depth snapshot (the rest is reported).\n"
		"With --check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (DB, config or Kafka unreadable,\n"
		"a bad command line, or the line not written); a measured pool's CRITICAL outranks\n"
		"another pool's unreadable depth. --json, --prom and --check: one at most.\n");
}

static int report_parse_options(int argc, char **argv, struct report_options *options)
{
	enum { OPT_PROM = CLI_OPT_FIRST_TOOL_OPTION, OPT_CHECK, OPT_WARN, OPT_CRIT, OPT_NIGHT };
	static const struct option longs[] = {
		CLI_COMMON_LONG,
		{ "json", no_argument, NULL, 'j' },
		{ "prom", required_argument, NULL, OPT_PROM },
		{ "check", no_argument, NULL, OPT_CHECK },
		{ "warn-hours", required_argument, NULL, OPT_WARN },
		{ "crit-hours", required_argument, NULL, OPT_CRIT },
		{ "night", required_argument, NULL, OPT_NIGHT },
		{ NULL, 0, NULL, 0 },
	};
	char why[PARSE_WHY_SIZE];
	int opt, status = 0;
	unsigned formats = 0;   /* one bit per output option given */
	unsigned thresholds = 0;   /* 1: --warn-hours given, 2: --crit-hours */

	memset(options, 0, sizeof *options);
	options->warn_hours = 12;
	options->crit_hours = -1;   /* not given: 4, or warn_hours if lower */
	options->night_start = 60;
	options->night_end = 360;
	/* The parse goes on past a bad option, so that a --check after it still
	 * makes the answer the plugin's (main); the first error is the status. */
	while ((opt = cli_getopt(argc, argv, CLI_COMMON_SHORT "j", longs, NULL)) != -1) {
		const char *bad = NULL;   /* the option whose value is bad, with `why` */

		if (cli_common_option(&options->common, opt, optarg))
			continue;
		switch (opt) {
		case 'j': options->format = FORMAT_JSON; formats |= 1u << FORMAT_JSON; break;
		case OPT_PROM:
			options->format = FORMAT_PROM;
			options->prom_path = optarg;
			formats |= 1u << FORMAT_PROM;
			if (!*optarg) {
				snprintf(why, sizeof why, "needs the textfile's name");
				bad = "--prom";
			}
			break;
		case OPT_CHECK: options->format = FORMAT_CHECK; formats |= 1u << FORMAT_CHECK; break;
		case OPT_WARN:
			thresholds |= 1u;
			if (parse_double(optarg, 0, 1e6, &options->warn_hours, why))
				bad = "--warn-hours";
			break;
		case OPT_CRIT:
			thresholds |= 2u;
			if (parse_double(optarg, 0, 1e6, &options->crit_hours, why))
				bad = "--crit-hours";
			break;
		case OPT_NIGHT:
			if (parse_time_window(optarg, &options->night_start, &options->night_end, why))
				bad = "--night";
			break;
		default:
			bad = "";
		}
		if (bad && !status)
			status = *bad ? cli_usage_error("%s: %s", bad, why) : cli_bad_option(argv, opt);
	}
	/* Two outputs at once would quietly drop one: a check defined with a
	 * stray --json would answer JSON, read by the monitor as OK, forever. */
	if (formats & (formats - 1)) {
		if (formats & (1u << FORMAT_CHECK))
			options->format = FORMAT_CHECK;   /* answered as the plugin: UNKNOWN */
		if (!status)
			status = cli_usage_error("--json, --prom and --check each choose the output: give one");
	}
	if (status)
		return status;
	if (optind < argc)
		return cli_usage_error("unexpected argument '%s'", argv[optind]);
	/* (Thresholds without the check would be taken and do nothing.) */
	if (options->format != FORMAT_CHECK && thresholds)
		return cli_usage_error("%s: the thresholds of --check, which is not given",
			thresholds & 1u ? "--warn-hours" : "--crit-hours");
	if (options->crit_hours < 0)
		options->crit_hours = options->warn_hours < 4 ? options->warn_hours : 4;
	if (options->crit_hours > options->warn_hours)
		return cli_usage_error("--crit-hours (%g) is above --warn-hours (%g)",
			options->crit_hours, options->warn_hours);
	return 0;
}

static int report_output(const struct report_options *options, const struct report *report,
	const struct config *config)
{
	int status;

	switch (options->format) {
	case FORMAT_CHECK:
		return report_check(report, options->warn_hours, options->crit_hours, stdout);
	case FORMAT_JSON:
		status = report_print_json(report, config, stdout);
		break;
	case FORMAT_PROM:
		status = report_write_prom(report, config, options->prom_path);
		break;
	default:
		status = report_print_table(report, config, stdout);
	}
	if (!status && !report->kafka_ok) {
		/* No brokers configured is for the config to change: no later run
		 * would do better (75 would say it might). */
		log_error("pool depth unknown: Kafka: %s", report->kafka_error);
		status = !kafka_configured(config) ? EXIT_CONFIG : report->kafka_auth_refused ?
			EXIT_UPSTREAM : EXIT_TEMPFAIL;
	}
	/* (said when it failed: the report is out, the DB needs a hand) */
	return exitcode_worst(status, report->snapshot_status);
}

static int report_run(const struct report_options *options, const struct config *config)
{
	/* A check answers within check_nrpe's default 10 s, Kafka down or not. */
	struct report report = { .night_start = options->night_start, .night_end = options->night_end,
		.kafka_budget_ms = options->format == FORMAT_CHECK ? REPORT_CHECK_KAFKA_MS : 0 };
	struct db db;
	int status;

	if ((status = db_open(&db, config->db_path, config->busy_timeout_ms)))
		return status;
	/* Opened (a schema upgrade waits busy_timeout), the check waits
	 * REPORT_CHECK_LOCK_MS at most for another writer's lock: its snapshot,
	 * skipped then; so Kafka's budget and a locked DB together still answer
	 * within those 10 s. */
	if (options->format == FORMAT_CHECK && config->busy_timeout_ms > REPORT_CHECK_LOCK_MS)
		sqlite3_busy_timeout(db.handle, REPORT_CHECK_LOCK_MS);
	status = report_collect(&db, config, &report);
	/* No run of any stage recorded: a database.path naming another file
	 * (an empty DB made there by a report, so found by every later one),
	 * or no night yet. */
	report.db_unused = config->db_path;
	for (int s = 0; s < report.stage_count; s++)
		if (report.stages[s].last_started > 0)
			report.db_unused = NULL;
	db_close(&db);
	if (!status)
		status = report_output(options, &report, config);
	report_free(&report);
	return status;
}

/* What a --check line says of a run that ended with STATUS (above 3). */
static const char *report_check_unknown(int status)
{
	switch (status) {
	case EXIT_CONFIG:
		return "bad configuration, or a staging DB of a newer qrpool";
	case EXIT_TEMPFAIL:
		return "the staging DB is locked by another process: try again";
	case EXIT_INTERNAL:
		return "an internal error (out of memory?)";
	default:
		return "the staging DB cannot be opened or read";
	}
}

int main(int argc, char **argv)
{
	struct report_options options;
	struct config config;
	int status;

	cli_hold_std_fds();
	log_init(argv[0], 0);
	/* stdout closed by the next stage: a write error (74), said, not death by SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	if ((status = report_parse_options(argc, argv, &options))) {
		if (options.format != FORMAT_CHECK)
			return status;
		/* The plugin contract holds for a bad command line too: one line, 3. */
		printf("QRPOOL UNKNOWN - bad command line (exit %d; see stderr)\n", status);
		cli_close_stdout();
		return 3;
	}
	log_init(argv[0], options.common.verbosity);
	if ((status = cli_help_or_version(&options.common, report_usage)) >= 0)
		return status;
	if ((status = config_load(&config, options.common.config_path))) {
		if (options.format != FORMAT_CHECK)
			return status;
		printf("QRPOOL UNKNOWN - the configuration cannot be read (exit %d)\n", status);
		cli_close_stdout();
		return 3;
	}
	if (options.common.dump_config)
		status = config_dump(&config, stdout);
	else
		status = report_run(&options, &config);
	config_free(&config);
	if (options.format == FORMAT_CHECK && status > 3) {
		printf("QRPOOL UNKNOWN - %s (see stderr) (exit %d)\n", report_check_unknown(status),
			status);
		status = 3;
	}
	if (options.format == FORMAT_CHECK)   /* a check line never written: the state is unknown */
		return cli_close_stdout() ? 3 : status;
	return exitcode_worst(status, cli_close_stdout());
}

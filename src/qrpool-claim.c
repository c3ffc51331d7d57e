/* qrpool-claim: takes codes from a pool and binds each to one parameter
 * record read from stdin, for campaign posters and manual hand-outs. */
#include <string.h>

#include "claim.h"
#include "cli.h"
#include "config.h"
#include "exitcode.h"
#include "interrupt.h"
#include "log.h"
#include "params.h"
#include "parse.h"

struct claim_cli {
	struct cli_common common;
	struct claim_options claim;
};

static void claim_usage(void)
{
	printf("Usage: qrpool-claim --pool NAME --out DIR [--count N] [--wait DURATION] < RECORDS\n"
		"Take codes from the pool's Kafka topic (as a member of the pool's consumer group)\n"
		"and bind each to one parameter record from stdin: one JSON object per line, at most\n"
		"%d bytes, e.g. {\"listing_id\":\"L1\",\"agent_id\":\"A7\",\"channel\":\"poster\"}.\n"
		"Each binding is stored in the staging DB (and in Redis when configured) before the\n"
		"offset is committed; each image is written to DIR/<request_id>.jpg or .png and\n"
		"\"request_id TAB file\" is printed. A bad line is reported as \"line N: why\" and\n"
		"skipped: no code is taken for it.\n\n"
		"  -p, --pool NAME    the pool to take codes from\n"
		"  -o, --out DIR      where the images go (created if missing)\n"
		"  -n, --count N      bind at most N records (default: every record on stdin)\n"
		"  -w, --wait DURATION  how long to wait for a code once the pool's partitions are\n"
		"                     at their end (default 2s)\n"
		CLI_COMMON_HELP
		"\n" EXITCODE_HELP
		"65: some lines were bad (the others are bound). 69: Kafka refuses this client\n"
		"(its ACLs on the topic or the group, or its authentication), or the pool's topic\n"
		"does not exist.\n"
		"75: the pool ran empty (it says how many were bound), the group gave this claim\n"
		"no partition (the online services hold them all), Kafka did not answer, the\n"
		"run was interrupted, or some offsets could not be committed (run claim again to\n"
		"commit past them).\n"
		"78: bad config, or a code of another pool in the topic (shared with that pool).\n"
		"Redis being down is a warning only: the database is the record.\n", PARAMS_MAX_BYTES);
}

static int claim_parse_options(int argc, char **argv, struct claim_cli *cli)
{
	static const struct option longs[] = {
		CLI_COMMON_LONG,
		{ "pool", required_argument, NULL, 'p' },
		{ "out", required_argument, NULL, 'o' },
		{ "count", required_argument, NULL, 'n' },
		{ "wait", required_argument, NULL, 'w' },
		{ NULL, 0, NULL, 0 },
	};
	char why[PARSE_WHY_SIZE];
	int opt;

	memset(cli, 0, sizeof *cli);
	cli->claim.count = -1;
	cli->claim.wait_ms = 2000;
	while ((opt = cli_getopt(argc, argv, CLI_COMMON_SHORT "p:o:n:w:", longs, NULL)) != -1) {
		if (cli_common_option(&cli->common, opt, optarg))
			continue;
		switch (opt) {
		case 'p': cli->claim.pool = optarg; break;
		case 'o': {
			/* "dir/" prints dir/ID.jpg, not dir//ID.jpg ("/" stays itself) */
			size_t length = strlen(optarg);

			if (!length)
				return cli_usage_error("--out: an empty directory name");
			while (length > 1 && optarg[length - 1] == '/')
				optarg[--length] = '\0';
			cli->claim.out = optarg;
			break;
		}
		case 'n':
			if (parse_int64(optarg, 0, INT64_MAX, &cli->claim.count, why))
				return cli_usage_error("--count: %s", why);
			break;
		case 'w':
			if (parse_duration_ms(optarg, &cli->claim.wait_ms, why))
				return cli_usage_error("--wait: %s", why);
			break;
		default:
			return cli_bad_option(argv, opt);
		}
	}
	if (optind < argc)
		return cli_usage_error("unexpected argument '%s' (records come on stdin)", argv[optind]);
	return 0;
}

static int claim_check_options(const struct claim_cli *cli, const struct config *config)
{
	char names[1024];

	if (!cli->claim.pool || !cli->claim.out)
		return cli_usage_error("--pool and --out are required");
	if (!config_pool(config, cli->claim.pool)) {
		config_pool_names(config, names, sizeof names);
		return cli_usage_error("--pool: no pool '%s' in %s (pools: %s)", cli->claim.pool,
			config->path, names);
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct claim_cli cli;
	struct config config;
	int status;

	cli_hold_std_fds();
	log_init(argv[0], 0);
	if ((status = claim_parse_options(argc, argv, &cli)))
		return status;
	log_init(argv[0], cli.common.verbosity);
	if ((status = cli_help_or_version(&cli.common, claim_usage)) >= 0)
		return status;
	if ((status = config_load(&config, cli.common.config_path)))
		return status;
	interrupt_install();
	if (cli.common.dump_config)
		status = config_dump(&config, stdout);
	else if (!(status = claim_check_options(&cli, &config)))
		status = claim_run(&cli.claim, &config, stdin);
	config_free(&config);
	return exitcode_worst(status, cli_close_stdout());
}

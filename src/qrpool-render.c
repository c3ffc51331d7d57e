/* qrpool-render: renders the codes of link pools locally (libqrencode +
 * libpng), stores them in the staging DB and passes every other item on. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "cli.h"
#include "config.h"
#include "db.h"
#include "exitcode.h"
#include "interrupt.h"
#include "log.h"
#include "parse.h"
#include "qrfit.h"
#include "render.h"
#include "render_run.h"

struct render_options {
	struct cli_common common;
	struct render_run_options run;
};

static void render_usage(void)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	printf("Usage: qrpool-render [OPTIONS] [FILE...]\n"
		"Render the codes of link pools locally. For each item line (request_id TAB pool)\n"
		"whose code is planned in a link pool, encode url_prefix + request_id as a QR code,\n"
		"store the PNG in the staging DB (state fetched) and print the line once committed.\n"
		"Every other item (wechat pools, codes already made) is passed on untouched, in order.\n"
		"Reads the FILEs ('-' is stdin), or stdin when none is given.\n\n"
		"  -j, --jobs N       encoder threads (default: the online CPUs, here %ld)\n"
		"      --batch N      images per transaction at most (default 500)\n"
		"      --batch-time T longest a rendered code waits for its commit (default 200ms)\n"
		CLI_COMMON_HELP
		"\n" EXITCODE_HELP_LOCAL
		"65 also means: a line was malformed or named an unknown request id or pool; it was\n"
		"skipped and everything else done. 74: the staging DB could not be written; no item\n"
		"of the failed transaction is printed and its codes stay planned. 75: stopped by\n"
		"SIGINT, SIGTERM or SIGHUP, or the staging DB stayed locked by another process\n"
		"past busy_timeout; what was rendered is stored, the rest stays planned. After a\n"
		"signal the rest of stdin is read to its end and let go (the stage before is not\n"
		"cut off), up to the same signal again a second or more later.\n", cpus);
}

static int render_parse_options(int argc, char **argv, struct render_options *options)
{
	enum { OPT_BATCH = CLI_OPT_FIRST_TOOL_OPTION, OPT_BATCH_TIME };
	static const struct option longs[] = {
		CLI_COMMON_LONG,
		{ "jobs", required_argument, NULL, 'j' },
		{ "batch", required_argument, NULL, OPT_BATCH },
		{ "batch-time", required_argument, NULL, OPT_BATCH_TIME },
		{ NULL, 0, NULL, 0 },
	};
	char why[PARSE_WHY_SIZE];
	int64_t value;
	int opt;

	memset(options, 0, sizeof *options);
	options->run.jobs = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (options->run.jobs < 1)
		options->run.jobs = 1;
	options->run.batch_size = 500;
	options->run.batch_ms = 200;
	while ((opt = cli_getopt(argc, argv, CLI_COMMON_SHORT "j:", longs, NULL)) != -1) {
		if (cli_common_option(&options->common, opt, optarg))
			continue;
		switch (opt) {
		case 'j':
			if (parse_int64(optarg, 1, 256, &value, why))
				return cli_usage_error("--jobs: %s", why);
			options->run.jobs = (int)value;
			break;
		case OPT_BATCH:
			if (parse_int64(optarg, 1, 1000000, &value, why))
				return cli_usage_error("--batch: %s", why);
			options->run.batch_size = (int)value;
			break;
		case OPT_BATCH_TIME:
			if (parse_duration_ms(optarg, &options->run.batch_ms, why))
				return cli_usage_error("--batch-time: %s", why);
			break;
		default:
			return cli_bad_option(argv, opt);
		}
	}
	options->run.inputs = argv + optind;
	options->run.input_count = argc - optind;
	return 0;
}

/* Whether stdin is an input: no FILE, or `-` among them. */
static int render_reads_stdin(const struct render_run_options *run)
{
	return cli_reads_stdin(run->inputs, run->input_count);
}

/* The run could not start (the DB locked, say), or a signal stopped it:
 * stdin, if it is the input, is read to its end all the same
 * (cli_drain_stdin), so the stage before is not cut off. Returns `status`. */
static int render_let_go_stdin(const struct render_run_options *run, long long buffered,
	int status)
{
	if (render_reads_stdin(run))
		cli_drain_stdin("their codes stay as they were (a rerun renders the planned ones)",
			buffered);
	return status;
}

static int render_execute(const struct render_options *options, const struct config *config)
{
	struct render_run_counts counts = { 0 };
	struct db db;
	int status, stopped;
	int64_t left;
	char left_said[80] = "";

	if (render_reads_stdin(&options->run) && isatty(STDIN_FILENO))
		return cli_usage_error("item lines come from files or a pipe, and stdin is a terminal");
	/* Every FILE is looked at first: a typo in the last name would
	 * otherwise show only after the others were rendered. A regular file
	 * is opened; a FIFO is not (opening and closing it would let its
	 * writer go on into a pipe nobody reads: SIGPIPE, or its lines lost). */
	for (int i = 0; i < options->run.input_count; i++) {
		const char *name = options->run.inputs[i];
		struct stat st;
		int fd = -1, failed;

		if (!strcmp(name, "-"))
			continue;
		if ((failed = stat(name, &st) != 0) == 0 && !S_ISREG(st.st_mode) &&
		    !S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode))
			return cli_usage_error("%s is %s, not a file of item lines: nothing rendered", name,
				S_ISDIR(st.st_mode) ? "a directory" : "neither a file nor a pipe");
		if (!failed)
			failed = S_ISREG(st.st_mode) ? (fd = open(name, O_RDONLY | O_CLOEXEC)) < 0 :
				access(name, R_OK) != 0;
		if (failed) {
			log_error("%s: %s: nothing rendered", name, strerror(errno));
			return EXIT_IO;
		}
		if (fd >= 0)
			close(fd);
	}
	interrupt_install();
	if ((status = db_open_or_create(&db, config->db_path, config->busy_timeout_ms)))
		return render_let_go_stdin(&options->run, 0, status);
	if ((status = db_run_start(&db, "render"))) {
		db_close(&db);
		return render_let_go_stdin(&options->run, 0, status);
	}
	status = render_run(&options->run, config, &db, &counts);
	/* Stopped by a signal, it says so without -v: cron mails a 75 that must
	 * explain itself. */
	stopped = interrupt_requested() != 0;
	/* Read but not done: a stop, or a batch not committed. */
	left = counts.items_in - counts.rendered - counts.passed - counts.skipped - counts.rejected;
	if (left > 0)
		snprintf(left_said, sizeof left_said, ", %lld read but not rendered (left planned)",
			(long long)left);
	/* With no stop and no error to explain it, a code left behind is our
	 * own fault: said, and not a success. */
	if (left > 0 && !stopped && !status)
		status = EXIT_INTERNAL;
	/* Malformed lines count among the items read, and the bad ones. */
	log_msg(stopped || left > 0 ? LOG_WARN : LOG_INFO, "%s%lld items: %lld rendered, "
		"%lld passed on, %lld already stored by another run, %lld skipped as bad%s%s",
		stopped ? "stopped by a signal: " : "", (long long)(counts.items_in + counts.malformed),
		(long long)counts.rendered, (long long)counts.passed, (long long)counts.skipped,
		(long long)(counts.rejected + counts.malformed), left_said, stopped ?
		"; the codes not rendered stay planned (qrpool-pending --state planned lists them for "
		"a rerun)" : "");
	log_debug("%lld images encoded", (long long)counts.encoded);
	db_run_end(&db, counts.items_in + counts.malformed, counts.rendered + counts.passed, status);
	db_close(&db);
	status = exitcode_worst(status, cli_close_stdout());
	/* (stdout closed first: the stage after us need not wait for the rest) */
	return stopped ? render_let_go_stdin(&options->run, counts.buffered, status) : status;
}

int main(int argc, char **argv)
{
	struct render_options options;
	struct config config;
	int status;

	db_library_init();
	cli_hold_std_fds();
	log_init(argv[0], 0);
	if ((status = render_parse_options(argc, argv, &options)))
		return status;
	log_init(argv[0], options.common.verbosity);
	if ((status = cli_help_or_version(&options.common, render_usage)) >= 0)
		return status;
	if ((status = config_load(&config, options.common.config_path)))
		return status;
	if (!(status = qrfit_check_config(&config))) {
		if (options.common.dump_config) {
			status = config_dump(&config, stdout);
			status = exitcode_worst(status, cli_close_stdout());
		} else
			status = render_execute(&options, &config);
	}
	config_free(&config);
	return status;
}

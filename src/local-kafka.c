/* local-kafka: a Kafka cluster on loopback for the tests, benchmarks and the
 * demo. It is librdkafka's mock cluster, which speaks the real protocol over
 * TCP, with topics made up front and faults injected on command. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "exitcode.h"
#include "interrupt.h"
#include "log.h"
#include "mockctl.h"
#include "mockwake.h"
#include "parse.h"

/* How long a signal or a scheduled command may wait for the main loop. */
#define LOCAL_KAFKA_TICK_MS 100
#define LOCAL_KAFKA_BROKERS_MAX 100

enum { OPT_BROKERS = CLI_OPT_FIRST_TOOL_OPTION, OPT_BOOTSTRAP_FILE, OPT_CONTROL, OPT_AFTER };

struct scheduled_command {
	int64_t delay_ms;
	const char *text;            /* the command as given, for the log */
	struct mockctl_command command;
	int done;
};

struct options {
	struct cli_common common;
	int brokers;
	struct mockctl_topic *topics;
	size_t topic_count;
	struct scheduled_command *schedule;
	size_t schedule_count;
	const char **properties;     /* -X key=value, for the cluster's own handle */
	size_t property_count;
	const char *bootstrap_file;
	const char *control_path;
};

struct cluster {
	rd_kafka_t *handle;          /* the mock needs a client instance to live in */
	rd_kafka_mock_cluster_t *mock;
	int brokers;
	struct mockwake wake;        /* see mockwake.h: without it, ops wait seconds */
};

struct control {                     /* the control FIFO */
	const char *path;
	int fd;
	int writer_fd;
	int created;
	int overlong;                /* discarding a line too long to run */
	size_t used;
	char line[512];
};

static int print_help(void)
{
	int failed = printf(
		"Usage: local-kafka [OPTIONS]\n"
		"A Kafka cluster on loopback for tests, benchmarks and the demo: librdkafka's\n"
		"mock cluster, speaking the Kafka protocol over TCP. It prints the bootstrap\n"
		"servers as one line on stdout, then serves until SIGTERM, SIGINT or SIGHUP.\n"
		"\n"
		"      --brokers N          brokers in the cluster, ids 1 to N (default 1)\n"
		"  -t, --topic NAME[:PARTITIONS[:REPLICATION]]\n"
		"                           create a topic (repeatable); 3 partitions and\n"
		"                           replication min(3, brokers) unless given. The\n"
		"                           mock creates any other topic on first mention,\n"
		"                           even in a metadata query, with 4 partitions\n"
		"      --bootstrap-file FILE  also write the bootstrap servers to FILE, through\n"
		"                           a temporary name, so the file appears complete once\n"
		"                           the cluster is ready; removed at exit\n"
		"      --control FIFO       create FIFO (mode 0600) and run the commands written\n"
		"                           to it, one per line; removed at exit if created here\n"
		"      --after 'DELAY COMMAND'  run a control command DELAY (1500ms, 5s, 2m)\n"
		"                           after the start (repeatable)\n"
		"  -X KEY=VALUE             librdkafka property of the handle the cluster lives\n"
		"                           in, e.g. -X debug=mock -v to trace every request\n"
		"  -v, --verbose            debug messages too (-q: warnings and errors only)\n"
		"  -h, --help               this help;  -V, --version  the version\n"
		"\n"
		"Control commands (FIFO or --after):\n") < 0;

	failed |= mockctl_print_help(stdout) < 0;
	failed |= printf(
		"ERROR is a librdkafka error name (NOT_LEADER_FOR_PARTITION, _TRANSPORT to\n"
		"drop the connection) or number; API a Kafka request name (Produce, Fetch,\n"
		"Metadata, OffsetCommit, InitProducerId, ...) or ApiKey number. 'leader' and\n"
		"'topic-error' create a missing topic, as the mock does ('leader' with\n"
		"PARTITION+1 partitions, 'topic-error' with 4). Each command's result\n"
		"is logged on stderr; a bad command is reported and skipped. Empty lines and\n"
		"lines starting with # are ignored.\n"
		"\n"
		"Unlike the pipeline's tools, local-kafka logs at info level by default: the\n"
		"\"listening on\" line and each command's result are its operator interface.\n"
		"The mock keeps data in memory only, at most 5 MiB or 100,000 message sets per\n"
		"partition, and drops the oldest beyond that (the low watermark moves).\n"
		"\n"
		"Exit status: 0 stopped by SIGTERM, SIGINT or SIGHUP, 64 usage, 70 the cluster\n"
		"could not start, 74 I/O error (stdout, bootstrap file, control FIFO).\n") < 0;
	return failed ? -1 : 0;
}

static int option_brokers(struct options *options, const char *arg)
{
	char why[PARSE_WHY_SIZE];
	int64_t brokers;

	if (parse_int64(arg, 1, LOCAL_KAFKA_BROKERS_MAX, &brokers, why) < 0)
		return cli_usage_error("--brokers: %s", why);
	options->brokers = (int)brokers;
	return 0;
}

static int option_topic(struct options *options, const char *arg)
{
	struct mockctl_topic *topic = &options->topics[options->topic_count];
	char why[MOCKCTL_WHY_SIZE];

	if (mockctl_parse_topic(arg, topic, why) < 0)
		return cli_usage_error("--topic: %s", why);
	for (size_t i = 0; i < options->topic_count; i++)
		if (!strcmp(options->topics[i].name, topic->name))
			return cli_usage_error("--topic: %s given twice", topic->name);
	options->topic_count++;
	return 0;
}

/* "DELAY COMMAND": the command is parsed now, so a typo stops the start
 * rather than surfacing minutes into a benchmark. */
static int option_after(struct options *options, const char *arg)
{
	struct scheduled_command *entry = &options->schedule[options->schedule_count];
	char delay[32], why[MOCKCTL_WHY_SIZE];
	size_t length = strcspn(arg, " \t");

	if (length == 0 || length >= sizeof delay || !arg[length])
		return cli_usage_error("--after: expected 'DELAY COMMAND', got '%s'", arg);
	memcpy(delay, arg, length);
	delay[length] = '\0';
	if (parse_duration_ms(delay, &entry->delay_ms, why) < 0)
		return cli_usage_error("--after: %s", why);
	entry->text = arg + length + strspn(arg + length, " \t");
	if (mockctl_parse(entry->text, &entry->command, why) < 0)
		return cli_usage_error("--after: %s", why);
	entry->done = 0;
	options->schedule_count++;
	return 0;
}

static int option_property(struct options *options, const char *arg)
{
	if (!strchr(arg, '=') || arg[0] == '=')
		return cli_usage_error("-X: expected KEY=VALUE, got '%s'", arg);
	options->properties[options->property_count++] = arg;
	return 0;
}

static int option_apply(struct options *options, int opt, const char *arg)
{
	switch (opt) {
	case OPT_BROKERS: return option_brokers(options, arg);
	case 't': return option_topic(options, arg);
	case OPT_BOOTSTRAP_FILE: options->bootstrap_file = arg; return 0;
	case OPT_CONTROL: options->control_path = arg; return 0;
	case OPT_AFTER: return option_after(options, arg);
	case 'X': return option_property(options, arg);
	default:
		if (cli_common_option(&options->common, opt, arg))
			return 0;
		return cli_usage_error("unknown option");
	}
}

/* Repeatable options point into arrays of argc entries: no option can occur
 * more often than there are arguments. */
static int options_allocate(struct options *options, int argc)
{
	options->brokers = 1;
	options->topics = calloc((size_t)argc, sizeof *options->topics);
	options->schedule = calloc((size_t)argc, sizeof *options->schedule);
	options->properties = calloc((size_t)argc, sizeof *options->properties);
	if (!options->topics || !options->schedule || !options->properties) {
		log_error("out of memory");
		return EXIT_INTERNAL;
	}
	return 0;
}

static void options_free(struct options *options)
{
	free(options->topics);
	free(options->schedule);
	free(options->properties);
}

static int options_parse(int argc, char **argv, struct options *options)
{
	static const struct option longopts[] = {
		{ "brokers", required_argument, NULL, OPT_BROKERS },
		{ "topic", required_argument, NULL, 't' },
		{ "bootstrap-file", required_argument, NULL, OPT_BOOTSTRAP_FILE },
		{ "control", required_argument, NULL, OPT_CONTROL },
		{ "after", required_argument, NULL, OPT_AFTER },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int opt, status = options_allocate(options, argc);

	opterr = 0;  /* our own message, in the log format */
	while (!status && (opt = getopt_long(argc, argv, ":t:X:vqhV", longopts, NULL)) != -1) {
		if (opt == '?')
			return cli_usage_error("unknown option '%s'", argv[optind - 1]);
		if (opt == ':')
			return cli_usage_error("option '%s' needs a value", argv[optind - 1]);
		status = option_apply(options, opt, optarg);
	}
	if (!status && optind < argc)
		return cli_usage_error("unexpected argument '%s'", argv[optind]);
	/* A broker the cluster will not have, once --brokers is known: said
	 * now, not as a warning when its time comes. */
	for (size_t i = 0; !status && i < options->schedule_count; i++) {
		const struct mockctl_command *command = &options->schedule[i].command;

		if (command->kind != MOCKCTL_CREATE_TOPIC && command->broker > options->brokers)
			return cli_usage_error("--after '%s': no broker %d (brokers are 1 to %d)",
				options->schedule[i].text, (int)command->broker, options->brokers);
	}
	return status;
}

/* librdkafka's own messages, in our one-line format. Its levels are syslog's
 * (3 error, 4 warning, 5 notice, ...); <syslog.h> itself would clash with
 * log.h's names. Notices go to debug: for the idle handle hosting the mock
 * they are noise, such as its missing bootstrap.servers. */
static void cluster_log(const rd_kafka_t *handle, int level, const char *facility,
	const char *message)
{
	enum log_level ours = level <= 3 ? LOG_ERROR : level == 4 ? LOG_WARN : LOG_DEBUG;

	(void)handle;
	log_msg(ours, "librdkafka %s: %s", facility, message);
}

static int cluster_configure(rd_kafka_conf_t *conf, const struct options *options)
{
	char key[256], reason[512];

	rd_kafka_conf_set_log_cb(conf, cluster_log);
	for (size_t i = 0; i < options->property_count; i++) {
		const char *property = options->properties[i];
		size_t length = strcspn(property, "=");

		if (length >= sizeof key)
			return cli_usage_error("-X %s: key too long", property);
		memcpy(key, property, length);
		key[length] = '\0';
		if (rd_kafka_conf_set(conf, key, property + length + 1, reason, sizeof reason)
				!= RD_KAFKA_CONF_OK)
			return cli_usage_error("-X %s: %s", property, reason);
	}
	return 0;
}

static int cluster_start(struct cluster *cluster, const struct options *options)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char reason[512];
	int status = cluster_configure(conf, options);

	if (status) {
		rd_kafka_conf_destroy(conf);
		return status;
	}
	/* A producer: it has no group and fetches nothing, so the handle itself
	 * stays idle and only hosts the mock's thread. */
	cluster->handle = rd_kafka_new(RD_KAFKA_PRODUCER, conf, reason, sizeof reason);
	if (!cluster->handle) {
		rd_kafka_conf_destroy(conf);
		log_error("creating the client handle: %s", reason);
		return EXIT_INTERNAL;
	}
	cluster->brokers = options->brokers;
	cluster->mock = rd_kafka_mock_cluster_new(cluster->handle, options->brokers);
	if (!cluster->mock) {
		log_error("could not create the mock cluster (see librdkafka's messages)");
		return EXIT_INTERNAL;
	}
	if (mockwake_start(&cluster->wake, rd_kafka_mock_cluster_bootstraps(cluster->mock)) < 0)
		log_warn("topics and control commands may take a second each: "
			"no helper to wake the mock cluster: %s", strerror(errno));
	return 0;
}

static int cluster_create_topics(struct cluster *cluster, const struct options *options)
{
	char why[MOCKCTL_WHY_SIZE];
	int status = 0;

	mockwake_begin(&cluster->wake);
	for (size_t i = 0; !status && i < options->topic_count; i++)
		if (mockctl_create_topic(cluster->mock, cluster->brokers, &options->topics[i], why) < 0) {
			log_error("--topic: %s", why);
			status = EXIT_USAGE;
		}
	mockwake_end(&cluster->wake);
	return status;
}

static void cluster_stop(struct cluster *cluster)
{
	mockwake_stop(&cluster->wake);
	if (cluster->mock) {
		log_debug("destroying the mock cluster");
		rd_kafka_mock_cluster_destroy(cluster->mock);
	}
	if (cluster->handle) {
		log_debug("destroying the client handle");
		rd_kafka_destroy(cluster->handle);
		log_debug("stopped");
	}
}

/* Parses and applies one control line, logging the result either way: the
 * log is how a test learns that its command took effect. */
static void cluster_run_command(struct cluster *cluster, const char *text,
	const struct mockctl_command *parsed)
{
	struct mockctl_command command;
	char why[MOCKCTL_WHY_SIZE];
	int failed;

	if (!parsed) {
		if (mockctl_parse(text, &command, why) < 0) {
			log_warn("control: %s: %s", text, why);
			return;
		}
		parsed = &command;
	}
	mockwake_begin(&cluster->wake);
	failed = mockctl_apply(cluster->mock, cluster->brokers, parsed, why) < 0;
	mockwake_end(&cluster->wake);
	if (failed)
		log_warn("control: %s: failed: %s", text, why);
	else
		log_info("control: %s: ok", text);
}

static int write_all(int fd, const char *data, size_t size)
{
	while (size > 0) {
		ssize_t written = write(fd, data, size);

		if (written < 0 && errno == EINTR)
			continue;
		if (written < 0)
			return -1;
		data += written;
		size -= (size_t)written;
	}
	return 0;
}

/* Written to a temporary name and renamed, so a test polling for the file
 * never reads half a line. The temporary name is unique per process. */
static int write_bootstrap_file(const char *path, const char *servers)
{
	char temp[PATH_MAX];
	int fd, failed;

	if (snprintf(temp, sizeof temp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof temp) {
		log_error("%s: path too long", path);
		return EXIT_IO;
	}
	fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		log_error("%s: %s", temp, strerror(errno));
		return EXIT_IO;
	}
	failed = write_all(fd, servers, strlen(servers)) < 0 || write_all(fd, "\n", 1) < 0;
	failed |= close(fd) < 0;
	if (failed || rename(temp, path) < 0) {
		log_error("writing %s: %s", path, strerror(errno));
		unlink(temp);
		return EXIT_IO;
	}
	return 0;
}

static int announce(const struct cluster *cluster)
{
	const char *servers = rd_kafka_mock_cluster_bootstraps(cluster->mock);

	if (printf("%s\n", servers) < 0 || fflush(stdout) != 0) {
		log_error("writing to stdout: %s", strerror(errno));
		return EXIT_IO;
	}
	log_info("listening on %s (%d broker%s)", servers, cluster->brokers,
		cluster->brokers == 1 ? "" : "s");
	return 0;
}

static int control_open(struct control *control, const char *path)
{
	struct stat info;

	control->path = path;
	if (mkfifo(path, 0600) == 0)
		control->created = 1;
	else if (errno != EEXIST || stat(path, &info) < 0 || !S_ISFIFO(info.st_mode)) {
		log_error("--control %s: %s", path,
			errno == EEXIST ? "exists and is not a FIFO" : strerror(errno));
		return EXIT_IO;
	}
	control->fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	/* Our own write end keeps the FIFO from reaching end of file whenever a
	 * writer (say `echo broker-down 1 >FIFO`) closes: no re-opening, and
	 * poll() never spins on a hang-up. */
	if (control->fd >= 0)
		control->writer_fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (control->fd < 0 || control->writer_fd < 0) {
		log_error("--control %s: %s", path, strerror(errno));
		return EXIT_IO;
	}
	return 0;
}

static void control_close(struct control *control)
{
	if (control->fd >= 0)
		close(control->fd);
	if (control->writer_fd >= 0)
		close(control->writer_fd);
	if (control->created && unlink(control->path) < 0)
		log_warn("removing %s: %s", control->path, strerror(errno));
}

/* Runs every complete line in the buffer and keeps the unfinished rest. */
static void control_take_lines(struct control *control, struct cluster *cluster)
{
	char *start = control->line, *newline;

	while ((newline = memchr(start, '\n', control->used - (size_t)(start - control->line)))) {
		const char *first_word = start + strspn(start, " \t");

		*newline = '\0';
		if (newline > start && newline[-1] == '\r')
			newline[-1] = '\0';
		if (control->overlong)
			control->overlong = 0;  /* the tail of a line already reported */
		else if (*first_word && *first_word != '#')
			cluster_run_command(cluster, start, NULL);
		start = newline + 1;
	}
	control->used -= (size_t)(start - control->line);
	memmove(control->line, start, control->used);
	if (control->used == sizeof control->line) {
		if (!control->overlong)
			log_warn("control: a line longer than %zu bytes, ignored", sizeof control->line);
		control->overlong = 1;
		control->used = 0;
	}
}

static int control_read(struct control *control, struct cluster *cluster)
{
	for (;;) {
		ssize_t got = read(control->fd, control->line + control->used,
			sizeof control->line - control->used);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0 && errno == EAGAIN)
			return 0;
		if (got <= 0) {
			log_error("reading %s: %s", control->path,
				got < 0 ? strerror(errno) : "unexpected end of file");
			return EXIT_IO;
		}
		control->used += (size_t)got;
		control_take_lines(control, cluster);
	}
}

static int64_t monotonic_ms(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static void run_due_commands(struct cluster *cluster, struct options *options, int64_t elapsed_ms)
{
	for (size_t i = 0; i < options->schedule_count; i++) {
		struct scheduled_command *entry = &options->schedule[i];

		if (!entry->done && entry->delay_ms <= elapsed_ms) {
			entry->done = 1;
			cluster_run_command(cluster, entry->text, &entry->command);
		}
	}
}

/* The main loop: control lines, scheduled commands and the handle's
 * callbacks, until a signal sets the flag. */
static int serve(struct cluster *cluster, struct control *control, struct options *options)
{
	int64_t start = monotonic_ms();
	int status = 0;

	while (!status && !interrupt_requested()) {
		struct pollfd ready = { .fd = control->fd, .events = POLLIN };
		int count;

		run_due_commands(cluster, options, monotonic_ms() - start);
		count = poll(&ready, control->fd >= 0 ? 1 : 0, LOCAL_KAFKA_TICK_MS);
		if (count < 0 && errno != EINTR) {
			log_error("poll: %s", strerror(errno));
			status = EXIT_INTERNAL;
		} else if (count > 0) {
			status = control_read(control, cluster);
		}
		rd_kafka_poll(cluster->handle, 0);
	}
	if (interrupt_requested())
		log_info("stopping on %s", strsignal(interrupt_requested()));
	return status;
}

static int run(struct options *options)
{
	struct cluster cluster = { .handle = NULL };
	struct control control = { .fd = -1, .writer_fd = -1 };
	int status = cluster_start(&cluster, options), wrote_file = 0;

	if (!status)
		status = cluster_create_topics(&cluster, options);
	if (!status && options->control_path)
		status = control_open(&control, options->control_path);
	/* Announced first: a script that waits for the file reads what was said. */
	if (!status)
		status = announce(&cluster);
	if (!status && options->bootstrap_file) {
		status = write_bootstrap_file(options->bootstrap_file,
			rd_kafka_mock_cluster_bootstraps(cluster.mock));
		wrote_file = !status;
	}
	if (!status)
		status = serve(&cluster, &control, options);
	control_close(&control);
	/* A stale file would point the next test at a dead cluster. */
	if (wrote_file && unlink(options->bootstrap_file) < 0)
		log_warn("removing %s: %s", options->bootstrap_file, strerror(errno));
	cluster_stop(&cluster);
	return status;
}

int main(int argc, char **argv)
{
	struct options options = { 0 };
	int status;

	log_init(argv[0], 1);
	interrupt_install();
	status = options_parse(argc, argv, &options);
	if (!status && options.common.help)
		status = print_help() < 0 ? EXIT_IO : 0;
	else if (!status && options.common.version)
		cli_print_version();
	else if (!status) {
		log_init(argv[0], 1 + options.common.verbosity);
		status = run(&options);
	}
	options_free(&options);
	return exitcode_worst(status, cli_close_stdout());
}

/* qrpool-publish: publishes ready codes to their pools' Kafka topics and
 * records each delivery; prints the items Kafka confirmed. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "db.h"
#include "exitcode.h"
#include "interrupt.h"
#include "item.h"
#include "kafka.h"
#include "log.h"
#include "progress.h"
#include "publish.h"

/* How long to wait for input before serving Kafka's delivery reports again. */
#define PUBLISH_INPUT_POLL_MS 50

struct publish_options {
	struct cli_common common;
	int drop_images;
};

static void publish_usage(void)
{
	printf("Usage: qrpool-publish [OPTIONS] < ITEMS\n"
		"Publish ready ('fetched') codes, read as item lines (request_id TAB pool) on stdin,\n"
		"to each pool's Kafka topic: key = request_id, value = the image, headers pool,\n"
		"content-type, sha256, source, page (url for link pools) and created. A code\n"
		"becomes 'published', with partition and offset, once Kafka confirms delivery;\n"
		"its item line is printed after that is committed. Failed deliveries stay\n"
		"'fetched' for a rerun. Items that are unknown or not 'fetched' are reported\n"
		"and skipped. One run at a time on a staging DB (the lock file DB-publish.lock):\n"
		"a second waits for the first up to kafka.timeout, then ends 75, nothing sent.\n\n"
		"      --drop-images  delete each image from the staging DB once published, in\n"
		"                     every pool (each pool does by default: its setting\n"
		"                     drop_image_after_publish = false keeps them)\n"
		CLI_COMMON_HELP
		"--dump-config adds librdkafka's merged producer settings, as comments.\n"
		"\nSIGINT/SIGTERM/SIGHUP: stop reading, wait for the deliveries in flight until\n"
		"kafka.timeout, record them (a lock on the staging DB is waited for until then\n"
		"too), read the rest of the input to its end (the stages before are not cut\n"
		"off), exit 75. The same signal again from the same sender a second or more\n"
		"later (a second Ctrl-C) gives up the rest at once.\n"
		"\n" EXITCODE_HELP
		"65: some items were skipped. 69: Kafka refuses this client (its authentication,\n"
		"ACLs, or settings that refuse idempotent acks=all writes with headers), or a\n"
		"topic does not exist on the cluster, is a name it refuses or not ours to write\n"
		"(that pool's codes stay 'fetched', the other pools' are published). 75: Kafka did\n"
		"not confirm every message within kafka.timeout (unreachable, timed out,\n"
		"interrupted), or the staging DB stayed locked, or another qrpool-publish ran on it\n"
		"past kafka.timeout; those codes stay 'fetched'.\n"
		"After any stop the rest of the input is read to its end and let go (its items\n"
		"stay 'fetched'), so the stages before publish are not cut off.\n");
}

static int publish_parse_options(int argc, char **argv, struct publish_options *options)
{
	enum { OPT_DROP_IMAGES = CLI_OPT_FIRST_TOOL_OPTION };
	static const struct option longs[] = {
		CLI_COMMON_LONG,
		{ "drop-images", no_argument, NULL, OPT_DROP_IMAGES },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	memset(options, 0, sizeof *options);
	while ((opt = cli_getopt(argc, argv, CLI_COMMON_SHORT, longs, NULL)) != -1) {
		if (cli_common_option(&options->common, opt, optarg))
			continue;
		if (opt != OPT_DROP_IMAGES)
			return cli_bad_option(argv, opt);
		options->drop_images = 1;
	}
	if (optind < argc)
		return cli_usage_error("unexpected argument '%s': items are read from stdin", argv[optind]);
	return 0;
}

/* The config file's settings, then librdkafka's as the producer gets them. */
static int publish_dump_config(const struct config *config)
{
	rd_kafka_conf_t *conf;
	int status = config_dump(config, stdout);

	if (status)
		return status;
	if (!(conf = kafka_conf_new(config, RD_KAFKA_PRODUCER, NULL)))
		return EXIT_CONFIG;
	if (kafka_conf_dump(conf, stdout))
		status = EXIT_IO;
	for (size_t i = 0; i < config->pool_count && !status; i++)
		status = kafka_topic_conf_dump(conf, config, &config->pools[i], stdout);
	rd_kafka_conf_destroy(conf);
	return status;
}

static void publish_show_progress(struct progress *progress, struct publisher *publisher)
{
	char extra[96];

	if (!progress->enabled)
		return;   /* (per item: not even the text is made) */
	snprintf(extra, sizeof extra, "%lld in flight, %lld failed", (long long)publisher->in_flight,
		(long long)publisher->counts.failed);
	progress_update(progress, publish_committer_published(&publisher->committer), extra);
}

/* Serves the deliveries due while the input waits, so none waits for its
 * commit; 1 once the run stops (Kafka gave up, the DB failed). */
static int publish_input_waits(void *arg)
{
	struct publisher *publisher = arg;

	publish_serve(publisher, 0);
	return publisher->stop;
}

/* The read function under publish's input: a slow stage before us, even one
 * that wrote half a line, holds up no commit; a signal or the run's stop ends
 * the wait (EINTR: half a line then is the end of the input). */
static ssize_t publish_read_stdin(void *cookie, char *buffer, size_t size)
{
	const struct publisher *publisher = cookie;

	if (publisher->draining)   /* the run is over: only the input is read on */
		return interrupt_read_draining(STDIN_FILENO, buffer, size, cli_drain_waiting);
	return interrupt_read_blocking(STDIN_FILENO, buffer, size, PUBLISH_INPUT_POLL_MS,
		publish_input_waits, cookie);
}

/* What becomes of the items of input lines let go unpublished. */
static const char *publish_left_fetched(const struct config *config)
{
	static char left[PUBLISH_RESUME_MAX + 100];

	if (!*left)
		snprintf(left, sizeof left, "they stay fetched (the next fill feeds them on first; by "
			"hand, under the fills' lock: %s)", publish_resume_command(config));
	return left;
}

/* After the run stopped publishing (Kafka gave up, the DB failed), the rest of
 * the input is read to its end and let go, its items left fetched in the DB:
 * the stages before this one are not cut off. They used to die on a broken
 * pipe (fetch with 74), and the night's WeChat quota with them, for a Kafka
 * outage of a minute. So after a signal to this stage alone: a second one
 * ends the reading. */
static void publish_drain(FILE *in, const struct config *config)
{
	char buffer[65536];
	long long lines = 0;
	size_t got;

	clearerr(in);   /* the stop ended a read (EINTR) */
	while ((got = fread(buffer, 1, sizeof buffer, in)) > 0)
		for (size_t i = 0; i < got; i++)
			lines += buffer[i] == '\n';
	cli_said_let_go(lines, publish_left_fetched(config));
}

/* Reads items until the input ends, a signal comes or Kafka gives up. After
 * a stop, *rest is the input left to drain (publish_drain), once the run is
 * recorded and the producer gone; else NULL. */
static int publish_read_items(struct publisher *publisher, FILE **rest)
{
	static const cookie_io_functions_t input_functions = { .read = publish_read_stdin };
	FILE *in = fopencookie(publisher, "r", input_functions);
	struct item_reader reader;
	struct progress progress;
	struct item item;
	int status = 0, rc = 1, drain = 0;
	long done = 0;   /* lines read and dealt with */

	if (!in) {
		log_error("reading stdin: %s", strerror(errno));
		return exitcode_worst(EXIT_INTERNAL, publish_finish(publisher));
	}
	item_reader_init(&reader, in, "stdin");
	progress_init(&progress, 0);
	while (!publisher->stop && (rc = item_read(&reader, &item)) != 0) {
		/* A signal or a stop ends a read blocked on half a line (EINTR). */
		if (rc < 0) {
			status = interrupt_requested() || publisher->stop ? 0 : EXIT_IO;
			break;
		}
		if (publisher->stop)
			break;   /* a line completed as the run stopped: it stays fetched */
		publish_item(publisher, &item, reader.name);
		done = reader.line_number;
		publish_show_progress(&progress, publisher);
	}
	if (interrupt_requested()) {
		log_warn("interrupted: reading stopped, waiting for the deliveries in flight "
			"(the same signal again gives them up); then the rest of the input is read to "
			"its end, so the stages before this one are not cut off");
		status = EXIT_TEMPFAIL;
		drain = 1;
	} else if (rc != 0 && publisher->stop) {
		log_warn("publishing stopped after line %ld: the items after it are not published and "
			"stay fetched; the rest of the input is read to its end, so the stages before this "
			"one finish their work", done);
		drain = 1;
	}
	if (reader.bad_lines)
		status = exitcode_worst(status, EXIT_DATA);
	publisher->counts.bad_lines = reader.bad_lines;   /* for the summary */
	status = exitcode_worst(status, publish_finish(publisher));
	progress_end(&progress);
	item_reader_free(&reader);
	publisher->draining = drain;   /* the input's reads no longer serve the producer */
	if (drain)
		*rest = in;
	else
		fclose(in);
	return status;
}

/* How often a held publish lock is tried again. */
#define PUBLISH_LOCK_POLL_MS 100

/* The pid written in the publish lock, if that process still runs; else 0. */
static long publish_lock_holder(int fd)
{
	char text[32], *end;
	ssize_t got = pread(fd, text, sizeof text - 1, 0);
	long pid;

	if (got <= 0)
		return 0;
	text[got] = '\0';
	errno = 0;
	pid = strtol(text, &end, 10);
	return !errno && end != text && *end == '\n' && db_run_pid_alive(pid) ? pid : 0;
}

/* When the run of publish `pid` began, as it recorded it (the codes it may
 * have published are those recorded since); now if it has recorded none yet
 * (it takes the lock first) or is not known. */
static double publish_holder_started(struct db *db, long pid)
{
	sqlite3_stmt *stmt;
	double started = db_now();

	if (pid && !db_prepare(db, &stmt, "SELECT max(started_at) FROM runs "
			"WHERE stage = 'publish' AND pid = ? AND ended_at IS NULL")) {
		sqlite3_bind_int64(stmt, 1, pid);
		if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_type(stmt, 0) != SQLITE_NULL)
			started = sqlite3_column_double(stmt, 0);
		sqlite3_finalize(stmt);
	}
	return started;
}

/* Two qrpool-publish on one DB at once (a resume by hand beside a fill's, two
 * by hand) would each find the other's codes fetched, and send them twice: a
 * run holds DB-publish.lock beside the DB (flock, so a killed run holds it no
 * more) until it sends nothing more. One held is waited for up to kafka.timeout (a resume
 * of seconds beside a fill's start), then the run ends 75, nothing done.
 * Returns 0 (*waited_from: when the run waited for began, if one was, else
 * 0; *lock_fd: the lock's descriptor, to close once nothing more is sent)
 * or an exit code. */
static int publish_lock(struct db *db, const struct config *config, double *waited_from,
	int *lock_fd)
{
	const char *path = sqlite3_db_filename(db->handle, "main");
	double timeout = (double)config->kafka.timeout_ms / 1000, deadline = 0;
	struct timespec poll = { 0, PUBLISH_LOCK_POLL_MS * 1000000L };
	char file[PATH_MAX], holder[48] = "";
	struct stat st, db_st;
	int fd, writable = 1;
	long pid;

	*waited_from = 0;
	if (!path || !*path)
		path = db->path;
	if ((size_t)snprintf(file, sizeof file, "%s-publish.lock", path) >= sizeof file) {
		log_error("%s-publish.lock: the path is too long", path);
		return EXIT_IO;
	}
	/* Readable by all who may enter the DB's directory: a run by another
	 * user who may not write it (one by hand as root made it) locks it read
	 * only, and writes no pid. */
	if ((fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644)) < 0 && errno == EACCES) {
		fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		writable = 0;
		if (fd < 0 && errno == ENOENT) {
			log_error("%s: cannot make qrpool-publish's lock on the staging DB: the DB's "
				"directory is not writable by this user", file);
			return EXIT_IO;
		}
	}
	if (fd < 0) {
		log_error("%s: cannot open qrpool-publish's lock on the staging DB: %s%s", file,
			strerror(errno), errno == ELOOP ? " (a symbolic link: remove it)" : "");
		return EXIT_IO;
	}
	/* Made by root (a run by hand): the DB's owner's, as SQLite gives root's
	 * -wal to the DB's owner, so the cron's user can write its pid in it. */
	if (writable && geteuid() == 0 && fstat(fd, &st) == 0 && stat(path, &db_st) == 0 &&
	    st.st_uid != db_st.st_uid && fchown(fd, db_st.st_uid, db_st.st_gid) != 0)
		log_debug("%s: cannot give it to the DB's owner: %s", file, strerror(errno));
	while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK) {
			log_error("%s: cannot lock it: %s", file, strerror(errno));
			close(fd);
			return EXIT_IO;
		}
		if (!*waited_from) {
			if ((pid = publish_lock_holder(fd)))
				snprintf(holder, sizeof holder, " (pid %ld)", pid);
			*waited_from = publish_holder_started(db, pid);
			deadline = db_monotonic() + timeout;
			log_warn("another qrpool-publish%s is running on the staging DB %s (it holds "
				"%s): waiting for it to end, up to kafka.timeout (%g s), as two at once "
				"would send the same codes twice", holder, path, file, timeout);
		}
		if (interrupt_requested() || db_monotonic() >= deadline) {
			log_msg(interrupt_requested() ? LOG_WARN : LOG_ERROR, "%s while another "
				"qrpool-publish%s runs on the staging DB %s: nothing was sent; run again "
				"once it has ended (a fill's publish ends with its fetch)",
				interrupt_requested() ? "interrupted" : "kafka.timeout passed", holder, path);
			close(fd);
			return EXIT_TEMPFAIL;
		}
		nanosleep(&poll, NULL);
	}
	if (writable) {
		char text[32];
		int length = snprintf(text, sizeof text, "%ld\n", (long)getpid());

		if (ftruncate(fd, 0) != 0 || pwrite(fd, text, (size_t)length, 0) != length)
			log_debug("%s: cannot write this run's pid in it: %s", file, strerror(errno));
	}
	if (*waited_from)
		log_info("the other qrpool-publish has ended: this run goes on");
	*lock_fd = fd;
	return 0;
}

/* After a stop, how long the run's end waits for a lock to record itself. */
#define PUBLISH_END_WAIT_MS 2000
static double publish_end_wait_until;

static int publish_end_give_up(void *unused)
{
	(void)unused;
	return interrupt_insisted() || db_monotonic() >= publish_end_wait_until;
}

/* A failed write to stdout was said by the committer already. */
static int publish_stdout_failed;
/* The committer was given up while stuck writing to stdout (a second signal):
 * the process must end without flushing stdout, which would block too. */
static int publish_abandoned;

static int publish_run(const struct publish_options *options, const struct config *config)
{
	/* Static: a committer given up (publish_abandoned) may still be running
	 * in it after this returns, until main _exits. */
	static struct publisher publisher;
	struct db db;
	FILE *rest = NULL;
	double waited_from;
	int status, drain_stdin = 0, lock_fd = -1;

	if ((status = db_open_or_create(&db, config->db_path, config->busy_timeout_ms))) {
		cli_drain_stdin(publish_left_fetched(config), 0);
		return status;
	}
	db_busy_interruptible(&db);   /* a lookup's lock wait ends at a stop */
	/* (Refused the lock, no run is recorded: db_run_end does nothing.) */
	if (!(status = publish_lock(&db, config, &waited_from, &lock_fd)) &&
	    !(status = db_run_start(&db, "publish")) &&
	    !(status = publish_open(&publisher, config, &db, options->drop_images, stdout))) {
		publisher.waited_from = waited_from;
		status = publish_read_items(&publisher, &rest);
		publish_stdout_failed = publisher.committer.out_failed;
		publish_abandoned = publisher.committer.abandoned;
		/* After a stop, the run's end is recorded too (report would show
		 * it running), a lock waited for briefly (a second signal ends it). */
		if (interrupt_requested()) {
			publish_end_wait_until = db_monotonic() + PUBLISH_END_WAIT_MS / 1000.0;
			db_busy_until(&db, publish_end_give_up, NULL);
		}
		db_run_end(&db, publisher.counts.read + publisher.counts.bad_lines,
			publisher.counts.published, status);
		publish_close(&publisher);
	} else {
		db_run_end(&db, 0, 0, status);
		drain_stdin = 1;
	}
	db_close(&db);
	/* Nothing more is sent: another publish may run beside the rest of the
	 * input's reading (a resume by hand of what was fetched after a stop). */
	if (lock_fd >= 0)
		close(lock_fd);
	/* The stage after us need not wait; not when the committer was given
	 * up stuck on stdout (its lock is held: a flush would block too). */
	if ((drain_stdin || rest) && !publish_abandoned)
		cli_release_stdout();
	if (drain_stdin)
		cli_drain_stdin(publish_left_fetched(config), 0);
	/* The run is recorded (report shows its exit) and the producer gone
	 * before the rest of the input, which may take the night, is read. */
	if (rest) {
		publish_drain(rest, config);
		fclose(rest);
	}
	return status;
}

int main(int argc, char **argv)
{
	struct publish_options options;
	struct config config;
	int status;

	db_library_init();
	cli_hold_std_fds();
	log_init(argv[0], 0);
	if ((status = publish_parse_options(argc, argv, &options)))
		return status;
	log_init(argv[0], options.common.verbosity);
	if ((status = cli_help_or_version(&options.common, publish_usage)) >= 0)
		return status;
	if (!options.common.dump_config && isatty(STDIN_FILENO))
		return cli_usage_error("item lines come from a pipe (... | qrpool-publish), and stdin "
			"is a terminal");
	if ((status = config_load(&config, options.common.config_path)))
		return status;
	interrupt_install();
	if (options.common.dump_config)
		status = publish_dump_config(&config);
	else
		status = publish_run(&options, &config);
	if (publish_abandoned) {
		log_exit_said(status);
		_exit(status);
	}
	config_free(&config);
	if (publish_stdout_failed) {
		fclose(stdout);
		return status;
	}
	return exitcode_worst(status, cli_close_stdout());
}

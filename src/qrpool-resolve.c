/* qrpool-resolve: prints the parameters bound to request ids, the lookup the
 * middle page makes when a code is scanned. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "exitcode.h"
#include "log.h"
#include "parse.h"
#include "resolve.h"
#include "rid.h"

/* A line longer than this on stdin holds no id. */
#define RESOLVE_LINE_MAX 4096
#define RESOLVE_SHOWN_MAX 40   /* bytes of a bad id shown in its message */

/* Exit status for ids that no binding knows (the issue asks for 1). */
#define RESOLVE_EXIT_UNKNOWN 1

static void resolve_usage(void)
{
	printf("Usage: qrpool-resolve [OPTIONS] [REQUEST_ID...]\n"
		"Print the parameters bound to each request id: \"request_id TAB json\" per id, in\n"
		"the order given; json is null for an id nobody bound. Redis first (when\n"
		"configured); on a miss the staging DB's bindings, and the answer is put back into\n"
		"Redis. Without arguments, ids come from stdin, one per line (the first\n"
		"tab-separated field, so qrpool-claim's output can be piped in); each answer comes\n"
		"as soon as stdin has nothing more to read yet.\n\n"
		CLI_COMMON_HELP
		"\nExit status: 0 every id resolved, 1 some id is unknown, 65 some id is not a\n"
		"request id (1 to 32 scene characters), 74 I/O error (the DB, stdout), 75 the DB\n"
		"stayed locked past busy_timeout, 78 bad config, 70 internal error, 64 usage. The\n"
		"known ids are printed either way, up to the first the DB could not answer: the run\n"
		"ends there. Redis being down is a warning only.\n");
}

static int resolve_parse_options(int argc, char **argv, struct cli_common *common)
{
	static const struct option longs[] = { CLI_COMMON_LONG, { NULL, 0, NULL, 0 } };
	int opt;

	memset(common, 0, sizeof *common);
	while ((opt = cli_getopt(argc, argv, CLI_COMMON_SHORT, longs, NULL)) != -1)
		if (!cli_common_option(common, opt, optarg))
			return cli_bad_option(argv, opt);
	return 0;
}

/* The first RESOLVE_SHOWN_MAX bytes of a bad id, for a message: bytes outside
 * printable ASCII as \xHH (a CR or an escape sequence from the input would
 * rewrite the operator's terminal line). `shown` holds RESOLVE_SHOWN_MAX * 4 + 1. */
static const char *resolve_shown(const char *id, size_t length, char *shown)
{
	size_t at = 0;

	for (size_t i = 0; i < length && i < RESOLVE_SHOWN_MAX; i++) {
		unsigned char byte = (unsigned char)id[i];

		if (byte >= 0x20 && byte < 0x7f)
			shown[at++] = (char)byte;
		else
			at += (size_t)sprintf(shown + at, "\\x%02x", byte);
	}
	shown[at] = '\0';
	return shown;
}

/* Queues one id; `where` names it in messages ("argument 2", "line 7"). */
static int resolve_one(struct resolver *resolver, const char *id, size_t length, const char *where,
	long number)
{
	char copy[RID_SCENE_MAX + 1];

	if (!rid_is_scene(id, length)) {
		char shown[RESOLVE_SHOWN_MAX * 4 + 1];

		log_error("%s %ld: '%s' is not a request id (1 to %d scene characters)", where, number,
			resolve_shown(id, length, shown), RID_SCENE_MAX);
		return EXIT_DATA;
	}
	memcpy(copy, id, length);
	copy[length] = '\0';
	return resolve_add(resolver, copy, stdout);
}

static int resolve_arguments(struct resolver *resolver, char **ids, int count)
{
	int status = 0;

	for (int i = 0; i < count && !resolve_stops(status); i++)
		status = exitcode_worst(status, resolve_one(resolver, ids[i], strlen(ids[i]), "argument",
			i + 1));
	return status;
}

/* One line of stdin: its first tab-separated field is the id (a BOM before
 * the first line, from an editor's export, is dropped, as every tool does). */
static int resolve_line(struct resolver *resolver, const char *line, size_t length, long number)
{
	size_t id_length = 0, blank = 0, bom = number == 1 ? parse_bom_length(line, length) : 0;

	line += bom;
	length -= bom;
	while (id_length < length && line[id_length] != '\t')
		id_length++;
	while (id_length > 0 && line[id_length - 1] == '\r')
		id_length--;   /* a CRLF line's CR; one inside the id ("ID\rjunk") is no id */
	while (blank < length && line[blank] == '\r')
		blank++;
	if (blank == length)
		return 0;   /* a blank line names no id */
	return resolve_one(resolver, line, id_length, "line", number);
}

static int resolve_stdin_ready(void)
{
	struct pollfd input = { .fd = STDIN_FILENO, .events = POLLIN };

	return poll(&input, 1, 0) > 0;
}

/* Ids from stdin, one per line, read in blocks of our own: before a read that
 * would wait, the ids queued so far are answered and stdout is flushed, so a
 * caller that writes an id and waits for its answer (a co-process) gets it.
 * A line longer than RESOLVE_LINE_MAX holds no id: it is reported and skipped
 * without being kept. */
static int resolve_stdin(struct resolver *resolver)
{
	char buffer[RESOLVE_LINE_MAX + 2];   /* a longest line, its '\n', and one more */
	size_t used = 0;
	long number = 0;
	int status = 0, overlong = 0, eof = 0;

	while (!resolve_stops(status)) {
		size_t at = 0;
		char *newline;
		ssize_t got;

		while (!resolve_stops(status) && (newline = memchr(buffer + at, '\n', used - at))) {
			number++;
			if (!overlong)
				status = exitcode_worst(status, resolve_line(resolver, buffer + at,
					(size_t)(newline - buffer) - at, number));
			overlong = 0;
			at = (size_t)(newline - buffer) + 1;
		}
		memmove(buffer, buffer + at, used - at);
		used -= at;
		if (used > RESOLVE_LINE_MAX) {   /* no '\n' in a longest line's room and more */
			if (!overlong)
				log_error("line %ld: longer than %d bytes: not a request id", number + 1,
					RESOLVE_LINE_MAX);
			status = exitcode_worst(status, EXIT_DATA);
			overlong = 1;
			used = 0;
		}
		if (eof || resolve_stops(status))
			break;
		/* Nothing more to read yet: the ids read so far are answered, and
		 * every answer goes out, those of a full batch answered on the way
		 * too (with none pending, a caller that wrote a batch's worth would
		 * wait for them while this waits for it). */
		if (!resolve_stdin_ready()) {
			if (resolver->count)
				status = exitcode_worst(status, resolve_flush(resolver, stdout));
			if (status != EXIT_IO && fflush(stdout) != 0)
				status = EXIT_IO;   /* said by cli_close_stdout */
			if (resolve_stops(status))
				break;
		}
		got = read(STDIN_FILENO, buffer + used, RESOLVE_LINE_MAX + 1 - used);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			log_error("reading stdin: %s", strerror(errno));
			status = EXIT_IO;
		} else if (got == 0) {
			eof = 1;
			if (used)
				buffer[used++] = '\n';   /* the last line, unended */
		} else {
			used += (size_t)got;
		}
	}
	return status;
}

static int resolve_run(const struct config *config, char **ids, int count)
{
	struct resolver resolver;
	int status;

	if ((status = resolve_open(&resolver, config)))
		return status;
	status = count ? resolve_arguments(&resolver, ids, count) : resolve_stdin(&resolver);
	if (!resolve_stops(status))
		status = exitcode_worst(status, resolve_flush(&resolver, stdout));
	/* stdout is closed here, so that a write error outranks the exit 1 of
	 * unknown ids, which exitcode_worst does not know. */
	status = exitcode_worst(status, cli_close_stdout());
	log_info("%lld from redis, %lld from the database, %lld unknown; %lld cached values were no "
		"record", (long long)resolver.from_cache, (long long)resolver.from_db,
		(long long)resolver.unknown, (long long)resolver.bad_cached);
	if (!status && resolver.unknown)
		status = RESOLVE_EXIT_UNKNOWN;
	resolve_close(&resolver);
	return status;
}

int main(int argc, char **argv)
{
	struct cli_common common;
	struct config config;
	int status;

	cli_hold_std_fds();
	log_init(argv[0], 0);
	/* stdout closed by the next stage: a write error (74), said, not death by SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	if ((status = resolve_parse_options(argc, argv, &common)))
		return status;
	log_init(argv[0], common.verbosity);
	if ((status = cli_help_or_version(&common, resolve_usage)) >= 0)
		return status;
	if ((status = config_load(&config, common.config_path)))
		return status;
	if (common.dump_config) {
		status = config_dump(&config, stdout);
		status = exitcode_worst(status, cli_close_stdout());
	} else
		status = resolve_run(&config, argv + optind, argc - optind);
	config_free(&config);
	return status;
}

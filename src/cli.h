/* Options every tool shares, and the checked end of a run's output. */
#ifndef QRPOOL_CLI_H
#define QRPOOL_CLI_H

#include <getopt.h>
#include <stdio.h>

enum { CLI_OPT_DUMP_CONFIG = 0x1000, CLI_OPT_FIRST_TOOL_OPTION };
/* cli_getopt's answer for an option given twice (said already). */
#define CLI_OPT_REPEATED 0x0fff

struct cli_common {
	const char *config_path;   /* -c FILE; NULL: $QRPOOL_CONFIG or the default */
	int verbosity;             /* -v: +1, -q: -1 */
	int dump_config;
	int help;
	int version;
};

/* The leading ':' keeps getopt quiet (cli_bad_option says it in the log's
 * format) and tells a missing value (':') from an unknown option ('?'). */
#define CLI_COMMON_SHORT ":c:vqhV"
#define CLI_COMMON_LONG \
	{ "config", required_argument, NULL, 'c' }, \
	{ "verbose", no_argument, NULL, 'v' }, \
	{ "quiet", no_argument, NULL, 'q' }, \
	{ "help", no_argument, NULL, 'h' }, \
	{ "version", no_argument, NULL, 'V' }, \
	{ "dump-config", no_argument, NULL, CLI_OPT_DUMP_CONFIG }

#define CLI_COMMON_HELP \
	"  -c, --config FILE  config file (default: $QRPOOL_CONFIG, else /etc/qrpool/qrpool.cfg)\n" \
	"      --dump-config  print the merged configuration, secrets masked, and exit\n" \
	"  -v, --verbose      more diagnostics on stderr (-vv: debug)\n" \
	"  -q, --quiet        errors only on stderr (a failing run: its last warning too)\n" \
	"  -h, --help         this help;  -V, --version  the version\n"

/* Handles a common option; returns 1 if `opt` was one. */
int cli_common_option(struct cli_common *common, int opt, const char *arg);

/* Whether a tool given these FILE operands reads stdin: none given, or '-'. */
int cli_reads_stdin(char *const *inputs, int count);
/* Opens a FILE operand to read ('-': stdin's descriptor) so that its reads,
 * through interrupt_read_blocking, hear a signal even while a FIFO waits for
 * its writer. -1 (errno) when it cannot be opened. */
int cli_open_input(const char *name);
struct stat;
/* Whether anyone but this user and root may change the file or directory
 * `path` of status `st`: others may write to it, or its group unless that
 * is the owner's own or this user's (no other member), or users its POSIX
 * ACL names, or another user owns it (the rule of OpenSSH's
 * secure_permissions). 1, with `why` ("writable by its group (mode 0664)")
 * and `fix` (the command that mends it), else 0. */
int cli_others_may_change(const struct stat *st, const char *path, char *why, size_t why_size,
	char *fix, size_t fix_size);
/* Whether anyone but this user and root could put another file in the place
 * of `path`: a directory above it, as written or as resolved, that they may
 * change (cli_others_may_change's rule, but for a sticky one of root's or
 * this user's, as /tmp), or a symbolic link of theirs on the way. 1, with
 * `why` ("in a directory writable by others (mode 0777): /srv/q") and `fix`
 * (PATH_MAX + 128 bytes each will do), else 0. The check of a file is as
 * good as this: a rename in such a directory swaps a file between check and
 * read. A relative `path` is taken from the working directory. */
int cli_others_may_replace(const char *path, char *why, size_t why_size, char *fix,
	size_t fix_size);
/* getopt_long, but an option taking a value given twice (`-n 5 -n 7`, which
 * getopt would leave to the last, a typo's first value dropped without a
 * word) is said and returned as CLI_OPT_REPEATED, for cli_bad_option;
 * except the short options in `repeatable` (pending's --state, a list). */
int cli_getopt(int argc, char *const *argv, const char *shorts, const struct option *longs,
	const char *repeatable);
/* Logs "message (try --help)" and returns EXIT_USAGE. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* For getopt's ':' (a value missing) or '?' (unknown, or a value given to an
 * option taking none): says which option, exits 64; CLI_OPT_REPEATED: 64. */
int cli_bad_option(char *const *argv, int opt);

void cli_print_version(void);

/* --help and --version end the run once printed: prints `usage` (the help)
 * or the version, whichever `common` asks for (the help first), and returns
 * cli_close_stdout()'s status. -1 when it asks for neither. */
int cli_help_or_version(const struct cli_common *common, void (*usage)(void));

/* Called first in main: a standard descriptor the caller closed (`>&-`) is
 * held by /dev/null opened the wrong way, so no socket or file opened later
 * takes its number (a Redis connection on fd 1 would receive the output) and
 * using it still fails (EBADF) as a closed one would: writes to a closed
 * stdout end in 74, reads from a closed stdin likewise. */
void cli_hold_std_fds(void);

/* Flushes and closes stdout, checking for errors (a full disk or closed pipe
 * must not pass silently). Returns 0 or EXIT_IO. */
int cli_close_stdout(void);
/* A write to stdout failed (errno set): said once per process, and the exit
 * code. A broken pipe after a stop signal is the next stage stopping too (a
 * signal to the whole pipeline: timeout(1), systemd, a hangup): 75, as the
 * stop is, not 74; the codes whose lines were not passed on are stored. */
int cli_stdout_failed(void);

/* For a stage that stops before reading its input to its end (the staging DB
 * locked at its start, a signal to this stage alone): stdin is read to its
 * end and let go, so that the stage before it in a pipeline is not cut off
 * (its broken pipe, 74, would make a night that only has to be run again read
 * as an I/O error). Not from a terminal; an insisting signal ends it
 * (interrupt_read_draining). The lines let go are said, with `left`: what
 * becomes of their items; `buffered` lines the caller had read into a buffer
 * of its own and leaves untaken count among them. */
void cli_drain_stdin(const char *left, long long buffered);
/* Says that `lines` lines (if any) were read to the end and let go, `left`
 * what becomes of their items: cli_drain_stdin's words, for a tool that
 * drains through a FILE of its own. */
void cli_said_let_go(long long lines, const char *left);
/* Before a drain: what stdout holds is written, and the stage after this one
 * sees its end at once (fd 1 becomes /dev/null; a write error stays on the
 * stream for cli_close_stdout to report). */
void cli_release_stdout(void);
/* While stdin is drained after a signal and the stage before still writes
 * (the process seems stuck): says so, once. */
void cli_drain_waiting(void);

#endif

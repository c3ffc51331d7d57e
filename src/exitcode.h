/* Exit statuses shared by every qrpool tool (sysexits values; the README's
 * table says what each means).
 * Only main() turns these into a process exit; library code returns them. */
#ifndef QRPOOL_EXITCODE_H
#define QRPOOL_EXITCODE_H

enum exitcode {
	EXIT_DONE = 0,          /* all work done */
	EXIT_USAGE = 64,        /* bad command line */
	EXIT_DATA = 65,         /* bad input data (a line, a file) */
	EXIT_UPSTREAM = 69,     /* upstream refuses: credentials, page, permission */
	EXIT_INTERNAL = 70,     /* a bug or an impossible state */
	EXIT_IO = 74,           /* I/O error: disk, database file, stdout */
	EXIT_TEMPFAIL = 75,     /* try again later: quota, deadline, lock, Kafka down */
	EXIT_CONFIG = 78,       /* bad configuration */
};

/* The more serious of two statuses, so a run reports its worst problem.
 * Usage and config errors stop a run before work starts; among the rest an
 * internal error outranks I/O, which outranks upstream refusals, bad data and
 * "try again later". */
int exitcode_worst(int a, int b);

/* One line naming every status, for --help texts. */
#define EXITCODE_HELP \
	"Exit status: 0 done, 64 usage, 65 bad input data, 69 upstream refused,\n" \
	"70 internal error, 74 I/O error, 75 try again later, 78 bad config.\n"
/* The same for a tool that asks no upstream (no 69). */
#define EXITCODE_HELP_LOCAL \
	"Exit status: 0 done, 64 usage, 65 bad input data, 70 internal error,\n" \
	"74 I/O error, 75 try again later, 78 bad config.\n"

#endif

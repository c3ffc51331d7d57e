#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "exitcode.h"
#include "interrupt.h"
#include "log.h"

#ifndef QRPOOL_VERSION
#define QRPOOL_VERSION "0.1.0"
#endif

int cli_common_option(struct cli_common *common, int opt, const char *arg)
{
	switch (opt) {
	case 'c': common->config_path = arg; return 1;
	case 'v': common->verbosity++; return 1;
	case 'q': common->verbosity--; return 1;
	case 'h': common->help = 1; return 1;
	case 'V': common->version = 1; return 1;
	case CLI_OPT_DUMP_CONFIG: common->dump_config = 1; return 1;
	default: return 0;
	}
}

int cli_reads_stdin(char *const *inputs, int count)
{
	int reads_stdin = !count;

	for (int i = 0; i < count; i++)
		reads_stdin |= !strcmp(inputs[i], "-");
	return reads_stdin;
}

int cli_open_input(const char *name)
{
	int fd;

	if (!strcmp(name, "-"))
		return STDIN_FILENO;
	/* Without waiting for a FIFO's writer: the reads wait for it in ticks,
	 * so a stop is heard meanwhile (Linux's poll says no hangup on a FIFO
	 * before a writer has come). The reads then block as stdin's do. */
	if ((fd = open(name, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) > STDIN_FILENO)
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	return fd;
}

/* Whether group `gid` is user `uid`'s alone: that user's own group (umask
 * 002 with a group per user, Debian's way), naming no other member and no
 * other user's own group (a `users` group every account has as its own, as
 * some systems make it), as OpenSSH's secure_permissions judges. */
static int cli_group_is_private(gid_t gid, uid_t uid)
{
	const struct passwd *user = getpwuid(uid);
	const struct group *group;
	char owner[256];
	int alone = 1;

	if (!user || user->pw_gid != gid || strlen(user->pw_name) >= sizeof owner)
		return 0;
	strcpy(owner, user->pw_name);   /* (getpwent reuses the buffer) */
	if (!(group = getgrgid(gid)))
		return 0;
	for (char **member = group->gr_mem; *member; member++)
		if (strcmp(*member, owner))
			return 0;
	setpwent();
	while (alone && (user = getpwent()))
		alone = user->pw_gid != gid || user->pw_uid == uid;
	endpwent();
	return alone;
}

int cli_others_may_change(const struct stat *st, const char *path, char *why, size_t why_size,
	char *fix, size_t fix_size)
{
	unsigned mode = (unsigned)(st->st_mode & 07777);
	/* Its group may write it where that group is its owner's alone, or this
	 * user's (a directory of root's, 2770 root:qrpool, the tools run as
	 * qrpool): no one else can. Unless an ACL grants more: the group bits are
	 * then its mask, and say nothing of who. */
	int acl = (st->st_mode & S_IWGRP) && getxattr(path, "system.posix_acl_access", NULL, 0) > 0;
	int group_writes = (st->st_mode & S_IWGRP) && (acl ||
		(!cli_group_is_private(st->st_gid, st->st_uid) &&
		 !cli_group_is_private(st->st_gid, geteuid())));

	if ((st->st_mode & S_IWOTH) || group_writes) {
		snprintf(why, why_size, "writable by %s (mode %04o)", st->st_mode & S_IWOTH ? "others" :
			acl ? "its group or the users its ACL names" : "its group", mode);
		snprintf(fix, fix_size, "run chmod go-w %s", path);
	} else if (st->st_uid != geteuid() && st->st_uid != 0) {
		const struct passwd *owner = getpwuid(st->st_uid);
		char name[64];

		/* (sudo's form of a uid when it has no name) */
		if (owner)
			snprintf(name, sizeof name, "%s", owner->pw_name);
		else
			snprintf(name, sizeof name, "#%u", (unsigned)st->st_uid);
		snprintf(why, why_size, "owned by another user (uid %u)", (unsigned)st->st_uid);
		if (geteuid() == 0)   /* root by hand, where the owner runs the tools */
			snprintf(fix, fix_size, "run the tools as that user (sudo -u %s ...), not as "
				"root, who would run what that user puts there; or, if root is to run "
				"them, give it to root: chown 0 %s", name, path);
		else
			snprintf(fix, fix_size, "give it to this user or to root: chown %u %s",
				(unsigned)geteuid(), path);
	} else
		return 0;
	return 1;
}

/* A directory on the way to a file: whether anyone but this user and root
 * may rename entries in it (cli_others_may_change's rule; a sticky one of
 * root's or this user's lets no one rename what is not theirs: /tmp). */
static int cli_directory_shared(const char *dir, char *why, size_t why_size, char *fix,
	size_t fix_size)
{
	char what[64];
	struct stat st;

	if (stat(dir, &st) != 0 ||
	    ((st.st_mode & S_ISVTX) && (st.st_uid == 0 || st.st_uid == geteuid())) ||
	    !cli_others_may_change(&st, dir, what, sizeof what, fix, fix_size))
		return 0;
	snprintf(why, why_size, "in a directory %s: %s", what, dir);
	return 1;
}

/* Walks `full` (absolute, writable) from its end to /: each directory
 * holding the next component must be safe (cli_directory_shared), and with
 * `links`, each component that is a symbolic link must be this user's or
 * root's (its owner could point it elsewhere). */
static int cli_walk_up(char *full, int links, char *why, size_t why_size, char *fix,
	size_t fix_size)
{
	for (char *slash; (slash = strrchr(full, '/'));) {
		struct stat st;

		if (links && lstat(full, &st) == 0 && S_ISLNK(st.st_mode) && st.st_uid != 0 &&
		    st.st_uid != geteuid()) {
			snprintf(why, why_size, "reached through a symbolic link owned by another user "
				"(uid %u): %s", (unsigned)st.st_uid, full);
			snprintf(fix, fix_size, "name the file by a path of this user's or root's");
			return 1;
		}
		/* The directory before a "." or "..": what is in it is not on the
		 * way (a link there is, and is looked at as the walk goes on). */
		int passed = !strcmp(slash + 1, ".") || !strcmp(slash + 1, "..");

		if (slash == full) {
			if (!passed && cli_directory_shared("/", why, why_size, fix, fix_size))
				return 1;
			break;
		}
		*slash = '\0';
		if (!passed && cli_directory_shared(full, why, why_size, fix, fix_size))
			return 1;
	}
	return 0;
}

int cli_others_may_replace(const char *path, char *why, size_t why_size, char *fix,
	size_t fix_size)
{
	char written[PATH_MAX + 1], resolved[PATH_MAX], walked[PATH_MAX + 1];
	size_t length = 0;

	if (*path != '/') {
		if (!getcwd(written, sizeof written - 1))
			return 0;   /* (nothing to walk: the open says what is wrong) */
		length = strlen(written);
		if (length > 1)
			written[length++] = '/';
	}
	if (snprintf(written + length, sizeof written - length, "%s", path) >=
	    (int)(sizeof written - length))
		return 0;
	/* As written (a link on the way), then as resolved (where links lead),
	 * unless that is the same path. */
	memcpy(walked, written, sizeof walked);
	return cli_walk_up(walked, 1, why, why_size, fix, fix_size) ||
		(realpath(path, resolved) && strcmp(resolved, written) &&
		 cli_walk_up(resolved, 0, why, why_size, fix, fix_size));
}

int cli_usage_error(const char *fmt, ...)
{
	char message[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof message, fmt, ap);
	va_end(ap);
	log_error("%s (try --help)", message);
	return EXIT_USAGE;
}

/* The name an option was given by: "--count" or "-n". */
static void cli_option_name(int opt, const struct option *longs, char *name, size_t size)
{
	for (const struct option *o = longs; o->name; o++)
		if (o->val == opt && !o->flag) {
			snprintf(name, size, "--%s", o->name);
			return;
		}
	snprintf(name, size, "-%c", opt);
}

int cli_getopt(int argc, char *const *argv, const char *shorts, const struct option *longs,
	const char *repeatable)
{
	/* The first value of each option (short letters, then long-only ones
	 * from CLI_OPT_DUMP_CONFIG on), for the message. */
	static const char *given[256];
	int opt = getopt_long(argc, argv, shorts, longs, NULL), slot;
	char name[64];

	if (opt == -1 || opt == '?' || opt == ':' || !optarg)
		return opt;
	slot = opt < 128 ? opt : opt >= CLI_OPT_DUMP_CONFIG && opt < CLI_OPT_DUMP_CONFIG + 128 ?
		128 + opt - CLI_OPT_DUMP_CONFIG : -1;
	if (slot < 0 || (opt < 128 && repeatable && strchr(repeatable, opt)))
		return opt;
	if (!given[slot]) {
		given[slot] = optarg;
		return opt;
	}
	cli_option_name(opt, longs, name, sizeof name);
	cli_usage_error("%s given twice ('%s', then '%s'): give it once", name, given[slot], optarg);
	return CLI_OPT_REPEATED;
}

int cli_bad_option(char *const *argv, int opt)
{
	const char *arg = argv[optind - 1], *current = argv[optind];
	int long_option = !strncmp(arg, "--", 2);
	/* An unknown letter inside a cluster ("-Zq") leaves optind on it. */
	int in_cluster = opt == '?' && optopt > 0 && optopt < 128 && current && current[0] == '-' &&
		current[1] != '-' && strchr(current + 1, optopt);

	if (opt == CLI_OPT_REPEATED)
		return EXIT_USAGE;   /* (said) */

	if (opt == ':' && long_option)
		return cli_usage_error("option '%s' needs a value", arg);
	if (opt == ':' || in_cluster)
		return cli_usage_error(opt == ':' ? "option '-%c' needs a value" : "unknown option '-%c'",
			optopt);
	if (long_option && strchr(arg, '='))
		return cli_usage_error("option '%.*s' is unknown, or takes no value", (int)strcspn(arg, "="),
			arg);
	if (long_option)
		return cli_usage_error("unknown option '%s'", arg);
	return cli_usage_error("unknown option '-%c'", optopt);
}

void cli_print_version(void)
{
	printf("%s (qrpool) %s\n", log_program(), QRPOOL_VERSION);
}

int cli_help_or_version(const struct cli_common *common, void (*usage)(void))
{
	if (common->help)
		usage();
	else if (common->version)
		cli_print_version();
	else
		return -1;
	return cli_close_stdout();
}

void cli_hold_std_fds(void)
{
	/* stdin held write-only; stdout and stderr read-only. */
	static const int modes[3] = { O_WRONLY, O_RDONLY, O_RDONLY };

	for (int fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		/* The lower ones are open by now: the lowest free number is fd. */
		int held = open("/dev/null", modes[fd] | O_CLOEXEC);
		if (held > fd)
			close(held);
	}
}

int cli_stdout_failed(void)
{
	static int said, status;
	int error = errno ? errno : EIO;

	if (said)
		return status;
	said = 1;
	if (error == EPIPE && interrupt_requested()) {
		log_warn("the next stage has stopped too (the whole pipeline was signalled): lines not "
			"passed on; their codes are stored, as the staging DB says");
		return status = EXIT_TEMPFAIL;
	}
	log_error("writing to stdout: %s", strerror(error));
	return status = EXIT_IO;
}

int cli_close_stdout(void)
{
	int failed = fflush(stdout) != 0 || ferror(stdout);
	int saved = errno;

	if (fclose(stdout) != 0 && !failed) {
		failed = 1;
		saved = errno;
	}
	if (failed) {
		errno = saved;
		return cli_stdout_failed();
	}
	return 0;
}

void cli_release_stdout(void)
{
	int null = open("/dev/null", O_WRONLY | O_CLOEXEC);

	fflush(stdout);
	if (null >= 0) {
		dup2(null, STDOUT_FILENO);
		close(null);
	}
}

void cli_drain_waiting(void)
{
	static int said;

	if (interrupt_requested() && !said++)
		log_warn("the stage before this one is still writing: its lines are read and let go "
			"until it ends, so it is not cut off (the same signal again, a second or more "
			"later, ends this at once)");
}

void cli_drain_stdin(const char *left, long long buffered)
{
	char buffer[65536];
	long long lines = buffered;
	ssize_t got;

	if (isatty(STDIN_FILENO))
		return;
	while ((got = interrupt_read_draining(STDIN_FILENO, buffer, sizeof buffer,
			cli_drain_waiting)) > 0)
		for (ssize_t i = 0; i < got; i++)
			lines += buffer[i] == '\n';
	cli_said_let_go(lines, left);
}

void cli_said_let_go(long long lines, const char *left)
{
	if (lines)   /* (none after a signal to the whole pipeline: nothing to say) */
		log_warn("%lld line%s of input read to its end%s and let go: %s", lines,
			lines == 1 ? "" : "s", interrupt_insisted() ? " (up to a second signal)" : "", left);
}

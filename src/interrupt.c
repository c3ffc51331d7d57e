#include "interrupt.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define INTERRUPT_TICK_MS 250   /* a blocked read looks at signals this often */

#define INTERRUPT_REPEAT_GAP_S 1.0   /* a signal again within this is the same stop */

static volatile sig_atomic_t interrupt_received;
static volatile sig_atomic_t interrupt_repeated;
/* The handler's own (it runs with both signals blocked, so never nested). */
static int interrupt_seen;           /* a bit per signal that came */
static double interrupt_first_at;    /* monotonic seconds of the first */
static pid_t interrupt_first_from;   /* its sender (0: the terminal, the kernel) */

/* Only the same signal again, from the sender of the first, a second or more
 * later, insists. One stop often comes twice: a script stopped by Ctrl-C in a
 * terminal passes its stages a SIGTERM after the terminal's SIGINT; GNU
 * timeout signals the process and its group at once; systemd signals every
 * process of a unit, and job.sh passes that on, later when the machine is
 * busy. Calls and deliveries in flight are then let finish. */
static void interrupt_on_stop(int signo, siginfo_t *info, void *context)
{
	int bit = signo == SIGINT ? 1 : signo == SIGTERM ? 2 : 4;
	pid_t from = info ? info->si_pid : 0;
	struct timespec now;
	double at;

	(void)context;
	clock_gettime(CLOCK_MONOTONIC, &now);   /* async-signal-safe */
	at = (double)now.tv_sec + now.tv_nsec / 1e9;
	if (!interrupt_seen) {
		interrupt_first_at = at;
		interrupt_first_from = from;
	} else if ((interrupt_seen & bit) && from == interrupt_first_from &&
	           at - interrupt_first_at >= INTERRUPT_REPEAT_GAP_S) {
		interrupt_repeated = 1;
	}
	interrupt_seen |= bit;
	interrupt_received = signo;
}

void interrupt_install(void)
{
	struct sigaction action, previous;

	memset(&action, 0, sizeof action);
	action.sa_sigaction = interrupt_on_stop;
	/* A write blocked on a full pipe goes on (the next stage is only slow):
	 * failing it with EINTR would lose lines already committed. Waits that
	 * must notice the signal are poll/epoll_wait/nanosleep, never restarted. */
	action.sa_flags = SA_RESTART | SA_SIGINFO;
	sigemptyset(&action.sa_mask);
	sigaddset(&action.sa_mask, SIGINT);
	sigaddset(&action.sa_mask, SIGTERM);
	sigaddset(&action.sa_mask, SIGHUP);
	sigaction(SIGINT, &action, NULL);
	sigaction(SIGTERM, &action, NULL);
	/* A hangup (an ssh session dropped under a run started by hand) is a
	 * stop like SIGTERM, not death with calls in flight and nothing said;
	 * unless it is ignored (nohup): then it stays so. */
	sigaction(SIGHUP, NULL, &previous);
	if (previous.sa_handler != SIG_IGN)
		sigaction(SIGHUP, &action, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* Ignored SIGCHLD (inherited from a wrapper) has the kernel reap our
	 * children: fetch's token command would have no exit status to judge. */
	signal(SIGCHLD, SIG_DFL);
}

int interrupt_requested(void)
{
	return interrupt_received;
}

int interrupt_insisted(void)
{
	return interrupt_repeated;
}

ssize_t interrupt_read(int fd, void *buffer, size_t size, int wait_ms)
{
	struct pollfd input = { .fd = fd, .events = POLLIN };
	int ready = poll(&input, 1, wait_ms);
	ssize_t got;

	if (ready < 0 && errno != EINTR)
		return -1;
	if (ready <= 0)
		return -2;
	got = read(fd, buffer, size);
	return got < 0 && errno == EINTR ? -2 : got;
}

/* Reads as read(2), in ticks, until `ended` (a signal: interrupt_requested
 * or interrupt_insisted) or `stop` says so: -1 with EINTR then. */
static ssize_t interrupt_read_until(int fd, void *buffer, size_t size, int tick_ms,
	int (*ended)(void), int (*stop)(void *arg), void *arg, void (*waiting)(void))
{
	for (;;) {
		ssize_t got;

		if (ended() || (stop && stop(arg))) {
			errno = EINTR;
			return -1;
		}
		if ((got = interrupt_read(fd, buffer, size, tick_ms > 0 ? tick_ms : INTERRUPT_TICK_MS)) != -2)
			return got;
		if (waiting)
			waiting();
	}
}

ssize_t interrupt_read_blocking(int fd, void *buffer, size_t size, int tick_ms,
	int (*stop)(void *arg), void *arg)
{
	return interrupt_read_until(fd, buffer, size, tick_ms, interrupt_requested, stop, arg, NULL);
}

ssize_t interrupt_read_draining(int fd, void *buffer, size_t size, void (*waiting)(void))
{
	return interrupt_read_until(fd, buffer, size, 0, interrupt_insisted, NULL, NULL, waiting);
}

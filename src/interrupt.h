/* SIGINT/SIGTERM (and SIGHUP, as SIGTERM) only set a flag; long loops poll it
 * and wind down cleanly.
 * System calls they interrupt are restarted (SA_RESTART): a tool that must
 * see the signal while waiting waits in poll or epoll_wait, which return
 * EINTR all the same, in short ticks. SIGPIPE is ignored so a closed pipe
 * becomes a write error we can report. */
#ifndef QRPOOL_INTERRUPT_H
#define QRPOOL_INTERRUPT_H

#include <sys/types.h>

void interrupt_install(void);
/* The signal that asked us to stop, or 0. */
int interrupt_requested(void);
/* Nonzero once SIGINT or SIGTERM came again from the first signal's sender, a
 * second or more after it (a second Ctrl-C): the wind-down's waits (calls or
 * deliveries in flight) end at once. */
int interrupt_insisted(void);

/* Waits at most `wait_ms` for `fd` to be readable, then reads it: the read's
 * result, or -2 when nothing came in time (or a signal came), so that a
 * reader looking at interrupt_requested() between calls is never stuck. */
ssize_t interrupt_read(int fd, void *buffer, size_t size, int wait_ms);
/* Reads `fd` as read(2) does, waiting in polls of `tick_ms` (0: a default):
 * -1 with EINTR once SIGINT/SIGTERM came, whatever the system calls restart,
 * or once `stop` (if not NULL; called before each wait, it may do the work
 * due meanwhile) returns nonzero. Half a line read before then is no line. */
ssize_t interrupt_read_blocking(int fd, void *buffer, size_t size, int tick_ms,
	int (*stop)(void *arg), void *arg);
/* The same, for reading an input to its end to let it go (the stage before
 * us is not cut off): a first signal does not end it, only an insisting one
 * (interrupt_insisted: -1 with EINTR). `waiting` (if not NULL) is called at
 * each tick that brought nothing. */
ssize_t interrupt_read_draining(int fd, void *buffer, size_t size, void (*waiting)(void));

#endif

/* SIGINT/SIGTERM only set a flag; long loops poll it and wind down cleanly.
 * System calls they interrupt are restarted (SA_RESTART): a tool that must
 * see the signal while waiting waits in poll or epoll_wait, which return
 * EINTR all the same, in short ticks. SIGPIPE is ignored so a closed pipe
 * becomes a write error we can report. */
#ifndef QRPOOL_INTERRUPT_H
#define QRPOOL_INTERRUPT_H

void interrupt_install(void);
/* The signal that asked us to stop, or 0. */
int interrupt_requested(void);

#endif

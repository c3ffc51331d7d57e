/* SIGINT/SIGTERM only set a flag; long loops poll it and wind down cleanly.
 * SIGPIPE is ignored so a closed pipe becomes a write error we can report. */
#ifndef QRPOOL_INTERRUPT_H
#define QRPOOL_INTERRUPT_H

void interrupt_install(void);
/* The signal that asked us to stop, or 0. */
int interrupt_requested(void);

#endif

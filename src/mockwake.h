/* Wakes librdkafka's mock cluster thread while we wait on it.
 *
 * The mock's API calls (rd_kafka_mock_topic_create, ..._broker_set_down, ...)
 * hand an op to the mock's thread and wait for its answer. In librdkafka
 * 2.0.2 that thread, once idle, can miss the op's wake-up and serve it only
 * at its one-second idle poll: 100 topics then took 30 s to create, and 50
 * control commands 7 to 10 s. Any TCP connection to one of the mock's brokers
 * ends that poll, and the thread serves its ops before the connection. So
 * while a call is in flight a helper thread connects every few ms. With every
 * broker set down none listens, and a call may still wait its second. */
#ifndef QRPOOL_MOCKWAKE_H
#define QRPOOL_MOCKWAKE_H

#include <netinet/in.h>
#include <pthread.h>

struct mockwake {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t changed;
	int busy;                    /* calls in flight */
	int stopping;
	int initialized;             /* by mockwake_start: stop may tidy up */
	int running;                 /* the thread was started */
	struct sockaddr_in *brokers; /* the listeners, from the bootstrap list */
	size_t broker_count;
};

/* Starts the helper for the brokers in `bootstraps` ("127.0.0.1:PORT,...").
 * 0, or -1 with errno set (EINVAL: a list it cannot read); then the calls
 * still work, only as slowly as without it. */
int mockwake_start(struct mockwake *wake, const char *bootstraps);
/* Around each call of the mock's API; harmless if the start failed. */
void mockwake_begin(struct mockwake *wake);
void mockwake_end(struct mockwake *wake);
/* Harmless on a zeroed struct and after a failed start. */
void mockwake_stop(struct mockwake *wake);

#endif

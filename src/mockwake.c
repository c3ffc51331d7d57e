/* See mockwake.h for why this exists. */
#include "mockwake.h"

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "parse.h"

/* Between two connections while a call waits: short next to the mock's
 * one-second poll, long enough that the helper costs nothing measurable. */
#define MOCKWAKE_INTERVAL_NS (2 * 1000 * 1000)

/* "HOST:PORT" with an IPv4 host, as the mock lists its brokers. */
static int mockwake_parse_broker(const char *text, size_t length, struct sockaddr_in *address)
{
	char copy[64], why[128];
	char *colon;
	int64_t port;

	if (length >= sizeof copy)
		return -1;
	memcpy(copy, text, length);
	copy[length] = '\0';
	colon = strrchr(copy, ':');
	if (!colon)
		return -1;
	*colon = '\0';
	memset(address, 0, sizeof *address);
	address->sin_family = AF_INET;
	if (inet_pton(AF_INET, copy, &address->sin_addr) != 1 ||
			parse_int64(colon + 1, 1, 65535, &port, why) < 0)
		return -1;
	address->sin_port = htons((uint16_t)port);
	return 0;
}

static int mockwake_parse_brokers(struct mockwake *wake, const char *bootstraps)
{
	size_t count = 1;

	for (const char *at = bootstraps; *at; at++)
		count += *at == ',';
	wake->brokers = calloc(count, sizeof *wake->brokers);
	if (!wake->brokers)
		return -1;
	for (const char *at = bootstraps; ; ) {
		size_t length = strcspn(at, ",");

		if (mockwake_parse_broker(at, length, &wake->brokers[wake->broker_count]) < 0) {
			errno = EINVAL;
			return -1;
		}
		wake->broker_count++;
		if (!at[length])
			return 0;
		at += length + 1;
	}
}

/* One connection, to the first broker that takes it (a broker set down
 * refuses); closed at once, which the mock's thread sees and cleans up. */
static void mockwake_connect(const struct mockwake *wake)
{
	for (size_t i = 0; i < wake->broker_count; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int connected;

		if (fd < 0)
			return;
		connected = connect(fd, (const struct sockaddr *)&wake->brokers[i],
			sizeof wake->brokers[i]) == 0;
		close(fd);
		if (connected)
			return;
	}
}

static void *mockwake_main(void *arg)
{
	struct mockwake *wake = arg;
	const struct timespec interval = { 0, MOCKWAKE_INTERVAL_NS };

	pthread_mutex_lock(&wake->lock);
	while (!wake->stopping) {
		if (!wake->busy) {
			pthread_cond_wait(&wake->changed, &wake->lock);
			continue;
		}
		pthread_mutex_unlock(&wake->lock);
		nanosleep(&interval, NULL);
		mockwake_connect(wake);
		pthread_mutex_lock(&wake->lock);
	}
	pthread_mutex_unlock(&wake->lock);
	return NULL;
}

int mockwake_start(struct mockwake *wake, const char *bootstraps)
{
	sigset_t all, saved;
	int error;

	memset(wake, 0, sizeof *wake);
	pthread_mutex_init(&wake->lock, NULL);
	pthread_cond_init(&wake->changed, NULL);
	wake->initialized = 1;
	if (mockwake_parse_brokers(wake, bootstraps) < 0)
		return -1;
	/* Signals are local-kafka's main loop's to see: the thread takes none. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &saved);
	error = pthread_create(&wake->thread, NULL, mockwake_main, wake);
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
	if (error) {
		errno = error;
		return -1;
	}
	wake->running = 1;
	return 0;
}

static void mockwake_add(struct mockwake *wake, int change)
{
	if (!wake->running)
		return;
	pthread_mutex_lock(&wake->lock);
	wake->busy += change;
	pthread_cond_signal(&wake->changed);
	pthread_mutex_unlock(&wake->lock);
}

void mockwake_begin(struct mockwake *wake)
{
	mockwake_add(wake, 1);
}

void mockwake_end(struct mockwake *wake)
{
	mockwake_add(wake, -1);
}

void mockwake_stop(struct mockwake *wake)
{
	if (!wake->initialized)
		return;
	if (wake->running) {
		pthread_mutex_lock(&wake->lock);
		wake->stopping = 1;
		pthread_cond_signal(&wake->changed);
		pthread_mutex_unlock(&wake->lock);
		pthread_join(wake->thread, NULL);
		wake->running = 0;
	}
	free(wake->brokers);
	wake->brokers = NULL;
	pthread_mutex_destroy(&wake->lock);
	pthread_cond_destroy(&wake->changed);
	wake->initialized = 0;
}

/* The floor for bench-render: the same render_code() call qrpool-render makes
 * (same libqrencode call, same PNG settings, read from the same config), in a
 * bare loop over URLs already in memory: no item parsing, no DB, no output.
 *
 *   render_floor [-j THREADS] CONFIG POOL IDS_FILE
 *
 * IDS_FILE holds item lines (request_id TAB pool); prints "codes seconds bytes". */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "render.h"

struct floor_share {
	const struct pool_config *pool;
	char **urls;
	size_t first, count;
	size_t bytes;
	int failed;
};

static double floor_now(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)now.tv_sec + now.tv_nsec / 1e9;
}

static void *floor_run(void *arg)
{
	struct floor_share *share = arg;
	struct render_image image = { 0 };
	struct renderer renderer;

	render_init(&renderer);
	for (size_t i = share->first; i < share->first + share->count && !share->failed; i++) {
		if (render_code(&renderer, share->pool, share->urls[i], strlen(share->urls[i]), &image)) {
			fprintf(stderr, "render_floor: %s\n", renderer.error);
			share->failed = 1;
		}
		share->bytes += image.size;
	}
	render_image_free(&image);
	render_free(&renderer);
	return NULL;
}

static char **floor_read_urls(const char *path, const char *prefix, size_t *count)
{
	FILE *in = fopen(path, "r");
	char line[256], **urls = NULL;
	size_t capacity = 0;

	*count = 0;
	while (in && fgets(line, sizeof line, in)) {
		line[strcspn(line, "\t\n")] = '\0';
		if (*count == capacity) {
			capacity = capacity ? capacity * 2 : 1024;
			if (!(urls = realloc(urls, capacity * sizeof *urls)))
				exit(70);
		}
		if (asprintf(&urls[(*count)++], "%s%s", prefix, line) < 0)
			exit(70);
	}
	if (in)
		fclose(in);
	return urls;
}

int main(int argc, char **argv)
{
	struct floor_share shares[64];
	const struct pool_config *pool;
	struct config config;
	pthread_t threads[64];
	int opt, jobs = 1, failed = 0;
	size_t count, bytes = 0;
	char **urls;
	double started;

	while ((opt = getopt(argc, argv, "j:")) != -1)
		jobs = opt == 'j' ? atoi(optarg) : 0;
	if (jobs < 1 || jobs > 64 || argc - optind != 3) {
		fprintf(stderr, "usage: render_floor [-j THREADS] CONFIG POOL IDS_FILE\n");
		return 64;
	}
	log_init(argv[0], 0);
	if (config_load(&config, argv[optind]))
		return 78;
	if (!(pool = config_pool(&config, argv[optind + 1])) || pool->source != POOL_LINK) {
		fprintf(stderr, "render_floor: no link pool '%s'\n", argv[optind + 1]);
		return 64;
	}
	urls = floor_read_urls(argv[optind + 2], pool->url_prefix, &count);
	started = floor_now();
	for (int t = 0; t < jobs; t++) {
		shares[t] = (struct floor_share){ pool, urls, count * (size_t)t / (size_t)jobs,
			count * (size_t)(t + 1) / (size_t)jobs - count * (size_t)t / (size_t)jobs, 0, 0 };
		pthread_create(&threads[t], NULL, floor_run, &shares[t]);
	}
	for (int t = 0; t < jobs; t++) {
		pthread_join(threads[t], NULL);
		bytes += shares[t].bytes;
		failed |= shares[t].failed;
	}
	printf("%zu %.3f %zu\n", count, floor_now() - started, bytes);
	for (size_t i = 0; i < count; i++)
		free(urls[i]);
	free(urls);
	config_free(&config);
	return failed ? 70 : 0;
}

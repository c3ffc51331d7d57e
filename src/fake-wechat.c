/* fake-wechat: a fake WeChat API server on loopback for tests, benchmarks
 * and the demo. It serves until SIGTERM or SIGINT, then writes its
 * statistics. See fake_wechat.h for the modules and tests/fake-wechat.md. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "exitcode.h"
#include "fake_wechat.h"
#include "interrupt.h"
#include "log.h"

/* Temp file and rename: a test polling for the file never reads half of it. */
static int fake_write_file(const char *path, const char *data, size_t size)
{
	char temp[PATH_MAX];
	FILE *file;
	int failed;

	if (snprintf(temp, sizeof temp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof temp) {
		log_error("%s: path too long", path);
		return EXIT_IO;
	}
	file = fopen(temp, "w");
	if (!file) {
		log_error("%s: %s", temp, strerror(errno));
		return EXIT_IO;
	}
	failed = fwrite(data, 1, size, file) != size;
	failed |= fflush(file) != 0 || fsync(fileno(file)) != 0;
	failed |= fclose(file) != 0;
	if (failed || rename(temp, path)) {
		log_error("%s: %s", path, strerror(errno ? errno : EIO));
		unlink(temp);
		return EXIT_IO;
	}
	return 0;
}

static int fake_write_port(const char *path, unsigned port)
{
	char text[16];

	if (!path)
		return 0;
	snprintf(text, sizeof text, "%u\n", port);
	return fake_write_file(path, text, strlen(text));
}

static int fake_write_stats(struct fake_server *server, const char *path)
{
	char *text;
	int status;

	if (!path)
		return 0;
	text = fake_stats_json(&server->stats, &server->tokens);
	if (!text) {
		log_error("out of memory writing the statistics");
		return EXIT_INTERNAL;
	}
	status = fake_write_file(path, text, strlen(text));
	free(text);
	return status;
}

/* SIGINT and SIGTERM stay blocked everywhere but in sigsuspend here, so the
 * connection threads never see them and the wait cannot miss one. */
static int fake_serve(const struct fake_options *options, struct fake_server *server)
{
	sigset_t stop, waiting;
	unsigned port;
	int status;

	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, &waiting);
	sigdelset(&waiting, SIGINT);
	sigdelset(&waiting, SIGTERM);
	if (fake_server_start(server, options, &port))
		return EXIT_IO;
	log_info("listening on %s:%u", options->listen, port);
	status = fake_write_port(options->port_file, port);
	while (!status && !interrupt_requested())
		sigsuspend(&waiting);
	if (interrupt_requested())
		log_info("stopping on signal %d", interrupt_requested());
	fake_server_stop(server);
	return exitcode_worst(status, fake_write_stats(server, options->stats_file));
}

int main(int argc, char **argv)
{
	struct fake_options options;
	struct fake_server server;
	int status = fake_options_parse(&options, argc, argv);

	if (status)
		return status < 0 ? cli_close_stdout() : status;
	interrupt_install();
	status = fake_serve(&options, &server);
	fake_server_free(&server);
	return exitcode_worst(status, cli_close_stdout());
}

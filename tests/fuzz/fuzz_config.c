/* libFuzzer target: the config loader (libconfig parsing plus our checks). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	char path[] = "/tmp/qrpool-fuzz-config.XXXXXX";
	int fd = mkstemp(path);
	struct config config;

	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		unlink(path);
		return 0;
	}
	close(fd);
	log_init("fuzz_config", -2);
	if (config_load(&config, path) == 0) {
		FILE *null = fopen("/dev/null", "w");
		/* A loaded config must be whole enough to dump. */
		if (!config.db_path || !config.pool_count)
			abort();
		config_dump(&config, null);
		fclose(null);
	}
	config_free(&config);
	unlink(path);
	return 0;
}

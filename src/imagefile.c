#include "imagefile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "exitcode.h"
#include "log.h"

static int imagefile_is_jpeg(const unsigned char *b, size_t size)
{
	return size >= 4 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF;
}

static int imagefile_is_png(const unsigned char *b, size_t size)
{
	return size >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8);
}

const char *imagefile_extension(const char *content_type, const void *bytes, size_t size)
{
	int jpeg = imagefile_is_jpeg(bytes, size), png = imagefile_is_png(bytes, size);

	/* The signature decides: an error body stored as an image must never
	 * be handed out, whatever its header says. */
	if (content_type && !strcmp(content_type, "image/jpeg"))
		return jpeg ? "jpg" : NULL;
	if (content_type && !strcmp(content_type, "image/png"))
		return png ? "png" : NULL;
	if (content_type)
		return NULL;
	return jpeg ? "jpg" : png ? "png" : NULL;
}

int imagefile_open_dir(const char *path)
{
	char why[PATH_MAX + 128], fix[PATH_MAX + 128];
	struct stat st;
	int fd, made = mkdir(path, 0755) == 0;

	if (!made && errno != EEXIST) {
		if (errno == ENOENT)   /* (one level is made, not the path to it) */
			log_error("--out %s: the directory it would be made in does not exist (only "
				"the last level is made): make that first", path);
		else
			log_error("--out %s: %s", path, strerror(errno));
		return -1;
	}
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		log_error("--out %s: %s", path, strerror(errno));
		return -1;
	}
	/* Whoever may write there (its owner can, whatever the mode) could
	 * replace the codes handed out. (The directory the descriptor is: a
	 * symbolic link's target, not the link.) A shared one such as /tmp is
	 * not to be chmod'ed: one made in it is the way. */
	if (fstat(fd, &st) == 0 && cli_others_may_change(&st, path, why, sizeof why, fix, sizeof fix)) {
		if (st.st_mode & S_ISVTX)
			snprintf(fix, sizeof fix, "one made in it will do: mkdir -m 755 %s/qrpool-codes",
				path);
		log_error("--out %s: the directory is %s: whoever that lets write there could replace "
			"the codes handed out; use a directory of this user's own (%s)", path, why, fix);
	}
	/* The paths printed name it: one they may point elsewhere (a link of
	 * theirs, a directory above it they may rename in) would hand out
	 * their images as ours. */
	else if (cli_others_may_replace(path, why, sizeof why, fix, sizeof fix))
		log_error("--out %s: the directory is %s: whoever that lets change it could point the "
			"paths printed at images of theirs; use a directory of this user's own (%s)",
			path, why, fix);
	else
		return fd;
	close(fd);
	if (made)   /* (nothing is left of a refused run) */
		rmdir(path);
	return -1;
}

static int imagefile_write_all(int fd, const unsigned char *bytes, size_t size)
{
	while (size) {
		ssize_t written = write(fd, bytes, size);

		if (written < 0 && errno == EINTR)
			continue;
		if (written <= 0)
			return -1;
		bytes += written;
		size -= (size_t)written;
	}
	return 0;
}

int imagefile_create_temp(int dir_fd, const char *name)
{
	return openat(dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
}

int imagefile_stage(struct imagefile *file, int dir_fd, const char *dir, const char *request_id,
	const char *extension, const void *bytes, size_t size)
{
	int fd, failed;

	file->dir_fd = dir_fd;
	file->dir = dir;
	snprintf(file->name, sizeof file->name, "%s.%s", request_id, extension);
	snprintf(file->temp, sizeof file->temp, ".%s.tmp", file->name);
	/* Made anew (O_EXCL): a file left by a crash is removed first, and a
	 * name someone put there meanwhile (a symlink) is never written through. */
	if (unlinkat(dir_fd, file->temp, 0) != 0 && errno != ENOENT) {
		log_error("%s/%s: %s", file->dir, file->temp, strerror(errno));
		return EXIT_IO;
	}
	fd = imagefile_create_temp(dir_fd, file->temp);
	if (fd < 0) {
		log_error("%s/%s: %s", file->dir, file->temp, strerror(errno));
		return EXIT_IO;
	}
	failed = imagefile_write_all(fd, bytes, size) || fsync(fd);
	if (close(fd) != 0)
		failed = 1;
	if (failed) {
		log_error("writing %s/%s: %s", file->dir, file->temp, strerror(errno));
		imagefile_discard(file);
		return EXIT_IO;
	}
	return 0;
}

int imagefile_commit(struct imagefile *file)
{
	if (renameat(file->dir_fd, file->temp, file->dir_fd, file->name) != 0 ||
	    fsync(file->dir_fd) != 0) {
		log_error("renaming %s/%s to %s: %s", file->dir, file->temp, file->name, strerror(errno));
		return EXIT_IO;
	}
	return 0;
}

void imagefile_discard(struct imagefile *file)
{
	unlinkat(file->dir_fd, file->temp, 0);
}

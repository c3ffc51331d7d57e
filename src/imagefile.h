/* Image files handed out by qrpool-claim: written to a hidden temp name and
 * fsync'd first, renamed to <request_id>.<ext> only once the binding is
 * committed, so a file that is visible is always a bound code. */
#ifndef QRPOOL_IMAGEFILE_H
#define QRPOOL_IMAGEFILE_H

#include <stddef.h>

struct imagefile {
	int dir_fd;
	const char *dir;          /* its path, for messages */
	char temp[96 + 8];        /* ".<request_id>.<ext>.tmp" */
	char name[96];            /* "<request_id>.<ext>" */
};

/* The file extension for an image: from the content type when given
 * ("image/jpeg", "image/png"), checked against the bytes' own signature.
 * NULL when the bytes are not such an image or disagree with the type. */
const char *imagefile_extension(const char *content_type, const void *bytes, size_t size);

/* Opens (creating it, mode 0755, if missing) the output directory. Returns
 * the descriptor, or -1 after logging. */
int imagefile_open_dir(const char *path);

/* Makes the temp file `name` in `dir_fd` anew: a name already there, a
 * symlink included, is an error (EEXIST), never opened or written through.
 * Returns the descriptor, or -1 with errno set. */
int imagefile_create_temp(int dir_fd, const char *name);

/* Writes and fsyncs the temp file in `dir_fd` (the directory `dir`, named in
 * messages). Returns 0 or EXIT_IO (logged). */
int imagefile_stage(struct imagefile *file, int dir_fd, const char *dir, const char *request_id,
	const char *extension, const void *bytes, size_t size);
/* Renames it to its final name and fsyncs the directory. 0 or EXIT_IO. */
int imagefile_commit(struct imagefile *file);
/* Removes the temp file (the code was not bound after all). */
void imagefile_discard(struct imagefile *file);

#endif

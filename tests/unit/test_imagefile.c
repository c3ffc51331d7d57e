#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exitcode.h"
#include "imagefile.h"
#include "log.h"
#include "tap.h"

static void test_extension(void)
{
	static const unsigned char jpeg[] = { 0xFF, 0xD8, 0xFF, 0xE0, 'J' };
	static const unsigned char png[] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n', 0 };
	static const char json[] = "{\"errcode\":40001}";

	is_str(imagefile_extension("image/jpeg", jpeg, sizeof jpeg), "jpg", "a JPEG is .jpg");
	is_str(imagefile_extension("image/png", png, sizeof png), "png", "a PNG is .png");
	is_str(imagefile_extension(NULL, png, sizeof png), "png", "no content type: the signature");
	ok(!imagefile_extension("image/jpeg", json, sizeof json - 1), "a JSON body is no image");
	ok(!imagefile_extension("image/png", jpeg, sizeof jpeg), "a type that lies is refused");
	ok(!imagefile_extension("image/gif", "GIF89a", 6), "another type is refused");
	ok(!imagefile_extension(NULL, jpeg, 2), "two bytes are no image");
}

/* As root (CI): a directory its owner's own group may write serves; one a
 * shared group may write, or another user owns (and so may write, whatever
 * its mode), is refused, through a symbolic link too. */
static void test_out_owners(const char *dir)
{
	/* (Their numbers kept: the code under test looks up users too.) */
	const struct group *group = getgrnam("nogroup");
	gid_t shared = group ? group->gr_gid : 0;
	const struct passwd *user = getpwnam("nobody");
	uid_t nobody = user ? user->pw_uid : 0;
	char sub[160], link[160], logged[1024];
	int dir_fd;

	if (geteuid() != 0 || !shared || !nobody) {
		tap_skip(10, "not root, or no nogroup and nobody to give a directory to");
		return;
	}
	snprintf(sub, sizeof sub, "%s/grouped", dir);
	ok(mkdir(sub, 0775) == 0 && chmod(sub, 0775) == 0, "a directory of mode 0775, root's group");
	dir_fd = imagefile_open_dir(sub);
	ok(dir_fd >= 0, "... serves as --out: the group is root's own");
	if (dir_fd >= 0)
		close(dir_fd);
	ok(chown(sub, 0, shared) == 0, "the same, group nogroup");
	tap_capture_start();
	dir_fd = imagefile_open_dir(sub);
	tap_capture_end(logged, sizeof logged);
	ok(dir_fd < 0 && strstr(logged, "the directory is writable by its group (mode 0775)"),
		"... is refused, saying why: %s", logged);
	ok(chmod(sub, 0755) == 0 && chown(sub, nobody, 0) == 0, "the same, mode 0755, nobody's");
	snprintf(link, sizeof link, "%s/to-grouped", dir);
	if (symlink(sub, link) != 0)
		ok(0, "symlink: %s", strerror(errno));
	tap_capture_start();
	dir_fd = imagefile_open_dir(link);
	tap_capture_end(logged, sizeof logged);
	snprintf(sub, sizeof sub, "the directory is owned by another user (uid %u)", (unsigned)nobody);
	ok(dir_fd < 0 && strstr(logged, sub), "... is refused, through a link to it too: %s", logged);
	unlink(link);
	rmdir(sub);
	/* Root's own directory, named through another user's link or under
	 * their directory: they could point the paths printed elsewhere. */
	snprintf(sub, sizeof sub, "%s/roots", dir);
	ok(mkdir(sub, 0755) == 0, "a directory of root's");
	if (symlink(sub, link) != 0 || lchown(link, nobody, 0) != 0)
		ok(0, "a link of nobody's: %s", strerror(errno));
	tap_capture_start();
	dir_fd = imagefile_open_dir(link);
	tap_capture_end(logged, sizeof logged);
	ok(dir_fd < 0 && strstr(logged, "reached through a symbolic link owned by another user") &&
		strstr(logged, "could point the paths printed at images of theirs"),
		"... named through a link of nobody's: refused: %s", logged);
	unlink(link);
	snprintf(link, sizeof link, "%s/theirs", dir);
	ok(mkdir(link, 0755) == 0 && chown(link, nobody, 0) == 0, "a directory of nobody's");
	snprintf(sub, sizeof sub, "%s/theirs/out", dir);
	tap_capture_start();
	dir_fd = imagefile_open_dir(sub);
	tap_capture_end(logged, sizeof logged);
	ok(dir_fd < 0 && strstr(logged, "in a directory owned by another user"),
		"root's --out made under it: refused: %s", logged);
	if (dir_fd >= 0)
		close(dir_fd);
	rmdir(sub);
	rmdir(link);
	snprintf(sub, sizeof sub, "%s/roots", dir);
	rmdir(sub);
}

static void test_write(void)
{
	char dir[] = "/tmp/qrpool-test-imagefile.XXXXXX", path[256], sub[160], got[16] = "";
	char target[200], logged[1024];
	struct imagefile file;
	struct stat st;
	int fd, dir_fd;

	if (!mkdtemp(dir))
		return;
	snprintf(sub, sizeof sub, "%s/out", dir);
	dir_fd = imagefile_open_dir(sub);
	ok(dir_fd >= 0, "the output directory is created");
	is_int(imagefile_stage(&file, dir_fd, sub, "AbC123", "png", "pngbytes", 8), 0, "staged");
	snprintf(path, sizeof path, "%s/AbC123.png", sub);
	ok(access(path, F_OK) != 0, "a staged file is not visible under its name");
	is_int(imagefile_commit(&file), 0, "committed");
	fd = open(path, O_RDONLY);
	ok(fd >= 0 && read(fd, got, sizeof got) == 8 && !memcmp(got, "pngbytes", 8),
		"then it is there, whole");
	close(fd);
	is_int(imagefile_stage(&file, dir_fd, sub, "Gone", "jpg", "x", 1), 0, "another staged");
	imagefile_discard(&file);
	snprintf(path, sizeof path, "%s/.Gone.jpg.tmp", sub);
	ok(access(path, F_OK) != 0, "a discarded file leaves nothing");
	tap_capture_start();
	is_int(imagefile_commit(&file), EXIT_IO, "a commit that fails: EXIT_IO");
	tap_capture_end(logged, sizeof logged);
	ok(strstr(logged, path) != NULL, "... naming the file with its directory: %s", logged);

	/* A temp name planted as a symlink (or left by a crash) is replaced, never
	 * written through. */
	snprintf(target, sizeof target, "%s/victim", dir);
	fd = open(target, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ok(fd >= 0 && write(fd, "mine", 4) == 4, "a file of someone else's");
	close(fd);
	snprintf(path, sizeof path, "%s/.Planted.png.tmp", sub);
	ok(symlink(target, path) == 0, "a symlink planted under the temp name");
	/* Planted between the removal and the open: the open itself refuses it. */
	errno = 0;
	fd = imagefile_create_temp(dir_fd, ".Planted.png.tmp");
	ok(fd < 0 && errno == EEXIST, "the temp file is never opened through a symlink (%s)",
		strerror(errno));
	if (fd >= 0)
		close(fd);
	is_int(imagefile_stage(&file, dir_fd, sub, "Planted", "png", "pngbytes", 8), 0, "staged over it");
	fd = open(target, O_RDONLY);
	memset(got, 0, sizeof got);
	ok(fd >= 0 && read(fd, got, sizeof got) == 4 && !memcmp(got, "mine", 4),
		"the symlink's target is untouched");
	close(fd);
	is_int(imagefile_commit(&file), 0, "committed");
	snprintf(path, sizeof path, "%s/Planted.png", sub);
	ok(lstat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 8,
		"the code is a file of its own: %s", path);
	close(dir_fd);

	/* A directory anyone may write to is refused: the codes could be replaced. */
	snprintf(sub, sizeof sub, "%s/open", dir);
	ok(mkdir(sub, 0755) == 0 && chmod(sub, 01777) == 0, "a directory of mode 1777");
	tap_capture_start();
	dir_fd = imagefile_open_dir(sub);
	tap_capture_end(logged, sizeof logged);
	is_int(dir_fd, -1, "is refused as --out");
	ok(strstr(logged, "writable by others (mode 1777)") != NULL, "... saying why: %s", logged);
	test_out_owners(dir);

	/* One level is made, not the path to it: said so, not as a bare ENOENT. */
	snprintf(sub, sizeof sub, "%s/not/there", dir);
	tap_capture_start();
	dir_fd = imagefile_open_dir(sub);
	tap_capture_end(logged, sizeof logged);
	is_int(dir_fd, -1, "a directory two levels down is not made");
	ok(strstr(logged, "the directory it would be made in does not exist (only the last level is "
		"made)") != NULL, "... saying so: %s", logged);
	snprintf(path, sizeof path, "rm -rf %s", dir);
	ok(system(path) == 0, "cleaned up");
}

int main(void)
{
	log_init("test_imagefile", -1);
	test_extension();
	test_write();
	return tap_done();
}

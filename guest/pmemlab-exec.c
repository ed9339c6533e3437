/*
 * pmemlab-exec OUT ERR COMMAND [ARGS...]
 *
 * Started by qemu-guest-agent for `pmemlab exec`: runs COMMAND with stdin from /dev/null and
 * stdout/stderr appended to OUT and ERR, which the host has already opened through the agent
 * and reads while COMMAND runs. OUT and ERR are unlinked before COMMAND starts (the agent's
 * open handles keep them readable), so nothing is left in the guest whatever happens to the host.
 *
 * It replaces a `sh -c` wrapper, and is linked statically: under TCG a shell's start-up, or
 * the dynamic loader's, costs ~30 ms on every command.
 * Exits 127 (not found) or 126 (not executable) like a shell when COMMAND cannot be started.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int redirect(const char *path, int flags, int target)
{
	int fd = open(path, flags | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fd != target && dup3(fd, target, 0) < 0)
		return -1;
	if (fd != target)
		close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: pmemlab-exec OUT ERR COMMAND [ARGS...]\n");
		return 2;
	}
	if (redirect("/dev/null", O_RDONLY, 0) < 0 || redirect(argv[1], O_WRONLY | O_APPEND, 1) < 0 ||
	    redirect(argv[2], O_WRONLY | O_APPEND, 2) < 0) {
		fprintf(stderr, "pmemlab-exec: cannot redirect output: %s\n", strerror(errno));
		return 125;
	}
	unlink(argv[1]);
	unlink(argv[2]);
	execvp(argv[3], argv + 3);
	int error = errno;
	fprintf(stderr, "pmemlab-exec: %s: %s\n", argv[3], strerror(error));
	return error == ENOENT ? 127 : 126;
}

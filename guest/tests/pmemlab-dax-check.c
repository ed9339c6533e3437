/*
 * pmemlab-dax-check: proves from inside the guest whether a directory's files are accessed
 * through DAX, in the three ways a filesystem cannot fake:
 *
 *   1. the mount options of the filesystem holding DIR (/proc/self/mountinfo) include dax;
 *   2. statx(2) reports STATX_ATTR_DAX on a file created in DIR;
 *   3. mmap(2) with MAP_SHARED_VALIDATE | MAP_SYNC succeeds: the kernel only grants MAP_SYNC
 *      when stores reach the media without a page cache (synchronous DAX). On a filesystem
 *      without DAX it fails with EOPNOTSUPP. Data stored through that mapping must then read
 *      back with pread(2), without msync.
 *
 * A filesystem mounted with "-o dax" may still fall back to the page cache without failing
 * the mount (a raw NVDIMM namespace, 1 KiB ext4 blocks): this program is how pmemlab notices.
 *
 * Usage: pmemlab-dax-check [--expect dax|nodax|dax-nosync] DIR
 *   dax         (default) all three hold
 *   nodax       none holds: MAP_SYNC must fail with EOPNOTSUPP (the non-DAX control)
 *   dax-nosync  DAX without MAP_SYNC, as on virtio-pmem, whose writes need fsync/msync
 *
 * Output is TAP; the exit status is 0 when every check matched the expectation.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tap.h"

/* Older headers may lack these; the values are the kernel's ABI. */
#ifndef STATX_ATTR_DAX
#define STATX_ATTR_DAX 0x00200000
#endif
#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif
#ifndef MAP_SYNC
#define MAP_SYNC 0x80000
#endif

#define FILE_SIZE (2u << 20) /* one huge page worth: DAX may map it with a PMD */

enum expect { EXPECT_DAX, EXPECT_NODAX, EXPECT_DAX_NOSYNC };

/* Has the comma-separated option list OPTS the option "dax" or "dax=always"? */
static int has_dax_option(const char *opts)
{
	char copy[4096];
	char *save = NULL;
	snprintf(copy, sizeof(copy), "%s", opts);
	for (char *opt = strtok_r(copy, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
		if (strcmp(opt, "dax") == 0 || strcmp(opt, "dax=always") == 0)
			return 1;
	}
	return 0;
}

/*
 * Finds the mount holding PATH (the longest mount point that is a prefix of it) and returns
 * whether its options say DAX. Fills fstype, source and the super block options for the report.
 */
static int mount_says_dax(const char *path, char *fstype, char *source, char *opts, size_t size)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[8192];
	size_t best = 0;
	int dax = 0;
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		/* id parent major:minor root mountpoint mount-options [optional...] - fstype source super-options */
		char mnt[PATH_MAX], mopts[4096], type[256], src[PATH_MAX], sopts[4096];
		char *sep = strstr(line, " - ");
		if (!sep || sscanf(line, "%*s %*s %*s %*s %4095s %4095s", mnt, mopts) != 2)
			continue;
		if (sscanf(sep + 3, "%255s %4095s %4095s", type, src, sopts) != 3)
			continue;
		size_t len = strlen(mnt);
		int prefix = strncmp(path, mnt, len) == 0 && (path[len] == '/' || path[len] == '\0' || len == 1);
		if (!prefix || len < best)
			continue;
		best = len;
		dax = has_dax_option(mopts) || has_dax_option(sopts);
		snprintf(fstype, size, "%s", type);
		snprintf(source, size, "%s", src);
		snprintf(opts, size, "%s", sopts);
	}
	fclose(f);
	return best ? dax : -1;
}

int main(int argc, char **argv)
{
	enum expect expect = EXPECT_DAX;
	const char *dir = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--expect") == 0 && i + 1 < argc) {
			const char *e = argv[++i];
			expect = strcmp(e, "nodax") == 0 ? EXPECT_NODAX : strcmp(e, "dax-nosync") == 0 ? EXPECT_DAX_NOSYNC : EXPECT_DAX;
		} else {
			dir = argv[i];
		}
	}
	tap_start();
	if (!dir)
		tap_bail("usage: pmemlab-dax-check [--expect dax|nodax|dax-nosync] DIR");
	char real[PATH_MAX];
	if (!realpath(dir, real))
		tap_bail("%s: %s", dir, strerror(errno));
	const int want_dax = expect != EXPECT_NODAX;

	/* 1. mount options */
	char fstype[4096] = "?", source[4096] = "?", opts[4096] = "?";
	int dax_opt = mount_says_dax(real, fstype, source, opts, sizeof(fstype));
	tap_diag("%s is on %s (%s), options %s", real, source, fstype, opts);
	if (want_dax)
		tap_ok(dax_opt == 1, "mount options of %s include dax", real);
	else
		tap_ok(dax_opt == 0, "mount options of %s do not include dax", real);

	/* 2. statx on a fresh file */
	char file[PATH_MAX + 64];
	snprintf(file, sizeof(file), "%s/.pmemlab-dax-check.%d", real, (int)getpid());
	int fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		tap_bail("cannot create %s: %s", file, strerror(errno));
	int err = posix_fallocate(fd, 0, FILE_SIZE);
	if (err)
		tap_bail("cannot allocate %u bytes in %s: %s", FILE_SIZE, file, strerror(err));
	struct statx stx;
	if (statx(AT_FDCWD, file, 0, STATX_BASIC_STATS, &stx) != 0) {
		tap_ok(0, "statx(2) on %s", file);
		tap_diag("statx: %s", strerror(errno));
	} else if (!(stx.stx_attributes_mask & STATX_ATTR_DAX)) {
		/* Kernels before 5.8 do not report the attribute at all. */
		if (want_dax)
			tap_ok(0, "statx reports STATX_ATTR_DAX on a file in %s", real);
		else
			tap_ok(1, "statx does not report STATX_ATTR_DAX on a file in %s", real);
		tap_diag("this kernel does not report STATX_ATTR_DAX (attributes_mask 0x%llx)", (unsigned long long)stx.stx_attributes_mask);
	} else {
		int dax = (stx.stx_attributes & STATX_ATTR_DAX) != 0;
		if (want_dax) {
			if (!tap_ok(dax, "statx reports STATX_ATTR_DAX on a file in %s", real))
				tap_diag("STATX_ATTR_DAX is clear: file data goes through the page cache, not straight to persistent memory");
		} else {
			tap_ok(!dax, "statx does not report STATX_ATTR_DAX on a file in %s", real);
		}
	}

	/* 3. MAP_SYNC, and a store through it that pread(2) sees without msync */
	void *map = mmap(NULL, FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | MAP_SYNC, fd, 0);
	int map_errno = map == MAP_FAILED ? errno : 0;
	if (expect == EXPECT_DAX) {
		if (!tap_ok(map != MAP_FAILED, "mmap MAP_SHARED_VALIDATE|MAP_SYNC succeeds in %s", real))
			tap_diag("mmap: %s%s", strerror(map_errno),
				 map_errno == EOPNOTSUPP ? " (the kernel refuses MAP_SYNC: this file is not on synchronous DAX)" : "");
	} else {
		if (!tap_ok(map == MAP_FAILED && map_errno == EOPNOTSUPP, "mmap MAP_SHARED_VALIDATE|MAP_SYNC fails with EOPNOTSUPP in %s", real)) {
			if (map == MAP_FAILED)
				tap_diag("mmap failed with %s instead", strerror(map_errno));
			else
				tap_diag("MAP_SYNC was granted: this file is on synchronous DAX");
		}
	}
	if (map != MAP_FAILED) {
		/* A pattern that differs per run, stored with plain CPU stores. */
		uint64_t *words = map;
		const uint64_t seed = (uint64_t)getpid() * 0x9E3779B97F4A7C15ull;
		const size_t n = FILE_SIZE / sizeof(uint64_t);
		for (size_t i = 0; i < n; i += 512)
			words[i] = seed ^ i;
		munmap(map, FILE_SIZE);
		uint64_t *back = malloc(FILE_SIZE);
		int same = back && pread(fd, back, FILE_SIZE, 0) == (ssize_t)FILE_SIZE;
		for (size_t i = 0; same && i < n; i += 512)
			same = back[i] == (seed ^ i);
		tap_ok(same, "stores through the MAP_SYNC mapping read back with pread(2), no msync");
		free(back);
	}
	close(fd);
	unlink(file);
	return tap_done();
}

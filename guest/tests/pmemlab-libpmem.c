/*
 * pmemlab-libpmem: what libpmem (PMDK's low-level library) concludes about a directory.
 *
 * pmem_map_file() creates and maps a file and says, through is_pmem, whether the mapping is
 * persistent memory that the program may flush with CPU instructions (pmem_persist) instead
 * of msync(2). libpmem decides that by asking the kernel for a MAP_SYNC mapping, so is_pmem is
 * 1 exactly on synchronous DAX. PMEM_IS_PMEM_FORCE=1 would make libpmem say 1 regardless: this
 * program removes it from its environment and starts over, so the answer is the real one.
 *
 * Checks:
 *   - pmem_map_file maps a 4 MiB file in DIR;
 *   - is_pmem is 1 (--expect pmem, the default) or 0 (--expect nopmem);
 *   - a pattern written with pmem_memcpy_persist (pmem_msync when not pmem) reads back with
 *     pread(2), and again after pmem_unmap and a fresh pmem_map_file of the same file.
 *
 * Usage: pmemlab-libpmem [--expect pmem|nopmem] DIR
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libpmem.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"

#define FILE_SIZE (4u << 20)

/* Fills buf with a pattern derived from seed, so every run writes different bytes. */
static void fill(unsigned char *buf, size_t len, uint64_t seed)
{
	for (size_t i = 0; i < len; i++) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		buf[i] = (unsigned char)(seed >> 56);
	}
}

int main(int argc, char **argv)
{
	/* libpmem reads PMEM_IS_PMEM_FORCE when it is loaded: drop it and start again. */
	if (getenv("PMEM_IS_PMEM_FORCE")) {
		unsetenv("PMEM_IS_PMEM_FORCE");
		execv("/proc/self/exe", argv);
		perror("pmemlab-libpmem: re-exec without PMEM_IS_PMEM_FORCE");
		return 2;
	}
	int want_pmem = 1;
	const char *dir = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--expect") == 0 && i + 1 < argc)
			want_pmem = strcmp(argv[++i], "nopmem") != 0;
		else
			dir = argv[i];
	}
	tap_start();
	if (!dir)
		tap_bail("usage: pmemlab-libpmem [--expect pmem|nopmem] DIR");
	char file[PATH_MAX];
	snprintf(file, sizeof(file), "%s/.pmemlab-libpmem.%d", dir, (int)getpid());
	tap_diag("libpmem %s, PMEM_IS_PMEM_FORCE unset", pmem_check_version(PMEM_MAJOR_VERSION, PMEM_MINOR_VERSION) ? "(version mismatch)" : "ok");

	size_t len = 0;
	int is_pmem = -1;
	unsigned char *addr = pmem_map_file(file, FILE_SIZE, PMEM_FILE_CREATE | PMEM_FILE_EXCL, 0600, &len, &is_pmem);
	if (!tap_ok(addr != NULL && len == FILE_SIZE, "pmem_map_file maps a %u MiB file in %s", FILE_SIZE >> 20, dir)) {
		tap_diag("pmem_map_file: %s", pmem_errormsg());
		return tap_done();
	}
	if (want_pmem) {
		if (!tap_ok(is_pmem == 1, "pmem_map_file reports is_pmem=1 (a DAX file, flushed from user space)"))
			tap_diag("is_pmem=%d: libpmem could not map the file with MAP_SYNC, so this is not synchronous DAX", is_pmem);
	} else {
		if (!tap_ok(is_pmem == 0, "pmem_map_file reports is_pmem=0 (not DAX: needs msync)"))
			tap_diag("is_pmem=%d on a file that should not be on DAX", is_pmem);
	}

	unsigned char *pattern = malloc(FILE_SIZE);
	unsigned char *back = malloc(FILE_SIZE);
	if (!pattern || !back)
		tap_bail("out of memory");
	fill(pattern, FILE_SIZE, (uint64_t)getpid());
	if (is_pmem)
		pmem_memcpy_persist(addr, pattern, FILE_SIZE);
	else {
		memcpy(addr, pattern, FILE_SIZE);
		pmem_msync(addr, FILE_SIZE);
	}
	int fd = open(file, O_RDONLY);
	int same = fd >= 0 && pread(fd, back, FILE_SIZE, 0) == (ssize_t)FILE_SIZE && memcmp(back, pattern, FILE_SIZE) == 0;
	if (fd >= 0)
		close(fd);
	tap_ok(same, "data written with %s reads back with pread(2)", is_pmem ? "pmem_memcpy_persist" : "memcpy + pmem_msync");

	pmem_unmap(addr, len);
	size_t len2 = 0;
	int is_pmem2 = -1;
	addr = pmem_map_file(file, 0, 0, 0, &len2, &is_pmem2);
	same = addr != NULL && len2 == FILE_SIZE && memcmp(addr, pattern, FILE_SIZE) == 0;
	if (!tap_ok(same, "the data is intact after pmem_unmap and a new pmem_map_file") && !addr)
		tap_diag("pmem_map_file: %s", pmem_errormsg());
	if (addr)
		pmem_unmap(addr, len2);
	free(pattern);
	free(back);
	unlink(file);
	return tap_done();
}

/*
 * pmemlab-pmd-check: proves whether stores to a DAX file are mapped with huge pages (PMD
 * faults, 2 MiB per fault) rather than one 4 KiB page per fault, the main reason to use DAX on
 * large files. It touches one byte in each of CHUNKS 2 MiB pieces of a freshly allocated file,
 * at a file offset whose disk address is 2 MiB-aligned too (FIEMAP), through a 2 MiB-aligned
 * shared mapping, and then asks the kernel twice:
 *
 *   1. /proc/self/pagemap: a PMD fault maps the whole 2 MiB, so all CHUNKS x 512 pages of the
 *      mapping are present; 4 KiB faults make only the CHUNKS touched pages present (DAX has no
 *      fault-around). Huge page-cache folios (a filesystem without DAX) can be PMD-mapped too,
 *      but those count in smaps' FilePmdMapped, which device memory never does.
 *   2. the fs_dax:dax_pmd_fault_done trace event (tracefs), when the kernel has it: one event
 *      with result NOPAGE per huge page mapped, FALLBACK where DAX fell back to 4 KiB.
 *
 * The file's extents must be 2 MiB-aligned on disk for PMD faults: xfs made with su=2m,sw=1,
 * ext4 with 4 KiB blocks on a fresh filesystem (pmemlab-suite prepare makes both).
 *
 * Usage: pmemlab-pmd-check [--expect pmd|nopmd] DIR
 *   pmd    (default) every touch mapped a huge page of device memory, by both witnesses
 *   nopmd  no touch did (the control: a filesystem without DAX)
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
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tap.h"

#ifndef STATX_ATTR_DAX
#define STATX_ATTR_DAX 0x00200000
#endif

#define HUGE (2ul << 20)
#define CHUNKS 4
/* Room to find CHUNKS huge pages whose file offset and disk address are both 2 MiB-aligned. */
#define FILE_BYTES (32ul << 20)
#define TRACING "/sys/kernel/tracing"
#define EVENT TRACING "/events/fs_dax/dax_pmd_fault_done"

/* Writes TEXT to PATH; 0 on success. */
static int put(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_TRUNC);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* Turns the PMD fault event on for this process only; 1 when it is on, 0 when the kernel lacks it. */
static int trace_start(void)
{
	struct stat st;
	if (stat(TRACING "/events", &st) != 0)
		mount("tracefs", TRACING, "tracefs", 0, NULL);
	if (stat(EVENT, &st) != 0)
		return 0;
	char filter[64];
	snprintf(filter, sizeof(filter), "common_pid == %d", (int)getpid());
	put(TRACING "/tracing_on", "0");
	put(TRACING "/trace", "");
	if (put(EVENT "/filter", filter) || put(EVENT "/enable", "1") || put(TRACING "/tracing_on", "1"))
		return 0;
	return 1;
}

/* Stops the event and counts its NOPAGE (huge page mapped) and other results. */
static void trace_stop(int *nopage, int *other)
{
	put(EVENT "/enable", "0");
	put(EVENT "/filter", "0");
	FILE *f = fopen(TRACING "/trace", "r");
	char line[1024];
	*nopage = *other = 0;
	while (f && fgets(line, sizeof(line), f)) {
		if (line[0] == '#' || !strstr(line, "dax_pmd_fault_done"))
			continue;
		if (strstr(line, "NOPAGE") || strstr(line, "0x100"))
			(*nopage)++;
		else
			(*other)++;
	}
	if (f)
		fclose(f);
	put(TRACING "/trace", "");
}

/*
 * The first file offset from which CHUNKS x 2 MiB are one extent whose file offset and disk
 * address are both 2 MiB-aligned (what a PMD fault needs), from FIEMAP; -1 when there is none,
 * -2 when the filesystem cannot say (then offset 0 is tried).
 */
static long aligned_offset(int fd)
{
	enum { MAX_EXTENTS = 64 };
	struct fiemap *fm = calloc(1, sizeof(*fm) + MAX_EXTENTS * sizeof(struct fiemap_extent));
	if (!fm)
		return -2;
	fm->fm_length = FILE_BYTES;
	fm->fm_extent_count = MAX_EXTENTS;
	if (ioctl(fd, FS_IOC_FIEMAP, fm) != 0) {
		free(fm);
		return -2;
	}
	long found = -1;
	for (unsigned i = 0; i < fm->fm_mapped_extents && found < 0; i++) {
		const struct fiemap_extent *e = &fm->fm_extents[i];
		tap_diag("extent %u: file offset %llu KiB, disk %llu KiB, %llu KiB", i, (unsigned long long)e->fe_logical >> 10,
			 (unsigned long long)e->fe_physical >> 10, (unsigned long long)e->fe_length >> 10);
		if ((e->fe_logical - e->fe_physical) % HUGE != 0)
			continue; /* no offset in it is aligned on both sides */
		unsigned long skip = (HUGE - e->fe_logical % HUGE) % HUGE;
		if (e->fe_length >= skip + CHUNKS * HUGE)
			found = (long)(e->fe_logical + skip);
	}
	free(fm);
	return found;
}

/* How many of the PAGES pages from ADDR are present, from /proc/self/pagemap (bit 63); -1 on error. */
static long present_pages(const void *addr, long pages)
{
	int fd = open("/proc/self/pagemap", O_RDONLY);
	if (fd < 0)
		return -1;
	uint64_t *entries = calloc(pages, sizeof(uint64_t));
	off_t at = (off_t)((uintptr_t)addr / 4096) * sizeof(uint64_t);
	ssize_t want = pages * (ssize_t)sizeof(uint64_t);
	long present = -1;
	if (entries && pread(fd, entries, want, at) == want) {
		present = 0;
		for (long i = 0; i < pages; i++)
			present += (entries[i] >> 63) & 1;
	}
	free(entries);
	close(fd);
	return present;
}

/* Rss and FilePmdMapped (kB) of the mapping that starts at ADDR, from /proc/self/smaps. */
static int smaps_of(void *addr, long *rss, long *file_pmd)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512], start[32];
	int in = 0, found = 0;
	snprintf(start, sizeof(start), "%lx-", (unsigned long)addr);
	*rss = *file_pmd = -1;
	while (f && fgets(line, sizeof(line), f)) {
		if (strchr(line, '-') && strchr(line, ' ') && strchr(line, '-') < strchr(line, ' ')) {
			/* a mapping's header line: "start-end perms offset dev inode path" */
			in = strncmp(line, start, strlen(start)) == 0;
			found |= in;
			continue;
		}
		if (in) {
			sscanf(line, "Rss: %ld kB", rss);
			sscanf(line, "FilePmdMapped: %ld kB", file_pmd);
		}
	}
	if (f)
		fclose(f);
	return found ? 0 : -1;
}

int main(int argc, char **argv)
{
	int want_pmd = 1;
	const char *dir = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--expect") == 0 && i + 1 < argc)
			want_pmd = strcmp(argv[++i], "nopmd") != 0;
		else
			dir = argv[i];
	}
	tap_start();
	if (!dir)
		tap_bail("usage: pmemlab-pmd-check [--expect pmd|nopmd] DIR");
	char file[PATH_MAX];
	snprintf(file, sizeof(file), "%s/.pmemlab-pmd-check.%d", dir, (int)getpid());
	int fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		tap_bail("cannot create %s: %s", file, strerror(errno));
	unlink(file);
	int err = posix_fallocate(fd, 0, FILE_BYTES);
	if (err)
		tap_bail("cannot allocate %lu MiB in %s: %s", FILE_BYTES >> 20, dir, strerror(err));
	long offset = aligned_offset(fd);
	if (offset == -1) {
		/* No PMD fault is possible on this file: that is the expected result of the control only. */
		tap_diag("no %lu MiB of %s is one extent aligned to 2 MiB on disk", CHUNKS * HUGE >> 20, dir);
		offset = 0;
	} else if (offset == -2) {
		tap_diag("FIEMAP is not supported on %s: mapping from offset 0", dir);
		offset = 0;
	}

	/* A 2 MiB-aligned address: reserve one huge page more and map the file over the aligned part. */
	char *area = mmap(NULL, (CHUNKS + 1) * HUGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED)
		tap_bail("mmap: %s", strerror(errno));
	char *aligned = (char *)(((uintptr_t)area + HUGE - 1) & ~(HUGE - 1));
	char *map = mmap(aligned, CHUNKS * HUGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, offset);
	if (map == MAP_FAILED)
		tap_bail("mmap of %s: %s", file, strerror(errno));

	int traced = trace_start();
	for (int i = 0; i < CHUNKS; i++)
		map[i * HUGE] = (char)(i + 1);
	int nopage = 0, other = 0;
	if (traced)
		trace_stop(&nopage, &other);

	long rss, file_pmd;
	if (smaps_of(map, &rss, &file_pmd) != 0)
		tap_bail("the mapping at %p is not in /proc/self/smaps", (void *)map);
	const long pages = CHUNKS * (long)(HUGE / 4096);
	long present = present_pages(map, pages);
	if (present < 0)
		tap_bail("cannot read /proc/self/pagemap: %s", strerror(errno));
	int dax_pmd = present == pages && file_pmd == 0;
	tap_diag("%d touches, one per 2 MiB: %ld pages present (%ld if each mapped a huge page, %d if 4 KiB), FilePmdMapped %ld kB",
		 CHUNKS, present, pages, CHUNKS, file_pmd);
	if (want_pmd) {
		if (!tap_ok(dax_pmd, "%d touches in %s mapped %d huge pages of device memory (pagemap)", CHUNKS, dir, CHUNKS)) {
			struct statx stx;
			int on_dax = statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &stx) == 0 && (stx.stx_attributes & STATX_ATTR_DAX);
			if (!on_dax)
				tap_diag("the file is not on DAX (statx reports no STATX_ATTR_DAX): its stores go through the page cache");
			else if (file_pmd > 0)
				tap_diag("the huge pages are page cache (FilePmdMapped %ld kB), not device memory", file_pmd);
			else
				tap_diag("DAX fell back to 4 KiB faults: are the file's extents 2 MiB-aligned on disk (xfs su=2m,sw=1; ext4 -b 4096)?");
		}
	} else {
		tap_ok(!dax_pmd, "%d touches in %s mapped no huge page of device memory (pagemap)", CHUNKS, dir);
	}
	if (!traced) {
		tap_skip("this kernel has no fs_dax trace events (CONFIG_FTRACE, CONFIG_EVENT_TRACING)", "the kernel traced the PMD faults");
	} else if (want_pmd) {
		if (!tap_ok(nopage >= CHUNKS, "the kernel traced %d dax_pmd_fault_done NOPAGE events (%d wanted)", nopage, CHUNKS))
			tap_diag("%d other dax_pmd_fault_done results (FALLBACK: DAX mapped 4 KiB pages instead)", other);
	} else {
		tap_ok(nopage == 0, "the kernel traced no dax_pmd_fault_done NOPAGE event (%d)", nopage);
	}
	munmap(area, (CHUNKS + 1) * HUGE);
	close(fd);
	return tap_done();
}

/*
 * pmemlab-devdax: device DAX, persistent memory mapped without any filesystem.
 *
 * A devdax namespace appears as a character device /dev/daxX.Y that can only be mapped
 * (no read/write), in multiples of its alignment (2 MiB by default). Stores go straight to
 * the media: flushing the CPU caches (pmem_persist) makes them durable, msync has no role.
 *
 * Checks:
 *   - pmem_map_file maps the whole device (its size from /sys/bus/dax/devices/daxX.Y/size);
 *   - libpmem reports is_pmem=1;
 *   - patterns written with pmem_memcpy_persist at the start, middle and end read back after
 *     pmem_unmap and a new mapping;
 *   - a plain mmap(2) of the first alignment unit sees the same bytes.
 *
 * Usage: pmemlab-devdax /dev/daxX.Y
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libpmem.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tap.h"

#define CHUNK 4096

/* A number from /sys/bus/dax/devices/NAME/ATTR, or 0. */
static unsigned long long sysfs_number(const char *name, const char *attr)
{
	char path[256];
	unsigned long long value = 0;
	snprintf(path, sizeof(path), "/sys/bus/dax/devices/%s/%s", name, attr);
	FILE *f = fopen(path, "r");
	if (f) {
		if (fscanf(f, "%llu", &value) != 1)
			value = 0;
		fclose(f);
	}
	return value;
}

static void fill(unsigned char *buf, size_t len, uint64_t seed)
{
	for (size_t i = 0; i < len; i++) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		buf[i] = (unsigned char)(seed >> 56);
	}
}

int main(int argc, char **argv)
{
	tap_start();
	if (argc != 2 || strncmp(argv[1], "/dev/dax", 8) != 0)
		tap_bail("usage: pmemlab-devdax /dev/daxX.Y");
	const char *dev = argv[1];
	const char *name = dev + 5;
	unsigned long long size = sysfs_number(name, "size");
	unsigned long long align = sysfs_number(name, "align");
	if (!align)
		align = 2u << 20;
	tap_diag("%s: %llu bytes, alignment %llu", dev, size, align);

	size_t len = 0;
	int is_pmem = -1;
	unsigned char *addr = pmem_map_file(dev, 0, 0, 0, &len, &is_pmem);
	if (!tap_ok(addr != NULL && len == size, "pmem_map_file maps the whole device")) {
		if (addr)
			tap_diag("mapped %zu bytes, the device has %llu", len, size);
		else
			tap_diag("pmem_map_file: %s", pmem_errormsg());
		return tap_done();
	}
	tap_ok(is_pmem == 1, "libpmem reports is_pmem=1 for device DAX");

	/* Three places: the first and last chunk, and one in the middle. */
	const size_t offsets[3] = {0, (len / 2) & ~(size_t)(CHUNK - 1), len - CHUNK};
	unsigned char pattern[3][CHUNK];
	for (int i = 0; i < 3; i++) {
		fill(pattern[i], CHUNK, (uint64_t)getpid() * 3 + (uint64_t)i);
		pmem_memcpy_persist(addr + offsets[i], pattern[i], CHUNK);
	}
	pmem_unmap(addr, len);
	addr = pmem_map_file(dev, 0, 0, 0, &len, &is_pmem);
	int same = addr != NULL;
	for (int i = 0; same && i < 3; i++)
		same = memcmp(addr + offsets[i], pattern[i], CHUNK) == 0;
	tap_ok(same, "data persisted with pmem_memcpy_persist reads back after a new mapping (no msync, no page cache)");
	if (addr)
		pmem_unmap(addr, len);

	int fd = open(dev, O_RDWR);
	void *map = fd >= 0 ? mmap(NULL, align, PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
	int map_errno = errno;
	if (tap_ok(map != MAP_FAILED && memcmp(map, pattern[0], CHUNK) == 0, "a plain mmap(2) of the device sees the same bytes") == 0 && map == MAP_FAILED)
		tap_diag("open/mmap: %s", strerror(map_errno));
	if (map != MAP_FAILED)
		munmap(map, align);
	if (fd >= 0)
		close(fd);
	return tap_done();
}

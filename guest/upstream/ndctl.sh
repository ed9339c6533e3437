# Builds ndctl's own test suite in the image (run by the image build, inside its chroot, as
# `sh -eu ndctl.sh DIR` with the source unpacked in DIR/src). The build tree in DIR/build holds
# ndctl, daxctl and cxl linked against their own in-tree libraries, and the test programs; the
# test scripts stay in DIR/src/test, next to the `common` file they source.
to=$1
cd "$to/src"
# docs and systemd units are not needed; the destructive tests are the ones that run on a
# lab's memmap range and NVDIMMs (they create and destroy namespaces, which a lab is for).
# No poison tests: they poison a block with MADV_HWPOISON and rely on the bus to clear it again
# (nfit_test's can). Neither the e820 bus of a memmap range nor QEMU's NVDIMM can, so the block
# stays bad and the next write to it fails (device-dax: "failed data setup").
meson setup "$to/build" \
	-Dversion-tag="$(cat version 2>/dev/null || sed -n "s/^DEF_VER=//p" git-version)" \
	-Ddocs=disabled -Dasciidoctor=disabled -Dsystemd=disabled -Dbashcompletiondir=no \
	-Dtest=enabled -Ddestructive=enabled -Dpoison=disabled
meson compile -C "$to/build"
# Object files are half the tree and nothing runs them.
find "$to/build" -depth -type d -name '*.p' -exec rm -rf {} +
echo "pmemlab: ndctl $(cat "$to/build/version.h" 2>/dev/null | sed -n 's/.*VERSION "\(.*\)".*/\1/p') tests built in $to/build/test"

/**
 * A kernel git tree that a fake make builds in a blink, for the tests of builds and bisects that
 * must not build a kernel: the real kernel/build.ts runs (sources, fragments, key, lock, O=,
 * entry), only make is a shell script first on PATH.
 */
import {chmod, mkdir, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {execa} from 'execa'

/**
 * A stand-in for kbuild, first on PATH: enough of make's targets for a whole pmemlab build. It
 * logs every call, fails bzImage when the tree holds BROKEN, and says whether its O= directory
 * held an earlier build (what makes a build incremental).
 */
const FAKE_MAKE = `#!/bin/sh
echo "make $*" >>"$FAKE_MAKE_LOG"
src= out= targets=
while [ $# -gt 0 ]; do
  case $1 in
    -C) src=$2; shift ;;
    O=*) out=\${1#O=} ;;
    *=*|-j*) ;;
    *) targets="$targets $1" ;;
  esac
  shift
done
for target in $targets; do
  case $target in
    tinyconfig) : >"$out/.config" ;;
    olddefconfig) ;;
    bzImage)
      [ -f "$out/built-from" ] && echo "incremental, on top of $(cat "$out/built-from")"
      if [ -e "$src/BROKEN" ]; then echo "fs/dax.c:1: error: expected ';'"; mkdir -p "$out/fs"; : >"$out/fs/dax.o"; exit 2; fi
      mkdir -p "$out/arch/x86/boot"
      echo "  CC      init/version.o"
      cp "$src/version.c" "$out/arch/x86/boot/bzImage"
      # The stripped vmlinux kbuild packs into the bzImage: the tree's vmlinux.bin, when it has one.
      if [ -e "$src/vmlinux.bin" ]; then mkdir -p "$out/arch/x86/boot/compressed"; cp "$src/vmlinux.bin" "$out/arch/x86/boot/compressed/vmlinux.bin"; fi
      echo "ffffffff81000000 T _text" >"$out/System.map"
      cat "$src/version.c" >"$out/built-from"
      ;;
  esac
done
`

export async function fixture(dir: string) {
  const tree = join(dir, 'linux')
  const bin = join(dir, 'bin')
  await mkdir(tree, {recursive: true})
  await mkdir(bin)
  await writeFile(join(bin, 'make'), FAKE_MAKE)
  await chmod(join(bin, 'make'), 0o755)
  await writeFile(join(tree, 'Kconfig'), 'mainmenu "fake"\n')
  await writeFile(join(tree, 'Makefile'), 'VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 5\nEXTRAVERSION =\n')
  const git = (...args: string[]) => execa('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...args], {cwd: tree})
  await git('init', '-q', '-b', 'main')
  const commit = async (version: string, broken = false) => {
    await writeFile(join(tree, 'version.c'), `${version}\n`)
    if (broken) await writeFile(join(tree, 'BROKEN'), 'yes\n')
    else await git('rm', '-q', '--ignore-unmatch', 'BROKEN')
    await git('add', '-A')
    await git('commit', '-q', '-m', version)
    return (await git('rev-parse', 'HEAD')).stdout.trim()
  }
  const log = join(dir, 'make.log')
  const cache = join(dir, 'cache')
  /** The environment the fake builds run in (withEnv). */
  const env = {PMEMLAB_CACHE_DIR: cache, PATH: `${bin}:${process.env.PATH}`, FAKE_MAKE_LOG: log, PMEMLAB_CCACHE: '0'}
  return {tree, bin, commit, log, cache, env, pinned: join(cache, 'build', 'bisect-test')}
}


import {createHash} from 'node:crypto'
import {mkdir, open, readFile, readdir, writeFile} from 'node:fs/promises'
import {dirname, join, resolve} from 'node:path'
import {gunzipSync} from 'node:zlib'
import {withDir} from 'tmp-promise'
import {ExitCode, PmemlabError, missingDependency, notFound, usageError} from '../core/errors.js'
import {fileIdentity, writeFileAtomic} from '../core/cache.js'
import {cpioNewc, moduleName, parseModulesBuiltin, parseModulesDep, resolveModuleOrder, type CpioEntry, type ModulesDep} from './initramfs.js'
import {extractPvhVmlinux} from './pvh.js'
import {log} from '../core/log.js'
import {cacheDir, packageRoot} from '../core/paths.js'
import {canAccess, requireProgram, which} from '../core/which.js'

/** What QEMU needs to boot a guest: -kernel, -initrd and the start of -append. */
export interface BootKernel {
  spec: string
  version?: string
  kernel: string
  initrd?: string
  /** root=, init= / rdinit=, and so on; the caller adds console=, memmap=, pmemlab.* ... */
  kernelArgs: string[]
  /** When kernel is the PVH vmlinux pmemlab took out of a bzImage: that bzImage. */
  pvhOf?: string
}

/**
 * Modules the initramfs loads at boot, in this order (each after its dependencies).
 * crc32c_generic comes first: up to 6.14 ext4 asks the crypto API for crc32c and there is no
 * modprobe in the initramfs to find it (crc32c_intel would not load under TCG). From 6.1 the
 * dax_pmem core pieces are one module, dax_pmem; in 5.10 dax_pmem needs dax_pmem_core, which
 * modules.dep brings in (dax_pmem_compat, the old /sys/class/dax interface, is left out). "dax"
 * itself is built in. Checked against Debian's 5.10, 6.1, 6.12 and 7.2 packages.
 */
export const BOOT_MODULES = [
  'crc32c_generic',
  'virtio_pci',
  'virtio_blk',
  'virtio_console',
  'virtio_rng',
  'ext4',
  'libnvdimm',
  'nfit',
  'nd_btt',
  'nd_pmem',
  'nd_e820',
  'nd_virtio',
  'virtio_pmem',
  'dax_pmem',
  'device_dax',
]

/**
 * Modules shipped but not loaded at boot: the guest's modprobe loads them on demand (mount -t xfs,
 * mount -t 9p, daxctl reconfigure-device --mode=system-ram, dmsetup for ndctl's dm.sh). xfs alone
 * takes 1.5 s to insmod under TCG.
 */
export const ON_DEMAND_MODULES = ['libcrc32c', 'xfs', 'kmem', '9pnet_virtio', '9p', 'dm_mod']

/**
 * Modules of the lists above that newer kernels no longer have, and no longer need: in Debian's
 * 7.x ext4 and xfs compute crc32c with the library, and neither crc32c_generic nor libcrc32c
 * exists. Skipped where the kernel has no such module (as module or built in).
 */
export const MODULES_NOT_IN_EVERY_KERNEL = new Set(['crc32c_generic', 'libcrc32c'])

/** wanted without the modules of MODULES_NOT_IN_EVERY_KERNEL that this kernel has neither as a module nor built in. */
export function modulesThisKernelHas(wanted: string[], dependencies: ModulesDep, builtin: Set<string>): string[] {
  return wanted.filter((name) => !MODULES_NOT_IN_EVERY_KERNEL.has(moduleName(name)) || dependencies.has(moduleName(name)) || builtin.has(moduleName(name)))
}

export {bzImagePayload, hasPvhNote} from './pvh.js'

/** busybox applets the initramfs /init uses. */
const BUSYBOX_APPLETS = ['sh', 'mount', 'umount', 'insmod', 'mkdir', 'sleep', 'cat', 'cp', 'ls', 'dmesg', 'uname', 'switch_root', 'poweroff']

// Overridable for tests and unusual hosts.
const busyboxPath = () => process.env.PMEMLAB_BUSYBOX ?? '/bin/busybox'
const bootDir = () => process.env.PMEMLAB_BOOT_DIR ?? '/boot'
const modulesRoot = () => process.env.PMEMLAB_MODULES_DIR ?? '/lib/modules'

/**
 * `distro` (the newest installed Debian kernel, with pmemlab's initramfs), `debian:X` (Debian's
 * prebuilt kernel X, unpacked into the cache, with the same initramfs), a built kernel, or the
 * path of a bzImage.
 */
export async function resolveKernel(spec: string): Promise<BootKernel> {
  if (spec === 'distro') return distroKernel()
  if (spec.startsWith('debian:')) return debianKernel(spec)
  const path = resolve(spec)
  if (!spec.includes('/') && !(await exists(path))) {
    // A kernel pmemlab built: by key, version or "latest".
    const {resolveBuiltKernel} = await import('./store.js')
    const built = await resolveBuiltKernel(spec)
    if (built) return {spec, version: built.version, ...(await entryPoint(built.kernel, built.version, built.pvh)), kernelArgs: built.kernelArgs}
  }
  if (!(await exists(path))) {
    throw notFound(`kernel "${spec}" not found`, 'pass --kernel distro, a built kernel (latest, a version or key from pmemlab kernel ls), debian:VERSION or the path of a bzImage')
  }
  const header = await readBootHeader(path)
  return {
    spec,
    version: header.version,
    ...(await entryPoint(path, header.version ?? 'unknown')),
    kernelArgs: ['root=/dev/vda', 'rw', 'init=/sbin/pmemlab-init'],
  }
}

/** Compares version strings the way `sort -V` does: digit runs as numbers, the rest as text. */
export function compareVersions(a: string, b: string): number {
  const split = (text: string) => text.match(/\d+|\D+/g) ?? []
  const left = split(a)
  const right = split(b)
  for (let i = 0; i < Math.max(left.length, right.length); i++) {
    const x = left[i]
    const y = right[i]
    if (x === undefined) return -1
    if (y === undefined) return 1
    const bothNumbers = /^\d/.test(x) && /^\d/.test(y)
    const order = bothNumbers ? Number(x) - Number(y) : x < y ? -1 : x > y ? 1 : 0
    if (order !== 0) return Math.sign(order)
  }
  return 0
}

/** Newest /boot/vmlinuz-VERSION that has a /lib/modules/VERSION/modules.dep. */
export async function findDistroKernel(): Promise<{version: string; kernel: string; modules: string}> {
  const BOOT_DIR = bootDir()
  const MODULES_DIR = modulesRoot()
  let names: string[] = []
  try {
    names = await readdir(BOOT_DIR)
  } catch {
    // no /boot: same advice as an empty one
  }
  const versions = names
    .filter((name) => name.startsWith('vmlinuz-'))
    .map((name) => name.slice('vmlinuz-'.length))
    .sort(compareVersions)
    .reverse()
  for (const version of versions) {
    const modules = join(MODULES_DIR, version)
    if (await exists(join(modules, 'modules.dep'))) return {version, kernel: join(BOOT_DIR, `vmlinuz-${version}`), modules}
  }
  throw notFound(
    versions.length > 0
      ? `no distro kernel with modules: ${versions.map((v) => `${BOOT_DIR}/vmlinuz-${v}`).join(', ')} but no ${MODULES_DIR}/VERSION/modules.dep`
      : `no distro kernel found (no ${BOOT_DIR}/vmlinuz-*)`,
    'apt-get install linux-image-amd64',
  )
}

async function distroKernel(): Promise<BootKernel> {
  const {version, kernel, modules} = await findDistroKernel()
  await readBootHeader(kernel)
  const initrd = await buildDistroInitramfs(version, modules)
  return {spec: 'distro', version, ...(await entryPoint(kernel, version)), initrd, kernelArgs: ['rdinit=/init', 'root=/dev/vda']}
}

/** Debian's prebuilt kernel: its modules, from the unpacked packages, go into the generated initramfs. */
async function debianKernel(spec: string): Promise<BootKernel> {
  const {resolveDebianKernel} = await import('./debian-prebuilt.js')
  const debian = await resolveDebianKernel(spec)
  const initrd = await buildDistroInitramfs(debian.abi, debian.modulesDir)
  const kernel = process.env.PMEMLAB_NO_PVH === '1' ? debian.vmlinuz : (debian.vmlinux ?? debian.vmlinuz)
  return {spec, version: debian.abi, kernel, initrd, kernelArgs: ['rdinit=/init', 'root=/dev/vda']}
}

/**
 * What QEMU is to load for BZIMAGE: its PVH vmlinux when it has a PVH entry (the one its build
 * kept, else one taken out of it here), else the bzImage (always with PMEMLAB_NO_PVH=1).
 */
async function entryPoint(bzImage: string, version: string, keptPvh?: string): Promise<Pick<BootKernel, 'kernel' | 'pvhOf'>> {
  const elf = process.env.PMEMLAB_NO_PVH === '1' ? undefined : (keptPvh ?? (await pvhKernel(bzImage, version)))
  return elf ? {kernel: elf, pvhOf: bzImage} : {kernel: bzImage}
}

/**
 * The PVH vmlinux of a bzImage (see pvh.ts), a distro kernel's, a built one's or a user's, cached
 * under distro-kernels/ by the bzImage's identity. Returns undefined (boot the bzImage) when
 * there is none.
 */
export async function pvhKernel(bzImage: string, version: string): Promise<string | undefined> {
  try {
    const dir = join(cacheDir(), 'distro-kernels')
    const path = join(dir, `vmlinux-${version}-${digestOf(await fileIdentity(bzImage)).slice(0, 16)}`)
    // A kernel without a PVH entry is remembered too, so it is not decompressed on every boot.
    const noPvh = `${path}.no-pvh`
    if (await exists(path)) return path
    if (await exists(noPvh)) return undefined
    await mkdir(dir, {recursive: true})
    const whyNot = await extractPvhVmlinux(bzImage, path)
    if (whyNot === undefined) return path
    if (whyNot.ofKernel) await writeFile(noPvh, `${whyNot.reason}\n`)
    else log.debug(`no PVH kernel from ${bzImage}: ${whyNot.reason}`)
    return undefined
  } catch (error) {
    log.debug(`no PVH kernel from ${bzImage}, booting the bzImage: ${(error as Error).message.split('\n')[0]}`)
    return undefined
  }
}

/** sha256 over the parts, each ended by a NUL so that no two lists of parts collide. */
const digestOf = (...parts: Array<string | Buffer>) => {
  const hash = createHash('sha256')
  for (const part of parts) hash.update(part).update('\0')
  return hash.digest('hex')
}

/**
 * Checks the x86 boot protocol header ("HdrS" at 0x202) and reads the version string the header
 * points to (offset 0x20e, relative to 0x200), when there is one.
 */
export async function readBootHeader(path: string): Promise<{version?: string}> {
  let file
  try {
    file = await open(path, 'r')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'EACCES' || code === 'EPERM') {
      throw new PmemlabError(
        `cannot read kernel ${path}: permission denied`,
        ExitCode.failure,
        'some distributions make /boot/vmlinuz-* readable by root only: run as root, or make a readable copy and pass its path with --kernel',
      )
    }
    throw error
  }
  try {
    const header = Buffer.alloc(0x300)
    const {bytesRead} = await file.read(header, 0, header.length, 0)
    if (bytesRead < 0x210 || header.toString('latin1', 0x202, 0x206) !== 'HdrS') {
      throw usageError(`"${path}" is not a bzImage (no "HdrS" boot header at 0x202)`, 'pass arch/x86/boot/bzImage, not vmlinux')
    }
    const pointer = header.readUInt16LE(0x20e)
    if (pointer === 0) return {}
    const text = Buffer.alloc(256)
    await file.read(text, 0, text.length, pointer + 0x200)
    const version = text.toString('latin1').split('\0')[0].split(' ')[0]
    return /^\d+\.\d+/.test(version) ? {version} : {}
  } finally {
    await file.close()
  }
}

/** True when the ELF file has no PT_INTERP program header, i.e. it needs no dynamic loader. */
export function isStaticElf(bytes: Buffer): boolean {
  if (bytes.length < 64 || bytes.toString('latin1', 0, 4) !== '\x7fELF' || bytes[4] !== 2) return false
  const little = bytes[5] === 1
  const u16 = (offset: number) => (little ? bytes.readUInt16LE(offset) : bytes.readUInt16BE(offset))
  const u32 = (offset: number) => (little ? bytes.readUInt32LE(offset) : bytes.readUInt32BE(offset))
  const u64 = (offset: number) => Number(little ? bytes.readBigUInt64LE(offset) : bytes.readBigUInt64BE(offset))
  const phoff = u64(0x20)
  const phentsize = u16(0x36)
  const phnum = u16(0x38)
  for (let i = 0; i < phnum; i++) {
    const offset = phoff + i * phentsize
    if (offset + 4 > bytes.length) return false
    if (u32(offset) === 3 /* PT_INTERP */) return false
  }
  return true
}

/**
 * The initramfs for a distro kernel: static busybox, the guest modules with their dependencies,
 * and guest/initramfs-init as /init. Cached under a key made of the module lists, /init's bytes
 * and the identities (not the bytes) of busybox and the modules.
 */
export async function buildDistroInitramfs(version: string, modulesDir: string): Promise<string> {
  const BUSYBOX = busyboxPath()
  const busyboxHead = await readHead(BUSYBOX, 65_536).catch(() => {
    throw missingDependency(`${BUSYBOX} not found (a static busybox for the initramfs)`, 'apt-get install busybox-static')
  })
  if (!isStaticElf(busyboxHead)) {
    throw missingDependency(`${BUSYBOX} is not statically linked: it cannot run in the initramfs`, 'apt-get install busybox-static')
  }
  const init = await readFile(join(packageRoot, 'guest', 'initramfs-init'))
  const modulesDep = await readFile(join(modulesDir, 'modules.dep'), 'utf8')
  const builtinText = await readFile(join(modulesDir, 'modules.builtin'), 'utf8').catch(() => '')
  const builtinModinfoPath = join(modulesDir, 'modules.builtin.modinfo')
  const hasBuiltinModinfo = await exists(builtinModinfoPath)

  let order: string[]
  let shipped: string[]
  try {
    const builtin = parseModulesBuiltin(builtinText)
    const dependencies = parseModulesDep(modulesDep)
    order = resolveModuleOrder(dependencies, modulesThisKernelHas(BOOT_MODULES, dependencies, builtin), builtin)
    shipped = resolveModuleOrder(dependencies, modulesThisKernelHas([...BOOT_MODULES, ...ON_DEMAND_MODULES], dependencies, builtin), builtin)
  } catch (error) {
    if (error instanceof PmemlabError) {
      throw new PmemlabError(`kernel ${version}: ${error.message}`, error.exitCode, error.hint)
    }
    throw error
  }

  const identities = await Promise.all([BUSYBOX, ...shipped.map((path) => join(modulesDir, path)), ...(hasBuiltinModinfo ? [builtinModinfoPath] : [])].map(fileIdentity))
  const digest = digestOf('pmemlab-initramfs-v3', version, order.join('\n'), shipped.join('\n'), init, builtinText, ...identities)
  const dir = join(cacheDir(), 'initramfs')
  const path = join(dir, `${digest}.cpio`)
  if (await exists(path)) return path

  const busybox = await readFile(BUSYBOX)
  const builtinModinfo = hasBuiltinModinfo ? await readFile(builtinModinfoPath) : undefined
  // busybox insmod cannot read zstd, and some distributions (Ubuntu) compress every module:
  // ship them uncompressed under plain .ko names.
  const modules = await Promise.all(shipped.map(async (path) => ({path: uncompressedName(path), content: await readModule(join(modulesDir, path))})))
  order = order.map((path) => uncompressedName(path))

  log.info(`building initramfs for kernel ${version} (${modules.length} modules)`)
  const lib = `lib/modules/${version}`
  const moduleFiles: Array<{name: string; content: Buffer}> = [
    {name: 'modules.order', content: Buffer.from(`${shipped.join('\n')}\n`)},
    {name: 'modules.builtin', content: Buffer.from(builtinText)},
    ...(builtinModinfo ? [{name: 'modules.builtin.modinfo', content: builtinModinfo}] : []),
  ]
  moduleFiles.push(...(await depmodIndexes(version, modules, moduleFiles, modulesDep)))
  const entries: CpioEntry[] = [
    {path: 'bin', mode: 0o755},
    {path: 'dev', mode: 0o755},
    {path: 'proc', mode: 0o555},
    {path: 'sys', mode: 0o555},
    {path: 'newroot', mode: 0o755},
    {path: 'tmp', mode: 0o1777},
    {path: 'bin/busybox', mode: 0o755, content: busybox},
    ...BUSYBOX_APPLETS.map((applet) => ({path: `bin/${applet}`, mode: 0o777, target: 'busybox'})),
    {path: 'init', mode: 0o755, content: init},
    {path: lib, mode: 0o755},
    ...modules.map((module) => ({path: `${lib}/${module.path}`, mode: 0o644, content: module.content})),
    {path: `${lib}/pmemlab.modules`, mode: 0o644, content: Buffer.from(`${order.join('\n')}\n`)},
    ...moduleFiles.map((file) => ({path: `${lib}/${file.name}`, mode: 0o644, content: file.content})),
  ]
  await mkdir(dir, {recursive: true})
  await writeFileAtomic(path, cpioNewc(entries))
  return path
}

/**
 * modules.dep and the binary indexes modprobe reads, for the shipped subset, made by the host's
 * depmod in a scratch tree (depmod -b). Without depmod on the host, a filtered copy of the text
 * modules.dep; pmemlab-init then runs the guest's depmod at boot (0.4 s under TCG).
 */
async function depmodIndexes(
  version: string,
  modules: Array<{path: string; content: Buffer}>,
  extra: Array<{name: string; content: Buffer}>,
  modulesDep: string,
): Promise<Array<{name: string; content: Buffer}>> {
  const depmod = await which('depmod')
  if (depmod) {
    try {
      // The scratch tree lives only for this scope: withDir removes it, contents and all.
      return await withDir(
        async ({path: scratch}) => {
          const dir = join(scratch, 'lib', 'modules', version)
          for (const module of modules) {
            await mkdir(join(dir, dirname(module.path)), {recursive: true})
            await writeFile(join(dir, module.path), module.content)
          }
          for (const file of extra) await writeFile(join(dir, file.name), file.content)
          const {run} = await import('../core/exec.js')
          await run(depmod, ['-b', scratch, version])
          const generated = (await readdir(dir)).filter((name) => name.startsWith('modules.') && !extra.some((file) => file.name === name))
          return await Promise.all(generated.sort().map(async (name) => ({name, content: await readFile(join(dir, name))})))
        },
        {prefix: 'pmemlab-depmod', unsafeCleanup: true},
      )
    } catch (error) {
      log.warn(`depmod failed, the guest will index its modules at boot: ${(error as Error).message.split('\n')[0]}`)
    }
  }
  const shipped = new Set(modules.map((module) => module.path))
  const subset = modulesDep
    .replaceAll(/\.ko\.(xz|gz|zst)\b/g, '.ko')
    .split('\n')
    .filter((line) => shipped.has(line.slice(0, line.indexOf(':'))))
    .join('\n')
  return [{name: 'modules.dep', content: Buffer.from(`${subset}\n`)}]
}

const COMPRESSED_MODULE = /\.ko\.(xz|gz|zst)$/

export const uncompressedName = (path: string) => path.replace(COMPRESSED_MODULE, '.ko')

/** The first bytes of a file (an ELF header and its program headers). */
async function readHead(path: string, length: number): Promise<Buffer> {
  const file = await open(path, 'r')
  try {
    const buffer = Buffer.alloc(length)
    const {bytesRead} = await file.read(buffer, 0, length, 0)
    return buffer.subarray(0, bytesRead)
  } finally {
    await file.close()
  }
}

async function readModule(path: string): Promise<Buffer> {
  const compression = COMPRESSED_MODULE.exec(path)?.[1]
  if (!compression) return readFile(path)
  if (compression === 'gz') return gunzipSync(await readFile(path))
  const tool = compression === 'xz' ? await requireProgram('xz', 'xz-utils') : await requireProgram('zstd', 'zstd')
  const {run} = await import('../core/exec.js')
  const result = await run(tool, ['-dc', path], {encoding: 'buffer', stripFinalNewline: false})
  return Buffer.from(result.stdout)
}

const exists = (path: string) => canAccess(path)

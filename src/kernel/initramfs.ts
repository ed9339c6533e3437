import {posix} from 'node:path'
import {ExitCode, PmemlabError} from '../core/errors.js'

/**
 * Pure helpers for the initramfs pmemlab gives a distro kernel: a cpio "newc" writer and the
 * order in which to insmod modules (there is no modprobe before the root filesystem is up).
 */

export interface CpioEntry {
  /** Path inside the archive; a leading "/" is dropped. Missing parent directories are added (0755). */
  path: string
  /** Permission bits; the file type bits may be given, otherwise target => symlink, content => file, neither => directory. */
  mode: number
  content?: Buffer
  /** Symlink target. */
  target?: string
}

const S_IFMT = 0o170000
const S_IFDIR = 0o040000
const S_IFREG = 0o100000
const S_IFLNK = 0o120000

const MAGIC = '070701'
const HEADER_SIZE = 110
const TRAILER = 'TRAILER!!!'

const pad4 = (length: number) => Buffer.alloc((4 - (length % 4)) % 4)
const hex8 = (value: number) => {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new RangeError(`cpio field out of range: ${value}`)
  return value.toString(16).padStart(8, '0')
}

function normalisePath(path: string): string {
  const parts = path.split('/').filter((part) => part !== '' && part !== '.')
  if (parts.length === 0 || parts.includes('..')) throw new Error(`invalid cpio path "${path}"`)
  return parts.join('/')
}

function typeOf(entry: CpioEntry): number {
  if (entry.mode & S_IFMT) return entry.mode & S_IFMT
  if (entry.target !== undefined) return S_IFLNK
  if (entry.content !== undefined) return S_IFREG
  return S_IFDIR
}

/**
 * An archive in the SVR4 "newc" format (magic 070701, no checksums), the one the kernel unpacks
 * as an initramfs. Owners are root, mtimes 0, so equal input gives equal bytes.
 */
export function cpioNewc(entries: CpioEntry[]): Buffer {
  const chunks: Buffer[] = []
  const written = new Set<string>()
  const explicitDirModes = new Map<string, number>()
  for (const entry of entries) {
    if (typeOf(entry) === S_IFDIR) explicitDirModes.set(normalisePath(entry.path), entry.mode & 0o7777)
  }
  let ino = 1

  const emit = (name: string, mode: number, data: Buffer, nlink: number) => {
    const nameBytes = Buffer.from(`${name}\0`)
    const fields = [ino++, mode, 0, 0, nlink, 0, data.length, 0, 0, 0, 0, nameBytes.length, 0]
    const header = Buffer.from(MAGIC + fields.map(hex8).join(''), 'ascii')
    chunks.push(header, nameBytes, pad4(HEADER_SIZE + nameBytes.length), data, pad4(data.length))
  }

  const ensureParents = (path: string) => {
    const parts = path.split('/')
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/')
      if (written.has(dir)) continue
      written.add(dir)
      emit(dir, S_IFDIR | (explicitDirModes.get(dir) ?? 0o755), Buffer.alloc(0), 2)
    }
  }

  for (const entry of entries) {
    const path = normalisePath(entry.path)
    const type = typeOf(entry)
    if (written.has(path)) {
      // A directory already added as a parent (with its explicit mode) is fine; anything else is a mistake.
      if (type === S_IFDIR && explicitDirModes.has(path)) continue
      throw new Error(`duplicate cpio entry "${path}"`)
    }
    ensureParents(path)
    written.add(path)
    const perms = entry.mode & 0o7777
    switch (type) {
      case S_IFDIR:
        emit(path, S_IFDIR | perms, Buffer.alloc(0), 2)
        break
      case S_IFLNK:
        if (!entry.target) throw new Error(`cpio symlink "${path}" has no target`)
        emit(path, S_IFLNK | (perms || 0o777), Buffer.from(entry.target), 1)
        break
      case S_IFREG:
        emit(path, S_IFREG | perms, entry.content ?? Buffer.alloc(0), 1)
        break
      default:
        throw new Error(`cpio entry "${path}": unsupported file type ${type.toString(8)}`)
    }
  }
  ino = 0
  emit(TRAILER, 0, Buffer.alloc(0), 1)
  return Buffer.concat(chunks)
}

/** The name the kernel knows a module by: basename, no .ko(.xz|.gz|.zst), "-" written "_". */
export function moduleName(pathOrName: string): string {
  return posix
    .basename(pathOrName.trim())
    .replace(/\.ko(\.(xz|gz|zst))?$/, '')
    .replaceAll('-', '_')
}

/** The module names listed in a modules.builtin text (one path per line). */
export function parseModulesBuiltin(text: string): Set<string> {
  return new Set(
    text
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#'))
      .map(moduleName),
  )
}

/** modules.dep as a map from module name to its path and the paths it depends on. */
export type ModulesDep = Map<string, {path: string; deps: string[]}>

export function parseModulesDep(text: string): ModulesDep {
  const modules = new Map<string, {path: string; deps: string[]}>()
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) continue
    const colon = line.indexOf(':')
    if (colon < 0) continue
    const path = line.slice(0, colon).trim()
    const deps = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/)
      .filter(Boolean)
    modules.set(moduleName(path), {path, deps})
  }
  return modules
}

/**
 * The .ko paths (as written in modules.dep, relative to /lib/modules/VERSION) to insmod, in an
 * order where every module comes after its dependencies, each once. Wanted modules that are built
 * into the kernel are skipped; a wanted module that is neither in modules.dep nor built in is an
 * error. Names may use "-" or "_". modulesDep is the text of modules.dep, or its parsed form.
 */
export function resolveModuleOrder(modulesDep: string | ModulesDep, wanted: string[], builtin: Set<string>): string[] {
  const modules = typeof modulesDep === 'string' ? parseModulesDep(modulesDep) : modulesDep
  const builtins = new Set([...builtin].map(moduleName))
  const order: string[] = []
  const done = new Set<string>()
  const visiting: string[] = []

  const visit = (name: string, wantedBy?: string) => {
    if (done.has(name)) return
    const module = modules.get(name)
    if (!module) {
      if (builtins.has(name)) return
      throw new PmemlabError(
        wantedBy
          ? `module "${name}" (needed by ${wantedBy}) is missing from modules.dep`
          : `module "${name}" is neither in modules.dep nor built into the kernel`,
        ExitCode.notFound,
        'check the module name with modinfo, or use a kernel built with it',
      )
    }
    if (visiting.includes(name)) {
      throw new PmemlabError(`modules.dep has a dependency cycle: ${[...visiting, name].join(' -> ')}`)
    }
    visiting.push(name)
    for (const dep of module.deps) visit(moduleName(dep), name)
    visiting.pop()
    done.add(name)
    order.push(module.path)
  }

  for (const name of wanted) visit(moduleName(name))
  return order
}

/**
 * Building a guest image from its recipe: the Debian mirror, mmdebstrap, the programs compiled
 * inside the image, the guest files, and the ext4 image, built aside and renamed into the cache.
 */
import {
  appendFile,
  chmod,
  copyFile,
  lstat,
  mkdir,
  readFile,
  readdir,
  readlink,
  rename,
  rm,
  stat,
  symlink,
  unlink,
  writeFile,
} from 'node:fs/promises'
import {join, posix, resolve, sep} from 'node:path'
import {withDir} from 'tmp-promise'
import {tmpdir} from 'node:os'
import {stampFile} from '../core/artifact.js'
import {ExitCode, PmemlabError} from '../core/errors.js'
import {noSpaceError} from '../core/nospace.js'
import {cacheDir, downloadsDir} from '../core/paths.js'
import {download, DownloadError, verifiedDownload} from '../core/download.js'
import {run} from '../core/exec.js'
import {imagesRoot, isFile, readImageInfo, type ImageInfo, type LoadedRecipe} from './store.js'
import {loadImage, type ImageSpec} from './spec.js'
import type {Recipe, RecipeBuild} from './recipe.js'
import {log, shellQuote} from '../core/log.js'
import {requireProgram} from '../core/which.js'
import {explainUnprivilegedFailure, requireUnprivilegedBuild} from './unprivileged.js'
import {hostDebianMirror} from '../core/debian.js'

// ---------------------------------------------------------------------------------------------
// Debian mirror

/** recipe.mirror, else $PMEMLAB_DEBIAN_MIRROR, else the host's mirror on a Debian host, else deb.debian.org. */
export async function debianMirror(recipe: Recipe): Promise<string> {
  return recipe.mirror ?? (await hostDebianMirror(recipe.suite))
}

// ---------------------------------------------------------------------------------------------
// Build

interface BuildContext {
  /** The temporary build directory. */
  dir: string
  log: string
  failedLog: string
  signal?: AbortSignal
  step: string
}

const interrupted = () => new PmemlabError('image build interrupted', ExitCode.interrupted)

interface BuildOptions {
  force?: boolean
  signal?: AbortSignal
  /** The recipe SPEC names, when the caller has loaded it already. */
  loaded?: LoadedRecipe
}

/**
 * Builds an image from its recipe, or returns the cached one (unless force). The work happens
 * in a temporary directory inside the cache's images directory that is renamed into place only
 * when complete: a killed build never leaves an entry that a later run trusts.
 */
export async function buildImage(spec: ImageSpec, opts: BuildOptions = {}): Promise<ImageInfo> {
  const loaded = opts.loaded ?? (await loadImage(spec))
  const {hash, name} = loaded
  const finalDir = join(imagesRoot(), name, hash)
  if (!opts.force) {
    const cached = await readImageInfo(finalDir)
    if (cached) {
      log.info(`image ${name} ${hash.slice(0, 12)} is already built`)
      return cached
    }
  }
  if (opts.signal?.aborted) throw interrupted()

  const asRoot = process.getuid?.() === 0
  await requireProgram('mmdebstrap', 'mmdebstrap')
  await requireProgram('mkfs.ext4', 'e2fsprogs')
  // Without root, mmdebstrap needs user namespaces, newuidmap/newgidmap and subordinate ids, and
  // the tree is imaged under fakeroot: refuse now, with the fix, before anything is made or fetched.
  if (!asRoot) await requireUnprivilegedBuild()

  await mkdir(join(imagesRoot(), name), {recursive: true})
  await removeStaleBuilds()
  // tmp-promise owns the staging directory, made on the cache's file system (tmpdir) so that the
  // finished entry is renamed, not copied, into place; its ".build.<pid>." name lets
  // removeStaleBuilds reap it after a SIGKILL. The entry is built in a subdirectory that leaves by
  // that rename (or is removed on failure), so withDir's cleanup only ever removes an empty
  // directory: it never reaches a placed entry, and never fails because the entry is gone.
  const template = `.build.${process.pid}.${name.replaceAll(/\.{2,}/g, '.')}.${hash.slice(0, 12)}.XXXXXX`
  return withDir(({path}) => buildStaged(path, {name, loaded, finalDir, asRoot, opts}), {tmpdir: imagesRoot(), template})
}

/** The build proper, in STAGING_DIR/entry, which buildImage's withDir owns. */
async function buildStaged(
  stagingDir: string,
  {name, loaded, finalDir, asRoot, opts}: {name: string; loaded: LoadedRecipe; finalDir: string; asRoot: boolean; opts: BuildOptions},
): Promise<ImageInfo> {
  const {recipe, hash} = loaded
  // Others may pass through (copy-in reads the build sources as a subordinate user id); the entry starts private.
  await chmod(stagingDir, 0o755)
  const temp = join(stagingDir, 'entry')
  await mkdir(temp, {mode: 0o700})
  const ctx: BuildContext = {
    dir: temp,
    log: join(temp, 'build.log'),
    failedLog: join(imagesRoot(), name, 'failed-build.log'),
    signal: opts.signal,
    step: '',
  }
  const started = Date.now()
  try {
    const mirror = await debianMirror(recipe)
    await writeFile(ctx.log, `pmemlab image build ${name} ${hash}\nrecipe ${loaded.path}\nmirror ${mirror}\nstarted ${new Date().toISOString()}\n`)
    const rootDir = join(temp, 'rootfs')
    const image = join(temp, 'rootfs.img')

    const include = [...recipe.packages, ...(recipe.build?.packages ?? [])]
    if (recipe.build) await stageBuild(temp, loaded, mirror, opts.signal)
    const bootstrap = [
      // Always unshare: as root this gives mmdebstrap a private mount namespace, so a killed build
      // leaves no /proc or /sys mounted inside the cache. As a normal user it needs unprivileged
      // user namespaces, the newuidmap/newgidmap helpers (package uidmap) and a range for the user
      // in /etc/subuid and /etc/subgid.
      '--mode=unshare',
      `--variant=${recipe.variant}`,
      ...(include.length > 0 ? [`--include=${include.join(',')}`] : []),
      '--aptopt=Acquire::Retries "3"',
      ...(recipe.build ? buildHooks(recipe.build) : []),
      '--verbose',
    ]
    const upstream = recipe.build?.upstream.length ? ` and ${recipe.build.upstream.map((project) => project.name).join(', ')}` : ''
    const programs = recipe.build ? `, compiling ${recipe.build.programs.length} guest programs${upstream}` : ''
    const summary = `Debian ${recipe.suite} (${recipe.variant} + ${recipe.packages.length} packages${programs}) from ${mirror}`
    // The build hooks copy the staged sources in from the build directory (relative paths).
    const cwd = temp
    if (asRoot) {
      // root: mmdebstrap writes the tree directly, with the right owners.
      await step(ctx, 1, `bootstrapping ${summary}`, () =>
        runLogged(ctx, 'mmdebstrap', [...bootstrap, '--format=directory', recipe.suite, rootDir, mirror], cwd),
      )
    } else {
      // A directory made in unshare mode would be owned by subordinate ids: take a tarball and
      // unpack it under fakeroot, which remembers the owners for mkfs.ext4 below.
      const tarball = join(temp, 'rootfs.tar')
      await step(ctx, 1, `bootstrapping ${summary}`, () =>
        runLogged(ctx, 'mmdebstrap', [...bootstrap, '--format=tar', recipe.suite, tarball, mirror], cwd).catch(async (error: unknown) => {
          // Say what is missing when mmdebstrap's output names it (exit 3), not just its status.
          throw await explainUnprivilegedFailure(error, await readFile(ctx.log, 'utf8').catch(() => ''))
        }),
      )
      await step(ctx, 1, 'unpacking the root filesystem', async () => {
        await mkdir(rootDir)
        await runLogged(ctx, 'fakeroot', ['-s', join(temp, 'fakeroot.state'), '--', 'tar', '-xpf', tarball, '-C', rootDir])
        await rm(tarball, {force: true})
      })
    }

    await step(ctx, 2, 'installing the guest files', () => installGuestFiles(rootDir, loaded))

    await step(ctx, 3, `creating the ext4 image (${recipe.sizeMiB} MiB)`, async () => {
      const mkfs = ['mkfs.ext4', '-q', '-F', '-L', 'pmemlab-root', '-b', '4096', '-d', rootDir, image, `${recipe.sizeMiB}M`]
      try {
        if (asRoot) await runLogged(ctx, mkfs[0], mkfs.slice(1))
        else await runLogged(ctx, 'fakeroot', ['-i', join(temp, 'fakeroot.state'), '--', ...mkfs])
      } catch (error) {
        if (error instanceof PmemlabError && error.exitCode === ExitCode.failure) {
          throw new PmemlabError(error.message, error.exitCode, `${error.hint}; if the file system is full, raise sizeMiB in ${loaded.path}`)
        }
        throw error
      }
      await chmod(image, 0o644)
    })

    await step(ctx, 4, 'finishing', async () => {
      await removeTree(rootDir)
      await removeTree(join(temp, BUILD_DIR))
      await rm(join(temp, 'fakeroot.state'), {force: true})
      const info: ImageInfo = {
        name,
        hash,
        path: join(finalDir, 'rootfs.img'),
        sizeBytes: (await stat(image)).size,
        rootfs: await stampFile(image), // checked on every use: a truncated image is rebuilt, never booted
        builtAt: new Date().toISOString(),
        recipe: loaded.path,
        packages: recipe.packages,
        ...(loaded.extends ? {extends: loaded.extends} : {}),
      }
      await writeFile(join(temp, 'image.json'), `${JSON.stringify(info, null, 2)}\n`)
      await chmod(temp, 0o755) // made private above; the entry is readable like the rest of the cache
      await appendFile(ctx.log, `\nfinished ${info.builtAt} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`)
    })

    const placed = await placeBuild(temp, finalDir, name, hash, opts.force === true)
    log.info(`image ${name} ${hash.slice(0, 12)} built in ${((Date.now() - started) / 1000).toFixed(1)} s`)
    return placed
  } catch (error) {
    // Read before the log goes: a full disk shows only in what apt, dpkg or mkfs printed.
    const noSpace = await noSpaceError(error, {doing: `building image ${name}`, dirs: [{dir: cacheDir(), envVar: 'PMEMLAB_CACHE_DIR'}, {dir: tmpdir(), envVar: 'TMPDIR'}], logFile: ctx.log})
    if (await isFile(ctx.log)) await copyFile(ctx.log, ctx.failedLog).catch(() => undefined)
    await removeTree(temp)
    // removeTree leaves a tree with something mounted below it (and says so): park it where
    // removeStaleBuilds looks, so the staging directory is empty and this error is the one reported.
    if (await lstat(temp).then(() => true, () => false)) await rename(temp, `${stagingDir}.kept`).catch(() => undefined)
    if (opts.signal?.aborted) throw interrupted()
    throw noSpace ?? error
  }
}

async function step(ctx: BuildContext, index: number, title: string, body: () => Promise<unknown>): Promise<void> {
  if (ctx.signal?.aborted) throw interrupted()
  ctx.step = title
  log.info(`[${index}/4] ${title}`)
  await appendFile(ctx.log, `\n== [${index}/4] ${title}\n`)
  await body()
  if (ctx.signal?.aborted) throw interrupted()
}

// ---------------------------------------------------------------------------------------------
// Programs compiled inside the image (recipe.build)

/** The staging directory in the build directory, copied to /tmp/pmemlab-build in the image. */
const BUILD_DIR = 'pmemlab-build'

/**
 * mmdebstrap hooks that compile the recipe's programs in the image after its packages are
 * installed, then purge the build packages. Every command that changes anything runs under
 * `chroot "$1"`, with the image's own gcc, apt and dpkg: nothing here can touch the host.
 */
export function buildHooks(build: RecipeBuild): string[] {
  const purge = build.packages.length > 0 && !build.keepPackages
  return [
    `--customize-hook=copy-in ${BUILD_DIR} /tmp`,
    `--customize-hook=chroot "$1" /bin/sh -eu /tmp/${BUILD_DIR}/build.sh`,
    ...(purge ? [`--customize-hook=chroot "$1" apt-get --yes --quiet purge --autoremove ${build.packages.join(' ')}`] : []),
    `--customize-hook=chroot "$1" rm -rf /tmp/${BUILD_DIR}`,
  ]
}

/** The shell script that compiles every program, run inside the image from /tmp/pmemlab-build. */
export function buildScript(build: RecipeBuild): string {
  const lines = [
    '# Generated by pmemlab (src/image.ts): compiles the recipe\'s programs inside the image.',
    'set -eu',
    `cd /tmp/${BUILD_DIR}`,
    'echo "pmemlab: compiling with $(gcc --version | head -n 1)"',
  ]
  for (const program of build.programs) {
    const sources = program.sources.filter((source) => source.endsWith('.c'))
    lines.push(
      shellQuote(['mkdir', '-p', posix.dirname(program.to)]),
      shellQuote(['gcc', ...build.cflags, ...(program.static ? ['-static'] : []), '-o', program.to, ...sources, ...program.libs.map((lib) => `-l${lib}`)]),
      shellQuote(['echo', `pmemlab: built ${program.to}`]),
    )
  }
  // Upstream projects are unpacked where they are used and built there: their build trees hold
  // the test programs and the paths those were linked against.
  for (const project of build.upstream) {
    const tarball = `/tmp/${BUILD_DIR}/${UPSTREAM_DIR}/${posix.basename(project.file)}`
    const src = posix.join(project.to, 'src')
    lines.push(
      shellQuote(['echo', `pmemlab: building ${project.name} from ${posix.basename(project.file)} in ${project.to}`]),
      shellQuote(['mkdir', '-p', src]),
      shellQuote(['tar', '-xf', tarball, '-C', src, '--strip-components=1', '--no-same-owner']),
      shellQuote(['/bin/sh', '-eu', `/tmp/${BUILD_DIR}/${project.script}`, project.to]),
    )
  }
  return `${lines.join('\n')}\n`
}

/** Where the upstream tarballs are staged in the build directory. */
const UPSTREAM_DIR = 'upstream'

/**
 * The upstream tarballs the recipe pins, from the mirror's pool into downloads/ (kept verified
 * there for the next build, or for an air-gapped one), then copied into the build directory.
 */
async function stageUpstream(dir: string, build: RecipeBuild, mirror: string, signal?: AbortSignal): Promise<void> {
  if (build.upstream.length === 0) return
  await mkdir(join(dir, UPSTREAM_DIR), {mode: 0o755})
  await mkdir(downloadsDir(), {recursive: true})
  for (const project of build.upstream) {
    const name = posix.basename(project.file)
    const file = join(downloadsDir(), name)
    if ((await verifiedDownload(file)) !== project.sha256) {
      const url = `${mirror.replace(/\/+$/, '')}/${project.file}`
      await download(url, file, project.sha256, 'the recipe', signal).catch((error: unknown) => {
        if (error instanceof DownloadError && error.status === 404) {
          throw new PmemlabError(`${name} is not in the pool of ${mirror} (HTTP 404)`, ExitCode.failure, `the recipe pins ${project.file}: point PMEMLAB_DEBIAN_MIRROR at a mirror that carries it, or put the file (sha256 ${project.sha256.slice(0, 16)}…) in ${downloadsDir()} with its sum in ${name}.sha256`)
        }
        throw error
      })
    }
    await copyFile(file, join(dir, UPSTREAM_DIR, name))
    await chmod(join(dir, UPSTREAM_DIR, name), 0o644)
  }
}

/** Copies the build sources (at their package paths) and build.sh into the build directory. */
async function stageBuild(temp: string, loaded: LoadedRecipe, mirror: string, signal?: AbortSignal): Promise<void> {
  const dir = join(temp, BUILD_DIR)
  // Readable by all: in unshare mode without root, copy-in reads as a subordinate user id.
  await mkdir(dir, {mode: 0o755})
  await chmod(temp, 0o755)
  for (const file of loaded.buildSources) {
    const target = join(dir, ...file.source.split('/'))
    await mkdir(join(target, '..'), {recursive: true, mode: 0o755})
    await writeFile(target, file.content, {mode: 0o644})
  }
  await stageUpstream(dir, loaded.recipe.build!, mirror, signal)
  await writeFile(join(dir, 'build.sh'), buildScript(loaded.recipe.build!), {mode: 0o644})
}

/** Runs a tool with its output appended to build.log; a failure names the step and the log. */
async function runLogged(ctx: BuildContext, file: string, args: string[], cwd?: string): Promise<void> {
  await appendFile(ctx.log, `$ ${shellQuote([file, ...args])}\n`)
  // The tool gets its own process group so that an abort reaches everything it started (apt,
  // dpkg, maintainer scripts), and the build directory is removed only once they are all gone.
  const subprocess = run(file, args, {
    stdin: 'ignore',
    stdout: {file: ctx.log, append: true},
    stderr: {file: ctx.log, append: true},
    detached: true,
    ...(cwd ? {cwd} : {}),
  })
  // run() is async, so its promise has no pid: find our child by its argv (it names the build dir).
  const group = async () => (subprocess as unknown as {pid?: number}).pid ?? (await childGroup(args.find((arg) => arg.includes(ctx.dir)) ?? ctx.dir))
  let aborting: Promise<number | undefined> | undefined
  const onAbort = () => {
    aborting = group().then((pgid) => {
      signalGroup(pgid, 'SIGTERM')
      return pgid
    })
  }
  ctx.signal?.addEventListener('abort', onAbort, {once: true})
  try {
    await subprocess
  } catch (error) {
    if (ctx.signal?.aborted) throw interrupted()
    const failure = error as {exitCode?: number; signal?: string; code?: string}
    const how =
      failure.exitCode !== undefined ? `exited with status ${failure.exitCode}` : failure.signal ? `was killed by ${failure.signal}` : (failure.code ?? 'failed')
    await showLogTail(ctx.log)
    throw new PmemlabError(`${ctx.step} failed: ${file} ${how}`, ExitCode.failure, `the full log is ${ctx.failedLog}`)
  } finally {
    ctx.signal?.removeEventListener('abort', onAbort)
    if (aborting) await reapGroup(await aborting)
  }
}

/** The process group of our child process whose command line contains MARKER. */
async function childGroup(marker: string): Promise<number | undefined> {
  for (const entry of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '')
    // pid (comm) state ppid pgrp ...: comm may contain spaces, so split after the last ")"
    const [, ppid, pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    if (Number(ppid) !== process.pid) continue
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')
    if (cmdline.includes(marker)) return Number(pgrp)
  }
  return undefined
}

function signalGroup(pid: number | undefined, signal: NodeJS.Signals | 0): boolean {
  if (pid === undefined) return false
  try {
    process.kill(-pid, signal)
    return true
  } catch {
    return false // ESRCH: the group is empty
  }
}

/** Waits until process group PID is empty: SIGTERM was sent, SIGKILL follows after 5 s. */
async function reapGroup(pid: number | undefined): Promise<void> {
  const started = Date.now()
  let killed = false
  while (signalGroup(pid, 0)) {
    const elapsed = Date.now() - started
    if (!killed && elapsed > 5000) {
      signalGroup(pid, 'SIGKILL')
      killed = true
    }
    if (elapsed > 15_000) {
      log.warn(`processes of process group ${pid} are still running after SIGKILL`)
      return
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

async function showLogTail(path: string, lines = 12): Promise<void> {
  const text = await readFile(path, 'utf8').catch(() => '')
  const tail = text.trimEnd().split('\n').slice(-lines)
  for (const line of tail) process.stderr.write(`  | ${line}\n`)
}

/** Moves a finished build to images/<name>/<hash>, replacing an existing one only with force. */
async function placeBuild(temp: string, finalDir: string, name: string, hash: string, force: boolean): Promise<ImageInfo> {
  try {
    await rename(temp, finalDir)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw error
    const existing = await readImageInfo(finalDir)
    if (existing && !force) {
      // Another build of the same recipe finished first: keep that one.
      await removeTree(temp)
      return existing
    }
    // A running VM keeps reading the old rootfs.img through its open file: renaming is safe.
    const old = join(imagesRoot(), `.old.${process.pid}.${name}.${hash.slice(0, 12)}.${Date.now()}`)
    await rename(finalDir, old)
    await rename(temp, finalDir)
    await removeTree(old)
  }
  const info = await readImageInfo(finalDir)
  if (!info) throw new PmemlabError(`image ${name} ${hash.slice(0, 12)} vanished from ${finalDir} right after its build`)
  return info
}

/** Removes .build.* and .old.* directories whose process is gone (a build killed with SIGKILL). */
async function removeStaleBuilds(): Promise<void> {
  const entries = await readdir(imagesRoot()).catch(() => [] as string[])
  for (const entry of entries) {
    const match = /^\.(?:build|old)\.(\d+)\./.exec(entry)
    if (!match || processAlive(Number(match[1]))) continue
    log.debug(`removing ${entry}, left by an interrupted build`)
    await removeTree(join(imagesRoot(), entry))
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * rm -rf, but never through a mount point: if a killed tool left something mounted below the
 * directory, the directory is left alone with a warning.
 */
async function removeTree(dir: string): Promise<void> {
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '')
  const prefix = resolve(dir) + sep
  const mounted = mountinfo
    .split('\n')
    .map((line) => line.split(' ')[4]?.replaceAll('\\040', ' '))
    .filter((point): point is string => point !== undefined && (point + sep).startsWith(prefix))
  if (mounted.length > 0) {
    log.warn(`not removing ${dir}: ${mounted[0]} is still mounted (unmount it, then delete the directory)`)
    return
  }
  try {
    await rm(dir, {recursive: true, force: true})
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EACCES') throw error
    // Unpacked without root: some directories are read-only for their owner.
    await makeWritable(dir)
    await rm(dir, {recursive: true, force: true})
  }
}

async function makeWritable(dir: string): Promise<void> {
  await chmod(dir, 0o700).catch(() => undefined)
  for (const entry of await readdir(dir, {withFileTypes: true}).catch(() => [])) {
    if (entry.isDirectory()) await makeWritable(join(dir, entry.name))
  }
}

// ---------------------------------------------------------------------------------------------
// Guest files

/**
 * The host path of GUEST_PATH inside ROOT, following symlinks the way the guest would (an
 * absolute link target is relative to ROOT, never to the host). Missing parent directories are
 * created; the last component is not followed.
 */
export async function pathInRoot(root: string, guestPath: string, hops = 0): Promise<string> {
  if (hops > 40) throw new PmemlabError(`too many symbolic links resolving ${guestPath} in the image`)
  const parts = posix.normalize(`/${guestPath}`).split('/').filter(Boolean)
  const done: string[] = []
  for (let i = 0; i < parts.length - 1; i++) {
    const host = join(root, ...done, parts[i])
    let info
    try {
      info = await lstat(host)
    } catch {
      await mkdir(host, {mode: 0o755})
      done.push(parts[i])
      continue
    }
    if (info.isSymbolicLink()) {
      const target = await readlink(host)
      const base = target.startsWith('/') ? target : posix.join('/', ...done, target)
      return pathInRoot(root, posix.join(base, ...parts.slice(i + 1)), hops + 1)
    }
    if (!info.isDirectory()) throw new PmemlabError(`cannot install ${guestPath} in the image: /${[...done, parts[i]].join('/')} is not a directory`)
    done.push(parts[i])
  }
  return join(root, ...done, ...parts.slice(-1))
}

async function installFile(root: string, guestPath: string, content: Buffer | string, mode: number): Promise<void> {
  const host = await pathInRoot(root, guestPath)
  await unlink(host).catch(() => undefined) // never write through an existing symlink
  await writeFile(host, content, {mode})
  await chmod(host, mode)
}

async function installGuestFiles(root: string, loaded: LoadedRecipe): Promise<void> {
  for (const file of loaded.files) {
    for (const to of file.to) await installFile(root, to, file.content, file.mode)
  }
  const hostname = 'pmemlab'
  await installFile(root, '/etc/hostname', `${hostname}\n`, 0o644)
  await installFile(
    root,
    '/etc/hosts',
    `127.0.0.1\tlocalhost\n127.0.1.1\t${hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n`,
    0o644,
  )
  await installFile(
    root,
    '/etc/fstab',
    '# pmemlab: the root file system is the virtio-blk disk; pmemlab-init mounts the rest\n/dev/vda\t/\text4\trw,relatime\t0\t1\n',
    0o644,
  )
  // pmemlab-init mounts a tmpfs on /run; qemu-ga keeps its pid file and state there (/var/run).
  await ensureDir(root, '/run')
  const varRun = await pathInRoot(root, '/var/run')
  const varRunInfo = await lstat(varRun).catch(() => undefined)
  if (!varRunInfo) await symlink('/run', varRun)
  // The initramfs mounts the kernel's modules here (a tmpfs), so the directory must exist.
  await ensureDir(root, '/lib/modules')
}

/** Creates GUEST_DIR (and its parents) inside ROOT, following the image's symlinks (/lib -> usr/lib). */
async function ensureDir(root: string, guestDir: string): Promise<void> {
  await pathInRoot(root, `${guestDir}/.placeholder`)
}

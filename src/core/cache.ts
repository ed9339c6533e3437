/**
 * What every cache entry pmemlab writes relies on: temp names that carry the writer's pid (so a
 * killed writer's leftovers are recognised and removed), locks held by a live pid, and cheap file
 * identities so unchanged inputs are not re-read. Entries are built aside and renamed into place.
 */
import {randomBytes, createHash} from 'node:crypto'
import {createReadStream} from 'node:fs'
import {link, mkdir, open, readdir, readFile, rename, rm, stat, writeFile} from 'node:fs/promises'
import {dirname, join} from 'node:path'
import {pipeline} from 'node:stream/promises'
import {setTimeout as sleep} from 'node:timers/promises'
import {log} from './log.js'
import {processAlive} from './process.js'

/** The pid at the end of a temp name (`.tmp-KEY-1234`, `out-KEY-1234`). */
export function pidOfTemp(name: string): number | undefined {
  const match = /-(\d+)$/.exec(name)
  return match ? Number(match[1]) : undefined
}

/** Removes the temp files and directories in dir whose owner (the pid at the end of the name) is gone. */
export async function removeStaleTemps(dir: string, pattern: RegExp): Promise<string[]> {
  const removed: string[] = []
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (!pattern.test(name)) continue
    const pid = pidOfTemp(name)
    if (pid !== undefined && pid !== process.pid && (await processAlive(pid))) continue
    await rm(join(dir, name), {recursive: true, force: true})
    removed.push(join(dir, name))
  }
  return removed
}

/** A lock file (O_EXCL, holding the owner's pid); a lock whose process is gone is stale and taken over. */
export async function acquireLock(path: string, what: string, signal?: AbortSignal): Promise<() => Promise<void>> {
  let announced = false
  for (;;) {
    try {
      const handle = await open(path, 'wx')
      await handle.writeFile(`${process.pid}\n`)
      await handle.close()
      return async () => {
        await rm(path, {force: true})
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    }
    const content = await readFile(path, 'utf8').catch(() => undefined)
    if (content === undefined) continue // released meanwhile
    const pid = Number(content.trim())
    let stale: boolean
    if (Number.isInteger(pid) && pid > 0) stale = !(await processAlive(pid))
    else stale = Date.now() - (await stat(path).then((s) => s.mtimeMs).catch(() => Date.now())) > 10_000 // being written, or junk
    if (stale) {
      // Move it aside atomically; if what we moved turns out to be a live lock, put it back.
      const aside = `${path}.stale-${process.pid}-${randomBytes(4).toString('hex')}`
      try {
        await rename(path, aside)
        const movedPid = Number((await readFile(aside, 'utf8')).trim())
        if (movedPid !== pid && (await processAlive(movedPid))) await link(aside, path).catch(() => undefined)
      } catch {
        // someone else got there first
      }
      await rm(aside, {force: true})
      log.debug(`removed the stale lock ${path} (pid ${content.trim()} is gone)`)
      continue
    }
    if (!announced) {
      log.info(`waiting for pmemlab (pid ${pid}) which is building the same ${what}`)
      announced = true
    }
    await sleep(300, undefined, {signal})
  }
}

export async function directorySize(dir: string): Promise<number> {
  let total = 0
  for (const entry of await readdir(dir, {withFileTypes: true}).catch(() => [])) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) total += await directorySize(path)
    else total += await stat(path).then((s) => s.size, () => 0)
  }
  return total
}

/**
 * A file's identity without reading it: path, device, inode, size and mtime (ns). A package
 * upgrade or a rebuild changes the mtime, so a key made of identities changes with the file.
 */
export async function fileIdentity(path: string): Promise<string> {
  const info = await stat(path, {bigint: true})
  return `${path}\0${info.dev}\0${info.ino}\0${info.size}\0${info.mtimeNs}\0`
}

/**
 * Writes path so that readers see the old content or the new, never part of it: the data goes to
 * a temp name carrying this pid, renamed over path once complete, and removed if writing fails.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const temp = `${path}.tmp-${process.pid}`
  try {
    await writeFile(temp, data, {mode})
    await rename(temp, path)
  } catch (error) {
    await rm(temp, {force: true})
    throw error
  }
}

/** sha256 of a file, read as a stream (tarballs, bundle members: too big to hold at once). */
export async function hashFile(file: string): Promise<string> {
  const hash = createHash('sha256')
  await pipeline(createReadStream(file), hash)
  return hash.digest('hex')
}

/**
 * sha256 of a file, remembered in memoFile by the file's identity, so a second build need not
 * reread a 140 MB tarball.
 */
export async function hashFileCached(file: string, memoFile: string): Promise<string> {
  type Memo = Record<string, {identity: string; sha256: string}>
  const identity = await fileIdentity(file)
  const memo: Memo = await readFile(memoFile, 'utf8').then((t) => JSON.parse(t) as Memo, () => ({}))
  if (memo[file]?.identity === identity) return memo[file].sha256
  const digest = await hashFile(file)
  memo[file] = {identity, sha256: digest}
  await mkdir(dirname(memoFile), {recursive: true})
  await writeFileAtomic(memoFile, JSON.stringify(memo, null, 1))
  return digest
}

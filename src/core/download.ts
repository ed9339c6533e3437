/**
 * Verified downloads into the cache's downloads/: streamed with got to a temp name next to the
 * file, hashed on the way, renamed only when the sha256 matches the index that listed it, with
 * the sum recorded beside it so that a later run can trust the file without fetching it again.
 */
import {createHash} from 'node:crypto'
import {createWriteStream} from 'node:fs'
import {readFile, rename, rm, writeFile} from 'node:fs/promises'
import {posix} from 'node:path'
import {pipeline} from 'node:stream/promises'
import {ExitCode, PmemlabError} from './errors.js'
import {loadGot} from './http.js'
import {log, Progress} from './log.js'
import {humanSize} from './size.js'
import {canAccess as exists} from './which.js'

/** A download that failed; `status` is the HTTP status when the server answered one (a 404 is "not in the pool"). */
export class DownloadError extends PmemlabError {
  constructor(
    message: string,
    hint: string,
    readonly status?: number,
  ) {
    super(message, ExitCode.failure, hint)
  }
}

/** The sha256 recorded beside a verified download in downloads/, when the file is there. */
export async function verifiedDownload(file: string): Promise<string | undefined> {
  const recorded = await readFile(`${file}.sha256`, 'utf8').then((s) => s.trim(), () => undefined)
  return recorded !== undefined && (await exists(file)) ? recorded : undefined
}

/**
 * Streams url to a temp file next to `file`, hashing as it goes; renames only when the sum
 * matches `expected`, which `listing` (the file it came from: "sha256sums.asc") gave.
 */
export async function download(url: string, file: string, expected: string, listing: string, signal?: AbortSignal): Promise<void> {
  const part = `${file}.part-${process.pid}`
  const name = posix.basename(file)
  const hash = createHash('sha256')
  const progress = new Progress(`downloading ${name}`)
  let received = 0
  let total: number | undefined
  log.info(`downloading ${url}`)
  try {
    const got = await loadGot()
    const stream = got.stream(url, {timeout: {connect: 30_000, response: 60_000, read: 60_000}, retry: {limit: 0}, signal})
    stream.on('response', (response: {headers: Record<string, string | undefined>}) => {
      const length = Number(response.headers['content-length'])
      if (Number.isFinite(length) && length > 0) total = length
    })
    stream.on('data', (chunk: Buffer) => {
      received += chunk.length
      hash.update(chunk)
      progress.update(total ? `${humanSize(received)} of ${humanSize(total)} (${Math.floor((100 * received) / total)}%)` : humanSize(received), total ? received / total : undefined)
    })
    await pipeline(stream, createWriteStream(part, {mode: 0o644}))
  } catch (error) {
    progress.done()
    await rm(part, {force: true})
    if (signal?.aborted) throw signal.reason
    const status = (error as {response?: {statusCode?: number}}).response?.statusCode
    if (status !== undefined && status >= 400) throw new DownloadError(`cannot download ${url}: HTTP ${status}`, 'check the version and the mirror; nothing was kept', status)
    const amount = total ? `${humanSize(received)} of ${humanSize(total)}` : humanSize(received)
    throw new DownloadError(`the download of ${url} was cut off after ${amount} (${(error as Error).message})`, 'nothing was kept; run the build again to retry')
  }
  progress.done()
  if (total !== undefined && received !== total) {
    await rm(part, {force: true})
    throw new DownloadError(`the download of ${url} was cut off after ${humanSize(received)} of ${humanSize(total)}`, 'nothing was kept; run the build again to retry')
  }
  const actual = hash.digest('hex')
  if (actual !== expected) {
    await rm(part, {force: true})
    throw new PmemlabError(
      `checksum mismatch for ${name}: ${listing} says ${expected}, the download is ${actual}`,
      ExitCode.failure,
      'the mirror serves a different or corrupted file; nothing was kept',
    )
  }
  await writeFile(`${file}.sha256.part-${process.pid}`, `${expected}\n`)
  await rename(part, file)
  await rename(`${file}.sha256.part-${process.pid}`, `${file}.sha256`)
  log.info(`downloaded ${name} (${humanSize(received)}, sha256 ${expected.slice(0, 16)}… verified)`)
}

import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {createReadStream} from 'node:fs'
import {mkdtemp, readdir, rm, stat} from 'node:fs/promises'
import {createServer, type Server} from 'node:http'
import type {AddressInfo} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {pipeline} from 'node:stream/promises'
import {after, before, describe, test} from 'node:test'
import {execa} from 'execa'
import {makeLab, type Lab} from './cli.js'

/**
 * Debian's archive as a kernel source, against a local archive on 127.0.0.1: Sources.xz indexes
 * generated here (compressed with xz), whose linux stanzas point at the real Debian
 * linux-source-6.1 tarball served under its orig name, at a newer version whose file is not in
 * the pool (404), and at a wrong checksum. `kernel config --explain` takes the whole source path
 * (resolve, download, verify, extract, read Kconfig) without building; it extracts once.
 */
const TARBALL = '/usr/src/linux-source-6.1.tar.xz'

async function upstreamOfInstalledSource(): Promise<string | undefined> {
  const result = await execa('dpkg-query', ['-W', '-f=${Version}', 'linux-source-6.1'], {reject: false})
  const version = /^(\d+\.\d+\.\d+)-/.exec(String(result.stdout))?.[1]
  const present = await stat(TARBALL).then(() => true, () => false)
  return present ? version : undefined
}

const installed = await upstreamOfInstalledSource()

function linuxStanza(version: string, sha256: string, size: number): string {
  return `Package: linux
Binary: linux-doc, linux-headers-amd64
Version: ${version}-1
Directory: pool/main/l/linux
Checksums-Sha256:
 ${'e'.repeat(64)} 2000 linux_${version}-1.dsc
 ${sha256} ${size} linux_${version}.orig.tar.xz
 ${'f'.repeat(64)} 3000 linux_${version}-1.debian.tar.xz
`
}

const OTHER = `Package: linux-base
Version: 4.9
Directory: pool/main/l/linux-base
`

const xz = async (text: string) => Buffer.from((await execa('xz', ['-c'], {input: text, encoding: 'buffer'})).stdout)
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex')

describe('Debian as a kernel source', {skip: installed ? false : `needs ${TARBALL} (package linux-source-6.1)`, timeout: 900_000}, () => {
  let lab: Lab
  let cache: string
  let server: Server
  let base: string
  let closedPort: number
  let tarballSha: string
  const served = new Map<string, Buffer>()
  const requests = new Map<string, number>()
  const version = installed ?? '6.1.0'
  // Listed in the index, newer, and not in the pool: resolution goes past it.
  const gone = version.replace(/\d+$/, (n) => String(Number(n) + 7))
  const orig = `linux_${version}.orig.tar.xz`

  const pmemlab = (args: string[], env: Record<string, string> = {}) =>
    lab.pmemlab(args, {env: {PMEMLAB_CACHE_DIR: cache, PMEMLAB_DEBIAN_SUITES: 'bookworm,sid,trixie', ...env}, timeout: 600_000})
  const explain = (args: string[], env?: Record<string, string>) => pmemlab(['kernel', 'config', '--explain', 'CONFIG_DEV_DAX', ...args], env)
  const errorLines = (stderr: string) => stderr.split('\n').filter((line) => line.startsWith('pmemlab: error:'))
  const downloads = async () => (await readdir(join(cache, 'downloads')).catch(() => [] as string[])).filter((name) => name.startsWith('linux_'))
  const sources = async () => (await readdir(join(cache, 'build')).catch(() => [] as string[])).filter((name) => name.startsWith('src-'))

  before(async () => {
    lab = await makeLab()
    cache = await mkdtemp(join(tmpdir(), 'pmemlab-debian-cache-'))
    const hash = createHash('sha256')
    await pipeline(createReadStream(TARBALL), hash)
    tarballSha = hash.digest('hex')
    const size = (await stat(TARBALL)).size

    // /good: the real tarball with its sha256, a newer 6.1 that 404s, a 7.2 in sid; bookworm has
    // an InRelease (so its index is read once), sid has none, trixie is not there at all.
    const bookworm = await xz([OTHER, linuxStanza(gone, 'a'.repeat(64), size), linuxStanza(version, tarballSha, size)].join('\n'))
    served.set('/good/dists/bookworm/main/source/Sources.xz', bookworm)
    served.set('/good/dists/bookworm/InRelease', Buffer.from(`Origin: Debian\nSuite: oldstable\nSHA256:\n ${sha256(bookworm)} ${bookworm.length} main/source/Sources.xz\n`))
    served.set('/good/dists/sid/main/source/Sources.xz', await xz([linuxStanza('7.2.8', 'b'.repeat(64), 1000), OTHER].join('\n')))
    // /bad: the same tarball, listed with a checksum it does not have.
    served.set('/bad/dists/bookworm/main/source/Sources.xz', await xz(linuxStanza(version, 'c'.repeat(64), size)))

    server = createServer((request, response) => {
      const path = request.url ?? ''
      requests.set(path, (requests.get(path) ?? 0) + 1)
      const body = served.get(path)
      if (body) {
        response.end(body)
      } else if (path === `/good/pool/main/l/linux/${orig}` || path === `/bad/pool/main/l/linux/${orig}`) {
        response.writeHead(200, {'content-length': String(size)})
        createReadStream(TARBALL).pipe(response)
      } else {
        response.statusCode = 404
        response.end()
      }
    })
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done))
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    // A port nothing listens on: bound, then closed.
    const probe = createServer()
    await new Promise<void>((done) => probe.listen(0, '127.0.0.1', done))
    closedPort = (probe.address() as AddressInfo).port
    await new Promise<void>((done) => probe.close(() => done()))
  })

  after(async () => {
    await new Promise<void>((done) => server.close(() => done()))
    await lab.dispose()
    await rm(cache, {recursive: true, force: true})
  })

  test('an unreachable archive is one error line naming the URL (exit 1)', async () => {
    const result = await explain(['--from', 'debian', '--version', '6.1', '--mirror', `http://127.0.0.1:${closedPort}/debian`])
    assert.equal(result.exitCode, 1, result.stderr)
    assert.equal(result.stdout, '')
    const errors = errorLines(result.stderr)
    assert.equal(errors.length, 1, result.stderr)
    assert.ok(errors[0].includes(`http://127.0.0.1:${closedPort}/debian/dists/`), errors[0])
    assert.match(errors[0], /ECONNREFUSED/)
    assert.ok(result.stderr.trim().split('\n').length <= 2, `no more than the lookup line and the error: ${result.stderr}`)
  })

  test('a wrong sha256 in the index is refused before anything is extracted, and the download deleted (exit 1)', async () => {
    const result = await explain(['--version', `debian:${version}`, '--mirror', `${base}/bad`])
    assert.equal(result.exitCode, 1, result.stderr)
    const errors = errorLines(result.stderr)
    assert.equal(errors.length, 1, result.stderr)
    assert.ok(errors[0].includes(`checksum mismatch for ${orig}: Debian's bookworm index says ${'c'.repeat(64)}, the download is ${tarballSha}`), errors[0])
    assert.match(errors[0], /nothing was kept/)
    assert.deepEqual(await downloads(), [], 'no tarball, checksum or temp file is left in downloads/')
    assert.deepEqual(await sources(), [], 'nothing was extracted')
    assert.doesNotMatch(result.stderr, /extracting/)
  })

  test('6.1 resolves past the version the pool lost, is verified, extracted and explained', async () => {
    const result = await explain(['--from', 'debian', '--version', '6.1', '--json'], {PMEMLAB_DEBIAN_MIRROR: `${base}/good`})
    assert.equal(result.exitCode, 0, result.stderr)
    const explained = JSON.parse(result.stdout) as {kernelVersion: string; explanation: {symbol: string; type: string; dependsOn: Array<{text: string}>}}
    assert.equal(explained.kernelVersion, version)
    assert.equal(explained.explanation.symbol, 'CONFIG_DEV_DAX')
    assert.equal(explained.explanation.type, 'tristate')
    assert.ok(explained.explanation.dependsOn.some((term) => /TRANSPARENT_HUGEPAGE/.test(term.text)), JSON.stringify(explained.explanation.dependsOn))
    // Said on stderr: the suite the mirror lacks, the 404 and the fallback, the version taken.
    assert.ok(result.stderr.includes(`warning: skipping Debian suite trixie: cannot read Debian's index ${base}/good/dists/trixie/main/source/Sources.xz: HTTP 404`), result.stderr)
    assert.ok(result.stderr.includes(`linux_${gone}.orig.tar.xz is listed in bookworm but ${base}/good/pool/main/l/linux/linux_${gone}.orig.tar.xz answers HTTP 404: trying ${version}`), result.stderr)
    assert.ok(result.stderr.includes(`Debian linux 6.1: taking ${version} (${orig}, listed in bookworm)`), result.stderr)
    assert.match(result.stderr, new RegExp(`downloaded ${orig.replaceAll('.', '\\.')} \\(.*verified\\)`))
    assert.equal(requests.get(`/good/pool/main/l/linux/linux_${gone}.orig.tar.xz`), 1)
    assert.equal(requests.get(`/good/pool/main/l/linux/${orig}`), 1)
    assert.deepEqual((await downloads()).sort(), [orig, `${orig}.sha256`])
    assert.equal((await sources()).length, 1)
  })

  test('again: the verified download and the extracted tree are reused, and an unchanged InRelease spares the index', async () => {
    const counted = {bookworm: requests.get('/good/dists/bookworm/main/source/Sources.xz'), sid: requests.get('/good/dists/sid/main/source/Sources.xz')}
    const result = await explain(['--version', `debian:${version}`, '--mirror', `${base}/good`])
    assert.equal(result.exitCode, 0, result.stderr)
    assert.match(result.stdout, new RegExp(`^CONFIG_DEV_DAX \\(tristate\\) in linux ${version.replaceAll('.', '\\.')}`))
    assert.doesNotMatch(result.stderr, /downloading|extracting/)
    assert.equal(requests.get(`/good/pool/main/l/linux/${orig}`), 1)
    assert.equal(requests.get('/good/dists/bookworm/main/source/Sources.xz'), counted.bookworm, "bookworm's InRelease did not change: its index is not read again")
    assert.equal(requests.get('/good/dists/sid/main/source/Sources.xz'), (counted.sid ?? 0) + 1, 'sid has no InRelease: its index is read every time')
  })

  test('an unknown version names the versions the indexes hold (exit 4)', async () => {
    const result = await explain(['--from', 'debian', '--version', '6.13', '--mirror', `${base}/good`])
    assert.equal(result.exitCode, 4, result.stderr)
    const errors = errorLines(result.stderr)
    assert.equal(errors.length, 1, result.stderr)
    assert.ok(errors[0].includes(`linux 6.13 is not in Debian's bookworm, sid indexes at ${base}/good: they hold ${version}, ${gone}, 7.2.8`), errors[0])
  })

  test('with the archive out of reach, a tarball verified earlier is used, with a warning', async () => {
    const result = await explain(['--from', 'debian', '--version', '6.1', '--mirror', `http://127.0.0.1:${closedPort}/debian`])
    assert.equal(result.exitCode, 0, result.stderr)
    assert.match(result.stderr, new RegExp(`warning: cannot read Debian's index http://127\\.0\\.0\\.1:${closedPort}/debian/dists/.*: using .*${orig.replaceAll('.', '\\.')}, verified when it was downloaded`))
    assert.match(result.stdout, /^CONFIG_DEV_DAX \(tristate\)/)
  })
})

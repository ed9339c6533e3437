import assert from 'node:assert/strict'
import {createHash, randomBytes} from 'node:crypto'
import {existsSync} from 'node:fs'
import {mkdir, mkdtemp, readdir, readFile, rm, writeFile} from 'node:fs/promises'
import {createServer, type Server} from 'node:http'
import type {AddressInfo} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {Readable} from 'node:stream'
import {after, afterEach, before, beforeEach, describe, test} from 'node:test'
import {gzipSync} from 'node:zlib'
import {execa} from 'execa'
import {PmemlabError} from '../../src/core/errors.js'
import {acquireLock} from '../../src/core/cache.js'
import {extractTarball, extractTarStream, fetchKernelTarball, parseSha256Sums, pickRelease, unsafeEntryReason} from '../../src/kernel/fetch.js'
import {computeKey, makefileVersion, normaliseFragmentText, type KeyInputs} from '../../src/kernel/key.js'
import {listKernels, pruneKernels, removeKernel, resolveBuiltKernel, specForm} from '../../src/kernel/store.js'

const sha256 = (data: Uint8Array | string) => createHash('sha256').update(data).digest('hex')

// ---- a tiny tar writer, so the tests can build archives the tar package would refuse to create ----

function tarHeader(name: string, size: number, type: string, linkname = ''): Buffer {
  const header = Buffer.alloc(512)
  const put = (text: string, offset: number, length: number) => header.write(text.slice(0, length), offset, length, 'utf8')
  const octal = (value: number, length: number) => `${value.toString(8).padStart(length - 1, '0')}\0`
  put(name, 0, 100)
  put(octal(type === '5' ? 0o755 : 0o644, 8), 100, 8)
  put(octal(0, 8), 108, 8)
  put(octal(0, 8), 116, 8)
  put(octal(size, 12), 124, 12)
  put(octal(0, 12), 136, 12)
  header.fill(' ', 148, 156) // checksum placeholder
  put(type, 156, 1)
  put(linkname, 157, 100)
  put('ustar\u000000', 257, 8)
  let sum = 0
  for (const byte of header) sum += byte
  put(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8)
  return header
}

type TarItem = {name: string; body?: string; type?: '0' | '5' | '2' | '1'; linkname?: string}

function makeTar(items: TarItem[]): Buffer {
  const blocks: Buffer[] = []
  for (const item of items) {
    const body = Buffer.from(item.body ?? '')
    blocks.push(tarHeader(item.name, item.type === '0' || item.type === undefined ? body.length : 0, item.type ?? '0', item.linkname))
    if ((item.type ?? '0') === '0' && body.length > 0) {
      blocks.push(body, Buffer.alloc((512 - (body.length % 512)) % 512))
    }
  }
  blocks.push(Buffer.alloc(1024))
  return Buffer.concat(blocks)
}

async function xz(data: Buffer): Promise<Buffer> {
  const result = await execa('xz', ['-c', '-T1'], {input: data, encoding: 'buffer'})
  return Buffer.from(result.stdout)
}

let scratch: string
const savedCache = process.env.PMEMLAB_CACHE_DIR
beforeEach(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'pmemlab-kbuild-'))
  process.env.PMEMLAB_CACHE_DIR = join(scratch, 'cache')
})
afterEach(async () => {
  if (savedCache === undefined) delete process.env.PMEMLAB_CACHE_DIR
  else process.env.PMEMLAB_CACHE_DIR = savedCache
  await rm(scratch, {recursive: true, force: true})
})

describe('cache key', () => {
  const inputs: KeyInputs = {
    source: {tarball: 'a'.repeat(64)},
    base: 'tinyconfig',
    fragment: 'CONFIG_DAX=y\nCONFIG_DEV_DAX=y\n# CONFIG_KASAN is not set\n',
    compiler: 'gcc (Debian 12.2.0-14) 12.2.0',
    arch: 'x86_64',
  }

  test('the same inputs give the same key; order, comments and blank lines do not matter', () => {
    const key = computeKey(inputs)
    assert.match(key, /^[0-9a-f]{64}$/)
    assert.equal(computeKey({...inputs}), key)
    assert.equal(computeKey({...inputs, fragment: '# pmem\n# CONFIG_KASAN is not set\n\nCONFIG_DEV_DAX=y\nCONFIG_DAX=y'}), key)
    assert.equal(normaliseFragmentText('CONFIG_B=y\n# comment\nCONFIG_A=y\n'), 'CONFIG_A=y\nCONFIG_B=y')
  })

  test('a changed fragment, source, base, compiler or arch gives another key', () => {
    const key = computeKey(inputs)
    const others = [
      computeKey({...inputs, fragment: inputs.fragment.replace('# CONFIG_KASAN is not set', 'CONFIG_KASAN=y')}),
      computeKey({...inputs, fragment: `${inputs.fragment}CONFIG_BTT=y\n`}),
      computeKey({...inputs, source: {tarball: 'b'.repeat(64)}}),
      computeKey({...inputs, source: {commit: 'c'.repeat(40), dirty: null}}),
      computeKey({...inputs, source: {commit: 'c'.repeat(40), dirty: 'd'.repeat(64)}}),
      computeKey({...inputs, base: 'defconfig'}),
      computeKey({...inputs, compiler: 'gcc (Debian 14.2.0-19) 14.2.0'}),
      computeKey({...inputs, arch: 'aarch64'}),
    ]
    assert.equal(new Set([key, ...others]).size, others.length + 1)
  })
})

describe('safe extraction', () => {
  test('entry checks: absolute paths, "..", devices and links out of the tree are unsafe', () => {
    assert.equal(unsafeEntryReason({path: 'linux/Makefile', type: 'File'}), undefined)
    assert.equal(unsafeEntryReason({path: 'linux/scripts/dtc/include-prefixes/arm', type: 'SymbolicLink', linkpath: '../../../arch/arm/boot/dts'}), undefined)
    assert.match(unsafeEntryReason({path: '/etc/cron.d/evil', type: 'File'})!, /absolute/)
    assert.match(unsafeEntryReason({path: 'linux/../../evil', type: 'File'})!, /\.\./)
    assert.match(unsafeEntryReason({path: 'linux/dev/sda', type: 'BlockDevice'})!, /BlockDevice/)
    assert.match(unsafeEntryReason({path: 'linux/passwd', type: 'SymbolicLink', linkpath: '/etc/passwd'})!, /absolute/)
    assert.match(unsafeEntryReason({path: 'linux/up', type: 'SymbolicLink', linkpath: '../../..'})!, /leaves the tree/)
    assert.match(unsafeEntryReason({path: 'linux/hard', type: 'Link', linkpath: '../outside'})!, /leaves the tree/)
  })

  test('a safe tarball (.tar.gz and .tar.xz) extracts with its top directory stripped', async () => {
    const tarball = makeTar([
      {name: 'linux-9.9/', type: '5'},
      {name: 'linux-9.9/Kconfig', body: 'config A\n\tbool "a"\n'},
      {name: 'linux-9.9/Makefile', body: 'VERSION = 9\nPATCHLEVEL = 9\nSUBLEVEL = 0\nEXTRAVERSION =\n'},
      {name: 'linux-9.9/Documentation', type: '2', linkname: 'Kconfig'},
    ])
    for (const [name, data] of [
      ['linux.tar.gz', gzipSync(tarball)],
      ['linux.tar.xz', await xz(tarball)],
    ] as const) {
      const file = join(scratch, name)
      await writeFile(file, data)
      const dest = join(scratch, `out-${name}`)
      await extractTarball(file, dest)
      assert.deepEqual((await readdir(dest)).sort(), ['Documentation', 'Kconfig', 'Makefile'])
      assert.equal(makefileVersion(await readFile(join(dest, 'Makefile'), 'utf8')), '9.9')
    }
  })

  for (const [what, item] of [
    ['a ".." entry', {name: 'linux/../../evil.txt', body: 'pwned'}],
    ['an absolute entry', {name: '/tmp/pmemlab-absolute-evil.txt', body: 'pwned'}],
    ['a symlink to an absolute path', {name: 'linux/evil-link', type: '2', linkname: '/tmp'}],
  ] as Array<[string, TarItem]>) {
    test(`${what} is refused and nothing lands outside the destination`, async () => {
      const tarball = makeTar([{name: 'linux/', type: '5'}, {name: 'linux/ok.txt', body: 'fine'}, item])
      const dest = join(scratch, 'a', 'b', 'dest')
      await assert.rejects(extractTarStream(Readable.from([tarball]), dest, 'evil.tar'), (error: Error) => {
        assert.ok(error instanceof PmemlabError)
        assert.match(error.message, /refusing evil\.tar: 1 unsafe entry/)
        return true
      })
      assert.equal(existsSync(join(scratch, 'a', 'evil.txt')), false)
      assert.equal(existsSync(join(scratch, 'a', 'b', 'evil.txt')), false)
      assert.equal(existsSync(join(scratch, 'evil.txt')), false)
      assert.equal(existsSync('/tmp/pmemlab-absolute-evil.txt'), false)
      assert.equal(existsSync(join(dest, 'tmp')), false)
      assert.equal(existsSync(join(dest, 'evil-link')), false)
    })
  }
})

describe('kernel.org listing', () => {
  const signed = `-----BEGIN PGP SIGNED MESSAGE-----
Hash: SHA256

${'1'.repeat(64)}  linux-6.1.tar.xz
${'2'.repeat(64)}  linux-6.1.9.tar.xz
${'3'.repeat(64)}  linux-6.1.12.tar.xz
${'4'.repeat(64)}  linux-6.12.tar.xz
${'5'.repeat(64)}  patch-6.1.12.xz
-----BEGIN PGP SIGNATURE-----

iQIzBAEBCAAdFiEEZH8oZUiU471FcZm+ONu9yGCSaT4FAmZ=
=abcd
-----END PGP SIGNATURE-----
`

  test('sha256sums.asc lines are read and the signature around them ignored', () => {
    const sums = parseSha256Sums(signed)
    assert.equal(sums.size, 5)
    assert.equal(sums.get('linux-6.1.12.tar.xz'), '3'.repeat(64))
  })

  test('6.1 means the newest 6.1.N listed; 6.1.9 means exactly that', () => {
    const names = [...parseSha256Sums(signed).keys()]
    assert.equal(pickRelease('6.1', names), 'linux-6.1.12.tar.xz')
    assert.equal(pickRelease('6.12', names), 'linux-6.12.tar.xz')
    assert.equal(pickRelease('6.1.9', names), 'linux-6.1.9.tar.xz')
    assert.equal(pickRelease('6.1.10', names), undefined)
    assert.equal(pickRelease('6.2', names), undefined)
    assert.throws(() => pickRelease('6.13-rc1', names), PmemlabError)
  })
})

describe('download from a mirror', () => {
  let server: Server
  let mirror: string
  let tarball: Buffer
  let mode: 'good' | 'corrupt' | 'wrong-sum' | 'cut-off' = 'good'
  let tarballRequests = 0

  before(async () => {
    tarball = await xz(
      makeTar([
        {name: 'linux-9.9/', type: '5'},
        {name: 'linux-9.9/Kconfig', body: 'config A\n\tbool "a"\n'},
        {name: 'linux-9.9/Makefile', body: 'VERSION = 9\nPATCHLEVEL = 9\nSUBLEVEL = 0\n'},
        // incompressible, so that the download has a middle to be cut off in
        {name: 'linux-9.9/random.bin', body: randomBytes(512 * 1024).toString('base64')},
      ]),
    )
    server = createServer((request, response) => {
      if (request.url === '/pub/v9.x/sha256sums.asc') {
        const sum = mode === 'wrong-sum' ? sha256('something else') : sha256(tarball)
        response.end(`-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n${sum}  linux-9.9.tar.xz\n-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n`)
        return
      }
      if (request.url === '/pub/v9.x/linux-9.9.tar.xz') {
        tarballRequests++
        response.writeHead(200, {'content-length': String(tarball.length), 'content-type': 'application/x-xz'})
        if (mode === 'cut-off') {
          response.write(tarball.subarray(0, Math.floor(tarball.length / 2)), () => setTimeout(() => response.socket?.destroy(), 50))
          return
        }
        const body = Buffer.from(tarball)
        if (mode === 'corrupt') body[Math.floor(body.length / 2)] ^= 0xff
        response.end(body)
        return
      }
      response.statusCode = 404
      response.end('not found')
    })
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done))
    mirror = `http://127.0.0.1:${(server.address() as AddressInfo).port}/pub/`
  })
  after(async () => {
    await new Promise<void>((done) => server.close(() => done()))
  })

  const downloads = () => readdir(join(process.env.PMEMLAB_CACHE_DIR!, 'downloads')).catch(() => [] as string[])

  test('a good download is verified, kept, and not fetched again', async () => {
    mode = 'good'
    const before = tarballRequests
    const first = await fetchKernelTarball({version: '9.9', mirror})
    assert.equal(first.downloaded, true)
    assert.equal(first.sha256, sha256(tarball))
    assert.equal(first.version, '9.9')
    assert.equal(first.url, `${mirror}v9.x/linux-9.9.tar.xz`)
    assert.deepEqual(await readFile(first.file), tarball)
    assert.deepEqual((await downloads()).sort(), ['linux-9.9.tar.xz', 'linux-9.9.tar.xz.sha256'])
    const second = await fetchKernelTarball({version: '9.9', mirror})
    assert.equal(second.downloaded, false)
    assert.equal(tarballRequests, before + 1)
  })

  for (const [name, expected] of [
    ['corrupt', /checksum mismatch for linux-9\.9\.tar\.xz/],
    ['wrong-sum', /checksum mismatch for linux-9\.9\.tar\.xz/],
    ['cut-off', /cut off after/],
  ] as const) {
    test(`a ${name} download is refused and leaves nothing in downloads/`, async () => {
      mode = name
      await assert.rejects(fetchKernelTarball({version: '9.9', mirror}), (error: Error) => {
        assert.ok(error instanceof PmemlabError, String(error))
        assert.match(error.message, expected)
        return true
      })
      assert.deepEqual(await downloads(), [])
    })
  }

  test('a version the mirror does not list is not found', async () => {
    mode = 'good'
    await assert.rejects(fetchKernelTarball({version: '9.8', mirror}), /no linux-9\.8\[\.N\]\.tar\.xz in/)
    assert.deepEqual(await downloads(), [])
  })
})

describe('the cache of built kernels', () => {
  const entry = async (key: string, version: string, createdAt: string) => {
    const dir = join(process.env.PMEMLAB_CACHE_DIR!, 'kernels', key)
    await mkdir(dir, {recursive: true})
    await writeFile(join(dir, 'bzImage'), 'kernel')
    const build = {
      key,
      version,
      kernelVersion: `${version}.5`,
      source: {kind: 'source', file: '/src/linux.tar.xz', sha256: 'f'.repeat(64)},
      base: 'tinyconfig',
      debug: false,
      fragments: [],
      sets: [],
      requested: {CONFIG_DEV_DAX: 'y'},
      compiler: 'gcc',
      ccache: false,
      arch: 'x86_64',
      jobs: 2,
      modules: false,
      objects: 1500,
      timings: {fetchMs: 0, extractMs: 0, configureMs: 0, buildMs: 0, totalMs: 0},
      createdAt,
      files: {kernel: 'bzImage', config: '.config', log: 'build.log'},
    }
    await writeFile(join(dir, 'build.json'), JSON.stringify(build))
  }
  const keyA = `abcdef${'0'.repeat(58)}`
  const keyB = `abcd99${'1'.repeat(58)}`
  const keyC = `123456${'2'.repeat(58)}`

  test('specs: key prefix (6+ hex), version, latest; anything else is not a built-kernel spec', async () => {
    await entry(keyA, '6.1', '2025-01-01T00:00:00.000Z')
    await entry(keyB, '6.1', '2025-02-01T00:00:00.000Z')
    await entry(keyC, '6.12', '2025-03-01T00:00:00.000Z')
    // an incomplete directory (no bzImage) is not an entry
    await mkdir(join(process.env.PMEMLAB_CACHE_DIR!, 'kernels', 'f'.repeat(64)), {recursive: true})

    assert.deepEqual((await listKernels()).map((e) => e.key), [keyC, keyB, keyA])
    assert.equal(specForm('distro'), undefined)
    assert.equal(await resolveBuiltKernel('distro'), undefined)
    assert.equal(await resolveBuiltKernel('/boot/vmlinuz'), undefined)
    const latest = await resolveBuiltKernel('latest')
    assert.equal(latest?.key, keyC)
    assert.deepEqual(latest?.kernelArgs, ['root=/dev/vda', 'rw', 'init=/sbin/pmemlab-init'])
    assert.equal(latest?.kernel, join(process.env.PMEMLAB_CACHE_DIR!, 'kernels', keyC, 'bzImage'))
    assert.equal((await resolveBuiltKernel('6.1'))?.key, keyB, 'the newest 6.1')
    assert.equal((await resolveBuiltKernel('6.1.5'))?.key, keyB)
    assert.equal((await resolveBuiltKernel('abcdef'))?.key, keyA)
    assert.equal((await resolveBuiltKernel(keyA))?.version, '6.1.5')
    await assert.rejects(resolveBuiltKernel('fedcba'), (e: Error) => e instanceof PmemlabError && e.exitCode === 4)
    await assert.rejects(resolveBuiltKernel('5.10'), (e: Error) => e instanceof PmemlabError && e.exitCode === 4)
    assert.equal(await resolveBuiltKernel('abcd9'), undefined, 'five hex digits are too short for a key')

    assert.equal((await removeKernel('abcdef')).key, keyA)
    assert.deepEqual((await listKernels()).map((e) => e.key), [keyC, keyB])
    const pruned = await pruneKernels({keep: 1})
    assert.deepEqual(pruned.removed.map((e) => e.key), [keyB])
    assert.deepEqual((await listKernels()).map((e) => e.key), [keyC])
  })

  test('an ambiguous key prefix is a usage error', async () => {
    await entry(`aaaaaa1${'0'.repeat(57)}`, '6.1', '2025-01-01T00:00:00.000Z')
    await entry(`aaaaaa2${'0'.repeat(57)}`, '6.1', '2025-01-02T00:00:00.000Z')
    await assert.rejects(resolveBuiltKernel('aaaaaa'), (e: Error) => e instanceof PmemlabError && e.exitCode === 2 && /matches 2 kernels/.test(e.message))
  })
})

describe('locks', () => {
  test('a second holder waits for the first; a lock of a dead pid is taken over', async () => {
    const path = join(scratch, 'k.lock')
    const release = await acquireLock(path, 'kernel')
    let second = false
    const waiting = acquireLock(path, 'kernel').then((r) => {
      second = true
      return r
    })
    await new Promise((done) => setTimeout(done, 700))
    assert.equal(second, false)
    await release()
    const releaseSecond = await waiting
    assert.equal(second, true)
    await releaseSecond()

    const dead = execa('true')
    const deadPid = dead.pid
    await dead
    await writeFile(path, `${deadPid}\n`)
    const releaseStale = await acquireLock(path, 'kernel')
    assert.equal((await readFile(path, 'utf8')).trim(), String(process.pid))
    await releaseStale()
    assert.equal(existsSync(path), false)
  })
})

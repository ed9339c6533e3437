import assert from 'node:assert/strict'
import {chmod, copyFile, mkdir, mkdtemp, readFile, rm, stat, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'
import {execa} from 'execa'
import * as tar from 'tar'
import {makeLab, root, type Lab} from './cli.js'

/**
 * Issue 11's bundle on a real guest (the distro kernel): the example reproduces and leaves
 * OUTPUT/bundle.tar.gz; the bundle alone, copied elsewhere and rerun by its reproduce.sh with an
 * empty cache (so the image is built again, about a minute), reproduces the same way; the bundle
 * with one byte flipped is refused in one line (exit 2) before anything boots.
 */

interface ReproJson {
  outcome: string
  rate: string
  exitCode: number
  results: Array<{outcome: string; reason: string}>
}

const tail = (text: string) => text.trimEnd().split('\n').slice(-40).join('\n')
const SAME_REASON = /^warning: WARNING: CPU: 0 PID: \d+ at fs\/dax\.c:1 pmemlab_repro_example\+0x0\/0x10; .*the script exited 0$/i

describe('pmemlab repro bundles', {timeout: 1_800_000}, () => {
  let lab: Lab
  let dir: string

  before(async () => {
    lab = await makeLab()
    dir = await mkdtemp(join(tmpdir(), 'pmemlab-repro-bundle-'))
  })
  after(async () => {
    await lab.dispose()
    await rm(dir, {recursive: true, force: true})
  })

  test('a series leaves a bundle that reruns alone, elsewhere, with an empty cache, to the same verdict', async () => {
    const example = join(root, 'examples', 'repro', 'warning-sysrq.yaml')
    const first = join(dir, 'first')
    const run = await lab.pmemlab(['repro', example, '--runs', '1', '--output', first, '--json'])
    assert.equal(run.exitCode, 1, tail(run.stderr))
    const doc = JSON.parse(run.stdout) as ReproJson
    assert.deepEqual([doc.outcome, doc.rate], ['reproduced', 'reproduced 1/1'])
    assert.match(doc.results[0].reason, SAME_REASON)
    const bundle = join(first, 'bundle.tar.gz')
    assert.match(run.stderr, new RegExp(`bundle: ${bundle.replaceAll('.', '\\.')}`))

    // What it holds: SHA256SUMS first, sha256sum -c agrees with it, and the parts a bug report wants.
    const entries: string[] = []
    await tar.t({file: bundle, onReadEntry: (e) => entries.push(e.path)})
    assert.equal(entries[0], 'SHA256SUMS')
    for (const name of ['reproduce.sh', 'metadata.json', 'repro.json', 'junit.xml', 'reproducer.yaml', 'input/warning-sysrq.yaml', 'runs/1/run.json', 'runs/1/console.log', 'runs/1/script.out']) assert.ok(entries.includes(name), `${name} in ${entries.join(' ')}`)
    const tree = join(dir, 'tree')
    await mkdir(tree)
    await tar.x({file: bundle, cwd: tree})
    const checked = await execa('sha256sum', ['-c', '--strict', 'SHA256SUMS'], {cwd: tree, reject: false})
    assert.equal(checked.exitCode, 0, checked.stdout + checked.stderr)
    const metadata = JSON.parse(await readFile(join(tree, 'metadata.json'), 'utf8'))
    assert.equal(metadata.reproducer, 'input/warning-sysrq.yaml')
    assert.match(metadata.host.kernel, /^\d+\.\d+/)
    assert.ok(metadata.host.cpuFlags.length > 0)
    assert.match(metadata.qemu ?? '', /QEMU emulator version/)
    assert.equal(metadata.accel.length, 1)
    assert.equal((await readFile(join(tree, 'reproduce.sh'), 'utf8')).split('\n').find((l) => l.startsWith('exec ')), 'exec pmemlab repro bundle.tar.gz --runs 1 "$@"')

    // The bundle alone, somewhere else, by its reproduce.sh (a pmemlab on PATH that is this build), with a cache that holds nothing.
    const elsewhere = join(dir, 'elsewhere')
    await mkdir(elsewhere)
    await copyFile(bundle, join(elsewhere, 'bundle.tar.gz'))
    const bin = join(dir, 'bin')
    await mkdir(bin)
    await writeFile(join(bin, 'pmemlab'), `#!/bin/sh\nexec '${process.execPath}' '${join(root, 'bin', 'run.js')}' "$@"\n`)
    await chmod(join(bin, 'pmemlab'), 0o755)
    const cache = join(dir, 'empty-cache')
    await mkdir(cache)
    const second = join(dir, 'second')
    const rerun = await execa('sh', [join(tree, 'reproduce.sh'), '--output', second, '--json'], {
      cwd: elsewhere,
      env: {...lab.env, PMEMLAB_CACHE_DIR: cache, PATH: `${bin}:${process.env.PATH}`},
      reject: false,
      stdin: 'ignore',
      timeout: 1_200_000,
    })
    assert.equal(rerun.exitCode, 1, tail(String(rerun.stderr)))
    const again = JSON.parse(String(rerun.stdout)) as ReproJson
    assert.deepEqual([again.outcome, again.rate], ['reproduced', 'reproduced 1/1'])
    assert.match(again.results[0].reason, SAME_REASON)
    assert.ok((await stat(join(second, 'bundle.tar.gz'))).isFile(), 'the rerun leaves a bundle of its own')
    assert.deepEqual(await lab.qemuProcesses(), [])
  })

  test('a bundle with one byte flipped is refused in one line, before anything is made', async () => {
    const bundle = join(dir, 'first', 'bundle.tar.gz')
    const tree = join(dir, 'tampered-tree')
    await mkdir(tree)
    await tar.x({file: bundle, cwd: tree})
    const files: string[] = []
    await tar.t({file: bundle, onReadEntry: (e) => files.push(e.path)})
    const log = join(tree, 'runs', '1', 'console.log')
    const bytes = await readFile(log)
    bytes[Math.floor(bytes.length / 2)] ^= 0x01
    await writeFile(log, bytes)
    const tampered = join(dir, 'tampered.tar.gz')
    await tar.c({gzip: true, cwd: tree, file: tampered}, files)
    const output = join(dir, 'tampered-output')
    const run = await lab.pmemlab(['repro', tampered, '--output', output])
    assert.equal(run.exitCode, 2, run.stderr)
    assert.equal(run.stdout, '')
    const lines = run.stderr.trimEnd().split('\n')
    assert.equal(lines.length, 1, run.stderr)
    assert.match(lines[0], /^pmemlab: error: bundle \S+tampered\.tar\.gz refused: runs\/1\/console\.log does not match its SHA256 \(changed\): /)
    await assert.rejects(stat(output), 'no output directory')
  })
})

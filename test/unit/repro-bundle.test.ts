import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {chmod, mkdir, readFile, rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test} from 'node:test'
import {execa} from 'execa'
import * as tar from 'tar'
import {withDir} from 'tmp-promise'
import {PmemlabError} from '../../src/core/errors.js'
import {bundleFileList, cpuFlags, entryProblem, inputLayout, isGzip, logTail, parseSha256sums, referencedFiles, reproduceScript, rerunArgv, sha256sumsText, sumsProblem, type FileSum} from '../../src/repro/bundle-files.js'
import {copyInputs, isBundle, withBundle, writeBundle} from '../../src/repro/bundle.js'
import {reproDocument} from '../../src/repro/document.js'
import {parseRepro} from '../../src/repro/schema.js'

const sha = (text: string) => createHash('sha256').update(text).digest('hex')
const sumsOf = (files: Record<string, string>): FileSum[] => Object.entries(files).map(([path, text]) => ({path, sha256: sha(text)}))

describe('SHA256SUMS', () => {
  const files = {'runs/1/console.log': 'boot\nWARNING\n', 'repro.json': '{}\n', 'a b.txt': 'spaced\n'}

  test('is the text sha256sum -c checks, sorted by path', async () => {
    await withDir(
      async ({path: dir}) => {
        for (const [name, text] of Object.entries(files)) {
          await mkdir(join(dir, name, '..'), {recursive: true})
          await writeFile(join(dir, name), text)
        }
        const text = sha256sumsText(sumsOf(files))
        assert.deepEqual(text.split('\n').filter(Boolean).map((l) => l.slice(66)), ['a b.txt', 'repro.json', 'runs/1/console.log'])
        await writeFile(join(dir, 'SHA256SUMS'), text)
        const checked = await execa('sha256sum', ['-c', '--strict', 'SHA256SUMS'], {cwd: dir, reject: false})
        assert.equal(checked.exitCode, 0, checked.stderr)
        await writeFile(join(dir, 'repro.json'), '{ }\n')
        assert.notEqual((await execa('sha256sum', ['-c', 'SHA256SUMS'], {cwd: dir, reject: false})).exitCode, 0)
      },
      {unsafeCleanup: true},
    )
  })

  test('reads back what it writes, and refuses a line that is not one', () => {
    const written = sumsOf(files)
    const parsed = parseSha256sums(sha256sumsText(written))
    assert.ok('sums' in parsed)
    assert.deepEqual(sumsProblem(parsed.sums, written), undefined)
    assert.deepEqual(parseSha256sums(`${'0'.repeat(64)}  ok\nnot a sum line\n`), {problem: 'SHA256SUMS line 2 is not "SHA256  PATH"'})
    assert.throws(() => sha256sumsText([{path: 'new\nline', sha256: sha('')}]))
  })

  test('names a changed byte, a missing file and an extra file', () => {
    const listed = sumsOf(files)
    const tampered = sumsOf({...files, 'runs/1/console.log': 'boot\nWARNINH\n'})
    assert.equal(sumsProblem(listed, tampered), 'runs/1/console.log does not match its SHA256 (changed)')
    const missing = listed.filter((f) => f.path !== 'repro.json')
    assert.equal(sumsProblem(listed, missing), 'repro.json is missing')
    const extra = [...listed, {path: 'runs/1/evil.sh', sha256: sha('x')}]
    assert.equal(sumsProblem(listed, extra), 'runs/1/evil.sh is not listed in SHA256SUMS (added)')
  })
})

describe('the bundle file list', () => {
  test("holds a finished output directory's own files, not the user's or the bundle itself", () => {
    const listing = ['repro.json', 'junit.xml', 'reproducer.yaml', 'runs/1/run.json', 'runs/1/console.log', 'runs/2/script.out', 'kernel/config', 'kernel/patches/0001-fix.patch', 'input/bug.yaml', 'reproduce.sh', 'metadata.json', 'SHA256SUMS', 'bundle.tar.gz', '.bundle.tar.gz.partial-42', 'notes.txt', 'runsheet.csv', 'kernel']
    assert.deepEqual(bundleFileList(listing), ['input/bug.yaml', 'junit.xml', 'kernel/config', 'kernel/patches/0001-fix.patch', 'metadata.json', 'repro.json', 'reproduce.sh', 'reproducer.yaml', 'runs/1/console.log', 'runs/1/run.json', 'runs/2/script.out'])
  })

  test('a finished output directory becomes a bundle that opens, checked, with its reproducer', async () => {
    await withDir(
      async ({path: dir}) => {
        const {output, plan} = await finishedOutput(dir)
        const inputs = await copyInputs(plan, output)
        assert.equal(inputs.reproducer, 'input/bugs/bug.yaml')
        const document = reproDocument({file: plan.file, policy: {runs: 1, untilReproduced: false}, runs: [], startedAt: new Date().toISOString(), durationMs: 5})
        const bundle = await writeBundle({output, document, inputs, flags: {runs: 1, kernel: 'debian:6.12'}})
        assert.equal(bundle, join(output, 'bundle.tar.gz'))
        assert.ok(await isBundle(bundle))
        const entries: string[] = []
        await tar.t({file: bundle, onReadEntry: (e) => entries.push(e.path)})
        assert.equal(entries[0], 'SHA256SUMS')
        assert.deepEqual(entries.slice(1).sort(), ['input/bugs/bug.yaml', 'input/patches/fix.patch', 'junit.xml', 'kernel/config', 'metadata.json', 'repro.json', 'reproduce.sh', 'reproducer.yaml', 'runs/1/console.log', 'runs/1/run.json'])
        const metadata = JSON.parse(await readFile(join(output, 'metadata.json'), 'utf8'))
        assert.equal(metadata.reproducer, 'input/bugs/bug.yaml')
        assert.deepEqual(metadata.command, ['pmemlab', 'repro', 'bundle.tar.gz', '--runs', '1', '--kernel', 'debian:6.12'])
        assert.equal(typeof metadata.host.kernel, 'string')

        // Opened: the reproducer's relative patch path finds the bundled patch.
        const seen = await withBundle(bundle, async (reproducer) => {
          const reopened = parseRepro(await readFile(reproducer, 'utf8'), reproducer)
          assert.ok(reopened.kernel?.kind === 'build')
          return readFile(reopened.kernel.build.patches![0], 'utf8')
        })
        assert.equal(seen, 'the fix\n')
      },
      {unsafeCleanup: true},
    )
  })

  test('a bundle with a changed byte, a missing or an extra file is refused in one line naming it (exit 2)', async () => {
    await withDir(
      async ({path: dir}) => {
        const {output, plan} = await finishedOutput(dir)
        const document = reproDocument({file: plan.file, policy: {runs: 1, untilReproduced: false}, runs: [], startedAt: new Date().toISOString(), durationMs: 5})
        const bundle = await writeBundle({output, document, inputs: await copyInputs(plan, output), flags: {}})
        const repacked = async (name: string, change: (tree: string) => Promise<void>) => {
          const tree = join(dir, `tree-${name}`)
          await mkdir(tree)
          await tar.x({file: bundle, cwd: tree})
          await change(tree)
          const file = join(dir, `${name}.tar.gz`)
          const entries: string[] = []
          await tar.t({file: bundle, onReadEntry: (e) => entries.push(e.path)})
          const now = (await execa('find', ['.', '-type', 'f', '-printf', '%P\\n'], {cwd: tree})).stdout.split('\n').filter(Boolean)
          await tar.c({gzip: true, cwd: tree, file}, now)
          return file
        }
        const refusal = async (file: string, named: RegExp) => {
          let used = false
          await assert.rejects(
            withBundle(file, async () => (used = true)),
            (error: unknown) => error instanceof PmemlabError && error.exitCode === 2 && named.test(error.oneLine()) && !error.oneLine().includes('\n'),
          )
          assert.equal(used, false)
        }
        await refusal(
          await repacked('flipped', async (tree) => {
            const log = join(tree, 'runs/1/console.log')
            const bytes = await readFile(log)
            bytes[0] ^= 1
            await writeFile(log, bytes)
          }),
          /refused: runs\/1\/console\.log does not match its SHA256/,
        )
        await refusal(await repacked('missing', (tree) => rm(join(tree, 'input/patches/fix.patch'))), /refused: input\/patches\/fix\.patch is missing/)
        await refusal(await repacked('extra', (tree) => writeFile(join(tree, 'runs/1/extra'), 'x')), /refused: runs\/1\/extra is not listed/)
        await refusal(await repacked('nosums', (tree) => rm(join(tree, 'SHA256SUMS'))), /refused: SHA256SUMS is missing/)
        await writeFile(join(dir, 'junk.tar.gz'), 'not gzip')
        await refusal(join(dir, 'junk.tar.gz'), /refused: not a readable \.tar\.gz/)
      },
      {unsafeCleanup: true},
    )
  })

  test("an archive with '..' or an absolute path is refused before anything is extracted", async () => {
    await withDir(
      async ({path: dir}) => {
        await mkdir(join(dir, 'a'))
        await writeFile(join(dir, 'a', 'x'), 'x')
        await writeFile(join(dir, 'outside'), 'o')
        const file = join(dir, 'evil.tar.gz')
        // GNU tar keeps '..' with --absolute-names (node-tar would strip it).
        await execa('tar', ['-czf', file, '--absolute-names', '-C', join(dir, 'a'), 'x', '../outside'])
        await assert.rejects(
          withBundle(file, async () => undefined),
          (error: unknown) => error instanceof PmemlabError && error.exitCode === 2 && /refused: \.\.\/outside: a path with '\.\.'/.test(error.message),
        )
      },
      {unsafeCleanup: true},
    )
  })
})

/** An output directory as a finished series leaves it, for a reproducer in bugs/ whose patch sits in ../patches/. */
async function finishedOutput(dir: string) {
  await mkdir(join(dir, 'bugs'))
  await mkdir(join(dir, 'patches'))
  await writeFile(join(dir, 'patches', 'fix.patch'), 'the fix\n')
  const text = 'version: 1\nkernel: {version: 6.12, from: debian, patches: [../patches/fix.patch]}\nrun: {script: "true"}\nexpect: {exit: 0}\n'
  const file = join(dir, 'bugs', 'bug.yaml')
  await writeFile(file, text)
  const output = join(dir, 'out')
  await mkdir(join(output, 'runs', '1'), {recursive: true})
  await mkdir(join(output, 'kernel'))
  for (const [name, content] of Object.entries({'repro.json': '{}\n', 'junit.xml': '<testsuites/>\n', 'reproducer.yaml': text, 'runs/1/run.json': '{}\n', 'runs/1/console.log': 'boot\n', 'kernel/config': 'CONFIG_DAX=y\n', 'notes.txt': 'mine\n'})) await writeFile(join(output, name), content)
  return {output, plan: parseRepro(text, file)}
}

describe('reproduce.sh', () => {
  test('hands pmemlab every argument as it was, whatever it holds', async () => {
    await withDir(
      async ({path: dir}) => {
        const bin = join(dir, 'bin')
        await mkdir(bin)
        await writeFile(join(bin, 'pmemlab'), '#!/bin/sh\nfor a in "$@"; do printf "<%s>" "$a"; done\n')
        await chmod(join(bin, 'pmemlab'), 0o755)
        const kernel = `./my kernel's "bz"$HOME\`id\`;*\n`
        const argv = [...rerunArgv({runs: 3, untilReproduced: true, kernel}), '']
        const script = reproduceScript(argv)
        assert.match(script, /^#!\/bin\/sh\n/)
        await writeFile(join(dir, 'reproduce.sh'), script)
        const result = await execa('sh', [join(dir, 'reproduce.sh'), '--output', 'x y'], {cwd: dir, env: {PATH: `${bin}:/usr/bin:/bin`}})
        assert.equal(result.stdout, ['repro', 'bundle.tar.gz', '--runs', '3', '--until-reproduced', '--kernel', kernel, '', '--output', 'x y'].map((a) => `<${a}>`).join(''))
      },
      {unsafeCleanup: true},
    )
  })

  test('names only the flags given', () => {
    assert.deepEqual(rerunArgv({}), ['pmemlab', 'repro', 'bundle.tar.gz'])
  })
})

describe('the reproducer and its files', () => {
  test('keep their relative places under input/, from their deepest common directory', () => {
    assert.deepEqual(inputLayout('/w/bugs/r.yaml', ['/w/bugs/k.config', '/w/patches/1.patch']), {
      reproducer: 'input/bugs/r.yaml',
      entries: [
        {source: '/w/bugs/r.yaml', path: 'input/bugs/r.yaml'},
        {source: '/w/bugs/k.config', path: 'input/bugs/k.config'},
        {source: '/w/patches/1.patch', path: 'input/patches/1.patch'},
      ],
    })
    assert.deepEqual(inputLayout('/r.yaml', []).reproducer, 'input/r.yaml')
    assert.deepEqual(inputLayout('/w/r.yaml', ['/w/r.yaml']).entries.length, 1)
  })

  test("are the recipe's fragments and patches, a bzImage path, the image's recipe or files; not a source tree", () => {
    const plan = (kernel: string, image = '') => parseRepro(`version: 1\nkernel: ${kernel}\n${image}run: {script: "true"}\nexpect: {exit: 0}\n`, '/w/bugs/r.yaml')
    assert.deepEqual(referencedFiles(plan('{version: 6.12, configs: [kasan.config], patches: [../p/1.patch]}')), {files: ['/w/bugs/kasan.config', '/w/p/1.patch'], notBundled: []})
    assert.deepEqual(referencedFiles(plan('./bzImage')), {files: ['/w/bugs/bzImage'], notBundled: []})
    assert.deepEqual(referencedFiles(plan('{tree: ../linux, configs: [k.config]}')), {files: ['/w/bugs/k.config'], notBundled: ['/w/linux']})
    assert.deepEqual(referencedFiles(plan('distro', 'image: {extends: default, files: [{source: trigger.sh, to: /root/trigger.sh}]}\n')), {files: ['/w/bugs/trigger.sh'], notBundled: []})
    assert.deepEqual(referencedFiles(plan('distro')), {files: [], notBundled: []})
  })
})

describe('small parts', () => {
  test('the extraction guard takes relative files and directories only', () => {
    assert.equal(entryProblem('runs/1/run.json', 'File'), undefined)
    assert.equal(entryProblem('runs/', 'Directory'), undefined)
    assert.equal(entryProblem('/etc/passwd', 'File'), '/etc/passwd: an absolute path')
    assert.equal(entryProblem('runs/../../x', 'File'), "runs/../../x: a path with '..'")
    assert.equal(entryProblem('link', 'SymbolicLink'), 'link: a SymbolicLink entry (only files and directories)')
    assert.equal(entryProblem('dev', 'CharacterDevice'), 'dev: a CharacterDevice entry (only files and directories)')
  })

  test('gzip magic, CPU flags, a build log tail', () => {
    assert.ok(isGzip(Buffer.from([0x1f, 0x8b, 8])))
    assert.ok(!isGzip(Buffer.from('ve')))
    assert.deepEqual(cpuFlags('processor\t: 0\nflags\t\t: fpu vme pse\nprocessor\t: 1\nflags\t\t: fpu\n'), ['fpu', 'vme', 'pse'])
    assert.deepEqual(cpuFlags('nothing'), [])
    assert.equal(logTail('a\nb\nc\n', 2), 'b\nc\n')
    assert.equal(logTail('a\nb\nc', 5), 'a\nb\nc\n')
    assert.equal(logTail('', 5), '')
  })
})

import assert from 'node:assert/strict'
import {mkdir, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test} from 'node:test'
import {withDir} from 'tmp-promise'
import {PmemlabError} from '../../src/core/errors.js'
import {readReproFile, runRepro} from '../../src/repro/run.js'
import {parseRepro, type ReproPlan} from '../../src/repro/schema.js'
import {buildRequestOf, DEFAULT_IMAGE, imageChoice, kernelChoice, labRequestOf, prepareKernel} from '../../src/repro/setup.js'
import {withEnv} from './env.js'

const file = (...lines: string[]) => `${lines.join('\n')}\n`
const TAIL = ['run: ./trigger', 'expect: {exit: nonzero}']
const planOf = (...lines: string[]) => parseRepro(file('version: 1', ...lines, ...TAIL), '/work/bugs/r.yaml')

/** A fake bzImage: the boot header's magic and a version string, as kernel/boot.ts reads them. */
function fakeBzImage(version: string): Buffer {
  const image = Buffer.alloc(0x1000)
  image.write('HdrS', 0x202, 'latin1')
  image.writeUInt16LE(0x20f, 0x206)
  image.writeUInt16LE(0x600, 0x20e)
  image.write(`${version} (builder@host) #1 SMP\0`, 0x800, 'latin1')
  return image
}

/** A built kernel's cache entry, as kernel/store.ts lists them. */
async function builtEntry(cache: string, key: string, version: string, createdAt: string): Promise<void> {
  const dir = join(cache, 'kernels', key)
  await mkdir(dir, {recursive: true})
  await writeFile(join(dir, 'bzImage'), 'kernel')
  const build = {key, version, kernelVersion: `${version}.5`, source: {kind: 'source', file: '/src/linux.tar.xz', sha256: 'f'.repeat(64)}, base: 'tinyconfig', debug: false, fragments: [], sets: [], requested: {}, compiler: 'gcc', ccache: false, arch: 'x86_64', jobs: 2, modules: false, objects: 1, timings: {fetchMs: 0, extractMs: 0, configureMs: 0, buildMs: 0, totalMs: 0}, createdAt, files: {kernel: 'bzImage', config: '.config', log: 'build.log'}}
  await writeFile(join(dir, 'build.json'), JSON.stringify(build))
}

describe('the kernel of a series', () => {
  test('--kernel overrides the file, the file\'s spec or recipe comes next, distro last', () => {
    assert.deepEqual(kernelChoice(planOf('kernel: debian:6.12'), 'distro'), {kind: 'spec', spec: 'distro', from: 'flag'})
    assert.deepEqual(kernelChoice(planOf('kernel: debian:6.12')), {kind: 'spec', spec: 'debian:6.12', from: 'file'})
    assert.deepEqual(kernelChoice(planOf()), {kind: 'spec', spec: 'distro', from: 'default'})
    assert.deepEqual(kernelChoice(planOf('kernel: ./bzImage')), {kind: 'spec', spec: '/work/bugs/bzImage', from: 'file'}, 'a path in the file is relative to it')
    const recipe = kernelChoice(planOf('kernel: {version: "6.12", from: debian}'))
    assert.equal(recipe.kind, 'build')
    assert.equal(kernelChoice(planOf('kernel: {version: "6.12", from: debian}'), 'latest').kind, 'spec', 'a bisect boots its own kernel')
  })

  test('a recipe becomes the build request kernel build takes, with the paths the file resolved', () => {
    const plan = planOf('kernel: {version: "6.12", from: debian, configs: [kasan.config], set: {CONFIG_KASAN: y}, patches: [fix.patch], debug: true}')
    assert.ok(plan.kernel?.kind === 'build')
    assert.deepEqual(buildRequestOf(plan.kernel.build), {
      source: {kind: 'debian', version: '6.12'},
      configs: ['/work/bugs/kasan.config'],
      sets: ['CONFIG_KASAN=y'],
      patches: ['/work/bugs/fix.patch'],
      debug: true,
      base: 'tinyconfig',
    })
    const tree = planOf('kernel: {tree: ../linux, ref: HEAD}')
    assert.ok(tree.kernel?.kind === 'build')
    assert.deepEqual(buildRequestOf(tree.kernel.build), {source: {kind: 'tree', dir: '/work/linux', ref: 'HEAD'}, configs: [], sets: [], debug: false, base: 'tinyconfig'})
    const tarball = planOf('kernel: {source: linux-6.1.tar.xz, base: defconfig}')
    assert.ok(tarball.kernel?.kind === 'build')
    assert.deepEqual(buildRequestOf(tarball.kernel.build).source, {kind: 'source', file: '/work/bugs/linux-6.1.tar.xz'})
    const upstream = planOf('kernel: {version: "6.1"}')
    assert.ok(upstream.kernel?.kind === 'build')
    assert.deepEqual(buildRequestOf(upstream.kernel.build).source, {kind: 'version', version: '6.1'})
  })

  test('a bzImage path: its version, booted by its path', async () => {
    await withDir(
      async ({path}) => {
        await writeFile(join(path, 'bzImage'), fakeBzImage('6.13.2'))
        const {kernel, entryDir} = await prepareKernel({kind: 'spec', spec: join(path, 'bzImage'), from: 'flag'})
        assert.deepEqual(kernel, {asked: join(path, 'bzImage'), spec: join(path, 'bzImage'), from: 'flag', version: '6.13.2'})
        assert.equal(entryDir, undefined)
      },
      {unsafeCleanup: true, prefix: 'pmemlab-repro-setup-'},
    )
  })

  test('"latest" and a version are pinned to the key of the kernel they name now', async () => {
    await withDir(
      async ({path}) => {
        const older = `abcdef${'0'.repeat(58)}`
        const newer = `123456${'2'.repeat(58)}`
        await builtEntry(path, older, '6.1', '2025-01-01T00:00:00.000Z')
        await builtEntry(path, newer, '6.12', '2025-03-01T00:00:00.000Z')
        await withEnv({PMEMLAB_CACHE_DIR: path}, async () => {
          const latest = await prepareKernel({kind: 'spec', spec: 'latest', from: 'flag'})
          assert.deepEqual(latest.kernel, {asked: 'latest', spec: newer, from: 'flag', version: '6.12.5'})
          assert.equal(latest.entryDir, join(path, 'kernels', newer), 'its entry, whose files go into the output')
          assert.deepEqual((await prepareKernel({kind: 'spec', spec: '6.1', from: 'file'})).kernel, {asked: '6.1', spec: older, from: 'file', version: '6.1.5'})
          await assert.rejects(prepareKernel({kind: 'spec', spec: '6.2', from: 'file'}), (error: unknown) => error instanceof PmemlabError && error.exitCode === 4)
        })
      },
      {unsafeCleanup: true, prefix: 'pmemlab-repro-setup-'},
    )
  })
})

describe('the image and lab of a series', () => {
  test('the default, a named image, the default by extends, a recipe file, or a recipe written inline', () => {
    assert.equal(imageChoice(planOf()), DEFAULT_IMAGE)
    assert.equal(imageChoice(planOf('image: debian-12')), 'debian-12')
    assert.equal(imageChoice(planOf('image: {extends: default}')), DEFAULT_IMAGE)
    assert.equal(imageChoice(planOf('image: {extends: debian-13}')), 'debian-13')
    assert.equal(imageChoice(planOf('image: ./recipe.yaml')), '/work/bugs/recipe.yaml', 'a recipe file is found from the reproducer\'s directory')
    assert.deepEqual(imageChoice(planOf('image: {extends: default, packages: [fio], files: [{source: t.sh, to: /root/t.sh, mode: "0755"}]}')), {
      kind: 'inline',
      path: '/work/bugs/r.yaml (image:)',
      recipe: {
        file: '/work/bugs/r.yaml:2:8',
        baseDir: '/work/bugs',
        name: 'repro-r',
        extends: 'default',
        packages: ['fio'],
        files: [{source: '/work/bugs/t.sh', to: ['/root/t.sh'], mode: 0o755, where: '/work/bugs/r.yaml:2:8'}],
      },
    })
  })

  test('each run boots the file\'s lab, as the up flags give it', () => {
    const plan = planOf('lab: {memmap: [128M@4G], nvdimm: [512M, "1G:disks/nv1.img"], mem: 2G, cpus: 4, machine: q35, append: [panic_on_warn=1]}')
    assert.deepEqual(labRequestOf(plan.lab, 'abcdef', 'debian-12'), {
      kernel: 'abcdef',
      image: 'debian-12',
      topology: {machine: 'q35', mem: '2G', memmap: ['128M@4G'], nvdimm: ['512M', '1G:/work/bugs/disks/nv1.img'], virtioPmem: []},
      cpus: 4,
      accel: 'auto',
      append: ['panic_on_warn=1'],
      bootTimeoutMs: 180_000,
    })
    assert.deepEqual(labRequestOf(planOf().lab, 'distro', 'debian-12').topology.nvdimm.length, 1, 'up\'s default lab')
  })
})

describe('bad input, before anything is made', () => {
  test('a file that cannot be read, or a mistake in it: one line, exit 2', async () => {
    await withDir(
      async ({path}) => {
        await assert.rejects(readReproFile(join(path, 'missing.yaml')), (error: unknown) => {
          assert.ok(error instanceof PmemlabError && error.exitCode === 2)
          assert.equal(error.oneLine(), `cannot read reproducer file ${join(path, 'missing.yaml')}: no such file: give the path of a reproducer file, like examples/repro/warning-sysrq.yaml`)
          return true
        })
        await writeFile(join(path, 'bad.yaml'), file('version: 1', 'run: ./t', 'expect: {must: [warnign]}'))
        await assert.rejects(readReproFile(join(path, 'bad.yaml')), (error: unknown) => {
          assert.ok(error instanceof PmemlabError && error.exitCode === 2)
          assert.match(error.oneLine(), /bad\.yaml:3:17: expect\.must\[0\]: "warnign" is neither a class nor a regex: did you mean "warning"\?/)
          return true
        })
      },
      {unsafeCleanup: true, prefix: 'pmemlab-repro-setup-'},
    )
  })

  test('an image recipe that is missing or wrong, or a lab the topology refuses: refused before the output directory or a kernel exists', async () => {
    await withDir(
      async ({path}) => {
        const output = join(path, 'out')
        const write = async (name: string, ...lines: string[]) => {
          await writeFile(join(path, name), file('version: 1', 'kernel: {version: "6.12", from: debian}', ...lines, ...TAIL))
          return readReproFile(join(path, name))
        }
        const refused = async (plan: ReproPlan, line: RegExp) =>
          assert.rejects(runRepro({plan, untilReproduced: false, output}), (error: unknown) => {
            assert.ok(error instanceof PmemlabError && error.exitCode === 2, String(error))
            assert.match(error.oneLine(), line)
            return true
          })
        await refused(await write('missing-file.yaml', 'image: {extends: default, packages: [fio], files: [{source: gone.sh, to: /root/gone.sh}]}'), /missing-file\.yaml:3:8: cannot read \/.*\/gone\.sh: no such file/)
        await refused(await write('missing-recipe.yaml', 'image: ./nope.yaml'), /^cannot read image recipe .*nope\.yaml: no such file/)
        await refused(await write('unknown-base.yaml', 'image: {extends: debian-99, packages: [fio]}'), /unknown-base\.yaml:3:8: extends: unknown image "debian-99"/)
        await refused(await write('lab.yaml', 'lab: {memmap: [256M], mem: 64M}'), /./)
        await assert.rejects(stat(output), 'no output directory')
      },
      {unsafeCleanup: true, prefix: 'pmemlab-repro-setup-'},
    )
  })
})

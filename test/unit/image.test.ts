import assert from 'node:assert/strict'
import {existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {test} from 'node:test'
import {PmemlabError} from '../../src/core/errors.js'
import {resolveImage} from '../../src/image/resolve.js'
import {imageHash, listImages, listRecipes, loadRecipe} from '../../src/image/store.js'
import {recipeSchema} from '../../src/image/recipe.js'
import {buildImage, buildScript, pathInRoot} from '../../src/image/build.js'
import {parseAptSources, pickDebianMirror} from '../../src/core/debian.js'
import {packageRoot} from '../../src/core/paths.js'
import {withEnv} from './env.js'

/** Runs body with PMEMLAB_CACHE_DIR pointing at a fresh directory. */
async function withCache(body: (cache: string) => Promise<void>): Promise<void> {
  const cache = mkdtempSync(join(tmpdir(), 'pmemlab-cache-'))
  try {
    await withEnv({PMEMLAB_CACHE_DIR: cache}, () => body(cache))
  } finally {
    rmSync(cache, {recursive: true, force: true})
  }
}

test('imageHash covers the recipe text and every file path, mode and byte, in any order', () => {
  const a = {path: 'guest/pmemlab-init', content: Buffer.from('#!/bin/sh\n'), mode: 0o755}
  const b = {path: 'guest/shutdown', content: Buffer.from('#!/bin/sh\nsync\n'), mode: 0o755}
  const base = imageHash('name: x\n', [a, b])
  assert.match(base, /^[0-9a-f]{64}$/)
  assert.equal(imageHash('name: x\n', [b, a]), base)
  assert.notEqual(imageHash('name: y\n', [a, b]), base)
  assert.notEqual(imageHash('name: x\n', [{...a, content: Buffer.from('#!/bin/sh \n')}, b]), base)
  assert.notEqual(imageHash('name: x\n', [{...a, mode: 0o644}, b]), base)
  assert.notEqual(imageHash('name: x\n', [{...a, path: 'guest/other'}, b]), base)
  assert.notEqual(imageHash('name: x\n', [a]), base)
})

test('the debian-12 recipe is listed, valid and hashed with its guest files', async () => {
  assert.ok((await listRecipes()).includes('debian-12'))
  const loaded = await loadRecipe('debian-12')
  assert.equal(loaded.recipe.suite, 'bookworm')
  assert.equal(loaded.recipe.variant, 'essential')
  assert.ok(loaded.recipe.packages.includes('qemu-guest-agent'))
  const init = loaded.files.find((file) => file.source === 'guest/pmemlab-init')
  assert.ok(init)
  assert.equal(init.mode, 0o755)
  assert.deepEqual(init.to, ['/sbin/pmemlab-init'])
  assert.deepEqual(init.content, readFileSync(join(packageRoot, 'guest', 'pmemlab-init')))
  const shutdown = loaded.files.find((file) => file.source === 'guest/shutdown')
  assert.ok(shutdown?.to.includes('/sbin/poweroff'))
  assert.equal(
    loaded.hash,
    imageHash(
      loaded.text,
      [
        ...loaded.files.map((file) => ({path: file.source, content: file.content, mode: file.mode})),
        ...loaded.buildSources.map((file) => ({path: `build:${file.source}`, content: file.content, mode: 0o644})),
      ],
    ),
  )
  assert.ok(loaded.buildSources.some((file) => file.source === 'guest/tests/pmemlab-pmemobj.c'), 'the compiled guest programs are part of the hash')
})

test('buildScript compiles each program with the cflags, -static when asked, then its libraries', async () => {
  const {build} = (await loadRecipe('debian-12')).recipe
  assert.ok(build)
  const script = buildScript(build).split('\n')
  const compile = (to: string) => script.find((line) => line.startsWith('gcc ') && line.includes(` -o ${to} `))
  assert.equal(compile('/usr/local/bin/pmemlab-exec'), `gcc ${build.cflags.join(' ')} -static -o /usr/local/bin/pmemlab-exec guest/pmemlab-exec.c`)
  assert.equal(compile('/usr/local/bin/pmemlab-pmemobj'), `gcc ${build.cflags.join(' ')} -o /usr/local/bin/pmemlab-pmemobj guest/tests/pmemlab-pmemobj.c -lpmemobj -lpmem`, 'headers are not compiled')
  assert.equal(script[1], 'set -eu', 'a failed compile fails the image build')
})

test('buildScript unpacks each upstream tarball where it is used and runs its build script there', async () => {
  const {build} = (await loadRecipe('debian-12')).recipe
  assert.ok(build)
  const ndctl = build.upstream.find((project) => project.name === 'ndctl')
  assert.ok(ndctl, 'the debian-12 image carries ndctl\'s tests')
  const script = buildScript(build).split('\n')
  const unpack = script.findIndex((line) => line.startsWith('tar -xf '))
  assert.equal(script[unpack], `tar -xf /tmp/pmemlab-build/upstream/${ndctl.file.split('/').at(-1)} -C ${ndctl.to}/src --strip-components=1 --no-same-owner`)
  assert.equal(script[unpack + 1], `/bin/sh -eu /tmp/pmemlab-build/${ndctl.script} ${ndctl.to}`)
  assert.ok(script.indexOf(`mkdir -p ${ndctl.to}/src`) < unpack)
  // The build script is hashed like the programs' sources: editing it makes a new image.
  assert.ok((await loadRecipe('debian-12')).buildSources.some((file) => file.source === ndctl.script))
})

test('the recipe schema pins upstream tarballs by pool path and sha256', () => {
  const base = {name: 'x', description: 'd', suite: 'bookworm', sizeMiB: 800, packages: ['apt']}
  const project = {name: 'ndctl', file: 'pool/main/n/ndctl/ndctl_81.orig.tar.gz', sha256: 'e'.repeat(64), to: '/opt/ndctl', script: 'guest/upstream/ndctl.sh'}
  assert.equal(recipeSchema.safeParse({...base, build: {upstream: [project]}}).success, true, 'a build may have no programs when it has upstream sources')
  assert.equal(recipeSchema.safeParse({...base, build: {}}).success, false, 'but not neither')
  for (const bad of [{file: 'https://example.org/ndctl.tar.gz'}, {file: 'pool/main/n/ndctl/../../x.tar.gz'}, {sha256: 'abc'}, {to: 'opt/ndctl'}, {script: '/etc/x.sh'}]) {
    assert.equal(recipeSchema.safeParse({...base, build: {upstream: [{...project, ...bad}]}}).success, false, JSON.stringify(bad))
  }
})

test('an unknown recipe is a one-line usage error listing the known ones', async () => {
  await assert.rejects(loadRecipe('debian-99'), (error: unknown) => {
    assert.ok(error instanceof PmemlabError)
    assert.equal(error.exitCode, 2)
    assert.match(error.oneLine(), /^unknown image "debian-99": known images: .*debian-12/)
    assert.ok(!error.oneLine().includes('\n'))
    return true
  })
})

test('the recipe schema wants quoted octal modes and absolute image paths', () => {
  const recipe = {name: 'x', description: 'd', suite: 'bookworm', sizeMiB: 800, files: [{source: 'guest/a', to: ['/sbin/a'], mode: '0755'}]}
  const ok = recipeSchema.parse(recipe)
  assert.equal(ok.files[0].mode, 0o755)
  assert.equal(ok.variant, 'essential')
  assert.equal(recipeSchema.safeParse({...recipe, files: [{source: 'guest/a', to: ['/sbin/a'], mode: 755}]}).success, false)
  assert.equal(recipeSchema.safeParse({...recipe, files: [{source: 'guest/a', to: ['sbin/a'], mode: '0755'}]}).success, false)
  assert.equal(recipeSchema.safeParse({...recipe, files: [{source: '../etc/passwd', to: ['/a'], mode: '0644'}]}).success, false)
  assert.equal(recipeSchema.safeParse({...recipe, extra: 1}).success, false)
})

test('parseAptSources reads deb822 and one-line sources; pickDebianMirror skips security', () => {
  const deb822 = `Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main

Enabled: no
Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
`
  const list = 'deb [arch=amd64] http://old.example/debian bullseye main # comment\n# deb http://commented/debian bookworm main\n'
  const sources = parseAptSources([deb822], [list])
  assert.deepEqual(sources, [
    {types: ['deb'], uris: ['http://mirror.example/debian'], suites: ['bookworm', 'bookworm-updates']},
    {types: ['deb'], uris: ['http://deb.debian.org/debian-security'], suites: ['bookworm-security']},
    {types: ['deb'], uris: ['http://old.example/debian'], suites: ['bullseye']},
  ])
  assert.equal(pickDebianMirror(sources, 'bookworm'), 'http://mirror.example/debian')
  assert.equal(pickDebianMirror(sources, 'trixie'), 'http://mirror.example/debian')
  assert.equal(pickDebianMirror(parseAptSources([], [list]), 'bookworm'), 'http://old.example/debian')
  assert.equal(pickDebianMirror(parseAptSources([], ['deb http://security.debian.org/debian-security bookworm-security main']), 'bookworm'), undefined)
})

test('pathInRoot follows the image symlinks inside the root, never on the host', async () => {
  const root = mkdtempSync(join(tmpdir(), 'pmemlab-root-'))
  try {
    mkdirSync(join(root, 'usr', 'sbin'), {recursive: true})
    mkdirSync(join(root, 'usr', 'lib'), {recursive: true})
    symlinkSync('usr/sbin', join(root, 'sbin')) // relative, as Debian does it
    symlinkSync('/usr/lib', join(root, 'lib')) // absolute: must mean ROOT/usr/lib
    symlinkSync('../../..', join(root, 'usr', 'escape'))
    assert.equal(await pathInRoot(root, '/sbin/shutdown'), join(root, 'usr', 'sbin', 'shutdown'))
    assert.equal(await pathInRoot(root, '/lib/modules/x'), join(root, 'usr', 'lib', 'modules', 'x'))
    assert.ok(existsSync(join(root, 'usr', 'lib', 'modules')))
    assert.equal(await pathInRoot(root, '/usr/escape/etc/hostname'), join(root, 'etc', 'hostname'))
    assert.equal(await pathInRoot(root, '/../../etc/passwd'), join(root, 'etc', 'passwd'))
    assert.equal(await pathInRoot(root, '/usr/local/bin/pmemlab-check'), join(root, 'usr', 'local', 'bin', 'pmemlab-check'))
  } finally {
    rmSync(root, {recursive: true, force: true})
  }
})

test('listImages reads complete entries only; resolveImage says how to build a missing one', async () => {
  await withCache(async (cache) => {
    assert.deepEqual(await listImages(), [])
    const loaded = await loadRecipe('debian-12')
    await assert.rejects(resolveImage('debian-12'), (error: unknown) => {
      assert.ok(error instanceof PmemlabError)
      assert.equal(error.exitCode, 4)
      assert.equal(error.oneLine(), 'image "debian-12" is not built: run: pmemlab image build debian-12')
      return true
    })

    const entry = join(cache, 'images', 'debian-12', loaded.hash)
    mkdirSync(entry, {recursive: true})
    writeFileSync(join(entry, 'rootfs.img'), Buffer.alloc(4096))
    const info = {
      name: 'debian-12',
      hash: loaded.hash,
      path: '/elsewhere/rootfs.img',
      sizeBytes: 4096, // rootfs.img's size when built: an entry whose file has another size is damaged
      builtAt: '2025-01-01T00:00:00.000Z',
      recipe: loaded.path,
      packages: loaded.recipe.packages,
    }
    writeFileSync(join(entry, 'image.json'), JSON.stringify(info))
    // a half-finished build and an entry without image.json are not images
    mkdirSync(join(cache, 'images', '.build.1.debian-12.0123456789ab.XXXXXX'), {recursive: true})
    mkdirSync(join(cache, 'images', 'debian-12', 'f'.repeat(64)), {recursive: true})

    const images = await listImages()
    assert.equal(images.length, 1)
    assert.equal(images[0].path, join(entry, 'rootfs.img'))
    assert.equal(images[0].sizeBytes, 4096)
    assert.deepEqual(await resolveImage('debian-12'), images[0])
    assert.deepEqual(await buildImage('debian-12'), images[0]) // cached: no mmdebstrap run

    // A rootfs.img cut short is no longer an image: not listed, and named when asked for.
    writeFileSync(join(entry, 'rootfs.img'), Buffer.alloc(1024))
    assert.deepEqual(await listImages(), [])
    await assert.rejects(resolveImage('debian-12'), (error: unknown) => {
      assert.ok(error instanceof PmemlabError)
      assert.equal(error.exitCode, 4)
      assert.equal(
        error.oneLine(),
        `image "debian-12" is damaged: ${join(entry, 'rootfs.img')} is truncated (1024 of the 4096 bytes it had when built): run: pmemlab image build debian-12`,
      )
      return true
    })
  })
})

test('buildImage without mmdebstrap fails with exit code 3 and leaves nothing behind', async () => {
  await withCache(async (cache) => {
    const savedPath = process.env.PATH
    process.env.PATH = join(cache, 'no-such-dir')
    try {
      await assert.rejects(buildImage('debian-12', {force: true}), (error: unknown) => {
        assert.ok(error instanceof PmemlabError)
        assert.equal(error.exitCode, 3)
        assert.match(error.oneLine(), /^mmdebstrap not found: .*apt-get install mmdebstrap/)
        return true
      })
    } finally {
      process.env.PATH = savedPath
    }
    const images = join(cache, 'images')
    assert.deepEqual(existsSync(images) ? readdirSync(images) : [], [])
  })
})

import assert from 'node:assert/strict'
import {chmod, cp, mkdir, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test} from 'node:test'
import {withDir} from 'tmp-promise'
import {PmemlabError} from '../../src/core/errors.js'
import {recipeSchema, type Recipe} from '../../src/image/recipe.js'
import {resolveImage} from '../../src/image/resolve.js'
import {imageSpecText, isRecipePath, loadImage} from '../../src/image/spec.js'
import {listImages, loadRecipe, recipeOrigin} from '../../src/image/store.js'
import {mergeRecipe, parseUserRecipe, userImageName, type UserRecipe} from '../../src/image/user-recipe.js'
import {withEnv} from './env.js'

const yaml = (...lines: string[]) => `${lines.join('\n')}\n`

/** The one line of the usage error (exit 2) BODY throws. */
function usageLine(body: () => unknown): string {
  try {
    body()
  } catch (error) {
    assert.ok(error instanceof PmemlabError, String(error))
    assert.equal(error.exitCode, 2)
    return error.oneLine()
  }
  assert.fail('accepted')
}

/** A small base recipe, as recipe.ts validates pmemlab's own. */
const base: Recipe = recipeSchema.parse({
  name: 'debian-12',
  description: 'the base',
  suite: 'bookworm',
  packages: ['bash', 'apt'],
  sizeMiB: 800,
  files: [{source: 'guest/pmemlab-init', to: ['/sbin/pmemlab-init'], mode: '0755'}],
  build: {packages: ['gcc'], cflags: ['-O2'], programs: [{to: '/usr/local/bin/pmemlab-exec', sources: ['guest/pmemlab-exec.c']}]},
})

/** Runs body in a fresh directory with the cache in it (loading a recipe remembers its parse there). */
async function inDir(body: (dir: string) => Promise<void>): Promise<void> {
  await withDir(({path}) => withEnv({PMEMLAB_CACHE_DIR: join(path, 'cache')}, () => body(path)), {unsafeCleanup: true, prefix: 'pmemlab-user-image-'})
}

describe('a user recipe is read', () => {
  test('with or without a version; to may be one path; mode defaults to 0644; sources stay as written', () => {
    const recipe = parseUserRecipe(yaml('extends: debian-12', 'packages: [fio]', 'files:', '  - {source: t.sh, to: /root/t.sh}'), '/p/fio.yaml')
    assert.deepEqual(recipe, {
      file: '/p/fio.yaml',
      baseDir: '/p',
      extends: 'debian-12',
      packages: ['fio'],
      files: [{source: 't.sh', to: ['/root/t.sh'], mode: 0o644, where: '/p/fio.yaml:4:5'}],
    })
    const versioned = parseUserRecipe(yaml('version: 1', 'extends: default', 'name: lab', 'packages: [fio]'), 'r.yaml')
    assert.equal(versioned.extends, 'default')
    assert.equal(versioned.name, 'lab')
  })

  test('mistakes: one line naming the file and line, exit 2', () => {
    const line = (...lines: string[]) => usageLine(() => parseUserRecipe(yaml(...lines), 'my.yaml'))
    assert.match(line('extends: debian-12', 'pakages: [fio]'), /^my\.yaml:2:1: pakages: unknown key "pakages": did you mean "packages"\?/)
    assert.match(line('version: 2', 'extends: default', 'packages: [fio]'), /^my\.yaml:1:10: version: format 2 is not one this pmemlab reads/)
    assert.match(line('packages: [fio]'), /^my\.yaml:1:1: extends: is missing/)
    assert.match(line('extends: Debian 12', 'packages: [fio]'), /^my\.yaml:1:10: extends: write default, or an image name like debian-12/)
    assert.match(line('extends: default', 'packages: [Fio!]'), /^my\.yaml:2:12: packages\[0\]: not a Debian package name/)
    assert.match(line('extends: default', 'files: [{source: a, to: root/a}]'), /^my\.yaml:2:25: files\[0\]\.to\[0\]: image paths must be absolute/)
    assert.match(line('extends: default', 'files: [{source: a, to: /a, mode: 0999}]'), /^my\.yaml:2:35: files\[0\]\.mode: write modes as quoted octal strings/)
    assert.match(line('extends: default', 'build: {programs: [{to: /t, sources: [../t.c]}]}'), /^my\.yaml:2:39: build\.programs\[0\]\.sources\[0\]: sources are paths inside the recipe's directory/)
    assert.match(line('extends: default'), /^my\.yaml:1:1: adds nothing to its base image: list packages, files or build programs, or use --image default/)
    assert.match(line('- fio'), /^my\.yaml:1:1: is not an image recipe/)
    assert.match(line('extends: [default'), /^my\.yaml:\d+:\d+: /)
  })

  test('its name: name:, else its file name without .yaml', () => {
    assert.equal(userImageName({file: '/p/fio.yaml'}), 'fio')
    assert.equal(userImageName({file: '/p/My Image.yml'}), 'my-image')
    assert.equal(userImageName({file: '/p/x.yaml', name: 'lab'}), 'lab')
  })

  test('a name with a slash or ending in .yaml is a recipe file; anything else names an image', () => {
    assert.equal(isRecipePath('./fio.yaml'), true)
    assert.equal(isRecipePath('images/fio'), true)
    assert.equal(isRecipePath('fio.yml'), true)
    assert.equal(isRecipePath('debian-12'), false)
  })
})

describe('a user recipe is merged onto its base', () => {
  const user = (over: Partial<UserRecipe>): UserRecipe => ({file: 'u.yaml', baseDir: '/proj', extends: 'debian-12', packages: [], files: [], ...over})

  test('packages joined in order without repeats, files and programs after the base\'s, user paths resolved', () => {
    const merged = mergeRecipe(
      base,
      user({
        packages: ['fio', 'bash', 'jq'],
        files: [{source: 'sub/t.sh', to: ['/root/t.sh'], mode: 0o755, where: 'u.yaml:3:5'}, {source: '/abs/x', to: ['/etc/x'], mode: 0o644, where: 'u.yaml:4:5'}],
        build: {packages: ['libaio-dev', 'gcc'], programs: [{to: '/usr/local/bin/t', sources: ['src/t.c', 'src/t.h'], libs: ['aio'], static: false, where: 'u.yaml:6:5'}]},
      }),
      'fio',
    )
    assert.equal(merged.name, 'fio')
    assert.equal(merged.suite, 'bookworm')
    assert.deepEqual(merged.packages, ['bash', 'apt', 'fio', 'jq'])
    assert.deepEqual(merged.files, [
      base.files[0],
      {source: '/proj/sub/t.sh', to: ['/root/t.sh'], mode: 0o755},
      {source: '/abs/x', to: ['/etc/x'], mode: 0o644},
    ])
    assert.deepEqual(merged.build?.packages, ['gcc', 'libaio-dev'])
    assert.deepEqual(merged.build?.cflags, ['-O2'])
    assert.deepEqual(merged.build?.programs, [base.build!.programs[0], {to: '/usr/local/bin/t', sources: ['user/src/t.c', 'user/src/t.h'], libs: ['aio'], static: false}])
    assert.deepEqual(base.packages, ['bash', 'apt'], 'the base is not changed')
  })

  test('a guest path the base fills, or the user names twice, is refused at the user\'s line', () => {
    const file = (to: string, where: string) => ({source: 'a', to: [to], mode: 0o644, where})
    assert.equal(
      usageLine(() => mergeRecipe(base, user({files: [file('/sbin/pmemlab-init', 'u.yaml:3:5')]}), 'u')),
      'u.yaml:3:5: /sbin/pmemlab-init is already the debian-12 image\'s guest/pmemlab-init: install it at another path',
    )
    assert.match(usageLine(() => mergeRecipe(base, user({files: [file('/a', 'u.yaml:3:5'), file('/a', 'u.yaml:4:5')]}), 'u')), /^u\.yaml:4:5: \/a is already the file at u\.yaml:3:5/)
    const program = {to: '/usr/local/bin/pmemlab-exec', sources: ['x.c'], libs: [], static: false, where: 'u.yaml:5:5'}
    assert.match(usageLine(() => mergeRecipe(base, user({build: {packages: [], programs: [program]}}), 'u')), /^u\.yaml:5:5: \/usr\/local\/bin\/pmemlab-exec is already the debian-12 image's program/)
  })
})

describe('a user image is cached by its content', () => {
  const recipeText = yaml('extends: debian-12', 'packages: [fio]', 'files:', '  - source: files/trigger.sh', '    to: /root/trigger.sh', '    mode: "0755"')

  test('the same recipe is the same image; re-indented too; a copied file\'s bytes or mode make a new one', async () => {
    await inDir(async (dir) => {
      const project = join(dir, 'project')
      await mkdir(join(project, 'files'), {recursive: true})
      await writeFile(join(project, 'files', 'trigger.sh'), '#!/bin/sh\necho one\n')
      await writeFile(join(project, 'fio.yaml'), recipeText)
      const spec = join(project, 'fio.yaml')
      const first = await loadImage(spec)
      assert.equal(first.name, 'fio')
      assert.equal(first.extends, 'debian-12')
      assert.equal(first.path, spec)
      assert.ok(first.recipe.packages.includes('fio') && first.recipe.packages.includes('qemu-guest-agent'))
      assert.deepEqual(first.files.at(-1)?.content.toString(), '#!/bin/sh\necho one\n')
      const builtIn = await loadRecipe('debian-12')
      assert.notEqual(first.hash, builtIn.hash)
      assert.equal((await loadImage(spec)).hash, first.hash, 'the same recipe twice')

      await writeFile(spec, `# my fio image\n${yaml('extends:   debian-12', 'packages:', '  - fio', 'files: [{source: files/trigger.sh, to: [/root/trigger.sh], mode: "755"}]')}`)
      assert.equal((await loadImage(spec)).hash, first.hash, 're-indented, commented, flow style, mode written 755')

      const moved = join(dir, 'elsewhere')
      await cp(project, moved, {recursive: true})
      assert.equal((await loadImage(join(moved, 'fio.yaml'))).hash, first.hash, 'the project checked out elsewhere')

      await writeFile(join(project, 'files', 'trigger.sh'), '#!/bin/sh\necho two\n')
      const changed = await loadImage(spec)
      assert.notEqual(changed.hash, first.hash, 'a copied file changed')
      await writeFile(spec, recipeText.replace('"0755"', '"0700"'))
      assert.notEqual((await loadImage(spec)).hash, changed.hash, 'its mode changed')
      await writeFile(spec, recipeText.replace('[fio]', '[fio, jq]'))
      assert.notEqual((await loadImage(spec)).hash, changed.hash, 'a package more')
    })
  })

  test('a program\'s sources are part of the image, staged apart from pmemlab\'s', async () => {
    await inDir(async (dir) => {
      await mkdir(join(dir, 'src'))
      await writeFile(join(dir, 'src', 't.c'), 'int main(void) { return 0; }\n')
      const spec = join(dir, 'prog.yaml')
      await writeFile(spec, yaml('extends: default', 'build:', '  programs: [{to: /usr/local/bin/t, sources: [src/t.c]}]'))
      const first = await loadImage(spec)
      assert.deepEqual(first.buildSources.at(-1), {source: 'user/src/t.c', content: Buffer.from('int main(void) { return 0; }\n')})
      assert.equal(first.recipe.build?.programs.at(-1)?.sources[0], 'user/src/t.c')
      await writeFile(join(dir, 'src', 't.c'), 'int main(void) { return 1; }\n')
      assert.notEqual((await loadImage(spec)).hash, first.hash)
    })
  })

  test('a missing recipe, file or base, or pmemlab\'s own name: one line, exit 2, naming it', async () => {
    await inDir(async (dir) => {
      const rejects = (spec: string, line: RegExp) =>
        assert.rejects(loadImage(spec), (error: unknown) => {
          assert.ok(error instanceof PmemlabError && error.exitCode === 2, String(error))
          assert.match(error.oneLine(), line)
          return true
        })
      await rejects(join(dir, 'nope.yaml'), new RegExp(`^cannot read image recipe ${join(dir, 'nope.yaml')}: no such file: give the path of a recipe`))
      await rejects(dir + '/', /: a directory, not a recipe file/)
      await writeFile(join(dir, 'a.yaml'), yaml('extends: default', 'files:', '  - {source: gone.sh, to: /root/gone.sh}'))
      await rejects(join(dir, 'a.yaml'), /a\.yaml:3:5: cannot read gone\.sh \(.*gone\.sh\): no such file: sources are relative to /)
      await writeFile(join(dir, 'b.yaml'), yaml('extends: debian-99', 'packages: [fio]'))
      await rejects(join(dir, 'b.yaml'), /b\.yaml: extends: unknown image "debian-99": extend one of pmemlab's images: default, debian-12/)
      await writeFile(join(dir, 'debian-12.yaml'), yaml('extends: default', 'packages: [fio]'))
      await rejects(join(dir, 'debian-12.yaml'), /debian-12\.yaml: the image name "debian-12" is pmemlab's own: set name: to another name/)
    })
  })

  test('resolving a user image that is not built says how to build it; a built one is listed with its recipe', async () => {
    await inDir(async (dir) => {
      await writeFile(join(dir, 'fio.yaml'), yaml('extends: default', 'packages: [fio]'))
      const spec = join(dir, 'fio.yaml')
      await assert.rejects(resolveImage(spec), (error: unknown) => {
        assert.ok(error instanceof PmemlabError && error.exitCode === 4)
        assert.equal(error.oneLine(), `image "fio" is not built: run: pmemlab image build ${spec}`)
        return true
      })
      const planned = await resolveImage(spec, {planned: true})
      assert.equal(planned.extends, 'debian-12')
      assert.equal(recipeOrigin(planned), `${spec} (extends debian-12)`)
      assert.equal(recipeOrigin({recipe: '/pkg/images/debian-12/recipe.yaml'}), 'pmemlab')
      // A finished entry, as build.ts leaves one: found by its content, and listed.
      const loaded = await loadImage(spec)
      const entry = join(dir, 'cache', 'images', 'fio', loaded.hash)
      await mkdir(entry, {recursive: true})
      await writeFile(join(entry, 'rootfs.img'), Buffer.alloc(4096))
      await chmod(join(entry, 'rootfs.img'), 0o644)
      await writeFile(join(entry, 'image.json'), JSON.stringify({...planned, sizeBytes: 4096, builtAt: '2026-01-01T00:00:00.000Z'}))
      const found = await resolveImage(spec)
      assert.equal(found.hash, loaded.hash)
      const listed = await listImages()
      assert.deepEqual(listed.map((image) => [image.name, recipeOrigin(image)]), [['fio', `${spec} (extends debian-12)`]])
      assert.equal(imageSpecText({kind: 'inline', recipe: parseUserRecipe('extends: default\npackages: [fio]\n', 'r.yaml'), path: 'r.yaml (image:)'}), 'r.yaml (image:)')
    })
  })
})

import assert from 'node:assert/strict'
import {readdir, readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test} from 'node:test'
import {packageRoot} from '../../src/core/paths.js'
import {looksLikePatch} from '../../src/kernel/patch.js'
import {parseMatrix} from '../../src/matrix/schema.js'
import {preparationCommands} from '../../src/repro/prepare.js'
import {parseRepro} from '../../src/repro/schema.js'
import {usageLine} from './usage.js'

/** A file's lines joined, so that line numbers in the expectations can be counted. */
const file = (...lines: string[]) => `${lines.join('\n')}\n`

/** The smallest file there is: a script and what counts. */
const TAIL = ['run: ./trigger', 'expect: {exit: nonzero}']

/** The one line a bad file gets (a usage error, exit 2). */
const errorOf = (text: string, name = 'r.yaml'): string => usageLine(() => parseRepro(text, name), text)

describe('a good reproducer file', () => {
  test('parses into the plan, with every path resolved against the file\'s directory', () => {
    const plan = parseRepro(
      file(
        'version: 1',
        'kernel: ./bzImage',
        'lab:',
        '  memmap: [128M@4G]',
        '  nvdimm: [512M, 1G:disks/nv1.img]',
        '  virtio-pmem: [256M:/var/tmp/v.img]',
        '  mem: 2G',
        '  cpus: 4',
        '  machine: q35',
        '  append: [panic_on_warn=1, loglevel=8]',
        'image:',
        '  extends: default',
        '  packages: [fio, strace]',
        '  files:',
        '    - {source: trigger.sh, to: /root/trigger.sh, mode: "0755"}',
        '    - {source: data/seed, to: [/root/seed, /tmp/seed]}',
        'prepare:',
        '  nvdimm0: {mode: fsdax, mkfs: xfs, mount: /mnt/pmem}',
        '  memmap0: {mode: raw, mkfs: ext4}',
        '  nvdimm1: {mode: devdax}',
        '  virtio-pmem0: {mode: raw}',
        'run:',
        '  script: |',
        '    set -e',
        '    /root/trigger.sh /mnt/pmem',
        '  runs: 10',
        'expect:',
        '  exit: 1',
        '  must: [warning, /dax_iomap_\\w+/i]',
        '  must_not: [panic, hang]',
        '  timeout: 600',
      ),
      'bugs/dax/r.yaml',
    )
    const dir = join(process.cwd(), 'bugs', 'dax')
    assert.equal(plan.baseDir, dir)
    assert.deepEqual(plan.kernel, {kind: 'path', spec: join(dir, 'bzImage'), where: 'bugs/dax/r.yaml:2:9'})
    assert.deepEqual(plan.lab, {
      memmap: ['128M@4G'],
      nvdimm: ['512M', `1G:${join(dir, 'disks', 'nv1.img')}`],
      virtioPmem: ['256M:/var/tmp/v.img'],
      mem: '2G',
      cpus: 4,
      machine: 'q35',
      append: ['panic_on_warn=1', 'loglevel=8'],
    })
    assert.deepEqual(plan.image, {
      kind: 'extends',
      base: 'default',
      packages: ['fio', 'strace'],
      files: [
        {source: join(dir, 'trigger.sh'), to: ['/root/trigger.sh'], mode: 0o755},
        {source: join(dir, 'data', 'seed'), to: ['/root/seed', '/tmp/seed'], mode: 0o644},
      ],
      where: 'bugs/dax/r.yaml:12:3',
    })
    assert.deepEqual(
      plan.prepare.map(({where, ...p}) => [where, p]),
      [
        ['bugs/dax/r.yaml:18:12', {device: 'nvdimm0', kind: 'nvdimm', index: 0, mode: 'fsdax', mkfs: 'xfs', mount: '/mnt/pmem'}],
        ['bugs/dax/r.yaml:19:12', {device: 'memmap0', kind: 'memmap', index: 0, mode: 'raw', mkfs: 'ext4', mount: '/mnt/pmemlab/memmap0-ext4'}],
        ['bugs/dax/r.yaml:20:12', {device: 'nvdimm1', kind: 'nvdimm', index: 1, mode: 'devdax', mkfs: 'none'}],
        ['bugs/dax/r.yaml:21:17', {device: 'virtio-pmem0', kind: 'virtio-pmem', index: 0, mode: 'raw', mkfs: 'none'}],
      ],
    )
    assert.deepEqual(plan.run, {script: 'set -e\n/root/trigger.sh /mnt/pmem\n', runs: 10, where: 'bugs/dax/r.yaml:23:3'})
    assert.deepEqual(plan.expect, {
      exit: 1,
      must: [
        {kind: 'class', class: 'warning', text: 'warning'},
        {kind: 'regex', source: 'dax_iomap_\\w+', flags: 'i', text: '/dax_iomap_\\w+/i'},
      ],
      mustNot: [
        {kind: 'class', class: 'panic', text: 'panic'},
        {kind: 'class', class: 'hang', text: 'hang'},
      ],
      timeoutSec: 600,
    })
  })

  test('the devices are prepared by the suite\'s own commands, in the file\'s order; a raw device without a filesystem is left alone', () => {
    const plan = parseRepro(
      file('version: 1', 'lab: {memmap: [256M], nvdimm: [512M, 512M], virtio-pmem: [256M]}', 'prepare:', '  nvdimm1: {mkfs: ext4}', '  memmap0: {mode: raw, mkfs: xfs, mount: /mnt/x}', '  nvdimm0: {mode: devdax}', '  virtio-pmem0: {mode: raw}', ...TAIL),
      'r.yaml',
    )
    assert.deepEqual(preparationCommands(plan.prepare), [
      {device: 'nvdimm1', argv: ['pmemlab-suite', 'prepare', 'nvdimm', '1', 'ext4', '/mnt/pmemlab/nvdimm1-ext4']},
      {device: 'memmap0', argv: ['pmemlab-suite', 'prepare', '--keep-raw', 'memmap', '0', 'xfs', '/mnt/x']},
      {device: 'nvdimm0', argv: ['pmemlab-suite', 'devdax', 'nvdimm', '0']},
    ])
  })

  test('defaults: the kernel and image of the command line, up\'s topology, runs from the command line, a 300 s timeout', () => {
    const plan = parseRepro(file('version: 1', 'run: echo hi', 'expect: {must: oops}'), 'r.yaml')
    assert.equal(plan.kernel, undefined)
    assert.equal(plan.image, undefined)
    assert.deepEqual(plan.lab, {memmap: ['256M'], nvdimm: ['512M'], virtioPmem: [], mem: '1G', cpus: 2, machine: 'pc', append: []})
    assert.deepEqual(plan.prepare, [])
    assert.deepEqual(plan.run, {script: 'echo hi', runs: undefined, where: 'r.yaml:2:6'})
    assert.deepEqual(plan.expect, {exit: undefined, must: [{kind: 'class', class: 'oops', text: 'oops'}], mustNot: [], timeoutSec: 300})
    // Empty keys are their defaults too; the default topology has the devices prepare may name.
    const empty = parseRepro(file('version: 1', 'lab:', 'prepare:', '  nvdimm0:', '    mkfs: ext4', ...TAIL), 'r.yaml')
    assert.deepEqual(empty.prepare.map((p) => [p.device, p.mode, p.mkfs]), [['nvdimm0', 'fsdax', 'ext4']])
    assert.deepEqual(parseRepro(file('version: 1', 'lab: {append: nokaslr}', ...TAIL), 'r.yaml').lab.append, ['nokaslr'], 'one kernel argument without a list')
  })

  test('a kernel is a --kernel spec, or a recipe pmemlab builds (set as a list or a mapping, patches)', () => {
    const kernel = (...lines: string[]) => parseRepro(file('version: 1', ...lines, ...TAIL), '/work/r.yaml').kernel
    assert.deepEqual(kernel('kernel: debian:6.12/sid'), {kind: 'debian', spec: 'debian:6.12/sid', where: '/work/r.yaml:2:9'})
    assert.deepEqual(kernel('kernel: 6.10'), {kind: 'version', spec: '6.10', where: '/work/r.yaml:2:9'}, '6.10 stays 6.10')
    assert.deepEqual(kernel('kernel: {spec: distro}'), {kind: 'distro', spec: 'distro', where: '/work/r.yaml:2:9'})
    assert.deepEqual(
      kernel('kernel:', '  version: 6.12', '  from: debian', '  configs: [kasan.config]', '  set: {CONFIG_KASAN: y, CONFIG_NR_CPUS: 4, CONFIG_LOCALVERSION: \'"-repro"\'}', '  patches: [fix.patch, /abs/other.patch]'),
      {
        kind: 'build',
        build: {
          from: 'debian',
          version: '6.12',
          source: undefined,
          tree: undefined,
          ref: undefined,
          configs: ['/work/kasan.config'],
          set: ['CONFIG_KASAN=y', 'CONFIG_NR_CPUS=4', 'CONFIG_LOCALVERSION="-repro"'],
          patches: ['/work/fix.patch', '/abs/other.patch'],
          base: 'tinyconfig',
          debug: false,
        },
        where: '/work/r.yaml:3:3',
      },
    )
    const tree = kernel('kernel: {tree: ../linux, ref: v6.9, set: [CONFIG_KASAN=y], debug: true}')
    assert.ok(tree?.kind === 'build')
    assert.deepEqual([tree.build.tree, tree.build.ref, tree.build.set, tree.build.debug, tree.build.patches], ['/linux', 'v6.9', ['CONFIG_KASAN=y'], true, undefined])
  })

  test('the set mapping works in a matrix too: the recipe is one shape', () => {
    const plan = parseMatrix(file('version: 1', 'kernels:', '  - build: {version: 6.12, set: {CONFIG_KASAN: y}}', 'topologies:', '  pm: {memmap: [256M]}'), 'm.yaml')
    assert.deepEqual(plan.kernels[0].build?.set, ['CONFIG_KASAN=y'])
  })

  test('an image is a name as --image takes it, a recipe file, or the default with more packages and files', () => {
    const image = (line: string) => parseRepro(file('version: 1', line, ...TAIL), '/work/r.yaml').image
    assert.deepEqual(image('image: debian-12'), {kind: 'name', name: 'debian-12', where: '/work/r.yaml:2:8'})
    assert.deepEqual(image('image: images/mine/recipe.yaml'), {kind: 'recipe', path: '/work/images/mine/recipe.yaml', where: '/work/r.yaml:2:8'})
    assert.deepEqual(image('image: {recipe: recipe.yaml}'), {kind: 'recipe', path: '/work/recipe.yaml', where: '/work/r.yaml:2:8'})
    assert.deepEqual(image('image: {packages: [fio]}'), {kind: 'extends', base: 'default', packages: ['fio'], files: [], where: '/work/r.yaml:2:8'})
  })
})

describe('a bad reproducer file is one line naming FILE:LINE:COLUMN', () => {
  test('YAML, the document and its version', () => {
    assert.match(errorOf(file('version: 1', 'run: [a', ...TAIL)), /^r\.yaml:3:1: .*fix the YAML syntax there$/)
    assert.match(errorOf('- a list\n'), /^r\.yaml:1:1: is not a reproducer file/)
    assert.match(errorOf(file(...TAIL)), /^r\.yaml:1:1: has no version: add version: 1/)
    assert.match(errorOf(file('version: 2', ...TAIL)), /^r\.yaml:1:10: version: format 2 is not one this pmemlab reads/)
    assert.match(errorOf(file('version: 1', 'expect: {exit: 1}')), /^r\.yaml:1:1: run: is missing/)
  })

  test('unknown keys, where they are written, with the nearest known one', () => {
    assert.match(errorOf(file('version: 1', ...TAIL, 'expcet: {}')), /^r\.yaml:4:1: expcet: unknown key "expcet": did you mean "expect"\?/)
    assert.match(errorOf(file('version: 1', 'lab:', '  nvdim: [1G]', ...TAIL)), /^r\.yaml:3:3: lab\.nvdim: unknown key "nvdim": did you mean "nvdimm"\?/)
    assert.match(errorOf(file('version: 1', 'kernel: {version: 6.1, patch: [a]}', ...TAIL)), /^r\.yaml:2:24: kernel\.patch: unknown key "patch": did you mean "patches"\?/)
    assert.match(errorOf(file('version: 1', 'image:', '  files:', '    - {source: a, to: /a, mod: "0755"}', ...TAIL)), /^r\.yaml:4:27: image\.files\[0\]\.mod: unknown key "mod": did you mean "mode"\?/)
    assert.match(errorOf(file('version: 1', 'prepare:', '  nvdimm0: {mkfs: ext4, mnt: /x}', ...TAIL)), /^r\.yaml:3:25: prepare\.nvdimm0\.mnt: unknown key "mnt": did you mean "mount"\?/)
    assert.match(errorOf(file('version: 1', 'run: {script: x, run: 3}', 'expect: {exit: 0}')), /^r\.yaml:2:18: run\.run: unknown key "run": did you mean "runs"\?/)
    assert.match(errorOf(file('version: 1', 'run: x', 'expect: {exit: 0, must_nt: [oops]}')), /^r\.yaml:3:19: expect\.must_nt: unknown key "must_nt": did you mean "must_not"\?/)
  })

  test('the kernel', () => {
    assert.match(errorOf(file('version: 1', 'kernel: debian:latest', ...TAIL)), /^r\.yaml:2:9: kernel: "debian:latest" is not a kernel spec: write distro, latest/)
    assert.match(errorOf(file('version: 1', 'kernel: {spec: bzImage}', ...TAIL)), /^r\.yaml:2:16: kernel\.spec: "bzImage" is not a kernel spec/)
    assert.match(errorOf(file('version: 1', 'kernel: {spec: distro, configs: [a]}', ...TAIL)), /^r\.yaml:2:24: kernel\.configs: a spec goes alone, without configs/)
    assert.match(errorOf(file('version: 1', 'kernel:', '  version: 6.1', '  tree: ../linux', ...TAIL)), /^r\.yaml:3:3: kernel: has version and tree: give exactly one/)
    assert.match(errorOf(file('version: 1', 'kernel:', '  version: 6.1', '  set:', '    CONFIG_KASAN: y', '    CONFIG_KCSAN: true', ...TAIL)), /^r\.yaml:6:5: kernel\.set\.CONFIG_KCSAN: "CONFIG_KCSAN=true" is not an option setting: write CONFIG_NAME: VALUE/)
    assert.match(errorOf(file('version: 1', 'kernel:', '  version: 6.1', '  set: [CONFIG_KASAN=y, KASAN y]', ...TAIL)), /^r\.yaml:4:25: kernel\.set\[1\]: "KASAN y" is not an option setting: write CONFIG_NAME=VALUE/)
    assert.match(errorOf(file('version: 1', 'kernel: {version: 6.x}', ...TAIL)), /^r\.yaml:2:19: kernel\.version: .*write a version like 6\.1/)
  })

  test('the lab', () => {
    assert.match(errorOf(file('version: 1', 'lab:', '  nvdimm: [512M, 1Q]', ...TAIL)), /^r\.yaml:3:18: lab\.nvdimm\[1\]: invalid nvdimm size "1Q"/)
    assert.match(errorOf(file('version: 1', 'lab:', '  memmap: [256M@1G@2G]', ...TAIL)), /^r\.yaml:3:12: lab\.memmap\[0\]: invalid --memmap "256M@1G@2G"/)
    assert.match(errorOf(file('version: 1', 'lab:', '  mem: lots', ...TAIL)), /^r\.yaml:3:8: lab\.mem: invalid mem "lots"/)
    assert.match(errorOf(file('version: 1', 'lab:', '  cpus: 0', ...TAIL)), /^r\.yaml:3:9: lab\.cpus: must be at least 1/)
    assert.match(errorOf(file('version: 1', 'lab:', '  machine: virt', ...TAIL)), /^r\.yaml:3:12: lab\.machine: "virt" is not allowed: write one of pc, q35/)
  })

  test('the image', () => {
    assert.match(errorOf(file('version: 1', 'image: {packages: [Fio]}', ...TAIL)), /^r\.yaml:2:20: image\.packages\[0\]: not a Debian package name/)
    assert.match(errorOf(file('version: 1', 'image: {recipe: r.yaml, packages: [fio]}', ...TAIL)), /^r\.yaml:2:25: image\.packages: a recipe goes alone, without packages/)
    assert.match(errorOf(file('version: 1', 'image: Debian 12', ...TAIL)), /^r\.yaml:2:8: image: "Debian 12" names no image/)
    assert.match(errorOf(file('version: 1', 'image:', '  files: [{source: a, to: root/a}]', ...TAIL)), /^r\.yaml:3:27: image\.files\[0\]\.to\[0\]: image paths must be absolute/)
  })

  test('prepare: device names, modes, filesystems and mounts', () => {
    const lab = 'lab: {memmap: [256M], nvdimm: [512M]}'
    const prep = (...lines: string[]) => errorOf(file('version: 1', lab, 'prepare:', ...lines, ...TAIL))
    assert.match(prep('  pmem0: {mkfs: ext4}'), /^r\.yaml:4:3: prepare\.pmem0: "pmem0" names no device: write a kind and an index, like memmap0/)
    assert.match(prep('  nvdimm1: {mkfs: ext4}'), /^r\.yaml:4:3: prepare\.nvdimm1: the lab has 1 nvdimm \(nvdimm0\): name a device of the lab/)
    assert.match(prep('  virtio-pmem0: {mkfs: ext4}'), /^r\.yaml:4:3: prepare\.virtio-pmem0: the lab has no virtio-pmem/)
    assert.match(prep('  nvdimm0: {mode: sector}'), /^r\.yaml:4:19: prepare\.nvdimm0\.mode: sector \(BTT\) namespaces are not among what pmemlab-suite prepares/)
    assert.match(prep('  nvdimm0: {mode: fsdax}'), /^r\.yaml:4:12: prepare\.nvdimm0: an fsdax namespace is prepared with a filesystem on it: write mkfs: ext4 or xfs/)
    assert.match(prep('  nvdimm0: {mode: fsdax, mkfs: none}'), /^r\.yaml:4:32: prepare\.nvdimm0\.mkfs: an fsdax namespace is prepared with a filesystem/)
    assert.match(prep('  nvdimm0: {mode: devdax, mkfs: ext4}'), /^r\.yaml:4:33: prepare\.nvdimm0\.mkfs: a devdax namespace has no block device/)
    assert.match(prep('  nvdimm0: {mode: devdax, mount: /mnt/x}'), /^r\.yaml:4:34: prepare\.nvdimm0\.mount: a devdax namespace is not mounted/)
    assert.match(prep('  memmap0: {mode: raw, mount: /mnt/x}'), /^r\.yaml:4:31: prepare\.memmap0\.mount: nothing to mount without a filesystem/)
    assert.match(prep('  memmap0: {mkfs: btrfs}'), /^r\.yaml:4:19: prepare\.memmap0\.mkfs: "btrfs" is not allowed: write one of ext4, xfs, none/)
    assert.match(prep('  memmap0: {mkfs: ext4, mount: mnt/x}'), /^r\.yaml:4:32: prepare\.memmap0\.mount: image paths must be absolute/)
    assert.match(prep('  memmap0: {mkfs: ext4, mount: /mnt/x}', '  nvdimm0: {mkfs: xfs, mount: /mnt/x}'), /^r\.yaml:5:31: prepare\.nvdimm0\.mount: \/mnt\/x is where memmap0 is mounted too/)
  })

  test('run', () => {
    assert.match(errorOf(file('version: 1', 'run: {runs: 3}', 'expect: {exit: 0}')), /^r\.yaml:2:6: run\.script: is missing/)
    assert.match(errorOf(file('version: 1', 'run: "  "', 'expect: {exit: 0}')), /^r\.yaml:2:6: run\.script: is empty/)
    assert.match(errorOf(file('version: 1', 'run: {script: x, runs: 0}', 'expect: {exit: 0}')), /^r\.yaml:2:24: run\.runs: must be at least 1/)
    assert.match(errorOf(file('version: 1', 'run: {script: x, runs: 2.5}', 'expect: {exit: 0}')), /^r\.yaml:2:24: run\.runs: expected a whole number, found a fraction/)
  })

  test('expect', () => {
    const exp = (line: string) => errorOf(file('version: 1', 'run: x', line))
    assert.match(exp('expect: {timeout: 10}'), /^r\.yaml:3:9: expect: names nothing that counts as reproduced: give exit/)
    assert.match(exp('expect: {must_not: [panic]}'), /^r\.yaml:3:9: expect: names nothing that counts as reproduced/)
    assert.match(exp('expect: {must: [warnings]}'), /^r\.yaml:3:17: expect\.must\[0\]: "warnings" is neither a class nor a regex: did you mean "warning"\? write one of oops, bug, warning, lockdep, panic, hang/)
    assert.match(errorOf(file('version: 1', 'run: x', 'expect:', '  must:', '    - /sysrq: Show/')), /^r\.yaml:5:7: expect\.must\[0\]: is a mapping, not a class or a regex: quote a regex that holds ": "/)
    assert.match(exp('expect: {must: [oops, null]}'), /^r\.yaml:3:23: expect\.must\[1\]: is not a class or a regex/)
    assert.match(exp('expect: {must: "XFS.*corrupt"}'), /^r\.yaml:3:16: expect\.must: "XFS\.\*corrupt" is neither a class nor a regex/)
    assert.match(exp('expect: {must: [oops, "/dax_(/"]}'), /^r\.yaml:3:23: expect\.must\[1\]: \/dax_\(\/ is not a regex: /)
    assert.match(exp('expect: {must: [/dax/g]}'), /^r\.yaml:3:17: expect\.must\[0\]: \/dax\/g: the flag g is not taken/)
    assert.match(exp('expect: {must: [//]}'), /^r\.yaml:3:17: expect\.must\[0\]: \/\/ is empty and would match any line/)
    assert.match(exp('expect: {exit: 256}'), /^r\.yaml:3:16: expect\.exit: must be at most 255/)
    assert.match(exp('expect: {exit: failure}'), /^r\.yaml:3:16: expect\.exit: write nonzero or a status from 0 to 255/)
    assert.match(exp('expect: {exit: 1, must: [hang]}'), /^r\.yaml:3:10: expect\.exit: exit goes not with hang/)
    assert.match(exp('expect: {must: [oops], must_not: [panic, oops]}'), /^r\.yaml:3:42: expect\.must_not\[1\]: oops is in must too/)
    assert.match(exp('expect: {must: [oops, bug, oops]}'), /^r\.yaml:3:28: expect\.must\[2\]: oops is listed twice/)
    assert.match(exp('expect: {exit: 0, timeout: 0}'), /^r\.yaml:3:28: expect\.timeout: must be more than 0/)
  })
})

test('every file under examples/repro/ parses, and the WARNING example says what it expects', async () => {
  const dir = join(packageRoot, 'examples', 'repro')
  const names = (await readdir(dir)).filter((n) => n.endsWith('.yaml'))
  assert.ok(names.includes('warning-sysrq.yaml'), names.join(', '))
  for (const name of names) parseRepro(await readFile(join(dir, name), 'utf8'), `examples/repro/${name}`)
  const plan = parseRepro(await readFile(join(dir, 'warning-sysrq.yaml'), 'utf8'), 'examples/repro/warning-sysrq.yaml')
  assert.deepEqual(plan.prepare.map((p) => [p.device, p.mode, p.mkfs, p.mount]), [['nvdimm0', 'fsdax', 'ext4', '/mnt/pmem']])
  assert.deepEqual(plan.expect.must.map((p) => p.text), ['warning', '/sysrq ?: Show Blocked State/i'])
  assert.equal(plan.expect.exit, 0)
  assert.match(plan.run.script, /\/dev\/kmsg/)
})

test('the fsdax unshare example builds Debian 6.12 with its revert, and reproduces on a corrupt read-back', async () => {
  const dir = join(packageRoot, 'examples', 'repro')
  const text = await readFile(join(dir, 'fsdax-unshare-partial-block.yaml'), 'utf8')
  const plan = parseRepro(text, join(dir, 'fsdax-unshare-partial-block.yaml'))
  assert.equal(plan.kernel?.kind, 'build')
  const build = plan.kernel?.kind === 'build' ? plan.kernel.build : undefined
  assert.deepEqual([build?.from, build?.version], ['debian', '6.12'])
  assert.deepEqual(build?.patches, [join(dir, 'fsdax-unshare-partial-block.patch')])
  assert.deepEqual(plan.prepare.map((p) => [p.device, p.mode, p.mkfs, p.mount]), [['nvdimm0', 'fsdax', 'xfs', '/mnt/pmem']])
  assert.deepEqual([plan.expect.exit, plan.expect.must, plan.expect.mustNot.map((p) => p.text)], [1, [], ['oops', 'bug', 'panic']])
  // The suite's mkfs.xfs has reflink=0: the script remakes the filesystem with reflink before the DAX check.
  const mkfs = plan.run.script.search(/^(?:\w+=\S+ )*mkfs\.xfs .*-m reflink=1 /m)
  assert.ok(mkfs >= 0 && mkfs < plan.run.script.indexOf('pmemlab-dax-check --expect dax'), plan.run.script)
  // The patch is a unified diff of fs/dax.c alone, and names the commit it reverts as the file does.
  const patch = await readFile(build!.patches![0], 'utf8')
  assert.ok(looksLikePatch(patch))
  assert.deepEqual(patch.match(/^(?:---|\+\+\+) \S+/gm), ['--- a/fs/dax.c', '+++ b/fs/dax.c'])
  const commit = '50793801fc7f6d08def48754fb0f0706b0cfc394'
  assert.ok(patch.includes(commit) && text.includes(commit))
})

test("README's example of a reproducer file parses as it says", async () => {
  const readme = await readFile(join(packageRoot, 'README.md'), 'utf8')
  const section = readme.slice(readme.indexOf('### Reproducers'))
  const example = /```yaml\n([\s\S]*?)```/.exec(section)?.[1]
  assert.ok(example, 'a yaml block under ### Reproducers')
  const plan = parseRepro(example, 'README.md')
  assert.deepEqual(plan.kernel, {kind: 'debian', spec: 'debian:6.12', where: 'README.md:2:9'})
  assert.deepEqual(plan.expect.must.map((p) => p.text), ['warning', '/dax_iomap_\\w+/'])
  assert.equal(plan.run.runs, 10)
})

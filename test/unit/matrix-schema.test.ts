import assert from 'node:assert/strict'
import {join} from 'node:path'
import {test} from 'node:test'
import {classifySpec} from '../../src/kernel/spec.js'
import {kernelLabel, safeName} from '../../src/matrix/kernels.js'
import {parseMatrix, planPath} from '../../src/matrix/schema.js'
import {usageLine} from './usage.js'

/** A file's lines joined, so that line numbers in the expectations can be counted. */
const file = (...lines: string[]) => `${lines.join('\n')}\n`

const HEAD = ['version: 1', 'kernels: [distro]', 'topologies:', '  pm: {memmap: [256M]}']

/** The one line a bad file gets (a usage error, exit 2). */
const errorOf = (text: string, name = 'm.yaml'): string => usageLine(() => parseMatrix(text, name), text)

test('a full matrix file parses into the plan, with names, kinds and versions of its kernels', () => {
  const plan = parseMatrix(
    file(
      'version: 1',
      'name: pmem-kernels',
      'kernels:',
      '  - debian:6.12',
      '  - 6.10                 # YAML would read this as the number 6.1',
      '  - name: five-ten',
      '    build: {version: 5.10, from: debian, configs: [my.config], set: [CONFIG_KASAN=y]}',
      '  - build: {source: /src/linux-6.1.5.tar.xz}',
      '  - {build: {tree: ../linux, ref: v6.9}}',
      '  - ./bzImage',
      '  - 0123456789abcdef',
      '  - distro',
      'topologies:',
      '  memmap: {memmap: [256M@4G]}',
      '  all:',
      '    memmap: [128M]',
      '    nvdimm: [512M, 1G]',
      '    virtio-pmem: [256M]',
      '    mem: 2G',
      'filesystems: [xfs]',
      'suites: [builtin, {dir: ./suites/mine, name: mine}, ../other suite]',
      'exclude:',
      '  - {topology: all, max_version: 5.2}',
      '  - kernel: [distro, debian:6.12]',
      '    filesystem: xfs',
      'retries: 2',
      'jobs: 3',
      'timeout: 900',
    ),
    'ci/matrix.yaml',
  )
  assert.equal(plan.name, 'pmem-kernels')
  assert.equal(plan.file, 'ci/matrix.yaml')
  assert.equal(plan.baseDir, join(process.cwd(), 'ci'))
  assert.deepEqual(
    plan.kernels.map((k) => [k.name, k.kind, k.version ?? null, k.where]),
    [
      ['debian-6.12', 'debian', '6.12', 'ci/matrix.yaml:4:5'],
      ['6.10', 'version', '6.10', 'ci/matrix.yaml:5:5'],
      ['five-ten', 'build', '5.10', 'ci/matrix.yaml:6:5'],
      ['linux-6.1.5', 'build', null, 'ci/matrix.yaml:8:5'],
      ['linux-v6.9', 'build', null, 'ci/matrix.yaml:9:5'],
      ['bzImage', 'path', null, 'ci/matrix.yaml:10:5'],
      ['0123456789ab', 'key', null, 'ci/matrix.yaml:11:5'],
      ['distro', 'distro', null, 'ci/matrix.yaml:12:5'],
    ],
  )
  assert.deepEqual(plan.kernels[2].build, {from: 'debian', version: '5.10', source: undefined, tree: undefined, ref: undefined, configs: ['my.config'], set: ['CONFIG_KASAN=y'], base: 'tinyconfig', debug: false})
  assert.equal(plan.kernels[3].build?.from, 'kernel.org', 'kernel.org stays the default source')
  assert.deepEqual(
    plan.topologies.map((t) => [t.name, t.memmap, t.nvdimm, t.virtioPmem, t.mem]),
    [
      ['memmap', ['256M@4G'], [], [], '1G'],
      ['all', ['128M'], ['512M', '1G'], ['256M'], '2G'],
    ],
  )
  assert.deepEqual(plan.filesystems, ['xfs'])
  assert.deepEqual(
    plan.suites.map((s) => [s.name, s.source]),
    [
      ['builtin', 'builtin'],
      ['mine', './suites/mine'],
      ['other-suite', '../other suite'],
    ],
  )
  assert.deepEqual(
    plan.exclude.map(({where, ...rule}) => [where, rule]),
    [
      ['ci/matrix.yaml:23:5', {kernel: undefined, topology: ['all'], filesystem: undefined, suite: undefined, minVersion: undefined, maxVersion: '5.2'}],
      ['ci/matrix.yaml:24:5', {kernel: ['distro', 'debian:6.12'], topology: undefined, filesystem: ['xfs'], suite: undefined, minVersion: undefined, maxVersion: undefined}],
    ],
  )
  assert.equal(plan.retries, 2)
  assert.equal(plan.jobs, 3)
  assert.equal(plan.timeoutSec, 900)
  assert.match(plan.hash, /^[0-9a-f]{64}$/)
  assert.equal(planPath(plan, './suites/mine'), join(process.cwd(), 'ci', 'suites', 'mine'))
  assert.equal(planPath(plan, '/abs/bzImage'), '/abs/bzImage')
})

test('defaults: ext4 and xfs, the built-in suite, no retries, jobs fitted to the host, no exclusions', () => {
  const plan = parseMatrix(file(...HEAD), 'm.yaml')
  assert.deepEqual(plan.filesystems, ['ext4', 'xfs'])
  assert.deepEqual(plan.suites.map((s) => s.name), ['builtin'])
  assert.equal(plan.retries, 0)
  assert.equal(plan.jobs, 'auto')
  assert.equal(plan.timeoutSec, undefined)
  assert.deepEqual(plan.exclude, [])
  assert.deepEqual(parseMatrix(file(...HEAD, 'exclude:'), 'm.yaml').exclude, [], 'an empty exclude: is no rule')
})

test('the hash covers what the file says, not its layout, comments or location', () => {
  const block = parseMatrix(file('# a comment', 'version: 1', 'kernels:', '  - distro', 'topologies:', '  pm:', '    memmap: [256M]'), 'a/m.yaml')
  const flow = parseMatrix('{version: 1, topologies: {pm: {memmap: ["256M"]}}, kernels: [distro]}', '/elsewhere/other.yaml')
  assert.equal(block.hash, flow.hash)
  const defaults = parseMatrix(file(...HEAD, 'filesystems: [ext4, xfs]', 'retries: 0'), 'm.yaml')
  assert.equal(defaults.hash, block.hash, 'writing a default out changes nothing')
  const changed = [
    file(...HEAD, 'retries: 1'),
    file(...HEAD, 'filesystems: [xfs, ext4]'),
    file('version: 1', 'kernels: [distro]', 'topologies:', '  pm: {memmap: [512M]}'),
    file('version: 1', 'kernels: [distro]', 'topologies:', '  pmem: {memmap: [256M]}'),
  ].map((t) => parseMatrix(t, 'm.yaml').hash)
  assert.equal(new Set([block.hash, ...changed]).size, 5, 'every change of content changes the hash')
})

test('a version keeps its digits however it is written: 6.10 is not 6.1, 5.10 not 5.1', () => {
  const plan = parseMatrix(
    file('version: 1', 'kernels:', '  - 6.10', '  - {build: {version: 5.10}}', '  - {build: {version: "7.0"}}', 'topologies:', '  pm: {memmap: [256M]}', 'exclude:', '  - {min_version: 6.10, max_version: 6.20}'),
    'm.yaml',
  )
  assert.deepEqual(plan.kernels.map((k) => k.version), ['6.10', '5.10', '7.0'])
  assert.equal(plan.exclude[0].minVersion, '6.10')
  assert.equal(plan.exclude[0].maxVersion, '6.20')
})

test('kernel specs: each form --kernel takes, and what is not one', () => {
  assert.deepEqual(classifySpec('distro'), {kind: 'distro'})
  assert.deepEqual(classifySpec('latest'), {kind: 'latest'})
  assert.deepEqual(classifySpec('debian:6.12'), {kind: 'debian', version: '6.12'})
  assert.deepEqual(classifySpec('debian:6.12.118'), {kind: 'debian', version: '6.12.118'})
  assert.equal(classifySpec('debian:trixie'), undefined)
  assert.deepEqual(classifySpec('6.1'), {kind: 'version', version: '6.1'})
  assert.deepEqual(classifySpec('abcdef012345'), {kind: 'key'})
  assert.deepEqual(classifySpec('/boot/vmlinuz'), {kind: 'path'})
  assert.deepEqual(classifySpec('./bzImage'), {kind: 'path'})
  assert.equal(classifySpec('bzImage'), undefined, 'a bare file name could be a key or a typo: a path needs a slash')
  assert.equal(classifySpec('abcde'), undefined, 'keys have six hex digits at least')
  const plan = parseMatrix(file('version: 1', 'kernels:', '  - debian:6.12', '  - {build: {version: 5.10, from: debian}}', '  - {build: {tree: /src/linux, ref: v6.9}}', 'topologies:', '  pm: {memmap: [256M]}'), 'm.yaml')
  assert.deepEqual(plan.kernels.map(kernelLabel), ['debian:6.12', 'build 5.10 from debian', 'build /src/linux@v6.9'])
  assert.equal(safeName('../other suite!'), 'other-suite')
  assert.equal(safeName('///'), 'x')
})

test('each mistake is one line naming FILE:LINE:COLUMN, what is wrong and what to write', () => {
  const cases: Array<[string, RegExp]> = [
    [file('version: 1', 'kernels: [distro', 'topologies: {}'), /^m\.yaml:3:1: .*: fix the YAML syntax there$/],
    [file(...HEAD, 'retries: 1', 'retries: 2'), /^m\.yaml:6:1: Map keys must be unique/],
    ['- just\n- a list\n', /^m\.yaml:1:1: is not a matrix file .*: see examples\/matrix\.yaml$/],
    [file('kernels: [distro]', 'topologies: {pm: {memmap: [256M]}}'), /^m\.yaml:1:1: has no version: add version: 1 as its first line$/],
    [file('version: 2', 'kernels: [distro]'), /^m\.yaml:1:10: version: format 2 is not one this pmemlab reads: write version: 1/],
    [file('version: "1"', 'kernels: [distro]'), /^m\.yaml:1:10: version: format "1" is not one/],
    [file(...HEAD, 'kernals: [distro]'), /^m\.yaml:5:1: kernals: unknown key "kernals": did you mean "kernels"\? expected version, name, kernels, topologies/],
    [file('version: 1', 'kernels:', '  - build: {version: 6.1, sorce: x}', 'topologies: {pm: {memmap: [256M]}}'), /^m\.yaml:3:27: kernels\[0\]\.build\.sorce: unknown key "sorce": did you mean "source"\?/],
    [file('version: 1', 'kernels:', '  - {spec: distro, nmae: x}', 'topologies: {pm: {memmap: [256M]}}'), /^m\.yaml:3:20: kernels\[0\]\.nmae: unknown key "nmae": did you mean "name"\? expected name, spec, build$/],
    [file('version: 1', 'kernels: distro', 'topologies: {pm: {memmap: [256M]}}'), /^m\.yaml:2:10: kernels: expected a list, found a string$/],
    [file('version: 1', 'kernels: []', 'topologies: {pm: {memmap: [256M]}}'), /^m\.yaml:2:10: kernels: is empty: list at least one$/],
    [file('version: 1', 'topologies: {pm: {memmap: [256M]}}'), /^m\.yaml:1:1: kernels: is missing: add it \(a list\)$/],
    [file('version: 1', 'kernels:', '  - distro', '  - bzImage', 'topologies: {pm: {memmap: [256M]}}'), /^m\.yaml:4:5: kernels\[1\]\.spec: "bzImage" is not a kernel spec: write distro, latest, debian:6\.12, .* like \.\/bzImage$/],
    [file('version: 1', 'kernels:', '  - {spec: distro, build: {version: 6.1}}', 'topologies: {pm: {memmap: [256M]}}'), /^m\.yaml:3:5: kernels\[0\]: has both spec and build/],
    [file('version: 1', 'kernels:', '  - name: x', 'topologies: {pm: {memmap: [256M]}}'), /^m\.yaml:3:5: kernels\[0\]: names no kernel/],
    [file('version: 1', 'kernels:', '  - build: {version: 6.1, tree: /src}', 'topologies: {pm: {memmap: [256M]}}'), /^m\.yaml:3:12: kernels\[0\]\.build: has version and tree: give exactly one of version, source .* or tree/],
    [file('version: 1', 'kernels:', '  - build: {configs: [a.config]}', 'topologies: {pm: {memmap: [256M]}}'), /^m\.yaml:3:12: kernels\[0\]\.build: names no source/],
    [file('version: 1', 'kernels:', '  - build: {tree: /src, from: debian}', 'topologies: {pm: {memmap: [256M]}}'), /^m\.yaml:3:25: kernels\[0\]\.build\.from: from goes with version/],
    [file('version: 1', 'kernels:', '  - build: {version: 6.1, ref: v6.1}', 'topologies: {pm: {memmap: [256M]}}'), /^m\.yaml:3:27: kernels\[0\]\.build\.ref: ref goes with tree/],
    [file('version: 1', 'kernels:', '  - build: {version: 6.1, from: ubuntu}', 'topologies: {pm: {memmap: [256M]}}'), /^m\.yaml:3:33: kernels\[0\]\.build\.from: "ubuntu" is not allowed: write one of kernel\.org, debian$/],
    [file('version: 1', 'kernels:', '  - build: {version: "6.1-rc3"}', 'topologies: {pm: {memmap: [256M]}}'), /^m\.yaml:3:22: kernels\[0\]\.build\.version: write a version like 6\.1 or 6\.12\.3$/],
    [file('version: 1', 'kernels:', '  - build: {version: 6.1, set: [CONFIG_A=y, "CONFIG_B=\\"x"]}', 'topologies: {pm: {memmap: [256M]}}'), /^m\.yaml:3:45: kernels\[0\]\.build\.set\[1\]: "CONFIG_B="x" is not an option setting/],
    [file('version: 1', 'kernels:', '  - 6.1', '  - build: {version: 6.1}', 'topologies: {pm: {memmap: [256M]}}'), /^m\.yaml:4:5: kernels\[1\]: two kernels are named "6\.1" \(the other at m\.yaml:3:5\): give one of them a name:$/],
    [file('version: 1', 'kernels:', '  - {spec: distro, name: Lab}', '  - {spec: latest, name: lab}', 'topologies: {pm: {memmap: [256M]}}'), /^m\.yaml:4:5: kernels\[1\]: two kernels are named "lab"/],
    [file('version: 1', 'kernels:', '  - {spec: distro, name: "my kernel"}', 'topologies: {pm: {memmap: [256M]}}'), /^m\.yaml:3:26: kernels\[0\]\.name: use up to 40 letters/],
    [file('version: 1', 'kernels: [distro]', 'topologies:', '  pm: {memmap: [256M], nvdimm: [1G:/var/tmp/n.img]}'), /^m\.yaml:4:33: topologies\.pm\.nvdimm\[0\]: "1G:\/var\/tmp\/n\.img" names a backing file: write SIZE only: cells run in parallel/],
    [file('version: 1', 'kernels: [distro]', 'topologies:', '  pm: {memmap: [256X]}'), /^m\.yaml:4:17: topologies\.pm\.memmap\[0\]: invalid --memmap size "256X": write a number/],
    [file('version: 1', 'kernels: [distro]', 'topologies:', '  pm: {memmap: [256M], mem: lots}'), /^m\.yaml:4:29: topologies\.pm\.mem: invalid mem "lots"/],
    [file('version: 1', 'kernels: [distro]', 'topologies:', '  pm: {}'), /^m\.yaml:4:3: topologies\.pm: has no persistent memory: list at least one of memmap, nvdimm or virtio-pmem/],
    [file('version: 1', 'kernels: [distro]', 'topologies:', '  pm:'), /^m\.yaml:4:3: topologies\.pm: has no persistent memory/],
    [file('version: 1', 'kernels: [distro]', 'topologies:', '  pm: {virtio: [256M]}'), /^m\.yaml:4:8: topologies\.pm\.virtio: unknown key "virtio": expected memmap, nvdimm, virtio-pmem, mem$/],
    [file('version: 1', 'kernels: [distro]', 'topologies:', '  "a b": {memmap: [256M]}'), /^m\.yaml:4:3: topologies\.a b: "a b" cannot name a topology: use up to 40 letters/],
    [file('version: 1', 'kernels: [distro]', 'topologies: {}'), /^m\.yaml:3:13: topologies: is empty: name at least one/],
    [file(...HEAD, 'filesystems: [ext4, btrfs]'), /^m\.yaml:5:21: filesystems\[1\]: "btrfs" is not allowed: write one of ext4, xfs$/],
    [file(...HEAD, 'filesystems: [ext4, ext4]'), /^m\.yaml:5:21: filesystems\[1\]: "ext4" is listed twice: list it once$/],
    [file(...HEAD, 'suites: [builtin, ./a, ../b/a]'), /^m\.yaml:5:24: suites\[2\]: two suites are named "a" \(the other at m\.yaml:5:19\): give one of them a name:/],
    [file(...HEAD, 'exclude:', '  - {topology: pmem}'), /^m\.yaml:6:16: exclude\[0\]\.topology: no topology is named "pmem": the plan's are pm$/],
    [file(...HEAD, 'exclude:', '  - {kernel: [distro, debian:6.1]}'), /^m\.yaml:6:23: exclude\[0\]\.kernel\[1\]: no kernel is named "debian:6\.1": the plan's are distro$/],
    [file(...HEAD, 'filesystems: [ext4]', 'exclude:', '  - {filesystem: xfs}'), /^m\.yaml:7:18: exclude\[0\]\.filesystem: no filesystem is named "xfs": the plan's are ext4$/],
    [file(...HEAD, 'exclude:', '  - {}'), /^m\.yaml:6:5: exclude\[0\]: has no condition and would exclude every cell/],
    [file(...HEAD, 'exclude:', '  - {min_version: 6.12, max_version: 6.1}'), /^m\.yaml:6:6: exclude\[0\]\.min_version: min_version 6\.12 is above max_version 6\.1: the range names no version: swap them$/],
    [file(...HEAD, 'exclude:', '  - {max_version: latest}'), /^m\.yaml:6:19: exclude\[0\]\.max_version: write a version like 6\.1 or 6\.12\.3$/],
    [file(...HEAD, 'exclude:', '  - {topology: pm, kernels: distro}'), /^m\.yaml:6:20: exclude\[0\]\.kernels: unknown key "kernels": did you mean "kernel"\?/],
    [file(...HEAD, 'retries: 1.5'), /^m\.yaml:5:10: retries: expected a whole number, found a fraction$/],
    [file(...HEAD, 'retries: 9'), /^m\.yaml:5:10: retries: must be at most 5$/],
    [file(...HEAD, 'jobs: many'), /^m\.yaml:5:7: jobs: write auto or a whole number from 1 to 64$/],
    [file(...HEAD, 'timeout: -3'), /^m\.yaml:5:10: timeout: must be more than 0$/],
  ]
  const wrong = cases.map(([text, expected]) => ({text, expected, actual: errorOf(text)})).filter((c) => !c.expected.test(c.actual))
  assert.deepEqual(wrong.map((c) => `${c.actual}\n  expected ${c.expected}`), [])
})

test('of several mistakes, the first in the file is named', () => {
  const text = file('version: 1', 'kernels: [distro]', 'topologies: {pm: {memmap: [256M]}}', 'retries: -1', 'jobs: 0')
  assert.match(errorOf(text), /^m\.yaml:4:10: retries:/)
})

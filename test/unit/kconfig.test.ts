import assert from 'node:assert/strict'
import {existsSync, readFileSync} from 'node:fs'
import {mkdtemp, readdir, readFile, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {basename, join} from 'node:path'
import {PassThrough} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import {describe, test} from 'node:test'
import {execa} from 'execa'
import * as tar from 'tar'
import {PmemlabError} from '../../src/core/errors.js'
import {explain, explainDrop} from '../../src/kernel/kconfig/explain.js'
import {evalExpr, parseExpr, renderExpr} from '../../src/kernel/kconfig/expr.js'
import {applyFragment, mergeFragments, parseDotConfig, parseFragment, parseSet, renderFragment} from '../../src/kernel/kconfig/merge.js'
import {parseKconfig} from '../../src/kernel/kconfig/parse.js'
import {verifyConfig} from '../../src/kernel/kconfig/verify.js'

// A small synthetic tree with the shapes that matter: $(SRCARCH) sources, rsource, if blocks,
// menus with depends, selects, a prompt-less symbol, a choice, help text that looks like syntax.
const FILES: Record<string, string> = {
  Kconfig: `mainmenu "Test kernel"
source "scripts/Kconfig.include"
source "arch/$(SRCARCH)/Kconfig"
source "mm/Kconfig"
source "drivers/Kconfig"
`,
  'scripts/Kconfig.include': `cc-option = $(success,true)
$(error-if,$(failure,true),never)
`,
  'arch/x86/Kconfig': `config 64BIT
	bool "64-bit kernel" if "$(ARCH)" = "x86"
	default y

config X86
	def_bool y
	select ARCH_HAS_PMEM

config ARCH_HAS_PMEM
	bool
`,
  'arch/arm/Kconfig': `config ARM_ONLY
	bool "never sourced on x86"
`,
  'mm/Kconfig': `menuconfig THP
	bool "Transparent Hugepage Support"
	depends on 64BIT && !PREEMPT_RT
	help
	  Help text that looks like syntax must be skipped:
	  config FAKE_FROM_HELP
	  depends on NOTHING

	  still help.

config PREEMPT_RT
	bool "Fully preemptible kernel"

config MODULES
	bool "Loadable modules"
`,
  'drivers/Kconfig': `rsource "dax/Kconfig"

menu "Device drivers"
	depends on BLOCK || PCI

config NVDIMM
	tristate "NVDIMM support"
	depends on ARCH_HAS_PMEM
	select DAX

endmenu

config BLOCK
	bool "Block layer"

config PCI
	bool "PCI"
`,
  'drivers/dax/Kconfig': `menuconfig DAX
	tristate "DAX: direct access"

if DAX

config DEV_DAX
	tristate "Device DAX"
	depends on THP

endif # DAX

config HIDDEN
	bool

choice
	prompt "Allocator"
	default SLAB

config SLAB
	bool "SLAB"

config SLUB
	bool "SLUB"

endchoice

config NR
	int "A number"
	range 1 8
	default 4

config NAME_STR
	string "A name"
	depends on NR > 2 && (PCI || BLOCK)
`,
}

const tree = parseKconfig((path) => FILES[path])
const cfg = (text: string) => parseDotConfig(text)

describe('fragments', () => {
  test('parse y, m, n ("is not set"), strings and numbers; reject anything else with file:line', () => {
    const parsed = parseFragment('# a comment\nCONFIG_A=y\nCONFIG_B=m\n# CONFIG_C is not set\nCONFIG_D="x y"\nCONFIG_E=0x10\n\nCONFIG_F=-3\n', 'f.config')
    assert.deepEqual(
      parsed.map((a) => [a.symbol, a.value, a.line]),
      [
        ['A', 'y', 2],
        ['B', 'm', 3],
        ['C', 'n', 4],
        ['D', '"x y"', 5],
        ['E', '0x10', 6],
        ['F', '-3', 8],
      ],
    )
    assert.throws(() => parseFragment('CONFIG_A=y\nCONFIG_B=yes please\n', 'bad.config'), /bad\.config:2/)
    assert.throws(() => parseFragment('DEV_DAX=y\n', 'bad.config'), /bad\.config:1/)
  })

  test('--set accepts CONFIG_X=V, X=V and a bare CONFIG_X', () => {
    assert.deepEqual(parseSet('CONFIG_KASAN=y'), {symbol: 'KASAN', value: 'y'})
    assert.deepEqual(parseSet('NR_CPUS=4'), {symbol: 'NR_CPUS', value: '4'})
    assert.deepEqual(parseSet('CONFIG_DEBUG_FS'), {symbol: 'DEBUG_FS', value: 'y'})
    assert.throws(() => parseSet('CONFIG_X=maybe'), PmemlabError)
  })

  test('two checked-in fragments that disagree are an error naming both files and both values', () => {
    const error = (() => {
      try {
        mergeFragments([
          {name: 'kernel-configs/qemu-base.config', text: 'CONFIG_A=y\nCONFIG_THP=y\n'},
          {name: 'kernel-configs/pmem.config', text: 'CONFIG_B=y\n# CONFIG_THP is not set\n'},
        ])
      } catch (e) {
        return e as Error
      }
      return undefined
    })()
    assert.ok(error instanceof PmemlabError)
    assert.match(error.message, /kernel-configs\/qemu-base\.config:2/)
    assert.match(error.message, /kernel-configs\/pmem\.config:2/)
    assert.match(error.message, /CONFIG_THP=y/)
    assert.match(error.message, /CONFIG_THP=n/)
  })

  test('the same value in two checked-in fragments is fine; the first place is kept', () => {
    const merged = mergeFragments([
      {name: 'a.config', text: 'CONFIG_EXT4_FS=y\n'},
      {name: 'b.config', text: 'CONFIG_EXT4_FS=y\nCONFIG_XFS_FS=y\n'},
    ])
    assert.equal(merged.options.get('EXT4_FS')?.file, 'a.config')
    assert.equal(merged.overrides.length, 0)
  })

  test('a user fragment and --set override earlier values, and each override is recorded', () => {
    const merged = mergeFragments([
      {name: 'kernel-configs/pmem.config', text: 'CONFIG_THP=y\nCONFIG_DEV_DAX=y\n'},
      {name: 'mine.config', text: '# CONFIG_THP is not set\nCONFIG_NR=5\n', user: true},
      {name: '--set', text: 'CONFIG_NR=6', user: true},
    ])
    assert.equal(merged.options.get('THP')?.value, 'n')
    assert.equal(merged.options.get('THP')?.file, 'mine.config')
    assert.equal(merged.options.get('NR')?.value, '6')
    assert.deepEqual(
      merged.overrides.map((o) => [o.symbol, o.from.value, o.from.file, o.to.value, o.to.file]),
      [
        ['THP', 'y', 'kernel-configs/pmem.config', 'n', 'mine.config'],
        ['NR', '5', 'mine.config', '6', '--set'],
      ],
    )
  })

  test('the merged fragment renders sorted, and applying it replaces old lines (choices: the appended y wins)', () => {
    const merged = mergeFragments([{name: 'f', text: 'CONFIG_SLUB=y\n# CONFIG_SLAB is not set\nCONFIG_A=y\n'}])
    assert.equal(renderFragment(merged.options), 'CONFIG_A=y\n# CONFIG_SLAB is not set\nCONFIG_SLUB=y\n')
    const applied = applyFragment('CONFIG_SLAB=y\n# CONFIG_SLUB is not set\nCONFIG_OTHER=y\n', merged.options)
    assert.doesNotMatch(applied, /^CONFIG_SLAB=y$/m)
    assert.equal(applied.match(/SLUB/g)?.length, 1)
    assert.match(applied, /^CONFIG_OTHER=y$/m)
    assert.ok(applied.indexOf('CONFIG_SLUB=y') > applied.indexOf('CONFIG_OTHER=y'))
  })
})

describe('verify', () => {
  test('lists exactly the requested options whose value did not survive', () => {
    const requested = mergeFragments([
      {name: 'pmem.config', text: 'CONFIG_DEV_DAX=y\nCONFIG_DAX=y\n# CONFIG_PREEMPT_RT is not set\n# CONFIG_GONE is not set\nCONFIG_NVDIMM=m\nCONFIG_NAME_STR="lab"\nCONFIG_NR=0x4\n'},
    ]).options
    const final = 'CONFIG_DAX=y\n# CONFIG_DEV_DAX is not set\nCONFIG_PREEMPT_RT=y\nCONFIG_NVDIMM=y\nCONFIG_NAME_STR="lab"\nCONFIG_NR=4\n'
    const drops = verifyConfig(requested, final)
    assert.deepEqual(
      drops.map((d) => [d.symbol, d.requested, d.actual]),
      [
        ['DEV_DAX', 'y', 'n'],
        ['PREEMPT_RT', 'n', 'y'],
      ],
    )
  })

  test('=m survives as y only when modules are off', () => {
    const requested = mergeFragments([{name: 'f', text: 'CONFIG_NVDIMM=m\n'}]).options
    assert.equal(verifyConfig(requested, 'CONFIG_NVDIMM=y\n').length, 0)
    assert.equal(verifyConfig(requested, 'CONFIG_MODULES=y\nCONFIG_NVDIMM=y\n').length, 1)
  })
})

describe('expressions', () => {
  test('precedence: || < && < ! < comparison; rendering keeps needed parentheses only', () => {
    assert.equal(renderExpr(parseExpr('A || B && !C')), 'A || B && !C')
    assert.equal(renderExpr(parseExpr('(A || B) && !(C = y)')), '(A || B) && !C=y')
    assert.equal(renderExpr(parseExpr('((A))')), 'A')
    assert.throws(() => parseExpr('A && (B'))
    assert.throws(() => parseExpr('A B'))
  })

  test('tristate logic: && is min, || is max, ! is 2-x; m needs MODULES', () => {
    const config = cfg('CONFIG_A=y\nCONFIG_B=m\nCONFIG_MODULES=y\nCONFIG_S="x"\nCONFIG_N=5\n')
    const value = (text: string, c = config) => evalExpr(parseExpr(text), {config: c})
    assert.equal(value('A && B'), 1)
    assert.equal(value('A || B'), 2)
    assert.equal(value('!B'), 1)
    assert.equal(value('!C'), 2)
    assert.equal(value('C || (A && !B)'), 1)
    assert.equal(value('S = "x"'), 2)
    assert.equal(value('S != "x"'), 0)
    assert.equal(value('N > 2 && N <= 5'), 2)
    assert.equal(value('B = m'), 2)
    assert.equal(value('m'), 1)
    assert.equal(value('m', cfg('')), 0)
  })
})

describe('Kconfig parsing', () => {
  test('follows source "arch/$(SRCARCH)/Kconfig" and rsource; skips help text and macros', () => {
    assert.deepEqual(tree.warnings, [])
    assert.ok(tree.files.includes('arch/x86/Kconfig'))
    assert.ok(tree.files.includes('drivers/dax/Kconfig'))
    assert.ok(!tree.files.includes('arch/arm/Kconfig'))
    assert.equal(tree.symbols.get('FAKE_FROM_HELP'), undefined)
    assert.equal(tree.symbols.get('THP')?.type, 'bool')
    assert.equal(tree.symbols.get('DEV_DAX')?.type, 'tristate')
    assert.equal(tree.symbols.get('X86')?.definitions[0].defaults.length, 1)
    assert.equal(explain(tree, 'CONFIG_64BIT').definitions[0].promptCondition, '"x86"="x86"')
  })

  test('explain lists depends (own and inherited from if/menu blocks) and selects', () => {
    const devDax = explain(tree, 'CONFIG_DEV_DAX')
    assert.equal(devDax.exists, true)
    assert.equal(devDax.type, 'tristate')
    assert.deepEqual(
      devDax.dependsOn.map((t) => [t.text, t.origin]),
      [
        ['DAX', 'if'],
        ['THP', 'depends on'],
      ],
    )
    const nvdimm = explain(tree, 'NVDIMM')
    assert.deepEqual(
      nvdimm.dependsOn.map((t) => [t.text, t.origin]),
      [
        ['BLOCK || PCI', 'menu'],
        ['ARCH_HAS_PMEM', 'depends on'],
      ],
    )
    assert.deepEqual(
      explain(tree, 'DAX').selectedBy.map((r) => r.symbol),
      ['NVDIMM'],
    )
    assert.deepEqual(explain(tree, 'NAME_STR').dependsOn.map((t) => t.text), ['NR>2', 'PCI || BLOCK'])
    assert.equal(explain(tree, 'CONFIG_FOO_BAR').exists, false)
  })

  test('with a .config, each term is marked met or not', () => {
    const explanation = explain(tree, 'DEV_DAX', cfg('CONFIG_DAX=y\nCONFIG_64BIT=y\n'))
    assert.deepEqual(
      explanation.dependsOn.map((t) => [t.text, t.met]),
      [
        ['DAX', true],
        ['THP', false],
      ],
    )
    assert.equal(explanation.value, 'n')
  })
})

describe('why an option was dropped', () => {
  const final = cfg('CONFIG_64BIT=y\nCONFIG_X86=y\nCONFIG_ARCH_HAS_PMEM=y\nCONFIG_BLOCK=y\nCONFIG_DAX=y\nCONFIG_NVDIMM=y\nCONFIG_SLAB=y\nCONFIG_NR=4\n')

  test('an unmet depends on names the missing symbol', () => {
    assert.equal(explainDrop(tree, {symbol: 'DEV_DAX', requested: 'y', actual: undefined}, final), 'CONFIG_DEV_DAX was dropped: it depends on THP, which is not set')
  })

  test('an unmet condition inherited from an if block names it', () => {
    const withoutDax = new Map(final)
    withoutDax.delete('DAX')
    withoutDax.set('THP', 'y')
    assert.equal(explainDrop(tree, {symbol: 'DEV_DAX', requested: 'y', actual: undefined}, withoutDax), 'CONFIG_DEV_DAX was dropped: it depends on DAX, which is not set')
  })

  test('a negated term, a compound term and the --set that caused it', () => {
    const rt = new Map(final)
    rt.set('PREEMPT_RT', 'y')
    const requested = mergeFragments([{name: '--set', text: 'CONFIG_PREEMPT_RT=y', user: true}]).options
    assert.equal(
      explainDrop(tree, {symbol: 'THP', requested: 'y', actual: undefined}, rt, requested),
      'CONFIG_THP was dropped: it depends on !PREEMPT_RT, but PREEMPT_RT is y (set by --set CONFIG_PREEMPT_RT=y)',
    )
    const noBus = new Map(final)
    noBus.delete('BLOCK')
    assert.equal(
      explainDrop(tree, {symbol: 'NVDIMM', requested: 'y', actual: undefined}, noBus),
      'CONFIG_NVDIMM was dropped: it depends on (BLOCK || PCI), which is n: BLOCK is not set, PCI is not set',
    )
  })

  test('a dependency that was requested but dropped itself is pointed out as such', () => {
    const requested = mergeFragments([
      {name: 'kernel-configs/pmem.config', text: 'CONFIG_THP=y\nCONFIG_DEV_DAX=y\n'},
      {name: '--set', text: '# CONFIG_THP is not set', user: true},
    ]).options
    assert.equal(
      explainDrop(tree, {symbol: 'DEV_DAX', requested: 'y', actual: undefined}, final, requested),
      'CONFIG_DEV_DAX was dropped: it depends on THP, which is not set (set by --set CONFIG_THP=n)',
    )
    const fromFile = mergeFragments([{name: 'pmem.config', text: 'CONFIG_THP=y\n'}]).options
    assert.equal(
      explainDrop(tree, {symbol: 'DEV_DAX', requested: 'y', actual: undefined}, final, fromFile),
      'CONFIG_DEV_DAX was dropped: it depends on THP, which is not set (requested in pmem.config:1, but dropped itself)',
    )
  })

  test('an unknown symbol is refused with its own reason', () => {
    assert.equal(explainDrop(tree, {symbol: 'FOO_BAR', requested: 'y', actual: undefined}, final), "CONFIG_FOO_BAR does not exist in this kernel's Kconfig")
  })

  test('a symbol without a prompt, a choice member, and an n that a select overrides', () => {
    assert.equal(explainDrop(tree, {symbol: 'HIDDEN', requested: 'y', actual: undefined}, final), 'CONFIG_HIDDEN was dropped: it has no prompt and nothing selects it')
    assert.equal(
      explainDrop(tree, {symbol: 'SLUB', requested: 'y', actual: undefined}, final),
      'CONFIG_SLUB was dropped: it is one of a choice (drivers/dax/Kconfig:15) and CONFIG_SLAB was chosen instead',
    )
    assert.equal(explainDrop(tree, {symbol: 'DAX', requested: 'n', actual: 'y'}, final), 'CONFIG_DAX is still y: it is selected by NVDIMM, which is y')
  })

  test('a number outside its range', () => {
    assert.equal(explainDrop(tree, {symbol: 'NR', requested: '12', actual: '4'}, final), 'CONFIG_NR is 4, not 12: its range is 1..8')
  })
})

// The real thing: Kconfig files of the Debian 6.1 source. An extracted tree from pmemlab's cache
// is used when there is one; otherwise only the Kconfig files are extracted from the tarball.
const DEBIAN_SOURCE = '/usr/src/linux-source-6.1.tar.xz'

async function cachedSource61(): Promise<string | undefined> {
  const caches = [process.env.PMEMLAB_CACHE_DIR, join(process.env.HOME ?? '/root', '.cache', 'pmemlab')].filter(Boolean) as string[]
  for (const cache of caches) {
    const build = join(cache, 'build')
    for (const name of await readdir(build).catch(() => [] as string[])) {
      const dir = join(build, name)
      if (!/^src-[0-9a-f]+$/.test(name) || !existsSync(join(dir, '.pmemlab-source'))) continue
      const makefile = await readFile(join(dir, 'Makefile'), 'utf8').catch(() => '')
      if (/^VERSION = 6$/m.test(makefile) && /^PATCHLEVEL = 1$/m.test(makefile)) return dir
    }
  }
  return undefined
}

describe('the real 6.1 Kconfig tree', {skip: existsSync(DEBIAN_SOURCE) ? false : `${DEBIAN_SOURCE} is not installed (apt-get install linux-source-6.1)`}, () => {
  test('DEV_DAX without TRANSPARENT_HUGEPAGE is explained by TRANSPARENT_HUGEPAGE', {timeout: 300_000}, async () => {
    let dir = await cachedSource61()
    let scratch: string | undefined
    if (!dir) {
      scratch = await mkdtemp(join(tmpdir(), 'pmemlab-kconfig-'))
      const pass = new PassThrough()
      const extraction = pipeline(pass, tar.x({cwd: scratch, strip: 1, filter: (path) => /^Kconfig/.test(basename(path)) || path.endsWith('/')}))
      await Promise.all([extraction, execa('xz', ['-dc', DEBIAN_SOURCE], {stdout: ['pipe', pass], buffer: false})])
      dir = scratch
    }
    try {
      const real = parseKconfig((path) => {
        try {
          return readFileSync(join(dir, path), 'utf8')
        } catch {
          return undefined
        }
      })
      assert.deepEqual(real.warnings, [])
      assert.ok(real.symbols.size > 10_000)
      const final = cfg('CONFIG_64BIT=y\nCONFIG_X86_64=y\nCONFIG_MMU=y\nCONFIG_DAX=y\nCONFIG_LIBNVDIMM=y\nCONFIG_ZONE_DEVICE=y\nCONFIG_HAVE_ARCH_TRANSPARENT_HUGEPAGE=y\n')
      const reason = explainDrop(real, {symbol: 'DEV_DAX', requested: 'y', actual: undefined}, final)
      assert.equal(reason, 'CONFIG_DEV_DAX was dropped: it depends on TRANSPARENT_HUGEPAGE, which is not set')
      const explanation = explain(real, 'CONFIG_DEV_DAX', final)
      assert.equal(explanation.definitions[0].file, 'drivers/dax/Kconfig')
      assert.deepEqual(
        explanation.dependsOn.filter((t) => !t.met).map((t) => t.text),
        ['TRANSPARENT_HUGEPAGE'],
      )
      assert.equal(explainDrop(real, {symbol: 'NOT_A_THING', requested: 'y', actual: undefined}, final), "CONFIG_NOT_A_THING does not exist in this kernel's Kconfig")
    } finally {
      if (scratch) await rm(scratch, {recursive: true, force: true})
    }
  })
})

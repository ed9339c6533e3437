import * as Flags from '@oclif/core/flags'
import {PmemlabCommand} from '../../cli/command.js'
import {usageError} from '../../core/errors.js'
import {buildKernel} from '../../kernel/build.js'
import {parseSuites} from '../../kernel/debian-source.js'
import {DEBIAN_PREFIX, type KernelSource} from '../../kernel/source.js'

/** --version [--from]/--source/--tree, shared with `kernel config`. */
export const sourceFlags = {
  version: Flags.string({description: 'a release: 6.12.3, or 6.12 for the newest 6.12.N listed (debian:6.12 is --from debian --version 6.12)', helpGroup: 'SOURCE'}),
  from: Flags.string({description: "where --version comes from: kernel.org's tarballs, or the orig tarballs in Debian's archive (upstream minus a few non-free files)", options: ['kernel.org', 'debian'], helpGroup: 'SOURCE'}),
  mirror: Flags.string({
    description:
      'kernel.org mirror (its layout: MIRROR/v6.x/linux-V.tar.xz and sha256sums.asc; default $PMEMLAB_KERNEL_MIRROR or https://cdn.kernel.org/pub/linux/kernel); with --from debian, a Debian mirror (default $PMEMLAB_DEBIAN_MIRROR, else the host\'s apt mirror, else http://deb.debian.org/debian)',
    helpGroup: 'SOURCE',
  }),
  'debian-suites': Flags.string({description: 'with --from debian: the suites whose Sources indexes are searched, comma-separated (default $PMEMLAB_DEBIAN_SUITES, else sid,forky,trixie,trixie-backports,bookworm-backports,bookworm,bullseye)', helpGroup: 'SOURCE', helpValue: 'LIST'}),
  source: Flags.string({description: 'a source tarball (.tar.xz, .tar.gz), e.g. /usr/src/linux-source-6.1.tar.xz', helpGroup: 'SOURCE'}),
  tree: Flags.string({description: 'a git checkout, built out of tree (O=): the tree is never written to', helpGroup: 'SOURCE'}),
  ref: Flags.string({description: 'with --tree: build this commit/branch/tag (a clean snapshot through git archive) instead of the working tree', helpGroup: 'SOURCE'}),
}

export function sourceFromFlags(
  flags: {version?: string; from?: string; mirror?: string; 'debian-suites'?: string; source?: string; tree?: string; ref?: string},
  required = true,
): KernelSource | undefined {
  const given = [flags.version && '--version', flags.source && '--source', flags.tree && '--tree'].filter(Boolean)
  if (given.length > 1) throw usageError(`give one of --version, --source and --tree, not ${given.join(' and ')}`)
  if (flags.ref && !flags.tree) throw usageError('--ref goes with --tree')
  if (flags.mirror && !flags.version) throw usageError('--mirror goes with --version')
  if (flags.from && !flags.version) throw usageError('--from goes with --version')
  const prefixed = flags.version?.startsWith(DEBIAN_PREFIX) === true
  if (prefixed && flags.from === 'kernel.org') throw usageError(`--version ${flags.version} is a Debian version: drop --from kernel.org, or the "${DEBIAN_PREFIX}" prefix`)
  const fromDebian = prefixed || flags.from === 'debian'
  if (flags['debian-suites'] && !fromDebian) throw usageError('--debian-suites goes with --from debian')
  if (flags.version && fromDebian) {
    const version = prefixed ? flags.version.slice(DEBIAN_PREFIX.length) : flags.version
    const suites = flags['debian-suites'] === undefined ? undefined : parseSuites(flags['debian-suites'], '--debian-suites')
    return {kind: 'debian', version, mirror: flags.mirror, suites}
  }
  if (flags.version) return {kind: 'version', version: flags.version, mirror: flags.mirror}
  if (flags.source) return {kind: 'source', file: flags.source}
  if (flags.tree) return {kind: 'tree', dir: flags.tree, ref: flags.ref}
  if (required) throw usageError('which kernel? give --version V [--from debian], --source FILE or --tree DIR', 'for example: pmemlab kernel build --source /usr/src/linux-source-6.1.tar.xz')
  return undefined
}

export default class KernelBuild extends PmemlabCommand {
  static override summary = 'Build a guest kernel from the checked-in fragments (cached by its inputs)'
  static override description = `With --patch, the patches are applied in the order given to pmemlab's own copy of the source (never to your --tree) before configuring; one that does not apply stops the build, naming the file and hunk, and nothing is built or cached. The patches' contents, in order, are part of the cache key, and the entry keeps a copy of each.

The kernel is configured from tinyconfig (or defconfig) plus kernel-configs/qemu-base.config and pmem.config (and debug.config with --debug), then your --config fragments and --set options, in that order. After make olddefconfig every requested option is checked: one that was dropped stops the build before compiling, with the dependency it lacks.

A build with the same source, patches, fragments, compiler and architecture is a cache hit and returns at once. Prints the cache key and the bzImage path (or, with --json, the entry's build.json plus "cacheHit").`
  static override examples = [
    '<%= config.bin %> kernel build --source /usr/src/linux-source-6.1.tar.xz',
    '<%= config.bin %> kernel build --version 6.12 --debug',
    '<%= config.bin %> kernel build --from debian --version 6.12',
    '<%= config.bin %> kernel build --version debian:7.2 --mirror http://mirror.lab/debian',
    '<%= config.bin %> kernel build --tree ~/linux --ref v6.12 --set CONFIG_KASAN=y',
    '<%= config.bin %> kernel build --version 6.12 --patch 0001-dax-fix.patch --patch 0002-dax-test.patch',
    '<%= config.bin %> kernel build --version 6.1 --mirror http://mirror.lab/pub/linux/kernel --config my.config',
    '<%= config.bin %> kernel build --source /usr/src/linux-source-6.1.tar.xz --config ndctl',
  ]
  static override flags = {
    ...sourceFlags,
    config: Flags.string({description: 'a fragment of your own (CONFIG_X=y lines), or the name of a checked-in one (ndctl: what ndctl\'s tests need), applied after qemu-base and pmem; repeatable', multiple: true, default: [], helpValue: 'FILE|ndctl'}),
    patch: Flags.string({
      description: 'a patch (git format-patch, git diff or diff -u; -p1, or -p0 when its paths have no a/ b/), applied to pmemlab\'s copy of the source before configuring; repeatable, in order. Not with --tree without --ref',
      multiple: true,
      default: [],
      helpValue: 'FILE',
    }),
    set: Flags.string({description: 'one option, applied last: CONFIG_X=y, =n, =m, ="text", =123; repeatable', multiple: true, default: [], helpValue: 'CONFIG_X=VALUE'}),
    debug: Flags.boolean({description: 'add kernel-configs/debug.config (lockdep, KASAN, debug info): slower, needs more guest RAM'}),
    base: Flags.string({description: 'the configuration the fragments are applied to', options: ['tinyconfig', 'defconfig'], default: 'tinyconfig'}),
    jobs: Flags.integer({char: 'j', description: 'parallel make jobs (default: the number of CPUs)', min: 1}),
    json: Flags.boolean({description: 'print one JSON document: build.json plus cacheHit, dir and kernel'}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(KernelBuild)
    const source = sourceFromFlags(flags)!
    const result = await buildKernel({
      source,
      configs: flags.config,
      sets: flags.set,
      patches: flags.patch,
      debug: flags.debug,
      base: flags.base as 'tinyconfig' | 'defconfig',
      jobs: flags.jobs,
    })
    if (flags.json) {
      this.printJson({cacheHit: result.cacheHit, dir: result.dir, kernel: result.kernel, ...result.build})
      return
    }
    process.stdout.write(`${result.key} ${result.kernel}\n`)
  }
}

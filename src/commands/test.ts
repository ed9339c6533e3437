import {writeFile} from 'node:fs/promises'
import * as Flags from '@oclif/core/flags'
import {PmemlabCommand} from '../cli/command.js'
import {usageError} from '../core/errors.js'
import {labFlags, labRequest} from '../cli/flags.js'
import {log} from '../core/log.js'
import {FILESYSTEMS, renderSummary, reportJson, toJUnit, toTap, type Filesystem} from '../suite/results.js'
import {runTests} from '../suite/run.js'

export default class Test extends PmemlabCommand {
  static override summary = 'Boot a lab, prepare its persistent memory and run test suites in it'
  static override description = `The built-in suite proves DAX from inside the guest on every pmem device and filesystem (mount options, statx STATX_ATTR_DAX, MAP_SYNC), runs libpmem and libpmemobj (transactions, allocations, reopen, pmempool) on them, maps device DAX, and cuts the power under an open transaction to check that the pool on a file-backed NVDIMM recovers while a memmap range loses everything.
Upstream suites: --suite ndctl runs ndctl's own tests (built into the image from Debian's ndctl source) on the lab's memmap range and labelled NVDIMM; without pmem flags the lab is --memmap 4G --nvdimm 8G,labels --mem 2G. A test that exits 77 is a skip, with its reason.
User suites (--suite DIR) are directories of executables and scripts, copied into the guest and run once per filesystem with the prepared DAX mounts in their environment (PMEMLAB_PMEM_DIR, PMEMLAB_MOUNTS, PMEMLAB_FS); TAP output is parsed, otherwise the exit status counts. An optional pmemlab-suite.yaml sets the order, setup, timeouts and needs.
The guest console is watched throughout: an Oops, BUG, WARNING, lockdep report or panic fails the run.
Progress goes to stderr, a summary to stdout (one JSON document with --json). Exit 0 when everything passed, 1 on any failure (and on any skip with --fail-on-skip), 6 when the lab could not start.`

  static override examples = [
    '<%= config.bin %> test --kernel distro',
    '<%= config.bin %> test --fs xfs --filter "builtin/nvdimm0/*" --junit results.xml',
    '<%= config.bin %> test --suite builtin --suite ./my-pmem-tests --tap results.tap',
    '<%= config.bin %> test --suite ndctl --kernel distro --junit ndctl.xml',
  ]

  static override flags = {
    ...labFlags,
    fs: Flags.string({description: 'filesystems to test, comma-separated', default: 'ext4,xfs', helpValue: 'ext4,xfs'}),
    suite: Flags.string({description: '"builtin", "ndctl" (ndctl\'s own tests) or a directory of test scripts (./ndctl for a directory of that name); repeat for several', multiple: true, default: ['builtin'], helpValue: 'builtin|ndctl|DIR'}),
    filter: Flags.string({description: 'run only what matches this glob over SUITE/GROUP/STEP, like "builtin/nvdimm0/*" or "*/xfs/*"; "!GLOB" leaves out what it matches; repeat for several', multiple: true, default: [], helpValue: 'GLOB'}),
    timeout: Flags.integer({description: 'seconds a test step may run before it is killed and reported as timed out (a suite manifest may set its own)', default: 120}),
    junit: Flags.string({description: 'write JUnit XML results to FILE', helpValue: 'FILE'}),
    tap: Flags.string({description: 'write TAP results to FILE', helpValue: 'FILE'}),
    json: Flags.boolean({description: 'print one JSON document instead of the summary table'}),
    keep: Flags.boolean({description: 'leave the VM running after a failure, for pmemlab console/exec (stop it with pmemlab down)'}),
    'console-log': Flags.string({description: 'write the guest console log to FILE (each VM of the run, the power-loss case boots two)', helpValue: 'FILE'}),
    'fail-on-skip': Flags.boolean({description: 'count a skipped test as a failure (exit 1), as run_qemu and PMDK\'s fail_on_skip do'}),
    'raw-namespaces': Flags.boolean({description: 'leave raw NVDIMM namespaces raw instead of converting them to fsdax: reproduces the silent non-DAX fallback, so the DAX checks fail'}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(Test)
    const filesystems = flags.fs
      .split(',')
      .map((fs) => fs.trim())
      .filter(Boolean)
    const unknown = filesystems.filter((fs) => !(FILESYSTEMS as readonly string[]).includes(fs))
    if (unknown.length > 0 || filesystems.length === 0) throw usageError(`invalid --fs "${flags.fs}"`, `give ${FILESYSTEMS.join(', ')} or both, comma-separated`)
    if (flags.timeout < 1) throw usageError(`invalid --timeout ${flags.timeout}`, 'give a number of seconds of at least 1')
    if (flags['console-log']) await writeFile(flags['console-log'], '')
    const report = await runTests({
      ...labRequest(flags),
      filesystems: [...new Set(filesystems)] as Filesystem[],
      suites: flags.suite,
      filters: flags.filter,
      timeoutSec: flags.timeout,
      keep: flags.keep,
      rawNamespaces: flags['raw-namespaces'],
      failOnSkip: flags['fail-on-skip'],
      consoleLog: flags['console-log'],
    })
    if (flags.junit) await writeFile(flags.junit, toJUnit(report))
    if (flags.tap) await writeFile(flags.tap, toTap(report))
    if (flags.json) this.printJson(reportJson(report))
    else process.stdout.write(renderSummary(report))
    if (report.error) {
      log.error(report.error)
      for (const line of report.errorDetails ?? []) process.stderr.write(`  | ${line}\n`)
    }
    process.exitCode = report.exitCode
  }
}

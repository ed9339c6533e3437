import * as Flags from '@oclif/core/flags'
import {usageError} from '../core/errors.js'
import {DEFAULT_COMMAND_TIMEOUT_SEC, DEFAULT_OUTPUT} from '../bisect/options.js'

/**
 * The flags `pmemlab bisect` and `pmemlab bisect step` share. None has an oclif default: a flag
 * must be seen as given or not (--resume refuses the ones the state file already says, lab flags
 * go with a command or --type boot only), so bisect/options.ts applies the defaults the help names.
 */
export const stepFlags = {
  tree: Flags.string({description: 'the kernel git tree; git checks out each commit to test there, and its branch is restored at the end', helpValue: 'DIR'}),
  repro: Flags.string({description: 'the test: a reproducer file (as pmemlab repro takes it), run on each commit\'s kernel; or give a command after --', helpValue: 'FILE'}),
  runs: Flags.integer({description: 'runs per commit (boots with --type boot): good only with no reproduction in all of them (default 1)', helpValue: 'N'}),
  'bad-threshold': Flags.integer({description: 'reproductions that make a commit bad (default 1); fewer, but some, skip it', helpValue: 'K'}),
  'max-errors': Flags.integer({description: 'runs that broke (no verdict) a good commit may have had (default 0)', helpValue: 'E'}),
  reverse: Flags.boolean({description: 'find the commit that fixed the bug: --bad is then the older commit, --good the newer'}),
  type: Flags.string({description: 'what a commit is tested by: build (a failed build is bad), boot (a panic, Oops or hang at boot is bad), test (the reproducer or command; default)', options: ['build', 'boot', 'test']}),
  output: Flags.string({description: `where the state file, the report and each tested commit's runs go (default ${DEFAULT_OUTPUT}; not inside --tree)`, helpValue: 'DIR'}),
  timeout: Flags.integer({description: `with a command after --: seconds it may run before it counts as hung, and so bad (default ${DEFAULT_COMMAND_TIMEOUT_SEC})`, helpValue: 'SECONDS'}),
  config: Flags.string({description: 'a fragment of your own, as kernel build --config; repeatable', multiple: true, default: [], helpGroup: 'KERNEL', helpValue: 'FILE'}),
  set: Flags.string({description: 'one option, as kernel build --set; repeatable', multiple: true, default: [], helpGroup: 'KERNEL', helpValue: 'CONFIG_X=VALUE'}),
  base: Flags.string({description: 'the configuration the fragments are applied to (default tinyconfig)', options: ['tinyconfig', 'defconfig'], helpGroup: 'KERNEL'}),
  debug: Flags.boolean({description: 'add kernel-configs/debug.config, as kernel build --debug', helpGroup: 'KERNEL'}),
  jobs: Flags.integer({char: 'j', description: 'parallel make jobs (default: the number of CPUs)', helpGroup: 'KERNEL'}),
  image: Flags.string({description: 'with a command or --type boot: the guest image, as up --image (default debian-12)', helpGroup: 'LAB'}),
  memmap: Flags.string({description: 'as up --memmap', multiple: true, default: [], helpGroup: 'LAB', helpValue: 'SIZE[@OFFSET]'}),
  nvdimm: Flags.string({description: 'as up --nvdimm (without any device: one 256M memmap range and one 512M NVDIMM)', multiple: true, default: [], helpGroup: 'LAB', helpValue: 'SIZE[:FILE][,labels]'}),
  'virtio-pmem': Flags.string({description: 'as up --virtio-pmem', multiple: true, default: [], helpGroup: 'LAB', helpValue: 'SIZE[:FILE]'}),
  mem: Flags.string({description: 'as up --mem (default 1G)', helpGroup: 'LAB'}),
  cpus: Flags.integer({description: 'as up --cpus (default 2)', helpGroup: 'LAB'}),
  machine: Flags.string({description: 'as up --machine (default pc)', options: ['pc', 'q35'], helpGroup: 'LAB'}),
  accel: Flags.string({description: 'as up --accel (default auto)', options: ['auto', 'kvm', 'tcg'], helpGroup: 'LAB'}),
  append: Flags.string({description: 'as up --append', multiple: true, default: [], helpGroup: 'LAB'}),
  'boot-timeout': Flags.integer({description: 'as up --boot-timeout, in seconds (default 180)', helpGroup: 'LAB'}),
  force: Flags.boolean({description: 'as up --force', helpGroup: 'LAB'}),
}

/**
 * The command after `--`, from the raw argv (RAW) and the words oclif parsed (PARSED, which holds
 * the words before `--` too). A word before `--` that is no flag is refused: with a command after
 * `--`, a mistyped flag would otherwise slip into it.
 */
export function commandAfterDashes(raw: readonly string[], parsed: readonly string[]): string[] {
  const dash = raw.indexOf('--')
  const command = dash < 0 ? [] : raw.slice(dash + 1)
  const words = [...parsed]
  const at = words.indexOf('--')
  if (at >= 0 && dash >= 0) words.splice(at, 1)
  const stray = words.slice(0, words.length - command.length)
  if (stray.length > 0) throw usageError(`unexpected argument ${stray[0]}`, 'flags go before --, the command after it')
  return command
}

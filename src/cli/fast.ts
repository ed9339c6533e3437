/**
 * The fast start: `up` and `exec`, the commands scripts run in loops (up --detach, exec, exec,
 * ...), parsed with node's parseArgs and run without loading oclif, which costs about a quarter
 * of a second per start (its modules and its plugin and manifest loading). Only argument lists
 * it understands completely are taken: anything else (--help, an unknown flag, a bad value,
 * arguments oclif would read its own way) goes to oclif, which answers as it always does.
 * PMEMLAB_NO_FAST_START=1 sends everything to oclif.
 */
import {parseArgs, type ParseArgsConfig} from 'node:util'
import {PmemlabError} from '../core/errors.js'
import {setVerbose} from '../core/log.js'
import {EXEC_FLAG_TABLE, LAB_FLAG_TABLE, UP_FLAG_TABLE, VERBOSE_FLAG, labRequest, type FlagSpec, type LabFlagValues} from './lab-flag-table.js'
import {reportPmemlabError, reportUnexpectedError} from './output.js'

type Values = Record<string, string | number | boolean | string[] | undefined>

/** What the fast start makes of ARGV: a command and its parsed values, or undefined (oclif's turn). */
export function parseFast(argv: readonly string[]): {command: 'up' | 'exec'; values: Values; positionals: string[]; rest: string[] | undefined} | undefined {
  const [command, ...args] = argv
  const tables: Record<string, Record<string, FlagSpec>> = {up: {...LAB_FLAG_TABLE, ...UP_FLAG_TABLE}, exec: EXEC_FLAG_TABLE}
  if ((command !== 'up' && command !== 'exec') || process.env.PMEMLAB_NO_FAST_START === '1') return undefined
  const table: Record<string, FlagSpec> = {...tables[command], verbose: VERBOSE_FLAG}
  const end = args.indexOf('--')
  const flagArgs = end === -1 ? args : args.slice(0, end)
  const rest = end === -1 ? undefined : args.slice(end + 1)
  if (flagArgs.some((arg) => arg === '--help' || arg === '-h')) return undefined
  const options: ParseArgsConfig['options'] = {}
  for (const [name, spec] of Object.entries(table)) {
    options[name] = {type: spec.type === 'boolean' ? 'boolean' : 'string', ...(spec.multiple ? {multiple: true} : {}), ...(name === 'verbose' ? {short: 'v'} : {})}
  }
  let parsed: ReturnType<typeof parseArgs>
  try {
    parsed = parseArgs({args: flagArgs, options, strict: true, allowPositionals: true})
  } catch {
    return undefined // oclif names the problem its own way
  }
  const values: Values = {}
  for (const [name, spec] of Object.entries(table)) {
    const given = parsed.values[name]
    if (given === undefined) {
      values[name] = Array.isArray(spec.default) ? [...spec.default] : (spec.default as Values[string])
      continue
    }
    for (const value of Array.isArray(given) ? given : [given]) {
      if (typeof value !== 'string') continue
      if (spec.type === 'integer' && !/^-?\d+$/.test(value)) return undefined
      if (spec.options && !spec.options.includes(value)) return undefined
    }
    values[name] = spec.type === 'integer' ? Number(given) : (given as Values[string])
  }
  // Arguments before "--" are read by oclif (up's guest command without "--", exec's name).
  if (command === 'up' && parsed.positionals.length > 0) return undefined
  if (command === 'exec' && (parsed.positionals.length !== 1 || rest === undefined)) return undefined
  return {command, values, positionals: parsed.positionals, rest}
}

/** Runs ARGV when the fast start takes it; false when it is oclif's to run. */
export async function runFast(argv: readonly string[]): Promise<boolean> {
  const parsed = parseFast(argv)
  if (!parsed) return false
  const {command, values, positionals, rest} = parsed
  if (values.verbose === true) setVerbose(true)
  try {
    const {runExec, runUp} = await import('./lab-commands.js')
    if (command === 'exec') {
      await runExec(positionals[0], rest!, values.timeout as number | undefined)
    } else {
      await runUp(labRequest(values as unknown as LabFlagValues), {name: values.name as string | undefined, detach: values.detach === true, argv: rest ?? [], dryRun: values['dry-run'] === true, json: values.json === true})
    }
  } catch (error) {
    if (error instanceof PmemlabError) reportPmemlabError(error)
    else reportUnexpectedError(error as Error)
  }
  return true
}

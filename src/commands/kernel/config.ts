import * as Flags from '@oclif/core/flags'
import {PmemlabCommand} from '../../cli/command.js'
import {explainSymbol} from '../../kernel/build.js'
import {sourceFlags, sourceFromFlags} from './build.js'

export default class KernelConfig extends PmemlabCommand {
  static override summary = "Explain a kernel option from the kernel's own Kconfig files"
  static override description = `Prints the option's type, where it is defined, every condition it depends on (including those of enclosing if/menu blocks) and what selects it. With --config (a .config file) or --kernel (a built kernel), each condition is marked met or not, and an option that is off says why.`
  static override examples = [
    '<%= config.bin %> kernel config --explain CONFIG_DEV_DAX --source /usr/src/linux-source-6.1.tar.xz',
    '<%= config.bin %> kernel config --explain CONFIG_ND_BLK --from debian --version 5.10',
    '<%= config.bin %> kernel config --explain CONFIG_KASAN --kernel latest',
  ]
  static override flags = {
    explain: Flags.string({description: 'the option, CONFIG_X or X', required: true, helpValue: 'CONFIG_X'}),
    ...sourceFlags,
    config: Flags.string({description: 'a .config to evaluate the conditions against'}),
    kernel: Flags.string({description: "a built kernel (key, version, latest): its .config, and its source unless one is given"}),
    json: Flags.boolean({description: 'print one JSON document'}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(KernelConfig)
    const source = sourceFromFlags(flags, flags.kernel === undefined)
    const result = await explainSymbol({symbol: flags.explain, source, dotConfig: flags.config, kernel: flags.kernel})
    if (flags.json) {
      this.printJson(result)
      return
    }
    const e = result.explanation
    const evaluated = e.value !== undefined
    const lines: string[] = [`${e.symbol} (${e.type ?? 'no type'}) in linux ${result.kernelVersion}${evaluated ? `: ${e.value === 'n' ? 'not set' : e.value}` : ''}`]
    for (const d of e.definitions) {
      lines.push(`  defined at ${d.file}:${d.line}${d.prompt ? ` "${d.prompt}"${d.promptCondition ? ` if ${d.promptCondition}` : ''}` : ' (no prompt: only a select or its default turns it on)'}${d.choice ? `, a choice member (${d.choice})` : ''}`)
    }
    lines.push(e.dependsOn.length > 0 ? '  depends on:' : '  depends on: nothing')
    for (const t of e.dependsOn) {
      const state = t.met === undefined ? '' : t.met ? `  [met: ${t.value}]` : `  [NOT met: ${t.symbols?.map((s) => `${s.name}=${s.value}`).join(' ') ?? t.value}]`
      lines.push(`    ${t.text}${state}  (${t.origin === 'depends on' ? '' : `${t.origin} block, `}${t.file}:${t.line})`)
    }
    const reverse = (title: string, list: typeof e.selectedBy) => {
      if (list.length === 0) return
      lines.push(`  ${title}:`)
      for (const r of list) lines.push(`    ${r.symbol}${r.condition ? ` if ${r.condition}` : ''}${r.active === undefined ? '' : r.active ? '  [in force]' : '  [not in force]'}  (${r.file}:${r.line})`)
    }
    reverse('selected by', e.selectedBy)
    reverse('implied by', e.impliedBy)
    if (e.selectedBy.length === 0) lines.push('  selected by: nothing')
    if (result.reason) lines.push(result.reason)
    process.stdout.write(`${lines.join('\n')}\n`)
  }
}

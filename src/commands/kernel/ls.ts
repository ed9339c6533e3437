import * as Flags from '@oclif/core/flags'
import {PmemlabCommand} from '../../cli/command.js'
import {damagedKernel, listKernels, type SourceRecord} from '../../kernel/store.js'
import {log} from '../../core/log.js'
import {humanSize} from '../../core/size.js'
import {renderTable} from '../../core/table.js'

export function describeSource(source: SourceRecord): string {
  switch (source.kind) {
    case 'version':
      return `kernel.org ${source.version}`
    case 'source':
      return source.file
    case 'tree':
      return `${source.dir}@${source.commit.slice(0, 12)}${source.dirty ? '+dirty' : ''}`
  }
}

export default class KernelLs extends PmemlabCommand {
  static override summary = 'List built kernels, newest first'
  static override description = 'Any of them boots with pmemlab up --kernel KEY (6 or more hex digits), --kernel VERSION (the newest of that version) or --kernel latest.'
  static override flags = {json: Flags.boolean({description: 'print one JSON document'})}

  async run(): Promise<void> {
    const {flags} = await this.parse(KernelLs)
    const entries = await listKernels()
    for (const entry of entries.filter((e) => e.damage)) log.warn(damagedKernel(entry).oneLine())
    if (flags.json) {
      this.printJson(entries.map((e) => ({...e.build, dir: e.dir, kernel: e.kernel, bytes: e.bytes, ...(e.damage ? {damage: e.damage} : {})})))
      return
    }
    if (entries.length === 0) return
    const rows = entries.map((e) => [
      e.key.slice(0, 12),
      e.build.kernelVersion,
      [e.build.base, e.build.debug ? 'debug' : '', e.build.fragments.some((f) => f.user) || e.build.sets.length > 0 ? 'custom' : ''].filter(Boolean).join(','),
      describeSource(e.build.source),
      e.build.createdAt.replace(/\.\d+Z$/, 'Z'),
      humanSize(e.bytes),
    ])
    process.stdout.write(renderTable(['KEY', 'VERSION', 'CONFIG', 'SOURCE', 'BUILT', 'SIZE'], rows))
  }
}

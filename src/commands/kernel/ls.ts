import * as Flags from '@oclif/core/flags'
import {PmemlabCommand} from '../../cli/command.js'
import {listCachedKernels} from '../../kernel/catalog.js'
import {damagedDebianKernel} from '../../kernel/debian-prebuilt.js'
import {damagedKernel, type SourceRecord} from '../../kernel/store.js'
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

/** " + 0001-fix.patch 0002-test.patch" for a patched entry (its build.json has the hashes). */
export const describePatches = (patches: readonly {name: string}[] = []): string => (patches.length > 0 ? ` + ${patches.map((p) => p.name).join(' ')}` : '')

export default class KernelLs extends PmemlabCommand {
  static override summary = 'List cached kernels: built ones newest first, then Debian prebuilt ones'
  static override description =
    'SOURCE names the patches a kernel was built with, if any (--json: "patches", each with its name, sha256 and the copy kept in the entry). A built kernel boots with pmemlab up --kernel KEY (6 or more hex digits), --kernel VERSION (the newest of that version) or --kernel latest; a Debian one with --kernel debian:VERSION (the newest cached match) or debian:ABI (exactly that one). For Debian kernels VERSION is the ABI (uname -r), CONFIG "debian" and SOURCE the suites, package and package version; kernel rm takes their KEY too.'
  static override flags = {json: Flags.boolean({description: 'print one JSON document'})}

  async run(): Promise<void> {
    const {flags} = await this.parse(KernelLs)
    const kernels = await listCachedKernels()
    for (const k of kernels) {
      if (k.kind === 'built' && k.entry.damage) log.warn(damagedKernel(k.entry).oneLine())
      if (k.kind === 'debian' && k.entry.damage) log.warn(damagedDebianKernel(k.entry).oneLine())
    }
    if (flags.json) {
      this.printJson(
        kernels.map((k) => {
          const damage = k.entry.damage ? {damage: k.entry.damage} : {}
          if (k.kind === 'built') return {kind: 'built', ...k.entry.build, dir: k.entry.dir, kernel: k.entry.kernel, bytes: k.entry.bytes, ...damage}
          const {key, files, artifacts, format: _format, ...record} = k.entry.record
          return {kind: 'debian', key, ...record, dir: k.entry.dir, kernel: `${k.entry.dir}/${files.vmlinuz}`, files, artifacts, bytes: k.bytes, ...damage}
        }),
      )
      return
    }
    if (kernels.length === 0) return
    const rows = kernels.map((k) => {
      if (k.kind === 'debian') {
        const r = k.entry.record
        return [k.entry.key.slice(0, 12), r.abi, r.signed ? 'debian' : 'debian,unsigned', `debian ${r.suites.join(',')} ${r.image} ${r.version}`, r.fetchedAt.replace(/\.\d+Z$/, 'Z'), humanSize(k.bytes)]
      }
      const e = k.entry
      return [
        e.key.slice(0, 12),
        e.build.kernelVersion,
        [e.build.base, e.build.debug ? 'debug' : '', e.build.fragments.some((f) => f.user) || e.build.sets.length > 0 ? 'custom' : ''].filter(Boolean).join(','),
        describeSource(e.build.source) + describePatches(e.build.patches),
        e.build.createdAt.replace(/\.\d+Z$/, 'Z'),
        humanSize(e.bytes),
      ]
    })
    process.stdout.write(renderTable(['KEY', 'VERSION', 'CONFIG', 'SOURCE', 'BUILT', 'SIZE'], rows))
  }
}

import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'
import {PmemlabCommand} from '../../cli/command.js'
import {pullDebianKernel} from '../../kernel/debian-prebuilt.js'

export default class KernelPull extends PmemlabCommand {
  static override summary = "Fetch Debian's newest prebuilt kernel of a version into the cache"
  static override description =
    "Looks the version up in the Packages indexes of Debian's suites ($PMEMLAB_DEBIAN_SUITES, by default sid, forky, trixie, trixie-backports, bookworm-backports, bookworm, bullseye; only SUITE for debian:VERSION/SUITE) and caches the newest match, unpacked, unless it is cached already. --kernel debian:VERSION boots the newest cached match without the network, and pulls only when nothing matches."
  static override examples = ['<%= config.bin %> kernel pull debian:6.12', '<%= config.bin %> kernel pull debian:5.10 debian:7/sid']
  static override strict = false
  static override args = {spec: Args.string({description: 'debian:VERSION[/SUITE]: 6.12, 7, 6.12.117, an ABI (6.12.117+deb13-amd64) or a package version (6.12.117-1); /SUITE looks in that suite only', required: true})}
  static override flags = {json: Flags.boolean({description: 'print one JSON document: the cached kernels'})}

  async run(): Promise<void> {
    const {argv, flags} = await this.parse(KernelPull)
    const pulled = []
    for (const spec of argv as string[]) {
      const {entry, downloaded} = await pullDebianKernel(spec)
      const {abi, version, image, suites, signed} = entry.record
      pulled.push({spec, key: entry.key, abi, version, image, suites, signed, downloaded, dir: entry.dir})
    }
    if (flags.json) this.printJson(pulled)
    else process.stdout.write(pulled.map((p) => `${p.key}\n`).join(''))
  }
}

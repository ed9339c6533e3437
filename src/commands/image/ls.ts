import * as Flags from '@oclif/core/flags'
import {PmemlabCommand} from '../../cli/command.js'
import {listImages, recipeOrigin} from '../../image/store.js'
import {log} from '../../core/log.js'
import {humanSize} from '../../core/size.js'
import {renderTable} from '../../core/table.js'

export default class ImageLs extends PmemlabCommand {
  static override summary = 'List the built guest images'
  static override flags = {json: Flags.boolean({description: 'print one JSON document'})}

  async run(): Promise<void> {
    const {flags} = await this.parse(ImageLs)
    const images = await listImages()
    if (flags.json) {
      this.printJson(images)
      return
    }
    if (images.length === 0) {
      log.info('no images built yet: run pmemlab image build')
      return
    }
    const rows = images.map((image) => [image.name, image.hash.slice(0, 12), humanSize(image.sizeBytes), image.builtAt, recipeOrigin(image), image.path])
    process.stdout.write(renderTable(['NAME', 'HASH', 'SIZE', 'BUILT', 'RECIPE', 'PATH'], rows))
  }
}

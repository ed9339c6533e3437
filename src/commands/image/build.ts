import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'
import {PmemlabCommand} from '../../cli/command.js'
import {buildImage} from '../../image/build.js'
import {humanSize} from '../../core/size.js'

export default class ImageBuild extends PmemlabCommand {
  static override summary = 'Build a guest image from its recipe (pmemlab\'s images/NAME/recipe.yaml, or your own recipe file)'
  static override description =
    'Runs mmdebstrap and mkfs.ext4 and keeps the result in the cache, keyed by a hash of the recipe and the guest files. ' +
    'An image that is already built is reused unless --force is given. Tool output goes to build.log next to the image. ' +
    'A path (with a slash, or ending in .yaml) is your own recipe, which extends one of pmemlab\'s images (see "Your own images" in the README).'
  static override args = {
    name: Args.string({description: 'recipe name, or the path of your own recipe file', default: 'debian-12', required: false}),
  }
  static override flags = {
    force: Flags.boolean({description: 'rebuild even when the image is already built'}),
  }
  static override examples = ['<%= config.bin %> image build', '<%= config.bin %> image build debian-12 --force', '<%= config.bin %> image build ./fio-image.yaml']

  async run(): Promise<void> {
    const {args, flags} = await this.parse(ImageBuild)
    // Ctrl-C or SIGTERM stops mmdebstrap and removes the partial build.
    const controller = new AbortController()
    const abort = () => controller.abort()
    process.once('SIGINT', abort)
    process.once('SIGTERM', abort)
    try {
      const image = await buildImage(args.name ?? 'debian-12', {force: flags.force, signal: controller.signal})
      process.stdout.write(`${image.name} ${image.hash.slice(0, 12)} ${humanSize(image.sizeBytes)} ${image.path}\n`)
    } finally {
      process.off('SIGINT', abort)
      process.off('SIGTERM', abort)
    }
  }
}

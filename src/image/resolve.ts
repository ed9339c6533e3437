/**
 * The image a VM boots: the one built from the current recipe, built on demand. The builder
 * (and the programs it spawns) is loaded only when an image must really be built.
 */
import {join} from 'node:path'
import {notFound} from '../core/errors.js'
import {log} from '../core/log.js'
import {imagesRoot, inspectImage, listImages, loadRecipe, type ImageInfo} from './store.js'

/** The image built from the current recipe; with build, builds it when missing. */
export async function resolveImage(name: string, opts: {build?: boolean; planned?: boolean; signal?: AbortSignal} = {}): Promise<ImageInfo> {
  const loaded = await loadRecipe(name)
  const cached = await inspectImage(join(imagesRoot(), name, loaded.hash))
  if (cached && !cached.damage) return cached.info
  if (opts.build) {
    // A damaged entry is replaced by the build (it is never trusted again), and the user is told why.
    if (cached?.damage) log.warn(`image ${name} is damaged: ${cached.damage}: building it again (about a minute)`)
    else log.info(`image ${name} is not built yet: building it now (about a minute)`)
    const {buildImage} = await import('./build.js')
    return buildImage(name, {signal: opts.signal})
  }
  if (opts.planned) {
    // --dry-run: the path the image will have once built, so the printed command is the real one.
    const path = join(imagesRoot(), name, loaded.hash, 'rootfs.img')
    return {name, hash: loaded.hash, path, sizeBytes: 0, builtAt: '', recipe: loaded.path, packages: loaded.recipe.packages}
  }
  if (cached?.damage) throw notFound(`image "${name}" is damaged: ${cached.damage}`, `run: pmemlab image build ${name}`)
  const older = (await listImages()).some((image) => image.name === name)
  throw notFound(
    older ? `image "${name}" is out of date (its recipe or guest files changed)` : `image "${name}" is not built`,
    `run: pmemlab image build ${name}`,
  )
}

/**
 * The image a VM boots: the one built from the current recipe, built on demand. The builder
 * (and the programs it spawns) is loaded only when an image must really be built.
 */
import {join} from 'node:path'
import {notFound} from '../core/errors.js'
import {log} from '../core/log.js'
import {imagesRoot, inspectImage, listImages, type ImageInfo} from './store.js'
import {imageSpecText, loadImage, type ImageSpec} from './spec.js'

/** The image built from the current recipe (pmemlab's, or a user's); with build, builds it when missing. */
export async function resolveImage(spec: ImageSpec, opts: {build?: boolean; planned?: boolean; signal?: AbortSignal} = {}): Promise<ImageInfo> {
  const loaded = await loadImage(spec)
  const {name} = loaded
  const cached = await inspectImage(join(imagesRoot(), name, loaded.hash))
  if (cached && !cached.damage) return cached.info
  if (opts.build) {
    // A damaged entry is replaced by the build (it is never trusted again), and the user is told why.
    if (cached?.damage) log.warn(`image ${name} is damaged: ${cached.damage}: building it again (about a minute)`)
    else log.info(`image ${name} is not built yet: building it now (about a minute)`)
    const {buildImage} = await import('./build.js')
    return buildImage(spec, {signal: opts.signal, loaded})
  }
  if (opts.planned) {
    // --dry-run: the path the image will have once built, so the printed command is the real one.
    const path = join(imagesRoot(), name, loaded.hash, 'rootfs.img')
    return {name, hash: loaded.hash, path, sizeBytes: 0, builtAt: '', recipe: loaded.path, packages: loaded.recipe.packages, ...(loaded.extends ? {extends: loaded.extends} : {})}
  }
  const buildCommand = `run: pmemlab image build ${imageSpecText(spec)}`
  if (cached?.damage) throw notFound(`image "${name}" is damaged: ${cached.damage}`, buildCommand)
  const older = (await listImages()).some((image) => image.name === name)
  throw notFound(
    older ? `image "${name}" is out of date (its recipe or guest files changed)` : `image "${name}" is not built`,
    buildCommand,
  )
}

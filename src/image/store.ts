/**
 * image/: guest images. This folder owns the recipes (recipe.ts: the format), the images built
 * from them (build.ts: mmdebstrap, the compiled guest programs, the ext4 image) and the cache
 * that holds them (this module: recipes found and hashed, built images read and listed).
 * resolve.ts is the one entry the lab uses: the image for a recipe, built when missing.
 */
import {createHash} from 'node:crypto'
import {mkdir, readFile, readdir, stat} from 'node:fs/promises'
import {dirname, join, relative} from 'node:path'
import {isArtifactStamp, checkArtifact, type ArtifactStamp} from '../core/artifact.js'
import {writeFileAtomic} from '../core/cache.js'
import {usageError} from '../core/errors.js'
import {log} from '../core/log.js'
import {cacheDir, packageRoot} from '../core/paths.js'
import type {Recipe} from './recipe.js'

/** The image `up` boots when none is named (a user recipe's `extends: default`). */
export const DEFAULT_IMAGE = 'debian-12'

/** A built guest image, as recorded in its image.json. */
export interface ImageInfo {
  name: string
  hash: string
  /** The raw ext4 root filesystem (rootfs.img). */
  path: string
  /** rootfs.img's size when it was built. */
  sizeBytes: number
  /** rootfs.img's size and sample digest when it was built (images built before it have only sizeBytes). */
  rootfs?: ArtifactStamp
  builtAt: string
  /** The recipe file the image was built from. */
  recipe: string
  /** For a user's recipe: the pmemlab image it extends. */
  extends?: string
  /** The packages the recipe asked for (mmdebstrap --include), besides the variant's. */
  packages: string[]
}

// ---------------------------------------------------------------------------------------------
// Recipes: images/<name>/recipe.yaml (the format is in recipe.ts)

export interface LoadedRecipe {
  /** The name the image is cached and listed under. */
  name: string
  recipe: Recipe
  /** The recipe file. */
  path: string
  /** The text the cache key covers: a built-in recipe's file, a user recipe merged (user-recipe.ts). */
  text: string
  /** Each guest file with its bytes. */
  files: Array<{source: string; to: string[]; mode: number; content: Buffer}>
  /** The sources of the programs compiled in the image (recipe.build), each once, with its bytes. */
  buildSources: Array<{source: string; content: Buffer}>
  /** imageHash() of the recipe and its files: the image's cache key. */
  hash: string
  /** For a user's recipe: the pmemlab image it extends. */
  extends?: string
}

/** What loading a recipe may do: with remember false it writes nothing (a check before anything is made). */
export interface LoadOptions {
  remember?: boolean
}

const recipesDir = () => join(packageRoot, 'images')
export const imagesRoot = () => join(cacheDir(), 'images')

/** The names of the checked-in recipes (images/<name>/recipe.yaml). */
export async function listRecipes(): Promise<string[]> {
  let entries
  try {
    entries = await readdir(recipesDir(), {withFileTypes: true})
  } catch {
    return []
  }
  const names: string[] = []
  for (const entry of entries) {
    if (entry.isDirectory() && (await isFile(join(recipesDir(), entry.name, 'recipe.yaml')))) names.push(entry.name)
  }
  return names.sort()
}

/** Reads, validates and hashes a recipe and the guest files it installs. */
export async function loadRecipe(name: string, opts: LoadOptions = {}): Promise<LoadedRecipe> {
  const known = await listRecipes()
  if (!known.includes(name)) {
    throw usageError(`unknown image "${name}"`, known.length > 0 ? `known images: ${known.join(', ')}` : 'no recipes found under images/')
  }
  const path = join(recipesDir(), name, 'recipe.yaml')
  const text = await readFile(path, 'utf8')
  const where = relative(process.cwd(), path) || path
  const recipe = await parseRecipeCached(text, where, name, opts.remember ?? true)
  const files = await Promise.all(
    recipe.files.map(async (file) => {
      try {
        return {...file, content: await readFile(join(packageRoot, file.source))}
      } catch {
        throw usageError(`recipe ${where} is invalid`, `files: ${file.source} does not exist in ${packageRoot}`)
      }
    }),
  )
  const sourcePaths = [...new Set([...(recipe.build?.programs.flatMap((program) => program.sources) ?? []), ...(recipe.build?.upstream.map((project) => project.script) ?? [])])]
  const buildSources = await Promise.all(
    sourcePaths.map(async (source) => {
      try {
        return {source, content: await readFile(join(packageRoot, source))}
      } catch {
        throw usageError(`recipe ${where} is invalid`, `build: ${source} does not exist in ${packageRoot}`)
      }
    }),
  )
  // The compiled programs are part of the image: their sources are hashed like guest files.
  const hash = imageHash(text, [
    ...files.map((file) => ({path: file.source, content: file.content, mode: file.mode})),
    ...buildSources.map((file) => ({path: `build:${file.source}`, content: file.content, mode: 0o644})),
  ])
  return {name, recipe, path, text, files, buildSources, hash}
}

/**
 * A recipe's text, validated (recipe.ts), remembered in the cache under a hash of the text and of
 * recipe.ts's own code: a text seen before is not parsed again, and a new pmemlab (another
 * schema) parses afresh. Saves loading the YAML and schema libraries on every boot.
 */
async function parseRecipeCached(text: string, where: string, name: string, remember: boolean): Promise<Recipe> {
  // tsc's recipe.js, also when this code runs from dist/bundle/ (the same build).
  const parser = join(packageRoot, 'dist', 'src', 'image', 'recipe.js')
  const key = createHash('sha256').update(await readFile(parser)).update('\0').update(name).update('\0').update(text).digest('hex')
  const memo = join(cacheDir(), 'recipes', `${key}.json`)
  const known = await readFile(memo, 'utf8').then((json) => JSON.parse(json) as Recipe, () => undefined)
  if (known) return known
  const {parseRecipe} = await import('./recipe.js')
  const recipe = parseRecipe(text, where, name)
  if (!remember) return recipe
  // Remembering is an optimisation: a cache that cannot be written costs only the parse.
  try {
    await mkdir(dirname(memo), {recursive: true})
    await writeFileAtomic(memo, JSON.stringify(recipe))
  } catch (error) {
    log.debug(`cannot remember the parsed recipe in ${memo}: ${(error as Error).message}`)
  }
  return recipe
}

/**
 * The cache key of an image: sha256 over the recipe text and every guest file's path, mode and
 * bytes (so a change to pmemlab-init is a new image). File order does not matter.
 */
export function imageHash(recipeText: string, files: Array<{path: string; content: Buffer; mode: number}>): string {
  const hash = createHash('sha256')
  hash.update(`pmemlab-image-v1\0${Buffer.byteLength(recipeText)}\0${recipeText}\0`)
  const sorted = [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : a.mode - b.mode))
  for (const file of sorted) {
    hash.update(`${file.path}\0${(file.mode & 0o7777).toString(8)}\0${file.content.length}\0`)
    hash.update(file.content)
  }
  return hash.digest('hex')
}

// ---------------------------------------------------------------------------------------------
// Cache

/** The shape of image.json (checked by hand: this runs on every boot, zod would load for it). */
function isImageInfo(value: unknown): value is ImageInfo {
  const info = value as Record<string, unknown> | null
  return (
    typeof info === 'object' &&
    info !== null &&
    ['name', 'hash', 'path', 'builtAt', 'recipe'].every((field) => typeof info[field] === 'string') &&
    typeof info.sizeBytes === 'number' &&
    (info.rootfs === undefined || isArtifactStamp(info.rootfs)) &&
    (info.extends === undefined || typeof info.extends === 'string') &&
    Array.isArray(info.packages) &&
    info.packages.every((item) => typeof item === 'string')
  )
}

/**
 * The image in dir as its image.json describes it, with what is wrong with its rootfs.img when
 * that is no longer the file that was built (truncated, grown, rewritten, missing); undefined
 * when dir holds no image.json. The check is a stat and two 64 KiB reads: it runs on every boot.
 */
export async function inspectImage(dir: string): Promise<{info: ImageInfo; damage?: string} | undefined> {
  let info: unknown
  try {
    info = JSON.parse(await readFile(join(dir, 'image.json'), 'utf8'))
  } catch {
    return undefined
  }
  if (!isImageInfo(info)) return undefined
  // Trust the entry's location, not the path written at build time (the cache may have moved).
  const path = join(dir, 'rootfs.img')
  const damage = await checkArtifact(path, info.rootfs ?? {bytes: info.sizeBytes})
  return {info: {...info, path}, ...(damage ? {damage} : {})}
}

/** The image in dir when it is complete and intact, else undefined. */
export async function readImageInfo(dir: string): Promise<ImageInfo | undefined> {
  const found = await inspectImage(dir)
  if (found?.damage) log.debug(`not using ${dir}: ${found.damage}`)
  return found && !found.damage ? found.info : undefined
}

/** Every built image in the cache, by name, newest first. */
export async function listImages(): Promise<ImageInfo[]> {
  const images: ImageInfo[] = []
  const names = await readdir(imagesRoot(), {withFileTypes: true}).catch(() => [])
  for (const name of names) {
    if (!name.isDirectory() || name.name.startsWith('.')) continue
    const hashes = await readdir(join(imagesRoot(), name.name), {withFileTypes: true}).catch(() => [])
    for (const hash of hashes) {
      if (!hash.isDirectory() || hash.name.startsWith('.')) continue
      const dir = join(imagesRoot(), name.name, hash.name)
      const found = await inspectImage(dir)
      if (!found) log.debug(`ignoring ${dir}: no valid image.json`)
      else if (found.damage) log.warn(`ignoring the damaged image ${name.name} ${hash.name.slice(0, 12)}: ${found.damage}`)
      else images.push(found.info)
    }
  }
  return images.sort((a, b) => (a.name === b.name ? b.builtAt.localeCompare(a.builtAt) : a.name.localeCompare(b.name)))
}

/** Where an image's recipe came from, for image ls: pmemlab's own, or the user's file and its base. */
export const recipeOrigin = (image: Pick<ImageInfo, 'recipe' | 'extends'>): string => (image.extends ? `${image.recipe} (extends ${image.extends})` : 'pmemlab')

export async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile()
  } catch {
    return false
  }
}

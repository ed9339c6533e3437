/**
 * The edge of user recipes (user-recipe.ts is the pure part): reads the recipe file, its base
 * recipe and every file it copies or compiles, and returns it loaded as a built-in recipe is,
 * so that build.ts and the cache treat both alike.
 */
import {readFile} from 'node:fs/promises'
import {relative, resolve} from 'node:path'
import {usageError} from '../core/errors.js'
import {imageHash, listRecipes, loadRecipe, type LoadedRecipe, type LoadOptions} from './store.js'
import {baseImageOf, mergedRecipeText, mergeRecipe, parseUserRecipe, userFileKey, userImageName, USER_SOURCES, type UserRecipe} from './user-recipe.js'

const shown = (path: string) => relative(process.cwd(), path) || path

/** The user recipe in the file at PATH, loaded onto its base recipe. */
export async function loadUserRecipeFile(path: string, opts: LoadOptions = {}): Promise<LoadedRecipe> {
  const absolute = resolve(path)
  let text: string
  try {
    text = await readFile(absolute, 'utf8')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'a directory, not a recipe file' : (code ?? (error as Error).message)
    throw usageError(`cannot read image recipe ${path}: ${why}`, 'give the path of a recipe .yaml (see "Your own images" in the README)')
  }
  return loadUserRecipe(parseUserRecipe(text, shown(absolute)), absolute, opts)
}

/** USER (parsed from a file, or a reproducer's inline image:) onto its base; RECIPEPATH is what image ls shows. */
export async function loadUserRecipe(user: UserRecipe, recipePath: string, opts: LoadOptions = {}): Promise<LoadedRecipe> {
  const builtIn = await listRecipes()
  const baseName = baseImageOf(user)
  if (!builtIn.includes(baseName)) {
    throw usageError(`${user.file}: extends: unknown image "${baseName}"`, `extend one of pmemlab's images: default, ${builtIn.join(', ')}`)
  }
  const name = userImageName(user)
  // The cache keeps images by name: a user image named like pmemlab's would pass for it in image ls.
  if (builtIn.includes(name)) throw usageError(`${user.file}: the image name "${name}" is pmemlab's own`, 'set name: to another name in the recipe')
  const base = await loadRecipe(baseName, opts)
  const recipe = mergeRecipe(base.recipe, user, name)

  const read = async (source: string, where: string) => {
    const path = resolve(user.baseDir, source)
    try {
      return await readFile(path)
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      throw usageError(`${where}: cannot read ${source === path ? path : `${source} (${path})`}: ${code === 'ENOENT' ? 'no such file' : (code ?? (error as Error).message)}`, `sources are relative to ${user.baseDir}`)
    }
  }
  const userFiles = await Promise.all(user.files.map(async (file) => ({source: resolve(user.baseDir, file.source), to: file.to, mode: file.mode, content: await read(file.source, file.where)})))
  const userSources = new Map<string, Buffer>()
  for (const program of user.build?.programs ?? []) {
    for (const source of program.sources) if (!userSources.has(source)) userSources.set(source, await read(source, program.where))
  }
  const buildSources = [...base.buildSources, ...[...userSources].map(([source, content]) => ({source: `${USER_SOURCES}/${source}`, content}))]
  const files = [...base.files, ...userFiles]
  const text = mergedRecipeText(recipe, userFiles.length)
  // As loadRecipe hashes a built-in image, with the user's files under their guest paths.
  const hash = imageHash(text, [
    ...base.files.map((file) => ({path: file.source, content: file.content, mode: file.mode})),
    ...userFiles.map((file) => ({path: userFileKey(file.to), content: file.content, mode: file.mode})),
    ...buildSources.map((file) => ({path: `build:${file.source}`, content: file.content, mode: 0o644})),
  ])
  return {name, recipe, path: recipePath, text, files, buildSources, hash, extends: baseName}
}

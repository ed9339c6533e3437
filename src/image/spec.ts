/**
 * What --image (and a reproducer's image:) names, and its recipe loaded: pmemlab's recipe by
 * name (store.ts), or a user's recipe merged onto one of them (user-load.ts, loaded only then).
 */
import {loadRecipe, type LoadedRecipe, type LoadOptions} from './store.js'
import type {UserRecipe} from './user-recipe.js'

/**
 * What --image (or a reproducer's image:) names: a pmemlab recipe by name, the path of a user's
 * recipe file, or a user's recipe written inline in a reproducer (PATH is what image ls shows).
 */
export type ImageSpec = string | {kind: 'inline'; recipe: UserRecipe; path: string}

/** A name with a slash, or ending in .yaml or .yml, is a recipe file's path, not an image's name. */
export const isRecipePath = (spec: string): boolean => spec.includes('/') || /\.ya?ml$/.test(spec)

/** How messages name the image SPEC asks for. */
export const imageSpecText = (spec: ImageSpec): string => (typeof spec === 'string' ? spec : spec.path)

/** The recipe SPEC names, loaded and hashed; a user's recipe is merged onto its base (user-load.ts). */
export async function loadImage(spec: ImageSpec, opts: LoadOptions = {}): Promise<LoadedRecipe> {
  if (typeof spec === 'string' && !isRecipePath(spec)) return loadRecipe(spec, opts)
  const {loadUserRecipe, loadUserRecipeFile} = await import('./user-load.js')
  return typeof spec === 'string' ? loadUserRecipeFile(spec, opts) : loadUserRecipe(spec.recipe, spec.path, opts)
}


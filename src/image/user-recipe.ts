/**
 * A user's own image recipe (`--image ./my-image.yaml`, or a reproducer's `image:`): a file kept
 * in the user's project that extends one of pmemlab's recipes with more Debian packages, files
 * and compiled programs. Pure: text in, a UserRecipe out (one line naming FILE:LINE:COLUMN, exit
 * 2), merged onto its base recipe, and the merged image's cache identity.
 *
 *   version: 1              # optional
 *   extends: debian-12      # or default: the image `up` boots
 *   name: fio-lab           # optional: the file's name without .yaml
 *   packages: [fio]
 *   files:                  # sources relative to this file
 *     - {source: trigger.sh, to: /root/trigger.sh, mode: "0755"}
 *   build:                  # compiled inside the image, as the base recipe's programs are
 *     packages: [libaio-dev]
 *     programs: [{to: /usr/local/bin/trigger, sources: [src/trigger.c], libs: [aio]}]
 */
import {basename, resolve} from 'node:path'
import {z} from 'zod'
import {list, LocatedYaml, text, type YamlPath} from '../core/located.js'
import {usageError} from '../core/errors.js'
import {guestPathSchema, modeSchema, packageNameSchema, type Recipe} from './recipe.js'
import {DEFAULT_IMAGE} from './store.js'

export const USER_RECIPE_FORMAT = 1
const IMAGE_NAME = /^[a-z0-9][a-z0-9._-]*$/
/** Where the user's program sources are staged in the build directory, apart from pmemlab's. */
export const USER_SOURCES = 'user'

export interface UserFile {
  /** The host path: absolute, or relative to the recipe's directory. */
  source: string
  to: string[]
  mode: number
  /** FILE:LINE:COLUMN of the entry, for messages. */
  where: string
}

export interface UserProgram {
  to: string
  /** Relative to the recipe's directory. */
  sources: string[]
  libs: string[]
  static: boolean
  where: string
}

export interface UserRecipe {
  /** The file it was read from (or the reproducer holding it), for messages and `image ls`. */
  file: string
  /** The directory its relative sources are relative to. */
  baseDir: string
  name?: string
  description?: string
  /** A built-in recipe's name, or "default". */
  extends: string
  packages: string[]
  sizeMiB?: number
  files: UserFile[]
  build?: {packages: string[]; programs: UserProgram[]}
}

const toShape = z.preprocess((v) => (typeof v === 'string' ? [v] : v), z.array(guestPathSchema).min(1))

const fileShape = z.object({source: text, to: toShape, mode: modeSchema.default('0644')}).strict()

// Sources are staged under the build directory at their relative paths (a header next to its .c).
const programSourceSchema = text.refine((path) => !path.startsWith('/') && !path.split('/').includes('..'), 'sources are paths inside the recipe\'s directory, like src/trigger.c')
const programShape = z
  .object({
    to: guestPathSchema,
    sources: z.array(programSourceSchema).min(1).refine((paths) => paths.some((path) => path.endsWith('.c')), 'a program needs at least one .c source'),
    libs: list(z.string().regex(/^[A-Za-z0-9_+.-]+$/, 'libraries are names like pmem (for -lpmem)')),
    static: z.boolean().default(false),
  })
  .strict()
const buildShape = z.object({packages: list(packageNameSchema), programs: z.array(programShape).min(1)}).strict()

const userShape = z
  .object({
    version: z.number().optional(),
    extends: z.string().regex(/^(default|[a-z0-9][a-z0-9._-]*)$/, 'write default, or an image name like debian-12'),
    name: z.string().regex(IMAGE_NAME, 'use lower-case letters, digits, ".", "_" and "-"').optional(),
    description: text.optional(),
    packages: list(packageNameSchema),
    sizeMiB: z.number().int('write a whole number').min(64).max(1024 * 1024).optional(),
    files: list(fileShape),
    build: buildShape.optional(),
  })
  .strict()

function knownKeys(path: YamlPath): readonly string[] {
  const keys = (shape: z.AnyZodObject) => Object.keys(shape.shape)
  if (path.length === 0) return keys(userShape)
  if (path[0] === 'files') return keys(fileShape)
  if (path[0] === 'build') return path.length > 1 ? keys(programShape) : keys(buildShape)
  return []
}

/** Parses a user recipe's TEXT; FILE names it in errors and anchors its relative sources. */
export function parseUserRecipe(text: string, file: string): UserRecipe {
  const yaml = LocatedYaml.parse(text, file, new Set(['version', 'sizeMiB']))
  const raw = yaml.data
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw yaml.error([], 'is not an image recipe (a mapping with extends and packages or files)', 'see "Your own images" in the README')
  // Unversioned like pmemlab's own recipes; a version, when written, must be one this pmemlab reads.
  const version = (raw as {version?: unknown}).version
  if (version !== undefined && version !== USER_RECIPE_FORMAT) {
    throw yaml.error(['version'], `format ${JSON.stringify(version)} is not one this pmemlab reads`, `write version: ${USER_RECIPE_FORMAT} (or upgrade pmemlab)`)
  }
  const parsed = userShape.safeParse(raw)
  if (!parsed.success) throw yaml.issueError(parsed.error.issues, knownKeys)
  const data = parsed.data
  if (data.packages.length === 0 && data.files.length === 0 && !data.build) {
    throw yaml.error([], 'adds nothing to its base image', `list packages, files or build programs, or use --image ${data.extends}`)
  }
  return {
    file,
    baseDir: resolve(file, '..'),
    ...(data.name ? {name: data.name} : {}),
    ...(data.description ? {description: data.description} : {}),
    extends: data.extends,
    packages: data.packages,
    ...(data.sizeMiB ? {sizeMiB: data.sizeMiB} : {}),
    files: data.files.map((f, i) => ({source: f.source, to: f.to, mode: f.mode, where: yaml.whereIs(['files', i])})),
    ...(data.build
      ? {build: {packages: data.build.packages, programs: data.build.programs.map((p, i) => ({...p, where: yaml.whereIs(['build', 'programs', i])}))}}
      : {}),
  }
}

/** The built-in recipe a user recipe extends. */
export const baseImageOf = (user: Pick<UserRecipe, 'extends'>): string => (user.extends === 'default' ? DEFAULT_IMAGE : user.extends)

/** The name a user image is cached and listed under: its name:, else its file's name without .yaml. */
export function userImageName(user: Pick<UserRecipe, 'name' | 'file'>): string {
  if (user.name) return user.name
  const stem = basename(user.file).replace(/\.ya?ml$/, '').toLowerCase().replaceAll(/[^a-z0-9._-]+/g, '-').replace(/^[^a-z0-9]+/, '')
  return stem || 'user-image'
}

/** A merged recipe's guest file: SOURCE is the host path (absolute) for the user's files. */
export type MergedFile = Recipe['files'][number] & {user: boolean}

/**
 * BASE with USER's additions: packages joined in order without repeats, files and programs after
 * the base's, the user's file sources made absolute and program sources moved under USER_SOURCES.
 * A guest path the base already fills (or the user names twice) is refused at the user's line:
 * one of the two would silently win.
 */
export function mergeRecipe(base: Recipe, user: UserRecipe, name: string): Recipe {
  const taken = new Map<string, string>()
  for (const file of base.files) for (const to of file.to) taken.set(to, `the ${base.name} image's ${file.source}`)
  for (const program of base.build?.programs ?? []) taken.set(program.to, `the ${base.name} image's program`)
  const claim = (to: string, where: string, what: string) => {
    const holder = taken.get(to)
    if (holder) throw usageError(`${where}: ${to} is already ${holder}`, 'install it at another path')
    taken.set(to, `${what} at ${where}`)
  }
  for (const file of user.files) for (const to of file.to) claim(to, file.where, 'the file')
  for (const program of user.build?.programs ?? []) claim(program.to, program.where, 'the program')

  const union = (a: readonly string[], b: readonly string[]) => [...new Set([...a, ...b])]
  const files = [...base.files, ...user.files.map((file) => ({source: resolve(user.baseDir, file.source), to: file.to, mode: file.mode}))]
  const merged: Recipe = {
    ...base,
    name,
    // No host path in it: the description is part of the cache key (mergedRecipeText).
    description: user.description ?? `${base.name} with ${[...user.packages, ...user.files.flatMap((f) => f.to), ...(user.build?.programs.map((p) => p.to) ?? [])].join(', ')}`,
    packages: union(base.packages, user.packages),
    ...(user.sizeMiB ? {sizeMiB: user.sizeMiB} : {}),
    files,
  }
  if (user.build) {
    const programs = user.build.programs.map(({where: _where, ...program}) => ({...program, sources: program.sources.map((source) => `${USER_SOURCES}/${source}`)}))
    merged.build = base.build
      ? {...base.build, packages: union(base.build.packages, user.build.packages), programs: [...base.build.programs, ...programs]}
      : {packages: user.build.packages, keepPackages: false, cflags: ['-O2'], programs, upstream: []}
    // As recipe.ts requires of pmemlab's recipes: the image's own apt purges the build packages.
    if (merged.build.packages.length > 0 && !merged.build.keepPackages && !merged.packages.includes('apt')) {
      throw usageError(`${user.file}: build: list apt among the packages`, 'it removes the build packages inside the image')
    }
  }
  return merged
}

/**
 * The text the merged image's cache key covers (with every copied file's bytes, by imageHash):
 * the merged recipe as data, not as written, so re-indenting or re-commenting the user's file
 * keeps the image, while any change of meaning makes a new one. Host paths are left out (the
 * file's bytes, mode and guest paths stand for it): the same project checked out elsewhere is a
 * cache hit.
 */
export function mergedRecipeText(merged: Recipe, userFiles: number): string {
  const baseFiles = merged.files.length - userFiles
  const files = merged.files.map((file, i) => (i < baseFiles ? file : {to: file.to, mode: file.mode}))
  return `pmemlab-user-image-v1\n${JSON.stringify({...merged, files})}\n`
}

/** The key path imageHash files a user's copied file under: its guest paths, which no other file has. */
export const userFileKey = (to: readonly string[]) => `user:${to.join(',')}`

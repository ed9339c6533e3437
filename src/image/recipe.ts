/**
 * The recipe format (images/<name>/recipe.yaml): its schema, and the parse that validates a
 * recipe's text. Loaded only when a recipe's text is new to the cache (image.ts memoizes the
 * result), so that booting a lab does not load the YAML and schema libraries.
 */
import {parse as parseYaml} from 'yaml'
import {z} from 'zod'
import {usageError} from '../core/errors.js'

export const modeSchema = z
  .string({invalid_type_error: 'write modes as quoted octal strings, like "0755"'})
  .regex(/^0?[0-7]{3,4}$/, 'write modes as quoted octal strings, like "0755"')
  .transform((text) => Number.parseInt(text, 8))

export const guestPathSchema = z
  .string()
  .regex(/^\/[^\0]*$/, 'image paths must be absolute')
  .refine((path) => !path.split('/').includes('..'), 'image paths must not contain ".."')

const sourcePathSchema = z
  .string()
  .refine((path) => !path.startsWith('/') && !path.split('/').includes('..'), 'sources are paths inside the pmemlab package, like guest/pmemlab-init')

export const packageNameSchema = z.string().regex(/^[a-z0-9][a-z0-9+.-]+$/, 'not a Debian package name')

/**
 * Programs compiled inside the image while it is built (pmemlab's guest tests, against the
 * PMDK headers of the image's own Debian release: never on the host, whose glibc may be newer).
 * The build packages are installed with the image's packages and, unless keepPackages, purged
 * again inside the image's chroot before the image is written.
 */
const buildSchema = z
  .object({
    packages: z.array(packageNameSchema).default([]),
    keepPackages: z.boolean().default(false),
    cflags: z.array(z.string().regex(/^-[A-Za-z0-9=_,.+-]+$/, 'compiler flags look like -O2 or -Wall')).default(['-O2']),
    programs: z
      .array(
        z
          .object({
            to: guestPathSchema,
            // .c files are compiled, anything else (headers) is only copied next to them.
            sources: z.array(sourcePathSchema).min(1).refine((list) => list.some((path) => path.endsWith('.c')), 'a program needs at least one .c source'),
            libs: z.array(z.string().regex(/^[A-Za-z0-9_+.-]+$/, 'libraries are names like pmem (for -lpmem)')).default([]),
            // Linked with -static: under TCG the dynamic loader costs ~30 ms on every start.
            static: z.boolean().default(false),
          })
          .strict(),
      )
      .default([]),
    // Upstream projects built from a Debian source tarball inside the image (ndctl's and PMDK's
    // own test suites): fetched from the mirror's pool, checked against the pinned sha256,
    // unpacked into `to`/src and built there by `script` (run with `to` as its argument).
    upstream: z
      .array(
        z
          .object({
            name: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, 'use lower-case letters, digits, ".", "_" and "-"'),
            file: z.string().regex(/^pool\/[a-z0-9-]+\/[a-z0-9+.-]+\/[a-z0-9+.-]+\/[A-Za-z0-9+.~_-]+\.tar\.(gz|xz|bz2)$/, 'a tarball in the archive, like pool/main/n/ndctl/ndctl_81.orig.tar.gz'),
            sha256: z.string().regex(/^[0-9a-f]{64}$/, 'the tarball\'s sha256, as the Sources index lists it'),
            to: guestPathSchema,
            script: sourcePathSchema,
          })
          .strict(),
      )
      .default([]),
  })
  .strict()
  .refine((build) => build.programs.length + build.upstream.length > 0, 'a build needs programs or upstream sources')

export type RecipeBuild = z.infer<typeof buildSchema>

export const recipeSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, 'use lower-case letters, digits, ".", "_" and "-"'),
    description: z.string().min(1),
    suite: z.string().regex(/^[a-z0-9][a-z0-9.-]*$/),
    variant: z
      .enum(['extract', 'custom', 'essential', 'apt', 'required', 'minbase', 'buildd', 'important', 'debootstrap', 'standard'])
      .default('essential'),
    packages: z.array(packageNameSchema).default([]),
    sizeMiB: z.number().int().min(64).max(1024 * 1024),
    mirror: z.string().url().optional(),
    files: z
      .array(
        z
          .object({
            source: sourcePathSchema,
            to: z.array(guestPathSchema).min(1),
            mode: modeSchema,
          })
          .strict(),
      )
      .default([]),
    build: buildSchema.optional(),
  })
  .strict()
  .superRefine((recipe, ctx) => {
    // The build packages are purged by the image's own apt, inside its chroot: never by the
    // host's (an apt run against the wrong root removes the host's packages).
    if (recipe.build && recipe.build.packages.length > 0 && !recipe.build.keepPackages && !recipe.packages.includes('apt')) {
      ctx.addIssue({code: z.ZodIssueCode.custom, path: ['packages'], message: 'list apt among the packages: it removes the build packages inside the image (or set build.keepPackages)'})
    }
  })

export type Recipe = z.infer<typeof recipeSchema>

/** The validated recipe in text, read from where (for messages); it must be named name. */
export function parseRecipe(text: string, where: string, name: string): Recipe {
  let data: unknown
  try {
    data = parseYaml(text)
  } catch (error) {
    throw usageError(`recipe ${where} is not valid YAML`, (error as Error).message.split('\n')[0])
  }
  const parsed = recipeSchema.safeParse(data)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw usageError(`recipe ${where} is invalid`, `${issue.path.join('.') || '(top level)'}: ${issue.message}`)
  }
  if (parsed.data.name !== name) throw usageError(`recipe ${where} is invalid`, `name is "${parsed.data.name}" but the directory is "${name}"`)
  return parsed.data
}

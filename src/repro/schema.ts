/**
 * The reproducer file (`pmemlab repro FILE`): a versioned YAML document saying which kernel and
 * lab show a DAX bug, how the devices are prepared, the script that triggers it and what counts
 * as reproduced. Pure: text in, a validated ReproPlan out, or one line naming FILE:LINE:COLUMN
 * (exit 2).
 *
 *   version: 1
 *   kernel: debian:6.12                  # what --kernel takes (default: --kernel, else distro), or
 *   #  {version: 6.12, from: debian, configs: [kasan.config], set: {CONFIG_KASAN: y}, patches: [fix.patch]}
 *   lab: {nvdimm: [1G], mem: 2G, cpus: 4, append: [panic_on_warn=1]}   # as the up flags take them
 *   image: {extends: default, packages: [fio], files: [{source: trigger.sh, to: /root/trigger.sh, mode: "0755"}]}
 *   prepare:                             # prepare.ts
 *     nvdimm0: {mode: fsdax, mkfs: xfs, mount: /mnt/pmem}
 *   run:                                 # or run: SCRIPT
 *     script: |
 *       fio --filename=/mnt/pmem/f --rw=randwrite --ioengine=mmap ...
 *     runs: 10                           # how often (--runs overrides; default 1)
 *   expect: {must: [warning], must_not: [panic], timeout: 600}   # expect.ts
 *
 * The script runs as root in the guest under bash. Paths in the file (a kernel path, a recipe's
 * source, tree, configs and patches, backing files, the image's recipe and files) are relative
 * to the file's directory; the plan holds them resolved.
 */
import {dirname, resolve} from 'node:path'
import {z} from 'zod'
import {list, LocatedYaml, text, type YamlPath} from '../core/located.js'
import {guestPathSchema, modeSchema, packageNameSchema} from '../image/recipe.js'
import {isRecipePath} from '../image/spec.js'
import {buildShape, checkBuild, checkSpec, type KernelBuild, type SpecKind} from '../kernel/spec.js'
import {DEFAULT_MEMMAP, DEFAULT_NVDIMM} from '../lab/request.js'
import {checkMem, checkPmem, pmemFields} from '../lab/topology-file.js'
import type {MachineType} from '../lab/topology.js'
import {checkExpect, expectShape, type ReproExpect} from './expect.js'
import {checkMounts, checkPreparation, prepareShape, type DevicePreparation} from './prepare.js'

export const REPRO_FORMAT = 1

export type ReproKernel = {kind: SpecKind; spec: string; where: string} | {kind: 'build'; build: KernelBuild; where: string}

/** The lab as the up flags take it; backing files resolved. */
export interface ReproLab {
  memmap: string[]
  nvdimm: string[]
  virtioPmem: string[]
  mem: string
  cpus: number
  machine: MachineType
  append: string[]
}

export interface ImageFile {
  source: string
  to: string[]
  mode: number
}

export type ReproImage =
  | {kind: 'name'; name: string; where: string}
  | {kind: 'recipe'; path: string; where: string}
  /** The image named by base ("default": the one `up` boots) with more packages and files. */
  | {kind: 'extends'; base: string; packages: string[]; files: ImageFile[]; where: string}

export interface ReproRun {
  script: string
  /** How many runs when --runs says nothing; undefined when the file says nothing either (verdict.ts runLimit). */
  runs?: number
  where: string
}

export interface ReproPlan {
  file: string
  /** The directory relative paths in the file are relative to. */
  baseDir: string
  /** Undefined: what --kernel says, else distro. */
  kernel?: ReproKernel
  lab: ReproLab
  /** Undefined: the image --image names, else the default. */
  image?: ReproImage
  /** In the file's order. */
  prepare: DevicePreparation[]
  run: ReproRun
  expect: ReproExpect
}

/** As `up` defaults them (cli/flags.ts). */
const LAB_DEFAULTS = {mem: '1G', cpus: 2, machine: 'pc'} as const
export const MAX_RUNS = 1000

// ---------------------------------------------------------------------------------------------
// The shape (zod); meaning across fields is checked afterwards, with positions.

const oneOrList = <T extends z.ZodTypeAny>(item: T) => z.preprocess((v) => (typeof v === 'string' ? [v] : v), list(item))

const recipeShape = buildShape.extend({spec: text.optional()})
const kernelShape = z.preprocess((v) => (typeof v === 'string' ? {spec: v} : v), recipeShape)

const labShape = z
  .object({
    ...pmemFields,
    cpus: z.number().int('write a whole number').min(1).max(255).default(LAB_DEFAULTS.cpus),
    machine: z.enum(['pc', 'q35']).default(LAB_DEFAULTS.machine),
    append: oneOrList(text),
  })
  .strict()

const imageFileShape = z
  .object({
    source: text,
    to: z.preprocess((v) => (typeof v === 'string' ? [v] : v), z.array(guestPathSchema).min(1)),
    mode: modeSchema.default('0644'),
  })
  .strict()
const imageObject = z.object({recipe: text.optional(), extends: text.optional(), packages: list(packageNameSchema), files: list(imageFileShape)}).strict()
const imageShape = z.preprocess((v) => (typeof v === 'string' ? {recipe: v} : v), imageObject)

const runObject = z
  .object({
    script: z.string().regex(/\S/, 'is empty'),
    runs: z.number().int('write a whole number').min(1).max(MAX_RUNS).optional(),
  })
  .strict()
const runShape = z.preprocess((v) => (typeof v === 'string' ? {script: v} : v), runObject)

const fileShape = z
  .object({
    version: z.number({invalid_type_error: 'write version: 1'}),
    kernel: kernelShape.optional(),
    lab: labShape.nullish().transform((v) => v ?? labShape.parse({})),
    image: imageShape.optional(),
    prepare: z
      .record(z.string(), prepareShape.nullish().transform((v) => v ?? prepareShape.parse({})))
      .nullish()
      .transform((v) => v ?? {}),
    run: runShape,
    expect: expectShape,
  })
  .strict()

/** The keys an object at PATH takes, for "unknown key" messages. */
function knownKeys(path: YamlPath): readonly string[] {
  const keys = (shape: z.AnyZodObject) => Object.keys(shape.shape)
  const byKey: Record<string, z.AnyZodObject> = {kernel: recipeShape, lab: labShape, image: path.length > 1 ? imageFileShape : imageObject, prepare: prepareShape, run: runObject, expect: expectShape}
  return path.length === 0 ? keys(fileShape) : keys(byKey[String(path[0])] ?? z.object({}))
}

// ---------------------------------------------------------------------------------------------
// Reading a file

/** Parses and validates a reproducer file's TEXT; FILE names it in errors and anchors its relative paths. */
export function parseRepro(text: string, file: string): ReproPlan {
  const yaml = LocatedYaml.parse(text, file, new Set(['version', 'lab.cpus', 'run.runs', 'expect.exit', 'expect.timeout']))
  const data = yaml.versioned(REPRO_FORMAT, {what: 'a reproducer file (a mapping with version, run and expect)', example: 'examples/repro/warning-sysrq.yaml'}, fileShape, knownKeys)
  const baseDir = dirname(resolve(file))
  const at = (path: string) => resolve(baseDir, path)
  const kernel = data.kernel && checkKernel(yaml, data.kernel, at)
  const lab = checkLab(yaml, data.lab, at)
  const image = data.image && checkImage(yaml, data.image, at)
  const counts = {memmap: lab.memmap.length, nvdimm: lab.nvdimm.length, 'virtio-pmem': lab.virtioPmem.length}
  const prepare = Object.entries(data.prepare).map(([name, p]) => checkPreparation(yaml, name, p, counts))
  checkMounts(yaml, prepare)
  const run = {script: data.run.script, runs: data.run.runs, where: yaml.whereIs(['run'])}
  const expect = checkExpect(yaml, data.expect, ['expect'])
  return {file, baseDir, kernel, lab, image, prepare, run, expect}
}

type Resolve = (path: string) => string

function checkKernel(yaml: LocatedYaml, k: z.infer<typeof recipeShape>, at: Resolve): ReproKernel {
  const where = yaml.whereIs(['kernel'])
  if (k.spec !== undefined) {
    const written = yaml.valueAt(['kernel'])
    const others = written && typeof written === 'object' ? Object.keys(written).filter((key) => key !== 'spec') : []
    if (others.length > 0) throw yaml.error(['kernel'], `a spec goes alone, without ${others.join(', ')}`, 'write kernel: SPEC, or a recipe without spec', others[0])
    const form = checkSpec(yaml, k.spec, typeof written === 'string' ? ['kernel'] : ['kernel', 'spec'])
    return {kind: form.kind, spec: form.kind === 'path' ? at(k.spec) : k.spec, where}
  }
  const build = checkBuild(yaml, k, ['kernel'])
  return {
    kind: 'build',
    build: {...build, source: build.source && at(build.source), tree: build.tree && at(build.tree), configs: build.configs.map(at), ...(build.patches ? {patches: build.patches.map(at)} : {})},
    where,
  }
}

function checkLab(yaml: LocatedYaml, l: z.infer<typeof labShape>, at: Resolve): ReproLab {
  // A backing FILE is the user's, kept across runs; it is found from the reproducer's directory.
  const withFile = (value: string) => {
    const colon = value.indexOf(':')
    return colon < 0 ? value : `${value.slice(0, colon)}:${at(value.slice(colon + 1))}`
  }
  checkPmem(yaml, ['lab'], l)
  const mem = l.mem ?? LAB_DEFAULTS.mem
  checkMem(yaml, ['lab', 'mem'], mem)
  // As `up`: a lab that names no persistent memory gets one memmap range and one NVDIMM.
  const none = l.memmap.length + l.nvdimm.length + l['virtio-pmem'].length === 0
  return {
    memmap: none ? [DEFAULT_MEMMAP] : l.memmap,
    nvdimm: none ? [DEFAULT_NVDIMM] : l.nvdimm.map(withFile),
    virtioPmem: l['virtio-pmem'].map(withFile),
    mem,
    cpus: l.cpus,
    machine: l.machine,
    append: l.append,
  }
}

const IMAGE_NAME = /^[a-z0-9][a-z0-9._-]*$/

function checkImage(yaml: LocatedYaml, i: z.infer<typeof imageObject>, at: Resolve): ReproImage {
  const where = yaml.whereIs(['image'])
  const written = yaml.valueAt(['image'])
  if (i.recipe !== undefined) {
    const others = written && typeof written === 'object' ? Object.keys(written).filter((key) => key !== 'recipe') : []
    if (others.length > 0) throw yaml.error(['image'], `a recipe goes alone, without ${others.join(', ')}`, 'write image: RECIPE, or {extends: default, packages: [...], files: [...]}', others[0])
    const path: YamlPath = typeof written === 'string' ? ['image'] : ['image', 'recipe']
    // A recipe file is a path (it has a slash, or ends in .yaml); anything else names an image as --image does.
    if (isRecipePath(i.recipe)) return {kind: 'recipe', path: at(i.recipe), where}
    if (!IMAGE_NAME.test(i.recipe)) throw yaml.error(path, `"${i.recipe}" names no image`, 'write an image name like debian-12 (see pmemlab image ls) or the path of a recipe.yaml')
    return {kind: 'name', name: i.recipe, where}
  }
  const base = i.extends ?? 'default'
  if (base !== 'default' && !IMAGE_NAME.test(base)) throw yaml.error(['image', 'extends'], `"${base}" names no image`, 'write default, or an image name like debian-12')
  const files = i.files.map((f, j) => {
    if (f.source.endsWith('/')) throw yaml.error(['image', 'files', j, 'source'], `${f.source} is a directory`, 'list its files one by one')
    return {source: at(f.source), to: f.to, mode: f.mode}
  })
  return {kind: 'extends', base, packages: i.packages, files, where}
}

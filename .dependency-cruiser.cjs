// The layering of src/, checked by dependency-cruiser in `npm test` (test/unit/layout.test.ts).
// Data flows one way: commands -> cli -> matrix, bisect -> repro -> suite -> lab -> kernel, image -> core.
// A folder may import from the folders below it, never from one above it or beside it at its own
// level (matrix sits beside bisect and repro and imports neither, nor they it; bisect drives repro;
// kernel and image do not import each other), and nothing may form a cycle (type-only imports
// included: they couple modules just the same).
const LAYERS = {
  core: [],
  kernel: ['core'],
  image: ['core'],
  lab: ['kernel', 'image', 'core'],
  suite: ['lab', 'kernel', 'image', 'core'],
  matrix: ['suite', 'lab', 'kernel', 'image', 'core'],
  repro: ['suite', 'lab', 'kernel', 'image', 'core'],
  bisect: ['repro', 'suite', 'lab', 'kernel', 'image', 'core'],
  cli: ['matrix', 'bisect', 'repro', 'suite', 'lab', 'kernel', 'image', 'core'],
  commands: ['cli', 'matrix', 'bisect', 'repro', 'suite', 'lab', 'kernel', 'image', 'core'],
}

const folders = Object.keys(LAYERS)
const layerRules = folders.map((layer) => ({
  name: `layer-${layer}`,
  comment: `src/${layer}/ may import only from ${LAYERS[layer].length ? LAYERS[layer].map((l) => `src/${l}/`).join(', ') : 'node and npm packages'}`,
  severity: 'error',
  from: {path: `^src/${layer}/`},
  to: {path: `^src/(${folders.filter((f) => f !== layer && !LAYERS[layer].includes(f)).join('|')})/`},
}))

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'modules must not import each other, directly or through others',
      severity: 'error',
      from: {},
      to: {circular: true},
    },
    {
      name: 'src-in-folders',
      comment: 'every module lives in one of the layer folders',
      severity: 'error',
      from: {path: '^src/[^/]+\\.ts$'},
      to: {},
    },
    ...layerRules,
  ],
  options: {
    doNotFollow: {path: 'node_modules'},
    tsPreCompilationDeps: true,
    tsConfig: {fileName: 'tsconfig.json'},
    exclude: {path: '^(dist|node_modules)/'},
  },
}

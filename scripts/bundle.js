#!/usr/bin/env node
// Bundles the fast start (dist/src/cli/fast.js: up and exec without oclif) after tsc. Node 20
// has no compile cache, and loading ~30 ES modules one by one cost up and exec 40-50 ms each, a
// quarter of what `up --detach` + `exec` may add over the raw QEMU command. Dynamic imports
// stay separate chunks, so a command loads only what it runs. The output sits at the same depth
// as tsc's (dist/src/fast/), so paths taken from import.meta.url (core/paths.ts) hold in both.
import {build} from 'esbuild'

const outdir = new URL('../dist/src/fast/', import.meta.url).pathname
await build({
  entryPoints: [new URL('../dist/src/cli/fast.js', import.meta.url).pathname],
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // CommonJS dependencies (tmp-promise) call require, which an ES module does not have.
  banner: {js: "import {createRequire as pmemlabCreateRequire} from 'node:module'; const require = pmemlabCreateRequire(import.meta.url);"},
  logLevel: 'warning',
})
console.error(`fast start bundled into ${outdir}`)

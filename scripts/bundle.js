#!/usr/bin/env node
// Bundles what bin/run.js runs, after tsc: the fast start (cli/fast.js: up and exec without
// oclif) and every oclif command, into dist/bundle/ (package.json's oclif.commands points there).
// Node 20 has no compile cache, and loading pmemlab's modules and its dependencies as ~100
// separate ES modules cost every command more (measured: a bisect step 0.1 s, up and exec 40-50
// ms each). Code the entry points share, and each dynamic import, is a chunk of its
// own under chunks/, so a command loads only what it runs. oclif stays outside: bin/run.js loads
// it from node_modules, and two copies would not know each other's classes.
import {readdirSync} from 'node:fs'
import {join, relative} from 'node:path'
import {build} from 'esbuild'

const root = new URL('..', import.meta.url).pathname
const tscOut = join(root, 'dist', 'src')
const outdir = join(root, 'dist', 'bundle')
const commands = readdirSync(join(tscOut, 'commands'), {recursive: true})
  .filter((file) => file.endsWith('.js'))
  .map((file) => join(tscOut, 'commands', file))

await build({
  entryPoints: [join(tscOut, 'cli', 'fast.js'), ...commands],
  outbase: tscOut,
  outdir,
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['@oclif/*'],
  // CommonJS dependencies (tmp-promise) call require, which an ES module does not have.
  banner: {js: "import {createRequire as pmemlabCreateRequire} from 'node:module'; const require = pmemlabCreateRequire(import.meta.url);"},
  logLevel: 'warning',
})
console.error(`bundled the fast start and ${commands.length} commands into ${relative(root, outdir)}/`)

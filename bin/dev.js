#!/usr/bin/env node
// Development entry: rebuilds the TypeScript first so the CLI never runs stale code.
import {execFileSync} from 'node:child_process'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {execute} from '@oclif/core/execute'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.json')], {stdio: 'inherit'})
execFileSync(process.execPath, [join(root, 'scripts/bundle.js')], {stdio: 'inherit'}) // oclif loads the commands from the bundle
execFileSync(process.execPath, [join(root, 'scripts/manifest.js')], {stdio: 'inherit'})
await execute({development: true, dir: import.meta.url})

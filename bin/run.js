#!/usr/bin/env node
// up and exec, when their arguments are plain, run without oclif (see src/cli/fast.ts): scripts
// call them in loops and oclif's start costs about a quarter of a second each time. Both paths run
// from the bundle scripts/bundle.js makes, which loads faster than the ES modules one by one.
import {runFast} from '../dist/bundle/cli/fast.js'

if (!(await runFast(process.argv.slice(2)))) {
  // oclif's subpath entry points, here and in src/: its package index also loads ~50 modules
  // (semver among them) that no pmemlab command uses, and every start would pay for them.
  const {execute} = await import('@oclif/core/execute')
  await execute({dir: import.meta.url})
}

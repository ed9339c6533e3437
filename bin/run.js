#!/usr/bin/env node
// oclif's subpath entry points, here and in src/: its package index also loads ~50 modules
// (semver among them) that no pmemlab command uses, and every start would pay for them.
import {execute} from '@oclif/core/execute'

await execute({dir: import.meta.url})

#!/usr/bin/env node
// Writes oclif.manifest.json after a build. Without it oclif imports every command module (and
// their dependencies) on each start just to list them; with it, only the command being run loads.
import {rmSync, writeFileSync} from 'node:fs'
import {Config} from '@oclif/core'

const root = new URL('..', import.meta.url).pathname
// oclif would read the old manifest back and miss commands added since: start from the sources.
rmSync(new URL('../oclif.manifest.json', import.meta.url), {force: true})
const config = await Config.load({root, devPlugins: false, userPlugins: false})
const plugin = config.getPluginsList().find((p) => p.root === config.root)
writeFileSync(new URL('../oclif.manifest.json', import.meta.url), JSON.stringify(plugin.manifest, null, 2) + '\n')
console.error(`oclif.manifest.json: ${Object.keys(plugin.manifest.commands).length} commands`)

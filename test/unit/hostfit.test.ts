import assert from 'node:assert/strict'
import {test} from 'node:test'
import {ExitCode} from '../../src/core/errors.js'
import {GiB, MiB} from '../../src/core/size.js'
import {checkHostFit} from '../../src/lab/hostfit.js'
import {topologyRequest} from '../../src/lab/request.js'
import {planTopology} from '../../src/lab/topology.js'

const layout = (mem: string, memmap: string[] = [], nvdimm: string[] = []) => planTopology(topologyRequest({machine: 'pc', mem, memmap, nvdimm, virtioPmem: []}))
const roomy = {availableMemory: 20 * GiB, freeDisk: 50 * GiB, diskPath: '/var/tmp'}

test('a guest that fits the host is accepted', () => {
  assert.equal(checkHostFit(layout('1G', ['256M']), 512 * MiB, roomy), undefined)
})

test('guest RAM plus memmap ranges beyond available memory is refused, naming both figures', () => {
  const refusal = checkHostFit(layout('2G', ['1G']), 0, {...roomy, availableMemory: 2 * GiB})
  assert.ok(refusal)
  assert.equal(refusal.exitCode, ExitCode.usage)
  assert.match(refusal.oneLine(), /guest RAM 3 GiB \(memmap ranges 1 GiB included\) does not fit in the host's available memory \(2 GiB.*--force/)
  // The same plan fits a host with room for it and for QEMU beside it.
  assert.equal(checkHostFit(layout('2G', ['1G']), 0, {...roomy, availableMemory: 4 * GiB}), undefined)
})

test('--mem 10T is refused on any ordinary host', () => {
  const refusal = checkHostFit(layout('10T'), 0, roomy)
  assert.match(refusal!.oneLine(), /^guest RAM 10(\.0)? TiB .*does not fit in the host's available memory/)
})

test('disposable backing files beyond free disk are refused, naming the directory', () => {
  const refusal = checkHostFit(layout('1G', [], ['8G']), 8 * GiB, {...roomy, freeDisk: 4 * GiB})
  assert.match(refusal!.oneLine(), /disposable backing files \(8 GiB\) do not fit in the 4 GiB free in \/var\/tmp.*--force/)
})

import assert from 'node:assert/strict'
import {test} from 'node:test'
import {PmemlabError} from '../../src/core/errors.js'
import {checkVmName, parseDeviceFlag, parseMemmapFlag, topologyRequest, withDeviceFile} from '../../src/lab/request.js'

const M = 1024 ** 2
const G = 1024 ** 3

test('no pmem flags means the default lab: one memmap range and one NVDIMM', () => {
  const request = topologyRequest({machine: 'pc', mem: '1G', memmap: [], nvdimm: [], virtioPmem: []})
  assert.deepEqual(request.memmap, [{size: 256 * M}])
  assert.deepEqual(request.nvdimms, [{size: 512 * M}])
  assert.deepEqual(request.virtioPmem, [])
  assert.equal(request.ramBytes, G)
})

test('any pmem flag replaces the default topology', () => {
  const request = topologyRequest({machine: 'q35', mem: '2G', memmap: [], nvdimm: [], virtioPmem: ['1G:/tmp/v.img']})
  assert.deepEqual(request.memmap, [])
  assert.deepEqual(request.nvdimms, [])
  assert.deepEqual(request.virtioPmem, [{size: G, file: '/tmp/v.img'}])
})

test('memmap and device flags parse SIZE@OFFSET and SIZE:FILE', () => {
  assert.deepEqual(parseMemmapFlag('256M@4G'), {size: 256 * M, offset: 4 * G})
  assert.deepEqual(parseMemmapFlag('1G'), {size: G})
  assert.deepEqual(parseDeviceFlag('512M:/var/tmp/a:b.img', '--nvdimm'), {size: 512 * M, file: '/var/tmp/a:b.img'})
  for (const bad of ['256M@', '@4G', '1G@2G@3G', '12Q']) assert.throws(() => parseMemmapFlag(bad), PmemlabError, bad)
  assert.throws(() => parseDeviceFlag('512M:', '--nvdimm'), (error: unknown) => error instanceof PmemlabError && /SIZE:FILE/.test(error.oneLine()))
})

test('",labels" gives an NVDIMM a label area, with or without a file, and only an NVDIMM', () => {
  assert.deepEqual(parseDeviceFlag('1G,labels', '--nvdimm'), {size: G, labelBytes: 128 * 1024})
  assert.deepEqual(parseDeviceFlag('1G,labels=256K', '--nvdimm'), {size: G, labelBytes: 256 * 1024})
  assert.deepEqual(parseDeviceFlag('1G:/var/tmp/n,1.img,labels', '--nvdimm'), {size: G, file: '/var/tmp/n,1.img', labelBytes: 128 * 1024})
  assert.deepEqual(parseDeviceFlag('1G:/var/tmp/n,1.img', '--nvdimm'), {size: G, file: '/var/tmp/n,1.img'})
  assert.throws(() => parseDeviceFlag('1G,labels', '--virtio-pmem'), (error: unknown) => error instanceof PmemlabError && /NVDIMM feature/.test(error.oneLine()))
  assert.throws(() => parseDeviceFlag('1G,labels=lots', '--nvdimm'), PmemlabError)
  // The power-loss case backs the first NVDIMM with its own file and keeps the labels.
  assert.equal(withDeviceFile('1G,labels', '/tmp/x.img'), '1G:/tmp/x.img,labels')
  assert.equal(withDeviceFile('1G', '/tmp/x.img'), '1G:/tmp/x.img')
  assert.deepEqual(parseDeviceFlag(withDeviceFile('1G,labels=256K', '/tmp/x.img'), '--nvdimm'), {size: G, file: '/tmp/x.img', labelBytes: 256 * 1024})
})

test('VM names are short and safe for paths', () => {
  assert.equal(checkVmName('lab-1_a'), 'lab-1_a')
  for (const bad of ['', '-x', 'a/b', '../x', 'x'.repeat(33), 'a b']) assert.throws(() => checkVmName(bad), PmemlabError, bad)
})

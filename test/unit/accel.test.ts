import assert from 'node:assert/strict'
import {test} from 'node:test'
import {decideAccel, judgeKvm, parseCpuFlags, type HostVirtFacts} from '../../src/lab/accel.js'
import {PmemlabError} from '../../src/core/errors.js'

const facts = (over: Partial<HostVirtFacts>): HostVirtFacts => ({arch: 'x64', kvmDevice: 'ok', cpuFlags: new Set(['fpu', 'vmx']), ...over})

test('KVM is usable only with /dev/kvm and a vmx or svm flag', () => {
  assert.equal(judgeKvm(facts({})).usable, true)
  assert.equal(judgeKvm(facts({cpuFlags: new Set(['svm'])})).usable, true)
  const noFlag = judgeKvm(facts({cpuFlags: new Set(['fpu', 'sse2'])}))
  assert.equal(noFlag.usable, false)
  assert.match(noFlag.reason, /no vmx\/svm/)
  assert.match(judgeKvm(facts({kvmDevice: 'missing'})).reason, /does not exist/)
  assert.match(judgeKvm(facts({kvmDevice: 'no-permission'})).reason, /kvm group/)
})

test('auto falls back to TCG on a host whose /dev/kvm opens without vmx/svm', () => {
  const decision = decideAccel('auto', facts({cpuFlags: new Set(['fpu'])}))
  assert.equal(decision.accel, 'tcg')
  assert.equal(decision.kvmUsable, false)
  assert.equal(decideAccel('auto', facts({})).accel, 'kvm')
  assert.equal(decideAccel('tcg', facts({})).accel, 'tcg')
})

test('--accel kvm where KVM does not work is a missing dependency', () => {
  assert.throws(() => decideAccel('kvm', facts({kvmDevice: 'missing'})), (error: unknown) => error instanceof PmemlabError && error.exitCode === 3)
})

test('cpu flags are read from /proc/cpuinfo text', () => {
  const flags = parseCpuFlags('processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu vme de pse vmx sse2\nbugs\t\t: spectre\n')
  assert.ok(flags.has('vmx'))
  assert.ok(!flags.has('spectre'))
  assert.equal(parseCpuFlags('').size, 0)
})

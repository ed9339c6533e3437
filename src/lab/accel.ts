import {constants} from 'node:fs'
import {access, readFile} from 'node:fs/promises'
import {ExitCode, PmemlabError} from '../core/errors.js'

export type AccelRequest = 'auto' | 'kvm' | 'tcg'
export type Accel = 'kvm' | 'tcg'

export interface HostVirtFacts {
  arch: string
  kvmDevice: 'missing' | 'no-permission' | 'ok'
  cpuFlags: Set<string>
}

export interface AccelDecision {
  accel: Accel
  kvmUsable: boolean
  reason: string
}

/**
 * Whether KVM really works. Opening /dev/kvm is not enough: on some hosts the device opens and
 * KVM_CREATE_VM succeeds, yet the CPU exposes no vmx/svm and a guest never leaves the firmware.
 */
export function judgeKvm(facts: HostVirtFacts): {usable: boolean; reason: string} {
  if (facts.arch !== 'x64') return {usable: false, reason: `pmemlab drives qemu-system-x86_64; KVM is not usable on a ${facts.arch} host`}
  if (facts.kvmDevice === 'missing') return {usable: false, reason: '/dev/kvm does not exist (no KVM module, or a VM without nested virtualisation)'}
  if (facts.kvmDevice === 'no-permission') return {usable: false, reason: '/dev/kvm exists but cannot be opened read-write: add yourself to the kvm group'}
  if (!facts.cpuFlags.has('vmx') && !facts.cpuFlags.has('svm')) {
    return {usable: false, reason: '/dev/kvm opens but the CPU shows no vmx/svm flag: guests would hang in the firmware, so only TCG works here'}
  }
  return {usable: true, reason: `/dev/kvm opens and the CPU has ${facts.cpuFlags.has('vmx') ? 'vmx' : 'svm'}`}
}

export function decideAccel(requested: AccelRequest, facts: HostVirtFacts): AccelDecision {
  const kvm = judgeKvm(facts)
  if (requested === 'tcg') return {accel: 'tcg', kvmUsable: kvm.usable, reason: 'TCG was asked for'}
  if (requested === 'kvm') {
    if (!kvm.usable) throw new PmemlabError(`--accel kvm is not usable here: ${kvm.reason}`, ExitCode.missingDependency, 'use --accel tcg or --accel auto')
    return {accel: 'kvm', kvmUsable: true, reason: kvm.reason}
  }
  return {accel: kvm.usable ? 'kvm' : 'tcg', kvmUsable: kvm.usable, reason: kvm.reason}
}

export function parseCpuFlags(cpuinfo: string): Set<string> {
  const line = cpuinfo.split('\n').find((l) => /^flags\s*:/.test(l))
  return new Set(line ? line.split(':')[1].trim().split(/\s+/) : [])
}

export async function probeHostVirt(): Promise<HostVirtFacts> {
  let kvmDevice: HostVirtFacts['kvmDevice'] = 'ok'
  try {
    await access('/dev/kvm', constants.R_OK | constants.W_OK)
  } catch (error) {
    kvmDevice = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : 'no-permission'
  }
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '')
  return {arch: process.arch, kvmDevice, cpuFlags: parseCpuFlags(cpuinfo)}
}

import {usageError} from './errors.js'

export const KiB = 1024
export const MiB = 1024 * KiB
export const GiB = 1024 * MiB

const UNITS: Record<string, number> = {'': 1, K: KiB, M: MiB, G: GiB, T: 1024 * GiB}

/**
 * Parses sizes the way QEMU and the kernel's memparse write them: 512M, 1G, 4096, 1.5G.
 * Binary units only; a suffix of B or iB is accepted for readability (512MiB).
 */
export function parseSize(text: string, what = 'size'): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$/i.exec(text)
  if (!match) {
    throw usageError(`invalid ${what} "${text}"`, 'write a number with an optional K, M, G or T suffix, like 512M or 2G')
  }
  const bytes = Number(match[1]) * UNITS[match[2].toUpperCase()]
  if (!Number.isSafeInteger(bytes) || bytes <= 0) {
    throw usageError(`invalid ${what} "${text}"`, 'the size must be a positive whole number of bytes')
  }
  return bytes
}

/** The shortest exact form with the largest unit: 268435456 -> "256M". Accepted by QEMU and the kernel. */
export function formatSize(bytes: number): string {
  for (const unit of ['T', 'G', 'M', 'K']) {
    if (bytes >= UNITS[unit] && bytes % UNITS[unit] === 0) return `${bytes / UNITS[unit]}${unit}`
  }
  return String(bytes)
}

/** Human form for messages: 1.5 GiB, 256 MiB. */
export function humanSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes
  let index = 0
  while (value >= 1024 && index < units.length - 1) {
    value /= 1024
    index++
  }
  return `${Number.isInteger(value) ? value : value.toFixed(1)} ${units[index]}`
}

export const hex = (n: number) => `0x${n.toString(16)}`

import {constants} from 'node:fs'
import {access} from 'node:fs/promises'
import {delimiter, join} from 'node:path'
import {missingDependency} from './errors.js'

/** The absolute path of a program on PATH (sbin included: mkfs and friends live there), or undefined. */
export async function which(program: string): Promise<string | undefined> {
  if (program.includes('/')) return (await isExecutable(program)) ? program : undefined
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin']
  for (const dir of dirs) {
    if (!dir) continue
    const candidate = join(dir, program)
    if (await isExecutable(candidate)) return candidate
  }
  return undefined
}

const isExecutable = (path: string) => canAccess(path, constants.X_OK)

/** Whether path exists (F_OK) or allows the access mode given. */
export async function canAccess(path: string, mode: number = constants.F_OK): Promise<boolean> {
  try {
    await access(path, mode)
    return true
  } catch {
    return false
  }
}

/** Like which(), but a missing program is exit code 3 with the package that brings it. */
export async function requireProgram(program: string, debianPackage: string): Promise<string> {
  const found = await which(program)
  if (!found) throw missingDependency(`${program} not found`, `install it with: apt-get install ${debianPackage}`)
  return found
}

export const qemuBinaryName = () => process.env.PMEMLAB_QEMU ?? 'qemu-system-x86_64'

/**
 * How a lab boots, past its devices: the firmware and the kernel arguments that leave out what no
 * lab uses (qemu.ts QUICK_BOOT_ARGS). PMEMLAB_PLAIN_BOOT=1 turns both off (QEMU's default SeaBIOS,
 * no extra arguments), for a kernel bug that needs the PS/2 devices or ACPI's interrupt routing,
 * and for the boot benchmark's "before" figures.
 */
import {dirname, join} from 'node:path'
import {canAccess} from '../core/which.js'

export const plainBoot = (): boolean => process.env.PMEMLAB_PLAIN_BOOT === '1'

/**
 * qboot, the minimal firmware QEMU ships: it loads the kernel from fw_cfg without SeaBIOS's device
 * scan and option ROMs (0.2 s less per boot under TCG). Looked for in the data directory of the
 * QEMU binary; without it (or with PMEMLAB_PLAIN_BOOT=1) the lab boots QEMU's default firmware.
 */
export async function quickFirmware(qemuBinary: string): Promise<string | undefined> {
  if (plainBoot()) return undefined
  for (const dir of [join(dirname(qemuBinary), '..', 'share', 'qemu'), '/usr/share/qemu']) {
    const path = join(dir, 'qboot.rom')
    if (await canAccess(path)) return path
  }
  return undefined
}

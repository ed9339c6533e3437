import assert from 'node:assert/strict'
import {existsSync} from 'node:fs'
import {mkdtemp, rm, stat} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {dirname, join} from 'node:path'
import {after, before, describe, test} from 'node:test'
import {execa} from 'execa'
import {setTimeout as sleep} from 'node:timers/promises'
import {LIST_PMEM, makeLab, root, parsePmemList, readbackScript, type Lab} from './cli.js'

const M = 1024 ** 2

/** Issue 2's acceptance: real guests under whatever accelerator this host really has. */
describe('a lab you can boot', {timeout: 1_800_000}, () => {
  let lab: Lab
  let scratch: string
  before(async () => {
    lab = await makeLab()
    scratch = await mkdtemp(join(tmpdir(), 'pmemlab-files-'))
  })
  after(async () => {
    await lab.pmemlab(['down', '--all', '--timeout', '5'])
    await lab.dispose()
    await rm(scratch, {recursive: true, force: true})
  })

  test('the guest image builds (or is already cached) and is listed', async () => {
    const built = await lab.pmemlab(['image', 'build', 'debian-12'])
    assert.equal(built.exitCode, 0, built.stderr)
    const listed = await lab.pmemlab(['image', 'ls', '--json'])
    assert.equal(listed.exitCode, 0, listed.stderr)
    const images = JSON.parse(listed.stdout) as Array<{name: string; path: string}>
    const image = images.find((i) => i.name === 'debian-12')
    assert.ok(image, listed.stdout)
    assert.ok((await stat(image.path)).size > 100 * M)
  })

  test('up --detach gives two pmem devices of the requested sizes that keep what is written', async (t) => {
    t.after(() => lab.pmemlab(['down', 'main', '--timeout', '5']))
    const flags = ['--name', 'main', '--kernel', 'distro', '--memmap', '256M', '--nvdimm', '512M']
    const dry = JSON.parse((await lab.pmemlab(['up', '--dry-run', '--detach', '--json', ...flags])).stdout) as {argv: string[]; kernelCmdline: string}
    const upResult = await lab.pmemlab(['up', '--detach', '--json', ...flags])
    assert.equal(upResult.exitCode, 0, upResult.stderr)
    const vm = JSON.parse(upResult.stdout) as {name: string; pid: number; argv: string[]; devices: Array<{kind: string; size: number; file?: string}>}
    assert.equal(vm.name, 'main')
    // --dry-run printed the very argv that runs, firmware included: qboot where this QEMU ships it.
    assert.deepEqual(vm.argv, dry.argv)
    const bios = dry.argv.includes('-bios') ? dry.argv[dry.argv.indexOf('-bios') + 1] : undefined
    const qboot = [join(dirname(dry.argv[0]), '..', 'share', 'qemu', 'qboot.rom'), '/usr/share/qemu/qboot.rom'].find((path) => existsSync(path))
    assert.equal(bios, qboot)
    const cmdline = await lab.pmemlab(['exec', 'main', '--', 'cat', '/proc/cmdline'])
    assert.equal(cmdline.stdout.trim(), dry.kernelCmdline)
    assert.match(dry.kernelCmdline, /i8042\.noaux i8042\.nokbd acpi=noirq/)
    const disposable = vm.devices.find((d) => d.kind === 'nvdimm')!.file!
    assert.ok(existsSync(disposable))

    const ls = await lab.pmemlab(['exec', 'main', '--', 'ls', '/dev'])
    assert.equal(ls.exitCode, 0, ls.stderr)
    const pmemNodes = ls.stdout.split(/\s+/).filter((n) => /^pmem\d+$/.test(n))
    assert.equal(pmemNodes.length, 2, ls.stdout)

    const listed = await lab.pmemlab(['exec', 'main', '--', 'sh', '-c', LIST_PMEM])
    assert.equal(listed.exitCode, 0, listed.stderr)
    const byKind = parsePmemList(listed.stdout)
    assert.deepEqual(byKind.get('memmap')?.map((d) => d.bytes), [256 * M], listed.stdout)
    assert.deepEqual(byKind.get('nvdimm')?.map((d) => d.bytes), [512 * M], listed.stdout)

    for (const {dev} of [...byKind.get('memmap')!, ...byKind.get('nvdimm')!]) {
      const readback = await lab.pmemlab(['exec', 'main', '--', 'sh', '-c', readbackScript(dev)])
      assert.equal(readback.stdout.trim(), 'same', `${dev}: ${readback.stderr}`)
    }

    const again = await lab.pmemlab(['up', '--detach', '--name', 'main'])
    assert.equal(again.exitCode, 5, 'a second VM with the same name is a conflict')
    assert.match(again.stderr, /already running/)
    assert.equal(again.stderr.trim().split('\n').length, 1, `one line, and before any work: ${again.stderr}`)

    const status = await lab.pmemlab(['exec', 'main', '--', 'sh', '-c', 'echo out; echo err >&2; exit 7'])
    assert.equal(status.exitCode, 7)
    assert.equal(status.stdout, 'out')
    assert.equal(status.stderr, 'err')

    const missing = await lab.pmemlab(['exec', 'main', '--', 'no-such-command'])
    assert.equal(missing.exitCode, 127, 'a command the guest does not have exits like a shell says')
    assert.match(missing.stderr, /no-such-command: No such file or directory/)

    const big = await lab.pmemlab(['exec', 'main', '--', 'sh', '-c', "head -c 300000 /dev/zero | tr '\\0' x"])
    assert.equal(big.stdout.length, 300_000, 'output larger than one read chunk arrives whole')
    assert.match(big.stdout, /^x+$/)

    // Output streams while the command runs, and the files it goes through are unlinked at once.
    const streaming = lab.start(['exec', 'main', '--', 'sh', '-c', 'echo first; sleep 4; ls /run | grep -c pmemlab-exec; echo last'])
    const firstSeen = new Promise<number>((resolve) => streaming.stdout!.on('data', (chunk: Buffer) => String(chunk).includes('first') && resolve(Date.now())))
    const finished = await streaming
    assert.equal(finished.exitCode, 0, String(finished.stderr))
    assert.ok(Date.now() - (await firstSeen) >= 3000, 'the first line arrived before the command ended')
    assert.deepEqual(String(finished.stdout).split('\n'), ['first', '0', 'last'], 'no exec files are left in the guest /run')

    // A client that dies mid-command leaves nothing that confuses the next one.
    const abandoned = lab.start(['exec', 'main', '--', 'sleep', '30'])
    await sleep(1500)
    abandoned.kill('SIGKILL')
    await abandoned
    const next = await lab.pmemlab(['exec', 'main', '--', 'echo', 'next'])
    assert.equal(next.exitCode, 0, next.stderr)
    assert.equal(next.stdout, 'next')

    // qemu-ga dies (here: killed); pmemlab-init restarts it and the agent relay reconnects.
    const kill = await lab.pmemlab(['exec', 'main', '--', 'sh', '-c', '(sleep 1; kill $(pidof qemu-ga)) >/dev/null 2>&1 &'])
    assert.equal(kill.exitCode, 0, kill.stderr)
    await sleep(3000)
    const restarted = await lab.pmemlab(['exec', 'main', '--', 'sh', '-c', 'grep -c "qemu-ga exited" /run/qemu-ga.log'])
    assert.equal(restarted.exitCode, 0, restarted.stderr)
    assert.equal(restarted.stdout, '1', 'qemu-ga was killed once and the agent answers again')

    // The serial console, through a pseudo-terminal as a user would have it; Ctrl-] detaches.
    const console = execa('script', ['-qfec', `${process.execPath} ${join(root, 'bin', 'run.js')} console main`, '/dev/null'], {env: lab.env, reject: false})
    await sleep(2000)
    console.stdin!.write('echo console-$((6*7))\r')
    await sleep(3000)
    console.stdin!.write('\u001d')
    const attached = await console
    assert.match(String(attached.stdout), /console-42/)
    assert.match(String(attached.stdout), /detached from main/)
    assert.equal((await lab.pmemlab(['exec', 'main', '--', 'true'])).exitCode, 0, 'the VM outlives a detached console')

    const down = await lab.pmemlab(['down', 'main'])
    assert.equal(down.exitCode, 0, down.stderr)
    assert.match(down.stderr, /main: stopped \(quit\)/, 'nothing of main outlives it: no power-off is waited for')
    assert.deepEqual(await lab.qemuProcesses('main'), [])
    assert.ok(!(await lab.vmDirs()).includes('main'))
    assert.ok(!existsSync(disposable), 'the disposable backing file is deleted')

    const gone = await lab.pmemlab(['exec', 'main', '--', 'true'])
    assert.equal(gone.exitCode, 4)
    assert.match(gone.stderr, /no VM named "main"/)
  })

  test('a range outside backed RAM shows up as /dev/pmem but loses what is written (the trap the planner avoids)', async () => {
    // 1 GiB of RAM and a hand-written memmap in the PCI hole: only --append bypasses the planner.
    const result = await lab.pmemlab(['up', '--name', 'hole', '--kernel', 'distro', '--mem', '1G', '--nvdimm', '128M', '--append', 'memmap=256M!3G', '--',
      'sh', '-c', `dev=$(cd /sys/block && for d in pmem*; do case $(readlink -f $d/device) in *e820*) echo $d;; esac; done); echo dev=$dev; ${readbackScript('$dev')}`])
    assert.match(result.stdout, /dev=pmem\d/, result.stderr)
    assert.match(result.stdout, /differ/)
    assert.deepEqual(await lab.qemuProcesses('hole'), [])
  })

  test('a file-backed NVDIMM keeps data for the next VM; a memmap range does not', async () => {
    const file = join(scratch, 'nvdimm0.img')
    const write = `set -e
printf 'pmemlab-persist-%s' nvdimm | dd of=/dev/$(cd /sys/block && for d in pmem*; do case $(readlink -f $d/device) in *ACPI0012*) echo $d;; esac; done) oflag=direct conv=fsync,sync bs=512 status=none
printf 'pmemlab-persist-%s' memmap | dd of=/dev/$(cd /sys/block && for d in pmem*; do case $(readlink -f $d/device) in *e820*) echo $d;; esac; done) oflag=direct conv=fsync,sync bs=512 status=none
echo written`
    const read = `for d in /sys/block/pmem*; do case $(readlink -f $d/device) in *ACPI0012*) k=nvdimm;; *e820*) k=memmap;; esac
  echo "$k $(dd if=/dev/\${d##*/} bs=512 count=1 iflag=direct status=none | tr -dc 'a-z-')"; done`
    const first = await lab.pmemlab(['up', '--name', 'persist1', '--kernel', 'distro', '--memmap', '256M', '--nvdimm', `512M:${file}`, '--', 'sh', '-c', write])
    assert.equal(first.exitCode, 0, first.stderr)
    assert.equal(first.stdout.trim(), 'written')
    assert.equal((await stat(file)).size, 512 * M, 'the named file is kept after the VM')

    // The second VM is detached, so that down says how it stopped: a named file means a power-off first.
    const up = await lab.pmemlab(['up', '--detach', '--name', 'persist2', '--kernel', 'distro', '--memmap', '256M', '--nvdimm', `512M:${file}`])
    assert.equal(up.exitCode, 0, up.stderr)
    const second = await lab.pmemlab(['exec', 'persist2', '--', 'sh', '-c', read])
    assert.equal(second.exitCode, 0, second.stderr)
    const down = await lab.pmemlab(['down', 'persist2'])
    assert.match(down.stderr, /persist2: stopped \(graceful\)/)
    assert.match(second.stdout, /^nvdimm pmemlab-persist-nvdimm$/m)
    assert.match(second.stdout, /^memmap $/m, 'a memmap range starts empty in a new VM')
    assert.equal((await stat(file)).size, 512 * M)
    assert.deepEqual(await lab.qemuProcesses('persist1'), [])
    assert.deepEqual(await lab.qemuProcesses('persist2'), [])
    assert.ok(!(await lab.vmDirs()).some((d) => d.startsWith('persist')))
  })

  test('SIGTERM to a foreground up leaves no QEMU and no VM directory', async () => {
    const child = lab.start(['up', '--kernel', 'distro', '--name', 'term', '--', 'sleep', '600'])
    await waitFor(async () => (await lab.qemuProcesses('term')).length === 1, 60_000)
    await waitFor(async () => existsSync(join(lab.stateDir, 'vms', 'term', 'vm.json')), 10_000)
    child.kill('SIGTERM')
    const result = await child
    assert.equal(result.exitCode, 130, String(result.stderr))
    assert.deepEqual(await lab.qemuProcesses('term'), [])
    assert.ok(!(await lab.vmDirs()).includes('term'))
  })

  test('a foreground up killed with SIGKILL takes its QEMU with it', async () => {
    const child = lab.start(['up', '--kernel', 'distro', '--name', 'killed', '--', 'sleep', '600'])
    await waitFor(async () => (await lab.qemuProcesses('killed')).length === 1, 60_000)
    child.kill('SIGKILL')
    await child
    await waitFor(async () => (await lab.qemuProcesses('killed')).length === 0, 10_000)
    // The orphaned directory is reaped by the next command that looks.
    const ls = await lab.pmemlab(['ls', '--json'])
    assert.ok(!(JSON.parse(ls.stdout) as Array<{name: string}>).some((vm) => vm.name === 'killed'), ls.stdout)
    assert.ok(!(await lab.vmDirs()).includes('killed'))
  })
})

async function waitFor(condition: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('timed out waiting')
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

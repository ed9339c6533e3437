import assert from 'node:assert/strict'
import {execa} from 'execa'
import {chown, mkdir, mkdtemp, readdir, rm, stat} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'
import {root} from './cli.js'

/**
 * pmemlab as users who are not root, switched to with runuser: one with subordinate ids builds the
 * image and boots a lab; one without is refused with the fix before anything is built. .ci/run
 * creates both users and names them in PMEMLAB_TEST_USER and PMEMLAB_TEST_USER_NO_SUBID.
 */
const userWithIds = process.env.PMEMLAB_TEST_USER
const userWithoutIds = process.env.PMEMLAB_TEST_USER_NO_SUBID
const skip =
  !userWithIds || !userWithoutIds
    ? 'set PMEMLAB_TEST_USER (a user with subordinate ids) and PMEMLAB_TEST_USER_NO_SUBID (one without), as .ci/run does'
    : process.getuid?.() !== 0
      ? 'PMEMLAB_TEST_USER and PMEMLAB_TEST_USER_NO_SUBID are set, but switching to those users needs root'
      : false

const CHECK = 'image build without root'

interface UserLab {
  name: string
  uid: number
  base: string
  cache: string
  state: string
  pmemlab(args: string[], timeout?: number): Promise<{exitCode: number; stdout: string; stderr: string}>
}

interface DoctorJson {
  ok: boolean
  checks: Array<{name: string; ok: boolean; required: boolean; detail: string; fix?: string}>
}

/** The files bin/run.js needs, copied where other users can read them when the checkout is not. */
async function readableApp(user: string): Promise<{dir: string; copied: boolean}> {
  const canRead = await execa('runuser', ['-u', user, '--', 'test', '-r', join(root, 'bin', 'run.js'), '-a', '-r', join(root, 'package.json')], {
    reject: false,
    cwd: '/',
  })
  if (canRead.exitCode === 0) return {dir: root, copied: false}
  const dir = await mkdtemp(join(tmpdir(), 'pmemlab-nonroot-app-'))
  const parts = ['bin', 'dist', 'images', 'guest', 'kernel-configs', 'node_modules', 'package.json', 'oclif.manifest.json']
  await execa('cp', ['-a', ...parts.map((part) => join(root, part)), dir])
  await execa('chmod', ['-R', 'a+rX', dir])
  return {dir, copied: true}
}

/** A HOME, cache and state directory owned by USER, and pmemlab run as USER with them. */
async function makeUserLab(name: string, app: string): Promise<UserLab> {
  const uid = Number((await execa('id', ['-u', name])).stdout)
  const gid = Number((await execa('id', ['-g', name])).stdout)
  const base = await mkdtemp(join(tmpdir(), `pmemlab-nonroot-${name}-`))
  const [home, cache, state] = ['home', 'cache', 'state'].map((dir) => join(base, dir))
  for (const dir of [home, cache, state]) await mkdir(dir)
  for (const dir of [base, home, cache, state]) await chown(dir, uid, gid)
  const env = {
    HOME: home,
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    PMEMLAB_CACHE_DIR: cache,
    PMEMLAB_STATE_DIR: state,
    NO_COLOR: '1',
    ...Object.fromEntries(['PMEMLAB_DEBIAN_MIRROR', 'PMEMLAB_QEMU'].filter((key) => process.env[key]).map((key) => [key, process.env[key]!])),
  }
  return {
    name,
    uid,
    base,
    cache,
    state,
    async pmemlab(args, timeout = 600_000) {
      // env -i: nothing of root's environment reaches the user's pmemlab but what is listed.
      const argv = ['-u', name, '--', 'env', '-i', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), process.execPath, join(app, 'bin', 'run.js'), ...args]
      const result = await execa('runuser', argv, {reject: false, timeout, stdin: 'ignore', cwd: home})
      return {exitCode: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr)}
    },
  }
}

const qemuUnder = async (dir: string) =>
  (await execa('pgrep', ['-af', dir], {reject: false})).stdout.split('\n').filter((line) => line.includes('qemu-system'))

const doctorCheck = (stdout: string) => {
  const check = (JSON.parse(stdout) as DoctorJson).checks.find((c) => c.name === CHECK)
  assert.ok(check, `doctor has a "${CHECK}" check: ${stdout}`)
  return check
}

describe('pmemlab as a user who is not root', {skip, timeout: 1_200_000}, () => {
  let app: {dir: string; copied: boolean}
  const labs: UserLab[] = []
  before(async () => {
    app = await readableApp(userWithIds!)
  })
  after(async () => {
    for (const lab of labs) {
      for (const line of await qemuUnder(lab.state)) {
        try {
          process.kill(Number(line.split(' ')[0]), 'SIGKILL')
        } catch {}
      }
      await rm(lab.base, {recursive: true, force: true})
    }
    if (app?.copied) await rm(app.dir, {recursive: true, force: true})
  })

  test('a user without subordinate ids is refused with the fix in one line, before anything is built', async () => {
    const lab = await makeUserLab(userWithoutIds!, app.dir)
    labs.push(lab)
    const build = await lab.pmemlab(['image', 'build'])
    assert.equal(build.exitCode, 3, build.stderr)
    assert.equal(build.stdout, '')
    const lines = build.stderr.trim().split('\n')
    assert.equal(lines.length, 1, `one line: ${build.stderr}`)
    const name = userWithoutIds!.replaceAll('.', '\\.')
    const refusal = new RegExp(
      `^pmemlab: error: building an image as ${name} needs .*an entry for ${name} in /etc/subuid.*: ` +
        `as root, run: (usermod --add-subuids (\\d+)-(\\d+) --add-subgids \\2-\\3 ${name})$`,
    )
    const match = refusal.exec(lines[0])
    assert.ok(match, lines[0])
    assert.equal(Number(match[3]) - Number(match[2]) + 1, 65536)
    const images = await readdir(join(lab.cache, 'images')).catch(() => [] as string[])
    assert.deepEqual(images, [], 'the cache holds no image or partial build')

    const doctor = await lab.pmemlab(['doctor', '--json'], 120_000)
    assert.equal(doctor.exitCode, 3, doctor.stderr)
    const missing = doctorCheck(doctor.stdout)
    assert.equal(missing.ok, false)
    assert.equal(missing.required, true)
    assert.equal(`${missing.detail}: ${missing.fix}`, lines[0].replace(/^pmemlab: error: /, ''))

    // The printed fix is exact: run as printed, it satisfies the check (mmdebstrap's own probe
    // of its user namespace included). The ranges are taken away again afterwards.
    const fix = match[1]
    try {
      await execa('bash', ['-c', fix])
      const fixed = await lab.pmemlab(['doctor', '--json'], 120_000)
      const check = doctorCheck(fixed.stdout)
      assert.equal(check.ok, true, check.detail)
      assert.match(check.detail, /65536 subuids .*65536 subgids.*user namespaces work/)
    } finally {
      await execa('usermod', ['--del-subuids', `${match[2]}-${match[3]}`, '--del-subgids', `${match[2]}-${match[3]}`, userWithoutIds!])
    }
  })

  test('a user with subordinate ids builds the image and boots a lab that passes pmemlab-check', async () => {
    const lab = await makeUserLab(userWithIds!, app.dir)
    labs.push(lab)
    const doctor = await lab.pmemlab(['doctor', '--json'], 120_000)
    const check = doctorCheck(doctor.stdout)
    assert.equal(check.ok, true, `${check.detail} (fix: ${check.fix})`)

    const build = await lab.pmemlab(['image', 'build'])
    assert.equal(build.exitCode, 0, build.stderr)
    const image = build.stdout.trim().split(' ').at(-1)!
    assert.ok(image.startsWith(join(lab.cache, 'images') + '/'), build.stdout)
    assert.equal((await stat(image)).uid, lab.uid, 'the image belongs to the user who built it')

    const up = await lab.pmemlab(['up', '--', 'pmemlab-check'], 300_000)
    assert.equal(up.exitCode, 0, up.stderr)
    assert.match(up.stdout, /^ok \d+ - \/dev\/pmem\d+ \(nvdimm, /m)
    assert.match(up.stdout, /^ok \d+ - \/dev\/pmem\d+ \(e820, /m)
    assert.doesNotMatch(up.stdout, /^not ok/m)
    assert.deepEqual(await qemuUnder(lab.state), [])
    assert.deepEqual(await readdir(join(lab.state, 'vms')).catch(() => [] as string[]), [])
  })
})

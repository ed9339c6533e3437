import assert from 'node:assert/strict'
import {mkdir, readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {execa} from 'execa'

/**
 * Issue 12's test tree: a git repository of eleven commits made from Debian's 6.1 source, and a
 * reproducer that mounts ext4 with -o dax on an fsdax namespace and checks the mount with
 * pmemlab-dax-check. test/e2e/bisect.test.ts bisects it; bench/bisect.ts times it.
 *
 *   c0   Debian's 6.1 source                     DAX works
 *   c1-3 documentation only
 *   c4   ext4 refuses -o dax (fs/ext4/super.c)    the break
 *   c5   init/main.c gets an #error                does not build
 *   c6   the #error goes
 *   c7   documentation only
 *   c8   ext4 takes -o dax again                  the fix
 *   c9-10 documentation only
 */
export const TARBALL = '/usr/src/linux-source-6.1.tar.xz'

/** ext4's handling of -o dax and -o dax=always in 6.1 (fs/ext4/super.c, ext4_parse_param). */
const DAX_TAKEN = `		case Opt_dax:
		case Opt_dax_always:
			ctx_set_mount_opt(ctx, EXT4_MOUNT_DAX_ALWAYS);
			ctx_clear_mount_opt2(ctx, EXT4_MOUNT2_DAX_NEVER);
			break;
`
const DAX_REFUSED = `		case Opt_dax:
		case Opt_dax_always:
			ext4_msg(NULL, KERN_ERR, "pmemlab-e2e: -o dax refused");
			return -EINVAL;
`
const NO_BUILD = '#error "pmemlab-e2e: this commit does not build"\n'

/**
 * The reproducer: reproduced (exit 1) when ext4 refuses -o dax on an fsdax namespace, or mounts
 * without DAX. The namespace is made and mounted by the script, not by prepare:, since pmemlab's
 * own preparation mounts with -o dax and would fail before the script on a broken kernel (a
 * broken lab, no verdict). Any other failure exits 3: not reproduced, as expect names only 1.
 */
export const REPRODUCER = `version: 1
lab:
  nvdimm: [512M]
  mem: 1G
prepare:
  nvdimm0: {mode: raw, mkfs: none}
run:
  script: |
    set -uo pipefail
    ndctl create-namespace -f -e namespace0.0 -m fsdax >/dev/null || exit 3
    dev=/dev/$(ndctl list -N | sed -n 's/.*"blockdev":"\\([^"]*\\)".*/\\1/p' | head -n 1)
    mkfs.ext4 -q -F -b 4096 "$dev" || exit 3
    mkdir -p /mnt/pmem
    mount -t ext4 -o dax "$dev" /mnt/pmem || { echo "ext4 refused -o dax"; exit 1; }
    pmemlab-dax-check --expect dax /mnt/pmem || exit 1
expect:
  exit: 1
  must_not: [panic, oops, bug]
  timeout: 300
`

export interface BisectTree {
  /** The git tree, on branch main at c10. */
  tree: string
  /** c0 to c10, full hashes. */
  commits: string[]
  /** The reproducer file. */
  reproducer: string
}

/** Makes the tree and the reproducer file under DIR (tree: DIR/linux). */
export async function makeBisectTree(dir: string): Promise<BisectTree> {
  const tree = join(dir, 'linux')
  const commits: string[] = []
  const git = (...args: string[]) => execa('git', ['-c', 'user.name=pmemlab e2e', '-c', 'user.email=e2e@pmemlab.invalid', ...args], {cwd: tree})
  /** Replaces FROM with TO in FILE (failing when FROM is not there), and commits it as SUBJECT. */
  const edit = async (file: string, from: string, to: string, subject: string) => {
    const path = join(tree, file)
    const text = await readFile(path, 'utf8')
    assert.ok(text.includes(from), `${file} does not hold the text to replace`)
    await writeFile(path, text.replace(from, to))
    await git('commit', '-q', '-a', '-m', subject)
    commits.push((await git('rev-parse', 'HEAD')).stdout.trim())
  }
  const docs = (n: number) => edit('Documentation/filesystems/dax.rst', 'Direct Access for files', `Direct Access for files (${n})`, `Documentation: dax: note ${n}`)

  await mkdir(tree)
  await execa('tar', ['-xJf', TARBALL, '-C', tree, '--strip-components=1'])
  await git('init', '-q', '-b', 'main')
  // -f: Debian's linux-source adds "/*" to the kernel's .gitignore (its packaging ignores the top level).
  await git('add', '-A', '-f')
  await git('commit', '-q', '-m', "Debian's 6.1 source")
  commits.push((await git('rev-parse', 'HEAD')).stdout.trim())
  for (const n of [1, 2, 3]) await docs(n)
  await edit('fs/ext4/super.c', DAX_TAKEN, DAX_REFUSED, 'ext4: refuse -o dax')
  await edit('init/main.c', '#define DEBUG', `${NO_BUILD}#define DEBUG`, 'init: a commit that does not build')
  await edit('init/main.c', `${NO_BUILD}#define DEBUG`, '#define DEBUG', 'init: build again')
  await docs(7)
  await edit('fs/ext4/super.c', DAX_REFUSED, DAX_TAKEN, 'ext4: take -o dax again')
  for (const n of [9, 10]) await docs(n)
  assert.equal(commits.length, 11)
  const reproducer = join(dir, 'ext4-dax.yaml')
  await writeFile(reproducer, REPRODUCER)
  return {tree, commits, reproducer}
}

import assert from 'node:assert/strict'
import {mkdir, readdir, rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test} from 'node:test'
import {execa} from 'execa'
import * as tar from 'tar'
import {withDir} from 'tmp-promise'
import {packageRoot} from '../../src/core/paths.js'

/**
 * `pmemlab repro` on bad input, as a user runs it: one line on stderr, exit 2, nothing on stdout,
 * and nothing made (no output directory, no VM). Nothing here gets as far as a boot.
 */
const pmemlab = (args: string[], cwd: string) =>
  execa(process.execPath, [join(packageRoot, 'bin', 'run.js'), ...args], {cwd, reject: false, stdin: 'ignore', env: {NO_COLOR: '1', PMEMLAB_STATE_DIR: join(cwd, 'state'), PMEMLAB_CACHE_DIR: join(cwd, 'cache')}})

describe('pmemlab repro on bad input', () => {
  test('a missing file, a mistake in the file, a bad --runs, a missing or changed bundle, an image whose file is missing: one line, exit 2, nothing made', async () => {
    await withDir(
      async ({path}) => {
        await writeFile(join(path, 'typo.yaml'), 'version: 1\nrun: ./t\nexpect: {must: [warnign]}\n')
        await writeFile(join(path, 'ok.yaml'), 'version: 1\nrun: ./t\nexpect: {exit: 0}\n')
        // A bundle whose SHA256SUMS does not match its metadata.json (a byte changed after packing).
        const packed = join(path, 'packed')
        await mkdir(packed)
        await writeFile(join(packed, 'metadata.json'), '{"reproducer": "input/ok.yaml"}\n')
        await writeFile(join(packed, 'SHA256SUMS'), `${'0'.repeat(64)}  metadata.json\n`)
        await tar.c({gzip: true, cwd: packed, file: join(path, 'bad.bundle')}, ['SHA256SUMS', 'metadata.json'])
        await rm(packed, {recursive: true})
        await writeFile(join(path, 'image.yaml'), 'version: 1\nimage: {packages: [fio], files: [{source: gone.sh, to: /root/gone.sh}]}\nrun: ./t\nexpect: {exit: 0}\n')
        const cases: Array<[string[], RegExp]> = [
          [['repro', 'missing.yaml'], /^pmemlab: error: cannot read reproducer file missing\.yaml: no such file: /],
          [['repro', 'typo.yaml'], /^pmemlab: error: typo\.yaml:3:17: expect\.must\[0\]: "warnign" is neither a class nor a regex: did you mean "warning"\?/],
          [['repro', 'ok.yaml', '--runs', '0'], /^pmemlab: error: invalid --runs 0: give a whole number from 1 to 1000$/],
          [['repro', 'gone.tar.gz'], /^pmemlab: error: cannot read bundle gone\.tar\.gz: no such file: /],
          [['repro', 'bad.bundle'], /^pmemlab: error: bundle bad\.bundle refused: metadata\.json does not match its SHA256 \(changed\): /],
          [['repro', 'image.yaml'], /^pmemlab: error: image\.yaml:2:8: cannot read \/.*\/gone\.sh: no such file: sources are relative to /],
        ]
        for (const [args, line] of cases) {
          const run = await pmemlab(args, path)
          assert.equal(run.exitCode, 2, `${args.join(' ')}: ${run.stderr}`)
          assert.equal(run.stdout, '')
          const lines = String(run.stderr).trimEnd().split('\n')
          assert.equal(lines.length, 1, String(run.stderr))
          assert.match(lines[0], line)
        }
        assert.deepEqual((await readdir(path)).sort(), ['bad.bundle', 'image.yaml', 'ok.yaml', 'typo.yaml'], 'no repro-results, state or cache directory')
      },
      {unsafeCleanup: true, prefix: 'pmemlab-repro-command-'},
    )
  })
})

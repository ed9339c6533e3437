import assert from 'node:assert/strict'
import {writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test} from 'node:test'
import {withDir} from 'tmp-promise'
import {
  bisectLogArgv,
  bisectMarkArgv,
  bisectNextArgv,
  bisectReplayArgv,
  bisectResetArgv,
  bisectStartArgv,
  resolveCommitArgv,
  showCommitsArgv,
  startArgs,
  trackedChangesArgv,
} from '../../src/bisect/git-argv.js'
import {loggedBisect, notBisecting, parseBisectLog, parseBisectOutput, parseCommits, parseStartArgs, unquoteWords, type BisectOutput} from '../../src/bisect/git-output.js'
import {NORMAL_TERMS, REVERSE_TERMS, type Terms} from '../../src/bisect/step-verdict.js'
import {Repo, withRepo} from './bisect-repo.js'

/**
 * Drives a bisect to its end the way pmemlab will: start, then mark what each parsed output
 * names with JUDGE's term, until the output is no longer "next". Returns every output and the
 * commits tested.
 */
async function drive(repo: Repo, terms: Terms, newCommit: string, oldCommit: string, judge: (commit: string) => string) {
  const outputs: BisectOutput[] = []
  const tested: string[] = []
  let result = await repo.run(bisectStartArgv(repo.dir, terms, newCommit, oldCommit))
  for (let guard = 0; guard < 40; guard++) {
    const output = parseBisectOutput(result.all)
    outputs.push(output)
    if (output.kind !== 'next') return {outputs, tested, exitCode: result.exitCode, last: output}
    assert.equal(output.commit, await repo.head(), 'the commit named is the one checked out')
    tested.push(output.commit)
    result = await repo.run(bisectMarkArgv(repo.dir, judge(output.commit), output.commit))
  }
  throw new Error('the bisect did not end')
}

describe('git bisect output, from this machine git', () => {
  test('start names the commit to test, with the revisions and steps left', async () => {
    await withRepo(10, async (repo) => {
      const result = await repo.run(bisectStartArgv(repo.dir, NORMAL_TERMS, repo.commits[9], repo.commits[0]))
      assert.equal(result.exitCode, 0)
      const output = parseBisectOutput(result.all)
      assert.equal(output.kind, 'next')
      assert.ok(output.kind === 'next')
      assert.equal(output.commit, await repo.head())
      assert.equal(output.subject, repo.subjects.get(output.commit))
      assert.equal(output.mergeBase, false)
      assert.equal(output.revisionsLeft, 4)
      assert.equal(output.stepsLeft, 2)
    })
  })

  test('a bisect to its end names the first bad commit, with author and subject', async () => {
    await withRepo(10, async (repo) => {
      const culprit = repo.commits[5]
      const bad = (c: string) => repo.commits.indexOf(c) >= 5
      const {last, tested, exitCode} = await drive(repo, NORMAL_TERMS, repo.commits[9], repo.commits[0], (c) => (bad(c) ? 'bad' : 'good'))
      assert.equal(exitCode, 0)
      assert.deepEqual(last, {kind: 'first', term: 'bad', commit: culprit, author: 'Ada Tester <ada@example.org>', date: 'Tue Jan 2 03:04:05 2024 +0000', subject: 'commit 6: change 6'})
      assert.ok(tested.length >= 3 && tested.length <= 4, `tested ${tested.length}`)
    })
  })

  test('custom terms (--reverse): the first fixed commit', async () => {
    await withRepo(9, async (repo) => {
      const fixed = (c: string) => repo.commits.indexOf(c) >= 6
      const {last} = await drive(repo, REVERSE_TERMS, repo.commits[8], repo.commits[0], (c) => (fixed(c) ? 'fixed' : 'broken'))
      assert.equal(last.kind, 'first')
      assert.ok(last.kind === 'first')
      assert.equal(last.term, 'fixed')
      assert.equal(last.commit, repo.commits[6])
      assert.equal(last.subject, 'commit 7: change 7')
    })
  })

  test('endpoints next to each other: start names the culprit at once', async () => {
    await withRepo(3, async (repo) => {
      const result = await repo.run(bisectStartArgv(repo.dir, NORMAL_TERMS, repo.commits[2], repo.commits[1]))
      const output = parseBisectOutput(result.all)
      assert.equal(output.kind === 'first' && output.commit, repo.commits[2])
    })
  })

  test('skipped commits: the candidates, from the output and from the log', async () => {
    await withRepo(10, async (repo) => {
      const culprit = repo.commits[5]
      const untestable = new Set(repo.commits.slice(4, 8))
      const judge = (c: string) => (untestable.has(c) ? 'skip' : repo.commits.indexOf(c) >= 5 ? 'bad' : 'good')
      const {last, exitCode, tested} = await drive(repo, NORMAL_TERMS, repo.commits[9], repo.commits[0], judge)
      assert.equal(exitCode, 2, 'git exits 2 when it cannot bisect more')
      assert.equal(last.kind, 'candidates')
      assert.ok(last.kind === 'candidates')
      assert.equal(last.term, 'bad')
      assert.ok(last.commits.includes(culprit), 'the culprit is among them')
      assert.ok(last.commits.length >= 2)
      const markedBad = tested.filter((c) => judge(c) === 'bad')
      for (const c of last.commits) assert.ok(untestable.has(c) || markedBad.includes(c) || c === repo.commits[9], `${c} is a skipped or bad commit`)

      const entries = parseBisectLog((await repo.run(bisectLogArgv(repo.dir))).stdout)
      assert.ok(entries.some((e) => e.kind === 'only-skipped'))
      const possible = entries.filter((e) => e.kind === 'possible')
      assert.deepEqual(possible.map((e) => e.kind === 'possible' && e.commit).sort(), [...last.commits].sort())
      assert.ok(possible.every((e) => e.kind === 'possible' && e.term === 'bad' && e.subject === repo.subjects.get(e.commit)))
    })
  })

  test('the log: the start line unquoted, each mark, its note, and the first bad commit', async () => {
    await withRepo(10, async (repo) => {
      const judge = (c: string) => (repo.commits.indexOf(c) === 4 ? 'skip' : repo.commits.indexOf(c) >= 3 ? 'bad' : 'good')
      const {tested, last} = await drive(repo, NORMAL_TERMS, repo.commits[9], repo.commits[0], judge)
      const text = (await repo.run(bisectLogArgv(repo.dir))).stdout
      const entries = parseBisectLog(text)
      const logged = loggedBisect(entries)
      assert.deepEqual(logged.start, startArgs(NORMAL_TERMS, repo.commits[9], repo.commits[0]))
      assert.deepEqual(
        logged.marks,
        tested.map((commit) => ({term: judge(commit), commit})),
      )
      const notes = entries.filter((e) => e.kind === 'note')
      assert.deepEqual(notes[0], {kind: 'note', term: 'bad', commit: repo.commits[9], subject: 'commit 10: change 10'}, 'the endpoints are noted before the start line')
      assert.deepEqual(notes[1], {kind: 'note', term: 'good', commit: repo.commits[0], subject: 'commit 1: change 1'})
      assert.equal(notes.length, 2 + tested.length)
      assert.ok(last.kind === 'first')
      assert.deepEqual(entries.at(-1), {kind: 'first', term: 'bad', commit: last.commit, subject: repo.subjects.get(last.commit)})
      assert.ok(!entries.some((e) => e.kind === 'other'), `every line is understood: ${JSON.stringify(entries.filter((e) => e.kind === 'other'))}`)
      assert.deepEqual(parseStartArgs(logged.start!), {terms: NORMAL_TERMS, newCommit: repo.commits[9], oldCommits: [repo.commits[0]]})
    })
  })

  test('a skipped range is logged one commit at a time; custom terms in the start line', async () => {
    await withRepo(8, async (repo) => {
      await repo.run(bisectStartArgv(repo.dir, REVERSE_TERMS, repo.commits[7], repo.commits[0]))
      await repo.git('bisect', 'skip', `${repo.commits[2]}..${repo.commits[5]}`)
      const logged = loggedBisect(parseBisectLog((await repo.run(bisectLogArgv(repo.dir))).stdout))
      assert.deepEqual(parseStartArgs(logged.start!).terms, REVERSE_TERMS)
      assert.deepEqual(logged.marks.map((m) => m.term), ['skip', 'skip', 'skip'])
      assert.deepEqual(new Set(logged.marks.map((m) => m.commit)), new Set(repo.commits.slice(3, 6)))
    })
  })

  test('replay: the last commit it names is the one checked out; the log comes back the same', async () => {
    await withRepo(12, async (repo) => {
      const start = await repo.run(bisectStartArgv(repo.dir, NORMAL_TERMS, repo.commits[11], repo.commits[0]))
      const first = parseBisectOutput(start.all)
      assert.ok(first.kind === 'next')
      const second = parseBisectOutput((await repo.run(bisectMarkArgv(repo.dir, 'good', first.commit))).all)
      assert.ok(second.kind === 'next')
      const log = (await repo.run(bisectLogArgv(repo.dir))).stdout
      const logFile = join(repo.dir, '.git', 'saved-bisect.log')
      await writeFile(logFile, log)
      assert.equal((await repo.run(bisectResetArgv(repo.dir))).exitCode, 0)
      const replay = await repo.run(bisectReplayArgv(repo.dir, logFile))
      assert.equal(replay.exitCode, 0, replay.all)
      const replayed = parseBisectOutput(replay.all)
      assert.ok(replayed.kind === 'next')
      assert.equal(replayed.commit, second.commit)
      assert.equal(await repo.head(), second.commit)
      assert.equal((await repo.run(bisectLogArgv(repo.dir))).stdout, log)
      const next = parseBisectOutput((await repo.run(bisectNextArgv(repo.dir))).all)
      assert.equal(next.kind === 'next' && next.commit, second.commit, 'next checks out the same commit again')
    })
  })

  test('refusals: endpoints swapped, a commit both good and bad, not bisecting', async () => {
    await withRepo(6, async (repo) => {
      const swapped = await repo.run(bisectStartArgv(repo.dir, NORMAL_TERMS, repo.commits[0], repo.commits[5]))
      assert.notEqual(swapped.exitCode, 0)
      assert.deepEqual(parseBisectOutput(swapped.all), {kind: 'refused', message: 'Some good revs are not ancestors of the bad rev.'})
      await repo.run(bisectResetArgv(repo.dir))

      const against = await repo.run(bisectStartArgv(repo.dir, NORMAL_TERMS, repo.commits[5], repo.commits[0]))
      assert.equal(parseBisectOutput(against.all).kind, 'next')
      const marked = await repo.run(bisectMarkArgv(repo.dir, 'good', repo.commits[5]))
      assert.deepEqual(parseBisectOutput(marked.all), {kind: 'refused', message: 'Some good revs are not ancestors of the bad rev.'}, 'the bad endpoint marked good')
      await repo.run(bisectResetArgv(repo.dir))

      const {last} = await drive(repo, NORMAL_TERMS, repo.commits[5], repo.commits[0], (c) => (repo.commits.indexOf(c) >= 2 ? 'bad' : 'good'))
      assert.ok(last.kind === 'first')
      const both = await repo.run(bisectMarkArgv(repo.dir, 'good', last.commit))
      assert.deepEqual(parseBisectOutput(both.all), {kind: 'refused', message: `${last.commit} was both good and bad`}, 'the culprit marked good after the end')
      await repo.run(bisectResetArgv(repo.dir))

      const log = await repo.run(bisectLogArgv(repo.dir))
      assert.notEqual(log.exitCode, 0)
      assert.ok(notBisecting(log.all))
      assert.deepEqual(parseBisectOutput(log.all), {kind: 'refused', message: 'We are not bisecting.'})
      assert.ok(!notBisecting('git bisect start'))
    })
  })

  test('waiting: a start without endpoints', async () => {
    await withRepo(3, async (repo) => {
      const output = parseBisectOutput((await repo.run(['-C', repo.dir, 'bisect', 'start'])).all)
      assert.deepEqual(output, {kind: 'waiting', status: 'waiting for both good and bad commits'})
      assert.deepEqual(parseBisectOutput('Switched to branch main\n'), {kind: 'unknown', text: 'Switched to branch main'})
    })
  })
})

describe('merges, from this machine git', () => {
  /** base - m1 - m2 - m3 - merge - m4, with side s1 - s2 off m1 merged in. */
  async function withMerges<T>(body: (repo: Repo, c: Record<string, string>) => Promise<T>): Promise<T> {
    return withDir(
      async ({path}) => {
        const repo = new Repo(path)
        await repo.init()
        const c: Record<string, string> = {}
        c.base = await repo.commit('base', 'base')
        c.m1 = await repo.commit('m1', 'm1')
        await repo.git('checkout', '-q', '-b', 'side')
        c.s1 = await repo.commit('s1', 's1')
        c.s2 = await repo.commit('s2', 's2')
        await repo.git('checkout', '-q', 'main')
        c.m2 = await repo.commit('m2', 'm2')
        c.m3 = await repo.commit('m3', 'm3')
        await repo.git('merge', '-q', '--no-edit', 'side')
        c.merge = await repo.head()
        c.m4 = await repo.commit('m4 with "quotes" | a pipe and ünïcode', 'm4')
        return body(repo, c)
      },
      {unsafeCleanup: true, prefix: 'pmemlab-bisect-git-'},
    )
  }

  test('a merge base must be tested; a bad merge base is refused with git\'s explanation', async () => {
    await withMerges(async (repo, c) => {
      const start = parseBisectOutput((await repo.run(bisectStartArgv(repo.dir, NORMAL_TERMS, c.s2, c.m3))).all)
      assert.deepEqual(start, {kind: 'next', commit: c.m1, subject: 'm1', mergeBase: true})
      const marked = await repo.run(bisectMarkArgv(repo.dir, 'bad', c.m1))
      assert.equal(marked.exitCode, 3)
      const refused = parseBisectOutput(marked.all)
      assert.equal(refused.kind, 'refused')
      assert.ok(refused.kind === 'refused')
      assert.equal(refused.message, `The merge base ${c.m1} is bad. This means the bug has been fixed between ${c.m1} and [${c.m3}].`)
    })
  })

  test('a merge that is the first bad commit, and git show of commits', async () => {
    await withMerges(async (repo, c) => {
      const bad = new Set([c.merge, c.m4])
      const {last} = await drive(repo, NORMAL_TERMS, c.m4, c.base, (commit) => (bad.has(commit) ? 'bad' : 'good'))
      assert.equal(last.kind === 'first' && last.commit, c.merge)
      const shown = parseCommits((await repo.run(showCommitsArgv(repo.dir, [c.merge, c.m4]))).stdout)
      assert.deepEqual(shown, [
        {commit: c.merge, parents: [c.m3, c.s2], author: 'Ada Tester <ada@example.org>', subject: "Merge branch 'side'"},
        {commit: c.m4, parents: [c.merge], author: 'Ada Tester <ada@example.org>', subject: 'm4 with "quotes" | a pipe and ünïcode'},
      ])
    })
  })
})

describe('the other git commands', () => {
  test('resolving refs to full hashes; a ref that names no commit', async () => {
    await withRepo(3, async (repo) => {
      const resolved = await repo.run(resolveCommitArgv(repo.dir, 'main~1'))
      assert.equal(resolved.stdout.trim(), repo.commits[1])
      const tree = (await repo.git('rev-parse', 'HEAD^{tree}')).trim()
      assert.notEqual((await repo.run(resolveCommitArgv(repo.dir, tree))).exitCode, 0, 'a tree is no commit')
      const missing = await repo.run(resolveCommitArgv(repo.dir, 'no-such-branch'))
      assert.notEqual(missing.exitCode, 0)
      assert.equal(missing.all, '')
      assert.notEqual((await repo.run(resolveCommitArgv(repo.dir, '--help'))).exitCode, 0, 'a ref is never read as an option')
    })
  })

  test('tracked changes: none in a clean tree, one line per changed file', async () => {
    await withRepo(2, async (repo) => {
      assert.equal((await repo.run(trackedChangesArgv(repo.dir))).stdout, '')
      await writeFile(join(repo.dir, 'untracked'), 'x\n')
      assert.equal((await repo.run(trackedChangesArgv(repo.dir))).stdout, '', 'untracked files do not stop a checkout')
      await writeFile(join(repo.dir, 'f'), 'changed\n')
      assert.equal((await repo.run(trackedChangesArgv(repo.dir))).stdout, ' M f')
    })
  })

  test('the argv builders take full hashes and terms only', () => {
    const hash = 'a'.repeat(40)
    assert.deepEqual(bisectMarkArgv('/t', 'fixed', hash), ['-C', '/t', 'bisect', 'fixed', hash])
    assert.deepEqual(bisectStartArgv('/t', REVERSE_TERMS, hash, 'b'.repeat(64)), ['-C', '/t', 'bisect', 'start', '--term-old=broken', '--term-new=fixed', hash, 'b'.repeat(64), '--'])
    assert.throws(() => bisectMarkArgv('/t', 'bad', 'HEAD'), /full commit hash/)
    assert.throws(() => bisectMarkArgv('/t', '--term', hash), /no bisect term/)
    assert.throws(() => bisectStartArgv('/t', NORMAL_TERMS, 'main', hash), /full commit hashes/)
  })

  test("unquoting sq_quote_argv's words", () => {
    assert.deepEqual(unquoteWords("start '--term-old=broken' 'it'\\''s' 'a'\\!'b' plain"), ['start', '--term-old=broken', "it's", 'a!b', 'plain'])
    assert.deepEqual(unquoteWords("'' x"), ['', 'x'])
    assert.throws(() => unquoteWords("'open"), /unterminated/)
  })

  test('start arguments in the older spellings', () => {
    assert.deepEqual(parseStartArgs(['--term-new', 'fixed', '--term-old', 'broken', 'n', 'o1', 'o2', '--', 'path']), {terms: REVERSE_TERMS, newCommit: 'n', oldCommits: ['o1', 'o2']})
    assert.deepEqual(parseStartArgs(['--term-bad=x', '--term-good=y', '--no-checkout']), {terms: {old: 'y', new: 'x'}, newCommit: undefined, oldCommits: []})
  })
})

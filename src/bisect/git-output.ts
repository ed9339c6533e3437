/**
 * What git prints during a bisect, read back: the output of `git bisect start`, a mark (good,
 * bad, a custom term, skip), `next` and `replay` (stdout and stderr together, as git's messages
 * go to both), the text of `git bisect log`, and `git show` in git-argv.ts's COMMIT_FORMAT. Pure:
 * text in, data out. git runs with GIT_ENV (git-argv.ts), so its messages are its English ones;
 * test/unit/bisect-git-output.test.ts takes them from this machine's git, run in a throwaway repo.
 *
 * What a bisect command can end in (git's wording, TERM being the bisect's new or old term):
 *   next        "Bisecting: N revisions left to test after this (roughly M steps)" or "Bisecting: a
 *               merge base must be tested", then "[HASH] SUBJECT": the commit checked out to test
 *               (replay prints one per replayed mark: the last one counts)
 *   first       "HASH is the first TERM commit", then the commit as `git show --stat` prints it
 *   candidates  "There are only 'skip'ped commits left to test." then "The first TERM commit could
 *               be any of:" and one hash a line, then "We cannot bisect more!" (exit 2)
 *   refused     what git would not do: "Some TERM revs are not ancestors of the TERM rev." (good
 *               and bad swapped, or on unrelated branches), "HASH was both TERM and TERM", "The merge
 *               base HASH is TERM. ..." (the new side is older than the old side: exit 3), any
 *               "error:" or "fatal:" line; and "We are not bisecting." when nothing else is said
 *               (replay prints it before it starts)
 *   waiting     "status: waiting for ..." (a start without both endpoints)
 */
import type {Terms} from './step-verdict.js'

const HASH = '[0-9a-f]{40}(?:[0-9a-f]{24})?'

export type BisectOutput =
  | {kind: 'next'; commit: string; subject: string; mergeBase: boolean; revisionsLeft?: number; stepsLeft?: number}
  | {kind: 'first'; term: string; commit: string; author?: string; date?: string; subject?: string}
  | {kind: 'candidates'; term: string; commits: string[]}
  | {kind: 'refused'; message: string}
  | {kind: 'waiting'; status: string}
  | {kind: 'unknown'; text: string}

const lines = (text: string) => text.replace(/\r/g, '').split('\n')

/** The commit block `git bisect` prints after "is the first TERM commit": author, date and the subject (the message's first line). */
function commitBlock(block: string[]): {author?: string; date?: string; subject?: string} {
  const field = (name: string) => block.find((l) => l.startsWith(`${name}:`))?.slice(name.length + 1).trim()
  const subject = block.find((l) => /^ {4}\S/.test(l))?.trim()
  return {author: field('Author'), date: field('Date'), subject}
}

function refusal(all: string[]): string | undefined {
  const mergeBase = all.findIndex((l) => new RegExp(`^The merge base ${HASH} is \\S+\\.$`).test(l))
  if (mergeBase >= 0) {
    // git explains it in the next line or two: what changed between the merge base and the old side.
    const end = all.findIndex((l, i) => i > mergeBase && l.trim() === '')
    return all.slice(mergeBase, Math.min(end < 0 ? all.length : end, mergeBase + 3)).join(' ')
  }
  const patterns = [/^Some \S+ revs are not ancestors of the \S+ rev\.$/, new RegExp(`^${HASH} was both \\S+ and \\S+$`), /^(?:error|fatal): /]
  for (const pattern of patterns) {
    const line = all.find((l) => pattern.test(l))
    if (line !== undefined) return line.replace(/^(?:error|fatal): /, '')
  }
  return undefined
}

/** What a bisect command's output (stdout and stderr together) ends in: see the top of this file. */
export function parseBisectOutput(text: string): BisectOutput {
  const all = lines(text)
  const firstAt = all.findIndex((l) => new RegExp(`^${HASH} is the first \\S+ commit$`).test(l))
  if (firstAt >= 0) {
    const [commit, , , , term] = all[firstAt].split(' ')
    return {kind: 'first', term, commit, ...commitBlock(all.slice(firstAt + 1))}
  }
  const onlySkipped = all.findIndex((l) => l === "There are only 'skip'ped commits left to test.")
  if (onlySkipped >= 0) {
    const head = all.slice(onlySkipped).findIndex((l) => /^The first \S+ commit could be any of:$/.test(l))
    if (head >= 0) {
      const from = onlySkipped + head
      const term = all[from].split(' ')[2]
      const commits = []
      for (const line of all.slice(from + 1)) {
        if (!new RegExp(`^${HASH}$`).test(line)) break
        commits.push(line)
      }
      return {kind: 'candidates', term, commits}
    }
  }
  const refused = refusal(all)
  if (refused !== undefined) return {kind: 'refused', message: refused}
  // The last "Bisecting:" line followed by the commit it checked out.
  for (let i = all.length - 2; i >= 0; i--) {
    const head = /^Bisecting: (?:(\d+) revisions? left to test after this \(roughly (\d+) steps?\)|(a merge base must be tested))$/.exec(all[i])
    const checkedOut = new RegExp(`^\\[(${HASH})\\] ?(.*)$`).exec(all[i + 1])
    if (head && checkedOut) {
      const counts = head[3] ? {} : {revisionsLeft: Number(head[1]), stepsLeft: Number(head[2])}
      return {kind: 'next', commit: checkedOut[1], subject: checkedOut[2], mergeBase: head[3] !== undefined, ...counts}
    }
  }
  // Last: replay says it too, on its way to a bisect, when the tree was not in one.
  if (notBisecting(text)) return {kind: 'refused', message: 'We are not bisecting.'}
  const status = all.find((l) => l.startsWith('status: '))
  if (status !== undefined) return {kind: 'waiting', status: status.slice('status: '.length)}
  return {kind: 'unknown', text: text.trim()}
}

// ---------------------------------------------------------------------------------------------
// git bisect log

export type LogEntry =
  /** git bisect start, with its arguments unquoted. */
  | {kind: 'start'; args: string[]}
  /** A mark as a command (what replay repeats): git bisect TERM HASH... */
  | {kind: 'mark'; term: string; commits: string[]}
  /** The comment before a mark, and one per endpoint before the start line: "# TERM: [HASH] SUBJECT". */
  | {kind: 'note'; term: string; commit: string; subject: string}
  /** "# first TERM commit: [HASH] SUBJECT" (git may write it more than once: `next` after the end repeats it). */
  | {kind: 'first'; term: string; commit: string; subject: string}
  /** "# possible first TERM commit: [HASH] SUBJECT", one per candidate when only skipped commits are left. */
  | {kind: 'possible'; term: string; commit: string; subject: string}
  | {kind: 'only-skipped'}
  /** "# status: waiting for ...". */
  | {kind: 'status'; text: string}
  | {kind: 'other'; line: string}

/**
 * The words of a line as git's sq_quote_argv writes them (and the shell reads them): 'single
 * quoted' runs, with ' written '\'' and ! written '\!', and plain words between.
 */
export function unquoteWords(line: string): string[] {
  const words: string[] = []
  let word: string | undefined
  for (let i = 0; i < line.length; i++) {
    const c = line[i]
    if (c === ' ' || c === '\t') {
      if (word !== undefined) words.push(word)
      word = undefined
    } else if (c === "'") {
      const end = line.indexOf("'", i + 1)
      if (end < 0) throw new Error(`unterminated quote in: ${line}`)
      word = (word ?? '') + line.slice(i + 1, end)
      i = end
    } else if (c === '\\' && i + 1 < line.length) {
      word = (word ?? '') + line[++i]
    } else {
      word = (word ?? '') + c
    }
  }
  if (word !== undefined) words.push(word)
  return words
}

/** The entries of a `git bisect log` text, in order. */
export function parseBisectLog(text: string): LogEntry[] {
  const entries: LogEntry[] = []
  const commented = new RegExp(`^\\[(${HASH})\\] ?(.*)$`)
  for (const line of lines(text)) {
    if (line.trim() === '') continue
    if (line.startsWith('git bisect ')) {
      const [verb, ...args] = unquoteWords(line.slice('git bisect '.length))
      entries.push(verb === 'start' ? {kind: 'start', args} : {kind: 'mark', term: verb, commits: args})
      continue
    }
    const comment = /^# (.*?): (.*)$/.exec(line)
    const target = comment ? commented.exec(comment[2]) : null
    const named = comment?.[1]
    if (named !== undefined && target) {
      const first = /^first (\S+) commit$/.exec(named)
      const possible = /^possible first (\S+) commit$/.exec(named)
      if (first) entries.push({kind: 'first', term: first[1], commit: target[1], subject: target[2]})
      else if (possible) entries.push({kind: 'possible', term: possible[1], commit: target[1], subject: target[2]})
      else if (/^\S+$/.test(named)) entries.push({kind: 'note', term: named, commit: target[1], subject: target[2]})
      else entries.push({kind: 'other', line})
    } else if (line === '# only skipped commits left to test') entries.push({kind: 'only-skipped'})
    else if (named === 'status') entries.push({kind: 'status', text: comment![2]})
    else entries.push({kind: 'other', line})
  }
  return entries
}

export interface StartLine {
  terms: Terms
  /** The new endpoint (the first revision), and the old ones. */
  newCommit?: string
  oldCommits: string[]
}

/** What a start line's arguments say: its terms (git's good and bad unless given) and its endpoints. */
export function parseStartArgs(args: readonly string[]): StartLine {
  const terms: Terms = {old: 'good', new: 'bad'}
  const revs: string[] = []
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]
    if (arg === '--') break
    const option = /^--term-(old|new|good|bad)(?:=(.*))?$/.exec(arg)
    if (option) {
      const value = option[2] ?? args[++i]
      if (option[1] === 'old' || option[1] === 'good') terms.old = value
      else terms.new = value
    } else if (!arg.startsWith('--')) revs.push(arg)
  }
  return {terms, newCommit: revs[0], oldCommits: revs.slice(1)}
}

/** A bisect as its log records it: the start's arguments and the marks since, in order (each commit of a mark command on its own). */
export interface LoggedBisect {
  start?: string[]
  marks: Array<{term: string; commit: string}>
}

export function loggedBisect(entries: readonly LogEntry[]): LoggedBisect {
  const start = entries.find((e) => e.kind === 'start')
  const marks = entries.flatMap((e) => (e.kind === 'mark' ? e.commits.map((commit) => ({term: e.term, commit})) : []))
  return {...(start?.kind === 'start' ? {start: start.args} : {}), marks}
}

/** Whether a `git bisect log` attempt said the tree is not in a bisect (it then exits 1). */
export const notBisecting = (output: string) => lines(output).some((l) => /^(?:error: )?We are not bisecting\.$/.test(l))

// ---------------------------------------------------------------------------------------------
// git show in COMMIT_FORMAT

export interface CommitInfo {
  commit: string
  parents: string[]
  /** "Name <email>". */
  author: string
  subject: string
}

export function parseCommits(text: string): CommitInfo[] {
  return text
    .split('\x1e')
    .map((record) => record.replace(/^\n+/, ''))
    .filter((record) => record.trim() !== '')
    .map((record) => {
      const [commit, parents, author, subject] = record.split('\x1f')
      if (subject === undefined || !new RegExp(`^${HASH}$`).test(commit)) throw new Error(`not a commit record: ${JSON.stringify(record.slice(0, 80))}`)
      return {commit, parents: parents.split(' ').filter((p) => p !== ''), author, subject}
    })
}

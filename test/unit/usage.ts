import assert from 'node:assert/strict'
import {PmemlabError} from '../../src/core/errors.js'

/** The one line that PARSE refuses its input with, after checking it is a usage error (exit 2). */
export function usageLine(parse: () => unknown, input: string): string {
  try {
    parse()
  } catch (error) {
    assert.ok(error instanceof PmemlabError, `not a PmemlabError: ${String(error)}`)
    assert.equal(error.exitCode, 2)
    const line = error.oneLine()
    assert.doesNotMatch(line, /\n/, 'one line')
    return line
  }
  assert.fail(`accepted:\n${input}`)
}

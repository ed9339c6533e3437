import assert from 'node:assert/strict'
import {test} from 'node:test'
import {failing, looksLikeTap, parseTap, TapParser} from '../../src/suite/tap.js'

test('a plain stream: version, plan, passing and failing test points with their diagnostics', () => {
  const doc = parseTap(['TAP version 13', '1..3', 'ok 1 - first', 'not ok 2 - second', '# wanted 4', '# got 5', 'ok 3 third without a dash', ''].join('\n'))
  assert.equal(doc.version, 13)
  assert.deepEqual(doc.plan, {start: 1, end: 3})
  assert.deepEqual(
    doc.asserts.map((a) => [a.id, a.ok, a.name]),
    [
      [1, true, 'first'],
      [2, false, 'second'],
      [3, true, 'third without a dash'],
    ],
  )
  assert.deepEqual(doc.asserts[1].diagnostics, ['wanted 4', 'got 5'])
  assert.deepEqual(doc.problems, [])
  assert.equal(doc.ok, false)
})

test('the plan may come last; numbers may be left out and are counted', () => {
  const doc = parseTap('ok - a\nok\nok - c\n1..3\n')
  assert.deepEqual(
    doc.asserts.map((a) => [a.id, a.name]),
    [
      [1, 'a'],
      [2, ''],
      [3, 'c'],
    ],
  )
  assert.equal(doc.ok, true)
})

test('SKIP and TODO directives, in any case and with or without a reason; an escaped # is text', () => {
  const doc = parseTap(
    ['1..5', 'ok 1 - needs a NVDIMM # SKIP no nvdimm here', 'ok 2 # skip', 'not ok 3 - not done yet # TODO later', 'ok 4 - issue \\#42 fixed', 'not ok 5 - known # todo'].join('\n'),
  )
  assert.deepEqual(doc.asserts[0].directive, {kind: 'skip', reason: 'no nvdimm here'})
  assert.equal(doc.asserts[0].name, 'needs a NVDIMM')
  assert.deepEqual(doc.asserts[1].directive, {kind: 'skip', reason: ''})
  assert.deepEqual(doc.asserts[2].directive, {kind: 'todo', reason: 'later'})
  assert.equal(doc.asserts[3].name, 'issue #42 fixed')
  assert.equal(doc.asserts[3].directive, undefined)
  assert.equal(failing(doc.asserts[2]), false, 'a failing TODO is not a failure')
  assert.equal(doc.ok, true)
})

test('"1..0 # SKIP why" skips the whole stream', () => {
  const doc = parseTap('TAP version 14\n1..0 # SKIP no persistent memory\n')
  assert.deepEqual(doc.plan, {start: 1, end: 0, skipAll: 'no persistent memory'})
  assert.equal(doc.asserts.length, 0)
  assert.equal(doc.ok, true)
})

test('Bail out! stops the stream and fails it', () => {
  const doc = parseTap('1..4\nok 1 - a\nBail out! the pool is gone\n')
  assert.equal(doc.bailOut, 'the pool is gone')
  assert.equal(doc.ok, false)
  assert.deepEqual(doc.problems, [], 'a bail out explains the missing tests')
})

test('a wrong count, a missing plan and numbers out of order are problems', () => {
  assert.deepEqual(parseTap('1..3\nok 1\nok 2\n').problems, ['planned 3 tests but 2 ran'])
  assert.equal(parseTap('1..3\nok 1\nok 2\n').ok, false)
  assert.deepEqual(parseTap('ok 1\n').problems, ['no plan (1 tests ran)'])
  assert.deepEqual(parseTap('').problems, ['no plan and no tests'])
  assert.deepEqual(parseTap('1..2\nok 2\nok 1\n').problems, ['test 1 is numbered 2', 'test 2 is numbered 1'])
})

test('a YAML diagnostic block belongs to the test point before it and is not a subtest', () => {
  const text = ['1..2', 'not ok 1 - pool opens', '  ---', '  message: "pmemobj_open: Invalid argument"', '  data:', '    got: 1', '    want: 0', '  ...', 'ok 2 - next', ''].join('\n')
  const doc = parseTap(text)
  assert.equal(doc.asserts.length, 2)
  assert.equal(doc.asserts[0].yaml, 'message: "pmemobj_open: Invalid argument"\ndata:\n  got: 1\n  want: 0')
  assert.equal(doc.asserts[0].subtest, undefined)
  assert.equal(doc.asserts[1].name, 'next')
  assert.deepEqual(doc.problems, [])
})

test('an unterminated YAML block is tolerated', () => {
  const doc = parseTap('not ok 1 - a\n  ---\n  message: x\nok 2 - b\n1..2\n')
  assert.equal(doc.asserts.length, 2)
  assert.equal(doc.asserts[0].yaml, 'message: x')
})

test('indented subtests (TAP 14 and the older style) attach to the next test point of the parent', () => {
  const text = [
    'TAP version 14',
    '1..2',
    '# Subtest: ext4',
    '    1..2',
    '    ok 1 - statx',
    '    not ok 2 - MAP_SYNC',
    '    # EOPNOTSUPP',
    'not ok 1 - ext4',
    '    # Subtest: nested',
    '        ok 1 - deep',
    '        1..1',
    '    ok 1 - nested',
    '    1..1',
    'ok 2 - xfs',
  ].join('\n')
  const doc = parseTap(text)
  assert.equal(doc.asserts.length, 2, 'children are not counted at the top level')
  const first = doc.asserts[0]
  assert.equal(first.name, 'ext4')
  assert.deepEqual(
    first.subtest?.asserts.map((a) => [a.name, a.ok]),
    [
      ['statx', true],
      ['MAP_SYNC', false],
    ],
  )
  assert.deepEqual(first.subtest?.asserts[1].diagnostics, ['EOPNOTSUPP'])
  const second = doc.asserts[1]
  assert.equal(second.subtest?.asserts[0].name, 'nested')
  assert.equal(second.subtest?.asserts[0].subtest?.asserts[0].name, 'deep')
  assert.deepEqual(doc.problems, [])
  assert.equal(doc.ok, false)
})

test('comments before the first test point and non-TAP lines are kept apart', () => {
  const doc = parseTap('# /mnt is on /dev/pmem0\nsome program output\npragma +strict\n1..1\nok 1\n')
  assert.deepEqual(doc.comments, ['/mnt is on /dev/pmem0'])
  assert.deepEqual(doc.extra, ['some program output'])
})

test('"okay" and "oknot" are not test points', () => {
  const doc = parseTap('okay then\noknot\n1..0\n')
  assert.equal(doc.asserts.length, 0)
  assert.deepEqual(doc.extra, ['okay then', 'oknot'])
})

test('streaming: any chunking gives the same document, and each test point is reported as its line arrives', () => {
  const text = 'TAP version 13\r\nok 1 - a\r\nnot ok 2 - b\r\n# why\r\nok 3 - c # SKIP later\r\n1..3\r\n'
  const whole = parseTap(text)
  for (const size of [1, 2, 3, 7, 100]) {
    const seen: string[] = []
    const parser = new TapParser((a) => seen.push(a.name))
    for (let i = 0; i < text.length; i += size) parser.write(text.slice(i, i + size))
    if (size === 1) {
      assert.deepEqual(seen, ['a', 'b', 'c'])
    }
    assert.deepEqual(parser.end(), whole, `chunks of ${size}`)
  }
  assert.deepEqual(whole.asserts[1].diagnostics, ['why'])
  // The callback fires before the stream ends.
  const early: string[] = []
  const parser = new TapParser((a) => early.push(a.name))
  parser.write('ok 1 - first\n')
  assert.deepEqual(early, ['first'])
  assert.equal(parser.asserts.length, 1)
})

test('a last line without a newline is parsed at the end', () => {
  const doc = parseTap('1..1\nok 1 - last')
  assert.equal(doc.asserts[0].name, 'last')
  assert.equal(doc.ok, true)
})

test('looksLikeTap tells TAP from plain program output', () => {
  assert.equal(looksLikeTap('TAP version 13\n'), true)
  assert.equal(looksLikeTap('hello\nok 1 - x\n'), true)
  assert.equal(looksLikeTap('1..0\n'), true)
  assert.equal(looksLikeTap('everything is okay\nexit 0\n'), false)
  assert.equal(looksLikeTap(''), false)
})

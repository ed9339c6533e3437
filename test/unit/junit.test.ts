import assert from 'node:assert/strict'
import {test} from 'node:test'
import {renderJUnit, type JUnitSuite} from '../../src/suite/junit.js'
import {decodeXml as decode} from '../helpers/xml.js'

interface Element {
  name: string
  attrs: Record<string, string>
  text: string
}

/**
 * A small well-formedness check: every tag closes in order, attributes are quoted, no raw "<" or
 * "&" (other than entities) and no "]]>" appears outside CDATA, and no character XML 1.0 cannot
 * carry appears anywhere. Returns the elements in document order, with entities and CDATA read.
 */
function elements(xml: string): Element[] {
  assert.ok(xml.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n'))
  assert.ok(xml.endsWith('>\n'), 'a trailing newline')
  assert.doesNotMatch(xml, /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/, 'a character XML cannot carry')
  const body = xml.slice(xml.indexOf('\n') + 1)
  const stack: Element[] = []
  const out: Element[] = []
  const token = /<!\[CDATA\[([\s\S]*?)\]\]>|<(\/?)([A-Za-z-]+)((?:\s+[a-z-]+="[^"<]*")*)\s*(\/?)>|([^<]+)/g
  let match: RegExpExecArray | null
  let consumed = 0
  while ((match = token.exec(body))) {
    assert.equal(match.index, consumed, `unexpected markup at ${body.slice(consumed, consumed + 40)}`)
    consumed = match.index + match[0].length
    if (match[1] !== undefined) {
      assert.ok(stack.length > 0, 'CDATA outside an element')
      stack.at(-1)!.text += match[1]
      continue
    }
    if (match[6] !== undefined) {
      assert.doesNotMatch(match[6], /&(?!(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/, 'a raw & in text')
      assert.doesNotMatch(match[6], /]]>/, 'a raw ]]> in text')
      if (stack.length > 0) stack.at(-1)!.text += decode(match[6])
      continue
    }
    const [, , close, name, rawAttrs, selfClose] = match
    if (close) {
      assert.equal(stack.pop()?.name, name, `</${name}> closes the wrong element`)
      continue
    }
    const attrs: Record<string, string> = {}
    for (const [, key, value] of rawAttrs.matchAll(/([a-z-]+)="([^"]*)"/g)) {
      assert.doesNotMatch(value, /&(?!(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/, 'a raw & in an attribute')
      assert.doesNotMatch(value, /[\t\n\r]/, 'a raw tab or newline in an attribute (normalised away by parsers)')
      attrs[key] = decode(value)
    }
    const element = {name, attrs, text: ''}
    out.push(element)
    if (!selfClose) stack.push(element)
  }
  assert.equal(consumed, body.length)
  assert.deepEqual(stack, [], 'every element is closed')
  return out
}

const suites: JUnitSuite[] = [
  {
    name: 'builtin',
    timestamp: '2026-11-25T15:59:13',
    timeSec: 3.5,
    properties: {kernel: 'distro', filesystems: 'ext4,xfs'},
    cases: [
      {name: 'statx reports STATX_ATTR_DAX', classname: 'builtin.memmap0.ext4', timeSec: 0.25, status: 'pass'},
      {name: 'mmap <MAP_SYNC> & "friends"', classname: 'builtin.nvdimm0.xfs', timeSec: 1, status: 'fail', message: 'EOPNOTSUPP: not on DAX', details: 'line 1\nline <2>'},
      {name: 'devdax', classname: 'builtin.devdax', timeSec: 0, status: 'skip', message: 'needs an NVDIMM'},
    ],
  },
  {
    name: 'user-suite',
    timeSec: 8,
    cases: [
      {name: 'hang.sh', classname: 'user-suite.ext4', timeSec: 3.001, status: 'error', type: 'timeout', message: 'killed after 3 s', systemOut: 'going to sleep\n'},
      {name: 'pass.sh', classname: 'user-suite.ext4', timeSec: 0.1234, status: 'pass', systemOut: 'ok 1 - x'},
    ],
  },
]

/** Seconds as CI tools read them: a decimal number, here compared to the millisecond. */
const time = (value: string | undefined) => {
  assert.match(value ?? '', /^\d+(\.\d+)?$/, `time="${value}" is a plain decimal`)
  return Math.round(Number(value) * 1000) / 1000
}

test('counts per suite and in total, times in seconds to the millisecond', () => {
  const xml = renderJUnit(suites, 'pmemlab test')
  const els = elements(xml)
  const root = els[0]
  assert.equal(root.name, 'testsuites')
  // junit-report-builder writes no total time on <testsuites> and no id on <testsuite>.
  assert.deepEqual(root.attrs, {name: 'pmemlab test', tests: '5', failures: '1', errors: '1', skipped: '1'})
  const [builtin, user] = els.filter((e) => e.name === 'testsuite')
  const {time: builtinTime, ...builtinCounts} = builtin.attrs
  assert.deepEqual(builtinCounts, {name: 'builtin', tests: '3', failures: '1', errors: '0', skipped: '1', timestamp: '2026-11-25T15:59:13'})
  assert.equal(time(builtinTime), 3.5)
  const {time: userTime, ...userCounts} = user.attrs
  assert.deepEqual(userCounts, {name: 'user-suite', tests: '2', failures: '0', errors: '1', skipped: '0'})
  assert.equal(time(userTime), 8)
  const cases = els.filter((e) => e.name === 'testcase')
  assert.deepEqual(
    cases.map((c) => [c.attrs.classname, c.attrs.name, time(c.attrs.time)]),
    [
      ['builtin.memmap0.ext4', 'statx reports STATX_ATTR_DAX', 0.25],
      ['builtin.nvdimm0.xfs', 'mmap <MAP_SYNC> & "friends"', 1],
      ['builtin.devdax', 'devdax', 0],
      ['user-suite.ext4', 'hang.sh', 3.001],
      ['user-suite.ext4', 'pass.sh', 0.123],
    ],
  )
  const odd = elements(renderJUnit([{name: 's', timeSec: Number.NaN, cases: [{name: 'n', classname: 'c', timeSec: -1, status: 'pass'}, {name: 'tiny', classname: 'c', timeSec: 1e-7, status: 'pass'}]}]))
  assert.deepEqual(
    odd.filter((e) => e.name === 'testsuite' || e.name === 'testcase').map((e) => time(e.attrs.time)),
    [0, 0, 0],
    'unknown, negative and sub-millisecond times are written as 0, never as NaN or 1e-7',
  )
})

test('failure, error, skipped and system-out elements sit inside their testcase', () => {
  const xml = renderJUnit(suites)
  const els = elements(xml)
  const names = els.map((e) => e.name)
  assert.deepEqual(names, [
    'testsuites',
    'testsuite',
    'properties',
    'property',
    'property',
    'testcase',
    'testcase',
    'failure',
    'testcase',
    'skipped',
    'system-out',
    'testsuite',
    'testcase',
    'error',
    'system-out',
    'testcase',
    'system-out',
  ])
  assert.deepEqual(
    els.filter((e) => e.name === 'property').map((e) => e.attrs),
    [
      {name: 'kernel', value: 'distro'},
      {name: 'filesystems', value: 'ext4,xfs'},
    ],
  )
  const failure = els.find((e) => e.name === 'failure')!
  assert.deepEqual(failure.attrs, {message: 'EOPNOTSUPP: not on DAX', type: 'failure'})
  assert.equal(failure.text, 'line 1\nline <2>')
  const error = els.find((e) => e.name === 'error')!
  assert.deepEqual(error.attrs, {message: 'killed after 3 s', type: 'timeout'})
  // The library writes a bare <skipped/>: the reason opens the case's output instead.
  assert.deepEqual(els.find((e) => e.name === 'skipped')!.attrs, {})
  const outputs = els.filter((e) => e.name === 'system-out').map((e) => e.text)
  assert.deepEqual(outputs, ['skipped: needs an NVDIMM\n', 'going to sleep\n', 'ok 1 - x'])
  assert.match(xml, /<testcase name="statx reports STATX_ATTR_DAX" classname="builtin.memmap0.ext4" time="0.25"\/>/, 'a passing case is one empty element')
  assert.match(xml, /<failure message="EOPNOTSUPP: not on DAX" type="failure">/, 'message before type, as readers that match on text expect')
})

test('a failure or error without details, and a skip without a reason, are empty elements', () => {
  const xml = renderJUnit([
    {
      name: 's',
      timeSec: 1,
      cases: [
        {name: 'f', classname: 'c', timeSec: 0, status: 'fail'},
        {name: 'e', classname: 'c', timeSec: 0, status: 'error', message: 'boom'},
        {name: 'k', classname: 'c', timeSec: 0, status: 'skip'},
      ],
    },
  ])
  const els = elements(xml)
  assert.deepEqual(
    els.filter((e) => ['failure', 'error', 'skipped', 'system-out'].includes(e.name)).map((e) => [e.name, e.attrs, e.text]),
    [
      ['failure', {type: 'failure'}, ''],
      ['error', {message: 'boom', type: 'error'}, ''],
      ['skipped', {}, ''],
    ],
  )
})

test('a suite hostname and a suite output survive as suite properties', () => {
  const els = elements(renderJUnit([{name: 's', hostname: 'lab-1', timeSec: 0, properties: {kernel: 'distro'}, systemOut: 'booted <ok> & "done"\nbye', cases: []}]))
  assert.deepEqual(
    els.filter((e) => e.name === 'property').map((e) => [e.attrs, e.text]),
    [
      [{name: 'hostname', value: 'lab-1'}, ''],
      [{name: 'kernel', value: 'distro'}, ''],
      [{name: 'system-out'}, 'booted <ok> & "done"\nbye'],
    ],
  )
  assert.equal(els.find((e) => e.name === 'testsuite')!.attrs.tests, '0')
})

test('escaping: markup characters, quotes, newlines in attributes, and characters XML cannot carry', () => {
  const xml = renderJUnit([
    {
      name: 'x & <y>',
      timeSec: 0,
      properties: {'k<&>': `v "q" 'a'`},
      cases: [
        {name: 'a < b && c > d', classname: `say "hi" & 'bye'`, timeSec: 0, status: 'fail', message: `m\u001b "x" & 'y'\nnext\tcol`, type: 't<&>', details: 'out]]>\u001b'},
        {name: 'nul\u0000 \ufffe', classname: 'snow ☃ and 🙂 survive', timeSec: 0, status: 'skip', message: 'lone \ud800 surrogate'},
        {name: 'cdata', classname: 'c', timeSec: 0, status: 'error', details: 'one ]]> two ]]> three ]]]]> <![CDATA[ & <end>', systemOut: '\u001b[31mred\u001b[0m ]]> and ]]>'},
      ],
    },
  ])
  const els = elements(xml)
  assert.equal(els.find((e) => e.name === 'testsuite')!.attrs.name, 'x & <y>')
  assert.deepEqual(els.find((e) => e.name === 'property')!.attrs, {name: 'k<&>', value: `v "q" 'a'`})
  const [first, second, third] = els.filter((e) => e.name === 'testcase')
  assert.deepEqual([first.attrs.name, first.attrs.classname], ['a < b && c > d', `say "hi" & 'bye'`])
  assert.deepEqual(els.find((e) => e.name === 'failure')!.attrs, {message: `m\\x1b "x" & 'y'\nnext\tcol`, type: 't<&>'})
  assert.equal(els.find((e) => e.name === 'failure')!.text, 'out]]>\\x1b')
  assert.deepEqual([second.attrs.name, second.attrs.classname], ['nul\\x00 \\ufffe', 'snow ☃ and 🙂 survive'])
  assert.equal(els.find((e) => e.name === 'error')!.text, 'one ]]> two ]]> three ]]]]> <![CDATA[ & <end>')
  assert.deepEqual(
    els.filter((e) => e.name === 'system-out').map((e) => e.text),
    ['skipped: lone \\ud800 surrogate\n', '\\x1b[31mred\\x1b[0m ]]> and ]]>'],
  )
  assert.equal(third.attrs.name, 'cdata')
})

test('every report is built afresh: nothing from an earlier report leaks into the next', () => {
  const first = renderJUnit(suites)
  const empty = renderJUnit([])
  assert.equal(renderJUnit(suites), first)
  assert.deepEqual(elements(empty).map((e) => e.name), ['testsuites'])
})

test('an empty report is still a valid document', () => {
  const xml = renderJUnit([])
  const els = elements(xml)
  assert.deepEqual(els.map((e) => e.name), ['testsuites'])
  assert.equal(els[0].attrs.tests, '0')
})

import assert from 'node:assert/strict'
import {test} from 'node:test'
import {escapeAttr, escapeText, renderJUnit, type JUnitSuite} from '../../src/suite/junit.js'
import {decodeXml as decode} from '../helpers/xml.js'

/**
 * A small well-formedness check: every tag closes in order, attributes are quoted, and no raw
 * "<" or "&" (other than entities) appears in text. Returns the elements in document order.
 */
function elements(xml: string): Array<{name: string; attrs: Record<string, string>; text: string}> {
  assert.ok(xml.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n'))
  const body = xml.slice(xml.indexOf('\n') + 1)
  const stack: Array<{name: string; attrs: Record<string, string>; text: string}> = []
  const out: Array<{name: string; attrs: Record<string, string>; text: string}> = []
  const token = /<(\/?)([A-Za-z-]+)((?:\s+[a-z-]+="[^"<]*")*)\s*(\/?)>|([^<]+)/g
  let match: RegExpExecArray | null
  let consumed = 0
  while ((match = token.exec(body))) {
    assert.equal(match.index, consumed, `unexpected markup at ${body.slice(consumed, consumed + 40)}`)
    consumed = match.index + match[0].length
    if (match[5] !== undefined) {
      assert.doesNotMatch(match[5], /&(?!(amp|lt|gt|quot|apos|#\d+);)/, 'a raw & in text')
      if (stack.length > 0) stack.at(-1)!.text += decode(match[5])
      continue
    }
    const [, close, name, rawAttrs, selfClose] = match
    if (close) {
      assert.equal(stack.pop()?.name, name, `</${name}> closes the wrong element`)
      continue
    }
    const attrs: Record<string, string> = {}
    for (const [, key, value] of rawAttrs.matchAll(/([a-z-]+)="([^"]*)"/g)) {
      assert.doesNotMatch(value, /&(?!(amp|lt|gt|quot|apos|#\d+);)/, 'a raw & in an attribute')
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

test('counts per suite and in total, times in seconds with three decimals', () => {
  const xml = renderJUnit(suites, 'pmemlab test')
  const els = elements(xml)
  const root = els[0]
  assert.equal(root.name, 'testsuites')
  assert.deepEqual(root.attrs, {name: 'pmemlab test', tests: '5', failures: '1', errors: '1', skipped: '1', time: '11.500'})
  const [builtin, user] = els.filter((e) => e.name === 'testsuite')
  assert.deepEqual(builtin.attrs, {name: 'builtin', id: '0', tests: '3', failures: '1', errors: '0', skipped: '1', time: '3.500', timestamp: '2026-11-25T15:59:13'})
  assert.deepEqual(user.attrs, {name: 'user-suite', id: '1', tests: '2', failures: '0', errors: '1', skipped: '0', time: '8.000'})
  const cases = els.filter((e) => e.name === 'testcase')
  assert.deepEqual(
    cases.map((c) => [c.attrs.classname, c.attrs.name, c.attrs.time]),
    [
      ['builtin.memmap0.ext4', 'statx reports STATX_ATTR_DAX', '0.250'],
      ['builtin.nvdimm0.xfs', 'mmap <MAP_SYNC> & "friends"', '1.000'],
      ['builtin.devdax', 'devdax', '0.000'],
      ['user-suite.ext4', 'hang.sh', '3.001'],
      ['user-suite.ext4', 'pass.sh', '0.123'],
    ],
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
    'testsuite',
    'testcase',
    'error',
    'system-out',
    'testcase',
    'system-out',
  ])
  const failure = els.find((e) => e.name === 'failure')!
  assert.deepEqual(failure.attrs, {message: 'EOPNOTSUPP: not on DAX', type: 'failure'})
  assert.equal(failure.text, 'line 1\nline <2>')
  const error = els.find((e) => e.name === 'error')!
  assert.deepEqual(error.attrs, {message: 'killed after 3 s', type: 'timeout'})
  assert.deepEqual(els.find((e) => e.name === 'skipped')!.attrs, {message: 'needs an NVDIMM'})
  assert.equal(els.filter((e) => e.name === 'system-out')[0].text, 'going to sleep\n')
  assert.match(xml, /<testcase name="statx reports STATX_ATTR_DAX" classname="builtin.memmap0.ext4" time="0.250"\/>/, 'a passing case is one empty element')
})

test('escaping: markup characters, quotes, newlines in attributes, and characters XML cannot carry', () => {
  assert.equal(escapeText('a < b && c > d'), 'a &lt; b &amp;&amp; c &gt; d')
  assert.equal(escapeAttr(`say "hi" & 'bye'\nnext\tcol`), 'say &quot;hi&quot; &amp; &apos;bye&apos;&#10;next&#9;col')
  assert.equal(escapeText('\u001b[31mred\u001b[0m'), '\\x1b[31mred\\x1b[0m')
  assert.equal(escapeText('nul\u0000 \ufffe'), 'nul\\x00 \\ufffe')
  assert.equal(escapeText('snow ☃ and 🙂 survive'), 'snow ☃ and 🙂 survive')
  assert.equal(escapeText('lone \ud800 surrogate'), 'lone \\ud800 surrogate')
  const xml = renderJUnit([{name: 'x', timeSec: 0, cases: [{name: 'ctrl\u0007', classname: 'c', timeSec: 0, status: 'fail', message: 'm\u001b', details: 'out]]>\u001b'}]}])
  const els = elements(xml)
  assert.equal(els.find((e) => e.name === 'testcase')!.attrs.name, 'ctrl\\x07')
  assert.equal(els.find((e) => e.name === 'failure')!.text, 'out]]>\\x1b')
})

test('an empty report is still a valid document', () => {
  const xml = renderJUnit([])
  const els = elements(xml)
  assert.deepEqual(els.map((e) => e.name), ['testsuites'])
  assert.equal(els[0].attrs.tests, '0')
})

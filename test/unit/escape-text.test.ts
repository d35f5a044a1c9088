// The one escaping rule (src/util/escape.ts) and the text log format built on it: control
// characters escaped, peer text capped, escaping idempotent, one line per log call, and string
// field values quoted the same way whenever they are not one plain word.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { PEER_TEXT_MAX, escapeText, peerText, quoteText } from '../../src/util/escape.js';
import { createLogger } from '../../src/util/log.js';

const CONTROL = /[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028-\u202e\u2066-\u2069]/u;

// escapeText: each kind of control character has its escape, other text is kept as it is.
// quoteText: one plain word stays bare; anything else is quoted with ", \ and controls escaped.
const EXPECTED: readonly [(s: string) => string, string, string][] = [
  [escapeText, 'a\nb\rc\td', 'a\\nb\\rc\\td'],
  [escapeText, '\0\x1b[31m\x7f', '\\x00\\x1b[31m\\x7f'],
  [escapeText, '\u0085\u2028\u2029', '\\u{85}\\u{2028}\\u{2029}'],
  [escapeText, 'a\u202eb\u2066c', 'a\\u{202e}b\\u{2066}c'],
  [escapeText, 'plain – ünïcode ✓ and \\ backslash', 'plain – ünïcode ✓ and \\ backslash'],
  [quoteText, '127.0.0.1:10809', '127.0.0.1:10809'],
  [quoteText, '/srv/vol.img', '/srv/vol.img'],
  [quoteText, '', '""'],
  [quoteText, 'peer closed', '"peer closed"'],
  [quoteText, 'a=b', '"a=b"'],
  [quoteText, 'say "hi"\n', '"say \\"hi\\"\\n"'],
  [quoteText, 'back\\slash', '"back\\\\slash"'],
  [quoteText, 'a\u202eb', '"a\\u{202e}b"'],
];

test('escapeText and quoteText: the escape of each kind of character, bare words and quoted values', () => {
  for (const [fn, input, expected] of EXPECTED) assert.equal(fn(input), expected, `${fn.name}(${JSON.stringify(input)})`);
});

test('escaped text never holds a control character, and escaping it again changes nothing', () => {
  fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (s) => {
    const e = escapeText(s);
    assert.ok(!CONTROL.test(e), JSON.stringify(e));
    assert.equal(escapeText(e), e);
  }));
});

test('peerText caps the length (whole escapes, never a broken one) and says how much was cut', () => {
  assert.equal(peerText('x'.repeat(PEER_TEXT_MAX)), 'x'.repeat(PEER_TEXT_MAX));
  assert.equal(peerText('x'.repeat(PEER_TEXT_MAX + 10)), `${'x'.repeat(PEER_TEXT_MAX)}…(+10)`);
  assert.equal(peerText('ab\n\n', 3), 'ab…(+2)');
  assert.equal(peerText('ab\ncd', 4), 'ab\\n…(+2)');
  fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 600 }), fc.integer({ min: 1, max: 300 }), (s, max) => {
    const p = peerText(s, max);
    assert.ok(!CONTROL.test(p));
    assert.ok(p.replace(/…\(\+\d+\)$/, '').length <= max, `${p.length} > ${max}`);
  }));
});

test('text log: one line per call whatever the message and fields hold; string values quoted alike', () => {
  const lines: string[] = [];
  const log = createLogger('debug', 'text', (l) => lines.push(l));
  log.warn('HELLO refused\nFORGED line\r\0\x1b[2J', { node: 'vol', op: 'hello', reason: 'bad\nsuite', addr: '127.0.0.1', n: 3, obj: { s: 'x\ny' } });
  assert.equal(lines.length, 1);
  const [line] = lines;
  assert.ok(!CONTROL.test(line!), JSON.stringify(line));
  assert.match(line!, /^\S+ warn node vol: hello: HELLO refused\\nFORGED line\\r\\x00\\x1b\[2J reason="bad\\nsuite" addr=127\.0\.0\.1 n=3 obj=\{"s":"x\\ny"\}$/);
});

test('JSON log: the same message and fields come back exactly from the parsed line', () => {
  const lines: string[] = [];
  const log = createLogger('debug', 'json', (l) => lines.push(l));
  log.error('a\nb\0', { node: 'vol', reason: 'c\x1bd' });
  assert.equal(lines.length, 1);
  assert.ok(!CONTROL.test(lines[0]!));
  const rec = JSON.parse(lines[0]!) as Record<string, unknown>;
  assert.equal(rec.msg, 'a\nb\0');
  assert.equal(rec.reason, 'c\x1bd');
});

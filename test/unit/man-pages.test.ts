// The man pages format cleanly and document what the code declares: every CLI command (from the
// control family table and the list below), every node state and event, the wire protocol's
// commands, operations and flags with their numbers, and the control family's command numbers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, requireTool, run } from '../helpers/tools.js';
import { Cmd, Flag, Op, HEADER_SIZE, WIRE_MAGIC } from '../../src/protocol/wire.js';
import { DST_CMD, DST_FAMILY_ID, FAMILY } from '../../src/netlink/family.js';
import { EVENT_NAMES, NODE_STATES } from '../../src/netlink/objects.js';
import { POLICY_TABLE } from '../../src/engine/policy.js';

const PAGES = ['man/dst.8', 'man/dst.conf.5', 'man/dst-protocol.7'];

/** CLI commands as the CLI spells them (the control table's `cli` names are checked too). */
const CLI_COMMANDS = [
  'engine', 'demo',
  'node add', 'node start', 'node stop', 'node del', 'node reconnect', 'node list', 'node show', 'node set',
  'security add', 'security del', 'security list', 'security load',
  'crypto set', 'crypto show', 'crypto clear',
  'status', 'events',
  'config show', 'config save', 'config load',
  'fault-proxy', 'fault-proxy ctl',
];

const read = (page: string): string => readFileSync(join(repoRoot(), page), 'utf8');

/** Undo the roff escapes we use in names: "\-" → "-". */
const unescape = (s: string): string => s.replace(/\\-/g, '-').replace(/\\\(aq/g, "'");

/** Lines of one `.SH` section (up to the next `.SH`). */
function section(text: string, name: string): string[] {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.trim() === `.SH ${name}` || l.trim() === `.SH "${name}"`);
  assert.ok(start >= 0, `section ${name} missing`);
  const rest = lines.slice(start + 1);
  const end = rest.findIndex((l) => l.startsWith('.SH '));
  return end < 0 ? rest : rest.slice(0, end);
}

/** Command names listed in dst.8's COMMANDS section as `.TP` then `.B dst NAME`. */
function documentedCommands(): Set<string> {
  const lines = section(read('man/dst.8'), 'COMMANDS');
  const out = new Set<string>();
  for (let i = 0; i + 1 < lines.length; i++) {
    if (lines[i]!.trim() !== '.TP') continue;
    const m = /^\.B\s+"?dst ([^"]+?)"?\s*$/.exec(lines[i + 1]!.trim());
    if (m) out.add(unescape(m[1]!));
  }
  return out;
}

for (const page of PAGES) {
  test(`man page ${page}: groff -man -ww -z prints nothing`, async (t) => {
    if (!requireTool(t, 'groff', 'groff-base')) return;
    const r = await run('groff', ['-man', '-ww', '-z', join(repoRoot(), page)], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout + r.stderr, '', `groff warnings for ${page}:\n${r.stderr}`);
  });

  test(`man page ${page}: plain ASCII (roff escapes for everything else)`, () => {
    const text = read(page);
    const bad = [...text].findIndex((c) => c.charCodeAt(0) > 0x7e || (c.charCodeAt(0) < 0x20 && c !== '\n'));
    assert.equal(bad, -1, `${page}: non-ASCII or control character at index ${bad}: ${JSON.stringify(text.slice(Math.max(0, bad - 20), bad + 20))}`);
  });
}

test('dst.8 COMMANDS lists every CLI command (.TP / .B dst NAME)', () => {
  const documented = documentedCommands();
  const fromTable = Object.values(FAMILY).map((s) => s.cli).filter((c): c is string => c !== null);
  const missing = [...new Set([...CLI_COMMANDS, ...fromTable])].filter((c) => !documented.has(c));
  assert.deepEqual(missing, [], `commands missing from dst.8 COMMANDS: ${missing.join(', ')}`);
});

test('dst.8 documents the original one-shot options, exit codes, states, events, environment', () => {
  const text = unescape(read('man/dst.8'));
  const original = section(text, 'ORIGINAL FORM').join('\n');
  for (const opt of ['-n', '-d', '-a', '-p', '-s', '-S', '-c', '-C', '-x', '-H', '-t', '-T', '-R', '-D']) {
    assert.match(original, new RegExp(`^\\.(TP\\n\\.)?B[IR]? ${opt}\\b`, 'm'), `option ${opt} not documented in ORIGINAL FORM`);
  }
  const exit = section(text, 'EXIT STATUS').join('\n');
  for (const code of ['0', '1', '2', '3']) assert.match(exit, new RegExp(`^\\.B ${code}$`, 'm'), `exit code ${code}`);
  const states = section(text, 'NODE STATES').join('\n');
  for (const s of NODE_STATES) assert.match(states, new RegExp(`^\\.B ${s}$`, 'm'), `state ${s}`);
  const events = section(text, 'EVENTS').join('\n');
  for (const e of EVENT_NAMES) assert.match(events, new RegExp(`^\\.BR? ${e}\\b`, 'm'), `event ${e}`);
  const env = section(text, 'ENVIRONMENT').join('\n');
  for (const v of ['DST_SOCKET', 'UV_THREADPOOL_SIZE']) assert.match(env, new RegExp(v), v);
  for (const s of ['POLICY', 'SECURITY', 'JSON OUTPUT', 'FILES', 'EXAMPLES']) section(text, s);
  // the deadline with its default value
  assert.match(text, /resend-timeout \\\(mu \(max-resends \+ 1\)/);
  assert.match(text, /65 seconds/);
});

test('dst-protocol.7 documents the wire header, commands, ops and flags with their numbers', () => {
  const text = unescape(read('man/dst-protocol.7'));
  assert.match(text, new RegExp(`0x${WIRE_MAGIC.toString(16)}`));
  assert.match(text, new RegExp(`${HEADER_SIZE}-byte header`));
  for (const [name, value] of Object.entries(Cmd)) {
    if (typeof value !== 'number') continue;
    assert.match(text, new RegExp(`^\\.B ${value} ${name}$`, 'm'), `wire command ${value} ${name}`);
  }
  for (const [name, value] of Object.entries(Op)) {
    if (typeof value !== 'number') continue;
    assert.match(text, new RegExp(`^\\.B ${value} ${name}$`, 'm'), `op ${value} ${name}`);
  }
  for (const [name, value] of Object.entries(Flag)) {
    assert.match(text, new RegExp(`^\\.B 0x${value.toString(16).padStart(2, '0')} ${name}$`, 'm'), `flag ${name}`);
  }
});

test('dst-protocol.7 documents the control family id and every command number', () => {
  const text = unescape(read('man/dst-protocol.7'));
  assert.match(text, new RegExp(`0x${DST_FAMILY_ID.toString(16)}`));
  assert.match(text, /NLMSGERR_ATTR_COOKIE/);
  for (const [name, value] of Object.entries(DST_CMD)) {
    if (name === 'UNSPEC') continue;
    assert.match(text, new RegExp(`^\\s*${value}\\s+${name}\\b`, 'm'), `control command ${value} ${name}`);
  }
});

test('dst.conf.5 documents every key', () => {
  const text = unescape(read('man/dst.conf.5'));
  const keys = ['log-level', 'log-format', 'role', 'size', 'autostart', 'disk', 'listen', 'readonly', 'allow[]',
    'remote', 'export', 'nbd-listen', ...POLICY_TABLE.map((k) => k.key), 'cipher', 'cipher-key-file', 'hash', 'hash-key-file', 'threads'];
  for (const k of keys) {
    const esc = k.replace(/[[\]]/g, '\\$&');
    assert.match(text, new RegExp(`^\\.B[IR]? ${esc}(?=\\s|$)`, 'm'), `key ${k}`);
  }
});

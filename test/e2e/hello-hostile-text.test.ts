// A HELLO whose string fields (export name, suite), and an NBD export name, hold a newline, a carriage return, NUL and ANSI
// escape bytes and a made-up log line: the export refuses it as any bad HELLO; no log line starts
// with text the peer sent, the log holds no raw NUL, ESC or CR, the auth-failed event is valid JSON
// with the bytes escaped, and nothing else changes (the node serves, a good client does verified I/O).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { constants } from 'node:os';
import { startPair } from '../helpers/cluster.js';
import { WireClient } from '../helpers/wire-client.js';
import { NbdClient } from '../helpers/nbd-client.js';
import { blockContent, checkBlock } from '../helpers/blocks.js';
import { Op } from '../../src/protocol/wire.js';

const FORGED = '2026-01-01T00:00:00.000Z error node sec: FORGED disk /dev/sda failed (EIO)';
const NASTY = `x\n${FORGED}\r\0\x1b[31mred\x1b[0m\x1b]0;title\x07`;
const RAW_CONTROL = /[\x00-\x08\x0b-\x1f\x7f]/;

test('control bytes in HELLO strings are escaped in logs, events and refusals; nothing else changes', async (t) => {
  const pair = await startPair(t, { size: 8 * 1024 * 1024 });
  const events = await pair.exp.events({ node: pair.exportName });
  t.after(() => events.close());

  const byName = await WireClient.connect(pair.listen);
  t.after(() => byName.close());
  const r1 = await byName.hello({ exportName: NASTY });
  assert.equal(r1.status, constants.errno.ENOENT);
  assert.ok(!RAW_CONTROL.test(r1.message!) && !r1.message!.includes('\n'), `refusal carries raw control bytes: ${JSON.stringify(r1.message)}`);
  assert.ok(r1.message!.includes(`x\\n${FORGED}\\r`), `refusal names the export, escaped: ${r1.message}`);

  const bySuite = await WireClient.connect(pair.listen);
  t.after(() => bySuite.close());
  const r2 = await bySuite.hello({ suite: NASTY });
  assert.equal(r2.status, constants.errno.EPROTO);
  assert.ok(!RAW_CONTROL.test(r2.message!) && !r2.message!.includes('\n'), `refusal carries raw control bytes: ${JSON.stringify(r2.message)}`);
  assert.match(r2.message!, /not a suite name/);

  const ev = await events.waitFor((e) => e.event === 'auth-failed', 10_000, 'auth-failed');
  const json = JSON.stringify(ev);
  assert.deepEqual(JSON.parse(json), ev);
  const message = String(ev.message);
  assert.ok(!RAW_CONTROL.test(message) && !message.includes('\n'), `event message holds raw control bytes: ${json}`);
  for (const escaped of [`x\\n${FORGED}`, '\\r', '\\x00', '\\x1b[31m', '\\x07']) {
    assert.ok(message.includes(escaped), `event message has ${escaped}: ${message}`);
  }

  await pair.exp.waitForLog(/suite mismatch/);
  await pair.exp.waitForLog(/no export/);
  const log = pair.exp.log();
  assert.ok(!/[\x00\x1b\r]/.test(log), 'the log holds no raw NUL, ESC or CR byte');
  const lines = log.split('\n');
  for (const line of lines) assert.ok(!line.startsWith(FORGED) && !line.startsWith('FORGED') && !line.startsWith('red'), `a log line starts with peer text: ${line}`);
  const peerLines = lines.filter((l) => l.includes('FORGED'));
  assert.ok(peerLines.length >= 2, 'both refusals are logged');
  for (const line of peerLines) assert.match(line, /^\d{4}-\d\d-\d\dT[\d:.]+Z (debug|info|warn|error) node vol/, `logged by the engine: ${line}`);

  // the remote's NBD endpoint: an unknown export name comes back escaped in NBD_REP_ERR_UNKNOWN
  await assert.rejects(NbdClient.connect(pair.socket, NASTY), (err: Error) => {
    assert.ok(!RAW_CONTROL.test(err.message), `NBD error carries raw control bytes: ${JSON.stringify(err.message)}`);
    assert.ok(err.message.includes(`unknown export "x\\n${FORGED}\\r`), err.message);
    return true;
  });

  // nothing else changed: still listening, a good client does verified I/O, the remote is ready
  assert.equal((await pair.exp.show(pair.exportName)).state, 'listening');
  const good = await WireClient.connect(pair.listen);
  t.after(() => good.close());
  assert.equal((await good.hello()).status, 0);
  assert.equal((await good.io(Op.WRITE, 1, 8192, 4096, blockContent(2, 1)))?.status, 0);
  const r = await good.io(Op.READ, 2, 8192, 4096);
  assert.equal(checkBlock(r!.payload, 2).version, 1);
  assert.equal((await pair.rem.show(pair.remoteName)).state, 'ready');
});

// Raw control messages to a real engine: truncated, oversized, unknown-command, wrong-type and
// overrunning attributes each get an NLMSG_ERROR reply naming the problem and close only that
// connection; the engine keeps serving everyone else.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { startEngine } from '../helpers/engine.js';
import {
  NLMSG_ERROR, NLM_F_REQUEST, formatGenlMessage, formatAttr, parseNlMsgHeader, parseError,
} from '../../src/netlink/codec.js';
import { DST_FAMILY_ID, DST_CMD, FAMILY } from '../../src/netlink/family.js';
import { attrEnum, encodeObject } from '../../src/netlink/schema.js';

/** Send raw bytes; collect everything until the engine closes the connection (bounded). */
function exchange(path: string, bytes: Buffer): Promise<{ replies: Buffer; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const s: Socket = connect(path, () => s.write(bytes));
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => { s.destroy(); resolve({ replies: Buffer.concat(chunks), closed: false }); }, 3000);
    s.on('data', (d) => chunks.push(d));
    s.on('error', reject);
    s.on('close', () => { clearTimeout(timer); resolve({ replies: Buffer.concat(chunks), closed: true }); });
  });
}

function firstError(replies: Buffer): { errno: number; message: string | null; code: string | null } {
  const h = parseNlMsgHeader(replies).x;
  assert.equal(h.type, NLMSG_ERROR, 'the engine answers with NLMSG_ERROR');
  const e = parseError(replies.subarray(16, h.len), h.flags).x;
  return { errno: -e.error, message: e.message, code: e.code };
}

test('malformed control messages get an error reply, close that connection, and the engine keeps serving', async (t) => {
  const eng = await startEngine(t);
  const nodeSet = FAMILY['node-set'];
  const setAttrs = attrEnum(nodeSet.args);
  const msg = (cmd: number, attrs: Buffer[]): Buffer =>
    formatGenlMessage({ type: DST_FAMILY_ID, flags: NLM_F_REQUEST, seq: 1, cmd, attrs });

  const truncated = Buffer.alloc(20);
  truncated.writeUInt32LE(12, 0); // nlmsg_len below the 20-byte minimum
  const oversized = Buffer.alloc(20);
  oversized.writeUInt32LE(2 * 1024 * 1024, 0);
  oversized.writeUInt16LE(DST_FAMILY_ID, 4);
  const wrongType = msg(DST_CMD.NODE_SET, [
    formatAttr(setAttrs.NAME!, Buffer.from('vol\0')),
    formatAttr(setAttrs.MAX_INFLIGHT!, Buffer.from([1, 2])), // a u32 sent as 2 bytes
  ]);
  const overrun = msg(DST_CMD.NODE_SHOW, [formatAttr(1, Buffer.from('vol\0'))]);
  overrun.writeUInt16LE(200, 20); // attribute length runs past the message
  const cases: [string, Buffer, RegExp][] = [
    ['truncated', truncated, /length|short|20/i],
    ['oversized', oversized, /1048576|large|exceeds|limit/i],
    ['unknown command', msg(200, []), /command|200/i],
    ['wrong attribute type', wrongType, /MAX_INFLIGHT|maxInflight|max-inflight|attribute/i],
    ['attribute past its message', overrun, /attribute|past|length/i],
    ['wrong family', formatGenlMessage({ type: 0x42, flags: NLM_F_REQUEST, seq: 1, cmd: DST_CMD.STATUS, attrs: [] }), /family|type/i],
  ];
  for (const [what, bytes, re] of cases) {
    const { replies, closed } = await exchange(eng.socket, bytes);
    assert.ok(replies.length >= 16, `${what}: an error reply came back`);
    const err = firstError(replies);
    assert.ok(err.errno > 0, `${what}: negative errno carried`);
    assert.match(err.message ?? '', re, `${what}: message ${err.message}`);
    assert.match(err.code ?? '', /^DST_ERR_/, `${what}: stable code`);
    assert.ok(closed, `${what}: that connection is closed`);
    const status = await eng.dstJson<{ pid: number }>(['status']);
    assert.equal(status.pid, eng.pid, `${what}: the engine keeps serving`);
  }
  // a well-formed request still works on a fresh raw connection
  const ok = await exchange(eng.socket, msg(DST_CMD.STATUS, [encodeObject(FAMILY.status.args, {})]));
  assert.notEqual(parseNlMsgHeader(ok.replies).x.type, NLMSG_ERROR);
});

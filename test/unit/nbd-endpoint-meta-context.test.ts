// Meta contexts in option negotiation: LIST names base:allocation (for no query, "base:" or its
// name), SET selects it (an id, then ACK) only after structured replies, a later SET replaces the
// selection, unknown contexts are left out, bad payloads and other exports are refused, and the
// connection is kept throughout. (A raw client over the unix socket: test/helpers/nbd-raw-client.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cmd, Info, NbdErr, Opt, Rep, ReplyType } from '../../src/protocol/nbd.js';
import {
  BASE_ALLOCATION, decodeRepMetaContext, encodeInfoRequest, encodeMetaContextRequest,
} from '../../src/protocol/nbd-options.js';
import { decodeBlockStatus } from '../../src/protocol/nbd-replies.js';
import { RawClient, fixture } from '../helpers/nbd-raw-client.js';

const meta = (name: string, ...queries: string[]): Buffer => encodeMetaContextRequest(name, queries);
const summary = (replies: { type: number; data: Buffer }[]): (string | [number, string])[] =>
  replies.map((r) => {
    if (r.type === Rep.META_CONTEXT) { const m = decodeRepMetaContext(r.data); return [m.id, m.name]; }
    return r.type === Rep.ACK ? 'ACK' : `0x${r.type.toString(16)}`;
  });

test('LIST_META_CONTEXT: base:allocation for no query, "base:" or its name; unknown ones are left out', async (t) => {
  const f = await fixture(t);
  const c = await RawClient.connect(f.path);
  await c.handshake();
  // LIST needs no structured replies; its ids carry no meaning (0)
  assert.deepEqual(summary(await c.option(Opt.LIST_META_CONTEXT, meta(''))), [[0, BASE_ALLOCATION], 'ACK']);
  assert.deepEqual(summary(await c.option(Opt.LIST_META_CONTEXT, meta('vol', 'base:'))), [[0, BASE_ALLOCATION], 'ACK']);
  assert.deepEqual(summary(await c.option(Opt.LIST_META_CONTEXT, meta('', 'qemu:dirty-bitmap:x', BASE_ALLOCATION, 'base:'))),
    [[0, BASE_ALLOCATION], 'ACK'], 'named once however many queries match');
  assert.deepEqual(summary(await c.option(Opt.LIST_META_CONTEXT, meta('', 'base:other', 'x-foo:', 'nonsense'))), ['ACK']);
  assert.equal((await c.option(Opt.GO, encodeInfoRequest(''))).at(-1)!.type, Rep.ACK);
  c.destroy();
});

test('SET_META_CONTEXT: selects base:allocation under id 1; only by its full name', async (t) => {
  const f = await fixture(t);
  const c = await RawClient.connect(f.path);
  await c.handshake();
  assert.equal((await c.option(Opt.STRUCTURED_REPLY))[0]!.type, Rep.ACK);
  assert.deepEqual(summary(await c.option(Opt.SET_META_CONTEXT, meta('', 'base:'))), ['ACK'], '"base:" selects nothing');
  assert.deepEqual(summary(await c.option(Opt.SET_META_CONTEXT, meta('', 'x-a:b'))), ['ACK']);
  assert.deepEqual(summary(await c.option(Opt.SET_META_CONTEXT, meta('vol', 'x-a:b', BASE_ALLOCATION))), [[1, BASE_ALLOCATION], 'ACK']);
  assert.equal((await c.option(Opt.GO, encodeInfoRequest('vol', [Info.BLOCK_SIZE]))).at(-1)!.type, Rep.ACK);
  c.send({ type: Cmd.BLOCK_STATUS, offset: 0, length: 4096 });
  const ch = await c.chunk();
  assert.equal(ch.type, ReplyType.BLOCK_STATUS);
  assert.equal(decodeBlockStatus(ch.payload).contextId, 1);
  c.destroy();
});

test('SET_META_CONTEXT without structured replies → ERR_INVALID; a later SET replaces the selection', async (t) => {
  const f = await fixture(t);
  const c = await RawClient.connect(f.path);
  await c.handshake();
  const refused = await c.option(Opt.SET_META_CONTEXT, meta('', BASE_ALLOCATION));
  assert.deepEqual(refused.map((r) => r.type), [Rep.ERR_INVALID]);
  assert.match(refused[0]!.data.toString(), /structured replies/);
  assert.equal((await c.option(Opt.STRUCTURED_REPLY))[0]!.type, Rep.ACK);
  assert.deepEqual(summary(await c.option(Opt.SET_META_CONTEXT, meta('', BASE_ALLOCATION))), [[1, BASE_ALLOCATION], 'ACK']);
  assert.deepEqual(summary(await c.option(Opt.SET_META_CONTEXT, meta(''))), ['ACK'], 'an empty SET selects nothing');
  assert.equal((await c.option(Opt.GO, encodeInfoRequest(''))).at(-1)!.type, Rep.ACK);
  c.send({ type: Cmd.BLOCK_STATUS, offset: 0, length: 4096 });
  const e = await c.chunk(); // structured: the refusal is an error chunk
  assert.deepEqual([e.type, e.payload.readUInt32BE(0)], [ReplyType.ERROR, NbdErr.EINVAL]);
  c.destroy();
});

test('meta context options: malformed payloads → ERR_INVALID, another export → ERR_UNKNOWN, connection kept', async (t) => {
  const f = await fixture(t);
  const c = await RawClient.connect(f.path);
  await c.handshake();
  assert.equal((await c.option(Opt.STRUCTURED_REPLY))[0]!.type, Rep.ACK);
  const cut = meta('', BASE_ALLOCATION).subarray(0, 12);
  for (const opt of [Opt.LIST_META_CONTEXT, Opt.SET_META_CONTEXT]) {
    for (const data of [Buffer.alloc(0), Buffer.alloc(3), cut, Buffer.concat([meta(''), Buffer.from('x')])]) {
      const r = await c.option(opt, data);
      assert.deepEqual(r.map((x) => x.type), [Rep.ERR_INVALID], `${opt} ${data.toString('hex')}`);
      assert.match(r[0]!.data.toString(), /meta context/);
    }
    const other = await c.option(opt, meta('other', BASE_ALLOCATION));
    assert.deepEqual(other.map((x) => x.type), [Rep.ERR_UNKNOWN]);
    assert.match(other[0]!.data.toString(), /unknown export "other"/);
  }
  assert.deepEqual(summary(await c.option(Opt.SET_META_CONTEXT, meta('vol', BASE_ALLOCATION))), [[1, BASE_ALLOCATION], 'ACK']);
  assert.equal((await c.option(Opt.GO, encodeInfoRequest(''))).at(-1)!.type, Rep.ACK);
  c.destroy();
});

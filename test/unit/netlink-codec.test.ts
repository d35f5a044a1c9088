// Control-plane codec: headers, attributes, the schema codec and every command of the family table.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { endianness } from 'node:os';
import { DEFAULT_LIMITS, type ControlApi, type ControlCommand, type EventRecord, type NodeShow, type StatusShow } from '../../src/engine/types.js';
import { isDstError } from '../../src/util/errors.js';
import {
  HOST_ENDIANNESS,
  NLA_F_NESTED,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLM_F_ACK_TLVS,
  NLM_F_CAPPED,
  NLM_F_MULTI,
  NLM_F_REQUEST,
  align,
  formatAttr,
  formatDone,
  formatError,
  formatGenlMessage,
  formatNlMsgHeader,
  padding,
  parseAttr,
  parseAttrs,
  parseError,
  parseGenlPayload,
  parseMessage,
  parseNlMsgHeader,
} from '../../src/netlink/codec.js';
import {
  COMMANDS,
  DST_CMD,
  DST_FAMILY_ID,
  FAMILY,
  attrEnum,
  commandByNumber,
  configTextSchema,
  decodeObject,
  encodeObject,
  nodeAddArgsSchema,
  objectSchema,
  permittedIn,
  t,
} from '../../src/netlink/family.js';
import { aclEntrySchema, eventRecordSchema, nodeShowSchema, statusShowSchema } from '../../src/netlink/objects.js';
import { TEXT_CHUNK } from '../../src/netlink/schema.js';

const badFrame = (re: RegExp) => (e: unknown) => isDstError(e, 'DST_ERR_BAD_FRAME') && re.test((e as Error).message);

// ---- realistic objects ----
const policy = { resendTimeoutMs: 5000, maxResends: 12, pingIntervalMs: 1000, reconnectDelayMs: 1000, maxInflight: 64, maxRequest: 1048576, maxHandshakesPerAddr: 8, maxConnsPerAddr: 32, legTimeoutMs: 0, resyncRate: 0, resyncMinRate: 10485760, verifyIntervalMs: 0, deadlineMs: 65000 };
const stats = { inflight: 3, inflightPeak: 64, completed: 2 ** 40, resends: 7, replayed: 2, failed: 0, reconnects: 1, bytesRead: 2 ** 53 - 1, bytesWritten: 123456789012, oldestInflightMs: 42 };
const crypto = { cipher: 'aes-gcm' as const, hash: 'none' as const, suite: 'aes-gcm', threads: 8, cipherKeyFile: '/etc/dst/keys/vol', hashKeyFile: null };

const exportShow: NodeShow = {
  name: 'vol', role: 'export', state: 'listening', reason: null, size: 10 * 2 ** 30, autostart: true,
  disk: '/srv/vol.img', listen: '127.0.0.1:40123', readonly: false,
  acl: [{ addr: '10.0.0.0/8', perm: 'rw', keyFile: null }, { addr: '192.0.2.7', perm: 'r', keyFile: '/etc/dst/keys/c7' }],
  remote: null, export: null, layout: null, chunk: null, region: null, degraded: null, legs: null, verify: null, splitBrain: null, uuid: null,
  permissions: null, nbd: null, attachment: null, sessionId: null, backend: null,
  policy, stats, crypto, latency: null,
};
const remoteShow: NodeShow = {
  name: 'vol-r', role: 'remote', state: 'backoff', reason: 'auth-failed', size: null, autostart: false,
  disk: null, listen: null, readonly: null, acl: null,
  remote: 'storage.example:10825', export: '', layout: 'single', chunk: null, region: null, degraded: null, legs: null, verify: null, splitBrain: null, uuid: null, permissions: 'rw',
  nbd: { socket: '/run/dst/nbd/vol-r.sock', uri: 'nbd+unix:///?socket=/run/dst/nbd/vol-r.sock', listen: null },
  attachment: { device: '/dev/nbd0', method: 'nbd', state: 'attached' },
  sessionId: '0123456789abcdef0123456789abcdef',
  policy, stats: { ...stats, oldestInflightMs: null }, crypto: { ...crypto, cipherKeyFile: null },
  backend: null,
  latency: {
    recent: { read: { p50Ms: 0.128, p99Ms: 2.5, maxMs: 3.017, count: 1200 }, write: { p50Ms: 51.2, p99Ms: 64, maxMs: 70.5, count: 9 }, flush: { p50Ms: 0, p99Ms: 0, maxMs: 0, count: 0 }, trim: { p50Ms: 1, p99Ms: 1, maxMs: 1, count: 1 } },
    sinceStart: { read: { p50Ms: 0.128, p99Ms: 2.5, maxMs: 3.017, count: 2 ** 40 }, write: { p50Ms: 51.2, p99Ms: 64, maxMs: 70.5, count: 90 }, flush: { p50Ms: 0.75, p99Ms: 0.75, maxMs: 0.7, count: 3 }, trim: { p50Ms: 1, p99Ms: 1, maxMs: 1, count: 1 } },
  },
};
const status: StatusShow = {
  version: '0.1.0', pid: 4242, uptimeMs: 86_400_000, socket: '/run/dst/dst.sock', stateDir: '/var/lib/dst',
  limits: { ...DEFAULT_LIMITS }, cryptoThreads: 8, cipherImpl: 'native (OpenSSL 3.0.19 27 Jan 2026)', diskLock: 'flock (native addon)', fileOps: 'native (fallocate, SEEK_DATA/SEEK_HOLE, BLKDISCARD, BLKZEROOUT)',
  heap: 'full GC + malloc_trim after large connections close',
  socketReads: 'user buffers (onread adoption): 3 adopted, 0 not',
  nodes: [
    { name: 'vol', role: 'export', state: 'listening', attachment: null },
    { name: 'vol-r', role: 'remote', state: 'ready', attachment: { device: '/dev/loop3', method: 'fuse', state: 'attaching' } },
  ],
  config: { file: null, autosave: false, unsaved: true },
  metrics: '127.0.0.1:9469', rates: { readIops: 1234.5, writeIops: 0.1, readBytesPerSecond: 52428800, writeBytesPerSecond: 0 },
};
const events: EventRecord[] = [
  { seq: 1, ts: 1_700_000_000_000, node: null, event: 'subscribed' },
  { seq: 2, ts: 1_700_000_000_001, node: 'vol', event: 'state-changed', from: 'connecting', to: 'backoff', reason: 'link' },
  { seq: 3, ts: 1_700_000_000_002, node: 'vol', event: 'state-changed', from: 'backoff', to: 'ready', reason: null },
  { seq: 4, ts: 1_700_000_000_003, node: 'vol', event: 'txn-failed', op: 'WRITE', offset: 2 ** 33, length: 4096, errno: 'EIO' },
  { seq: 5, ts: 1_700_000_000_004, node: 'vol', event: 'events-lost', count: 17 },
  { seq: 6, ts: 1_700_000_000_005, node: 'vol', event: 'acl-denied', addr: '198.51.100.1' },
];

/** Realistic arguments and results for every command (the test fails if one is missing). */
const samples: { [C in ControlCommand]: { args: ControlApi[C]['args'][]; result: ControlApi[C]['result'][] } } = {
  'hello': { args: [{ version: '0.1.0' }], result: [{ version: '0.1.0', pid: 1 }] },
  'node-verify': {
    args: [{ name: 'vol', repair: false, from: null }, { name: 'vol', repair: true, from: 1 }],
    result: [
      { regions: 0, mismatches: [], repaired: 0 },
      { regions: 2 ** 20, mismatches: [{ offset: 2 ** 40, length: 1024 * 1024, legs: [0, 2] }], repaired: 1 },
    ],
  },
  'node-add': {
    args: [
      { name: 'vol', role: 'export', size: null, disk: '/srv/vol.img', listen: '0.0.0.0:0', readonly: true, create: 2 ** 34 },
      { name: 'vol-r', role: 'remote', size: 4096, remote: '[::1]:10825', export: null, nbdListen: null, create: null },
      { name: 'x', role: 'remote', size: null, remote: 'h:1' },
    ],
    result: [exportShow, remoteShow],
  },
  'node-start': { args: [{ name: 'vol', waitMs: 10_000 }, { name: 'vol', waitMs: 0, degraded: true, forceInit: true }], result: [exportShow] },
  'node-resolve': { args: [{ name: 'vol-r', keep: 1 }], result: [remoteShow] },
  'node-leg-add': {
    args: [{ name: 'vol-r', remote: '192.0.2.9:10825', export: null }, { name: 'vol-r', remote: '[2001:db8::9]:10825', export: 'b', forceInit: true }],
    result: [remoteShow],
  },
  'node-leg-del': { args: [{ name: 'vol-r', leg: 0 }, { name: 'vol-r', leg: 31, force: true }], result: [remoteShow] },
  'node-stop': { args: [{ name: 'vol', force: false }, { name: 'vol', force: true }], result: [remoteShow] },
  'node-del': { args: [{ name: 'vol' }], result: [{ name: 'vol' }] },
  'node-reconnect': { args: [{ name: 'vol-r' }], result: [remoteShow] },
  'node-list': { args: [{}], result: [[exportShow, remoteShow], []] },
  'node-show': { args: [{ name: 'vol' }], result: [exportShow, remoteShow] },
  'node-set': { args: [{ name: 'vol' }, { name: 'vol', resendTimeoutMs: 2000, maxInflight: 128 }], result: [exportShow] },
  'security-add': { args: [{ name: 'vol', addr: '10.0.0.0/8', perm: 'rw', keyFile: null }], result: [exportShow.acl!, []] },
  'security-del': { args: [{ name: 'vol', addr: '10.0.0.0/8' }], result: [exportShow.acl!] },
  'security-list': { args: [{ name: 'vol' }], result: [exportShow.acl!, []] },
  'security-load': { args: [{ name: 'vol', entries: exportShow.acl! }, { name: 'vol', entries: [] }], result: [exportShow.acl!] },
  'crypto-set': { args: [{ name: 'vol', cipher: 'aes-gcm', cipherKeyFile: '/k', threads: 4 }, { name: 'vol' }], result: [crypto] },
  'crypto-show': { args: [{ name: 'vol' }], result: [crypto] },
  'crypto-clear': { args: [{ name: 'vol' }], result: [{ ...crypto, cipher: 'none', suite: 'none', cipherKeyFile: null }] },
  'status': { args: [{}], result: [status] },
  'config-show': { args: [{}], result: [{ text: '' }, { text: '[node "vol"]\nrole = export\n' }] },
  'config-save': { args: [{ file: null }, { file: '/etc/dst/dst.conf' }], result: [{ file: '/etc/dst/dst.conf' }] },
  'config-load': { args: [{ file: '/tmp/x.conf' }], result: [{ nodes: ['a', 'b'] }, { nodes: [] }] },
  'subscribe': { args: [{ node: null }, { node: 'vol' }], result: events },
  'attach': {
    args: [{ name: 'vol-r', method: 'auto' }, { name: 'vol-r', method: 'fuse' }],
    result: [{ device: '/dev/loop3', method: 'fuse', state: 'attached' }, { device: '', method: 'nbd', state: 'attaching' }],
  },
  'detach': { args: [{ name: 'vol-r', force: false }, { name: 'vol-r', force: true }], result: [{ name: 'vol-r', device: '/dev/nbd0', method: 'nbd' }] },
};

test('host byte order is explicit and is the order of the headers', () => {
  assert.equal(HOST_ENDIANNESS, endianness());
  const h = formatNlMsgHeader({ len: 0x01020304, type: DST_FAMILY_ID, flags: 0x0305, seq: 0xdeadbeef, pid: 7 });
  assert.equal(h.length, 16);
  assert.equal(HOST_ENDIANNESS === 'LE' ? h.readUInt32LE(0) : h.readUInt32BE(0), 0x01020304);
  assert.deepEqual(parseNlMsgHeader(h), { x: { len: 0x01020304, type: DST_FAMILY_ID, flags: 0x0305, seq: 0xdeadbeef, pid: 7 }, consumed: 16 });
});

test('header parsers name what is truncated', () => {
  assert.throws(() => parseNlMsgHeader(Buffer.alloc(15)), badFrame(/netlink header truncated: 15 of 16/));
  assert.throws(() => parseGenlPayload(parseNlMsgHeader(Buffer.alloc(16)).x, Buffer.alloc(3)), badFrame(/generic netlink header truncated/));
});

test('align and padding', () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5].map(padding), [0, 3, 2, 1, 0, 3]);
  assert.deepEqual([0, 1, 4, 5, 8].map(align), [0, 4, 4, 8, 8]);
});

test('genl message round trip: header, genl header, attributes', () => {
  const attrs = [formatAttr(1, Buffer.from('abc\0')), formatAttr(2, Buffer.from([1, 2, 3, 4, 5]))];
  const m = formatGenlMessage({ type: DST_FAMILY_ID, flags: NLM_F_REQUEST, seq: 9, cmd: DST_CMD.NODE_SHOW, attrs });
  assert.equal(m.length % 4, 0);
  const { x, consumed } = parseMessage(m);
  assert.equal(consumed, m.length);
  assert.deepEqual(x.header, { len: m.length, type: DST_FAMILY_ID, flags: NLM_F_REQUEST, seq: 9, pid: 0 });
  const g = parseGenlPayload(x.header, x.payload);
  assert.deepEqual(g.genl, { cmd: DST_CMD.NODE_SHOW, version: 1, reserved: 0 });
  const parsed = parseAttrs(g.attrs);
  assert.deepEqual(parsed.map((a) => [a.type, a.nested, [...a.data]]), [[1, false, [...Buffer.from('abc\0')]], [2, false, [1, 2, 3, 4, 5]]]);
});

test('attribute: length excludes padding, nested flag, bounds', () => {
  const a = formatAttr(5, Buffer.from([9]), true);
  assert.equal(a.length, 8);
  assert.equal(a.readUInt16LE(0), 5);
  assert.equal(a.readUInt16LE(2), 5 | NLA_F_NESTED);
  assert.deepEqual(parseAttr(a).x, { type: 5, nested: true, data: Buffer.from([9]) });
  assert.throws(() => parseAttr(Buffer.from([3, 0, 1, 0])), badFrame(/nla_len 3 < 4/));
  assert.throws(() => parseAttr(Buffer.from([12, 0, 1, 0, 0, 0, 0, 0])), badFrame(/attribute 1 runs past its message/));
  assert.throws(() => parseAttr(Buffer.from([4, 0, 1, 0x40])), badFrame(/NLA_F_NET_BYTEORDER/));
  assert.throws(() => formatAttr(1, Buffer.alloc(0xfffc)), (e) => isDstError(e, 'DST_ERR_INVALID'));
});

test('NLMSG_ERROR round trip carries errno, echoed header, message and code', () => {
  const req = { len: 40, type: DST_FAMILY_ID, flags: NLM_F_REQUEST, seq: 77, pid: 0 };
  const m = formatError({ errno: 2, request: req, message: 'node vol: no such node', code: 'DST_ERR_NOT_FOUND' });
  const { x } = parseMessage(m);
  assert.equal(x.header.type, NLMSG_ERROR);
  assert.equal(x.header.seq, 77);
  assert.equal(x.header.flags, NLM_F_CAPPED | NLM_F_ACK_TLVS);
  assert.deepEqual(parseError(x.payload, x.header.flags).x, { error: -2, request: req, message: 'node vol: no such node', code: 'DST_ERR_NOT_FOUND' });
  // an ack: error 0, no TLVs
  const ack = parseMessage(formatError({ errno: 0, request: req })).x;
  assert.deepEqual(parseError(ack.payload, ack.header.flags).x, { error: 0, request: req, message: null, code: null });
  // a partial echo (malformed input) is zero-padded
  const partial = parseMessage(formatError({ errno: 22, request: Buffer.from([8, 0, 0, 0]), message: 'short', code: 'DST_ERR_BAD_FRAME' })).x;
  assert.equal(parseError(partial.payload, partial.header.flags).x.request.len, 8);
});

test('NLMSG_DONE is 20 bytes with NLM_F_MULTI', () => {
  const d = parseMessage(formatDone({ seq: 5 })).x;
  assert.deepEqual(d.header, { len: 20, type: NLMSG_DONE, flags: NLM_F_MULTI, seq: 5, pid: 0 });
});

test('family table: unique cmd numbers, every command present with help and states', () => {
  assert.equal(DST_FAMILY_ID, 0x1d57);
  assert.ok(DST_FAMILY_ID >= 16);
  const nums = new Set<number>();
  for (const c of COMMANDS) {
    const s = FAMILY[c];
    assert.equal(s.name, c);
    assert.ok(!nums.has(s.cmd), `${c} cmd number reused`);
    nums.add(s.cmd);
    assert.equal(commandByNumber(s.cmd)?.name, c);
    assert.ok(s.help.length > 10 && !s.help.includes('\n'), `${c} help`);
    assert.ok(s.states === 'any' || s.states.length > 0);
  }
  assert.equal(commandByNumber(DST_CMD.EVENT), undefined);
  assert.equal(commandByNumber(DST_CMD.ATTACH)?.name, 'attach');
  assert.equal(commandByNumber(DST_CMD.DETACH)?.name, 'detach');
  assert.deepEqual(FAMILY['node-del'].states, ['configured']);
  assert.equal(permittedIn('node-del', 'listening'), false);
  assert.equal(permittedIn('node-show', 'stopping'), true);
  assert.deepEqual(Object.keys(samples).sort(), [...COMMANDS].sort());
});

test('attribute enums are kernel style: UNSPEC = 0, then the fields', () => {
  assert.deepEqual(attrEnum(aclEntrySchema), { UNSPEC: 0, ADDR: 1, PERM: 2, KEY_FILE: 3 });
  assert.equal(attrEnum(nodeShowSchema).SESSION_ID, 16);
});

test('every command: args and result round-trip through its schema', () => {
  for (const c of COMMANDS) {
    const spec = FAMILY[c] as unknown as { args: never; reply: { kind: string; schema?: never; item?: never; key?: string } };
    for (const a of samples[c].args) {
      assert.deepEqual(decodeObject(spec.args, encodeObject(spec.args, a as never)), a, `${c} args`);
    }
    for (const r of samples[c].result) {
      const { kind, schema, item, key } = spec.reply;
      if (kind === 'dump') {
        const back = (r as unknown[]).map((x) => decodeObject(item!, encodeObject(item!, x as never)));
        assert.deepEqual(back, r, `${c} dump`);
      } else if (kind === 'wrapped') {
        assert.deepEqual((decodeObject(schema!, encodeObject(schema!, { [key!]: r } as never)) as Record<string, unknown>)[key!], r, `${c} result`);
      } else {
        assert.deepEqual(decodeObject(schema!, encodeObject(schema!, r as never)), r, `${c} result`);
      }
    }
  }
});

test('nulls: absent attributes; empty list is distinct from null', () => {
  const withEmpty = { ...exportShow, acl: [] };
  const enc = encodeObject(nodeShowSchema, remoteShow);
  const types = parseAttrs(enc).map((a) => a.type);
  assert.ok(!types.includes(10), 'acl null → absent');
  assert.ok(!types.includes(7), 'disk null → absent');
  assert.deepEqual(decodeObject(nodeShowSchema, encodeObject(nodeShowSchema, withEmpty)).acl, []);
  // nested lists are [LIST][ITEM=1][FIELD], every level NLA_F_NESTED
  const acl = parseAttrs(encodeObject(nodeShowSchema, exportShow)).find((a) => a.type === 10)!;
  assert.equal(acl.nested, true);
  const items = parseAttrs(acl.data);
  assert.deepEqual(items.map((i) => [i.type, i.nested]), [[1, true], [1, true]]);
  assert.deepEqual(parseAttrs(items[1]!.data).map((f) => f.type), [1, 2, 3]);
});

test('optional-nullable: undefined is absent, null is a zero-length attribute', () => {
  const a = encodeObject(nodeAddArgsSchema, { name: 'x', role: 'remote', size: null, export: null });
  const exp = parseAttrs(a).find((x) => x.type === 9)!;
  assert.equal(exp.data.length, 0);
  assert.deepEqual(decodeObject(nodeAddArgsSchema, a), { name: 'x', role: 'remote', size: null, export: null });
  const e = decodeObject(eventRecordSchema, encodeObject(eventRecordSchema, events[0]!));
  assert.ok(!('reason' in e) && !('from' in e));
});

test('large text is split over several attributes and joined back', () => {
  const text = ('[node "vol"]\nrole = export\ndisk = "/srv/ü.img"\n').repeat(5000);
  assert.ok(Buffer.byteLength(text) > 3 * TEXT_CHUNK);
  const enc = encodeObject(configTextSchema, { text });
  const parts = parseAttrs(enc);
  assert.ok(parts.length >= 4 && parts.every((p) => p.type === 1));
  assert.equal(decodeObject(configTextSchema, enc).text, text);
});

test('unknown attribute is rejected, naming the object and the number', () => {
  const enc = Buffer.concat([encodeObject(aclEntrySchema, { addr: '::1', perm: 'r', keyFile: null }), formatAttr(9, Buffer.from([1, 0, 0, 0]))]);
  assert.throws(() => decodeObject(aclEntrySchema, enc), badFrame(/unknown attribute number 9 in acl-entry/));
  // also deep inside a nest
  const st = Buffer.concat([formatAttr(1, Buffer.from('0.1.0\0')), formatAttr(6, formatAttr(99, Buffer.alloc(4)), true)]);
  assert.throws(() => decodeObject(statusShowSchema, st), badFrame(/status\.limits\.#99.*unknown attribute number 99 in limits/));
});

test('wrong attribute length or type is rejected, naming the attribute', () => {
  const u32 = Buffer.alloc(4);
  // crypto.threads is u32: give it 2 bytes
  const badLen = Buffer.concat([formatAttr(1, Buffer.from('hello\0')), formatAttr(2, Buffer.from([1, 0]))]);
  assert.throws(() => decodeObject(FAMILY.hello.reply.schema, badLen), badFrame(/hello-result\.pid: u32 needs 4 bytes, got 2/));
  // a string that is not NUL-terminated
  assert.throws(() => decodeObject(FAMILY['node-del'].args, formatAttr(1, Buffer.from('vol'))), badFrame(/name\.name.*not NUL-terminated/));
  // a string with an embedded NUL (would truncate paths and names)
  assert.throws(() => decodeObject(FAMILY['node-del'].args, formatAttr(1, Buffer.from('v\0l\0'))), badFrame(/contains a NUL byte/));
  // a nested object without NLA_F_NESTED
  const st = Buffer.concat([formatAttr(1, Buffer.from('x\0')), formatAttr(6, u32)]);
  assert.throws(() => decodeObject(statusShowSchema, st), badFrame(/status\.limits: nested object without NLA_F_NESTED/));
  // a scalar with NLA_F_NESTED
  assert.throws(() => decodeObject(FAMILY['node-del'].args, formatAttr(1, Buffer.from('v\0'), true)), badFrame(/must not have NLA_F_NESTED/));
  // bool out of range, enum value out of the set, duplicate, missing required
  assert.throws(() => decodeObject(FAMILY['node-stop'].args, Buffer.concat([formatAttr(1, Buffer.from('v\0')), formatAttr(2, Buffer.from([2]))])), badFrame(/force: bool must be 0 or 1/));
  assert.throws(() => decodeObject(aclEntrySchema, Buffer.concat([formatAttr(1, Buffer.from('a\0')), formatAttr(2, Buffer.from('x\0'))])), badFrame(/perm: "x" is not one of r, w, rw, none/));
  assert.throws(() => decodeObject(FAMILY['node-del'].args, Buffer.concat([formatAttr(1, Buffer.from('a\0')), formatAttr(1, Buffer.from('b\0'))])), badFrame(/name\.name: appears 2 times/));
  assert.throws(() => decodeObject(FAMILY['node-del'].args, Buffer.alloc(0)), badFrame(/name\.name: missing required attribute 1/));
  // u64 above 2^53
  const big = Buffer.alloc(8);
  big.writeBigUInt64LE(2n ** 60n);
  assert.throws(() => decodeObject(FAMILY.status.reply.schema, Buffer.concat([formatAttr(3, big)])), badFrame(/uptimeMs: u64 .* exceeds 2\^53/));
  // an attribute running past its nest
  const nest = formatAttr(6, Buffer.from([8, 0, 1, 0, 0, 0]), true);
  assert.throws(() => decodeObject(statusShowSchema, nest), badFrame(/runs past its message/));
});

test('encoding refuses values that do not fit, naming the field', () => {
  const inv = (re: RegExp) => (e: unknown) => isDstError(e, 'DST_ERR_INVALID') && re.test((e as Error).message);
  assert.throws(() => encodeObject(FAMILY['node-start'].args, { name: 'v', waitMs: -1 }), inv(/node-start-args\.waitMs: -1 does not fit in u32/));
  assert.throws(() => encodeObject(FAMILY['node-start'].args, { name: 'v', waitMs: 1.5 }), inv(/expected an integer/));
  assert.throws(() => encodeObject(aclEntrySchema, { addr: 'a', perm: 'x' as 'r', keyFile: null }), inv(/perm: "x" is not one of/));
  assert.throws(() => encodeObject(aclEntrySchema, { addr: 'a', perm: 'r' } as never), inv(/keyFile: missing \(use null\)/));
  assert.throws(() => encodeObject(aclEntrySchema, { addr: 'a\0b', perm: 'r', keyFile: null }), inv(/acl-entry\.addr: string contains a NUL character/));
  assert.throws(() => encodeObject(aclEntrySchema, { addr: 'a', perm: 'r', keyFile: null, extra: 1 } as never), inv(/acl-entry has no field extra/));
  assert.throws(() => encodeObject(nodeShowSchema, { ...exportShow, stats: { ...stats, bytesRead: 2 ** 53 } }), inv(/bytesRead/));
});

test('schemas are checked by the compiler and at declaration', () => {
  // @ts-expect-error a nullable key must declare its presence
  objectSchema<{ a: string | null }>('x', { a: { attr: 1, type: t.string } });
  // @ts-expect-error a number key cannot be a string attribute
  objectSchema<{ a: number }>('x', { a: { attr: 1, type: t.string } });
  // @ts-expect-error every key needs an attribute
  objectSchema<{ a: number; b: number }>('x', { a: { attr: 1, type: t.u32 } });
  assert.throws(() => objectSchema<{ a: number; b: number }>('dup', { a: { attr: 1, type: t.u32 }, b: { attr: 1, type: t.u32 } }), /share attribute number 1/);
  assert.throws(() => objectSchema<{ a: number }>('zero', { a: { attr: 0, type: t.u32 } }), /must be 1\.\./);
});

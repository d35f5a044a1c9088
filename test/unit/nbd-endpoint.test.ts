// The local NBD endpoint driven by a hand-written raw client over its unix socket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/util/log.js';
import { startNbdEndpoint, type NbdEndpoint } from '../../src/engine/remote/nbd-endpoint.js';
import { createMemoryTarget, type MemoryTarget, type MemoryTargetOptions } from '../helpers/memory-target.js';
import { Cmd, CmdFlag, Info, NbdErr, Opt, Rep, ReplyFlag, ReplyType, TxFlag, MAX_PAYLOAD } from '../../src/protocol/nbd.js';
import { decodeGreeting, decodeOptionReplyHeader, encodeClientFlags, encodeInfoRequest, encodeOption } from '../../src/protocol/nbd-options.js';
import { decodeSimpleReply, decodeStructuredHeader, encodeRequest, type RequestFields } from '../../src/protocol/nbd-replies.js';

// ── Raw client ───────────────────────────────────────────────────────────────────────────────
class RawClient {
  private chunks: Buffer[] = [];
  private bytes = 0;
  private wake: (() => void) | null = null;
  ended = false;
  readonly closed: Promise<void>;
  private nextCookie = 1n;

  constructor(readonly sock: net.Socket) {
    sock.on('data', (c: Buffer) => { this.chunks.push(c); this.bytes += c.length; this.wake?.(); });
    this.closed = new Promise((resolve) => sock.on('close', () => { this.ended = true; this.wake?.(); resolve(); }));
    sock.on('error', () => {});
  }

  static connect(path: string): Promise<RawClient>;
  static connect(port: number, host: string): Promise<RawClient>;
  static connect(where: string | number, host?: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = typeof where === 'number' ? net.connect(where, host!) : net.connect(where);
      s.once('connect', () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  async read(n: number, timeoutMs = 5000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.bytes < n) {
      if (this.ended) throw new Error(`connection closed with ${this.bytes}/${n} bytes`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout waiting for ${n} bytes (have ${this.bytes})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wake = () => { clearTimeout(t); this.wake = null; resolve(); };
      });
    }
    const all = Buffer.concat(this.chunks);
    this.chunks = [all.subarray(n)];
    this.bytes -= n;
    return all.subarray(0, n);
  }

  /** true if nothing arrives within ms */
  async quiet(ms: number): Promise<boolean> {
    await new Promise((r) => setTimeout(r, ms));
    return this.bytes === 0;
  }

  write(b: Buffer): void { this.sock.write(b); }

  async handshake(clientFlags = 3): Promise<number> {
    const g = decodeGreeting(await this.read(18));
    this.write(encodeClientFlags(clientFlags));
    return g.handshakeFlags;
  }

  /** Send an option and read replies up to the final one (ACK or an error). */
  async option(option: number, data: Buffer = Buffer.alloc(0)): Promise<{ type: number; data: Buffer }[]> {
    this.write(encodeOption(option, data));
    const out: { type: number; data: Buffer }[] = [];
    for (;;) {
      const h = decodeOptionReplyHeader(await this.read(20));
      assert.equal(h.option, option);
      const d = h.length ? await this.read(h.length) : Buffer.alloc(0);
      out.push({ type: h.type, data: d });
      if (h.type === Rep.ACK || (h.type & 0x80000000) !== 0) return out;
    }
  }

  /** Handshake + optional STRUCTURED_REPLY + GO; returns the transmission flags and size. */
  async open(opts: { structured?: boolean; name?: string } = {}): Promise<{ flags: number; size: number }> {
    await this.handshake();
    if (opts.structured) assert.equal((await this.option(Opt.STRUCTURED_REPLY))[0]!.type, Rep.ACK);
    const replies = await this.option(Opt.GO, encodeInfoRequest(opts.name ?? '', [Info.BLOCK_SIZE]));
    assert.equal(replies.at(-1)!.type, Rep.ACK, `GO failed: ${replies.at(-1)!.data.toString()}`);
    const ex = replies.find((r) => r.type === Rep.INFO && r.data.readUInt16BE(0) === Info.EXPORT)!;
    return { size: Number(ex.data.readBigUInt64BE(2)), flags: ex.data.readUInt16BE(10) };
  }

  send(r: Omit<RequestFields, 'cookie'> & { cookie?: bigint }): bigint {
    const cookie = r.cookie ?? this.nextCookie++;
    this.write(encodeRequest({ ...r, cookie }));
    return cookie;
  }

  /** A simple reply whose data length depends on the cookie (replies may come in any order). */
  async anyReply(dataLenOf: (cookie: bigint) => number): Promise<{ error: number; cookie: bigint; data: Buffer }> {
    const r = decodeSimpleReply(await this.read(16));
    const cookie = r.cookie.readBigUInt64BE(0);
    const n = dataLenOf(cookie);
    return { error: r.error, cookie, data: r.error === 0 && n > 0 ? await this.read(n) : Buffer.alloc(0) };
  }

  async simpleReply(dataLen = 0): Promise<{ error: number; cookie: bigint; data: Buffer }> {
    const r = decodeSimpleReply(await this.read(16));
    const data = r.error === 0 && dataLen > 0 ? await this.read(dataLen) : Buffer.alloc(0);
    return { error: r.error, cookie: r.cookie.readBigUInt64BE(0), data };
  }

  async chunk(): Promise<{ flags: number; type: number; cookie: bigint; payload: Buffer }> {
    const h = decodeStructuredHeader(await this.read(20));
    return { flags: h.flags, type: h.type, cookie: h.cookie.readBigUInt64BE(0), payload: h.length ? await this.read(h.length) : Buffer.alloc(0) };
  }

  destroy(): void { this.sock.destroy(); }
}

// ── Fixture ──────────────────────────────────────────────────────────────────────────────────
interface Fixture { dir: string; target: MemoryTarget; ep: NbdEndpoint; path: string; done(): Promise<void> }

async function fixture(t: { after(fn: () => Promise<void>): void }, opts: MemoryTargetOptions = {}): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), 'dst-nbd-'));
  const path = join(dir, 'nbd', 'vol.sock');
  const target = createMemoryTarget({ name: 'vol', size: 1 << 20, ...opts });
  const ep = await startNbdEndpoint({ target, socketPath: path, tcp: null, log: silentLogger });
  let finished = false;
  const done = async (): Promise<void> => {
    if (finished) return;
    finished = true;
    await ep.close({ force: true });
    await rm(dir, { recursive: true, force: true });
  };
  t.after(done);
  return { dir, target, ep, path, done };
}

const pattern = (n: number, seed = 1): Buffer => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7 + (i >> 8)) & 0xff;
  return b;
};

// ── Negotiation ──────────────────────────────────────────────────────────────────────────────
test('handshake, GO with NAME and BLOCK_SIZE, write/read, DISC closes', async (t) => {
  const f = await fixture(t);
  assert.equal(f.ep.uri, `nbd+unix:///?socket=${f.path}`);
  assert.equal((await stat(f.path)).mode & 0o777, 0o600);
  assert.equal((await stat(join(f.dir, 'nbd'))).mode & 0o777, 0o700);
  const c = await RawClient.connect(f.path);
  assert.equal(await c.handshake(), 3); // FIXED_NEWSTYLE | NO_ZEROES
  const replies = await c.option(Opt.GO, encodeInfoRequest('vol', [Info.NAME, Info.BLOCK_SIZE, 999]));
  assert.deepEqual(replies.map((r) => r.type), [Rep.INFO, Rep.INFO, Rep.INFO, Rep.ACK]);
  const byInfo = new Map(replies.slice(0, 3).map((r) => [r.data.readUInt16BE(0), r.data]));
  const ex = byInfo.get(Info.EXPORT)!;
  assert.equal(ex.length, 12);
  assert.equal(Number(ex.readBigUInt64BE(2)), 1 << 20);
  const flags = ex.readUInt16BE(10);
  assert.equal(flags, TxFlag.HAS_FLAGS | TxFlag.SEND_FLUSH | TxFlag.SEND_FUA | TxFlag.SEND_TRIM | TxFlag.SEND_WRITE_ZEROES | TxFlag.CAN_MULTI_CONN);
  assert.equal(flags & (TxFlag.READ_ONLY | TxFlag.SEND_DF), 0);
  const bs = byInfo.get(Info.BLOCK_SIZE)!;
  assert.deepEqual([bs.length, bs.readUInt32BE(2), bs.readUInt32BE(6), bs.readUInt32BE(10)], [14, 1, 4096, MAX_PAYLOAD]);
  assert.equal(byInfo.get(Info.NAME)!.subarray(2).toString(), 'vol');
  assert.equal(f.ep.connections, 1);

  const data = pattern(4096);
  const wc = c.send({ type: Cmd.WRITE, flags: CmdFlag.FUA, offset: 8192, length: 4096, payload: data });
  assert.deepEqual(await c.simpleReply(), { error: 0, cookie: wc, data: Buffer.alloc(0) });
  assert.equal(f.target.submitted.at(-1)!.fua, true);
  const rc = c.send({ type: Cmd.READ, cookie: 0xfedcba9876543210n, offset: 8192, length: 4096 });
  const r = await c.simpleReply(4096);
  assert.equal(r.cookie, rc);
  assert.deepEqual(r.data, data);
  c.send({ type: Cmd.FLUSH, offset: 0, length: 0 });
  assert.equal((await c.simpleReply()).error, 0);
  c.send({ type: Cmd.DISC, offset: 0, length: 0 });
  await c.closed;
  assert.equal(c.ended, true);
});

test('INFO does not end negotiation; GO afterwards works', async (t) => {
  const f = await fixture(t);
  const c = await RawClient.connect(f.path);
  await c.handshake();
  const info = await c.option(Opt.INFO, encodeInfoRequest(''));
  assert.deepEqual(info.map((r) => r.type), [Rep.INFO, Rep.INFO, Rep.ACK]);
  const { size } = await (async () => {
    const go = await c.option(Opt.GO, encodeInfoRequest(''));
    assert.equal(go.at(-1)!.type, Rep.ACK);
    return { size: Number(go[0]!.data.readBigUInt64BE(2)) };
  })();
  assert.equal(size, 1 << 20);
  c.send({ type: Cmd.READ, offset: 0, length: 512 });
  assert.equal((await c.simpleReply(512)).error, 0);
  c.destroy();
});

test('LIST returns the one export; LIST with data → ERR_INVALID', async (t) => {
  const f = await fixture(t);
  const c = await RawClient.connect(f.path);
  await c.handshake();
  const list = await c.option(Opt.LIST);
  assert.deepEqual(list.map((r) => r.type), [Rep.SERVER, Rep.ACK]);
  assert.equal(list[0]!.data.readUInt32BE(0), 3);
  assert.equal(list[0]!.data.subarray(4).toString(), 'vol');
  assert.equal((await c.option(Opt.LIST, Buffer.from('x')))[0]!.type, Rep.ERR_INVALID);
  assert.equal((await c.option(Opt.GO, encodeInfoRequest(''))).at(-1)!.type, Rep.ACK);
  c.destroy();
});

test('unknown options, EXTENDED_HEADERS, STARTTLS, meta contexts → ERR_UNSUP, then GO still works', async (t) => {
  const f = await fixture(t);
  const c = await RawClient.connect(f.path);
  await c.handshake();
  for (const opt of [Opt.EXTENDED_HEADERS, 99, Opt.STARTTLS, Opt.LIST_META_CONTEXT, Opt.SET_META_CONTEXT, Opt.PEEK_EXPORT, 0x7fffffff]) {
    const r = await c.option(opt, opt === 99 ? Buffer.from('some data') : Buffer.alloc(0));
    assert.equal(r.length, 1);
    assert.equal(r[0]!.type, Rep.ERR_UNSUP, `option ${opt}`);
    assert.ok(r[0]!.data.length > 0, 'error carries a message');
  }
  assert.equal((await c.option(Opt.STRUCTURED_REPLY))[0]!.type, Rep.ACK);
  assert.equal((await c.option(Opt.STRUCTURED_REPLY))[0]!.type, Rep.ERR_INVALID); // repeat
  assert.equal((await c.option(Opt.GO, Buffer.from([0, 0])))[0]!.type, Rep.ERR_INVALID); // malformed
  const go = await c.option(Opt.GO, encodeInfoRequest(''));
  assert.equal(go.at(-1)!.type, Rep.ACK);
  // structured replies are on
  const cookie = c.send({ type: Cmd.READ, offset: 0, length: 16 });
  const ch = await c.chunk();
  assert.deepEqual([ch.type, ch.flags, ch.cookie], [ReplyType.OFFSET_DATA, ReplyFlag.DONE, cookie]);
  c.destroy();
});

test('unknown export: GO/INFO → ERR_UNKNOWN (connection kept); EXPORT_NAME → hard disconnect', async (t) => {
  const f = await fixture(t);
  const c = await RawClient.connect(f.path);
  await c.handshake();
  const r = await c.option(Opt.GO, encodeInfoRequest('other'));
  assert.deepEqual(r.map((x) => x.type), [Rep.ERR_UNKNOWN]);
  assert.equal((await c.option(Opt.INFO, encodeInfoRequest('vol2')))[0]!.type, Rep.ERR_UNKNOWN);
  assert.equal((await c.option(Opt.GO, encodeInfoRequest('vol'))).at(-1)!.type, Rep.ACK);
  c.destroy();

  const d = await RawClient.connect(f.path);
  await d.handshake();
  d.write(encodeOption(Opt.EXPORT_NAME, Buffer.from('nope')));
  await d.closed;
  assert.equal(await d.quiet(0), true, 'nothing was sent for the refused EXPORT_NAME');
});

test('EXPORT_NAME: 134-byte reply without C_NO_ZEROES, 10 with it', async (t) => {
  const f = await fixture(t, { permissions: 'r' });
  for (const [cflags, len] of [[1, 134], [3, 10]] as const) {
    const c = await RawClient.connect(f.path);
    await c.handshake(cflags);
    c.write(encodeOption(Opt.EXPORT_NAME, Buffer.from(cflags === 1 ? '' : 'vol')));
    const reply = await c.read(len);
    assert.equal(Number(reply.readBigUInt64BE(0)), 1 << 20);
    assert.equal(reply.readUInt16BE(8) & TxFlag.READ_ONLY, TxFlag.READ_ONLY);
    assert.ok(reply.subarray(10).every((b) => b === 0));
    c.send({ type: Cmd.READ, offset: 0, length: 8 });
    assert.equal((await c.simpleReply(8)).error, 0); // in transmission, nothing else was sent
    c.destroy();
  }
});

test('ABORT is acknowledged, then the connection closes; unknown client flags drop it', async (t) => {
  const f = await fixture(t);
  const c = await RawClient.connect(f.path);
  await c.handshake();
  assert.equal((await c.option(Opt.ABORT))[0]!.type, Rep.ACK);
  await c.closed;

  const d = await RawClient.connect(f.path);
  await d.handshake(0x4 | 1);
  await d.closed;
});

// ── Requests ─────────────────────────────────────────────────────────────────────────────────
test('bad requests get errors and the connection is kept', async (t) => {
  const size = 1 << 20;
  const f = await fixture(t, { size });
  f.target.data.set(pattern(4096, 5), 0);
  const c = await RawClient.connect(f.path);
  await c.open();
  const cases: [string, Parameters<RawClient['send']>[0], number][] = [
    ['read past end', { type: Cmd.READ, offset: size - 512, length: 1024 }, NbdErr.EINVAL],
    ['read at huge offset', { type: Cmd.READ, offset: 2n ** 63n, length: 1 }, NbdErr.EINVAL],
    ['write past end', { type: Cmd.WRITE, offset: size, length: 3, payload: Buffer.from('abc') }, NbdErr.ENOSPC],
    ['write-zeroes past end', { type: Cmd.WRITE_ZEROES, offset: size - 1, length: 2 }, NbdErr.ENOSPC],
    ['trim past end', { type: Cmd.TRIM, offset: size, length: 1 }, NbdErr.EINVAL],
    ['zero-length read', { type: Cmd.READ, offset: 0, length: 0 }, NbdErr.EINVAL],
    ['zero-length write', { type: Cmd.WRITE, offset: 0, length: 0 }, NbdErr.EINVAL],
    ['unknown command', { type: 42, offset: 0, length: 512 }, NbdErr.EINVAL],
    ['CACHE (not advertised)', { type: Cmd.CACHE, offset: 0, length: 512 }, NbdErr.EINVAL],
    ['BLOCK_STATUS (no context)', { type: Cmd.BLOCK_STATUS, offset: 0, length: 512 }, NbdErr.EINVAL],
    ['DF on read (not advertised)', { type: Cmd.READ, flags: CmdFlag.DF, offset: 0, length: 512 }, NbdErr.EINVAL],
    ['NO_HOLE on write', { type: Cmd.WRITE, flags: CmdFlag.NO_HOLE, offset: 0, length: 4, payload: Buffer.from('XXXX') }, NbdErr.EINVAL],
    ['FAST_ZERO on write-zeroes', { type: Cmd.WRITE_ZEROES, flags: CmdFlag.FAST_ZERO, offset: 0, length: 512 }, NbdErr.EINVAL],
    ['unknown flag bit', { type: Cmd.FLUSH, flags: 0x8000, offset: 0, length: 0 }, NbdErr.EINVAL],
    ['read over the max payload', { type: Cmd.READ, offset: 0, length: MAX_PAYLOAD + 1 }, NbdErr.EINVAL],
  ];
  for (const [what, req, err] of cases) {
    const cookie = c.send(req);
    const r = await c.simpleReply();
    assert.deepEqual([r.error, r.cookie], [err, cookie], what);
  }
  // refused writes never reached the target, and their payloads were consumed
  assert.equal(f.target.submitted.length, 0);
  c.send({ type: Cmd.READ, offset: 0, length: 4096 });
  assert.deepEqual((await c.simpleReply(4096)).data, pattern(4096, 5));
  // valid flags are fine; empty trim/zero ranges succeed without touching the target
  for (const req of [
    { type: Cmd.WRITE_ZEROES, flags: CmdFlag.NO_HOLE | CmdFlag.FUA, offset: 0, length: 512 },
    { type: Cmd.READ, flags: CmdFlag.FUA, offset: 0, length: 1 },
    { type: Cmd.TRIM, offset: size, length: 0 },
    { type: Cmd.WRITE_ZEROES, offset: 17, length: 0 },
    { type: Cmd.FLUSH, flags: CmdFlag.FUA, offset: 123, length: 456 }, // reserved fields ignored
  ]) {
    c.send(req);
    assert.equal((await c.simpleReply(req.type === Cmd.READ ? req.length : 0)).error, 0, JSON.stringify(req));
  }
  assert.deepEqual(f.target.submitted.map((s) => s.op), ['read', 'write-zeroes', 'read', 'flush']);
  assert.equal(f.ep.connections, 1);
  c.destroy();
});

test('structured replies: OFFSET_DATA+DONE, ERROR chunk with a message, simple replies for the rest', async (t) => {
  const f = await fixture(t, { fail: (r) => (r.op === 'read' && r.offset === 65536 ? 'ETIMEDOUT' : null) });
  f.target.data.set(pattern(1000, 9), 100);
  const c = await RawClient.connect(f.path);
  await c.open({ structured: true });
  const cookie = c.send({ type: Cmd.READ, offset: 100, length: 1000 });
  const ch = await c.chunk();
  assert.deepEqual([ch.type, ch.flags, ch.cookie], [ReplyType.OFFSET_DATA, ReplyFlag.DONE, cookie]);
  assert.equal(Number(ch.payload.readBigUInt64BE(0)), 100);
  assert.deepEqual(ch.payload.subarray(8), pattern(1000, 9));

  c.send({ type: Cmd.READ, offset: 65536, length: 512 });
  const e = await c.chunk();
  assert.deepEqual([e.type, e.flags], [ReplyType.ERROR, ReplyFlag.DONE]);
  assert.equal(e.payload.readUInt32BE(0), NbdErr.EIO); // ETIMEDOUT → EIO
  assert.match(e.payload.subarray(6, 6 + e.payload.readUInt16BE(4)).toString(), /ETIMEDOUT/);

  c.send({ type: Cmd.READ, offset: 1 << 20, length: 1 }); // refused at the edge: still structured
  const e2 = await c.chunk();
  assert.deepEqual([e2.type, e2.payload.readUInt32BE(0)], [ReplyType.ERROR, NbdErr.EINVAL]);

  c.send({ type: Cmd.WRITE, offset: 0, length: 2, payload: Buffer.from('ok') });
  assert.equal((await c.simpleReply()).error, 0);
  c.send({ type: Cmd.WRITE, offset: 1 << 20, length: 2, payload: Buffer.from('no') });
  assert.equal((await c.simpleReply()).error, NbdErr.ENOSPC);
  c.destroy();
});

test('read-only target: READ_ONLY flag, writes/trims/zeroes → EPERM, reads work', async (t) => {
  const f = await fixture(t, { permissions: 'r' });
  const c = await RawClient.connect(f.path);
  const { flags } = await c.open();
  assert.equal(flags & TxFlag.READ_ONLY, TxFlag.READ_ONLY);
  for (const req of [
    { type: Cmd.WRITE, offset: 0, length: 3, payload: Buffer.from('abc') },
    { type: Cmd.TRIM, offset: 0, length: 4096 },
    { type: Cmd.WRITE_ZEROES, offset: 0, length: 4096 },
  ]) {
    c.send(req);
    assert.equal((await c.simpleReply()).error, NbdErr.EPERM);
  }
  c.send({ type: Cmd.READ, offset: 0, length: 4 });
  assert.equal((await c.simpleReply(4)).error, 0);
  // permissions are checked per request: a later grant applies at once
  f.target.setPermissions('rw');
  c.send({ type: Cmd.WRITE, offset: 0, length: 3, payload: Buffer.from('abc') });
  assert.equal((await c.simpleReply()).error, 0);
  c.destroy();
});

test('requests above maxRequest are split and answered once, with data in order', async (t) => {
  const f = await fixture(t, { maxRequest: 4096, delayMs: (r) => (r.offset / 4096) % 2 === 0 ? 6 : 0 });
  const c = await RawClient.connect(f.path);
  await c.open();
  const data = pattern(10000, 3);
  const wc = c.send({ type: Cmd.WRITE, flags: CmdFlag.FUA, offset: 4096, length: 10000, payload: data });
  c.send({ type: Cmd.READ, cookie: 77n, offset: 4096, length: 10000 });
  // NBD lets the server answer out of order: take both replies as they come
  const got = [await c.anyReply((k) => (k === 77n ? 10000 : 0)), await c.anyReply((k) => (k === 77n ? 10000 : 0))];
  const w = got.find((x) => x.cookie === wc)!;
  const r = got.find((x) => x.cookie === 77n)!;
  assert.equal(w.error, 0);
  assert.equal(r.error, 0);
  assert.equal(r.data.length, 10000);
  assert.deepEqual(f.target.submitted.map((s) => [s.op, s.offset, s.length, s.fua]), [
    ['write', 4096, 4096, true], ['write', 8192, 4096, true], ['write', 12288, 1808, true],
    ['read', 4096, 4096, false], ['read', 8192, 4096, false], ['read', 12288, 1808, false],
  ]);
  // The read may run concurrently with the write at the target (NBD allows it); check the disk
  // and a fresh read after both replies.
  assert.deepEqual(f.target.data.subarray(4096, 14096), data);
  c.send({ type: Cmd.READ, offset: 4096, length: 10000 });
  assert.deepEqual((await c.simpleReply(10000)).data, data);

  // a failure in one piece: one error reply, nothing extra on the wire
  const g = await fixture(t, { maxRequest: 1024, fail: (r) => (r.offset === 2048 ? 'EDQUOT' : null) });
  const d = await RawClient.connect(g.path);
  await d.open();
  const ec = d.send({ type: Cmd.WRITE, offset: 0, length: 5000, payload: pattern(5000) });
  const zc = d.send({ type: Cmd.WRITE_ZEROES, offset: 0, length: 3000 });
  const both = [await d.simpleReply(), await d.simpleReply()].sort((a, b) => Number(a.cookie - b.cookie));
  assert.deepEqual(both.map((x) => [x.cookie, x.error]), [[ec, NbdErr.ENOSPC], [zc, NbdErr.ENOSPC]]);
  assert.equal(await d.quiet(50), true);
  c.destroy();
  d.destroy();
});

test('backpressure: a target with capacity 2 never has more than 2 submits outstanding', async (t) => {
  const f = await fixture(t, { capacity: 2, maxRequest: 8192, delayMs: 2 });
  const c1 = await RawClient.connect(f.path);
  const c2 = await RawClient.connect(f.path);
  await c1.open();
  await c2.open({ structured: true });
  const n = 40;
  const expect1 = new Set<bigint>();
  const expect2 = new Set<bigint>();
  for (let i = 0; i < n; i++) {
    expect1.add(c1.send({ type: Cmd.WRITE, offset: i * 20000, length: 20000, payload: pattern(20000, i) })); // 3 pieces each
    expect2.add(c2.send({ type: Cmd.READ, offset: i * 4096, length: 4096 }));
  }
  for (let i = 0; i < n; i++) {
    const r = await c1.simpleReply();
    assert.equal(r.error, 0);
    assert.ok(expect1.delete(r.cookie));
    const ch = await c2.chunk();
    assert.equal(ch.type, ReplyType.OFFSET_DATA);
    assert.ok(expect2.delete(ch.cookie));
  }
  assert.equal(f.target.maxOutstanding, 2);
  assert.equal(f.target.submitted.length, n * 3 + n);
  assert.equal(f.target.capacityListeners, 0);
  for (let i = 0; i < n; i++) assert.deepEqual(f.target.data.subarray(i * 20000, (i + 1) * 20000), pattern(20000, i));
  c1.destroy();
  c2.destroy();
});

test('a synchronous target (done inside submit) works, including splits and capacity', async (t) => {
  const f = await fixture(t, { capacity: 1, maxRequest: 512, delayMs: 'sync' });
  const c = await RawClient.connect(f.path);
  await c.open();
  const data = pattern(5000, 4);
  c.send({ type: Cmd.WRITE, offset: 0, length: 5000, payload: data });
  c.send({ type: Cmd.READ, offset: 0, length: 5000 });
  assert.equal((await c.simpleReply()).error, 0);
  assert.deepEqual((await c.simpleReply(5000)).data, data);
  c.destroy();
});

test('a maximum-size (32 MiB) write and read round-trip through 1 MiB submits', async (t) => {
  const f = await fixture(t, { size: MAX_PAYLOAD + 4096, capacity: 4 });
  const c = await RawClient.connect(f.path);
  await c.open({ structured: true });
  const data = pattern(MAX_PAYLOAD, 11);
  c.send({ type: Cmd.WRITE, offset: 4096, length: MAX_PAYLOAD, payload: data });
  assert.equal((await c.simpleReply()).error, 0);
  assert.equal(f.target.submitted.length, 32);
  c.send({ type: Cmd.READ, offset: 4096, length: MAX_PAYLOAD });
  const ch = await c.chunk();
  assert.equal(ch.type, ReplyType.OFFSET_DATA);
  assert.equal(ch.payload.length, 8 + MAX_PAYLOAD);
  assert.ok(ch.payload.subarray(8).equals(data));
  assert.ok(f.target.maxOutstanding <= 4);
  c.destroy();
});

test('a client that does not read its replies stops being read (bounded memory)', async (t) => {
  const f = await fixture(t, { size: 64 << 20 });
  const c = await RawClient.connect(f.path);
  await c.open();
  const n = 100;
  c.sock.pause(); // stop reading replies
  for (let i = 0; i < n; i++) c.send({ type: Cmd.READ, offset: (i % 64) << 20, length: 1 << 20 });
  await new Promise((r) => setTimeout(r, 200));
  // unread replies + in-flight reads above MAX_CONN_BYTES (64 MiB) stop the reading of requests
  const submittedWhileStuck = f.target.submitted.length;
  assert.ok(submittedWhileStuck < n, `only part of the requests were taken (${submittedWhileStuck}/${n})`);
  c.sock.resume();
  for (let i = 0; i < n; i++) assert.equal((await c.simpleReply(1 << 20)).error, 0);
  assert.equal(f.target.submitted.length, n);
  c.destroy();
});

test('at most 128 requests per connection are in flight', async (t) => {
  const f = await fixture(t);
  const c = await RawClient.connect(f.path);
  await c.open();
  f.target.hold();
  for (let i = 0; i < 200; i++) c.send({ type: Cmd.WRITE, offset: i * 8, length: 8, payload: pattern(8, i) });
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(f.target.held, 128);
  f.target.release();
  for (let i = 0; i < 200; i++) assert.equal((await c.simpleReply()).error, 0);
  assert.equal(f.target.submitted.length, 200);
  c.destroy();
});

test('DISC waits for in-flight replies, then closes', async (t) => {
  const f = await fixture(t);
  const c = await RawClient.connect(f.path);
  await c.open();
  f.target.hold();
  const wc = c.send({ type: Cmd.WRITE, offset: 0, length: 4, payload: Buffer.from('disc') });
  const rc = c.send({ type: Cmd.READ, offset: 0, length: 4 });
  c.send({ type: Cmd.DISC, offset: 0, length: 0 });
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(c.ended, false, 'still open while requests are in flight');
  assert.equal(await c.quiet(0), true);
  assert.equal(f.target.held, 2);
  f.target.release();
  const replies = [await c.simpleReply(), await c.simpleReply(4)];
  assert.deepEqual(new Set(replies.map((r) => r.cookie)), new Set([wc, rc]));
  await c.closed;
});

test('framing errors drop the connection: bad magic, oversize WRITE', async (t) => {
  const f = await fixture(t);
  const c = await RawClient.connect(f.path);
  await c.open();
  const bad = encodeRequest({ type: Cmd.READ, cookie: 1n, offset: 0, length: 1 });
  bad.writeUInt32BE(0xdeadbeef, 0);
  c.write(bad);
  await c.closed;

  const d = await RawClient.connect(f.path);
  await d.open();
  d.write(encodeRequest({ type: Cmd.WRITE, cookie: 2n, offset: 0, length: MAX_PAYLOAD + 1 })); // header only
  await d.closed;
  assert.equal(f.target.submitted.length, 0);

  const e = await RawClient.connect(f.path);
  await e.handshake();
  const h = encodeOption(Opt.GO);
  h.writeUInt32BE(1 << 20, 12); // 1 MiB of option data announced
  e.write(h);
  await e.closed;
});

test('a connection closed mid-request does not crash when done() arrives later', async (t) => {
  const f = await fixture(t, { maxRequest: 1024, capacity: 2 });
  const c = await RawClient.connect(f.path);
  await c.open();
  f.target.hold();
  c.send({ type: Cmd.READ, offset: 0, length: 8192 }); // 8 pieces; 2 submitted, 6 wait for capacity
  c.send({ type: Cmd.WRITE, offset: 0, length: 3, payload: Buffer.from('abc') });
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(f.target.held, 2);
  c.destroy();
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(f.ep.connections, 0);
  f.target.release();
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(f.target.submitted.length, 2, 'nothing more is submitted for a closed connection');
  assert.equal(f.target.capacityListeners, 0);
});

// ── Endpoint lifecycle ───────────────────────────────────────────────────────────────────────
test('graceful close waits for in-flight replies; new connections are refused', async (t) => {
  const f = await fixture(t);
  const c = await RawClient.connect(f.path);
  await c.open();
  f.target.hold();
  const wc = c.send({ type: Cmd.WRITE, offset: 0, length: 2, payload: Buffer.from('gc') });
  await new Promise((r) => setTimeout(r, 20));
  let closed = false;
  const closing = f.ep.close({ force: false }).then(() => { closed = true; });
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(closed, false);
  await assert.rejects(RawClient.connect(f.path)); // socket file removed, not listening
  f.target.release();
  const r = await c.simpleReply();
  assert.deepEqual([r.cookie, r.error], [wc, 0]);
  await c.closed;
  await closing;
  assert.equal(f.ep.connections, 0);
  await assert.rejects(stat(f.path), /ENOENT/);
});

test('graceful close answers a waiting split remainder and buffered requests with ESHUTDOWN', async (t) => {
  const f = await fixture(t, { capacity: 1, maxRequest: 1024 });
  const c = await RawClient.connect(f.path);
  await c.open();
  f.target.hold();
  const first = c.send({ type: Cmd.WRITE, offset: 0, length: 2048, payload: pattern(2048) }); // piece 1 held, piece 2 waits
  const second = c.send({ type: Cmd.WRITE, offset: 4096, length: 2, payload: Buffer.from('bb') }); // buffered
  const third = c.send({ type: Cmd.FLUSH, offset: 0, length: 0 }); // buffered
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(f.target.submitted.length, 1);
  const closing = f.ep.close({ force: false });
  await new Promise((r) => setTimeout(r, 10));
  f.target.release();
  await closing;
  const replies = new Map<bigint, number>();
  for (let i = 0; i < 3; i++) { const r = await c.simpleReply(); replies.set(r.cookie, r.error); }
  assert.deepEqual([replies.get(first), replies.get(second), replies.get(third)], [NbdErr.ESHUTDOWN, NbdErr.ESHUTDOWN, NbdErr.ESHUTDOWN]);
  assert.equal(f.target.submitted.length, 1, 'nothing new submitted while draining');
  await c.closed;
});

test('force close destroys connections at once', async (t) => {
  const f = await fixture(t);
  const c = await RawClient.connect(f.path);
  await c.open();
  f.target.hold();
  c.send({ type: Cmd.READ, offset: 0, length: 4 });
  await new Promise((r) => setTimeout(r, 20));
  await f.ep.close({ force: true });
  await c.closed;
  f.target.release(); // late completion after close: dropped
  await new Promise((r) => setTimeout(r, 10));
});

test('stale socket removed; a non-socket file is refused; TCP on port 0 reports the real port', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'dst-nbd-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const target = createMemoryTarget({ name: 'vol' });
  const path = join(dir, 'vol.sock');
  // a stale socket: bound by a process that exited without unlinking it
  execFileSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', path]);
  assert.ok((await stat(path)).isSocket());
  await writeFile(join(dir, 'file.sock'), 'x');
  await assert.rejects(startNbdEndpoint({ target, socketPath: join(dir, 'file.sock'), tcp: null, log: silentLogger }), /not a socket/);

  const ep = await startNbdEndpoint({ target, socketPath: path, tcp: { host: '127.0.0.1', port: 0 }, log: silentLogger });
  t.after(() => ep.close({ force: true }));
  assert.ok(ep.tcpAddress !== null && ep.tcpAddress.port > 0);
  const c = await RawClient.connect(ep.tcpAddress!.port, '127.0.0.1');
  await c.open({ name: 'vol' });
  c.send({ type: Cmd.READ, offset: 0, length: 8 });
  assert.equal((await c.simpleReply(8)).error, 0);
  c.destroy();
  await assert.rejects(startNbdEndpoint({ target, socketPath: null, tcp: null, log: silentLogger }));
  // a live endpoint on the path is not stolen
  await assert.rejects(startNbdEndpoint({ target, socketPath: path, tcp: null, log: silentLogger }), /another process/);
  const again = await RawClient.connect(path);
  await again.open();
  again.destroy();
  // a TCP bind failure leaves no unix socket behind
  const other = join(dir, 'other.sock');
  await assert.rejects(startNbdEndpoint({ target, socketPath: other, tcp: { host: '127.0.0.1', port: ep.tcpAddress!.port }, log: silentLogger }),
    (e: unknown) => e instanceof Error && /cannot listen/.test(e.message));
  await assert.rejects(stat(other), /ENOENT/);
});

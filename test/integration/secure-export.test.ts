// A keyed export node driven by a hand-built client (src/protocol/* only): the AUTH exchange,
// sealed IO, fencing only after AUTH, nothing unauthenticated executed, the HELLO timeout
// covering AUTH, and key-bound ACL entries checked by key id and proof.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FakeClock, realClock, type Clock } from '../../src/util/clock.js';
import { createLogger } from '../../src/util/log.js';
import { errnoNumber } from '../../src/util/errors.js';
import { CryptoPool } from '../../src/engine/crypto-pool.js';
import {
  DEFAULT_CRYPTO, DEFAULT_LIMITS, DEFAULT_POLICY, type AclEntry, type CryptoConfig, type EventFields, type EventName,
  type ExportConfig, type NodeContext,
} from '../../src/engine/types.js';
import { createExportNode, exportTestCounters } from '../../src/engine/export/export-node.js';
import {
  Access, Cmd, FrameDecoder, Op, WIRE_VERSION, decodeAuth, decodeHelloReply, decodeRefusal, encodeAuth, encodeFrame,
  encodeHeader, encodeHello, type Frame, type FrameInit,
} from '../../src/protocol/wire.js';
import {
  authProof, deriveSessionKeys, keyId, open, seal, sealedLength, suiteByName, type SessionKeys, type Suite,
} from '../../src/protocol/suites.js';
import { sparseFile, tmpDir } from '../helpers/tmp.js';

const dir = tmpDir(undefined, 'dst-secexp-');
const pool = new CryptoPool(1);
after(() => pool.close());
const KEY = randomBytes(32);
const CLIENT_KEY = randomBytes(32);
const KEY_FILE = join(dir, 'node.key');
const CLIENT_KEY_FILE = join(dir, 'client.key');
writeFileSync(KEY_FILE, KEY.toString('hex'), { mode: 0o600 });
writeFileSync(CLIENT_KEY_FILE, `base64:${CLIENT_KEY.toString('base64')}`, { mode: 0o600 });
const GCM: CryptoConfig = { ...DEFAULT_CRYPTO, cipher: 'aes-gcm', cipherKeyFile: KEY_FILE };
const E = errnoNumber;

let n = 0;
async function fixture(o: { acl?: AclEntry[]; clock?: Clock } = {}) {
  const disk = sparseFile(join(dir, `disk${n++}.img`), 1 << 20);
  const logs: string[] = [];
  const events: { event: EventName; fields: EventFields }[] = [];
  const config: ExportConfig = {
    role: 'export', name: 'vol', size: null, autostart: false, policy: { ...DEFAULT_POLICY }, crypto: GCM,
    disk, listen: '127.0.0.1:0', readonly: false, acl: o.acl ?? [{ addr: '127.0.0.1', perm: 'rw', keyFile: null }],
  };
  const ctx: NodeContext = {
    clock: o.clock ?? realClock, log: createLogger('debug', 'json', (l) => logs.push(l)),
    events: { emit: (_n, event, fields = {}) => { events.push({ event, fields }); } },
    runtimeDir: dir, stateDir: join(dir, 'state'), limits: DEFAULT_LIMITS, cryptoPool: pool,
  };
  const rt = createExportNode({ config }, ctx, { env: {} });
  await rt.start();
  const port = Number(/:(\d+)$/.exec(rt.show().listen!)![1]);
  return { rt, port, disk, logs, events, stop: () => rt.stop({ force: true }) };
}

/** A client speaking the handshake and sealing by hand. */
class Client {
  private readonly dec = new FrameDecoder();
  private inbox: Frame[] = [];
  private wakers: (() => void)[] = [];
  closed = false;
  readonly closedP: Promise<void>;
  suite: Suite = suiteByName('aes-gcm');
  keys: SessionKeys | null = null;
  sealed = false;
  txSeq = 0;
  rxSeq = 0;
  openError: Error | null = null;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (c: Buffer) => {
      this.dec.feed(c);
      for (let f = this.dec.next(); f; f = this.dec.next()) {
        if (this.sealed) {
          try {
            f.payload = open(this.suite, this.keys!.serverToClient, this.rxSeq++, f.header, f.payload, f.tag);
          } catch (err) {
            this.openError = err as Error;
            continue;
          }
        }
        this.inbox.push(f);
      }
      this.wake();
    });
    socket.on('error', () => {});
    this.closedP = new Promise((resolve) => socket.on('close', () => { this.closed = true; this.wake(); resolve(); }));
    socket.on('end', () => socket.end());
  }

  static connect(port: number): Promise<Client> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => resolve(new Client(s)));
      s.once('error', reject);
    });
  }

  private wake(): void {
    const w = this.wakers;
    this.wakers = [];
    for (const fn of w) fn();
  }

  async take(pred: (f: Frame) => boolean, ms = 3000): Promise<Frame> {
    const end = Date.now() + ms;
    for (;;) {
      const i = this.inbox.findIndex(pred);
      if (i >= 0) return this.inbox.splice(i, 1)[0]!;
      if (this.closed) throw new Error('connection closed');
      if (Date.now() > end) throw new Error('timed out waiting for a frame');
      await new Promise<void>((r) => { const t = setTimeout(r, 20); this.wakers.push(() => { clearTimeout(t); r(); }); });
    }
  }

  sendPlain(init: FrameInit): void {
    for (const p of encodeFrame(init)) this.socket.write(p);
  }

  sendSealed(init: FrameInit): void {
    const plain = init.payload ?? Buffer.alloc(0);
    const header = encodeHeader({
      cmd: init.cmd, op: init.op ?? 0, flags: init.flags ?? 0, status: 0, length: init.length ?? 0, id: init.id ?? 0,
      offset: init.offset ?? 0, ackedBelow: init.ackedBelow ?? 0,
      payloadLength: sealedLength(this.suite, plain.length), tagLength: this.suite.tagLength,
    });
    const s = seal(this.suite, this.keys!.clientToServer, this.txSeq++, header, plain);
    this.socket.write(Buffer.concat([header, s.payload, s.tag]));
  }

  /**
   * HELLO with `key` (its id unless keyIdOf says otherwise), then AUTH proving `proofKey` (default
   * `key`). Returns where it ended: refused at HELLO, refused at AUTH, or authenticated.
   */
  async handshake(o: { key: Buffer; proofKey?: Buffer; keyIdOf?: Buffer | null; session?: Buffer }):
    Promise<{ stage: 'hello' | 'auth' | 'ok'; status: number; message: string | null }> {
    const nonce = randomBytes(32);
    const hello = encodeHello({
      version: WIRE_VERSION, exportName: '', sessionId: o.session ?? randomBytes(16), access: Access.READ | Access.WRITE,
      suite: 'aes-gcm', keyId: o.keyIdOf === null ? null : keyId(o.keyIdOf ?? o.key), nonce,
    });
    this.sendPlain({ cmd: Cmd.HELLO, payload: hello });
    const r = await this.take((f) => f.cmd === Cmd.HELLO_REPLY);
    if (r.status !== 0) return { stage: 'hello', status: r.status, message: decodeRefusal(r.payload) };
    const reply = decodeHelloReply(r.payload);
    const transcript = Buffer.concat([hello, r.payload]);
    const mine = deriveSessionKeys(this.suite, o.proofKey ?? o.key, nonce, reply.nonce);
    this.sendPlain({ cmd: Cmd.AUTH, payload: encodeAuth({ proof: authProof(mine.confirm, 'client', transcript) }) });
    const a = await this.take((f) => f.cmd === Cmd.AUTH);
    if (a.status !== 0) return { stage: 'auth', status: a.status, message: decodeRefusal(a.payload) };
    assert.deepEqual(decodeAuth(a.payload).proof, authProof(mine.confirm, 'server', transcript), 'the export proves the key too');
    this.keys = mine;
    this.sealed = true;
    return { stage: 'ok', status: 0, message: null };
  }

  async io(op: Op, offset: number, length: number, id: number, data: Buffer | null = null): Promise<Frame> {
    this.sendSealed({ cmd: Cmd.IO, op, offset, length, id, payload: data });
    return this.take((f) => f.cmd === Cmd.IO_RESPONSE && f.id === id);
  }
}

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('keyed export: AUTH both ways, sealed IO; an unsealed frame after AUTH closes the link and never runs', async () => {
  const f = await fixture();
  try {
    const c = await Client.connect(f.port);
    assert.deepEqual(await c.handshake({ key: KEY }), { stage: 'ok', status: 0, message: null });
    const data = randomBytes(100 * 1024); // sealed in the pool on the export's side of the reply
    assert.equal((await c.io(Op.WRITE, 0, data.length, 1, data)).status, 0);
    const r = await c.io(Op.READ, 0, data.length, 2);
    assert.ok(r.payload.equals(data));
    c.sendSealed({ cmd: Cmd.PING, id: 5 });
    assert.equal((await c.take((x) => x.cmd === Cmd.PONG)).id, 5, 'PING/PONG are sealed too');
    assert.equal(c.openError, null);
    // a plain WRITE: rejected before anything looks at it
    c.sendPlain({ cmd: Cmd.IO, op: Op.WRITE, offset: 512 * 1024, length: 4096, id: 3, payload: Buffer.alloc(4096, 0xee) });
    await c.closedP;
    assert.ok(f.logs.some((l) => /frame 3 rejected/.test(l) || /a 0-byte tag/.test(l)), 'the reason is logged');
    assert.ok(readFileSync(f.disk).subarray(512 * 1024, 516 * 1024).equals(Buffer.alloc(4096)), 'never executed');
    assert.equal(f.rt.show().stats.completed, 2);
  } finally {
    await f.stop();
  }
});

test('a client failing AUTH does not knock out the session it names; a successful one fences it', async () => {
  const f = await fixture();
  try {
    const session = randomBytes(16);
    const a = await Client.connect(f.port);
    assert.equal((await a.handshake({ key: KEY, session })).stage, 'ok');
    const intruder = await Client.connect(f.port);
    const r = await intruder.handshake({ key: KEY, proofKey: randomBytes(32), session });
    assert.equal(r.stage, 'auth');
    assert.equal(r.status, E('EACCES'));
    assert.match(r.message!, /^authentication failed/);
    await intruder.closedP;
    assert.equal(a.closed, false, 'the session survives');
    assert.equal((await a.io(Op.WRITE, 0, 512, 1, Buffer.alloc(512, 1))).status, 0);
    assert.deepEqual(f.events.filter((e) => e.event === 'auth-failed').map((e) => e.fields), [{ addr: '127.0.0.1' }]);
    assert.ok(f.logs.some((l) => /"level":"error"/.test(l) && /authentication failed/.test(l) && /127\.0\.0\.1/.test(l)));
    // the same session with the right key takes over
    const b = await Client.connect(f.port);
    assert.equal((await b.handshake({ key: KEY, session })).stage, 'ok');
    await a.closedP;
    assert.equal((await b.io(Op.READ, 0, 512, 2)).payload[0], 1);
    assert.equal(f.rt.show().stats.reconnects, 1);
  } finally {
    await f.stop();
  }
});

test('handshake order: an IO instead of AUTH closes the link; nothing runs', async () => {
  const f = await fixture();
  try {
    const c = await Client.connect(f.port);
    c.sendPlain({ cmd: Cmd.HELLO, payload: encodeHello({ version: WIRE_VERSION, exportName: '', sessionId: randomBytes(16),
      access: 3, suite: 'aes-gcm', keyId: keyId(KEY), nonce: randomBytes(32) }) });
    assert.equal((await c.take((x) => x.cmd === Cmd.HELLO_REPLY)).status, 0);
    c.sendPlain({ cmd: Cmd.IO, op: Op.WRITE, offset: 0, length: 512, id: 1, payload: Buffer.alloc(512, 9) });
    await c.closedP;
    assert.ok(f.logs.some((l) => l.includes('expected AUTH, got IO')));
    assert.equal(f.rt.show().stats.completed, 0);
    assert.equal(exportTestCounters(f.rt)!.sessions, 0, 'no session was created');
  } finally {
    await f.stop();
  }
});

test('the HELLO timeout covers AUTH (fake clock)', async () => {
  const clock = new FakeClock();
  const f = await fixture({ clock });
  try {
    const c = await Client.connect(f.port);
    c.sendPlain({ cmd: Cmd.HELLO, payload: encodeHello({ version: WIRE_VERSION, exportName: '', sessionId: randomBytes(16),
      access: 3, suite: 'aes-gcm', keyId: keyId(KEY), nonce: randomBytes(32) }) });
    await c.take((x) => x.cmd === Cmd.HELLO_REPLY);
    clock.advance(DEFAULT_LIMITS.helloTimeoutMs - 1);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(c.closed, false);
    clock.advance(1);
    await c.closedP;
    assert.ok(f.logs.some((l) => l.includes('not done within')));
  } finally {
    await f.stop();
  }
});

test('key-bound ACL entry: the HELLO key id must be the entry key\'s; then its key is the input key', async () => {
  const f = await fixture({ acl: [{ addr: '127.0.0.1', perm: 'rw', keyFile: CLIENT_KEY_FILE }] });
  try {
    const c1 = await Client.connect(f.port);
    const r1 = await c1.handshake({ key: KEY });
    assert.deepEqual([r1.stage, r1.status], ['hello', E('EACCES')]);
    assert.equal(r1.message, 'authentication failed: key-bound ACL entry for 127.0.0.1 needs another key');
    const c2 = await Client.connect(f.port);
    assert.equal((await c2.handshake({ key: KEY, keyIdOf: null })).stage, 'hello', 'no key id → refused');
    // the right id but a proof with another key: caught at AUTH
    const c3 = await Client.connect(f.port);
    assert.equal((await c3.handshake({ key: CLIENT_KEY, proofKey: KEY })).stage, 'auth');
    const c4 = await Client.connect(f.port);
    assert.equal((await c4.handshake({ key: CLIENT_KEY })).stage, 'ok');
    assert.equal((await c4.io(Op.WRITE, 0, 512, 1, Buffer.alloc(512, 3))).status, 0);
    await until(() => f.events.filter((e) => e.event === 'auth-failed').length === 3);
  } finally {
    await f.stop();
  }
});

// The sealed channel end to end, in process: a real export node and a real remote node over
// 127.0.0.1, key files in a temporary directory. Every suite moves 1 MiB both ways (the worker
// path) and small frames (the main-thread path); a wrong key, a suite mismatch and a key-bound
// ACL entry used with another key are refused clearly on both sides with no data moved; a
// flipped bit on the wire closes the link and the write is replayed; a reconnect makes a fresh
// handshake and picks up changed crypto settings.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { realClock } from '../../src/util/clock.js';
import { createLogger } from '../../src/util/log.js';
import { CryptoPool } from '../../src/engine/crypto-pool.js';
import {
  DEFAULT_CHUNK, DEFAULT_REGION, DEFAULT_LIMITS, DEFAULT_POLICY, type AclEntry, type CryptoConfig, type EventFields, type EventName, type ExportConfig,
  type NodeContext, type RemoteConfig, type RemoteRuntime,
} from '../../src/engine/types.js';
import { createExportNode } from '../../src/engine/export/export-node.js';
import { createRemoteNode } from '../../src/engine/remote/remote-node.js';
import type { NbdEndpoint } from '../../src/engine/remote/nbd-endpoint.js';
import type { BlockData, BlockRequest, BlockTarget } from '../../src/engine/remote/target.js';

const flat = (d: BlockData | null): Buffer | null => (d === null || Buffer.isBuffer(d) ? d : Buffer.concat(d));
import { suiteByName } from '../../src/protocol/suites.js';
import { Cmd, FrameDecoder, decodeHello, type Hello } from '../../src/protocol/wire.js';
import { sparseFile, tmpDir } from '../helpers/tmp.js';

const SUITES = [
  'aes-gcm', 'chacha20-poly1305',
  ...['sha256', 'sha512', 'blake2b512'].flatMap((h) => [`aes-cbc+hmac-${h}`, `aes-ctr+hmac-${h}`, `none+hmac-${h}`, `none+${h}`]),
  'none',
];

const MiB = 1 << 20;
const DISK_SIZE = 8 * MiB;
const PATTERN = Buffer.from('known plaintext pattern 0123456789abcdef ');
const known = (n: number): Buffer => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i += PATTERN.length) PATTERN.copy(b, i);
  return b;
};

const dir = tmpDir(undefined, 'dst-secure-');
const pool = new CryptoPool(2);
after(() => pool.close());

// key files: hex, base64 and raw forms, mode 0600
const keyBytes = { cipher: randomBytes(32), hash: randomBytes(48), other: randomBytes(32), client: randomBytes(40) };
function keyFile(name: string, content: string | Buffer): string {
  const p = join(dir, name);
  writeFileSync(p, content, { mode: 0o600 });
  return p;
}
const KEY = {
  cipher: keyFile('cipher.key', keyBytes.cipher.toString('hex') + '\n'),
  hash: keyFile('hash.key', `base64:${keyBytes.hash.toString('base64')}\n`),
  other: keyFile('other.key', keyBytes.other.toString('hex')),
  client: keyFile('client.key', Buffer.concat([Buffer.from('raw:'), keyBytes.client])), // raw bytes, as they are
};
/** Every printable form of every key: none may appear in a log line or an event. */
const KEY_TEXTS = Object.values(keyBytes).flatMap((k) => [k.toString('hex'), k.toString('base64'), k.toString('latin1')]);

function cryptoFor(name: string, keys: { cipher?: string; hash?: string } = {}): CryptoConfig {
  const s = suiteByName(name);
  return {
    cipher: s.cipher, hash: s.hash,
    cipherKeyFile: s.cipher !== 'none' ? keys.cipher ?? KEY.cipher : null,
    hashKeyFile: s.keyed ? keys.hash ?? KEY.hash : null,
    threads: null,
  };
}

const fakeEndpoint = async (o: { socketPath: string | null }): Promise<NbdEndpoint> => ({
  socketPath: o.socketPath, tcpAddress: null, uri: `nbd+unix:///?socket=${o.socketPath}`, connections: 0,
  close: async () => {},
}) as unknown as NbdEndpoint;

interface Side {
  logs: string[];
  events: { event: EventName; fields: EventFields }[];
  ctx: NodeContext;
}

function side(): Side {
  const s: Side = { logs: [], events: [], ctx: null as unknown as NodeContext };
  s.ctx = {
    clock: realClock,
    log: createLogger('debug', 'json', (line) => s.logs.push(line)),
    events: { emit: (_n, event, fields = {}) => { s.events.push({ event, fields }); } },
    runtimeDir: dir, stateDir: join(dir, 'state'), limits: DEFAULT_LIMITS, cryptoPool: pool,
  };
  return s;
}

interface Wire {
  /** every byte the remote wrote / received */
  out: Buffer[];
  in: Buffer[];
  /** the HELLO of each connection */
  hellos: Hello[];
  /** performance.now() of each HELLO sent */
  helloAt: number[];
  /** called on each outgoing chunk; return a replacement to tamper */
  tamper: ((chunk: Buffer) => Buffer | null) | null;
}

let seq = 0;

async function pair(o: { exportCrypto: CryptoConfig; remoteCrypto: CryptoConfig; acl?: AclEntry[] }) {
  const n = seq++;
  const disk = sparseFile(join(dir, `disk${n}.img`), DISK_SIZE);
  const es = side();
  const rs = side();
  const expHolder: { config: ExportConfig } = {
    config: {
      role: 'export', name: `vol${n}`, size: null, autostart: false, policy: { ...DEFAULT_POLICY },
      crypto: o.exportCrypto, disk, listen: '127.0.0.1:0', readonly: false,
      acl: o.acl ?? [{ addr: '127.0.0.1', perm: 'rw', keyFile: null }],
    },
  };
  const exp = createExportNode({ get config() { return expHolder.config; } }, es.ctx, { env: {} });
  await exp.start();
  const port = Number(/:(\d+)$/.exec(exp.show().listen!)![1]);
  const wire: Wire = { out: [], in: [], hellos: [], helloAt: [], tamper: null };
  const remHolder: { config: RemoteConfig } = {
    config: {
      role: 'remote', name: `rem${n}`, size: null, autostart: false,
      policy: { ...DEFAULT_POLICY, resendTimeoutMs: 2000, maxResends: 5, pingIntervalMs: 500, reconnectDelayMs: 20 },
      crypto: o.remoteCrypto, layout: 'single', legs: [{ remote: `127.0.0.1:${port}`, export: null }], chunk: DEFAULT_CHUNK, region: DEFAULT_REGION, nbdListen: null,
    },
  };
  const remote = createRemoteNode({ get config() { return remHolder.config; } }, rs.ctx, {
    startEndpoint: fakeEndpoint,
    socketFactory: (host, p) => {
      const s = net.connect({ host, port: p });
      s.setNoDelay(true);
      const dec = new FrameDecoder();
      let helloSeen = false;
      const write = s.write.bind(s) as (c: Buffer) => boolean;
      (s as unknown as { write: (c: Buffer) => boolean }).write = (chunk: Buffer) => {
        if (!helloSeen) {
          dec.feed(Buffer.from(chunk));
          const f = dec.next();
          if (f) {
            helloSeen = true;
            if (f.cmd === Cmd.HELLO) {
              wire.hellos.push(decodeHello(f.payload));
              wire.helloAt.push(performance.now());
            }
          }
        }
        wire.out.push(Buffer.from(chunk));
        return write(wire.tamper?.(chunk) ?? chunk);
      };
      s.on('data', (c: Buffer) => { wire.in.push(Buffer.from(c)); });
      return s;
    },
  });
  const cleanup = async (): Promise<void> => {
    await remote.stop({ force: true });
    await exp.stop({ force: true });
  };
  return { exp, remote: remote as RemoteRuntime & BlockTarget, expHolder, remHolder, es, rs, wire, disk, cleanup };
}

function io(node: BlockTarget, req: BlockRequest): Promise<{ errno: string | null; data: Buffer | null }> {
  return new Promise((resolve) => node.submit(req, (errno, data) => resolve({ errno, data: flat(data) })));
}
const write = (offset: number, data: Buffer): BlockRequest => ({ op: 'write', offset, length: data.length, payload: data, fua: false });
const read = (offset: number, length: number): BlockRequest => ({ op: 'read', offset, length, payload: null, fua: false });

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function assertNoKeys(...sides: Side[]): void {
  for (const s of sides) {
    const text = s.logs.join('\n') + JSON.stringify(s.events);
    for (const k of KEY_TEXTS) assert.equal(text.includes(k), false, 'a key appears in a log line or an event');
  }
}

const hasLog = (s: Side, re: RegExp): boolean => s.logs.some((l) => re.test(l));

for (const name of SUITES) {
  test(`suite ${name}: 1 MiB and 4 KiB writes and reads round-trip; the wire ${suiteByName(name).cipher === 'none' ? 'shows' : 'hides'} the plaintext`, async (t) => {
    const p = await pair({ exportCrypto: cryptoFor(name), remoteCrypto: cryptoFor(name) });
    t.after(p.cleanup);
    await p.remote.start();
    assert.equal(await p.remote.waitReady(5000), 'ready', `remote: ${p.remote.reason} ${p.rs.logs.slice(-3).join('\n')}`);
    const big = known(MiB);
    const small = randomBytes(4096);
    const [w1, w2] = await Promise.all([io(p.remote, write(0, big)), io(p.remote, write(3 * MiB, small))]);
    assert.deepEqual([w1.errno, w2.errno], [null, null]);
    const [r1, r2] = await Promise.all([io(p.remote, read(0, MiB)), io(p.remote, read(3 * MiB, 4096))]);
    assert.equal(r1.errno, null);
    assert.ok(r1.data!.equals(big), 'the 1 MiB read is what was written');
    assert.ok(r2.data!.equals(small), 'the 4 KiB read is what was written');
    const onDisk = readFileSync(p.disk);
    assert.ok(onDisk.subarray(0, MiB).equals(big));
    assert.ok(onDisk.subarray(3 * MiB, 3 * MiB + 4096).equals(small));

    const suite = suiteByName(name);
    const hello = p.wire.hellos[0]!;
    assert.equal(hello.suite, name);
    assert.equal(hello.keyId !== null, suite.needsKey, 'a key id is sent exactly when there is a key');
    const sent = Buffer.concat(p.wire.out);
    const received = Buffer.concat(p.wire.in);
    assert.ok(sent.length > MiB && received.length > MiB);
    const marker = PATTERN.subarray(0, 24);
    assert.equal(sent.includes(marker), suite.cipher === 'none', 'plaintext of the write on the wire');
    assert.equal(received.includes(marker), suite.cipher === 'none', 'plaintext of the read on the wire');
    assert.ok(hasLog(p.es, new RegExp(`"suite":"${name.replace(/\+/g, '\\+')}"`)), 'the export names the suite of the session');
    assertNoKeys(p.es, p.rs);
  });
}

test('wrong key: both sides say authentication failed, backoff doubles, no data moved', async (t) => {
  const p = await pair({ exportCrypto: cryptoFor('aes-gcm'), remoteCrypto: cryptoFor('aes-gcm', { cipher: KEY.other }) });
  t.after(p.cleanup);
  await p.remote.start();
  const w = io(p.remote, write(0, known(4096)));
  await until(() => p.remote.reason === 'auth-failed', 'remote backoff auth-failed');
  assert.equal(p.remote.state, 'backoff');
  const remEv = p.rs.events.find((e) => e.event === 'auth-failed');
  assert.match(String(remEv?.fields.message), /authentication failed/);
  assert.ok(hasLog(p.rs, /"level":"error".*authentication failed/), 'the remote logs an error');
  await until(() => p.es.events.some((e) => e.event === 'auth-failed'), 'export auth-failed event');
  assert.deepEqual(p.es.events.find((e) => e.event === 'auth-failed')!.fields, { addr: '127.0.0.1' });
  assert.ok(hasLog(p.es, /authentication failed.*127\.0\.0\.1/), 'the export logs it, naming the peer');
  assert.ok(hasLog(p.es, /"node":"vol\d+".*authentication failed|authentication failed.*node vol\d+/), 'naming the node');
  // no retry storm: 20 ms doubling → attempt n+1 at least 20·2^(n-1) ms after attempt n (so a
  // handful of attempts in 400 ms)
  await until(() => p.wire.hellos.length >= 4, 'four attempts');
  assert.ok(p.wire.hellos.length >= 2 && p.wire.hellos.length <= 6, `${p.wire.hellos.length} attempts`);
  const gaps = p.wire.helloAt.slice(1, 4).map((at, i) => at - p.wire.helloAt[i]!);
  gaps.forEach((gap, i) => assert.ok(gap >= 20 * 2 ** i - 1, `attempt ${i + 2} came ${gap.toFixed(1)} ms after the one before (backoff ${20 * 2 ** i} ms)`));
  assert.equal(p.exp.show().stats.bytesWritten, 0, 'no data moved');
  assert.equal(p.exp.show().stats.completed, 0);
  assert.ok(readFileSync(p.disk).subarray(0, 4096).equals(Buffer.alloc(4096)));
  assert.ok(!p.es.events.some((e) => e.event === 'connected'), 'the export never admitted the session');
  await p.remote.stop({ force: true });
  assert.equal((await w).errno, 'ESHUTDOWN');
  assertNoKeys(p.es, p.rs);
});

test('suite mismatch: both sides name both suites; crypto on one side only says so', async (t) => {
  const cases: [string, string, RegExp][] = [
    ['aes-gcm', 'none', /export only/],
    ['none', 'chacha20-poly1305', /client only/],
    ['aes-gcm', 'chacha20-poly1305', /suite mismatch/],
  ];
  for (const [exportSuite, remoteSuite, oneSide] of cases) {
    const p = await pair({ exportCrypto: cryptoFor(exportSuite), remoteCrypto: cryptoFor(remoteSuite) });
    t.after(p.cleanup);
    await p.remote.start();
    await until(() => p.remote.reason === 'suite-mismatch', `${exportSuite}/${remoteSuite}: remote suite-mismatch`);
    const msg = String(p.rs.events.find((e) => e.event === 'auth-failed')?.fields.message);
    for (const s of [exportSuite, remoteSuite]) assert.ok(msg.includes(s), `remote message names ${s}: ${msg}`);
    assert.match(msg, oneSide);
    const errLine = p.rs.logs.find((l) => /"level":"error"/.test(l) && /suite mismatch/.test(l));
    assert.ok(errLine && errLine.includes(exportSuite) && errLine.includes(remoteSuite), 'the remote logs an error naming both');
    await until(() => hasLog(p.es, /suite mismatch/), 'export log');
    const expLine = p.es.logs.find((l) => /suite mismatch/.test(l))!;
    assert.ok(expLine.includes(exportSuite) && expLine.includes(remoteSuite), `export log names both: ${expLine}`);
    assert.equal(p.exp.show().stats.completed, 0);
  }
});

test('key-bound ACL entry: another key is refused at HELLO; the bound key is admitted', async (t) => {
  const p = await pair({
    exportCrypto: cryptoFor('aes-gcm'), remoteCrypto: cryptoFor('aes-gcm'),
    acl: [{ addr: '127.0.0.0/8', perm: 'rw', keyFile: null }, { addr: '127.0.0.1', perm: 'rw', keyFile: KEY.client }],
  });
  t.after(p.cleanup);
  await p.remote.start();
  await until(() => p.remote.reason === 'auth-failed', 'remote auth-failed');
  const msg = String(p.rs.events.find((e) => e.event === 'auth-failed')?.fields.message);
  assert.match(msg, /authentication failed: key-bound ACL entry for 127\.0\.0\.1 needs another key/);
  assert.ok(hasLog(p.es, /key-bound ACL entry for 127\.0\.0\.1 needs another key/));
  assert.equal(p.wire.hellos[0]!.keyId!.length, 8);
  // the client now uses the key the entry is bound to: admitted at the next handshake
  p.remHolder.config = { ...p.remHolder.config, crypto: cryptoFor('aes-gcm', { cipher: KEY.client }) };
  p.remote.reconnect();
  assert.equal(await p.remote.waitReady(5000), 'ready');
  const data = randomBytes(256 * 1024);
  assert.equal((await io(p.remote, write(MiB, data))).errno, null);
  assert.ok((await io(p.remote, read(MiB, data.length))).data!.equals(data));
  assertNoKeys(p.es, p.rs);
});

test('a key-bound ACL entry with a suite that proves no key is refused', async (t) => {
  const p = await pair({
    exportCrypto: cryptoFor('none+sha256'), remoteCrypto: cryptoFor('none+sha256'),
    acl: [{ addr: '127.0.0.1', perm: 'rw', keyFile: KEY.client }],
  });
  t.after(p.cleanup);
  await p.remote.start();
  await until(() => p.remote.reason === 'auth-failed', 'remote auth-failed');
  assert.match(String(p.rs.events.find((e) => e.event === 'auth-failed')?.fields.message), /bound to a key.*proves no key/);
});

test('tampered frame: the export rejects it and closes; the write is replayed and lands intact', async (t) => {
  const p = await pair({ exportCrypto: cryptoFor('aes-gcm'), remoteCrypto: cryptoFor('aes-gcm') });
  t.after(p.cleanup);
  await p.remote.start();
  assert.equal(await p.remote.waitReady(5000), 'ready');
  let flipped = 0;
  p.wire.tamper = (chunk) => {
    if (flipped > 0 || chunk.length !== MiB) return null;
    flipped++;
    const c = Buffer.from(chunk);
    c[12345]! ^= 0x04;
    return c;
  };
  const data = known(MiB);
  const w = await io(p.remote, write(2 * MiB, data));
  assert.equal(w.errno, null);
  assert.equal(flipped, 1);
  assert.ok(readFileSync(p.disk).subarray(2 * MiB, 3 * MiB).equals(data), 'nothing corrupt reached the disk');
  assert.ok(hasLog(p.es, /rejected: frame authentication failed/), 'the export logs why it closed');
  assert.equal(p.wire.hellos.length, 2, 'a fresh handshake');
  assert.ok(p.remote.show().stats.replayed >= 1, 'the write was replayed');
  assert.equal(p.exp.show().stats.bytesWritten, MiB, 'executed once: the tampered frame never ran');
});

test('reconnect: a fresh handshake (new nonce, sequences from 0); crypto changes apply at the next one', async (t) => {
  const p = await pair({ exportCrypto: cryptoFor('aes-gcm'), remoteCrypto: cryptoFor('aes-gcm') });
  t.after(p.cleanup);
  await p.remote.start();
  assert.equal(await p.remote.waitReady(5000), 'ready');
  const a = randomBytes(128 * 1024);
  assert.equal((await io(p.remote, write(0, a))).errno, null);
  p.remote.reconnect();
  assert.equal(await p.remote.waitReady(5000), 'ready');
  assert.ok((await io(p.remote, read(0, a.length))).data!.equals(a));
  assert.equal(p.wire.hellos.length, 2);
  assert.ok(!p.wire.hellos[0]!.nonce.equals(p.wire.hellos[1]!.nonce), 'a new nonce');
  assert.deepEqual(p.wire.hellos[0]!.keyId, p.wire.hellos[1]!.keyId);

  // both sides change suite and key (crypto set): the running session keeps going; the next
  // handshake uses the new settings
  p.expHolder.config = { ...p.expHolder.config, crypto: cryptoFor('chacha20-poly1305', { cipher: KEY.other }) };
  p.exp.configChanged();
  p.remHolder.config = { ...p.remHolder.config, crypto: cryptoFor('chacha20-poly1305', { cipher: KEY.other }) };
  assert.ok((await io(p.remote, read(0, 4096))).data!.equals(a.subarray(0, 4096)));
  p.remote.reconnect();
  assert.equal(await p.remote.waitReady(5000), 'ready');
  assert.equal(p.wire.hellos[2]!.suite, 'chacha20-poly1305');
  assert.ok(!p.wire.hellos[2]!.keyId!.equals(p.wire.hellos[1]!.keyId!), 'the new key');
  const b = randomBytes(MiB);
  assert.equal((await io(p.remote, write(MiB, b))).errno, null);
  assert.ok((await io(p.remote, read(MiB, MiB))).data!.equals(b));
  assert.equal(p.es.events.filter((e) => e.event === 'connected').length, 3);
  assertNoKeys(p.es, p.rs);
});

test('unreadable key file: a clear error and backoff, never a crash; fixed → ready', async (t) => {
  const missing = join(dir, 'missing.key');
  const p = await pair({ exportCrypto: cryptoFor('aes-gcm'), remoteCrypto: cryptoFor('aes-gcm', { cipher: missing }) });
  t.after(p.cleanup);
  await p.remote.start();
  await until(() => p.remote.reason === 'auth-failed', 'remote auth-failed');
  assert.match(String(p.rs.events.find((e) => e.event === 'auth-failed')?.fields.message), /missing\.key: cannot read it \(ENOENT\)/);
  assert.equal(p.wire.hellos.length, 0, 'nothing sent without a key');
  writeFileSync(missing, keyBytes.cipher.toString('hex'), { mode: 0o600 });
  assert.equal(await p.remote.waitReady(5000), 'ready');
});

test('loose key file permissions: a warning, once', async (t) => {
  const loose = keyFile('loose.key', keyBytes.cipher.toString('hex'));
  const { chmodSync } = await import('node:fs');
  chmodSync(loose, 0o644);
  const p = await pair({ exportCrypto: cryptoFor('aes-gcm'), remoteCrypto: cryptoFor('aes-gcm', { cipher: loose }) });
  t.after(p.cleanup);
  await p.remote.start();
  assert.equal(await p.remote.waitReady(5000), 'ready');
  p.remote.reconnect();
  assert.equal(await p.remote.waitReady(5000), 'ready');
  const warnings = p.rs.logs.filter((l) => /"level":"warn"/.test(l) && /loose\.key is readable by group or others/.test(l));
  assert.equal(warnings.length, 1);
});

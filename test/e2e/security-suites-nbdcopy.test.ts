// Every crypto suite carries nbdcopy's 64 MiB in and out through dst, byte-identical, and what
// crosses the wire (recorded by the fault proxy's capture) never holds a known plaintext pattern
// when a cipher is on — while the same run with no cipher does hold it, so the check can fail.
// The IO frames on the wire carry the suite's tag length (a digest-only suite is really on).
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, createReadStream, ftruncateSync, openSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { startEngine } from '../helpers/engine.js';
import { startProxy } from '../helpers/proxy.js';
import { makeKeyFile, type KeyFile } from '../helpers/keys.js';
import { tmpDir } from '../helpers/tmp.js';
import { requireTool, run } from '../helpers/tools.js';
import { captureBytes, readCapture, type CaptureRecord } from '../../src/faultproxy/capture.js';
import { Cmd, FrameDecoder } from '../../src/protocol/wire.js';
import type { NodeShow } from '../../src/engine/types.js';

const SIZE = 64 * 1024 * 1024;
const PATTERN = Buffer.from('DST-KNOWN-PLAINTEXT-PATTERN', 'latin1');

interface SuiteCase {
  name: string;
  /** a cipher encrypts the payload: the pattern must not cross the wire */
  ciphered: boolean;
  /** tag bytes per sealed frame */
  tag: number;
  args(c: KeyFile, h: KeyFile): string[];
}

const HASHES = [['sha256', 32], ['sha512', 64], ['blake2b512', 64]] as const;
const SUITES: SuiteCase[] = [
  { name: 'aes-gcm', ciphered: true, tag: 16, args: (c) => ['--cipher', 'aes-gcm', '--cipher-key-file', c.path] },
  { name: 'chacha20-poly1305', ciphered: true, tag: 16, args: (c) => ['--cipher', 'chacha20-poly1305', '--cipher-key-file', c.path] },
  ...HASHES.flatMap(([h, n]) => [
    { name: `aes-cbc+hmac-${h}`, ciphered: true, tag: n,
      args: (c: KeyFile, k: KeyFile) => ['--cipher', 'aes-cbc', '--cipher-key-file', c.path, '--hash', h, '--hash-key-file', k.path] },
    { name: `aes-ctr+hmac-${h}`, ciphered: true, tag: n,
      args: (c: KeyFile, k: KeyFile) => ['--cipher', 'aes-ctr', '--cipher-key-file', c.path, '--hash', h, '--hash-key-file', k.path] },
    { name: `none+hmac-${h}`, ciphered: false, tag: n,
      args: (_c: KeyFile, k: KeyFile) => ['--cipher', 'none', '--hash', h, '--hash-key-file', k.path] },
    { name: `none+${h}`, ciphered: false, tag: n, args: () => ['--cipher', 'none', '--hash', h] },
  ]),
  { name: 'none', ciphered: false, tag: 0, args: () => [] },
];

const dir = tmpDir(undefined, 'dst-sn-');
// One export engine and one remote engine for the whole file; each suite gets its own pair of
// nodes, its own disk and its own proxy (and capture).
const exp = await startEngine(undefined, { name: 'export engine' });
const rem = await startEngine(undefined, { name: 'remote engine' });
let serial = 0;
let src = '';
let srcHash = '';
let cipherKey: KeyFile;
let hashKey: KeyFile;

async function sha256(path: string, length = Infinity): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, length === Infinity ? {} : { start: 0, end: length - 1 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

before(() => {
  cipherKey = makeKeyFile(dir, 'cipher.key', 'hex');
  hashKey = makeKeyFile(dir, 'hash.key', 'base64');
  // 64 MiB: every 4 KiB block starts with the pattern repeated over 256 bytes, the rest random
  // (so a misplaced block is caught by the hashes, and the pattern is everywhere in the plaintext).
  src = join(dir, 'src.bin');
  const fd = openSync(src, 'w');
  const head = Buffer.alloc(256);
  for (let o = 0; o < head.length; o += PATTERN.length) PATTERN.copy(head, o, 0, Math.min(PATTERN.length, head.length - o));
  const h = createHash('sha256');
  for (let off = 0; off < SIZE; off += 8 << 20) {
    const chunk = randomBytes(8 << 20);
    for (let b = 0; b < chunk.length; b += 4096) head.copy(chunk, b);
    writeSync(fd, chunk);
    h.update(chunk);
  }
  closeSync(fd);
  srcHash = h.digest('hex');
});

/** IO / IO_RESPONSE frames decoded from one direction of a capture, connection by connection. */
function ioFrames(records: CaptureRecord[], direction: 'up' | 'down'): { frames: number; tagLengths: Set<number>; payloadBytes: number } {
  const tagLengths = new Set<number>();
  let frames = 0;
  let payloadBytes = 0;
  for (const conn of new Set(records.map((r) => r.connection))) {
    const dec = new FrameDecoder();
    dec.feed(captureBytes(records, { direction, connection: conn, injected: false }));
    for (let f = dec.next(); f; f = dec.next()) {
      if (f.cmd !== Cmd.IO && f.cmd !== Cmd.IO_RESPONSE) continue;
      frames++;
      payloadBytes += f.payloadLength;
      tagLengths.add(f.tagLength);
    }
  }
  return { frames, tagLengths, payloadBytes };
}

for (const s of SUITES) {
  test(`suite ${s.name}: nbdcopy 64 MiB round trip, capture ${s.ciphered ? 'never holds' : 'holds'} the plaintext pattern`, async (t) => {
    if (!requireTool(t, 'nbdcopy', 'libnbd-bin')) return;
    const work = tmpDir(t, 'dst-sw-');
    const cap = join(work, 'wire.cap');
    const name = `s${++serial}`;
    const disk = join(work, 'disk.img');
    const fd = openSync(disk, 'w');
    ftruncateSync(fd, SIZE);
    closeSync(fd);
    const crypto = s.args(cipherKey, hashKey);
    t.after(async () => {
      await rem.dst(['node', 'stop', name, '--force']);
      await rem.dst(['node', 'del', name]);
      await exp.dst(['node', 'stop', name, '--force']);
      await exp.dst(['node', 'del', name]);
    });
    await exp.dstJson(['node', 'add', name, '--disk', disk, '--listen', '127.0.0.1:0']);
    await exp.dstJson(['security', 'add', name, '--addr', '127.0.0.1', '--perm', 'rw']);
    if (crypto.length) await exp.dstJson(['crypto', 'set', name, ...crypto]);
    const listen = (await exp.dstJson<NodeShow>(['node', 'start', name])).listen!;
    const proxy = await startProxy(t, listen, { capture: cap });
    await rem.dstJson(['node', 'add', name, '--remote', proxy.listen, '--export', name]);
    if (crypto.length) await rem.dstJson(['crypto', 'set', name, ...crypto]);
    const ready = await rem.dstJson<NodeShow>(['node', 'start', name, '--wait', '10s']);
    assert.equal(ready.state, 'ready', `remote node ${name} ready: ${JSON.stringify(ready)}`);
    const uri = ready.nbd!.uri;
    const [remShow, expShow] = [await rem.show(name), await exp.show(name)];
    assert.equal(remShow.crypto.suite, s.name, 'remote node runs the suite under test');
    assert.equal(expShow.crypto.suite, s.name, 'export node runs the suite under test');

    const up = await run('nbdcopy', [src, uri], { timeoutMs: 120_000 });
    assert.equal(up.code, 0, `nbdcopy in: ${up.stderr}`);
    const back = join(work, 'back.bin');
    writeFileSync(back, '');
    const down = await run('nbdcopy', [uri, back], { timeoutMs: 120_000 });
    assert.equal(down.code, 0, `nbdcopy out: ${down.stderr}`);
    assert.equal(statSync(back).size, SIZE);
    assert.equal(await sha256(back), srcHash, 'copied out equals the source');
    assert.equal(await sha256(disk, SIZE), srcHash, "export's backing file equals the source");
    const stats = (await rem.show(name)).stats;
    assert.equal(stats.failed, 0, 'no transaction failed');

    const records = readCapture(cap);
    const upBytes = captureBytes(records, { direction: 'up' });
    const downBytes = captureBytes(records, { direction: 'down' });
    assert.ok(upBytes.length >= SIZE, `capture holds ${upBytes.length} bytes remote → export, expected ≥ ${SIZE}`);
    assert.ok(downBytes.length >= SIZE, `capture holds ${downBytes.length} bytes export → remote, expected ≥ ${SIZE}`);
    const upHit = upBytes.indexOf(PATTERN);
    const downHit = downBytes.indexOf(PATTERN);
    if (s.ciphered) {
      assert.equal(upHit, -1, `plaintext pattern on the wire remote → export at byte ${upHit} with suite ${s.name}`);
      assert.equal(downHit, -1, `plaintext pattern on the wire export → remote at byte ${downHit} with suite ${s.name}`);
    } else {
      assert.ok(upHit >= 0, `suite ${s.name} does not encrypt, so the pattern must be on the wire remote → export (the check must be able to fail)`);
      assert.ok(downHit >= 0, `suite ${s.name} does not encrypt, so the pattern must be on the wire export → remote`);
    }

    // The suite is really applied frame by frame: every IO frame carries the suite's tag.
    for (const [dirName, direction] of [['remote → export', 'up'], ['export → remote', 'down']] as const) {
      const io = ioFrames(records, direction);
      assert.ok(io.frames >= 64, `${dirName}: only ${io.frames} IO frames decoded from the capture`);
      assert.deepEqual([...io.tagLengths], [s.tag], `${dirName}: IO frames' tag lengths ${[...io.tagLengths].join(',')}, expected ${s.tag} for ${s.name}`);
      assert.ok(io.payloadBytes >= SIZE, `${dirName}: IO payloads total ${io.payloadBytes} bytes, expected ≥ ${SIZE}`);
    }
    rmSync(cap, { force: true });
    rmSync(back, { force: true });
    rmSync(disk, { force: true });
  });
}

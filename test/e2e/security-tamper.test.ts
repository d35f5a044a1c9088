// Tamper with sealed frames on the wire: one flipped bit in each header field, in the payload and
// in the tag of an IO frame (remote → export, a write) and of an IO_RESPONSE (export → remote, a
// read's data). Each time: the receiver rejects the frame and closes the connection, the remote
// reconnects and replays the transaction, the NBD client sees only the right bytes, and nothing
// corrupt reaches the disk (checked through dst and in the export's file, whole file at the end).
//
// Byte positions come from a capture of the same connection: the proxy reports how many bytes the
// live connection has carried (the next frame usually starts there: idle pings are pushed out to
// 60 s), and a warm-up write/read on it gives the sealed payload and tag lengths.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { startPair, type Pair } from '../helpers/cluster.js';
import { makeKeyFile } from '../helpers/keys.js';
import { NbdClient } from '../helpers/nbd-client.js';
import { blockContent } from '../helpers/blocks.js';
import { tmpDir } from '../helpers/tmp.js';
import { capturedFrames, corruptOnce, frameAt, liveConnection, proxyStatus, within } from '../helpers/wire-tap.js';
import { Cmd, HEADER_SIZE, Op } from '../../src/protocol/wire.js';

const DISK = 4 * 1024 * 1024;
const BS = 4096;

/** Byte offsets inside a frame: the last (least significant) byte of each header field. */
const HEADER_FIELDS: readonly [string, number][] = [
  ['cmd', 5], ['op', 6], ['flags', 7], ['status', 11], ['length', 15], ['id', 23], ['offset', 31],
  ['ackedBelow', 39], ['payloadLength', 43], ['tagLength', 45],
];

function readFileAt(path: string, offset: number, length: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(length);
    readSync(fd, b, 0, length, offset);
    return b;
  } finally {
    closeSync(fd);
  }
}

interface Shape { payload: number; tag: number }
interface Setup { pair: Pair; nbd: NbdClient; cap: string; image: Buffer }

async function setup(t: TestContext, suiteArgs: (dir: string) => string[]): Promise<Setup> {
  const dir = tmpDir(t, 'dst-tp-');
  const cap = join(dir, 'wire.cap');
  const pair = await startPair(t, {
    size: DISK, capture: cap, crypto: suiteArgs(dir),
    // quiet link (no idle pings), quick detection of a frame left waiting for bytes, quick reconnects
    remotePolicy: ['--ping-interval', '60s', '--resend-timeout', '1500ms', '--reconnect-delay', '100ms', '--max-resends', '20'],
  });
  const nbd = await NbdClient.connect(pair.socket);
  t.after(() => nbd.close());
  return { pair, nbd, cap, image: Buffer.alloc(DISK) };
}

/** Warm-up write + read on the live connection; returns the sealed shapes of a 4 KiB IO and IO_RESPONSE. */
async function shapes(s: Setup): Promise<{ up: Shape; down: Shape }> {
  const data = blockContent(1, 1);
  await s.nbd.write(BS, data);
  data.copy(s.image, BS);
  assert.ok((await s.nbd.read(BS, BS)).equals(data));
  const conn = liveConnection(await proxyStatus(s.pair.proxy!)).id;
  const up = capturedFrames(s.cap, conn, 'up').filter((f) => f.header.cmd === Cmd.IO && f.header.op === Op.WRITE && f.header.length === BS).pop();
  const down = capturedFrames(s.cap, conn, 'down').filter((f) => f.header.cmd === Cmd.IO_RESPONSE && f.header.length === BS && f.header.payloadLength >= BS).pop();
  assert.ok(up, 'the warm-up write is in the capture as an IO frame');
  assert.ok(down, 'the warm-up read is in the capture as an IO_RESPONSE with its data');
  return { up: { payload: up.header.payloadLength, tag: up.header.tagLength }, down: { payload: down.header.payloadLength, tag: down.header.tagLength } };
}

function positions(shape: Shape): [string, number][] {
  const out: [string, number][] = HEADER_FIELDS.map(([n, o]) => [`header ${n}`, o]);
  out.push(['payload first byte', HEADER_SIZE], ['payload middle byte', HEADER_SIZE + (shape.payload >> 1)], ['payload last byte', HEADER_SIZE + shape.payload - 1]);
  if (shape.tag > 0) out.push(['tag first byte', HEADER_SIZE + shape.payload], ['tag last byte', HEADER_SIZE + shape.payload + shape.tag - 1]);
  return out;
}

/**
 * One flip aimed at the next IO (up) or IO_RESPONSE (down) frame on the live connection, for a
 * write or read of block `blockNo`. Returns what the flip hit instead when it missed the frame;
 * else checks rejection, reconnect, replay and the block's content, and returns null.
 */
async function tamperCase(s: Setup, dir: 'up' | 'down', at: number, blockNo: number, label: string): Promise<string | null> {
  const { pair, nbd, image, cap } = s;
  const proxy = pair.proxy!;
  const offset = blockNo * BS;
  const before = await pair.show();
  const st0 = await proxyStatus(proxy);
  const conn = liveConnection(st0);
  const expLog0 = pair.exp.log().length;
  const remLog0 = pair.rem.log().length;
  let data: Buffer;
  let aimedAt: number;
  let hits: number;
  if (dir === 'up') {
    data = blockContent(blockNo, 7);
    aimedAt = conn.bytesUp + at;
    const flip = await corruptOnce(proxy, conn.id, aimedAt, 'up');
    await flip.arm();
    await within(nbd.write(offset, data), 20_000, `${label}: the write`);
    data.copy(image, offset);
    hits = await within(flip.hit, 20_000, `${label}: the flip`);
  } else {
    data = blockContent(blockNo, 9);
    await nbd.write(offset, data);
    data.copy(image, offset);
    // the write moved the down stream: the next frame (our read's reply) starts where it is now
    const c2 = liveConnection(await proxyStatus(proxy));
    assert.equal(c2.id, conn.id, `${label}: still on the same connection before the read`);
    aimedAt = c2.bytesDown + at;
    const flip = await corruptOnce(proxy, conn.id, aimedAt, 'down');
    await flip.arm();
    const got = await within(nbd.read(offset, BS), 20_000, `${label}: the read`);
    assert.ok(got.equals(data), `${label}: the reader got corrupt data`);
    hits = await within(flip.hit, 20_000, `${label}: the flip`);
  }
  if (hits === 0) return frameAt(cap, conn.id, dir, aimedAt);
  const st1 = await proxyStatus(proxy);
  assert.ok(st1.accepted > st0.accepted, `${label}: the tampered connection was closed and a new one made (proxy accepted ${st0.accepted} → ${st1.accepted})`);
  assert.ok(!st1.connectionList.some((c) => c.id === conn.id), `${label}: connection ${conn.id} is closed`);
  const after = await pair.show();
  assert.ok(after.stats.reconnects > before.stats.reconnects, `${label}: remote reconnected (reconnects ${before.stats.reconnects} → ${after.stats.reconnects})`);
  assert.ok(after.stats.replayed > before.stats.replayed, `${label}: the transaction was replayed (replayed ${before.stats.replayed} → ${after.stats.replayed})`);
  assert.equal(after.stats.failed, 0, `${label}: no transaction failed`);
  assert.equal(after.state, 'ready', `${label}: remote ready again`);
  // The rejection is logged by the side that received the frame.
  const rejecter = dir === 'up' ? pair.exp.log().slice(expLog0) : pair.rem.log().slice(remLog0);
  assert.match(rejecter, /authentication failed|tag mismatch|bad frame|EBADMSG/i,
    `${label}: the ${dir === 'up' ? 'export' : 'remote'} log names why it closed the connection`);
  // Through dst and in the export's file, the block holds exactly what was written.
  assert.ok((await nbd.read(offset, BS)).equals(data), `${label}: read back through dst`);
  assert.ok(readFileAt(pair.disk, offset, BS).equals(data), `${label}: the export's file at ${offset}`);
  return null;
}

async function tamperRound(s: Setup, suite: string, fields: 'all' | 'some'): Promise<void> {
  const { pair, nbd, image } = s;
  const shape = await shapes(s);
  assert.ok(shape.up.tag > 0, `${suite}: IO frames carry a tag (got tagLength ${shape.up.tag})`);
  let upCases = positions(shape.up);
  let downCases = positions(shape.down);
  if (fields === 'some') {
    const keep = new Set(['header id', 'header length', 'payload first byte', 'payload middle byte', 'tag last byte']);
    upCases = upCases.filter(([n]) => keep.has(n));
    downCases = downCases.filter(([n]) => keep.has(n));
  }
  let block = 8;
  const cases = [...upCases.map(([n, o]) => ['up', n, o] as const), ...downCases.map(([n, o]) => ['down', n, o] as const)];
  for (const [dir, what, at] of cases) {
    const label = `${suite}: flipped bit in ${dir === 'up' ? 'IO (write)' : 'IO_RESPONSE (read)'} ${what}`;
    // On a slow machine another frame can come first: the remote PINGs after resend-timeout/3
    // (500 ms) of silence while a request is outstanding, and the PONG is ahead of the reply.
    // The flip then misses, the request goes through clean, and the case is tried again on a
    // fresh block. Every case must hit once.
    const misses: string[] = [];
    for (let miss = await tamperCase(s, dir, at, block++, label); miss !== null; miss = await tamperCase(s, dir, at, block++, label)) {
      misses.push(miss);
      if (misses.length >= 3) assert.fail(`${label}: the flip missed its frame ${misses.length} times: ${misses.join('; ')}`);
    }
  }
  // Nothing landed anywhere else (a flipped offset or length would write next to the block).
  await nbd.flush();
  const disk = readFileAt(pair.disk, 0, DISK);
  if (!disk.equals(image)) {
    let first = 0;
    while (first < DISK && disk[first] === image[first]) first++;
    assert.fail(`${suite}: the export's file differs from what was written, first at byte ${first}`);
  }
  assert.ok((await nbd.read(0, DISK)).equals(image), `${suite}: the whole disk read through dst equals what was written`);
}

test('aes-gcm: a flipped bit in every header field, the payload or the tag → rejected, closed, replayed, nothing corrupt lands', async (t) => {
  const s = await setup(t, (dir) => ['--cipher', 'aes-gcm', '--cipher-key-file', makeKeyFile(dir, 'k', 'hex').path]);
  await tamperRound(s, 'aes-gcm', 'all');
});

test('aes-cbc+hmac-sha256: flipped bits in header, IV/ciphertext and tag → rejected and replayed', async (t) => {
  const s = await setup(t, (dir) => ['--cipher', 'aes-cbc', '--cipher-key-file', makeKeyFile(dir, 'k', 'hex').path,
    '--hash', 'sha256', '--hash-key-file', makeKeyFile(dir, 'h', 'base64').path]);
  await tamperRound(s, 'aes-cbc+hmac-sha256', 'some');
});

test('none+hmac-sha512: a flipped bit in cleartext payload or tag → rejected and replayed (authenticated, not encrypted)', async (t) => {
  const s = await setup(t, (dir) => ['--cipher', 'none', '--hash', 'sha512', '--hash-key-file', makeKeyFile(dir, 'h', 'raw').path]);
  await tamperRound(s, 'none+hmac-sha512', 'some');
});

// Replayed sealed frames are rejected (aes-gcm, through the fault proxy's capture + inject):
//  1. a frame captured on the live connection, injected again into it → rejected (its sequence
//     number is spent), connection closed, no duplicate effect (the block keeps its newer content,
//     the export wrote no byte for it);
//  2. a frame from another session (an earlier connection of the node, with the same sequence number
//     the new session expects next) → rejected: other session keys;
//  3. a whole recorded session (HELLO, AUTH, IO) replayed on a new TCP connection → rejected at the
//     handshake (fresh nonces), no write lands.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, readSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { startPair } from '../helpers/cluster.js';
import { makeKeyFile } from '../helpers/keys.js';
import { NbdClient } from '../helpers/nbd-client.js';
import { blockContent } from '../helpers/blocks.js';
import { tmpDir } from '../helpers/tmp.js';
import { sleep, waitFor } from '../helpers/tools.js';
import { capturedFrames, liveConnection, proxyCtl, proxyStatus, waitNewConnection, type IndexedFrame } from '../helpers/wire-tap.js';
import { captureBytes, readCapture } from '../../src/faultproxy/capture.js';
import { Cmd, Op } from '../../src/protocol/wire.js';

const BS = 4096;

function fileBlock(path: string, blockNo: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(BS);
    readSync(fd, b, 0, BS, blockNo * BS);
    return b;
  } finally {
    closeSync(fd);
  }
}

/** Frames after the handshake (HELLO / AUTH) of one direction. */
function sealedAfterHandshake(frames: IndexedFrame[]): IndexedFrame[] {
  let last = -1;
  frames.forEach((f, i) => { if (f.header.cmd === Cmd.HELLO || f.header.cmd === Cmd.AUTH || f.header.cmd === Cmd.HELLO_REPLY) last = i; });
  return frames.slice(last + 1);
}

test('replayed frames (same session, another session, a whole recorded session) are rejected with no effect', async (t) => {
  const dir = tmpDir(t, 'dst-rp-');
  const cap = join(dir, 'wire.cap');
  const key = makeKeyFile(dir, 'k', 'hex');
  const pair = await startPair(t, {
    size: 4 * 1024 * 1024, capture: cap, crypto: ['--cipher', 'aes-gcm', '--cipher-key-file', key.path],
    remotePolicy: ['--ping-interval', '60s', '--reconnect-delay', '100ms'],
  });
  const proxy = pair.proxy!;
  const nbd = await NbdClient.connect(pair.socket);
  t.after(() => nbd.close());
  const c1 = liveConnection(await proxyStatus(proxy)).id;

  // Block 2 v1 is the first frame after the handshake on connection c1 (the link is quiet otherwise).
  await nbd.write(2 * BS, blockContent(2, 1));
  await nbd.write(3 * BS, blockContent(3, 1));
  // More frames on c1 than c2 will carry before step 2 (its read, and on a loaded machine a PING
  // or two), so c1 has a frame at every index step 2 may need.
  for (let b = 8; b < 12; b++) await nbd.write(b * BS, blockContent(b, 1));
  const c1Frames = sealedAfterHandshake(capturedFrames(cap, c1, 'up'));
  const w3 = c1Frames.find((f) => f.header.cmd === Cmd.IO && f.header.op === Op.WRITE && f.header.offset === 3 * BS);
  assert.ok(w3, 'the write of block 3 is in the capture');
  assert.ok(w3.bytes.indexOf(blockContent(3, 1).subarray(32, 96)) < 0, 'the captured write is sealed (its data is not in clear)');
  const first = c1Frames[0]!;
  assert.equal(first.header.cmd, Cmd.IO, 'the first frame after the handshake is our write');
  assert.equal(first.header.offset, 2 * BS);
  // Newer content for both blocks: a replay that were executed would bring v1 back.
  await nbd.write(2 * BS, blockContent(2, 2));
  await nbd.write(3 * BS, blockContent(3, 2));

  // ---- 1. the same frame again, on its own live connection ----
  const replayFile = join(dir, 'w3.bin');
  writeFileSync(replayFile, w3.bytes);
  const exp0 = (await pair.exp.show(pair.exportName)).stats;
  const rem0 = (await pair.show()).stats;
  const log0 = pair.exp.log().length;
  const inj = await proxyCtl(proxy, 'inject', replayFile, 'up', `conn=${c1}`) as unknown as { inject: { bytes: number; connections: number } };
  assert.equal(inj.inject.connections, 1, 'injected into the live connection');
  const c2conn = await waitNewConnection(proxy, c1, 15_000);
  const c2 = c2conn.id;
  await waitFor('connection c1 closed', async () => !(await proxyStatus(proxy)).connectionList.some((c) => c.id === c1), 10_000);
  await pair.rem.waitForState(pair.remoteName, 'ready', 15_000);
  const rem1 = (await pair.show()).stats;
  assert.ok(rem1.reconnects > rem0.reconnects, `remote reconnected after the replay was rejected (reconnects ${rem0.reconnects} → ${rem1.reconnects})`);
  assert.match(pair.exp.log().slice(log0), /authenticat|replay|sequence|tag|bad frame|EBADMSG/i, 'the export log names why it closed the connection');
  assert.equal((await pair.exp.show(pair.exportName)).stats.bytesWritten, exp0.bytesWritten, 'the export wrote nothing for the replayed frame');
  assert.ok((await nbd.read(3 * BS, BS)).equals(blockContent(3, 2)), 'block 3 keeps its newer content (read through dst)');
  assert.ok(fileBlock(pair.disk, 3).equals(blockContent(3, 2)), "block 3 keeps its newer content (export's file)");

  // ---- 2. a frame of the earlier session, with the sequence number the new session expects next ----
  // c2 carried only the read above after its handshake (the link is quiet otherwise): pick the c1
  // frame with the same index as the next c2 frame, so its sequence number is the expected one.
  await sleep(300);
  const c2After = sealedAfterHandshake(capturedFrames(cap, c2, 'up'));
  const foreign = c1Frames[c2After.length];
  assert.ok(foreign, `c1 has a frame at index ${c2After.length}`);
  const foreignFile = join(dir, 'foreign.bin');
  writeFileSync(foreignFile, foreign.bytes);
  const exp1 = (await pair.exp.show(pair.exportName)).stats;
  const log1 = pair.exp.log().length;
  await proxyCtl(proxy, 'inject', foreignFile, 'up', `conn=${c2}`);
  const c3 = (await waitNewConnection(proxy, c2, 15_000)).id;
  await pair.rem.waitForState(pair.remoteName, 'ready', 15_000);
  const rem2 = (await pair.show()).stats;
  assert.ok(rem2.reconnects > rem1.reconnects, `remote reconnected after the foreign frame was rejected (reconnects ${rem1.reconnects} → ${rem2.reconnects})`);
  assert.match(pair.exp.log().slice(log1), /authenticat|replay|sequence|tag|bad frame|EBADMSG/i, 'the export log names why it closed the connection');
  assert.equal((await pair.exp.show(pair.exportName)).stats.bytesWritten, exp1.bytesWritten, 'the export wrote nothing for the foreign frame');
  for (const b of [2, 3]) {
    assert.ok((await nbd.read(b * BS, BS)).equals(blockContent(b, 2)), `block ${b} keeps its newer content (read through dst)`);
    assert.ok(fileBlock(pair.disk, b).equals(blockContent(b, 2)), `block ${b} keeps its newer content (export's file)`);
  }

  // ---- 3. the whole recorded session c1 replayed on a fresh TCP connection straight to the export ----
  const recorded = captureBytes(readCapture(cap), { connection: c1, direction: 'up', injected: false });
  const exp2 = (await pair.exp.show(pair.exportName)).stats;
  const log2 = pair.exp.log().length;
  const got: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    const [host, port] = [pair.listen.slice(0, pair.listen.lastIndexOf(':')), Number(pair.listen.slice(pair.listen.lastIndexOf(':') + 1))];
    const s = connect({ host, port }, () => s.write(recorded));
    const timer = setTimeout(() => { s.destroy(); reject(new Error('the export did not close a replayed session within 12 s')); }, 12_000);
    s.on('data', (d: Buffer) => got.push(d));
    s.on('error', () => {});
    s.on('close', () => { clearTimeout(timer); resolve(); });
  });
  assert.match(pair.exp.log().slice(log2), /authenticat|proof|replay|bad frame|EBADMSG/i, 'the export log names the failed key proof');
  assert.equal((await pair.exp.show(pair.exportName)).stats.bytesWritten, exp2.bytesWritten, 'the export wrote nothing for the replayed session');
  for (const b of [2, 3]) {
    assert.ok(fileBlock(pair.disk, b).equals(blockContent(b, 2)), `block ${b} keeps its newer content after the session replay (export's file)`);
  }
  const c3alive = (await proxyStatus(proxy)).connectionList.some((c) => c.id === c3);
  assert.ok(c3alive, `live connection ${c3} was closed by an unauthenticated replayed HELLO: fencing before AUTH lets anyone who recorded a HELLO reset the session`);
  // The real remote keeps working (a replayed HELLO must not take its session for good).
  await pair.rem.waitForState(pair.remoteName, 'ready', 15_000);
  await nbd.write(4 * BS, blockContent(4, 1));
  assert.ok(fileBlock(pair.disk, 4).equals(blockContent(4, 1)), 'the remote still writes after the session replay');
  assert.equal((await pair.show()).stats.failed, 0);
});

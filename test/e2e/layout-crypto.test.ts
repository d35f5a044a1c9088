// `dst crypto set` on a multi-leg node applies to every leg: with the legs' exports requiring
// aes-gcm, a mirror and a stripe with the suite set reach every leg and carry verified data (read
// back through NBD and from each leg's backing file), while the same layout without it is refused
// by every leg (suite-mismatch), so the check can fail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blockContent, checkBlock } from '../helpers/blocks.js';
import { startEngine } from '../helpers/engine.js';
import { makeKeyFile } from '../helpers/keys.js';
import { readFileAt, startLegs, waitLegStates } from '../helpers/legs.js';
import { NbdClient } from '../helpers/nbd-client.js';
import { tmpDir } from '../helpers/tmp.js';
import type { NodeShow } from '../../src/engine/types.js';

const M = 1024 * 1024;
const CHUNK = 64 * 1024;

test('crypto set applies to every leg of a mirror and a stripe; without it every leg refuses', async (t) => {
  const key = makeKeyFile(tmpDir(t, 'dst-lk-'), 'cipher.key', 'hex');
  const crypto = ['--cipher', 'aes-gcm', '--cipher-key-file', key.path];
  const { legs } = await startLegs(t, [12 * M, 12 * M, 12 * M, 12 * M], { crypto });
  const rem = await startEngine(t);
  const layouts = [
    { name: 'mir', args: ['--layout', 'mirror'], legs: legs.slice(0, 2), want: ['in-sync', 'in-sync'] },
    { name: 'str', args: ['--layout', 'stripe', '--chunk', '64K'], legs: legs.slice(2), want: ['in-sync', 'in-sync'] },
  ];
  for (const l of layouts) {
    await rem.dstJson(['node', 'add', l.name, ...l.args, ...l.legs.flatMap((g) => ['--remote', g.listen])]);
    await rem.dstJson(['crypto', 'set', l.name, ...crypto]);
    const show = await rem.dstJson<NodeShow>(['node', 'start', l.name, '--wait', '10s']);
    assert.equal(show.state, 'ready', `${l.name}: ${JSON.stringify(show)}`);
    assert.equal(show.crypto.suite, 'aes-gcm');
    if (l.name === 'mir') await waitLegStates(rem, l.want, 30_000, l.name);
    const nbd = await NbdClient.connect(show.nbd!.socket);
    // one block in each of the first four chunks: on a stripe they alternate legs
    for (let b = 0; b < 4; b++) await nbd.write(b * CHUNK, blockContent(b, 7));
    await nbd.flush();
    for (let b = 0; b < 4; b++) assert.equal(checkBlock(await nbd.read(b * CHUNK, 4096), b).version, 7);
    nbd.close();
    for (let b = 0; b < 4; b++) {
      // mirror: every block on both legs; stripe: chunk b on leg b % 2 at (b >> 1) × chunk
      const places = l.name === 'mir'
        ? l.legs.map((g) => ({ file: g.file, at: b * CHUNK }))
        : [{ file: l.legs[b % 2]!.file, at: (b >> 1) * CHUNK }];
      for (const p of places) assert.equal(checkBlock(readFileAt(p.file, p.at, 4096), b).version, 7, `${l.name} block ${b} in ${p.file}`);
    }
    await rem.dstJson(['node', 'stop', l.name]);
  }

  // the same legs without the suite: every leg is refused
  await rem.dstJson(['node', 'add', 'plain', '--layout', 'stripe', ...legs.slice(2).flatMap((g) => ['--remote', g.listen])]);
  const refused = await rem.dst(['node', 'start', 'plain', '--wait', '3s']);
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(refused.stderr, /reason leg/);
  await rem.waitForLog(/suite mismatch[^\n]*leg=0/);
  await rem.waitForLog(/suite mismatch[^\n]*leg=1/);
  const plain = await rem.dstJson<NodeShow>(['node', 'show', 'plain']);
  assert.notEqual(plain.state, 'ready');
  assert.deepEqual(plain.legs!.map((g) => g.state), ['connecting', 'connecting']);
});

// Multi-leg fixtures: export engines whose exports are the legs (sparse files read back directly),
// and a remote engine serving one layout device over them.
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, ftruncateSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { startEngine, type Engine, type StartEngineOptions } from './engine.js';
import { NbdClient } from './nbd-client.js';
import type { NodeShow } from '../../src/engine/types.js';

export interface LegDisk { file: string; listen: string }

/** One export engine with one export per leg (sparse files of the given sizes). */
export async function startLegs(t: TestContext, sizes: number[], opts: StartEngineOptions = {}): Promise<{ exp: Engine; legs: LegDisk[] }> {
  const exp = await startEngine(t, opts);
  const legs: LegDisk[] = [];
  for (const [i, size] of sizes.entries()) {
    const file = join(exp.dir, `leg${i}.img`);
    const fd = openSync(file, 'w');
    ftruncateSync(fd, size);
    closeSync(fd);
    await exp.dstJson(['node', 'add', `leg${i}`, '--disk', file, '--listen', '127.0.0.1:0']);
    await exp.dstJson(['security', 'add', `leg${i}`, '--addr', '127.0.0.1', '--perm', 'rw']);
    const started = await exp.dstJson<NodeShow>(['node', 'start', `leg${i}`]);
    legs.push({ file, listen: `${started.listen!}/leg${i}` });
  }
  return { exp, legs };
}

export function readFileAt(file: string, offset: number, length: number): Buffer {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(length);
    readSync(fd, buf, 0, length, offset);
    return buf;
  } finally {
    closeSync(fd);
  }
}

/** A remote engine with node `vol` over the legs (`args`: --layout …; `policy`: node set options), started and ready. */
export async function layoutDevice(t: TestContext, legs: LegDisk[], args: string[], policy: string[] = []): Promise<{ show: NodeShow; nbd: NbdClient; rem: Engine }> {
  const rem = await startEngine(t);
  await rem.dstJson(['node', 'add', 'vol', ...args, ...legs.flatMap((l) => ['--remote', l.listen])]);
  if (policy.length) await rem.dstJson(['node', 'set', 'vol', ...policy]);
  const show = await rem.dstJson<NodeShow>(['node', 'start', 'vol', '--wait', '10s']);
  assert.equal(show.state, 'ready');
  const nbd = await NbdClient.connect(show.nbd!.socket);
  t.after(() => nbd.close());
  return { show, nbd, rem };
}


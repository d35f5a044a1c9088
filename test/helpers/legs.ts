// Multi-leg fixtures: export engines whose exports are the legs (sparse files read back directly),
// and a remote engine serving one layout device over them.
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, ftruncateSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { startEngine, type Engine, type StartEngineOptions } from './engine.js';
import { NbdClient } from './nbd-client.js';
import { blockContent, checkBlock } from './blocks.js';
import type { NodeShow } from '../../src/engine/types.js';

export interface LegDisk { file: string; listen: string }

/** One export engine with one export per leg (sparse files of the given sizes; `crypto`: `crypto set` options for every leg). */
export async function startLegs(t: TestContext, sizes: number[], opts: StartEngineOptions & { crypto?: string[] } = {}): Promise<{ exp: Engine; legs: LegDisk[] }> {
  const exp = await startEngine(t, opts);
  const legs: LegDisk[] = [];
  for (const [i, size] of sizes.entries()) {
    const file = join(exp.dir, `leg${i}.img`);
    const fd = openSync(file, 'w');
    ftruncateSync(fd, size);
    closeSync(fd);
    await exp.dstJson(['node', 'add', `leg${i}`, '--disk', file, '--listen', '127.0.0.1:0']);
    await exp.dstJson(['security', 'add', `leg${i}`, '--addr', '127.0.0.1', '--perm', 'rw']);
    if (opts.crypto) await exp.dstJson(['crypto', 'set', `leg${i}`, ...opts.crypto]);
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
export async function layoutDevice(t: TestContext, legs: LegDisk[], args: string[], policy: string[] = [],
  engineOpts: StartEngineOptions = {}): Promise<{ show: NodeShow; nbd: NbdClient; rem: Engine }> {
  const rem = await startEngine(t, engineOpts);
  await rem.dstJson(['node', 'add', 'vol', ...args, ...legs.flatMap((l) => ['--remote', l.listen])]);
  if (policy.length) await rem.dstJson(['node', 'set', 'vol', ...policy]);
  const show = await rem.dstJson<NodeShow>(['node', 'start', 'vol', '--wait', '10s']);
  assert.equal(show.state, 'ready');
  const nbd = await NbdClient.connect(show.nbd!.socket);
  t.after(() => nbd.close());
  return { show, nbd, rem };
}


/** One export engine per leg (each with its own autosaved config, so a killed one restarts on its port). */
export async function startLegEngines(t: TestContext, sizes: number[]): Promise<{ engines: Engine[]; legs: LegDisk[] }> {
  const engines: Engine[] = [];
  const legs: LegDisk[] = [];
  for (const size of sizes) {
    const { exp, legs: [leg] } = await startLegs(t, [size], { ownConfig: true });
    engines.push(exp);
    legs.push(leg!);
  }
  return { engines, legs };
}

/** Poll `node show NAME` until the legs are in these states. */
export async function waitLegStates(rem: Engine, want: string[], timeoutMs = 30_000, name = 'vol'): Promise<NodeShow> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const show = await rem.dstJson<NodeShow>(['node', 'show', name]);
    const states = show.legs!.map((l) => l.state);
    if (states.join() === want.join()) return show;
    if (Date.now() > deadline) throw new Error(`legs are ${states.join(', ')}, not ${want.join(', ')} after ${timeoutMs} ms: ${JSON.stringify(show.legs)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** True when the two files hold the same bytes over [0, length). */
export function sameBytes(a: string, b: string, length: number): boolean {
  const step = 4 * 1024 * 1024;
  for (let at = 0; at < length; at += step) {
    const n = Math.min(step, length - at);
    if (!readFileAt(a, at, n).equals(readFileAt(b, at, n))) return false;
  }
  return true;
}

/** Writers keeping every block's newest acknowledged version, for read-back checks. */
export interface WriteLoad {
  /** newest acknowledged version per block */
  readonly versions: Map<number, number>;
  /** writes issued so far */
  issued(): number;
  /** stop, wait for the writers; the number of writes that failed */
  stop(): Promise<number>;
}

/** `concurrency` writers over blocks [0, blocks) of 4 KiB, each write a new version (blocks.ts content). */
export function startWriteLoad(nbd: NbdClient, blocks: number, concurrency = 8): WriteLoad {
  const versions = new Map<number, number>();
  let errors = 0;
  let stopped = false;
  let seq = 0;
  const writer = async (): Promise<void> => {
    while (!stopped) {
      const version = ++seq;
      const block = (version * 7919) % blocks;
      try {
        await nbd.write(block * 4096, blockContent(block, version));
        if ((versions.get(block) ?? 0) < version) versions.set(block, version);
      } catch {
        // a failed write ends its writer: on a dead connection every write fails at once, and
        // looping on those would never yield to the event loop
        errors++;
        return;
      }
    }
  };
  const running = Array.from({ length: concurrency }, writer);
  return {
    versions,
    issued: () => seq,
    async stop() {
      stopped = true;
      await Promise.all(running);
      return errors;
    },
  };
}

/**
 * Every block written reads back its newest acknowledged version (`atLeast`: or a newer one, for
 * writes cut off unacknowledged, which may or may not have landed).
 */
export async function checkVersions(nbd: NbdClient, versions: Map<number, number>, atLeast = false): Promise<void> {
  for (const [block, version] of versions) {
    const got = checkBlock(await nbd.read(block * 4096, 4096), block).version;
    if (atLeast) assert.ok(got >= version, `block ${block}: version ${got}, acknowledged ${version}`);
    else assert.equal(got, version, `block ${block}`);
  }
}

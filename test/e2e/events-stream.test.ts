// `dst events --json` prints `subscribed` first, then lifecycle events as they happen.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { startEngine } from '../helpers/engine.js';
import type { EventRecord } from '../../src/engine/types.js';

test('events stream: subscribed first, then node-added, node-started, state-changed', async (t) => {
  const eng = await startEngine(t);
  const child = spawn(process.execPath, ['bin/dst', '--socket', eng.socket, 'events', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => child.kill());
  const events: EventRecord[] = [];
  const waiters: (() => void)[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    events.push(JSON.parse(line));
    waiters.splice(0).forEach((w) => w());
  });
  const waitFor = async (pred: (e: EventRecord[]) => boolean, ms = 10_000): Promise<void> => {
    const end = Date.now() + ms;
    while (!pred(events)) {
      if (Date.now() > end) throw new Error(`events so far: ${JSON.stringify(events)}`);
      await new Promise<void>((r) => { waiters.push(r); setTimeout(r, 200); });
    }
  };
  await waitFor((e) => e.length > 0);
  assert.equal(events[0]!.event, 'subscribed');
  const disk = join(eng.dir, 'disk.img');
  writeFileSync(disk, Buffer.alloc(1024 * 1024));
  await eng.dstJson(['node', 'add', 'vol', '--disk', disk, '--listen', '127.0.0.1:0']);
  await eng.dstJson(['security', 'add', 'vol', '--addr', '127.0.0.1', '--perm', 'rw']);
  await eng.dstJson(['node', 'start', 'vol']);
  await waitFor((e) => e.some((x) => x.event === 'state-changed' && x.to === 'listening'));
  const names = events.map((e) => e.event);
  assert.ok(names.indexOf('node-added') > 0);
  assert.ok(names.includes('node-started'));
  const seqs = events.map((e) => e.seq);
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), 'seq increases');
  for (const e of events.slice(1)) {
    assert.equal(e.node, 'vol');
    assert.equal(typeof e.ts, 'number');
  }
});

// A mirror's copy between legs (resync, verify repair) reads the source once and writes it with FUA,
// except what reads as zeroes (whole 64 KiB granules): that is zeroed on the target with a punched
// hole (WRITE_ZEROES without NO_HOLE), so a resynced leg keeps the source's holes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/util/clock.js';
import { DEFAULT_POLICY } from '../../src/engine/policy.js';
import { copyRange, zeroRuns, type LegIoHost } from '../../src/engine/layout/leg-io.js';
import type { LegPort } from '../../src/engine/layout/leg-port.js';
import type { LegRequest, TxnDone } from '../../src/engine/remote/target.js';
import { blocksContent } from '../helpers/blocks.js';

const K = 1024;

test('copyRange writes the data it read and punches what reads as zeroes', async () => {
  const at = 1024 * K;
  // the source's [at, +320K): data 64K, zeroes 128K, data 64K, then 4K of data inside a granule of zeroes
  const source = Buffer.alloc(320 * K);
  blocksContent(at / 4096, 1, 16).copy(source, 0);
  blocksContent(at / 4096 + 48, 1, 16).copy(source, 192 * K);
  blocksContent(at / 4096 + 64, 1, 1).copy(source, 256 * K + 8 * K);
  const seen: string[][] = [[], []];
  const written = Buffer.alloc(320 * K, 0xee);
  const fake = (i: number): LegPort => ({
    send(req: LegRequest, done: TxnDone): void {
      seen[i]!.push(`${req.op} ${req.offset - at}+${req.length}${req.fua ? ' fua' : ''}${req.zeroFlags !== undefined ? ` zf${req.zeroFlags}` : ''}`);
      queueMicrotask(() => {
        if (req.op === 'read') return done(null, Buffer.from(source.subarray(req.offset - at, req.offset - at + req.length)));
        if (req.op === 'write') req.payload!.copy(written, req.offset - at);
        if (req.op === 'write-zeroes') written.fill(0, req.offset - at, req.offset - at + req.length);
        done(null, null);
      });
    },
  }) as unknown as LegPort;
  const h: LegIoHost = { ports: [fake(0), fake(1)], clock: new FakeClock(), policy: () => DEFAULT_POLICY, legTimedOut: () => assert.fail('no leg times out') };

  assert.equal(await copyRange(h, 0, 1, at, 320 * K), true);
  assert.deepEqual(seen[0], [`read 0+${320 * K}`], 'the source is read once');
  assert.deepEqual(seen[1], [
    `write 0+${64 * K} fua`,
    `write-zeroes ${64 * K}+${128 * K} fua zf0`,
    `write ${192 * K}+${128 * K} fua`,
  ], 'data written, the zero granules punched (no NO_HOLE), a granule with any data written whole');
  assert.ok(written.equals(source), 'the target reads what the source does');
});

test('zeroRuns: granules of a kind joined, a short tail judged on its own', () => {
  const b = Buffer.alloc(200 * K);
  b[130 * K] = 1;
  assert.deepEqual(zeroRuns(b), [{ start: 0, length: 128 * K, zero: true }, { start: 128 * K, length: 64 * K, zero: false }, { start: 192 * K, length: 8 * K, zero: true }]);
  assert.deepEqual(zeroRuns(Buffer.alloc(0)), []);
});

test('copyRange: a failed read writes nothing; a failed write is reported', async () => {
  const sends: string[] = [];
  const port = (fail: 'read' | 'write' | null): LegPort => ({
    send(req: LegRequest, done: TxnDone): void {
      sends.push(req.op);
      queueMicrotask(() => (req.op === fail ? done('EIO', null) : done(null, req.op === 'read' ? Buffer.from(blocksContent(0, 1, 1)) : null)));
    },
  }) as unknown as LegPort;
  const host = (a: LegPort, b: LegPort): LegIoHost => ({ ports: [a, b], clock: new FakeClock(), policy: () => DEFAULT_POLICY, legTimedOut: () => {} });
  assert.equal(await copyRange(host(port('read'), port(null)), 0, 1, 0, 4096), false);
  assert.deepEqual(sends, ['read'], 'nothing sent to the target after a failed read');
  assert.equal(await copyRange(host(port(null), port('write')), 0, 1, 0, 4096), false);
});

// A mirror's copy between legs (resync, verify repair) goes by the source's extents: data is read
// and written with FUA, a hole becomes WRITE_ZEROES without NO_HOLE (punched on the target), an
// allocated range of zeroes WRITE_ZEROES with NO_HOLE; nothing is read where the source reads
// zeroes, and a block-status answer covering only a prefix is asked again from where it ends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/util/clock.js';
import { DEFAULT_POLICY } from '../../src/engine/policy.js';
import { copyRange, type LegIoHost } from '../../src/engine/layout/leg-io.js';
import type { LegPort } from '../../src/engine/layout/leg-port.js';
import type { LegRequest, TxnDone } from '../../src/engine/remote/target.js';
import { ExtentFlag, ZeroFlag, encodeExtents } from '../../src/protocol/thin.js';
import { blocksContent } from '../helpers/blocks.js';

const K = 1024;

test('copyRange copies data, punches holes and zeroes allocated zeroes in place, by the source\'s extents', async () => {
  const at = 1024 * K;
  // the source's map of [at, +256K): data 64K, hole 64K | zeroes (allocated) 64K, data 64K, in two answers
  const answers = [
    encodeExtents([{ length: 64 * K, flags: 0 }, { length: 64 * K, flags: ExtentFlag.HOLE | ExtentFlag.ZERO }]),
    encodeExtents([{ length: 64 * K, flags: ExtentFlag.ZERO }, { length: 64 * K, flags: 0 }]),
  ];
  const seen: string[][] = [[], []];
  const fake = (i: number): LegPort => ({
    send(req: LegRequest, done: TxnDone): void {
      seen[i]!.push(`${req.op} ${req.offset - at}+${req.length}${req.fua ? ' fua' : ''}${req.zeroFlags ? ` zf${req.zeroFlags}` : ''}`);
      queueMicrotask(() => {
        if (req.op === 'block-status') done(null, answers.shift()!);
        else if (req.op === 'read') done(null, blocksContent(req.offset / 4096, 1, req.length / 4096));
        else done(null, null);
      });
    },
  }) as unknown as LegPort;
  const h: LegIoHost = { ports: [fake(0), fake(1)], clock: new FakeClock(), policy: () => DEFAULT_POLICY, legTimedOut: () => assert.fail('no leg times out') };

  assert.equal(await copyRange(h, 0, 1, at, 256 * K), true);
  assert.deepEqual(seen[0], [`block-status 0+${256 * K}`, `read 0+${64 * K}`, `block-status ${128 * K}+${128 * K}`, `read ${192 * K}+${64 * K}`],
    'the source is asked for its extents (again from where an answer ends) and read only where it holds data');
  assert.deepEqual(seen[1], [
    `write 0+${64 * K} fua`,
    `write-zeroes ${64 * K}+${64 * K} fua`,
    `write-zeroes ${128 * K}+${64 * K} fua zf${ZeroFlag.NO_HOLE}`,
    `write ${192 * K}+${64 * K} fua`,
  ], 'the target gets the data, a hole for the hole, zeroes in place for the allocated zeroes');
});

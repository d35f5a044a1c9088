// The deterministic block content used by the fault and e2e tests must itself be trustworthy:
// it round-trips, and it notices corruption, misdirected blocks and versions going backwards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockTracker, blockContent, blocksContent, checkBlock, checkBlocks, writeBlock } from '../helpers/blocks.js';

test('blocks: round trip for many block numbers, versions and sizes', () => {
  for (const size of [32, 512, 4096, 65536]) {
    for (const blockNo of [0, 1, 7, 4095, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 3]) {
      for (const version of [1, 2, 1000, 0xffff_ffff]) {
        const b = blockContent(blockNo, version, size);
        assert.equal(b.length, size);
        assert.deepEqual(checkBlock(b, blockNo), { version });
      }
    }
  }
});

test('blocks: deterministic, and distinct per block and per version', () => {
  assert.ok(blockContent(5, 3).equals(blockContent(5, 3)));
  assert.ok(!blockContent(5, 3).equals(blockContent(5, 4)));
  assert.ok(!blockContent(5, 3).equals(blockContent(6, 3)));
  // the fill differs too, not only the header
  assert.ok(!blockContent(5, 3).subarray(32).equals(blockContent(5, 4).subarray(32)));
  assert.ok(!blockContent(5, 3).subarray(32).equals(blockContent(6, 3).subarray(32)));
});

test('blocks: an all-zero block is version 0 unless forbidden', () => {
  const z = Buffer.alloc(4096);
  assert.deepEqual(checkBlock(z, 9), { version: 0 });
  assert.ok(blockContent(9, 0).equals(z));
  assert.throws(() => checkBlock(z, 9, { allowZero: false }), /block 9: all 4096 bytes are zero/);
});

test('blocks: a flipped bit anywhere is detected and located', () => {
  const good = blockContent(42, 7);
  for (const off of [0, 8, 15, 16, 20, 24, 28, 31, 32, 1000, 4095]) {
    const bad = Buffer.from(good);
    bad[off]! ^= 0x10;
    assert.throws(() => checkBlock(bad, 42), (e: Error) => {
      assert.match(e.message, /^block 42\b/);
      if (off >= 32) assert.match(e.message, new RegExp(`first at offset ${off}\\b`));
      return true;
    }, `bit flip at offset ${off} not detected`);
  }
});

test('blocks: wrong block detected, naming both', () => {
  const b = blockContent(100, 3);
  assert.throws(() => checkBlock(b, 101), /block 101: holds block 100 \(version 3\) instead/);
});

test('blocks: garbage and wrong sizes are detected', () => {
  const junk = Buffer.alloc(4096, 0xab);
  assert.throws(() => checkBlock(junk, 1), /block 1: bad magic/);
  const b = blockContent(3, 1, 4096);
  assert.throws(() => checkBlock(b.subarray(0, 512), 3), /block 3: header says block size 4096, read 512 bytes/);
  // a block shifted by 512 bytes (misaligned read) is not accepted
  const two = blocksContent(10, 1, 2);
  assert.throws(() => checkBlock(two.subarray(512, 4096 + 512), 10), /block 10/);
});

test('blocks: multi-block helpers', () => {
  const buf = blocksContent(20, [1, 5, 0, 2]);
  assert.deepEqual(checkBlocks(buf, 20), [1, 5, 0, 2]);
  const w = Buffer.alloc(3 * 512);
  writeBlock(w, 512, 8, 9, 512);
  assert.deepEqual(checkBlocks(w, 7, 512), [0, 9, 0]);
  assert.throws(() => checkBlocks(buf, 21), /block 21: holds block 20/);
});

test('blocks: tracker accepts progress and refuses a version going backwards', () => {
  const t = new BlockTracker(4096);
  const v1 = t.nextContent(4);
  assert.equal(v1.version, 1);
  assert.equal(t.check(4, Buffer.alloc(4096)), 0); // nothing acknowledged yet
  t.ack(4, 1);
  assert.throws(() => t.check(4, Buffer.alloc(4096)), /block 4: read version 0, older than acknowledged version 1/);
  assert.equal(t.check(4, v1.data), 1);
  const v2 = t.nextContent(4);
  // in flight: either version may be read...
  assert.equal(t.check(4, v2.data), 2);
  // ...but once 2 was read, 1 is a revert even before 2 is acknowledged
  assert.throws(() => t.check(4, v1.data), /version 1 after version 2 was read: version went backwards/);
  assert.throws(() => t.check(4, blockContent(4, 3)), /newer than any issued \(2\)/);
  assert.throws(() => t.ack(4, 3), /acknowledged but never issued/);
  t.ack(4, 2);
  assert.deepEqual(t.checkRange(4, Buffer.concat([v2.data, Buffer.alloc(4096)])), [2, 0]);
});

// The export's dumb backend (positioned I/O, FUA fd, merged flushes, bounded zeroing) and filters.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, truncate, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeClock } from '../../src/util/clock.js';
import { silentLogger } from '../../src/util/log.js';
import { FileBackend, devMajorMinor, ZERO_CHUNK, INLINE_MAX } from '../../src/engine/export/backend.js';
import { allocPayload, pooledBytes, POOL_MIN } from '../../src/engine/io/payload-pool.js';
import { existsSync } from 'node:fs';
import { HoldWriteFilter, ErrorFilter, parseHoldSpec, testSwitchesFromEnv } from '../../src/engine/export/filters.js';

let dir = '';
before(async () => { dir = await mkdtemp(join(tmpdir(), 'dst-backend-')); });
after(async () => { await rm(dir, { recursive: true, force: true }); });

async function disk(name: string, size: number): Promise<string> {
  const p = join(dir, name);
  await writeFile(p, '');
  await truncate(p, size);
  return p;
}

test('backend: size from stat; write/read round trip; FUA write lands', async () => {
  const p = await disk('a.img', 3 * ZERO_CHUNK);
  const b = await FileBackend.open(p, false);
  try {
    assert.deepEqual(b.info, { size: 3 * ZERO_CHUNK, blockDevice: false });
    const data = Buffer.alloc(10000, 7);
    await b.write(123, data, false);
    assert.deepEqual(await b.read(123, 10000), data);
    await b.write(0, Buffer.from('fua'), true);
    assert.equal((await readFile(p)).subarray(0, 3).toString(), 'fua');
  } finally {
    await b.close();
  }
});

test('backend: WRITE_ZEROES in bounded chunks over a range larger than one chunk', async () => {
  const p = await disk('z.img', 3 * ZERO_CHUNK);
  const b = await FileBackend.open(p, false, { fileOps: null }); // zeroes written, not a hole punched
  try {
    await b.write(0, Buffer.alloc(3 * ZERO_CHUNK, 0xff), false);
    await b.writeZeroes(10, 2 * ZERO_CHUNK + 5, false, 0);
    const all = await readFile(p);
    assert.equal(all[9], 0xff);
    assert.equal(all.subarray(10, 10 + 2 * ZERO_CHUNK + 5).every((x) => x === 0), true);
    assert.equal(all[10 + 2 * ZERO_CHUNK + 5], 0xff);
  } finally {
    await b.close();
  }
});

test('backend: a read past the end of the file is EIO, not silent zeros', async () => {
  const p = await disk('s.img', 4096);
  const b = await FileBackend.open(p, false);
  try {
    await assert.rejects(b.read(2048, 4096), (err: NodeJS.ErrnoException) => err.code === 'EIO');
  } finally {
    await b.close();
  }
});

test('backend: concurrent flushes merge (one running + one shared next)', async () => {
  const p = await disk('f.img', 4096);
  const b = await FileBackend.open(p, false);
  try {
    await Promise.all([b.flush(), b.flush(), b.flush(), b.flush(), b.flush()]);
    assert.equal(b.syncCount, 2);
    await b.flush();
    assert.equal(b.syncCount, 3);
  } finally {
    await b.close();
  }
});

test('backend: read-only open refuses writes; close waits for calls; closed backend refuses', async () => {
  const p = await disk('r.img', 4096);
  const ro = await FileBackend.open(p, true);
  await assert.rejects(ro.write(0, Buffer.alloc(1), true), (err: NodeJS.ErrnoException) => err.code === 'EROFS');
  const pending = ro.read(0, 4096);
  await ro.close();
  assert.equal((await pending).length, 4096);
  await assert.rejects(ro.read(0, 1), (err: NodeJS.ErrnoException) => err.code === 'ESHUTDOWN');
  await assert.rejects(FileBackend.open(join(dir, 'nope.img'), false), (err: NodeJS.ErrnoException) => err.code === 'ENOENT');
  await assert.rejects(FileBackend.open(dir, true), /neither a regular file nor a block device/);
});

test('backend: dev_t decoding', () => {
  assert.deepEqual(devMajorMinor(BigInt((8 << 8) | 1)), { major: 8, minor: 1 });
  // major 259, minor 65536 (large numbers use the high bits)
  const rdev = (BigInt(259 & 0xfff) << 8n) | (BigInt(259 & ~0xfff) << 32n) | BigInt(65536 & 0xff) | (BigInt(65536 & ~0xff) << 12n);
  assert.deepEqual(devMajorMinor(rdev), { major: 259, minor: 65536 });
});

test('filters: the hold filter holds only the first write at its offset; close cancels a hold', async () => {
  const p = await disk('h.img', 8192);
  const clock = new FakeClock();
  const hold = new HoldWriteFilter(await FileBackend.open(p, false), 4096, 500, clock, silentLogger);
  let landed = false;
  const held = hold.write(4096, Buffer.alloc(10, 1), false).then(() => { landed = true; });
  await hold.write(0, Buffer.alloc(10, 2), false); // other offsets pass
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(landed, false);
  clock.advance(500);
  await held;
  assert.equal(hold.executed, 1);
  await hold.write(4096, Buffer.alloc(10, 3), false); // the second one is not held
  assert.equal(hold.executed, 1);

  const hold2 = new HoldWriteFilter(await FileBackend.open(p, false), 0, 500, clock, silentLogger);
  const cancelled = assert.rejects(hold2.write(0, Buffer.alloc(1), false), (err: NodeJS.ErrnoException) => err.code === 'ESHUTDOWN');
  await hold2.close();
  await cancelled;
  assert.equal(hold2.executed, 0);
  await hold.close();
});

test('filters: error filter fails the chosen ops, a chosen number of times', async () => {
  const p = await disk('e.img', 4096);
  const f = new ErrorFilter(await FileBackend.open(p, false), 'ENOSPC', ['write'], 2);
  await assert.rejects(f.write(0, Buffer.alloc(1), false), (err: NodeJS.ErrnoException) => err.code === 'ENOSPC');
  assert.equal((await f.read(0, 1)).length, 1);
  await assert.rejects(f.write(0, Buffer.alloc(1), false));
  await f.write(0, Buffer.alloc(1), false);
  assert.equal(f.failed, 2);
  await f.close();
});

test('filters: test switches from the environment', () => {
  assert.deepEqual(testSwitchesFromEnv({}), { noFencing: false, holdWrite: null });
  assert.deepEqual(testSwitchesFromEnv({ DST_TEST_NO_FENCING: '1', DST_TEST_HOLD_WRITE: '4096:250' }),
    { noFencing: true, holdWrite: { offset: 4096, ms: 250 } });
  assert.throws(() => parseHoldSpec('x:1'), /DST_TEST_HOLD_WRITE/);
});

test('backend: a disk in memory (tmpfs) runs calls on the event loop; any other disk uses the pool; same results', async () => {
  const shm = existsSync('/dev/shm') ? await mkdtemp('/dev/shm/dst-backend-') : null;
  try {
    const cases: [string, FileBackend][] = [];
    const onTmp = await disk('i.img', 4 * INLINE_MAX);
    cases.push(['forced pool', await FileBackend.open(onTmp, false, { inline: false })]);
    cases.push(['forced inline', await FileBackend.open(onTmp, false, { inline: true })]);
    if (shm) {
      const p = join(shm, 'm.img');
      await writeFile(p, '');
      await truncate(p, 4 * INLINE_MAX);
      const b = await FileBackend.open(p, false);
      assert.equal(b.inline, true, 'a tmpfs file is detected as in memory');
      cases.push(['tmpfs', b]);
    }
    for (const [name, b] of cases) {
      try {
        const small = Buffer.alloc(4096, 3);
        await b.write(8192, small, false);
        assert.deepEqual(await b.read(8192, 4096), small, name);
        const big = Buffer.alloc(INLINE_MAX + 4096, 5); // above INLINE_MAX: the pool even when inline
        await b.write(0, big, true);
        assert.deepEqual(await b.read(0, big.length), big, name);
        await b.writeZeroes(100, 5000, false, 0);
        assert.equal((await b.read(100, 5000)).every((x) => x === 0), true, name);
        await assert.rejects(b.read(4 * INLINE_MAX - 10, 20), (err: NodeJS.ErrnoException) => err.code === 'EIO', name);
        await b.flush();
        // several small reads cut from one slab do not overlap
        const reads = await Promise.all([0, 1, 2, 3].map((i) => b.read(8192 + i * 1000, 1000)));
        reads.forEach((r, i) => { r.fill(i); });
        reads.forEach((r, i) => assert.equal(r.every((x) => x === i), true, name));
      } finally {
        await b.close();
      }
      await assert.rejects(b.read(0, 1), (err: NodeJS.ErrnoException) => err.code === 'ESHUTDOWN', name);
    }
  } finally {
    if (shm) await rm(shm, { recursive: true, force: true });
  }
});

test('backend: an inline read-only disk refuses writes with EROFS (a rejection, not a throw)', async () => {
  const p = await disk('ro.img', 4096);
  const b = await FileBackend.open(p, true, { inline: true });
  try {
    await assert.rejects(b.write(0, Buffer.alloc(1), false), (err: NodeJS.ErrnoException) => err.code === 'EROFS');
    await assert.rejects(b.writeZeroes(0, 1, false, 0), (err: NodeJS.ErrnoException) => err.code === 'EROFS');
  } finally {
    await b.close();
  }
});

test('backend: a pooled WRITE payload goes back to the payload pool once written', async () => {
  const p = await disk('pool.img', 4 * POOL_MIN);
  for (const inline of [true, false]) {
    const b = await FileBackend.open(p, false, { inline });
    try {
      const data = allocPayload(2 * POOL_MIN);
      data.fill(inline ? 1 : 2);
      const before = pooledBytes();
      await b.write(0, data, false);
      assert.equal(pooledBytes(), before + data.buffer.byteLength, `released (inline ${inline})`);
      assert.equal((await b.read(0, 2 * POOL_MIN)).every((x) => x === (inline ? 1 : 2)), true);
      assert.equal((await readFile(p))[0], inline ? 1 : 2);
    } finally {
      await b.close();
    }
  }
});

// IO on an export node: data written is read back (FUA, flush, write-zeroes, trim), within the
// configured size, and the stats count it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { Flag, Op } from '../../src/protocol/wire.js';
import { fixture, connected, E, pattern } from '../helpers/export-fixture.js';

test('export: the configured size limits the export', async () => {
  const f = await fixture({ size: 65536 });
  try {
    const { c, reply } = await connected(f);
    assert.equal(reply.size, 65536);
    assert.equal((await c.io(Op.READ, 65536 - 512, 1024)).status, E('EINVAL'));
    assert.equal((await c.io(Op.WRITE, 65536, 512, { data: pattern(1, 512) })).status, E('ENOSPC'));
    c.close();
  } finally {
    await f.stop();
  }
});

test('export: write/read back, FUA, flush, write-zeroes, trim; stats count them', async () => {
  const f = await fixture();
  try {
    const { c } = await connected(f);
    const data = randomBytes(8192);
    assert.equal((await c.io(Op.WRITE, 4096, 8192, { data })).status, 0);
    const r = await c.io(Op.READ, 4096, 8192);
    assert.equal(r.status, 0);
    assert.equal(r.length, 8192);
    assert.deepEqual(r.payload, data);

    const fua = randomBytes(4096);
    assert.equal((await c.io(Op.WRITE, 0, 4096, { data: fua, flags: Flag.FUA })).status, 0);
    assert.equal((await c.io(Op.FLUSH, 0, 0)).status, 0);
    const disk = await readFile(f.disk);
    assert.deepEqual(disk.subarray(0, 4096), fua, 'FUA write is on the disk');

    // concurrent flushes all answered
    const flushes = await Promise.all([1, 2, 3, 4].map(() => c.io(Op.FLUSH, 0, 0)));
    assert.ok(flushes.every((x) => x.status === 0));

    // write-zeroes over more than one 1 MiB chunk
    await c.io(Op.WRITE, 1024 * 1024 - 512, 4096, { data: pattern(0xab) });
    assert.equal((await c.io(Op.WRITE_ZEROES, 4096, 2 * 1024 * 1024)).status, 0);
    const z = await c.io(Op.READ, 1024 * 1024 - 512, 4096);
    assert.deepEqual(z.payload, Buffer.alloc(4096));
    assert.deepEqual((await c.io(Op.READ, 0, 4096)).payload, fua, 'bytes before the zeroed range intact');

    assert.equal((await c.io(Op.TRIM, 0, 4096)).status, 0, 'TRIM is an accepted hint');
    assert.equal((await c.io(Op.WRITE_ZEROES, 0, 512, { flags: Flag.FUA })).status, 0);

    const st = f.rt.show().stats;
    assert.equal(st.inflight, 0);
    assert.equal(st.bytesWritten, 8192 + 4096 + 4096);
    assert.ok(st.bytesRead >= 8192 + 4096 + 4096);
    assert.ok(st.completed >= 12);
    assert.equal(st.failed, 0);
    assert.equal(st.oldestInflightMs, null);
    c.close();
  } finally {
    await f.stop();
  }
});

// Backend errors reach the client with the real errno; a vanished disk fails the node.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Op } from '../../src/protocol/wire.js';
import { ErrorFilter } from '../../src/engine/export/filters.js';
import { fixture, connected, E, pattern } from '../helpers/export-fixture.js';

test('export: backend errors are logged with the real errno and carried as status', async () => {
  let filter: ErrorFilter | null = null;
  const f = await fixture({ wrapBackend: (b) => (filter = new ErrorFilter(b, 'EIO', ['write'], 1)) });
  try {
    const { c } = await connected(f);
    assert.equal((await c.io(Op.WRITE, 0, 512, { data: pattern(1, 512) })).status, E('EIO'));
    assert.equal((await c.io(Op.WRITE, 0, 512, { data: pattern(1, 512) })).status, 0);
    assert.equal(filter!.failed, 1);
    assert.ok(f.logs.some((l) => l.includes('"errno":"EIO"') && l.includes('WRITE failed')));
    assert.equal(f.rt.show().stats.failed, 1);
    c.close();
  } finally {
    await f.stop();
  }
});

test('export: a vanished disk (ENXIO) fails the node', async () => {
  const f = await fixture({ wrapBackend: (b) => new ErrorFilter(b, 'ENXIO', ['read'], 1) });
  try {
    const { c } = await connected(f);
    assert.equal((await c.io(Op.READ, 0, 512)).status, E('ENXIO'));
    await c.closedP;
    assert.equal(f.rt.state, 'failed');
    assert.match(f.rt.reason!, /gone.*ENXIO/);
    await f.rt.stop({ force: false });
    assert.equal(f.rt.state, 'configured');
  } finally {
    await f.stop();
  }
});

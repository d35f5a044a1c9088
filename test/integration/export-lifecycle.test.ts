// An export node's lifecycle: start serves a stable identity (per disk) with state events;
// a start that cannot open the disk or bind the port fails with a reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Access } from '../../src/protocol/wire.js';
import { DEFAULT_LIMITS } from '../../src/engine/types.js';
import { SIZE, dir, makeDisk, fixture, connected, until } from '../helpers/export-fixture.js';

test('export: start, HELLO → HELLO_REPLY with size and a stable identity; state events', async () => {
  const f = await fixture();
  try {
    const show = f.rt.show();
    assert.equal(show.state, 'listening');
    assert.match(show.listen!, /^127\.0\.0\.1:\d+$/);
    assert.notEqual(f.port, 0);
    assert.equal(show.size, SIZE);
    assert.equal(show.nbd, null);
    assert.equal(show.sessionId, null);
    assert.equal(show.permissions, null);
    assert.deepEqual(f.events[0], { event: 'state-changed', fields: { from: 'configured', to: 'listening', reason: null } });

    const { c, reply } = await connected(f);
    assert.equal(reply.size, SIZE);
    assert.equal(reply.identity.length, 16);
    assert.equal(reply.granted, Access.READ | Access.WRITE);
    assert.equal(reply.suite, 'none');
    assert.equal(reply.nonce.length, 32);
    assert.equal(reply.maxRequest, DEFAULT_LIMITS.maxRequestCap);
    await until(() => f.events.some((e) => e.event === 'connected'));
    c.close();
    await until(() => f.events.some((e) => e.event === 'disconnected'));

    // restart: same identity
    await f.rt.stop({ force: false });
    assert.equal(f.rt.state, 'configured');
    await f.rt.start();
    await f.rt.start(); // idempotent
    f.port = Number(/:(\d+)$/.exec(f.rt.show().listen!)![1]);
    const again = await connected(f);
    assert.deepEqual(again.reply.identity, reply.identity, 'identity stable across restarts');
    again.c.close();
    await f.rt.stop({ force: false });

    // a different disk under the same name: a new identity
    f.holder.config = { ...f.holder.config, disk: await makeDisk() };
    await f.rt.start();
    f.port = Number(/:(\d+)$/.exec(f.rt.show().listen!)![1]);
    const other = await connected(f);
    assert.notDeepEqual(other.reply.identity, reply.identity);
    other.c.close();
  } finally {
    await f.stop();
  }
  assert.equal(f.rt.state, 'configured');
  assert.ok(f.events.some((e) => e.event === 'state-changed' && e.fields.to === 'stopping'));
});

test('export: start failures — missing disk, port in use → failed with a reason', async () => {
  const f = await fixture({ disk: join(dir, 'missing.img'), start: false });
  await assert.rejects(f.rt.start(), (err: Error & { code?: string }) => err.code === 'DST_ERR_NOT_FOUND');
  assert.equal(f.rt.state, 'failed');
  assert.match(f.rt.reason!, /ENOENT/);
  await f.rt.stop({ force: false });
  assert.equal(f.rt.state, 'configured');

  const a = await fixture();
  try {
    const b = await fixture({ start: false, listen: `127.0.0.1:${a.port}`, name: 'vol2' });
    await assert.rejects(b.rt.start(), (err: Error & { code?: string; errno?: string }) =>
      err.code === 'DST_ERR_BUSY' && err.errno === 'EADDRINUSE');
    assert.equal(b.rt.state, 'failed');
    assert.match(b.rt.reason!, /EADDRINUSE/);
    await b.rt.stop({ force: true });
  } finally {
    await a.stop();
  }
});

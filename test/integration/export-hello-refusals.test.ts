// HELLOs the export refuses: ACL deny, empty ACL, wrong export name, suite mismatch, too many
// connections, and no HELLO within the timeout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/util/clock.js';
import { DEFAULT_LIMITS } from '../../src/engine/types.js';
import { exportTestCounters } from '../../src/engine/export/export-node.js';
import { fixture, RawClient, connected, E, sleep, until } from '../helpers/export-fixture.js';

test('export: HELLO refusals: ACL deny, empty ACL, wrong export name, suite mismatch', async () => {
  const f = await fixture({ acl: [{ addr: '127.0.0.0/8', perm: 'rw', keyFile: null }, { addr: '127.0.0.1', perm: 'none', keyFile: null }] });
  try {
    const c = await RawClient.connect(f.port);
    const r = await c.hello();
    assert.equal(r.status, E('EACCES'));
    assert.equal(r.message, 'address 127.0.0.1 is not allowed by node vol');
    await c.closedP;
    await until(() => f.events.some((e) => e.event === 'acl-denied'));
    assert.deepEqual(f.events.find((e) => e.event === 'acl-denied')!.fields, { addr: '127.0.0.1' });

    f.holder.config = { ...f.holder.config, acl: [] };
    f.rt.configChanged();
    const c2 = await RawClient.connect(f.port);
    assert.equal((await c2.hello()).status, E('EACCES'), 'empty ACL = nobody');

    f.holder.config = { ...f.holder.config, acl: [{ addr: '127.0.0.1', perm: 'rw', keyFile: null }] };
    f.rt.configChanged();
    const c3 = await RawClient.connect(f.port);
    const r3 = await c3.hello({ exportName: 'other' });
    assert.equal(r3.status, E('ENOENT'));
    assert.match(r3.message!, /other/);
    const c4 = await RawClient.connect(f.port);
    assert.equal((await c4.hello({ exportName: 'vol' })).status, 0, 'the node name selects the export');
    const c5 = await RawClient.connect(f.port);
    const r5 = await c5.hello({ suite: 'aes-gcm' });
    assert.equal(r5.status, E('EPROTO'));
    assert.match(r5.message!, /aes-gcm/);
    assert.match(r5.message!, /none/);
    for (const x of [c2, c3, c4, c5]) x.close();
  } finally {
    await f.stop();
  }
});

test('export: connections over the limit are refused with EBUSY', async () => {
  const f = await fixture({ limits: { maxConnectionsPerExport: 2 } });
  try {
    const { c: a } = await connected(f);
    const { c: b } = await connected(f);
    const c = await RawClient.connect(f.port);
    const r = await c.hello();
    assert.equal(r.status, E('EBUSY'));
    await c.closedP;
    a.close();
    b.close();
  } finally {
    await f.stop();
  }
});

test('export: no HELLO within the timeout → closed (fake clock)', async () => {
  const clock = new FakeClock();
  const f = await fixture({ clock });
  try {
    const c = await RawClient.connect(f.port);
    await until(() => exportTestCounters(f.rt)!.connections === 1);
    clock.advance(DEFAULT_LIMITS.helloTimeoutMs - 1);
    await sleep(20);
    assert.equal(c.closed, false);
    clock.advance(1);
    await c.closedP;
    assert.ok(f.logs.some((l) => l.includes('no HELLO within')));
  } finally {
    await f.stop();
  }
});

// Event bus: seq numbers, wall-clock ts, fan-out with node filters, unsubscribe, subscribed record.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { EventBus } from '../../src/engine/events.js';
import type { EventRecord } from '../../src/engine/types.js';

describe('event bus', () => {
  it('numbers events from 1 and stamps wall-clock time', () => {
    let now = 1000;
    const bus = new EventBus({ wallNow: () => now++ });
    const got: EventRecord[] = [];
    bus.subscribe(null, (e) => got.push(e));
    bus.emit('a', 'node-added');
    bus.emit('b', 'state-changed', { from: 'configured', to: 'listening', reason: null });
    assert.deepEqual(got, [
      { seq: 1, ts: 1000, node: 'a', event: 'node-added' },
      { seq: 2, ts: 1001, node: 'b', event: 'state-changed', from: 'configured', to: 'listening', reason: null },
    ]);
    assert.equal(bus.seq, 2);
    assert.ok(Object.isFrozen(got[0]));
  });

  it('fields cannot override seq, ts, node or event', () => {
    const bus = new EventBus({ wallNow: () => 5 });
    const got: EventRecord[] = [];
    bus.subscribe(null, (e) => got.push(e));
    bus.emit('a', 'txn-failed', { seq: 99, node: 'x', event: 'detached', op: 'write', offset: 0, length: 4096, errno: 'EIO' } as never);
    assert.deepEqual(got[0], { seq: 1, ts: 5, node: 'a', event: 'txn-failed', op: 'write', offset: 0, length: 4096, errno: 'EIO' });
  });

  it('filters by node; seq is global across nodes', () => {
    const bus = new EventBus();
    const all: number[] = [];
    const onlyB: EventRecord[] = [];
    bus.subscribe(null, (e) => all.push(e.seq));
    const off = bus.subscribe('b', (e) => onlyB.push(e));
    bus.emit('a', 'node-added');
    bus.emit('b', 'node-added');
    bus.emit('a', 'node-started');
    bus.emit('b', 'node-started');
    assert.deepEqual(all, [1, 2, 3, 4]);
    assert.deepEqual(onlyB.map((e) => [e.seq, e.event]), [[2, 'node-added'], [4, 'node-started']]);
    off();
    off();
    bus.emit('b', 'node-stopped');
    assert.equal(onlyB.length, 2);
    assert.equal(bus.subscriberCount, 1);
  });

  it('a throwing subscriber does not stop the others', () => {
    const bus = new EventBus();
    const got: number[] = [];
    bus.subscribe(null, () => { throw new Error('boom'); });
    bus.subscribe(null, (e) => got.push(e.seq));
    bus.emit('a', 'detached');
    assert.deepEqual(got, [1]);
  });

  it('an unsubscribe during delivery is safe', () => {
    const bus = new EventBus();
    const got: string[] = [];
    const offA = bus.subscribe(null, () => { got.push('a'); offB(); });
    const offB = bus.subscribe(null, () => got.push('b'));
    bus.emit('n', 'detached');
    bus.emit('n', 'detached');
    offA();
    assert.deepEqual(got, ['a', 'b', 'a']);
  });

  it('the subscribed record carries the last seq and the filter', () => {
    const bus = new EventBus({ wallNow: () => 7 });
    bus.emit('a', 'node-added');
    assert.deepEqual(bus.subscribedRecord('a'), { seq: 1, ts: 7, node: 'a', event: 'subscribed' });
    assert.deepEqual(bus.subscribedRecord(null), { seq: 1, ts: 7, node: null, event: 'subscribed' });
  });
});

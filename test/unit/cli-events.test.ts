// The CLI in-process: `dst events` as JSON lines or text, interrupted or losing the engine.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { type EventRecord } from '../../src/engine/types.js';
import { run } from '../helpers/cli-harness.js';

describe('events', () => {
  test('--json: one object per line, subscribed first; ends 0 when interrupted', async () => {
    const ac = new AbortController();
    const r = await run(['events', '--json', '--node', 'vol'], {
      signal: ac.signal,
      events: (emit) => {
        emit({ seq: 1, ts: 1_700_000_000_100, node: 'vol', event: 'state-changed', from: 'configured', to: 'listening', reason: null });
        setImmediate(() => ac.abort());
      },
    });
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(r.calls, [{ cmd: 'subscribe', args: { node: 'vol' } }]);
    const lines = r.out.trimEnd().split('\n').map((l) => JSON.parse(l) as EventRecord);
    assert.equal(lines.length, 2);
    assert.equal(lines[0]!.event, 'subscribed');
    assert.deepEqual(lines[1], { seq: 1, ts: 1_700_000_000_100, node: 'vol', event: 'state-changed', from: 'configured', to: 'listening', reason: null });
  });

  test('text: one readable line per event; the engine going away is exit 3', async () => {
    const r = await run(['events'], {
      signal: new AbortController().signal,
      events: (emit, closed) => {
        emit({ seq: 2, ts: Date.UTC(2024, 4, 1, 10), node: 'rv', event: 'txn-failed', op: 'write', offset: 4096, length: 512, errno: 'EIO' });
        setImmediate(closed);
      },
    });
    assert.equal(r.code, 3);
    const lines = r.out.trimEnd().split('\n');
    assert.match(lines[0]!, /subscribed$/);
    assert.equal(lines[1], '2024-05-01T10:00:00.000Z rv txn-failed op=write offset=4096 length=512 errno=EIO');
    assert.match(r.err, /closed the event stream/);
  });
});

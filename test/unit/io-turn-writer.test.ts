// TurnWriter: everything written in one event-loop turn leaves in one cork/uncork (one writev),
// in order; flush() sends it at once (before an end or destroy would drop it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TurnWriter } from '../../src/engine/io/turn-writer.js';

function fakeSocket() {
  const log: string[] = [];
  return {
    log,
    destroyed: false,
    cork: () => { log.push('cork'); },
    uncork: () => { log.push('uncork'); },
    write: (b: Buffer, cb?: (err?: Error | null) => void) => { log.push(`write ${b.toString()}`); cb?.(null); return true; },
  };
}

test('writes of one turn are corked once and uncorked on the next tick, in order', async () => {
  const s = fakeSocket();
  let uncorks = 0;
  const w = new TurnWriter(s, () => uncorks++);
  const written: string[] = [];
  w.write([Buffer.from('a'), Buffer.from('b')], () => written.push('ab'));
  w.write(Buffer.from('c'), () => written.push('c'));
  assert.deepEqual(s.log, ['cork', 'write a', 'write b', 'write c']);
  assert.deepEqual(written, ['ab', 'c'], 'written runs once per write, after its last part');
  await new Promise<void>((resolve) => process.nextTick(resolve));
  assert.deepEqual(s.log.slice(4), ['uncork']);
  assert.equal(uncorks, 1);
  w.write(Buffer.from('d'));
  assert.deepEqual(s.log.slice(5), ['cork', 'write d'], 'a new turn corks again');
});

test('flush() uncorks now, once; a destroyed socket is not uncorked', async () => {
  const s = fakeSocket();
  const w = new TurnWriter(s);
  w.write(Buffer.from('x'));
  w.flush();
  w.flush();
  assert.deepEqual(s.log, ['cork', 'write x', 'uncork']);
  await new Promise<void>((resolve) => process.nextTick(resolve));
  assert.deepEqual(s.log, ['cork', 'write x', 'uncork'], 'the pending tick finds nothing to uncork');
  w.write(Buffer.from('y'));
  s.destroyed = true;
  w.flush();
  assert.deepEqual(s.log.slice(3), ['cork', 'write y']);
});

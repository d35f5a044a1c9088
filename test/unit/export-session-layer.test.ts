// The export's session layer (session.ts): admission into a session fences the session's older
// connections and waits for their backend calls; a REPLAY that already ran is answered from the
// record; with fencing off (DST_TEST_NO_FENCING) none of that happens.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { FakeClock } from '../../src/util/clock.js';
import { createLogger } from '../../src/util/log.js';
import { errnoNumber } from '../../src/util/errors.js';
import { Op, type Frame } from '../../src/protocol/wire.js';
import { SessionLayer, type SessionMember } from '../../src/engine/export/session.js';
import type { Session } from '../../src/engine/export/dedup.js';

/** A connection as the session layer sees it: calls in flight until finish() is called. */
class Member implements SessionMember {
  fencedFor: string | null = null;
  private waiters: (() => void)[] = [];
  constructor(readonly label: string, public inflightCalls = 0) {}
  drained(): Promise<void> {
    if (this.inflightCalls === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }
  fence(reason: string): void {
    this.fencedFor = reason;
  }
  finish(): void {
    this.inflightCalls = 0;
    for (const w of this.waiters.splice(0)) w();
  }
}

const logs: string[] = [];
const log = createLogger('debug', 'json', (line) => logs.push(line));
const io = (op: Op, id: number, ackedBelow = 0): Frame => ({ op, id, ackedBelow } as Frame);

async function admit(layer: SessionLayer<Member>, m: Member, id: Buffer, clock: FakeClock, wanted = () => true):
  Promise<{ known: boolean | null; session: Session<Member> | null }> {
  let session: Session<Member> | null = null;
  const known = await layer.admit(m, id, clock, log, (s) => { session = s; }, wanted);
  return { known, session };
}

test('session layer: a new HELLO of a session fences the old connection and waits for its calls', async () => {
  const clock = new FakeClock();
  const layer = new SessionLayer<Member>(true, log);
  const id = randomBytes(16);
  const first = new Member('127.0.0.1:1000', 2);
  const a = await admit(layer, first, id, clock);
  assert.equal(a.known, false, 'first HELLO of the session');
  assert.equal(a.session!.hellos, 1);

  const second = new Member('127.0.0.1:2000');
  let done = false;
  const b = admit(layer, second, id, clock).then((r) => { done = true; return r; });
  await Promise.resolve();
  assert.match(first.fencedFor ?? '', /fenced by a new connection of the same session from 127\.0\.0\.1:2000/);
  assert.equal(done, false, 'waits for the old connection\'s backend calls');
  assert.ok(logs.some((l) => l.includes('waiting for the old connection') && l.includes('"calls":2')));
  first.finish();
  const r = await b;
  assert.equal(r.known, true, 'a reconnect');
  assert.equal(r.session, a.session);
  assert.equal(r.session!.hellos, 2);
  assert.equal(layer.size, 1);

  // closed (or the node stopped) while waiting: not admitted
  const third = new Member('127.0.0.1:3000');
  second.inflightCalls = 1;
  const c = admit(layer, third, id, clock, () => false);
  second.finish();
  assert.equal((await c).known, null);
  assert.equal(r.session!.hellos, 2);
});

test('session layer: a recorded REPLAY is answered from the record; READs and ESHUTDOWN are not recorded', async () => {
  const clock = new FakeClock();
  const layer = new SessionLayer<Member>(true, log);
  const { session } = await admit(layer, new Member('a:1'), randomBytes(16), clock);
  layer.record(session, io(Op.WRITE, 1), 0);
  layer.record(session, io(Op.FLUSH, 2), errnoNumber('ENOSPC'));
  layer.record(session, io(Op.READ, 3), 0);
  layer.record(session, io(Op.WRITE, 4), errnoNumber('ESHUTDOWN'));
  assert.equal(layer.recorded(session, io(Op.WRITE, 1), true), 0);
  assert.equal(layer.recorded(session, io(Op.FLUSH, 2), true), errnoNumber('ENOSPC'), 'a failure is recorded too');
  assert.equal(layer.recorded(session, io(Op.READ, 3), true), undefined, 'a replayed READ runs');
  assert.equal(layer.recorded(session, io(Op.WRITE, 4), true), undefined, 'ESHUTDOWN: it never ran');
  assert.equal(layer.recorded(session, io(Op.WRITE, 1), false), undefined, 'not a replay: it runs');
  // ackedBelow drops the records below it
  assert.equal(layer.recorded(session, io(Op.WRITE, 9, 3), false), undefined);
  assert.equal(layer.recorded(session, io(Op.WRITE, 1), true), undefined, 'pruned');
  assert.equal(layer.recorded(null, io(Op.WRITE, 1), true), undefined, 'no session yet');
});

test('session layer: with fencing off nothing is fenced, waited for or recorded', async () => {
  const clock = new FakeClock();
  const layer = new SessionLayer<Member>(false, log);
  const id = randomBytes(16);
  const first = new Member('a:1', 1);
  await admit(layer, first, id, clock);
  const r = await admit(layer, new Member('a:2'), id, clock);
  assert.equal(first.fencedFor, null);
  assert.equal(r.known, true, 'still counted as a reconnect');
  layer.record(r.session, io(Op.WRITE, 1), 0);
  assert.equal(layer.recorded(r.session, io(Op.WRITE, 1), true), undefined);
});

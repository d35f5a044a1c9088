// The remote connection's state table: the legal transitions, and every other one throws
// (also when driven through the connection).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConnState, transition, type ConnEvent } from '../../src/engine/remote/conn-state.js';
import { makeConn } from '../helpers/remote-conn.js';

test('state table: legal transitions', () => {
  const path: [ConnState, ConnEvent, ConnState][] = [
    [ConnState.IDLE, 'start', ConnState.CONNECTING],
    [ConnState.CONNECTING, 'tcp-up', ConnState.HELLO_SENT],
    [ConnState.HELLO_SENT, 'hello-ok', ConnState.READY],
    [ConnState.READY, 'fail', ConnState.CLOSED],
    [ConnState.READY, 'close', ConnState.CLOSED],
    [ConnState.CONNECTING, 'fail', ConnState.CLOSED],
    [ConnState.HELLO_SENT, 'fail', ConnState.CLOSED],
    [ConnState.IDLE, 'close', ConnState.CLOSED],
    [ConnState.HELLO_SENT, 'auth-sent', ConnState.AUTH_SENT],
    [ConnState.AUTH_SENT, 'auth-ok', ConnState.READY],
    [ConnState.AUTH_SENT, 'fail', ConnState.CLOSED],
    [ConnState.AUTH_SENT, 'close', ConnState.CLOSED],
  ];
  for (const [from, ev, to] of path) assert.equal(transition(from, ev), to, `${from} --${ev}-->`);
});

test('state table: illegal transitions throw', () => {
  const illegal: [ConnState, ConnEvent][] = [
    [ConnState.IDLE, 'hello-ok'], [ConnState.IDLE, 'tcp-up'], [ConnState.IDLE, 'fail'],
    [ConnState.CONNECTING, 'hello-ok'], [ConnState.CONNECTING, 'start'],
    [ConnState.HELLO_SENT, 'tcp-up'], [ConnState.READY, 'hello-ok'], [ConnState.READY, 'start'],
    [ConnState.HELLO_SENT, 'auth-ok'], [ConnState.AUTH_SENT, 'hello-ok'], [ConnState.READY, 'auth-ok'], [ConnState.CONNECTING, 'auth-sent'],
    [ConnState.CLOSED, 'start'], [ConnState.CLOSED, 'close'], [ConnState.CLOSED, 'fail'],
  ];
  for (const [from, ev] of illegal) {
    assert.throws(() => transition(from, ev), (e: unknown) => (e as { code?: string }).code === 'DST_ERR_INTERNAL', `${from} --${ev}-->`);
  }
  const c = makeConn();
  c.conn.start();
  assert.throws(() => c.conn.start(), /illegal transition/);
});

// Closing a remote connection on purpose: graceful sends CLOSE and ends; onClose reports once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cmd } from '../../src/protocol/wire.js';
import { readyConn } from '../helpers/remote-conn.js';

test('close(graceful) sends CLOSE and ends; onClose reports once with reason closed', async () => {
  const c = await readyConn();
  c.conn.close('stop', true);
  c.conn.close('again', true);
  assert.equal(c.sock.count(Cmd.CLOSE), 1);
  assert.equal(c.sock.ended, true);
  assert.equal(c.closes.length, 1);
  assert.equal(c.closes[0]!.reason, 'closed');
  assert.equal(c.clock.pending() <= 1, true); // only the FIN grace timer may remain
  c.sock.emit('close');
  assert.equal(c.closes.length, 1);
});

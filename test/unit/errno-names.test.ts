// Errno names ↔ numbers, including the Linux errnos Node's os.constants lacks (ESHUTDOWN = 108,
// which the export answers for a request it never ran because it is stopping).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { errnoName, errnoNumber } from '../../src/util/errors.js';

test('ESHUTDOWN is 108 both ways, not EIO', () => {
  assert.equal(errnoNumber('ESHUTDOWN'), 108);
  assert.equal(errnoName(108), 'ESHUTDOWN');
});

test("Node's errnos round-trip; an unknown name is EIO, an unknown number E<n>", () => {
  for (const name of ['EIO', 'ENOENT', 'EACCES', 'EPROTO', 'ENOSPC', 'ETIMEDOUT']) assert.equal(errnoName(errnoNumber(name)), name);
  assert.equal(errnoNumber('ENOSUCHTHING'), 5);
  assert.equal(errnoName(99999), 'E99999');
});

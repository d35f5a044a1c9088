// The export's refusal of a suite mismatch says which suite the client asked for and which the
// export has: a miscased or unknown name is called that (not "crypto is configured on the client
// only"), crypto on one side only is said so, and the client's text is escaped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { suiteMismatchMessage } from '../../src/engine/export/handshake.js';

test('an unknown or miscased client suite is named as such, with the export\'s', () => {
  for (const client of ['NONE', 'AES-GCM', 'rot13', '']) {
    const m = suiteMismatchMessage(client, 'vol', 'none');
    assert.ok(m.includes(`client asked for "${client}"`) && m.includes('export vol uses none'), m);
    assert.match(m, /not a suite name/);
    assert.doesNotMatch(m, /client only|export only/);
  }
});

test('crypto on one side only is said so; two real suites are just named', () => {
  assert.match(suiteMismatchMessage('none', 'vol', 'aes-gcm'), /"none", export vol uses aes-gcm \(crypto is configured on the export only\)$/);
  assert.match(suiteMismatchMessage('aes-gcm', 'vol', 'none'), /"aes-gcm", export vol uses none \(crypto is configured on the client only\)$/);
  assert.equal(suiteMismatchMessage('chacha20-poly1305', 'vol', 'aes-gcm'),
    'suite mismatch: client asked for "chacha20-poly1305", export vol uses aes-gcm');
});

test('the client\'s suite text is escaped and capped', () => {
  const m = suiteMismatchMessage(`x\n\0\x1b${'y'.repeat(1000)}`, 'vol', 'none');
  assert.ok(m.includes('"x\\n\\x00\\x1b'), m);
  assert.ok(m.length < 500, `${m.length} characters`);
});

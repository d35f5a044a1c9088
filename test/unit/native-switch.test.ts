// DST_NATIVE=0 turns all native code off (issue 16): in a fresh process the file ops fall back,
// the cipher is node:crypto and malloc_trim is gone, while the disk lock stays (without it a
// second engine could serve the same disk). DST_NATIVE_CIPHER=0 still turns off the cipher alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { fileOps, fileOpsText } from '../../src/engine/io/file-ops.js';
import { nativeCipher, cipherImplementationText } from '../../src/protocol/native-cipher.js';
import { diskLockAvailable } from '../../src/engine/export/disk-lock.js';
import { skipOrFail } from '../helpers/tools.js';

const module = (rel: string): string => JSON.stringify(fileURLToPath(new URL(rel, import.meta.url)));

const SCRIPT = `
const files = await import(${module('../../src/engine/io/file-ops.js')});
const cipher = await import(${module('../../src/protocol/native-cipher.js')});
const lock = await import(${module('../../src/engine/export/disk-lock.js')});
console.log(JSON.stringify({ fileOps: files.fileOps !== null, fileOpsText: files.fileOpsText,
  cipher: cipher.cipherImplementation, mallocTrim: cipher.mallocTrim !== null, diskLock: lock.diskLockAvailable }));
`;

interface Seen { fileOps: boolean; fileOpsText: string; cipher: { kind: string; detail: string }; mallocTrim: boolean; diskLock: boolean }

function inChild(env: Record<string, string>): Seen {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', SCRIPT], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...env } });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Seen;
}

test('DST_NATIVE=0 switches off the file ops, the cipher and malloc_trim, not the disk lock; DST_NATIVE_CIPHER=0 only the cipher', (t) => {
  if (process.env.DST_NATIVE === '0' || process.env.DST_NATIVE_CIPHER === '0') {
    skipOrFail(t, 'run without DST_NATIVE=0 and DST_NATIVE_CIPHER=0: this test compares both switches with the addons on');
    return;
  }
  if (fileOps === null || nativeCipher === null || !diskLockAvailable) {
    skipOrFail(t, `native addons unavailable (file ops ${fileOpsText}; cipher ${cipherImplementationText}) (npm install builds them)`);
    return;
  }
  const off = inChild({ DST_NATIVE: '0' });
  assert.deepEqual(off, {
    fileOps: false,
    fileOpsText: 'fallback: native file ops switched off by DST_NATIVE=0; TRIM is dropped, zeroes are written, extents are all data',
    cipher: { kind: 'node', detail: 'native cipher switched off by DST_NATIVE=0' },
    mallocTrim: false,
    diskLock: true,
  });
  const cipherOff = inChild({ DST_NATIVE_CIPHER: '0' });
  assert.deepEqual(cipherOff.cipher, { kind: 'node', detail: 'DST_NATIVE_CIPHER=0' });
  assert.equal(cipherOff.fileOps, true, 'DST_NATIVE_CIPHER=0 leaves the file ops native');
  assert.equal(cipherOff.mallocTrim, true, 'and malloc_trim');
});

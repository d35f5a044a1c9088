// mallocTrim (native/cipher.c): after large blocks from glibc's heap are freed, with live small
// blocks between them (so free() alone cannot shrink the heap), it gives their pages back: the RSS
// of a fresh process drops by most of what was freed. Under CI the addon must be built.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mallocTrim, cipherImplementation } from '../../src/protocol/native-cipher.js';
import { skipOrFail } from '../helpers/tools.js';

const MODULE = fileURLToPath(new URL('../../src/protocol/native-cipher.js', import.meta.url));

// Runs in a child (--expose-gc): a 24 MiB block raises glibc's mmap threshold, so the 2 MiB
// blocks that follow come from its heap; 64-byte blocks kept alive between them pin the heap top.
const SCRIPT = `
import { readFileSync } from 'node:fs';
const { mallocTrim } = await import(${JSON.stringify(MODULE)});
const rss = () => Number(/VmRSS:\\s+(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) / 1024;
let big = Buffer.alloc(24 << 20, 1); big = null; gc();
const keep = []; let blocks = [];
for (let i = 0; i < 48; i++) { blocks.push(Buffer.alloc(2 << 20, 1)); keep.push(Buffer.allocUnsafeSlow(64)); }
blocks = null; gc(); gc();
const freed = rss();
const gaveBack = mallocTrim();
console.log(JSON.stringify({ freed, trimmed: rss(), gaveBack, kept: keep.length }));
`;

test('mallocTrim returns freed heap pages to the kernel', (t) => {
  if (!mallocTrim) {
    skipOrFail(t, `mallocTrim unavailable: ${cipherImplementation.detail} (npm install builds the addon; glibc only)`);
    return;
  }
  const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', SCRIPT], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  const { freed, trimmed, gaveBack } = JSON.parse(r.stdout) as { freed: number; trimmed: number; gaveBack: boolean };
  assert.equal(gaveBack, true, 'malloc_trim reports it released memory');
  assert.ok(freed - trimmed >= 24, `RSS ${freed.toFixed(1)} → ${trimmed.toFixed(1)} MiB: less than 24 MiB given back`);
});

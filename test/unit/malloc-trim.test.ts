// mallocTrim (native/cipher.c): after blocks from glibc's heap are freed, with live small
// blocks between them (so free() alone cannot shrink the heap), it gives their pages back: the RSS
// of a fresh process drops by most of what was freed. Under CI the addon must be built.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mallocTrim, cipherImplementation } from '../../src/protocol/native-cipher.js';
import { skipOrFail } from '../helpers/tools.js';

const MODULE = fileURLToPath(new URL('../../src/protocol/native-cipher.js', import.meta.url));

// Runs in a child (--expose-gc): 64 KiB blocks (under glibc's smallest mmap threshold, so they
// always come from its heap), each followed by a 64-byte block kept alive (so free() cannot shrink
// the heap from its top); the collection may free them on a background thread: give it a moment.
const SCRIPT = `
import { readFileSync } from 'node:fs';
const { mallocTrim } = await import(${JSON.stringify(MODULE)});
const rss = () => Number(/VmRSS:\\s+(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) / 1024;
const keep = []; let blocks = [];
for (let i = 0; i < 768; i++) { blocks.push(Buffer.alloc(64 << 10, 1)); keep.push(Buffer.allocUnsafeSlow(64)); }
blocks = null; gc(); gc();
await new Promise((resolve) => setTimeout(resolve, 200));
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

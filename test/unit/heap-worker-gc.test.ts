// A crypto worker on node:crypto collects its young garbage every WORKER_GC_EVERY bytes of frames
// (src/engine/heap.ts); with the native cipher it does not collect at all. Run in children, as the
// cipher is chosen when the module loads; V8's own gc entries are the evidence.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { nativeCipher, cipherImplementation } from '../../src/protocol/native-cipher.js';
import { skipOrFail } from '../helpers/tools.js';

const MODULE = fileURLToPath(new URL('../../src/engine/heap.js', import.meta.url));

// Crosses the threshold once and reports the young collections V8 then logs (at least one).
const SCRIPT = `
import { PerformanceObserver, constants } from 'node:perf_hooks';
const { frameGarbageCollector, WORKER_GC_EVERY } = await import(${JSON.stringify(MODULE)});
const collect = frameGarbageCollector();
if (collect === null) { console.log(JSON.stringify({ collector: false, minor: 0 })); process.exit(0); }
const minor = await new Promise((resolve) => {
  const obs = new PerformanceObserver((list) => {
    const n = list.getEntries().filter((e) => e.detail.kind === constants.NODE_PERFORMANCE_GC_MINOR).length;
    if (n > 0) { obs.disconnect(); resolve(n); }
  });
  obs.observe({ entryTypes: ['gc'] });
  collect(WORKER_GC_EVERY - 1);
  collect(1);
});
console.log(JSON.stringify({ collector: true, minor }));
`;

function run(env: Record<string, string>): { collector: boolean; minor: number } {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', SCRIPT], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...env } });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as { collector: boolean; minor: number };
}

test('node:crypto workers collect young garbage as frames go by; native-cipher workers do not', (t) => {
  const fallback = run({ DST_NATIVE_CIPHER: '0' });
  assert.equal(fallback.collector, true, 'no collector with node:crypto');
  assert.ok(fallback.minor >= 1, 'crossing WORKER_GC_EVERY ran no young collection');
  if (!nativeCipher) {
    skipOrFail(t, `native cipher unavailable: ${cipherImplementation.detail}`);
    return;
  }
  assert.equal(run({}).collector, false, 'a native-cipher worker would collect for nothing');
});

// An engine started from a configuration file whose [engine] section says metrics-listen serves
// /metrics there (port 0: the port it bound is in `dst status`), with no command-line option.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startEngine } from '../helpers/engine.js';
import { sample, scrape } from '../helpers/metrics.js';
import { tmpDir } from '../helpers/tmp.js';

test('[engine] metrics-listen in the INI file: the engine serves /metrics', async (t) => {
  const conf = join(tmpDir(t, 'dst-mini-'), 'dst.conf');
  writeFileSync(conf, '[engine]\nmetrics-listen = "127.0.0.1:0"\n');
  const e = await startEngine(t, { config: conf });
  const s = await e.status();
  assert.match(s.metrics ?? '', /^127\.0\.0\.1:\d+$/, `status: ${JSON.stringify(s.metrics)}`);
  assert.notEqual(s.metrics, '127.0.0.1:0', 'the port it bound, not 0');
  const text = await scrape(e);
  assert.ok(sample(text, 'process_resident_memory_bytes', {})! > 0, text.slice(0, 400));
});

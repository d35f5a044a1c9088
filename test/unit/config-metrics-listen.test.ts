// [engine] metrics-listen: read, written back as it was, and a bad address refused naming the key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatConfig, parseConfigText } from '../../src/engine/config.js';
import { DstError } from '../../src/util/errors.js';

test('[engine] metrics-listen: parsed, saved back, a bad value refused naming the key', () => {
  const p = parseConfigText('[engine]\nmetrics-listen = "127.0.0.1:9469"\n', 'dst.conf');
  assert.equal(p.engine.metricsListen, '127.0.0.1:9469');
  const again = parseConfigText(formatConfig({ ...p.engine, nodes: [] }), 'dst.conf');
  assert.equal(again.engine.metricsListen, '127.0.0.1:9469');
  assert.equal(parseConfigText('[engine]\n', 'dst.conf').engine.metricsListen, null, 'off by default');
  assert.throws(() => parseConfigText('[engine]\nmetrics-listen = "localhost"\n', 'dst.conf'),
    (err: unknown) => err instanceof DstError && /metrics-listen/.test(err.message) && /HOST:PORT/.test(err.message));
});

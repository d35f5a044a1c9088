// The --json shapes of DESIGN §5, checked key by key: every key present, null where unknown.
import assert from 'node:assert/strict';

export const NODE_SHOW_KEYS = [
  'name', 'role', 'state', 'reason', 'size', 'autostart',
  'disk', 'listen', 'readonly', 'acl', 'backend',
  'remote', 'export', 'permissions', 'nbd', 'attachment', 'sessionId',
  'layout', 'chunk', 'region', 'degraded', 'legs', 'verify', 'splitBrain', 'uuid',
  'policy', 'stats', 'crypto', 'latency',
].sort();
export const POLICY_KEYS = ['resendTimeoutMs', 'maxResends', 'pingIntervalMs', 'reconnectDelayMs', 'maxInflight', 'maxRequest', 'maxHandshakesPerAddr', 'maxConnsPerAddr', 'legTimeoutMs', 'resyncRate', 'resyncMinRate', 'verifyIntervalMs', 'deadlineMs'].sort();
export const STATS_KEYS = ['inflight', 'inflightPeak', 'completed', 'resends', 'replayed', 'failed', 'reconnects', 'bytesRead', 'bytesWritten', 'oldestInflightMs'].sort();
export const CRYPTO_KEYS = ['cipher', 'hash', 'suite', 'threads', 'cipherKeyFile', 'hashKeyFile'].sort();
export const STATUS_KEYS = ['version', 'pid', 'uptimeMs', 'socket', 'stateDir', 'limits', 'cryptoThreads', 'cipherImpl', 'diskLock', 'fileOps', 'heap', 'socketReads', 'nodes', 'config', 'metrics', 'rates'].sort();

const LATENCY_OPS = ['read', 'write', 'flush', 'trim'];

/** `latency: {recent, sinceStart}`, each {read, write, flush, trim} of {p50Ms, p99Ms, maxMs, count}. */
export function assertLatencyShow(l: unknown): void {
  const lat = l as Record<string, Record<string, Record<string, number>>>;
  assert.deepEqual(Object.keys(lat).sort(), ['recent', 'sinceStart'], 'latency keys');
  for (const w of ['recent', 'sinceStart']) {
    assert.deepEqual(Object.keys(lat[w]!).sort(), [...LATENCY_OPS].sort(), `latency.${w} ops`);
    for (const op of LATENCY_OPS) {
      const s = lat[w]![op]!;
      assert.deepEqual(Object.keys(s).sort(), ['count', 'maxMs', 'p50Ms', 'p99Ms'], `latency.${w}.${op} keys`);
      assert.ok(s.p50Ms! <= s.p99Ms! && s.count! >= 0, `latency.${w}.${op}: p50 ≤ p99`);
    }
  }
}

export function assertNodeShow(node: Record<string, unknown>): void {
  assert.deepEqual(Object.keys(node).sort(), NODE_SHOW_KEYS, 'node show keys');
  assert.deepEqual(Object.keys(node.policy as object).sort(), POLICY_KEYS, 'policy keys');
  assert.deepEqual(Object.keys(node.stats as object).sort(), STATS_KEYS, 'stats keys');
  assert.deepEqual(Object.keys(node.crypto as object).sort(), CRYPTO_KEYS, 'crypto keys');
  const p = node.policy as Record<string, number>;
  assert.equal(p.deadlineMs, p.resendTimeoutMs! * (p.maxResends! + 1), 'deadline = resend-timeout × (max-resends + 1)');
  assertLatencyShow(node.latency); // both roles: an export's from request to answer, a remote's from NBD request to reply
  if (node.role === 'export') {
    for (const k of ['remote', 'export', 'permissions', 'nbd', 'attachment', 'sessionId', 'layout', 'chunk', 'region', 'degraded', 'legs', 'verify', 'splitBrain', 'uuid']) {
      assert.equal(node[k], null, `export node: ${k} is null`);
    }
    assert.ok(Array.isArray(node.acl));
  } else {
    for (const k of ['disk', 'readonly', 'acl']) assert.equal(node[k], null, `remote node: ${k} is null`);
    if (node.layout === 'single') {
      for (const k of ['chunk', 'region', 'degraded', 'legs', 'verify', 'splitBrain']) assert.equal(node[k], null, `single remote node: ${k} is null`);
    } else {
      assert.ok(Array.isArray(node.legs), 'a multi-leg node lists its legs');
      for (const l of node.legs as { latency: unknown }[]) assertLatencyShow(l.latency);
      for (const k of ['remote', 'export']) assert.equal(node[k], null, `multi-leg node: ${k} is null`);
    }
  }
  const json = JSON.stringify(node);
  assert.doesNotMatch(json, /"key"\s*:/i, 'no key material');
}

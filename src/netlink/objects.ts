// The objects the dst family carries in results and events (node show, status, events): their
// value sets and schemas, each field's attribute number fixed for good (family.ts has the
// commands; schema.ts the codec).
import { LAYOUTS, LEG_STATES } from '../engine/types.js';
import type {
  LegConfig, LegShow, LegState, LegStats, AclEntry, AttachmentShow, CryptoShow, EventName,
  BackendShow, EventRecord, Limits, NodeShow, NodeState, Policy, Role, SplitBrainShow, Stats, StatusShow, VerifyMismatch, VerifyShow,
} from '../engine/types.js';
import { POLICY_TABLE } from '../engine/policy.js';
import type { LatencySummary } from '../engine/metrics/histogram.js';
import type { LatencyShow, OpLatency, Rates } from '../engine/metrics/request-metrics.js';
import { CIPHER_NAMES, HASH_NAMES } from '../protocol/suite-names.js';
import { byAttr, objectSchema, t } from './schema.js';

// ---- value sets ----
export const ROLES: readonly Role[] = ['export', 'remote'];
export const NODE_STATES: readonly NodeState[] = ['configured', 'listening', 'connecting', 'ready', 'backoff', 'failed', 'stopping'];
export const PERMS: readonly AclEntry['perm'][] = ['r', 'w', 'rw', 'none'];
export const EVENT_NAMES: readonly EventName[] = [
  'subscribed', 'events-lost', 'node-added', 'node-removed', 'node-started', 'node-stopped',
  'state-changed', 'connected', 'disconnected', 'replayed', 'txn-failed', 'auth-failed',
  'acl-denied', 'attached', 'detached', 'attach-broken', 'leg-state', 'resync-progress', 'resync-done', 'verify-progress', 'verify-done', 'split-brain',
];
/** state-changed carries node states, leg-state leg states */
const STATE_NAMES: readonly (NodeState | LegState)[] = [...NODE_STATES, ...LEG_STATES.filter((s) => !(NODE_STATES as readonly string[]).includes(s))];

// ---- object schemas ----
export type PolicyShow = Policy & { deadlineMs: number };
export type NbdShow = NonNullable<NodeShow['nbd']>;
export type StatusNode = StatusShow['nodes'][number];

export const aclEntrySchema = objectSchema<AclEntry>('acl-entry', {
  addr: { attr: 1, type: t.string, doc: 'address or address/prefix' },
  perm: { attr: 2, type: t.oneOf(PERMS), doc: 'r, w, rw or none' },
  keyFile: { attr: 3, type: t.string, presence: 'nullable', doc: 'key file bound to this entry' },
});

/** The policy object of `node show`: one u32 per row of the policy table, and the deadline they make. */
export const policyShowSchema = objectSchema<PolicyShow>('policy', byAttr<PolicyShow>([
  ...POLICY_TABLE.map((k): [string, { attr: number; type: typeof t.u32 }] => [k.field, { attr: k.showAttr, type: t.u32 }]),
  ['deadlineMs', { attr: 7, type: t.u64 }],
]));

export const statsSchema = objectSchema<Stats>('stats', {
  inflight: { attr: 1, type: t.u32 },
  inflightPeak: { attr: 2, type: t.u32 },
  completed: { attr: 3, type: t.u64 },
  resends: { attr: 4, type: t.u64 },
  replayed: { attr: 5, type: t.u64 },
  failed: { attr: 6, type: t.u64 },
  reconnects: { attr: 7, type: t.u64 },
  bytesRead: { attr: 8, type: t.u64 },
  bytesWritten: { attr: 9, type: t.u64 },
  oldestInflightMs: { attr: 10, type: t.u64, presence: 'nullable' },
});

export const cryptoShowSchema = objectSchema<CryptoShow>('crypto', {
  cipher: { attr: 1, type: t.oneOf(CIPHER_NAMES) },
  hash: { attr: 2, type: t.oneOf(HASH_NAMES) },
  suite: { attr: 3, type: t.string },
  threads: { attr: 4, type: t.u32 },
  cipherKeyFile: { attr: 5, type: t.string, presence: 'nullable' },
  hashKeyFile: { attr: 6, type: t.string, presence: 'nullable' },
});

export const nbdShowSchema = objectSchema<NbdShow>('nbd', {
  socket: { attr: 1, type: t.string },
  uri: { attr: 2, type: t.string },
  listen: { attr: 3, type: t.string, presence: 'nullable' },
});

export const attachmentSchema = objectSchema<AttachmentShow>('attachment', {
  device: { attr: 1, type: t.string },
  method: { attr: 2, type: t.oneOf(['nbd', 'fuse']) },
  state: { attr: 3, type: t.oneOf(['attaching', 'attached', 'broken', 'detaching']) },
});

export const legConfigSchema = objectSchema<LegConfig>('leg-config', {
  remote: { attr: 1, type: t.string, doc: 'HOST:PORT of the export' },
  export: { attr: 2, type: t.string, presence: 'nullable', doc: 'export name' },
});

export const legStatsSchema = objectSchema<LegStats>('leg-stats', {
  reads: { attr: 1, type: t.u64 },
  writes: { attr: 2, type: t.u64 },
  bytesRead: { attr: 3, type: t.u64 },
  bytesWritten: { attr: 4, type: t.u64 },
  resyncedBytes: { attr: 5, type: t.u64 },
  failed: { attr: 6, type: t.u64 },
  reconnects: { attr: 7, type: t.u64 },
  comparedBytes: { attr: 8, type: t.u64 },
  resends: { attr: 9, type: t.u64 },
  replayed: { attr: 10, type: t.u64 },
  inflight: { attr: 11, type: t.u32 },
});

export const verifyMismatchSchema = objectSchema<VerifyMismatch>('verify-mismatch', {
  offset: { attr: 1, type: t.u64, doc: 'device offset in bytes' },
  length: { attr: 2, type: t.u64 },
  legs: { attr: 3, type: t.array(t.u32), doc: 'the legs that differ from the majority (all compared legs when none has one)' },
});

export const verifyShowSchema = objectSchema<VerifyShow>('verify', {
  running: { attr: 1, type: t.bool },
  doneBytes: { attr: 2, type: t.u64 },
  totalBytes: { attr: 3, type: t.u64 },
  mismatches: { attr: 4, type: t.u64 },
  repaired: { attr: 5, type: t.u64 },
  bytesPerSecond: { attr: 6, type: t.u64 },
  etaMs: { attr: 7, type: t.u64, presence: 'nullable' },
  mismatchList: { attr: 8, type: t.array(t.object(verifyMismatchSchema)), doc: 'the first mismatching regions of the pass' },
  truncated: { attr: 9, type: t.bool, doc: 'more regions mismatched than mismatchList holds' },
});

export const splitBrainSchema = objectSchema<SplitBrainShow>('split-brain', {
  legs: { attr: 1, type: t.array(t.u32), doc: 'the legs that diverged' },
  generations: { attr: 2, type: t.array(t.string), doc: 'each leg\'s generation (hex), in the order of legs' },
});

export const latencySummarySchema = objectSchema<LatencySummary>('latency-summary', {
  p50Ms: { attr: 1, type: t.f64 },
  p99Ms: { attr: 2, type: t.f64 },
  maxMs: { attr: 3, type: t.f64 },
  count: { attr: 4, type: t.u64, doc: 'requests the figures come from' },
});

export const opLatencySchema = objectSchema<OpLatency>('op-latency', {
  read: { attr: 1, type: t.object(latencySummarySchema) },
  write: { attr: 2, type: t.object(latencySummarySchema) },
  flush: { attr: 3, type: t.object(latencySummarySchema) },
  trim: { attr: 4, type: t.object(latencySummarySchema), doc: 'TRIM and WRITE_ZEROES' },
});

export const latencyShowSchema = objectSchema<LatencyShow>('latency', {
  recent: { attr: 1, type: t.object(opLatencySchema), doc: 'the last 10 s' },
  sinceStart: { attr: 2, type: t.object(opLatencySchema) },
});

type ResyncShow = NonNullable<LegShow['resync']>;
export const resyncShowSchema = objectSchema<ResyncShow>('resync', {
  doneBytes: { attr: 1, type: t.u64 },
  totalBytes: { attr: 2, type: t.u64 },
  bytesPerSecond: { attr: 3, type: t.u64 },
  etaMs: { attr: 4, type: t.u64, presence: 'nullable' },
  rate: { attr: 5, type: t.u64 },
});

export const legShowSchema = objectSchema<LegShow>('leg', {
  index: { attr: 1, type: t.u32 },
  remote: { attr: 2, type: t.string },
  export: { attr: 3, type: t.string, presence: 'nullable' },
  state: { attr: 4, type: t.oneOf(LEG_STATES) },
  size: { attr: 5, type: t.u64, presence: 'nullable' },
  identity: { attr: 6, type: t.string, presence: 'nullable' },
  outOfSyncBytes: { attr: 7, type: t.u64 },
  resync: { attr: 8, type: t.object(resyncShowSchema), presence: 'nullable' },
  stats: { attr: 9, type: t.object(legStatsSchema) },
  generation: { attr: 10, type: t.string, presence: 'nullable' },
  latency: { attr: 11, type: t.object(latencyShowSchema) },
  reason: { attr: 12, type: t.string, presence: 'nullable', doc: 'why the leg is not in sync' },
});

export const backendShowSchema = objectSchema<BackendShow>('backend', {
  uri: { attr: 1, type: t.string },
  state: { attr: 2, type: t.oneOf(['connected', 'reconnecting', 'closed']) },
  reconnects: { attr: 3, type: t.u64 },
  flags: { attr: 4, type: t.string },
  reissued: { attr: 5, type: t.u64 },
});

export const nodeShowSchema = objectSchema<NodeShow>('node', {
  name: { attr: 1, type: t.string },
  role: { attr: 2, type: t.oneOf(ROLES) },
  state: { attr: 3, type: t.oneOf(NODE_STATES) },
  reason: { attr: 4, type: t.string, presence: 'nullable' },
  size: { attr: 5, type: t.u64, presence: 'nullable' },
  autostart: { attr: 6, type: t.bool },
  disk: { attr: 7, type: t.string, presence: 'nullable' },
  listen: { attr: 8, type: t.string, presence: 'nullable' },
  readonly: { attr: 9, type: t.bool, presence: 'nullable' },
  acl: { attr: 10, type: t.array(t.object(aclEntrySchema)), presence: 'nullable' },
  remote: { attr: 11, type: t.string, presence: 'nullable' },
  export: { attr: 12, type: t.string, presence: 'nullable' },
  permissions: { attr: 13, type: t.oneOf(['r', 'w', 'rw']), presence: 'nullable' },
  nbd: { attr: 14, type: t.object(nbdShowSchema), presence: 'nullable' },
  attachment: { attr: 15, type: t.object(attachmentSchema), presence: 'nullable' },
  sessionId: { attr: 16, type: t.string, presence: 'nullable' },
  policy: { attr: 17, type: t.object(policyShowSchema) },
  stats: { attr: 18, type: t.object(statsSchema) },
  crypto: { attr: 19, type: t.object(cryptoShowSchema) },
  layout: { attr: 20, type: t.oneOf(LAYOUTS), presence: 'nullable' },
  chunk: { attr: 21, type: t.u32, presence: 'nullable' },
  region: { attr: 22, type: t.u32, presence: 'nullable' },
  degraded: { attr: 23, type: t.bool, presence: 'nullable' },
  legs: { attr: 24, type: t.array(t.object(legShowSchema)), presence: 'nullable' },
  verify: { attr: 25, type: t.object(verifyShowSchema), presence: 'nullable' },
  splitBrain: { attr: 26, type: t.object(splitBrainSchema), presence: 'nullable' },
  backend: { attr: 27, type: t.object(backendShowSchema), presence: 'nullable' },
  latency: { attr: 28, type: t.object(latencyShowSchema), presence: 'nullable' },
  uuid: { attr: 29, type: t.string, presence: 'nullable' },
});

export const limitsSchema = objectSchema<Limits>('limits', {
  maxControlMessage: { attr: 1, type: t.u32 },
  controlPartialTimeoutMs: { attr: 2, type: t.u32 },
  maxConnectionsPerExport: { attr: 3, type: t.u32 },
  helloTimeoutMs: { attr: 4, type: t.u32 },
  maxInflightPerConnection: { attr: 5, type: t.u32 },
  maxInflightCap: { attr: 6, type: t.u32 },
  maxRequestCap: { attr: 7, type: t.u32 },
});

export const statusNodeSchema = objectSchema<StatusNode>('status-node', {
  name: { attr: 1, type: t.string },
  role: { attr: 2, type: t.oneOf(ROLES) },
  state: { attr: 3, type: t.oneOf(NODE_STATES) },
  attachment: { attr: 4, type: t.object(attachmentSchema), presence: 'nullable' },
});

export const configStatusSchema = objectSchema<StatusShow['config']>('config-status', {
  file: { attr: 1, type: t.string, presence: 'nullable' },
  autosave: { attr: 2, type: t.bool },
  unsaved: { attr: 3, type: t.bool },
});

export const ratesSchema = objectSchema<Rates>('rates', {
  readIops: { attr: 1, type: t.f64 },
  writeIops: { attr: 2, type: t.f64 },
  readBytesPerSecond: { attr: 3, type: t.f64 },
  writeBytesPerSecond: { attr: 4, type: t.f64 },
});

export const statusShowSchema = objectSchema<StatusShow>('status', {
  version: { attr: 1, type: t.string },
  pid: { attr: 2, type: t.u32 },
  uptimeMs: { attr: 3, type: t.u64 },
  socket: { attr: 4, type: t.string },
  stateDir: { attr: 5, type: t.string },
  limits: { attr: 6, type: t.object(limitsSchema) },
  cryptoThreads: { attr: 7, type: t.u32 },
  nodes: { attr: 8, type: t.array(t.object(statusNodeSchema)) },
  cipherImpl: { attr: 9, type: t.string },
  diskLock: { attr: 10, type: t.string },
  config: { attr: 11, type: t.object(configStatusSchema) },
  heap: { attr: 12, type: t.string },
  socketReads: { attr: 13, type: t.string },
  fileOps: { attr: 14, type: t.string },
  metrics: { attr: 15, type: t.string, presence: 'nullable', doc: 'ADDR:PORT of /metrics; absent when off' },
  rates: { attr: 16, type: t.object(ratesSchema) },
});

export const eventRecordSchema = objectSchema<EventRecord>('event', {
  seq: { attr: 1, type: t.u64 },
  ts: { attr: 2, type: t.u64, doc: 'wall-clock ms since the epoch' },
  node: { attr: 3, type: t.string, presence: 'nullable' },
  event: { attr: 4, type: t.oneOf(EVENT_NAMES) },
  from: { attr: 5, type: t.oneOf(STATE_NAMES), presence: 'optional' },
  to: { attr: 6, type: t.oneOf(STATE_NAMES), presence: 'optional' },
  reason: { attr: 7, type: t.string, presence: 'optional-nullable' },
  sessionId: { attr: 8, type: t.string, presence: 'optional' },
  count: { attr: 9, type: t.u64, presence: 'optional' },
  op: { attr: 10, type: t.string, presence: 'optional' },
  offset: { attr: 11, type: t.u64, presence: 'optional' },
  length: { attr: 12, type: t.u64, presence: 'optional' },
  errno: { attr: 13, type: t.string, presence: 'optional' },
  addr: { attr: 14, type: t.string, presence: 'optional' },
  device: { attr: 15, type: t.string, presence: 'optional' },
  method: { attr: 16, type: t.string, presence: 'optional' },
  message: { attr: 17, type: t.string, presence: 'optional' },
  leg: { attr: 18, type: t.u32, presence: 'optional' },
  doneBytes: { attr: 19, type: t.u64, presence: 'optional' },
  totalBytes: { attr: 20, type: t.u64, presence: 'optional' },
  bytes: { attr: 21, type: t.u64, presence: 'optional' },
  ms: { attr: 22, type: t.u64, presence: 'optional' },
  regions: { attr: 23, type: t.u64, presence: 'optional' },
  mismatches: { attr: 24, type: t.u64, presence: 'optional' },
  repaired: { attr: 25, type: t.u64, presence: 'optional' },
  legs: { attr: 26, type: t.array(t.u32), presence: 'optional' },
  generations: { attr: 27, type: t.array(t.string), presence: 'optional' },
  generation: { attr: 28, type: t.string, presence: 'optional-nullable' },
  outOfSyncBytes: { attr: 29, type: t.u64, presence: 'optional' },
  bytesPerSecond: { attr: 30, type: t.u64, presence: 'optional' },
  etaMs: { attr: 31, type: t.u64, presence: 'optional-nullable' },
});

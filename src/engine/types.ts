// Shared contracts of the engine: what a node is (config), what it shows (DESIGN §5), what it
// announces (events, DESIGN §6), and the control API between the CLI and the engine.
// The netlink layer encodes these objects; handlers and commands only see them as typed objects.
import type { LatencyShow, Rates } from './metrics/request-metrics.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import type { CryptoPool } from './crypto-pool.js';
import type { Policy } from './policy.js';
import type { CipherAlg as CipherName, HashAlg as HashName } from '../protocol/suite-names.js';

export type Role = 'export' | 'remote';

export type ExportState = 'configured' | 'listening' | 'failed' | 'stopping';
export type RemoteState = 'configured' | 'connecting' | 'ready' | 'backoff' | 'failed' | 'stopping';
export type NodeState = ExportState | RemoteState;

export type Perm = 'r' | 'w' | 'rw' | 'none';

export interface AclEntry {
  /** canonical "ip" or "ip/prefix" (host bits cleared) */
  addr: string;
  perm: Perm;
  keyFile: string | null;
}

// The policy keys are declared once, in policy.ts (its table derives the Policy type).
export { DEFAULT_POLICY, type Policy } from './policy.js';
/** Deadline of one transaction: resend-timeout × (max-resends + 1). */
export function deadlineMs(p: Policy): number {
  return p.resendTimeoutMs * (p.maxResends + 1);
}

export type { CipherAlg as CipherName, HashAlg as HashName } from '../protocol/suite-names.js';

export interface CryptoConfig {
  cipher: CipherName;
  hash: HashName;
  cipherKeyFile: string | null;
  hashKeyFile: string | null;
  /** null = default (cores) */
  threads: number | null;
}

export const DEFAULT_CRYPTO: Readonly<CryptoConfig> = Object.freeze({
  cipher: 'none', hash: 'none', cipherKeyFile: null, hashKeyFile: null, threads: null,
});

interface NodeConfigBase {
  name: string;
  /** configured size limit in bytes; null = the export's (disk's) size */
  size: number | null;
  /** saved as the node was running */
  autostart: boolean;
  policy: Policy;
  crypto: CryptoConfig;
}

export interface ExportConfig extends NodeConfigBase {
  role: 'export';
  /** absolute path of the file or block device */
  disk: string;
  /** "ip:port" as configured (port may be 0 = any free port) */
  listen: string;
  readonly: boolean;
  acl: AclEntry[];
}

/** How a remote node builds its device from its legs (issue 14; DESIGN §13). */
export type Layout = 'single' | 'mirror' | 'linear' | 'stripe';
export const LAYOUTS: readonly Layout[] = ['single', 'mirror', 'linear', 'stripe'];

/** One export a remote node reaches. */
export interface LegConfig {
  /** "host:port" of the export */
  remote: string;
  /** export name to ask for; null = "" (the default export) */
  export: string | null;
}

/** most legs of one device (the region state keeps one bitmap per leg) */
export const MAX_LEGS = 32;

/** stripe chunk and mirror region defaults (issue 14) */
export const DEFAULT_CHUNK = 512 * 1024;
export const DEFAULT_REGION = 1024 * 1024;

export interface RemoteConfig extends NodeConfigBase {
  role: 'remote';
  layout: Layout;
  /** the legs in leg order; a single node has exactly one */
  legs: LegConfig[];
  /** stripe chunk in bytes (kept, unused, for other layouts) */
  chunk: number;
  /** mirror region (the unit of out-of-sync tracking) in bytes */
  region: number;
  /** optional TCP NBD listen address "ip:port" */
  nbdListen: string | null;
}

export type NodeConfig = ExportConfig | RemoteConfig;

export interface Stats {
  inflight: number;
  inflightPeak: number;
  completed: number;
  resends: number;
  replayed: number;
  failed: number;
  reconnects: number;
  bytesRead: number;
  bytesWritten: number;
  oldestInflightMs: number | null;
}

export function emptyStats(): Stats {
  return { inflight: 0, inflightPeak: 0, completed: 0, resends: 0, replayed: 0, failed: 0, reconnects: 0,
    bytesRead: 0, bytesWritten: 0, oldestInflightMs: null };
}

export interface AttachmentShow {
  /** /dev/loopN or /dev/nbdN; "" while attaching and not yet known */
  device: string;
  method: 'nbd' | 'fuse';
  state: 'attaching' | 'attached' | 'broken' | 'detaching';
}

/** `dst attach --method` (DESIGN §10): auto = nbd if /dev/nbd0 and nbd-client exist, else fuse. */
export type AttachMethodArg = 'auto' | 'nbd' | 'fuse';

/** What `dst detach` answers: the device that was removed. */
export interface DetachShow {
  name: string;
  device: string;
  method: 'nbd' | 'fuse';
}

export interface CryptoShow {
  cipher: CipherName;
  hash: HashName;
  /** canonical suite name, DESIGN §9: aes-gcm, aes-cbc+hmac-sha256, none+sha256, none, ... */
  suite: string;
  threads: number;
  cipherKeyFile: string | null;
  hashKeyFile: string | null;
}

/** `dst node show NAME --json` (DESIGN §5). Every key always present; null when unknown or not of this role. */
export interface NodeShow {
  name: string;
  role: Role;
  state: NodeState;
  reason: string | null;
  size: number | null;
  autostart: boolean;
  // export
  disk: string | null;
  listen: string | null;
  readonly: boolean | null;
  acl: AclEntry[] | null;
  // remote
  /** the export's address for a single remote node; null for multi-leg nodes (see legs) */
  remote: string | null;
  export: string | null;
  /** remote nodes: how the device is built; null for exports */
  layout: Layout | null;
  /** multi-leg: stripe chunk / mirror region in bytes; null otherwise */
  chunk: number | null;
  region: number | null;
  /** mirror: fewer than all legs in sync; null when not a mirror */
  degraded: boolean | null;
  /** multi-leg nodes: one per leg in leg order; null otherwise */
  legs: LegShow[] | null;
  /** mirror: the running or last verify pass (null before the first, and when not a mirror) */
  verify: VerifyShow | null;
  /** mirror: legs that were each written without the others, so no one of them is known to be right; null when none (and when not a mirror) */
  splitBrain: SplitBrainShow | null;
  /** mirror: its uuid (hex), the same on every leg and across reassemblies; null until assembled (and when not a mirror) */
  uuid: string | null;
  permissions: 'r' | 'w' | 'rw' | null;
  nbd: { socket: string; uri: string; listen: string | null } | null;
  attachment: AttachmentShow | null;
  sessionId: string | null;
  policy: Policy & { deadlineMs: number };
  stats: Stats;
  crypto: CryptoShow;
  /** remote nodes: per op, NBD arrival to reply, the last 10 s and since start; null for exports */
  latency: LatencyShow | null;
  /** an export whose disk is an NBD server: the link to it; null otherwise */
  backend: BackendShow | null;
}

/** An export's NBD backend (issue 17), as `node show` has it. */
export interface BackendShow {
  uri: string;
  state: 'connected' | 'reconnecting' | 'closed';
  reconnects: number;
  /** requests sent again on a new link after a drop */
  reissued: number;
  /** the server's transmission flags, as words */
  flags: string;
}

/** A verify pass as `node show` has it. */
export interface VerifyShow {
  running: boolean;
  doneBytes: number;
  totalBytes: number;
  mismatches: number;
  repaired: number;
  /** bytes compared per second over the pass so far */
  bytesPerSecond: number;
  /** what is left at that rate; null when the pass is not running or no rate is known yet */
  etaMs: number | null;
  /** the pass's first mismatching regions (at most MAX_SHOWN_MISMATCHES, verify.ts); all are counted in mismatches */
  mismatchList: VerifyMismatch[];
  /** more regions mismatched than mismatchList holds */
  truncated: boolean;
}

/** A mirror's split brain as `node show` has it: the legs that diverged and each one's generation (hex), in the same order. */
export interface SplitBrainShow { legs: number[]; generations: string[] }

/** A region whose legs differ: device offset and length in bytes, the legs that differ from the majority (all compared legs when none has one). */
export interface VerifyMismatch { offset: number; length: number; legs: number[] }

export interface VerifyOptions {
  repair: boolean;
  /** the leg repairs copy from; null: the digest most legs agree on (three or more legs) */
  from: number | null;
}

/** What `node verify` answers after its pass. */
export interface VerifyReport { regions: number; mismatches: VerifyMismatch[]; repaired: number }

export type LegState = 'connecting' | 'in-sync' | 'behind' | 'resyncing' | 'failed';
export const LEG_STATES: readonly LegState[] = ['connecting', 'in-sync', 'behind', 'resyncing', 'failed'];

export interface LegStats {
  reads: number;
  writes: number;
  bytesRead: number;
  bytesWritten: number;
  /** bytes written to this leg by resync since the node started */
  resyncedBytes: number;
  /** bytes of this leg compared by digest (checksum resync) since the node started */
  comparedBytes: number;
  failed: number;
  reconnects: number;
  /** the leg's transaction table: sent again after the resend timeout, replayed after a reconnect, in flight now */
  resends: number;
  replayed: number;
  inflight: number;
}

export interface LegShow {
  index: number;
  remote: string;
  export: string | null;
  state: LegState;
  /** why the leg is not in sync (e.g. unknown-data, leg-timeout, foreign-metadata, split-brain, taken-over); null when in sync */
  reason: string | null;
  /** the leg's usable size in bytes once its first HELLO told it */
  size: number | null;
  /** the export identity (hex) once known */
  identity: string | null;
  outOfSyncBytes: number;
  /** mirror: the generation (hex) this leg's data is complete to; null when not known (it compares) or not a mirror */
  generation: string | null;
  /** `rate`: the bytes/s the resync pace allows now (resync-min-rate ≤ rate ≤ resync-rate) */
  resync: { doneBytes: number; totalBytes: number; bytesPerSecond: number; etaMs: number | null; rate: number } | null;
  stats: LegStats;
  /** per op, what the device sent this leg to its answer */
  latency: LatencyShow;
}

export interface Limits {
  maxControlMessage: number;
  controlPartialTimeoutMs: number;
  maxConnectionsPerExport: number;
  helloTimeoutMs: number;
  maxInflightPerConnection: number;
  maxInflightCap: number;
  maxRequestCap: number;
}

/** DESIGN §2 */
export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxControlMessage: 1024 * 1024,
  controlPartialTimeoutMs: 10_000,
  maxConnectionsPerExport: 64,
  helloTimeoutMs: 10_000,
  maxInflightPerConnection: 128,
  maxInflightCap: 128,
  maxRequestCap: 32 * 1024 * 1024,
});

export interface StatusShow {
  version: string;
  pid: number;
  uptimeMs: number;
  socket: string;
  stateDir: string;
  limits: Limits;
  cryptoThreads: number;
  /** what seals and opens frames: "native (OpenSSL …)" or "node:crypto: why not native" */
  cipherImpl: string;
  /** how one disk, one export is kept across processes: "flock (native addon)" or "off: why" */
  diskLock: string;
  /** TRIM, zeroing and extents (src/engine/io/file-ops.ts): "native (…)" or "fallback: why" */
  fileOps: string;
  /** how memory is given back below JavaScript (src/engine/heap.ts): "full GC + malloc_trim after …" */
  heap: string;
  /** where accepted sockets read into (src/engine/io/adopt.ts): our buffers, or Node's */
  socketReads: string;
  nodes: { name: string; role: Role; state: NodeState; attachment: AttachmentShow | null }[];
  /** the config file (null: --no-config), whether changes are saved to it, whether what runs differs from it */
  config: { file: string | null; autosave: boolean; unsaved: boolean };
  /** where /metrics is served (ADDR:PORT), null when off */
  metrics: string | null;
  /** the remote nodes' NBD requests, added up, over the last 10 s */
  rates: Rates;
}

/** The parts of `status` the engine adds to the registry's. */
export type EngineStatusKeys = 'config' | 'metrics' | 'rates';

// ---- events (DESIGN §6) ----

export type EventName =
  | 'subscribed' | 'events-lost'
  | 'node-added' | 'node-removed' | 'node-started' | 'node-stopped'
  | 'state-changed' | 'connected' | 'disconnected' | 'replayed' | 'txn-failed'
  | 'auth-failed' | 'acl-denied' | 'attached' | 'detached' | 'attach-broken'
  | 'leg-state' | 'resync-progress' | 'resync-done' | 'verify-progress' | 'verify-done' | 'split-brain';

/** Fields per event, besides {seq, ts, node, event}. */
export interface EventFields {
  /** state-changed: node states; leg-state: leg states */
  from?: NodeState | LegState;
  to?: NodeState | LegState;
  reason?: string | null;
  sessionId?: string;
  count?: number;
  op?: string;
  offset?: number;
  length?: number;
  errno?: string;
  addr?: string;
  device?: string;
  method?: string;
  message?: string;
  /** leg-state, resync-*: the leg's index */
  leg?: number;
  doneBytes?: number;
  totalBytes?: number;
  bytes?: number;
  ms?: number;
  /** verify-done */
  regions?: number;
  mismatches?: number;
  repaired?: number;
  /** split-brain: the legs written apart and the generation each holds */
  legs?: number[];
  generations?: string[];
  /** mirror leg-state, resync-progress: the leg's generation (hex; null: not known, it compares) and what it misses */
  generation?: string | null;
  outOfSyncBytes?: number;
  /** resync-progress, verify-progress: the rate so far and what is left at it (null: no rate yet) */
  bytesPerSecond?: number;
  etaMs?: number | null;
}

export interface EventRecord extends EventFields {
  seq: number;
  /** wall-clock ms since epoch */
  ts: number;
  node: string | null;
  event: EventName;
}

/** Where nodes announce events; the engine's event bus implements it. */
export interface EventSink {
  emit(node: string, event: EventName, fields?: EventFields): void;
}

// ---- what the engine gives a node runtime ----

export interface NodeContext {
  clock: Clock;
  log: Logger;
  events: EventSink;
  /** the runtime dir (control socket's dir); NBD sockets go in <runtimeDir>/nbd/<name>.sock */
  runtimeDir: string;
  /** the state dir: export identities, attachments */
  stateDir: string;
  limits: Limits;
  /** the engine-wide crypto worker pool (DESIGN §9) */
  cryptoPool: CryptoPool;
}

/** The live part of a node, owned by the registry next to its config. */
export interface NodeRuntime {
  readonly state: NodeState;
  readonly reason: string | null;
  /** Export: bind and serve. Remote: start connecting (resolves at once; see waitReady). Idempotent. */
  start(opts?: StartOptions): Promise<void>;
  /** Drain: no new requests; in-flight finish or fail with ESHUTDOWN after 10 s (force: at once). */
  stop(opts: { force: boolean }): Promise<void>;
  /** Called after the registry changed the node's config (policy, acl, crypto); applies what applies now. */
  configChanged(): void;
  /** The runtime fields of NodeShow: state, reason, size, listen (real port), nbd, sessionId, permissions, stats. */
  show(): RuntimeShow;
}

/** What a runtime reports for NodeShow (multi-leg remote nodes add degraded and legs). */
export type RuntimeShow = Pick<NodeShow, 'state' | 'reason' | 'size' | 'listen' | 'nbd' | 'sessionId' | 'permissions' | 'stats'>
  & Partial<Pick<NodeShow, 'degraded' | 'legs' | 'verify' | 'splitBrain' | 'uuid' | 'latency' | 'backend'>>;

/** A change of a running mirror's legs. */
export type LegEdit =
  /** append a leg; forceInit: an export holding mirror metadata is initialised (its data overwritten) */
  | { op: 'add'; leg: LegConfig; forceInit?: boolean }
  /** remove leg `index` (the legs after it renumbered); force: even the last in-sync one */
  | { op: 'del'; index: number; force?: boolean };

/** One-shot options of a start (a mirror's assembly; other nodes have none). */
export interface StartOptions {
  /** mirror: assemble from the legs reached even without a state-dir record (a leg away may hold newer data) */
  degraded?: boolean;
  /** mirror: initialise legs that hold another mirror's metadata or none in common with this one (their data is overwritten) */
  forceInit?: boolean;
  /** mirror, split-brain resolution: this leg survives; the others compare and copy what differs from it */
  keep?: number;
}

/** A remote node's registry entry as its runtime sees it: the config, and how a new order of its legs is saved (a mirror follows its legs' metadata). */
export interface RemoteEntry { readonly config: RemoteConfig; saveLegs?(legs: LegConfig[]): Promise<void> }

export interface RemoteRuntime extends NodeRuntime {
  /** Resolve when ready, or after ms with the current state (never rejects). */
  waitReady(ms: number): Promise<RemoteState>;
  /** Drop the connection and handshake again (crypto changes apply). */
  reconnect(): void;
  /** A mirror's verify pass. */
  verify(o: VerifyOptions): Promise<VerifyReport>;
  /** A mirror in split brain: restart it keeping leg `keep`. */
  resolve(keep: number): Promise<void>;
  /** node leg add/del on a running mirror; `commit` installs (and saves) the new legs in the node's config */
  editLegs(edit: LegEdit, commit: (legs: LegConfig[]) => Promise<void>): Promise<void>;
}

// ---- control API: one entry per CLI request (DESIGN §6). The netlink table encodes these. ----

export interface NodeAddArgs {
  name: string;
  role: Role;
  size: number | null;
  // export
  disk?: string;
  listen?: string;
  readonly?: boolean;
  create?: number | null;
  // remote: one leg in remote/export (single), or a layout and its legs
  remote?: string;
  export?: string | null;
  nbdListen?: string | null;
  layout?: Layout;
  legs?: LegConfig[];
  chunk?: number;
  region?: number;
}

export interface CryptoSetArgs {
  name: string;
  cipher?: string;
  hash?: string;
  cipherKeyFile?: string;
  hashKeyFile?: string;
  threads?: number;
}

export interface ControlApi {
  'hello': { args: { version: string }; result: { version: string; pid: number } };
  'node-add': { args: NodeAddArgs; result: NodeShow };
  'node-start': { args: { name: string; waitMs: number; degraded?: boolean; forceInit?: boolean }; result: NodeShow };
  'node-stop': { args: { name: string; force: boolean }; result: NodeShow };
  'node-del': { args: { name: string }; result: { name: string } };
  'node-reconnect': { args: { name: string }; result: NodeShow };
  'node-list': { args: Record<string, never>; result: NodeShow[] };
  'node-show': { args: { name: string }; result: NodeShow };
  'node-set': { args: { name: string } & Partial<Policy>; result: NodeShow };
  /** a mirror's verify pass (waits for it); repair from `from`, or the majority of three or more legs */
  'node-verify': { args: { name: string } & VerifyOptions; result: VerifyReport };
  'node-resolve': { args: { name: string; keep: number }; result: NodeShow };
  'node-leg-add': { args: { name: string; remote: string; export: string | null; forceInit?: boolean }; result: NodeShow };
  'node-leg-del': { args: { name: string; leg: number; force?: boolean }; result: NodeShow };
  'security-add': { args: { name: string; addr: string; perm: Perm; keyFile: string | null }; result: AclEntry[] };
  'security-del': { args: { name: string; addr: string }; result: AclEntry[] };
  'security-list': { args: { name: string }; result: AclEntry[] };
  /** replace-append all entries at once; all-or-nothing */
  'security-load': { args: { name: string; entries: AclEntry[] }; result: AclEntry[] };
  'crypto-set': { args: CryptoSetArgs; result: CryptoShow };
  'crypto-show': { args: { name: string }; result: CryptoShow };
  'crypto-clear': { args: { name: string }; result: CryptoShow };
  'status': { args: Record<string, never>; result: StatusShow };
  'config-show': { args: Record<string, never>; result: { text: string } };
  'config-save': { args: { file: string | null; force?: boolean }; result: { file: string } };
  'config-load': { args: { file: string }; result: { nodes: string[] } };
  /** turns the connection into an event stream; first record is `subscribed` */
  'subscribe': { args: { node: string | null }; result: EventRecord };
  /** a ready remote node as a local block device (DESIGN §10) */
  'attach': { args: { name: string; method: AttachMethodArg }; result: AttachmentShow };
  /** remove the local block device; refused while mounted unless force (which unmounts first) */
  'detach': { args: { name: string; force: boolean }; result: DetachShow };
}

export type ControlCommand = keyof ControlApi;

// What `node show` and `status` answer (DESIGN §5): a node's config and what its runtime reports,
// merged into the NodeShow shape where every key is present and null when unknown or not of the
// node's role; the engine's status from its parts. Pure: the registry hands in the pieces.
import { cipherImplementationText } from '../protocol/native-cipher.js';
import type { AttachNodeInfo } from './attach/manager.js';
import { diskLockText } from './export/disk-lock.js';
import { heapText } from './heap.js';
import { socketReadsText } from './io/adopt.js';
import { fileOpsText } from './io/file-ops.js';
import {
  deadlineMs, emptyStats, type AttachmentShow, type EngineStatusKeys, type NodeConfig, type NodeRuntime, type NodeShow, type StatusShow,
} from './types.js';
import { aclCopy } from './node-edits.js';
import { cryptoShow } from './validate.js';

export interface ShowParts {
  config: NodeConfig;
  runtime: NodeRuntime;
  /** the disk's size when last checked (exports) */
  diskSize: number | null;
  attachment: AttachmentShow | null;
  /** default crypto threads */
  cores: number;
}

export function nodeShow({ config: c, runtime, diskSize, attachment, cores }: ShowParts): NodeShow {
  const r = runtime.show();
  const exp = c.role === 'export';
  return {
    name: c.name,
    role: c.role,
    state: r.state ?? runtime.state,
    reason: r.reason ?? null,
    size: r.size ?? c.size ?? (exp ? diskSize : null),
    autostart: c.autostart,
    disk: exp ? c.disk : null,
    listen: exp ? (r.listen ?? c.listen) : null,
    readonly: exp ? c.readonly : null,
    acl: exp ? aclCopy(c.acl) : null,
    remote: exp || c.layout !== 'single' ? null : c.legs[0]!.remote,
    export: exp || c.layout !== 'single' ? null : c.legs[0]!.export,
    layout: exp ? null : c.layout,
    chunk: exp || c.layout !== 'stripe' ? null : c.chunk,
    region: exp || c.layout !== 'mirror' ? null : c.region,
    degraded: exp ? null : (r.degraded ?? null),
    legs: exp ? null : (r.legs ?? null),
    verify: exp ? null : (r.verify ?? null),
    splitBrain: exp ? null : (r.splitBrain ?? null),
    uuid: exp ? null : (r.uuid ?? null),
    permissions: exp ? null : (r.permissions ?? null),
    nbd: exp || !r.nbd ? null : { socket: r.nbd.socket, uri: r.nbd.uri, listen: r.nbd.listen ?? null },
    attachment: exp ? null : attachment,
    sessionId: exp ? null : (r.sessionId ?? null),
    policy: { ...c.policy, deadlineMs: deadlineMs(c.policy) },
    stats: { ...emptyStats(), ...r.stats },
    crypto: cryptoShow(c.crypto, cores),
    latency: r.latency ?? null,
    backend: exp ? (r.backend ?? null) : null,
  };
}

/** What the attachment manager needs to know of a node. */
export function attachView(c: NodeConfig, runtime: NodeRuntime): AttachNodeInfo {
  const r = runtime.show();
  return { role: c.role, state: runtime.state, reason: runtime.reason, socket: r.nbd?.socket ?? null, permissions: r.permissions ?? null };
}

/** `status` without its config part (the engine adds that): this process, its paths and limits, the nodes. */
export function statusShow(p: Pick<StatusShow, 'version' | 'uptimeMs' | 'socket' | 'stateDir' | 'limits' | 'cryptoThreads' | 'nodes'>):
Omit<StatusShow, EngineStatusKeys> {
  return {
    version: p.version,
    pid: process.pid,
    uptimeMs: Math.max(0, Math.round(p.uptimeMs)),
    socket: p.socket,
    stateDir: p.stateDir,
    limits: { ...p.limits },
    cryptoThreads: p.cryptoThreads,
    cipherImpl: cipherImplementationText,
    diskLock: diskLockText,
    fileOps: fileOpsText,
    heap: heapText(),
    socketReads: socketReadsText(),
    nodes: p.nodes,
  };
}

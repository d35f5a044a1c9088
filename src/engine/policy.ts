// The policy keys of a node (DESIGN §11), declared once: one row per key with its name (the CLI
// option and the INI key), its Policy field, its netlink attributes, its unit, default, bounds and
// help text. Validation, the config file, the netlink schema, `dst node set` and rendering are all
// derived from this table, so adding a policy key touches only this file. Pure: no I/O.
import { formatDuration, formatSize } from '../util/parse.js';
import type { Limits } from './types.js';

/** How a value is typed and shown: a duration in ms ("5s"), a byte size ("1M") or a plain count. */
export type PolicyKind = 'duration' | 'size' | 'int';

/** An upper bound: a fixed number, or an engine limit (then `dst node set --help` names its default). */
export type PolicyBound = number | keyof Limits;

/** Longest accepted duration: one day (keeps timers and deadlines far from overflow). */
const MAX_DURATION_MS = 86_400_000;
const MIN_MAX_REQUEST = 4096;
const MAX_MAX_RESENDS = 1000;

interface PolicyKeySpec {
  /** the Policy field */
  readonly field: string;
  /** the user's name: `dst node set --KEY`, `KEY = ...` in the config file, `node show` text */
  readonly key: string;
  readonly kind: PolicyKind;
  readonly default: number;
  readonly min: number;
  readonly max: PolicyBound;
  /** attribute number in the policy object of `node show` (7 is deadlineMs) */
  readonly showAttr: number;
  /** attribute number in the `node set` arguments (1 is the node name) */
  readonly setAttr: number;
  /** what it does; the default (and the cap, when it is an engine limit) are appended */
  readonly help: string;
}

/** The table, in the order keys are written, shown and documented. Attribute numbers are never reused. */
export const POLICY_TABLE = [
  { field: 'resendTimeoutMs', key: 'resend-timeout', kind: 'duration', default: 5000, min: 1, max: MAX_DURATION_MS,
    showAttr: 1, setAttr: 2, help: 'dead connection after this long without a byte' },
  { field: 'maxResends', key: 'max-resends', kind: 'int', default: 12, min: 0, max: MAX_MAX_RESENDS,
    showAttr: 2, setAttr: 3, help: 'replays per transaction' },
  { field: 'pingIntervalMs', key: 'ping-interval', kind: 'duration', default: 1000, min: 1, max: MAX_DURATION_MS,
    showAttr: 3, setAttr: 4, help: 'PING after this long without a byte' },
  { field: 'reconnectDelayMs', key: 'reconnect-delay', kind: 'duration', default: 1000, min: 1, max: MAX_DURATION_MS,
    showAttr: 4, setAttr: 5, help: 'first reconnect backoff, doubling to 30s' },
  { field: 'maxInflight', key: 'max-inflight', kind: 'int', default: 64, min: 1, max: 'maxInflightCap',
    showAttr: 5, setAttr: 6, help: 'transactions in flight' },
  { field: 'maxRequest', key: 'max-request', kind: 'size', default: 1024 * 1024, min: MIN_MAX_REQUEST, max: 'maxRequestCap',
    showAttr: 6, setAttr: 7, help: 'split NBD requests above this' },
  { field: 'maxHandshakesPerAddr', key: 'max-handshakes-per-addr', kind: 'int', default: 8, min: 1, max: 'maxConnectionsPerExport',
    showAttr: 8, setAttr: 8, help: 'connections from one address still in the handshake' },
  { field: 'maxConnsPerAddr', key: 'max-conns-per-addr', kind: 'int', default: 32, min: 1, max: 'maxConnectionsPerExport',
    showAttr: 9, setAttr: 9, help: 'connections from one address in all' },
  { field: 'legTimeoutMs', key: 'leg-timeout', kind: 'duration', default: 0, min: 0, max: MAX_DURATION_MS,
    showAttr: 10, setAttr: 10, help: 'mirror: a leg silent this long goes behind and the others complete the request; 0 = resend-timeout' },
  { field: 'resyncRate', key: 'resync-rate', kind: 'size', default: 0, min: 0, max: 1024 ** 4,
    showAttr: 11, setAttr: 11, help: 'mirror: resync bytes per second at most; 0 = as fast as the legs allow' },
  { field: 'resyncMinRate', key: 'resync-min-rate', kind: 'size', default: 10 * 1024 * 1024, min: 64 * 1024, max: 1024 ** 3,
    showAttr: 12, setAttr: 12, help: 'mirror: resync bytes per second at least, however busy the device (resync-rate still caps it)' },
  { field: 'verifyIntervalMs', key: 'verify-interval', kind: 'duration', default: 0, min: 0, max: MAX_DURATION_MS,
    showAttr: 13, setAttr: 13, help: 'mirror: a verify pass (report only) this long after the last one ended; 0 = off' },
] as const satisfies readonly PolicyKeySpec[];

export type PolicyKey = (typeof POLICY_TABLE)[number];
export type PolicyField = PolicyKey['field'];

/** A node's policy: one number per row of the table. */
export type Policy = { [F in PolicyField]: number };

/** DESIGN §11 */
export const DEFAULT_POLICY: Readonly<Policy> = Object.freeze(
  Object.fromEntries(POLICY_TABLE.map((k) => [k.field, k.default])) as Policy);

/** Policy field → its row. */
export const POLICY_BY_FIELD: ReadonlyMap<string, PolicyKey> = new Map(POLICY_TABLE.map((k) => [k.field, k]));

/** How long a mirror waits for a silent leg (leg-timeout; 0 follows resend-timeout). */
export function legTimeoutOf(p: Policy): number {
  return p.legTimeoutMs > 0 ? p.legTimeoutMs : p.resendTimeoutMs;
}

/** The value of a bound under the engine's limits. */
export function boundOf(b: PolicyBound, limits: Limits): number {
  return typeof b === 'number' ? b : limits[b];
}

/** A value as the user writes it: "5s", "1M", "12". */
export function formatPolicyValue(k: PolicyKey, v: number): string {
  return k.kind === 'duration' ? formatDuration(v) : k.kind === 'size' ? formatSize(v) : String(v);
}

/** "KEY VALUE" for `node show` and `node set` text. */
export function policyText(k: PolicyKey, p: Policy): string {
  return `${k.key} ${formatPolicyValue(k, p[k.field])}`;
}

/** The yargs name of a key's option ("max-inflight" → "maxInflight"). */
export function optionName(k: PolicyKey): string {
  return k.key.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** `dst node set --KEY` help: what it does, its default and, when an engine limit caps it, the cap. */
export function policyHelp(k: PolicyKey, limits: Limits): string {
  const cap = typeof k.max === 'number' ? '' : `, at most ${formatPolicyValue(k, boundOf(k.max, limits))}`;
  return `${k.help} (default ${formatPolicyValue(k, k.default)}${cap})`;
}

// The `dst` generic-netlink family: ONE declared table. For every control command: its genl cmd
// number, the schema of its arguments and of its result, how the result travels (one message,
// a dump, an event stream), the node states in which the engine permits it, and its help text.
// CLI help, man/dst.8 and the engine's handlers are checked against this table by tests.
//
// Family id: DST_FAMILY_ID = 0x1d57 ("dst" has no kernel family, so there is no controller to
// resolve a name; the id is fixed and documented in dst-protocol.7). Any value >= NLMSG_MIN_TYPE
// (16) is free on our own socket; 0x1d57 was picked so that a stray kernel genl message (low
// dynamic ids) or a NLMSG_* control type is never mistaken for ours. genl version = 1.
//
// Attribute numbering follows the kernel: each object has its own enum, UNSPEC = 0 unused, fields
// from 1; lists nest as [LIST][ITEM = 1][FIELD]. The enums can be listed with attrEnum(schema).
import { LAYOUTS } from '../engine/types.js';
import type { AclEntry, ControlApi, ControlCommand, CryptoSetArgs, NodeAddArgs, NodeState, Role, VerifyReport } from '../engine/types.js';
import { DstError } from '../util/errors.js';
import { POLICY_TABLE } from '../engine/policy.js';
import {
  NODE_STATES, PERMS, ROLES, aclEntrySchema, attachmentSchema, cryptoShowSchema, eventRecordSchema, legConfigSchema,
  nodeShowSchema, statusShowSchema, verifyMismatchSchema,
} from './objects.js';
import { type AnySchema, type ObjectSchema, byAttr, objectSchema, t, validateSchema } from './schema.js';

export { encodeObject, decodeObject, objectSchema, attrEnum, t } from './schema.js';
export type { ObjectSchema } from './schema.js';

export const DST_FAMILY_NAME = 'dst';
/** nlmsg_type of every dst family message (documented in man/dst-protocol.7). */
export const DST_FAMILY_ID = 0x1d57;
export const DST_GENL_VERSION = 1;

/** genl command numbers. UNSPEC = 0 first; numbers are never reused. */
export const DST_CMD = {
  UNSPEC: 0,
  HELLO: 1,
  NODE_ADD: 2,
  NODE_START: 3,
  NODE_STOP: 4,
  NODE_DEL: 5,
  NODE_RECONNECT: 6,
  NODE_LIST: 7,
  NODE_SHOW: 8,
  NODE_SET: 9,
  SECURITY_ADD: 10,
  SECURITY_DEL: 11,
  SECURITY_LIST: 12,
  SECURITY_LOAD: 13,
  CRYPTO_SET: 14,
  CRYPTO_SHOW: 15,
  CRYPTO_CLEAR: 16,
  STATUS: 17,
  CONFIG_SHOW: 18,
  CONFIG_SAVE: 19,
  CONFIG_LOAD: 20,
  SUBSCRIBE: 21,
  /** engine → client: one pushed event record on a subscribed connection */
  EVENT: 22,
  /** `dst attach` / `dst detach` (DESIGN §10) */
  ATTACH: 23,
  DETACH: 24,
  NODE_VERIFY: 25,
  NODE_RESOLVE: 26,
  NODE_LEG_ADD: 27,
  NODE_LEG_DEL: 28,
} as const;

// ---- per-command argument/result schemas ----
type Empty = Record<string, never>;
export const emptySchema = objectSchema<Empty>('empty', {});
const nameOnly = objectSchema<{ name: string }>('name', { name: { attr: 1, type: t.string } });

export const helloArgsSchema = objectSchema<ControlApi['hello']['args']>('hello-args', {
  version: { attr: 1, type: t.string, doc: 'the client version' },
});
export const helloResultSchema = objectSchema<ControlApi['hello']['result']>('hello-result', {
  version: { attr: 1, type: t.string, doc: 'the engine version' },
  pid: { attr: 2, type: t.u32 },
});
export const nodeAddArgsSchema = objectSchema<NodeAddArgs>('node-add-args', {
  name: { attr: 1, type: t.string },
  role: { attr: 2, type: t.oneOf(ROLES) },
  size: { attr: 3, type: t.u64, presence: 'nullable' },
  disk: { attr: 4, type: t.string, presence: 'optional' },
  listen: { attr: 5, type: t.string, presence: 'optional' },
  readonly: { attr: 6, type: t.bool, presence: 'optional' },
  create: { attr: 7, type: t.u64, presence: 'optional-nullable' },
  remote: { attr: 8, type: t.string, presence: 'optional' },
  export: { attr: 9, type: t.string, presence: 'optional-nullable' },
  nbdListen: { attr: 10, type: t.string, presence: 'optional-nullable' },
  layout: { attr: 11, type: t.oneOf(LAYOUTS), presence: 'optional' },
  legs: { attr: 12, type: t.array(t.object(legConfigSchema)), presence: 'optional' },
  chunk: { attr: 13, type: t.u32, presence: 'optional' },
  region: { attr: 14, type: t.u32, presence: 'optional' },
});
const nodeStartArgs = objectSchema<ControlApi['node-start']['args']>('node-start-args', {
  name: { attr: 1, type: t.string },
  waitMs: { attr: 2, type: t.u32 },
  degraded: { attr: 3, type: t.bool, presence: 'optional' },
  forceInit: { attr: 4, type: t.bool, presence: 'optional' },
});
const nodeResolveArgs = objectSchema<ControlApi['node-resolve']['args']>('node-resolve-args', {
  name: { attr: 1, type: t.string },
  keep: { attr: 2, type: t.u32 },
});
const nodeLegAddArgs = objectSchema<ControlApi['node-leg-add']['args']>('node-leg-add-args', {
  name: { attr: 1, type: t.string },
  remote: { attr: 2, type: t.string, doc: 'HOST:PORT of the export' },
  export: { attr: 3, type: t.string, presence: 'nullable', doc: 'export name (null: the default)' },
  forceInit: { attr: 4, type: t.bool, presence: 'optional' },
});
const nodeLegDelArgs = objectSchema<ControlApi['node-leg-del']['args']>('node-leg-del-args', {
  name: { attr: 1, type: t.string },
  leg: { attr: 2, type: t.u32, doc: 'the leg index (legs after it are renumbered)' },
  force: { attr: 3, type: t.bool, presence: 'optional' },
});
const nodeStopArgs = objectSchema<ControlApi['node-stop']['args']>('node-stop-args', {
  name: { attr: 1, type: t.string },
  force: { attr: 2, type: t.bool },
});
const nodeVerifyArgs = objectSchema<ControlApi['node-verify']['args']>('node-verify-args', {
  name: { attr: 1, type: t.string },
  repair: { attr: 2, type: t.bool },
  from: { attr: 3, type: t.u32, presence: 'nullable' },
});
export const verifyReportSchema = objectSchema<VerifyReport>('verify-report', {
  regions: { attr: 1, type: t.u64 },
  mismatches: { attr: 2, type: t.array(t.object(verifyMismatchSchema)) },
  repaired: { attr: 3, type: t.u64 },
});
/** `node set`: the node's name and any rows of the policy table. */
const nodeSetArgs = objectSchema<ControlApi['node-set']['args']>('node-set-args', byAttr<ControlApi['node-set']['args']>([
  ['name', { attr: 1, type: t.string }],
  ...POLICY_TABLE.map((k): [string, { attr: number; type: typeof t.u32; presence: 'optional' }] =>
    [k.field, { attr: k.setAttr, type: t.u32, presence: 'optional' }]),
]));
const securityAddArgs = objectSchema<ControlApi['security-add']['args']>('security-add-args', {
  name: { attr: 1, type: t.string },
  addr: { attr: 2, type: t.string },
  perm: { attr: 3, type: t.oneOf(PERMS) },
  keyFile: { attr: 4, type: t.string, presence: 'nullable' },
});
const securityDelArgs = objectSchema<ControlApi['security-del']['args']>('security-del-args', {
  name: { attr: 1, type: t.string },
  addr: { attr: 2, type: t.string },
});
const securityLoadArgs = objectSchema<ControlApi['security-load']['args']>('security-load-args', {
  name: { attr: 1, type: t.string },
  entries: { attr: 2, type: t.array(t.object(aclEntrySchema)) },
});
/** security-add/del/load answer the whole ACL in one message: [ACL][ITEM][FIELD]. */
export const aclListSchema = objectSchema<{ acl: AclEntry[] }>('acl-list', {
  acl: { attr: 1, type: t.array(t.object(aclEntrySchema)) },
});
const cryptoSetArgs = objectSchema<CryptoSetArgs>('crypto-set-args', {
  name: { attr: 1, type: t.string },
  cipher: { attr: 2, type: t.string, presence: 'optional' },
  hash: { attr: 3, type: t.string, presence: 'optional' },
  cipherKeyFile: { attr: 4, type: t.string, presence: 'optional' },
  hashKeyFile: { attr: 5, type: t.string, presence: 'optional' },
  threads: { attr: 6, type: t.u32, presence: 'optional' },
});
export const configTextSchema = objectSchema<ControlApi['config-show']['result']>('config-text', {
  text: { attr: 1, type: t.text, doc: 'the INI text, split over several attributes when large' },
});
const configSaveArgs = objectSchema<ControlApi['config-save']['args']>('config-save-args', {
  file: { attr: 1, type: t.string, presence: 'nullable', doc: 'null = the file the engine was started with' },
  force: { attr: 2, type: t.bool, presence: 'optional', doc: 'overwrite the engine\'s file even when it was changed behind the engine\'s back' },
});
const configSaveResult = objectSchema<ControlApi['config-save']['result']>('config-save-result', {
  file: { attr: 1, type: t.string },
});
const configLoadArgs = objectSchema<ControlApi['config-load']['args']>('config-load-args', {
  file: { attr: 1, type: t.string },
});
const configLoadResult = objectSchema<ControlApi['config-load']['result']>('config-load-result', {
  nodes: { attr: 1, type: t.array(t.string) },
});
const attachArgs = objectSchema<ControlApi['attach']['args']>('attach-args', {
  name: { attr: 1, type: t.string },
  method: { attr: 2, type: t.oneOf(['auto', 'nbd', 'fuse']), doc: 'auto: nbd if /dev/nbd0 and nbd-client exist, else fuse' },
});
const detachArgs = objectSchema<ControlApi['detach']['args']>('detach-args', {
  name: { attr: 1, type: t.string },
  force: { attr: 2, type: t.bool, doc: 'unmount what is mounted on the device first' },
});
export const detachResultSchema = objectSchema<ControlApi['detach']['result']>('detach-result', {
  name: { attr: 1, type: t.string },
  device: { attr: 2, type: t.string },
  method: { attr: 3, type: t.oneOf(['nbd', 'fuse']) },
});
const subscribeArgs = objectSchema<ControlApi['subscribe']['args']>('subscribe-args', {
  node: { attr: 1, type: t.string, presence: 'nullable', doc: 'only events of this node; null = all' },
});

// ---- the table ----
/**
 * How a result travels:
 *  - object:  one message (cmd = the command), attributes = the result object;
 *  - wrapped: one message; the result (an array) is the value of `key` in `schema`;
 *  - dump:    the request carries NLM_F_DUMP; one NLM_F_MULTI message per element, then NLMSG_DONE;
 *  - stream:  subscribe: the first record (`subscribed`) answers the request with NLM_F_MULTI, then
 *             every event is an EVENT message with the request's seq, until either side closes.
 */
export type ReplySpec<R> =
  [R] extends [readonly (infer I)[]]
    ? { readonly kind: 'dump'; readonly item: ObjectSchema<I> } | WrappedReply<R>
    : { readonly kind: 'object'; readonly schema: ObjectSchema<R> } | { readonly kind: 'stream'; readonly schema: ObjectSchema<R> };

/** Keys an array result may be wrapped under (one message with a list attribute). */
export type WrapKey = 'acl';
export type WrappedReply<R> = { [K in WrapKey]: { readonly kind: 'wrapped'; readonly key: K; readonly schema: ObjectSchema<{ [P in K]: R }> } }[WrapKey];

export interface CommandSpec<C extends ControlCommand> {
  readonly name: C;
  readonly cmd: number;
  /** the CLI command line that sends it, or null (hello: sent by every CLI command) */
  readonly cli: string | null;
  readonly help: string;
  readonly args: ObjectSchema<ControlApi[C]['args']>;
  readonly reply: ReplySpec<ControlApi[C]['result']>;
  /** node states in which the engine permits the command ('any': every state, or no node involved) */
  readonly states: 'any' | readonly NodeState[];
  /** node roles the command applies to ('any': both, or no node involved) */
  readonly roles: 'any' | readonly Role[];
}

export type FamilyTable = { readonly [C in ControlCommand]: CommandSpec<C> };
/** Any one entry of the table (a union over the commands). */
export type AnyCommandSpec = FamilyTable[ControlCommand];

const ALL_BUT_STOPPING: readonly NodeState[] = NODE_STATES.filter((s) => s !== 'stopping');

export const FAMILY: FamilyTable = {
  'hello': {
    name: 'hello', cmd: DST_CMD.HELLO, cli: null,
    help: 'Exchange versions; the client refuses an engine of another version',
    args: helloArgsSchema, reply: { kind: 'object', schema: helloResultSchema }, states: 'any', roles: 'any',
  },
  'node-add': {
    name: 'node-add', cmd: DST_CMD.NODE_ADD, cli: 'node add',
    help: 'Add an export or remote node (validated and stored, not started)',
    args: nodeAddArgsSchema, reply: { kind: 'object', schema: nodeShowSchema }, states: 'any', roles: 'any',
  },
  'node-start': {
    name: 'node-start', cmd: DST_CMD.NODE_START, cli: 'node start',
    help: 'Start serving (export) or connecting (remote); idempotent',
    args: nodeStartArgs, reply: { kind: 'object', schema: nodeShowSchema }, states: ALL_BUT_STOPPING, roles: 'any',
  },
  'node-stop': {
    name: 'node-stop', cmd: DST_CMD.NODE_STOP, cli: 'node stop',
    help: 'Stop a node, draining in-flight requests (--force fails them at once)',
    args: nodeStopArgs, reply: { kind: 'object', schema: nodeShowSchema }, states: 'any', roles: 'any',
  },
  'node-del': {
    name: 'node-del', cmd: DST_CMD.NODE_DEL, cli: 'node del',
    help: 'Delete a stopped (configured) node',
    args: nameOnly, reply: { kind: 'object', schema: nameOnly }, states: ['configured'], roles: 'any',
  },
  'node-reconnect': {
    name: 'node-reconnect', cmd: DST_CMD.NODE_RECONNECT, cli: 'node reconnect',
    help: 'Drop the connection of a remote node and handshake again (applies crypto changes)',
    args: nameOnly, reply: { kind: 'object', schema: nodeShowSchema }, states: ['connecting', 'ready', 'backoff'], roles: ['remote'],
  },
  'node-list': {
    name: 'node-list', cmd: DST_CMD.NODE_LIST, cli: 'node list',
    help: 'List every node with its state, policy and statistics',
    args: emptySchema, reply: { kind: 'dump', item: nodeShowSchema }, states: 'any', roles: 'any',
  },
  'node-show': {
    name: 'node-show', cmd: DST_CMD.NODE_SHOW, cli: 'node show',
    help: 'Show one node: state, addresses, policy, statistics, crypto',
    args: nameOnly, reply: { kind: 'object', schema: nodeShowSchema }, states: 'any', roles: 'any',
  },
  'node-set': {
    name: 'node-set', cmd: DST_CMD.NODE_SET, cli: 'node set',
    help: 'Change the policy of a node (applies at once)',
    args: nodeSetArgs, reply: { kind: 'object', schema: nodeShowSchema }, states: 'any', roles: 'any',
  },
  'node-verify': {
    name: 'node-verify', cmd: DST_CMD.NODE_VERIFY, cli: 'node verify',
    help: 'Compare every region of a mirror across its in-sync legs while it serves (--repair fixes mismatches)',
    args: nodeVerifyArgs, reply: { kind: 'object', schema: verifyReportSchema }, states: ['ready'], roles: ['remote'],
  },
  'node-leg-add': {
    name: 'node-leg-add', cmd: DST_CMD.NODE_LEG_ADD, cli: 'node leg add',
    help: 'Append a leg to a running mirror: it compares every region against the in-sync legs and copies what differs',
    args: nodeLegAddArgs, reply: { kind: 'object', schema: nodeShowSchema }, states: ['ready', 'backoff'], roles: ['remote'],
  },
  'node-leg-del': {
    name: 'node-leg-del', cmd: DST_CMD.NODE_LEG_DEL, cli: 'node leg del',
    help: 'Remove a leg from a running mirror (the legs after it are renumbered; the last in-sync leg only with --force)',
    args: nodeLegDelArgs, reply: { kind: 'object', schema: nodeShowSchema }, states: ['ready', 'backoff'], roles: ['remote'],
  },
  'node-resolve': {
    name: 'node-resolve', cmd: DST_CMD.NODE_RESOLVE, cli: 'node resolve',
    help: 'End a mirror\'s split brain: restart it keeping one leg; the others copy what differs from it',
    args: nodeResolveArgs, reply: { kind: 'object', schema: nodeShowSchema }, states: ALL_BUT_STOPPING, roles: ['remote'],
  },
  'security-add': {
    name: 'security-add', cmd: DST_CMD.SECURITY_ADD, cli: 'security add',
    help: 'Add or replace an ACL entry of an export (applies to the next request)',
    args: securityAddArgs, reply: { kind: 'wrapped', key: 'acl', schema: aclListSchema }, states: 'any', roles: ['export'],
  },
  'security-del': {
    name: 'security-del', cmd: DST_CMD.SECURITY_DEL, cli: 'security del',
    help: 'Remove an ACL entry of an export',
    args: securityDelArgs, reply: { kind: 'wrapped', key: 'acl', schema: aclListSchema }, states: 'any', roles: ['export'],
  },
  'security-list': {
    name: 'security-list', cmd: DST_CMD.SECURITY_LIST, cli: 'security list',
    help: 'List the ACL entries of an export',
    args: nameOnly, reply: { kind: 'dump', item: aclEntrySchema }, states: 'any', roles: ['export'],
  },
  'security-load': {
    name: 'security-load', cmd: DST_CMD.SECURITY_LOAD, cli: 'security load',
    help: 'Add several ACL entries at once, all or nothing',
    args: securityLoadArgs, reply: { kind: 'wrapped', key: 'acl', schema: aclListSchema }, states: 'any', roles: ['export'],
  },
  'crypto-set': {
    name: 'crypto-set', cmd: DST_CMD.CRYPTO_SET, cli: 'crypto set',
    help: 'Set the cipher, hash, key files or threads of a node (applies at the next handshake)',
    args: cryptoSetArgs, reply: { kind: 'object', schema: cryptoShowSchema }, states: 'any', roles: 'any',
  },
  'crypto-show': {
    name: 'crypto-show', cmd: DST_CMD.CRYPTO_SHOW, cli: 'crypto show',
    help: 'Show the crypto settings of a node (never key bytes)',
    args: nameOnly, reply: { kind: 'object', schema: cryptoShowSchema }, states: 'any', roles: 'any',
  },
  'crypto-clear': {
    name: 'crypto-clear', cmd: DST_CMD.CRYPTO_CLEAR, cli: 'crypto clear',
    help: 'Turn crypto off for a node (applies at the next handshake)',
    args: nameOnly, reply: { kind: 'object', schema: cryptoShowSchema }, states: 'any', roles: 'any',
  },
  'status': {
    name: 'status', cmd: DST_CMD.STATUS, cli: 'status',
    help: 'Show the engine: version, pid, uptime, paths, limits, nodes',
    args: emptySchema, reply: { kind: 'object', schema: statusShowSchema }, states: 'any', roles: 'any',
  },
  'config-show': {
    name: 'config-show', cmd: DST_CMD.CONFIG_SHOW, cli: 'config show',
    help: 'Print the running configuration as INI text',
    args: emptySchema, reply: { kind: 'object', schema: configTextSchema }, states: 'any', roles: 'any',
  },
  'config-save': {
    name: 'config-save', cmd: DST_CMD.CONFIG_SAVE, cli: 'config save',
    help: 'Write the running configuration to a file',
    args: configSaveArgs, reply: { kind: 'object', schema: configSaveResult }, states: 'any', roles: 'any',
  },
  'config-load': {
    name: 'config-load', cmd: DST_CMD.CONFIG_LOAD, cli: 'config load',
    help: 'Add the nodes of a config file, all or nothing',
    args: configLoadArgs, reply: { kind: 'object', schema: configLoadResult }, states: 'any', roles: 'any',
  },
  'subscribe': {
    name: 'subscribe', cmd: DST_CMD.SUBSCRIBE, cli: 'events',
    help: 'Stream engine events (optionally of one node), the subscribed record first',
    args: subscribeArgs, reply: { kind: 'stream', schema: eventRecordSchema }, states: 'any', roles: 'any',
  },
  'attach': {
    name: 'attach', cmd: DST_CMD.ATTACH, cli: 'attach',
    help: 'Attach a ready remote node as a local block device (/dev/nbdN or /dev/loopN); prints the device',
    args: attachArgs, reply: { kind: 'object', schema: attachmentSchema }, states: ['ready'], roles: ['remote'],
  },
  'detach': {
    name: 'detach', cmd: DST_CMD.DETACH, cli: 'detach',
    help: 'Remove the local block device of a remote node (refused while mounted unless --force)',
    args: detachArgs, reply: { kind: 'object', schema: detachResultSchema }, states: 'any', roles: ['remote'],
  },
};

export const COMMANDS: readonly ControlCommand[] = Object.keys(FAMILY) as ControlCommand[];

const byNumber = new Map<number, AnyCommandSpec>();
for (const c of COMMANDS) {
  const spec: AnyCommandSpec = FAMILY[c];
  if (byNumber.has(spec.cmd)) throw new DstError('DST_ERR_INTERNAL', `family table: ${c} reuses cmd ${spec.cmd}`);
  if (spec.cmd === DST_CMD.EVENT || spec.cmd === DST_CMD.UNSPEC) throw new DstError('DST_ERR_INTERNAL', `family table: ${c} uses reserved cmd ${spec.cmd}`);
  byNumber.set(spec.cmd, spec);
  validateSchema(spec.args as unknown as AnySchema);
  const r = spec.reply as { kind: string; schema?: unknown; item?: unknown };
  validateSchema((r.schema ?? r.item) as AnySchema);
}

/** The table entry of a command name. */
export function commandSpec<C extends ControlCommand>(name: C): FamilyTable[C] {
  return FAMILY[name];
}

/** The table entry for a genl cmd number, or undefined (EVENT and reserved numbers are not requests). */
export function commandByNumber(cmd: number): AnyCommandSpec | undefined {
  return byNumber.get(cmd);
}

/** Whether the engine permits `name` on a node in `state`. */
export function permittedIn(name: ControlCommand, state: NodeState): boolean {
  const s = FAMILY[name].states;
  return s === 'any' || s.includes(state);
}

/** Whether `name` applies to a node of `role`. */
export function appliesTo(name: ControlCommand, role: Role): boolean {
  const r = FAMILY[name].roles;
  return r === 'any' || r.includes(role);
}

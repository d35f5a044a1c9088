// A node's config changes as pure functions (config, args) → config: `node add`'s first config,
// policy, ACL and crypto edits. Each checks what it is given and throws a DstError naming `where`;
// none does I/O (key files are read by the registry) and none changes its input.
import { DstError } from '../util/errors.js';
import { formatHostPort, parseHostPort } from '../util/parse.js';
import { POLICY_TABLE } from './policy.js';
import {
  DEFAULT_CHUNK, DEFAULT_CRYPTO, DEFAULT_POLICY, DEFAULT_REGION,
  type AclEntry, type CryptoConfig, type CryptoSetArgs, type ExportConfig, type Limits, type NodeAddArgs, type NodeConfig, type Policy,
} from './types.js';
import { applyPolicy, checkThreads, normalizeCipher, normalizeHash, suiteName } from './validate.js';

/** Freeze a config and what it holds: configs are replaced, never changed. */
export function deepFreeze<T extends NodeConfig>(c: T): T {
  Object.freeze(c.policy);
  Object.freeze(c.crypto);
  if (c.role === 'export') {
    c.acl.forEach((e) => Object.freeze(e));
    Object.freeze(c.acl);
  } else {
    c.legs.forEach((l) => Object.freeze(l));
    Object.freeze(c.legs);
  }
  return Object.freeze(c);
}

/**
 * After a start: an export asked for port 0 keeps the port it bound (`bound`, "host:port"), so its
 * remotes find it again after a restart. Any other config comes back as it is.
 */
export function withBoundPort(c: NodeConfig, bound: string | null | undefined): NodeConfig {
  if (c.role !== 'export' || !bound) return c;
  const asked = parseHostPort(c.listen);
  if (asked.port !== 0) return c;
  return { ...c, listen: formatHostPort({ host: asked.host, port: parseHostPort(bound).port }) };
}

/** A list of configs with `changed` replacing the ones of their names (or joining the list); `nodes` is not changed. */
export function withReplaced(nodes: readonly NodeConfig[], changed: readonly NodeConfig[]): NodeConfig[] {
  const out = [...nodes];
  for (const c of changed) {
    const i = out.findIndex((n) => n.name === c.name);
    if (i >= 0) out[i] = c; else out.push(c);
  }
  return out;
}

/** `node add`: the new node's config (default policy and crypto, empty ACL); role-foreign options are refused. */
export function configOfAdd(args: NodeAddArgs, where: string): NodeConfig {
  const base = { name: args.name, size: args.size ?? null, autostart: false, policy: { ...DEFAULT_POLICY }, crypto: { ...DEFAULT_CRYPTO } };
  const notFor = (keys: [string, unknown][], role: string): void => {
    for (const [flag, v] of keys) {
      if (v !== undefined && v !== null && v !== false) {
        throw new DstError('DST_ERR_INVALID', `${where}: --${flag} is only for ${role} nodes`);
      }
    }
  };
  if (args.role === 'export') {
    notFor([['remote', args.remote], ['export', args.export], ['nbd-listen', args.nbdListen], ['layout', args.layout],
      ['remote', args.legs], ['chunk', args.chunk], ['region', args.region]], 'remote');
    return { ...base, role: 'export', disk: args.disk ?? '', listen: args.listen ?? '', readonly: args.readonly === true, acl: [] };
  }
  if (args.role === 'remote') {
    notFor([['disk', args.disk], ['listen', args.listen], ['readonly', args.readonly], ['create', args.create]], 'export');
    const layout = args.layout ?? 'single';
    const legs = layout === 'single' ? [{ remote: args.remote ?? '', export: args.export || null }] : (args.legs ?? []).map((l) => ({ ...l }));
    if (layout !== 'single' && (args.remote !== undefined || (args.export !== undefined && args.export !== null))) {
      throw new DstError('DST_ERR_INVALID', `${where}: layout ${layout} takes its legs in legs (--remote ADDR/EXPORT per leg), not remote/export`);
    }
    return { ...base, role: 'remote', layout, legs, chunk: args.chunk ?? DEFAULT_CHUNK, region: args.region ?? DEFAULT_REGION, nbdListen: args.nbdListen ?? null };
  }
  throw new DstError('DST_ERR_INVALID', `${where}: role must be export or remote, not ${JSON.stringify(args.role)}`);
}

/** The given policy fields (null and undefined are "not given"), in table order. */
export function policyPatch(patch: Partial<Policy>): Partial<Policy> {
  const clean: Partial<Policy> = {};
  for (const { field } of POLICY_TABLE) {
    if (patch[field] !== undefined && patch[field] !== null) clean[field] = patch[field];
  }
  return clean;
}

/** `node set`: the config with `patch` applied, every field range-checked. */
export function withPolicy(c: NodeConfig, patch: Partial<Policy>, limits: Limits, where: string): NodeConfig {
  return { ...c, policy: applyPolicy(c.policy, patch, limits, where) };
}

/** A copy of an ACL (results never share the frozen entries). */
export function aclCopy(acl: readonly AclEntry[]): AclEntry[] {
  return acl.map((a) => ({ addr: a.addr, perm: a.perm, keyFile: a.keyFile }));
}

/** `security add` / `security load`: the entries added, each replacing the one for its address. */
export function withAclEntries(c: ExportConfig, entries: readonly AclEntry[]): ExportConfig {
  const acl = [...c.acl];
  for (const p of entries) {
    const i = acl.findIndex((a) => a.addr === p.addr);
    if (i >= 0) acl[i] = p; else acl.push(p);
  }
  return { ...c, acl };
}

/** `security del`: the entry for `addr` (canonical) removed; refused when there is none. */
export function withoutAclEntry(c: ExportConfig, addr: string, where: string): ExportConfig {
  if (!c.acl.some((a) => a.addr === addr)) {
    throw new DstError('DST_ERR_NOT_FOUND', `${where}: no ACL entry for ${addr}`, { errno: 'ENOENT' });
  }
  return { ...c, acl: c.acl.filter((a) => a.addr !== addr) };
}

/**
 * `crypto set`: the given fields merged into `cur` (a cipher of none drops its key file, an AEAD
 * cipher drops the hash unless one is given, a hash of none drops its key file), the combination
 * checked. Returns the new crypto and its suite name; the key files are the caller's to read.
 */
export function withCrypto(cur: CryptoConfig, args: CryptoSetArgs, where: string): { crypto: CryptoConfig; suite: string } {
  const next: CryptoConfig = { ...cur };
  const given = (v: unknown): boolean => v !== undefined && v !== null;
  let hmacAsked = false;
  if (given(args.cipher)) {
    next.cipher = normalizeCipher(args.cipher, where);
    if (next.cipher === 'none') next.cipherKeyFile = null;
    if ((next.cipher === 'aes-gcm' || next.cipher === 'chacha20-poly1305') && !given(args.hash)) {
      next.hash = 'none';
      next.hashKeyFile = null;
    }
  }
  if (given(args.hash)) {
    const h = normalizeHash(args.hash, where);
    next.hash = h.hash;
    hmacAsked = h.hmac;
    if (h.hash === 'none') next.hashKeyFile = null;
  }
  if (given(args.cipherKeyFile) && args.cipherKeyFile !== '') next.cipherKeyFile = args.cipherKeyFile!;
  if (given(args.hashKeyFile) && args.hashKeyFile !== '') next.hashKeyFile = args.hashKeyFile!;
  if (given(args.threads)) next.threads = checkThreads(args.threads, where);
  if (hmacAsked && next.hashKeyFile === null) {
    throw new DstError('DST_ERR_INVALID', `${where}: hash ${String(args.hash)} is keyed: add --hash-key-file FILE`);
  }
  return { crypto: next, suite: suiteName(next, where) };
}

/** `crypto clear`: no cipher, no hash; the threads are kept. */
export function clearedCrypto(cur: CryptoConfig): CryptoConfig {
  return { ...DEFAULT_CRYPTO, threads: cur.threads };
}

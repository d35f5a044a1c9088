// The meaning checks of one node's config that need no other node: name, policy ranges, addresses,
// sizes, ACL entries, the crypto combination and its key files (read, never kept). The registry
// adds what depends on the other nodes and the host (clashes, disk, port: node-probes.ts).
import { isAbsolute } from 'node:path';
import { DstError, errnoOf, type DstErrorCode } from '../util/errors.js';
import { isNbdUri, parseNbdUri } from '../protocol/nbd-uri.js';
import type { Logger } from '../util/log.js';
import { formatLegSpec, parseHostPort, parseNodeName, type HostPort } from '../util/parse.js';
import { checkPowerOfTwoSize } from './layout/map.js';
import { DEFAULT_POLICY, LAYOUTS, MAX_LEGS, type AclEntry, type CryptoConfig, type ExportConfig, type Limits, type NodeConfig, type RemoteConfig } from './types.js';
import { applyPolicy, canonicalAddr, checkKeyFile, checkThreads, parsePerm, suiteName } from './validate.js';

/** Prefix a thrown error with the operation; map system errors to DstErrors. */
export function wrapError(err: unknown, where: string): DstError {
  if (err instanceof DstError) {
    if (err.message.startsWith(where)) return err;
    return new DstError(err.code, `${where}: ${err.message}`, { errno: err.errno, cause: err });
  }
  const errno = errnoOf(err);
  const code: DstErrorCode = errno === 'ENOENT' ? 'DST_ERR_NOT_FOUND'
    : errno === 'EADDRINUSE' || errno === 'EBUSY' ? 'DST_ERR_BUSY'
      : errno === 'EEXIST' ? 'DST_ERR_EXISTS'
        : errno ? 'DST_ERR_IO' : 'DST_ERR_INTERNAL';
  const msg = (err as Error)?.message ?? String(err);
  return new DstError(code, `${where}: ${msg}`, { errno, cause: err });
}

/** A node name, its error naming `where`. */
export function checkName(name: unknown, where: string): void {
  try {
    parseNodeName(name);
  } catch (err) {
    throw wrapError(err, where);
  }
}

/** The suite a crypto config makes, its threads and its key files (warnings go to `log`). */
export async function checkCrypto(c: CryptoConfig, where: string, log: Logger): Promise<void> {
  suiteName(c, where);
  if (c.threads !== null) checkThreads(c.threads, where);
  if (c.cipherKeyFile !== null) await checkKeyFile(c.cipherKeyFile, where, log);
  if (c.hashKeyFile !== null) await checkKeyFile(c.hashKeyFile, where, log);
}

function checkSize(size: number | null, where: string): void {
  if (size !== null && (!Number.isSafeInteger(size) || size <= 0)) {
    throw new DstError('DST_ERR_INVALID', `${where}: size ${size} must be a positive number of bytes`);
  }
}

/** An export's own fields; returns its parsed listen address. */
async function checkExport(c: ExportConfig, where: string, create: number | null, log: Logger): Promise<HostPort> {
  if (typeof c.disk !== 'string' || c.disk === '') throw new DstError('DST_ERR_INVALID', `${where}: an export node needs a disk (--disk PATH)`);
  if (isNbdUri(c.disk)) {
    if (create !== null) throw new DstError('DST_ERR_INVALID', `${where}: --create cannot make disk ${c.disk}: it is an NBD URI, the server owns the disk`);
    try {
      parseNbdUri(c.disk);
    } catch (err) {
      throw wrapError(err, where);
    }
  } else if (!isAbsolute(c.disk)) throw new DstError('DST_ERR_INVALID', `${where}: disk ${c.disk}: must be an absolute path`);
  if (typeof c.listen !== 'string' || c.listen === '') throw new DstError('DST_ERR_INVALID', `${where}: an export node needs a listen address (--listen IP:PORT)`);
  let hp: HostPort;
  try {
    hp = parseHostPort(c.listen, 'listen address');
  } catch (err) {
    throw wrapError(err, where);
  }
  checkSize(c.size, where);
  if (create !== null && (!Number.isSafeInteger(create) || create <= 0)) {
    throw new DstError('DST_ERR_INVALID', `${where}: --create ${create} must be a positive number of bytes`);
  }
  const acl = new Set<string>();
  for (const a of c.acl) {
    const addr = canonicalAddr(a.addr, where);
    if (acl.has(addr)) throw new DstError('DST_ERR_INVALID', `${where}: ACL entry ${addr} appears twice`);
    acl.add(addr);
    parsePerm(a.perm, where);
    if (a.keyFile !== null) await checkKeyFile(a.keyFile, where, log);
  }
  await checkCrypto(c.crypto, where, log);
  return hp;
}

async function checkRemote(c: RemoteConfig, where: string, log: Logger): Promise<void> {
  if (!(LAYOUTS as readonly unknown[]).includes(c.layout)) {
    throw new DstError('DST_ERR_INVALID', `${where}: layout must be one of ${LAYOUTS.join(', ')}, not ${JSON.stringify(c.layout)}`);
  }
  const min = c.layout === 'linear' || c.layout === 'stripe' ? 2 : 1;
  if (!Array.isArray(c.legs) || c.legs.length < min || (c.layout === 'single' && c.legs.length !== 1)) {
    throw new DstError('DST_ERR_INVALID', c.layout === 'single'
      ? `${where}: a remote node needs the export's address (--remote HOST:PORT)`
      : `${where}: layout ${c.layout} needs at least ${min} leg${min === 1 ? '' : 's'} (--remote HOST:PORT/EXPORT, one per leg), got ${c.legs?.length ?? 0}`);
  }
  if (c.legs.length > MAX_LEGS) throw new DstError('DST_ERR_INVALID', `${where}: at most ${MAX_LEGS} legs, got ${c.legs.length}`);
  try {
    c.legs.forEach((l, i) => {
      const what = c.layout === 'single' ? 'remote address' : `leg ${i} address`;
      if (typeof l.remote !== 'string' || l.remote === '') throw new DstError('DST_ERR_INVALID', `a remote node needs the export's address (--remote HOST:PORT)`);
      parseHostPort(l.remote, what, false);
      if (l.export !== null) parseNodeName(l.export, 'export name');
      const same = c.legs.findIndex((o) => o.remote === l.remote && o.export === l.export);
      if (same < i) throw new DstError('DST_ERR_INVALID', `leg ${same} and leg ${i} are the same export (${formatLegSpec(l)})`);
    });
    if (c.layout === 'stripe') checkPowerOfTwoSize(c.chunk, 'stripe chunk (--chunk)');
    if (c.nbdListen !== null) parseHostPort(c.nbdListen, 'NBD listen address');
  } catch (err) {
    throw wrapError(err, where);
  }
  checkSize(c.size, where);
  await checkCrypto(c.crypto, where, log);
}

/** Check one node's config on its own; an export's answer is its listen address, a remote's null. */
export async function checkNodeConfig(c: NodeConfig, where: string, create: number | null, limits: Limits, log: Logger):
Promise<HostPort | null> {
  checkName(c.name, where);
  applyPolicy(DEFAULT_POLICY, c.policy, limits, where);
  if (c.role === 'export') return checkExport(c, where, create, log);
  if (c.role === 'remote') {
    await checkRemote(c, where, log);
    return null;
  }
  throw new DstError('DST_ERR_INVALID', `${where}: role must be export or remote, not ${JSON.stringify((c as { role: unknown }).role)}`);
}

/** An ACL entry as a command gives it: canonical address, permission, key file read (not kept). */
export async function checkAclEntry(a: { addr: unknown; perm: unknown; keyFile?: unknown }, where: string, log: Logger): Promise<AclEntry> {
  const addr = canonicalAddr(a.addr, where);
  const perm = parsePerm(a.perm, where);
  const keyFile = a.keyFile === undefined || a.keyFile === null || a.keyFile === '' ? null : a.keyFile;
  if (keyFile !== null) await checkKeyFile(keyFile, where, log);
  return { addr, perm, keyFile: keyFile as string | null };
}

/** `security load`'s entries, each checked (errors name its number), no address twice. */
export async function checkAclEntries(entries: unknown, where: string, log: Logger): Promise<AclEntry[]> {
  if (!Array.isArray(entries)) throw new DstError('DST_ERR_INVALID', `${where}: entries must be a list`);
  const parsed: AclEntry[] = [];
  for (const [i, raw] of (entries as ({ addr: unknown; perm: unknown; keyFile?: unknown } | null)[]).entries()) {
    const entry = await checkAclEntry(raw ?? { addr: undefined, perm: undefined }, `${where}: entry ${i + 1}`, log);
    if (parsed.some((p) => p.addr === entry.addr)) {
      throw new DstError('DST_ERR_INVALID', `${where}: entry ${i + 1}: ${entry.addr} appears twice`);
    }
    parsed.push(entry);
  }
  return parsed;
}

// Address-based access control (DESIGN §9): longest prefix wins, empty ACL = nobody, perm
// none/0 = deny. IPv4-mapped peers (::ffff:a.b.c.d) are matched as IPv4. Checked at HELLO and on
// every request.
import { Access } from '../../protocol/wire.js';
import type { AclEntry, Perm } from '../types.js';
import { cidrContains, normalizePeerAddress, parseCidr, type Cidr } from '../../util/parse.js';

export interface CompiledAcl {
  entries: { cidr: Cidr; entry: AclEntry }[];
  /** entries whose address did not parse (the registry validates, so normally empty) */
  invalid: { entry: AclEntry; error: string }[];
}

export function compileAcl(acl: readonly AclEntry[]): CompiledAcl {
  const out: CompiledAcl = { entries: [], invalid: [] };
  for (const entry of acl) {
    try {
      out.entries.push({ cidr: parseCidr(entry.addr), entry });
    } catch (err) {
      out.invalid.push({ entry, error: (err as Error).message });
    }
  }
  return out;
}

/** The entry that governs `peer` (longest prefix; the first of equals), or null. */
export function matchAcl(acl: CompiledAcl, peer: string): AclEntry | null {
  const addr = normalizePeerAddress(peer);
  let best: { cidr: Cidr; entry: AclEntry } | null = null;
  for (const e of acl.entries) {
    if ((best === null || e.cidr.prefix > best.cidr.prefix) && cidrContains(e.cidr, addr)) best = e;
  }
  return best ? best.entry : null;
}

export function permAccess(perm: Perm | null | undefined): number {
  switch (perm) {
    case 'r': return Access.READ;
    case 'w': return Access.WRITE;
    case 'rw': return Access.READ | Access.WRITE;
    default: return 0;
  }
}

/** What a peer may do now: its entry's perm, minus write when the export is read-only. */
export function entryAccess(entry: AclEntry | null, readonly: boolean): number {
  return permAccess(entry?.perm) & (readonly ? Access.READ : Access.READ | Access.WRITE);
}

/** granted = requested ∩ entry perm ∩ (read-only ? r) */
export function grantAccess(requested: number, entry: AclEntry | null, readonly: boolean): number {
  return requested & entryAccess(entry, readonly);
}

export function accessName(access: number): 'r' | 'w' | 'rw' | 'none' {
  const r = (access & Access.READ) !== 0;
  const w = (access & Access.WRITE) !== 0;
  return r && w ? 'rw' : r ? 'r' : w ? 'w' : 'none';
}

/**
 * Caches the compiled ACL and per-peer results for the current config's ACL array; a different
 * array (the registry swaps the config) or invalidate() (configChanged) recompiles.
 */
export class AclCache {
  private ref: readonly AclEntry[] | null = null;
  private compiled: CompiledAcl = { entries: [], invalid: [] };
  private byPeer = new Map<string, AclEntry | null>();

  constructor(private readonly onInvalid: (entry: AclEntry, error: string) => void = () => {}) {}

  invalidate(): void {
    this.ref = null;
  }

  lookup(acl: readonly AclEntry[], peer: string): AclEntry | null {
    if (acl !== this.ref) {
      this.ref = acl;
      this.compiled = compileAcl(acl);
      this.byPeer.clear();
      for (const bad of this.compiled.invalid) this.onInvalid(bad.entry, bad.error);
    }
    const addr = normalizePeerAddress(peer);
    let hit = this.byPeer.get(addr);
    if (hit === undefined) {
      hit = matchAcl(this.compiled, addr);
      if (this.byPeer.size >= 1024) this.byPeer.clear();
      this.byPeer.set(addr, hit);
    }
    return hit;
  }
}

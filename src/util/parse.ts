// Syntax of the values users type: names, sizes, durations, addresses, ACL addresses.
// Each parser throws DstError('DST_ERR_INVALID') naming the thing that is wrong.
import { isIP } from 'node:net';
import { DstError } from './errors.js';

const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_-]{0,31}$/;

export function parseNodeName(name: unknown, what = 'node name'): string {
  if (typeof name !== 'string' || !NAME_RE.test(name)) {
    throw new DstError('DST_ERR_INVALID',
      `invalid ${what} ${JSON.stringify(name)}: use 1-32 of A-Z a-z 0-9 _ -, not starting with -`);
  }
  return name;
}

const SIZE_UNITS: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/** "1G" → 1073741824. Integer with optional K M G T (binary), optional trailing B/iB. */
export function parseSize(text: unknown, what = 'size'): number {
  const s = String(text ?? '').trim();
  const m = /^(\d+)\s*([KMGT]?)(?:i?B)?$/i.exec(s);
  if (!m) throw new DstError('DST_ERR_INVALID', `invalid ${what} ${JSON.stringify(s)}: expected an integer with optional K, M, G or T`);
  const value = Number(m[1]) * SIZE_UNITS[m[2]!.toUpperCase()]!;
  if (!Number.isSafeInteger(value)) throw new DstError('DST_ERR_INVALID', `invalid ${what} ${JSON.stringify(s)}: too large`);
  return value;
}

const DURATION_UNITS: Record<string, number> = { '': 1, ms: 1, s: 1000, m: 60_000 };

/** "5s" → 5000. Integer with ms, s or m; bare = ms. */
export function parseDuration(text: unknown, what = 'duration'): number {
  const s = String(text ?? '').trim();
  const m = /^(\d+)\s*(ms|s|m|)$/.exec(s);
  if (!m) throw new DstError('DST_ERR_INVALID', `invalid ${what} ${JSON.stringify(s)}: expected an integer with ms, s or m (bare = ms)`);
  const value = Number(m[1]) * DURATION_UNITS[m[2]!]!;
  if (!Number.isSafeInteger(value)) throw new DstError('DST_ERR_INVALID', `invalid ${what} ${JSON.stringify(s)}: too large`);
  return value;
}

export function formatDuration(ms: number): string {
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0 && ms > 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

export function formatSize(bytes: number): string {
  for (const [unit, mult] of [['T', 1024 ** 4], ['G', 1024 ** 3], ['M', 1024 ** 2], ['K', 1024]] as const) {
    if (bytes >= mult && bytes % mult === 0) return `${bytes / mult}${unit}`;
  }
  return String(bytes);
}

export interface HostPort {
  host: string;
  port: number;
}

/** "IP:PORT", "[IPv6]:PORT" or "host:PORT". Port 0 allowed only when allowZeroPort. */
export function parseHostPort(text: unknown, what = 'address', allowZeroPort = true): HostPort {
  const s = String(text ?? '').trim();
  let host: string;
  let portText: string;
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(s);
  if (v6) {
    host = v6[1]!;
    portText = v6[2]!;
    if (isIP(host) !== 6) throw new DstError('DST_ERR_INVALID', `invalid ${what} ${JSON.stringify(s)}: ${host} is not an IPv6 address`);
  } else {
    const i = s.lastIndexOf(':');
    if (i <= 0) throw new DstError('DST_ERR_INVALID', `invalid ${what} ${JSON.stringify(s)}: expected HOST:PORT (IPv6 as [ADDR]:PORT)`);
    host = s.slice(0, i);
    portText = s.slice(i + 1);
    if (host.includes(':')) throw new DstError('DST_ERR_INVALID', `invalid ${what} ${JSON.stringify(s)}: write IPv6 addresses as [ADDR]:PORT`);
    if (!isIP(host) && !/^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$/.test(host)) {
      throw new DstError('DST_ERR_INVALID', `invalid ${what} ${JSON.stringify(s)}: bad host name ${JSON.stringify(host)}`);
    }
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535 || (!allowZeroPort && Number(portText) === 0)) {
    throw new DstError('DST_ERR_INVALID', `invalid ${what} ${JSON.stringify(s)}: port must be ${allowZeroPort ? 0 : 1}-65535`);
  }
  return { host, port: Number(portText) };
}

export function formatHostPort(hp: HostPort): string {
  return isIP(hp.host) === 6 ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}

/** One leg of a remote node: "HOST:PORT[/EXPORT]" (no /EXPORT → `defaultExport`); normalised. */
export function parseLegSpec(text: unknown, what: string, defaultExport: string | null): { remote: string; export: string | null } {
  const s = String(text ?? '').trim();
  const slash = s.indexOf('/');
  const addr = slash < 0 ? s : s.slice(0, slash);
  const exp = slash < 0 ? defaultExport : s.slice(slash + 1);
  const remote = formatHostPort(parseHostPort(addr, what, false));
  if (exp !== null && exp !== '') parseNodeName(exp, `export name in ${what} ${JSON.stringify(s)}`);
  return { remote, export: exp === '' ? null : exp };
}

/** The text parseLegSpec reads back. */
export function formatLegSpec(l: { remote: string; export: string | null }): string {
  return l.export === null ? l.remote : `${l.remote}/${l.export}`;
}

/** IPv4-mapped IPv6 peers (::ffff:a.b.c.d) are matched as IPv4. */
export function normalizePeerAddress(addr: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(addr);
  return m ? m[1]! : addr;
}

export interface Cidr {
  family: 4 | 6;
  /** address bytes (4 or 16) */
  bytes: Buffer;
  prefix: number;
}

function ipBytes(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split('.').map(Number));
  // IPv6: expand "::" and embedded IPv4.
  let text = ip;
  const tail4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (tail4) {
    const b = tail4[1]!.split('.').map(Number);
    text = text.slice(0, -tail4[1]!.length) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const r = rest !== undefined && rest !== '' ? rest.split(':') : [];
  const groups = rest === undefined ? h : [...h, ...Array<string>(8 - h.length - r.length).fill('0'), ...r];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

/** The first 12 bytes of an IPv4-mapped IPv6 address (::ffff:0:0/96). */
const V4_MAPPED = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);

/** "10.0.0.0/8", "192.0.2.7", "::1", "fd00::/8" → Cidr. Host bits beyond the prefix are cleared. */
export function parseCidr(text: unknown, what = 'ACL address'): Cidr {
  const s = normalizePeerAddress(String(text ?? '').trim());
  const m = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(s);
  const family = m ? isIP(m[1]!) : 0;
  if (!m || (family !== 4 && family !== 6)) {
    throw new DstError('DST_ERR_INVALID', `invalid ${what} ${JSON.stringify(s)}: expected IP or IP/PREFIX`);
  }
  const max = family === 4 ? 32 : 128;
  const prefix = m[2] === undefined ? max : Number(m[2]);
  if (prefix > max) throw new DstError('DST_ERR_INVALID', `invalid ${what} ${JSON.stringify(s)}: prefix must be 0-${max}`);
  const bytes = ipBytes(m[1]!);
  for (let bit = prefix; bit < max; bit++) bytes[bit >> 3]! &= ~(0x80 >> (bit & 7));
  if (family === 4) return { family: 4, bytes, prefix };
  // Peers in ::ffff:0:0/96 are matched as IPv4, so an entry there only matches in its IPv4 form.
  if (prefix >= 96 && bytes.subarray(0, 12).equals(V4_MAPPED)) return { family: 4, bytes: bytes.subarray(12), prefix: prefix - 96 };
  return { family: 6, bytes, prefix };
}

/**
 * An IPv6 prefix shorter than /96 that covers ::ffff:0:0/96 (::/0 for one): it looks as if it
 * covered IPv4 peers, but they are matched as IPv4 and never match it.
 */
export function coversV4Mapped(c: Cidr): boolean {
  return c.family === 6 && c.prefix < 96 && prefixEquals(c.bytes, V4_MAPPED, c.prefix);
}

/** Do the first `bits` bits of a and b agree? */
function prefixEquals(a: Buffer, b: Buffer, bits: number): boolean {
  for (let bit = 0; bit < bits; bit++) {
    const mask = 0x80 >> (bit & 7);
    if ((a[bit >> 3]! & mask) !== (b[bit >> 3]! & mask)) return false;
  }
  return true;
}

export function formatCidr(c: Cidr): string {
  let ip: string;
  if (c.family === 4) ip = [...c.bytes].join('.');
  else {
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(c.bytes.readUInt16BE(i).toString(16));
    ip = groups.join(':').replace(/\b(?:0:){2,}0?\b|(^|:)0(:0)+(:|$)/, '::').replace(/:{3,}/, '::');
    // canonicalise via node's URL parser, which applies RFC 5952
    ip = new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  }
  const max = c.family === 4 ? 32 : 128;
  return c.prefix === max ? ip : `${ip}/${c.prefix}`;
}

/** Does peer address `ip` fall inside `cidr`? */
export function cidrContains(cidr: Cidr, ip: string): boolean {
  const addr = normalizePeerAddress(ip);
  const fam = isIP(addr);
  if (fam !== cidr.family) return false;
  return prefixEquals(ipBytes(addr), cidr.bytes, cidr.prefix);
}

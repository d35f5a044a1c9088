// The config file (DESIGN §12): INI read with the `ini` package, types converted and checked, every
// error naming the file, the section and the key. formatConfig writes the text (config-store.ts
// writes the file), quoting every string value. Only key-file paths are ever in the file, never keys.
import ini from 'ini';
import { readFile } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import { DstError, errnoOf } from '../util/errors.js';
import { isNbdUri } from '../protocol/nbd-uri.js';
import type { LogLevel } from '../util/log.js';
import { formatLegSpec, formatSize, parseDuration, parseHostPort, parseLegSpec, parseNodeName, parseSize } from '../util/parse.js';
import {
  DEFAULT_CHUNK, DEFAULT_CRYPTO, DEFAULT_LIMITS, DEFAULT_POLICY, DEFAULT_REGION, LAYOUTS,
  type AclEntry, type CryptoConfig, type Layout, type Limits, type NodeConfig, type Policy,
} from './types.js';
import { checkPowerOfTwoSize } from './layout/map.js';
import { POLICY_TABLE, formatPolicyValue } from './policy.js';
import {
  applyPolicy, checkThreads, formatAllowLine, normalizeCipher, normalizeHash, parseAllowLine, suiteName,
} from './validate.js';

export interface ParsedConfig {
  /** the file it came from ('' when parsed from text with no name) */
  file: string;
  engine: EngineKeys;
  nodes: NodeConfig[];
  /** the text parsed (null: a missing default file, an empty config) */
  text: string | null;
}

/** The [engine] keys as the file has them (null = absent): saved back as they were. */
export interface EngineKeys {
  logLevel: LogLevel | null;
  /** `autosave = false` keeps explicit `dst config save` (default true) */
  autosave?: boolean | null;
  /** `metrics-listen = "ADDR:PORT"`: serve Prometheus metrics there (default off) */
  metricsListen?: string | null;
}

export interface ConfigSnapshot extends EngineKeys {
  nodes: NodeConfig[];
}

const noEngineKeys = (): EngineKeys => ({ logLevel: null, autosave: null, metricsListen: null });

const LOG_LEVELS: readonly LogLevel[] = ['error', 'warn', 'info', 'debug'];

const COMMON_KEYS = ['role', 'size', 'autostart', 'cipher', 'hash', 'cipher-key-file', 'hash-key-file', 'threads',
  ...POLICY_TABLE.map((k) => k.key)] as const;
const EXPORT_KEYS = ['disk', 'listen', 'readonly', 'allow'] as const;
const REMOTE_KEYS = ['remote', 'export', 'nbd-listen', 'layout', 'chunk', 'region'] as const;
const ENGINE_KEYS = ['log-level', 'autosave', 'metrics-listen'] as const;

/** ini's own section/key line pattern (ini/lib/ini.js decode). */
const INI_LINE = /^\[([^\]]*)\]\s*$|^([^=]+)(=(.*))?$/i;

function configError(file: string, where: string, msg: string, errno: string | null = null): DstError {
  return new DstError('DST_ERR_CONFIG', `config ${file || '(text)'}: ${where ? where + ': ' : ''}${msg}`, { errno });
}

/** Strip "<where>: " prefixes that validators add, so our message names file/section/key (or the operation) once. */
export function bare(err: unknown, prefix: string): string {
  const msg = (err as Error)?.message ?? String(err);
  return msg.startsWith(prefix + ': ') ? msg.slice(prefix.length + 2) : msg;
}

/**
 * Structure checks ini itself does not make: malformed section headers, sections with dots
 * (ini would nest them), repeated sections, repeated keys, keys outside any section.
 */
function prescan(text: string, file: string): void {
  const lines = text.split(/\r\n|\r|\n/);
  const sections = new Set<string>();
  let section: string | null = null;
  let keys = new Set<string>();
  lines.forEach((line, i) => {
    const at = `line ${i + 1}`;
    if (!line || /^\s*[;#]/.test(line) || /^\s*$/.test(line)) return;
    if (line.trimStart().startsWith('[')) {
      const m = /^\[([^\]]*)\]\s*$/.exec(line);
      if (!m) throw configError(file, at, `malformed section header ${JSON.stringify(line.trim())} (no comments or spaces around a section header)`);
      const name = ini.unsafe(m[1]!);
      if (name.includes('.')) throw configError(file, `[${name}]`, 'section names may not contain dots');
      if (sections.has(name)) throw configError(file, `[${name}]`, `section appears twice (${at})`);
      sections.add(name);
      section = name;
      keys = new Set();
      return;
    }
    const m = INI_LINE.exec(line);
    if (!m) return;
    const key = ini.unsafe(m[2]!);
    if (section === null) throw configError(file, key, `key outside any section (${at}); put it under [engine] or [node "NAME"]`);
    if (m[3] === undefined) throw configError(file, `[${section}] ${key}`, `no value (${at}); write ${key} = VALUE`);
    if (key.endsWith('[]')) return;
    if (keys.has(key)) throw configError(file, `[${section}] ${key}`, `key appears twice (${at}); use ${key}[] for lists`);
    keys.add(key);
  });
}

type Raw = Record<string, unknown>;

/**
 * ini leaves the quotes on a quoted value followed by a comment (`disk = "/x" ; main disk`);
 * take them off the way ini would have.
 */
function unquote(v: string): string {
  const t = v.trim();
  if (t.length >= 2 && ((t.startsWith('"') && t.endsWith('"')) || (t.startsWith("'") && t.endsWith("'")))) {
    if (t.startsWith("'")) return t.slice(1, -1);
    try {
      const parsed: unknown = JSON.parse(t);
      if (typeof parsed === 'string') return parsed;
    } catch {
      // not JSON: keep as written
    }
  }
  return v;
}

class SectionReader {
  constructor(private readonly file: string, readonly section: string, private readonly raw: Raw) {}

  where(key: string): string {
    return `[${this.section}] ${key}`;
  }

  fail(key: string, msg: string): DstError {
    return configError(this.file, this.where(key), msg);
  }

  /** Run a value check for `key`; its error is re-raised naming file, section and key. */
  check<T>(key: string, fn: (where: string) => T): T {
    try {
      return fn(this.where(key));
    } catch (err) {
      throw this.fail(key, bare(err, this.where(key)));
    }
  }

  has(key: string): boolean {
    return Object.prototype.hasOwnProperty.call(this.raw, key);
  }

  str(key: string): string | undefined {
    if (!this.has(key)) return undefined;
    const v = this.raw[key];
    if (Array.isArray(v)) throw this.fail(key, 'given as a list; give it once');
    if (typeof v === 'object' && v !== null) throw this.fail(key, 'expected a value, got a section');
    return unquote(String(v));
  }

  required(key: string): string {
    const v = this.str(key);
    if (v === undefined || v === '') throw this.fail(key, 'missing (required)');
    return v;
  }

  path(key: string): string | undefined {
    const v = this.str(key);
    if (v === undefined) return undefined;
    if (!isAbsolute(v)) throw this.fail(key, `${JSON.stringify(v)} must be an absolute path`);
    return v;
  }

  bool(key: string): boolean | undefined {
    if (!this.has(key)) return undefined;
    const v = this.raw[key];
    if (v === true || v === false) return v;
    const t = String(v).trim().toLowerCase();
    if (['yes', 'on', '1'].includes(t)) return true;
    if (['no', 'off', '0'].includes(t)) return false;
    throw this.fail(key, `expected true or false, got ${JSON.stringify(v)}`);
  }

  int(key: string): number | undefined {
    const v = this.str(key);
    if (v === undefined) return undefined;
    if (!/^\d+$/.test(v.trim())) throw this.fail(key, `expected a whole number, got ${JSON.stringify(v)}`);
    return Number(v.trim());
  }

  size(key: string): number | undefined {
    const v = this.str(key);
    if (v === undefined) return undefined;
    try {
      return parseSize(v, key);
    } catch (err) {
      throw this.fail(key, (err as Error).message);
    }
  }

  duration(key: string): number | undefined {
    const v = this.str(key);
    if (v === undefined) return undefined;
    try {
      return parseDuration(v, key);
    } catch (err) {
      throw this.fail(key, (err as Error).message);
    }
  }

  list(key: string): string[] {
    if (!this.has(key)) return [];
    const v = this.raw[key];
    const items = Array.isArray(v) ? v : [v];
    return items.map((x) => {
      if (typeof x === 'object' && x !== null) throw this.fail(key, 'expected text');
      return unquote(String(x));
    });
  }

  keys(): string[] {
    return Object.keys(this.raw);
  }
}

function parseNodeSection(file: string, section: string, name: string, raw: Raw, limits: Limits): NodeConfig {
  const r = new SectionReader(file, section, raw);
  const role = r.required('role');
  if (role !== 'export' && role !== 'remote') throw r.fail('role', `must be export or remote, not ${JSON.stringify(role)}`);
  const allowed = new Set<string>([...COMMON_KEYS, ...(role === 'export' ? EXPORT_KEYS : REMOTE_KEYS)]);
  for (const k of r.keys()) {
    if (allowed.has(k)) continue;
    const other = (role === 'export' ? REMOTE_KEYS : EXPORT_KEYS) as readonly string[];
    if (other.includes(k)) throw r.fail(k, `only for ${role === 'export' ? 'remote' : 'export'} nodes (this node's role is ${role})`);
    throw r.fail(k, 'unknown key');
  }

  const size = r.size('size') ?? null;
  if (size !== null && size <= 0) throw r.fail('size', 'must be positive');

  const patch: Partial<Policy> = {};
  for (const { key, field, kind } of POLICY_TABLE) {
    const v = kind === 'duration' ? r.duration(key) : kind === 'size' ? r.size(key) : r.int(key);
    if (v === undefined) continue;
    patch[field] = v;
    r.check(key, (where) => applyPolicy(DEFAULT_POLICY, { [field]: v }, limits, where));
  }
  const policy = applyPolicy(DEFAULT_POLICY, patch, limits, section);

  const crypto: CryptoConfig = { ...DEFAULT_CRYPTO };
  const cipher = r.str('cipher');
  if (cipher !== undefined) {
    crypto.cipher = r.check('cipher', (where) => normalizeCipher(cipher, where));
  }
  let hmac = false;
  const hash = r.str('hash');
  if (hash !== undefined) {
    try {
      const h = normalizeHash(hash, r.where('hash'));
      crypto.hash = h.hash;
      hmac = h.hmac;
    } catch (err) {
      throw r.fail('hash', bare(err, r.where('hash')));
    }
  }
  crypto.cipherKeyFile = r.path('cipher-key-file') ?? null;
  crypto.hashKeyFile = r.path('hash-key-file') ?? null;
  if (hmac && crypto.hashKeyFile === null) throw r.fail('hash', `${hash} is keyed: add hash-key-file`);
  const threads = r.int('threads');
  if (threads !== undefined) {
    crypto.threads = r.check('threads', (where) => checkThreads(threads, where));
  }
  try {
    suiteName(crypto, `[${section}]`);
  } catch (err) {
    throw configError(file, `[${section}] cipher/hash`, bare(err, `[${section}]`));
  }

  const autostart = r.bool('autostart') ?? false;
  if (role === 'export') {
    const disk = isNbdUri(r.str('disk') ?? '') ? r.str('disk') : r.path('disk');
    if (disk === undefined) throw r.fail('disk', 'missing (required for an export node)');
    const listen = r.required('listen');
    r.check('listen', () => parseHostPort(listen, 'listen address'));
    const acl: AclEntry[] = [];
    for (const line of r.list('allow')) {
      const e = r.check('allow', (where) => parseAllowLine(line, where));
      if (acl.some((a) => a.addr === e.addr)) throw r.fail('allow', `${e.addr} appears twice`);
      acl.push(e);
    }
    return { name, role, size, autostart, policy, crypto, disk, listen, readonly: r.bool('readonly') ?? false, acl };
  }
  const nbdListen = r.str('nbd-listen') ?? null;
  if (nbdListen !== null) r.check('nbd-listen', () => parseHostPort(nbdListen, 'NBD listen address'));
  const remote = { name, role: 'remote' as const, size, autostart, policy, crypto, nbdListen, chunk: DEFAULT_CHUNK, region: DEFAULT_REGION };
  const layout = r.str('layout') ?? 'single';
  if (!(LAYOUTS as readonly string[]).includes(layout)) throw r.fail('layout', `must be one of ${LAYOUTS.join(', ')}, not ${JSON.stringify(layout)}`);
  if (layout === 'single') {
    // today's keys: remote = "HOST:PORT" and export = "NAME"
    for (const k of ['chunk', 'region'] as const) if (r.has(k)) throw r.fail(k, 'only for multi-leg nodes (layout mirror, linear or stripe)');
    if (Array.isArray(raw['remote'])) throw r.fail('remote', 'remote[] lines need layout = "mirror", "linear" or "stripe"; a single remote node has one remote = "HOST:PORT"');
    const addr = r.required('remote');
    r.check('remote', () => parseHostPort(addr, 'remote address', false));
    let exportName: string | null = r.str('export') ?? null;
    if (exportName === '') exportName = null;
    if (exportName !== null) r.check('export', () => parseNodeName(exportName, 'export name'));
    return { ...remote, layout, legs: [{ remote: addr, export: exportName }] };
  }
  if (r.has('export')) throw r.fail('export', 'not for multi-leg nodes: name each leg\'s export in its remote[] = "HOST:PORT/EXPORT" line');
  const legs = r.list('remote').map((line, i) => r.check('remote', () => parseLegSpec(line, `leg ${i} address`, null)));
  const min = layout === 'mirror' ? 1 : 2;
  if (legs.length < min) throw r.fail('remote', `layout ${layout} needs at least ${min} remote[] = "HOST:PORT/EXPORT" line${min === 1 ? '' : 's'}, one per leg in leg order`);
  const pow2 = (k: 'chunk' | 'region', dflt: number): number => {
    const v = r.size(k);
    return v === undefined ? dflt : r.check(k, (where) => checkPowerOfTwoSize(v, where));
  };
  if (r.has('chunk') && layout !== 'stripe') throw r.fail('chunk', 'only for layout stripe');
  if (r.has('region') && layout !== 'mirror') throw r.fail('region', 'only for layout mirror');
  return { ...remote, layout: layout as Layout, legs, chunk: pow2('chunk', DEFAULT_CHUNK), region: pow2('region', DEFAULT_REGION) };
}

/** Parse config text; `file` names it in errors. Types and ranges are checked here; files and ports by the registry. */
export function parseConfigText(text: string, file: string, limits: Limits = DEFAULT_LIMITS): ParsedConfig {
  prescan(text, file);
  let obj: Raw;
  try {
    obj = ini.parse(text) as Raw;
  } catch (err) {
    throw configError(file, '', (err as Error).message);
  }
  const out: ParsedConfig = { file, engine: noEngineKeys(), nodes: [], text };
  for (const [section, value] of Object.entries(obj)) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw configError(file, section, 'key outside any section; put it under [engine] or [node "NAME"]');
    }
    const raw = value as Raw;
    if (section === 'engine') {
      const r = new SectionReader(file, section, raw);
      for (const k of r.keys()) if (!(ENGINE_KEYS as readonly string[]).includes(k)) throw r.fail(k, 'unknown key');
      const lvl = r.str('log-level');
      if (lvl !== undefined) {
        if (!(LOG_LEVELS as readonly string[]).includes(lvl)) throw r.fail('log-level', `must be one of ${LOG_LEVELS.join(', ')}, not ${JSON.stringify(lvl)}`);
        out.engine.logLevel = lvl as LogLevel;
      }
      out.engine.autosave = r.bool('autosave') ?? null;
      const ml = r.str('metrics-listen');
      if (ml !== undefined) r.check('metrics-listen', (w) => parseHostPort(ml, w));
      out.engine.metricsListen = ml ?? null;
      continue;
    }
    const m = /^node\s+"([^"]*)"$/.exec(section);
    if (!m) throw configError(file, `[${section}]`, 'unknown section; expected [engine] or [node "NAME"]');
    const name = m[1]!;
    try {
      parseNodeName(name);
    } catch (err) {
      throw configError(file, `[${section}]`, (err as Error).message);
    }
    out.nodes.push(parseNodeSection(file, section, name, raw, limits));
  }
  return out;
}

/**
 * Read and parse a config file. A missing file is an empty config when `required` is false
 * (the default file), an error otherwise (--config FILE).
 */
export async function readConfigFile(file: string, opts: { required: boolean; limits?: Limits }): Promise<ParsedConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const errno = errnoOf(err);
    if (errno === 'ENOENT' && !opts.required) return { file, engine: noEngineKeys(), nodes: [], text: null };
    if (errno === 'ENOENT') throw new DstError('DST_ERR_NOT_FOUND', `config ${file}: no such file (ENOENT)`, { errno });
    throw new DstError('DST_ERR_CONFIG', `config ${file}: cannot read it: ${(err as Error).message}`, { errno, cause: err });
  }
  return parseConfigText(text, file, opts.limits);
}

const q = (s: string): string => JSON.stringify(s);

/**
 * The config file text for what runs now. Every string value is quoted; no key bytes, only
 * key-file paths. [engine] keys are written only when given (as the file had them).
 */
export function formatConfig(snap: ConfigSnapshot): string {
  const lines: string[] = ['; dst configuration (written by dst: comments are not kept)', ''];
  lines.push('[engine]');
  if (snap.logLevel) lines.push(`log-level = ${q(snap.logLevel)}`);
  if (snap.autosave === true || snap.autosave === false) lines.push(`autosave = ${snap.autosave}`);
  if (snap.metricsListen) lines.push(`metrics-listen = ${q(snap.metricsListen)}`);
  for (const c of snap.nodes) {
    lines.push('', `[node "${c.name}"]`);
    lines.push(`role = ${q(c.role)}`);
    if (c.role === 'export') {
      lines.push(`disk = ${q(c.disk)}`);
      lines.push(`listen = ${q(c.listen)}`);
      lines.push(`readonly = ${c.readonly ? 'true' : 'false'}`);
    } else {
      if (c.layout === 'single') {
        lines.push(`remote = ${q(c.legs[0]!.remote)}`);
        if (c.legs[0]!.export !== null) lines.push(`export = ${q(c.legs[0]!.export)}`);
      } else {
        lines.push(`layout = ${q(c.layout)}`);
        // ini keeps only the last of repeated plain keys: one remote[] line per leg, in leg order
        for (const l of c.legs) lines.push(`remote[] = ${q(formatLegSpec(l))}`);
        if (c.layout === 'stripe') lines.push(`chunk = ${q(formatSize(c.chunk))}`);
        if (c.layout === 'mirror') lines.push(`region = ${q(formatSize(c.region))}`);
      }
      if (c.nbdListen !== null) lines.push(`nbd-listen = ${q(c.nbdListen)}`);
    }
    if (c.size !== null) lines.push(`size = ${q(formatSize(c.size))}`);
    lines.push(`autostart = ${c.autostart ? 'true' : 'false'}`);
    if (c.role === 'export') for (const a of c.acl) lines.push(`allow[] = ${q(formatAllowLine(a))}`);
    const cr = c.crypto;
    if (cr.cipher !== 'none') lines.push(`cipher = ${q(cr.cipher)}`);
    if (cr.hash !== 'none') lines.push(`hash = ${q(cr.hash)}`);
    if (cr.cipherKeyFile !== null) lines.push(`cipher-key-file = ${q(cr.cipherKeyFile)}`);
    if (cr.hashKeyFile !== null) lines.push(`hash-key-file = ${q(cr.hashKeyFile)}`);
    if (cr.threads !== null) lines.push(`threads = ${cr.threads}`);
    for (const k of POLICY_TABLE) {
      const v = c.policy[k.field];
      if (v === k.default) continue;
      // durations and sizes are strings ("5s", "1M"), counts bare numbers
      lines.push(`${k.key} = ${k.kind === 'int' ? v : q(formatPolicyValue(k, v))}`);
    }
  }
  return lines.join('\n') + '\n';
}

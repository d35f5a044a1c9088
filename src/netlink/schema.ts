// Typed attribute schemas and the ONE generic codec derived from them.
//
// An object schema maps each key of a TypeScript type to an attribute: its number (per-object
// enum, UNSPEC = 0 reserved, the kernel way), its wire type and its presence. The type parameter
// makes the compiler check that every key of the carried type has exactly one attribute, that the
// wire type fits the value type and that the presence matches the key's optionality/nullability.
//
// Wire types:
//   u8, u32, u64, s64   host-order integers of 1/4/8/8 bytes; JS numbers (u64/s64 ≤ 2^53)
//   f64                 host-order IEEE 754 double (finite): measured values such as latencies in ms
//   bool                u8 0 or 1 (so false is distinct from "absent")
//   string              NUL-terminated UTF-8, one attribute (≤ 65530 bytes); optional closed set (oneOf)
//   text                UTF-8 without NUL, split over as many repeated attributes of the same type
//                       as needed (large text: config show); decoded by concatenation
//   bytes               raw
//   object              NLA_F_NESTED attribute holding the object's own attribute stream
//   array               NLA_F_NESTED list attribute holding one ITEM (= 1) attribute per element,
//                       in order: [LIST][ITEM][FIELD] (nbd-netlink.h style)
// Presence:
//   required            always present
//   nullable            null ⇔ attribute absent
//   optional            undefined (key omitted) ⇔ attribute absent
//   optional-nullable   undefined ⇔ absent; null ⇔ zero-length attribute (scalars only; no scalar
//                       has a valid zero-length encoding, so this is unambiguous)
// Decoding policy: an attribute number the schema does not know is REJECTED (DST_ERR_BAD_FRAME
// naming the object and the number) — both ends run the same version (hello checks it), so an
// unknown attribute is a bug, never something to skip. Wrong length, wrong nesting flag, duplicate
// attribute, missing required attribute, bad bool/UTF-8/enum value: rejected, naming the attribute.
import {
  readS64,
  readU32,
  readU64,
  readU8,
  writeS64,
  writeU32,
  writeU64,
  writeU8,
} from 'netlink/dist/structs.js';
import { DstError } from '../util/errors.js';
import { type Attr, NLA_HDRLEN, NLA_MAX_LEN, NLA_TYPE_MASK, formatAttr, getCString, parseAttrs, putCString } from './codec.js';

export type ScalarKind = 'u8' | 'u32' | 'u64' | 's64' | 'f64' | 'bool' | 'string' | 'text' | 'bytes';
export type Presence = 'required' | 'nullable' | 'optional' | 'optional-nullable';

export interface ScalarType<K extends ScalarKind = ScalarKind> {
  readonly kind: K;
  /** string only: the closed set of accepted values */
  readonly oneOf?: readonly string[];
}
export interface ObjectType<O> {
  readonly kind: 'object';
  readonly schema: ObjectSchema<O>;
}
export interface ArrayType<I> {
  readonly kind: 'array';
  readonly item: TypeFor<I>;
}

type Base<V> = Exclude<V, null | undefined>;
/** The wire types allowed for a value of type V. */
export type TypeFor<V> =
  [Base<V>] extends [string] ? ScalarType<'string' | 'text'>
  : [Base<V>] extends [number] ? ScalarType<'u8' | 'u32' | 'u64' | 's64' | 'f64'>
  : [Base<V>] extends [boolean] ? ScalarType<'bool'>
  : [Base<V>] extends [Buffer] ? ScalarType<'bytes'>
  : [Base<V>] extends [readonly (infer I)[]] ? ArrayType<I>
  : [Base<V>] extends [object] ? ObjectType<Base<V>>
  : never;

/** The presence a key of T must declare. */
export type PresenceFor<T, K extends keyof T> =
  Record<never, never> extends Pick<T, K>
    ? (null extends T[K] ? 'optional-nullable' : 'optional')
    : (null extends T[K] ? 'nullable' : 'required');

type PresenceProp<P> = [P] extends ['required'] ? { readonly presence?: 'required' } : { readonly presence: P };

export type FieldOf<T, K extends keyof T> = {
  /** attribute number inside this object, 1..0x3fff */
  readonly attr: number;
  readonly type: TypeFor<T[K]>;
  /** one line for the man page */
  readonly doc?: string;
} & PresenceProp<PresenceFor<T, K>>;

export type FieldsOf<T> = { readonly [K in keyof T]-?: FieldOf<T, K> };

export interface ObjectSchema<T> {
  /** name used in error messages and the man page, e.g. "node" */
  readonly name: string;
  readonly fields: FieldsOf<T>;
  /** phantom: the carried type */
  readonly __type?: T;
}

// ---- runtime view (untyped) ----
export type AnyType = ScalarType | { readonly kind: 'object'; readonly schema: AnySchema } | { readonly kind: 'array'; readonly item: AnyType };
export interface AnyField {
  readonly attr: number;
  readonly type: AnyType;
  readonly presence?: Presence;
  readonly doc?: string;
}
export interface AnySchema {
  readonly name: string;
  readonly fields: Readonly<Record<string, AnyField>>;
}

/** The attribute number of each element inside an array's list attribute. */
export const LIST_ITEM = 1;
/** Largest chunk of a `text` value per attribute. */
export const TEXT_CHUNK = 60 * 1024;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

// ---- constructors ----
export const t = {
  u8: { kind: 'u8' } as ScalarType<'u8'>,
  u32: { kind: 'u32' } as ScalarType<'u32'>,
  u64: { kind: 'u64' } as ScalarType<'u64'>,
  s64: { kind: 's64' } as ScalarType<'s64'>,
  f64: { kind: 'f64' } as ScalarType<'f64'>,
  bool: { kind: 'bool' } as ScalarType<'bool'>,
  string: { kind: 'string' } as ScalarType<'string'>,
  text: { kind: 'text' } as ScalarType<'text'>,
  bytes: { kind: 'bytes' } as ScalarType<'bytes'>,
  oneOf: (values: readonly string[]): ScalarType<'string'> => ({ kind: 'string', oneOf: values }),
  object: <O>(schema: ObjectSchema<O>): ObjectType<O> => ({ kind: 'object', schema }),
  array: <I>(item: TypeFor<I>): ArrayType<I> => ({ kind: 'array', item }),
};

interface Compiled {
  byAttr: Map<number, [string, AnyField]>;
  entries: [string, AnyField][];
}
const compiled = new WeakMap<AnySchema, Compiled>();

function compile(s: AnySchema): Compiled {
  let c = compiled.get(s);
  if (c) return c;
  const byAttr = new Map<number, [string, AnyField]>();
  const entries = Object.entries(s.fields).sort((a, b) => a[1].attr - b[1].attr);
  for (const [key, f] of entries) {
    if (!Number.isInteger(f.attr) || f.attr < 1 || f.attr > NLA_TYPE_MASK) throw new DstError('DST_ERR_INTERNAL', `schema ${s.name}: ${key} has attribute number ${f.attr} (must be 1..${NLA_TYPE_MASK})`);
    const dup = byAttr.get(f.attr);
    if (dup) throw new DstError('DST_ERR_INTERNAL', `schema ${s.name}: ${key} and ${dup[0]} share attribute number ${f.attr}`);
    if (f.presence === 'optional-nullable' && !isScalarWithoutEmpty(f.type)) {
      throw new DstError('DST_ERR_INTERNAL', `schema ${s.name}: ${key} is optional-nullable but of type ${f.type.kind} (only u8/u32/u64/s64/f64/bool/string may be)`);
    }
    byAttr.set(f.attr, [key, f]);
  }
  c = { byAttr, entries };
  compiled.set(s, c);
  return c;
}

function isScalarWithoutEmpty(type: AnyType): boolean {
  return ['u8', 'u32', 'u64', 's64', 'f64', 'bool', 'string'].includes(type.kind);
}

/** Check a schema (and every schema nested in it) for bad or duplicate attribute numbers. */
export function validateSchema(s: AnySchema, seen = new Set<AnySchema>()): void {
  if (seen.has(s)) return;
  seen.add(s);
  compile(s);
  const visit = (type: AnyType): void => {
    if (type.kind === 'object') validateSchema(type.schema, seen);
    else if (type.kind === 'array') visit(type.item);
  };
  for (const f of Object.values(s.fields)) visit(f.type);
}

/** Declare a schema for T. Throws at module load if attribute numbers are bad or shared. */
export function objectSchema<T>(name: string, fields: FieldsOf<T>): ObjectSchema<T> {
  const s: ObjectSchema<T> = { name, fields };
  compile(s as unknown as AnySchema);
  return s;
}

/** The attribute enum of a schema, kernel style: { UNSPEC: 0, NAME: 1, ... } (for docs and tests). */
export function attrEnum(s: ObjectSchema<unknown> | AnySchema): Record<string, number> {
  const out: Record<string, number> = { UNSPEC: 0 };
  for (const [key, f] of compile(s as AnySchema).entries) out[key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()] = f.attr;
  return out;
}

// ---- encode ----
function invalid(path: string, msg: string): DstError {
  return new DstError('DST_ERR_INVALID', `cannot encode ${path}: ${msg}`, { errno: 'EINVAL' });
}

function encodeInt(path: string, kind: 'u8' | 'u32' | 'u64' | 's64', v: unknown): Buffer {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw invalid(path, `expected an integer, got ${describe(v)}`);
  switch (kind) {
    case 'u8': {
      if (v < 0 || v > 0xff) throw invalid(path, `${v} does not fit in u8`);
      const b = Buffer.alloc(1);
      writeU8.call(b, v, 0);
      return b;
    }
    case 'u32': {
      if (v < 0 || v > 0xffffffff) throw invalid(path, `${v} does not fit in u32`);
      const b = Buffer.alloc(4);
      writeU32.call(b, v, 0);
      return b;
    }
    case 'u64': {
      if (v < 0 || v > MAX_SAFE) throw invalid(path, `${v} is not an unsigned integer ≤ 2^53`);
      const b = Buffer.alloc(8);
      writeU64.call(b, BigInt(v), 0);
      return b;
    }
    case 's64': {
      if (v < -MAX_SAFE || v > MAX_SAFE) throw invalid(path, `${v} is not a safe integer`);
      const b = Buffer.alloc(8);
      writeS64.call(b, BigInt(v), 0);
      return b;
    }
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (Buffer.isBuffer(v)) return 'a Buffer';
  return typeof v === 'string' ? JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v) : typeof v === 'object' ? 'an object' : String(v);
}

/** Encode one value as one or more attributes of number `attr`. */
function encodeValue(path: string, attr: number, type: AnyType, v: unknown): Buffer[] {
  switch (type.kind) {
    case 'u8': case 'u32': case 'u64': case 's64':
      return [formatAttr(attr, encodeInt(path, type.kind, v))];
    case 'f64': {
      if (typeof v !== 'number' || !Number.isFinite(v)) throw invalid(path, `expected a finite number, got ${describe(v)}`);
      return [formatAttr(attr, Buffer.from(new Float64Array([v]).buffer))];
    }
    case 'bool': {
      if (typeof v !== 'boolean') throw invalid(path, `expected a boolean, got ${describe(v)}`);
      return [formatAttr(attr, Buffer.from([v ? 1 : 0]))];
    }
    case 'string': {
      if (typeof v !== 'string') throw invalid(path, `expected a string, got ${describe(v)}`);
      const oneOf = (type as ScalarType).oneOf;
      if (oneOf && !oneOf.includes(v)) throw invalid(path, `${JSON.stringify(v)} is not one of ${oneOf.join(', ')}`);
      if (v.includes('\0')) throw invalid(path, 'string contains a NUL character');
      const b = putCString(v);
      if (b.length + NLA_HDRLEN > NLA_MAX_LEN) throw invalid(path, `string of ${b.length} bytes is too long for one attribute (use text)`);
      return [formatAttr(attr, b)];
    }
    case 'text': {
      if (typeof v !== 'string') throw invalid(path, `expected a string, got ${describe(v)}`);
      const b = Buffer.from(v, 'utf8');
      if (b.length === 0) return [formatAttr(attr, b)];
      const out: Buffer[] = [];
      for (let off = 0; off < b.length; off += TEXT_CHUNK) out.push(formatAttr(attr, b.subarray(off, off + TEXT_CHUNK)));
      return out;
    }
    case 'bytes': {
      if (!Buffer.isBuffer(v)) throw invalid(path, `expected a Buffer, got ${describe(v)}`);
      if (v.length + NLA_HDRLEN > NLA_MAX_LEN) throw invalid(path, `${v.length} bytes is too long for one attribute`);
      return [formatAttr(attr, v)];
    }
    case 'object': {
      if (typeof v !== 'object' || v === null || Array.isArray(v) || Buffer.isBuffer(v)) throw invalid(path, `expected an object, got ${describe(v)}`);
      return [nest(path, attr, encodeFields(type.schema, v as Record<string, unknown>, path))];
    }
    case 'array': {
      if (!Array.isArray(v)) throw invalid(path, `expected an array, got ${describe(v)}`);
      const items: Buffer[] = [];
      v.forEach((item, i) => items.push(...encodeValue(`${path}[${i}]`, LIST_ITEM, type.item, item)));
      return [nest(path, attr, items)];
    }
  }
}

function nest(path: string, attr: number, inner: Buffer[]): Buffer {
  const data = Buffer.concat(inner);
  if (data.length + NLA_HDRLEN > NLA_MAX_LEN) throw invalid(path, `nested attribute of ${data.length + NLA_HDRLEN} bytes exceeds ${NLA_MAX_LEN}`);
  return formatAttr(attr, data, true);
}

function encodeFields(s: AnySchema, obj: Record<string, unknown>, path: string): Buffer[] {
  const { entries } = compile(s);
  for (const key of Object.keys(obj)) {
    if (obj[key] !== undefined && !Object.prototype.hasOwnProperty.call(s.fields, key)) throw invalid(`${path}.${key}`, `${s.name} has no field ${key}`);
  }
  const out: Buffer[] = [];
  for (const [key, f] of entries) {
    const v = obj[key];
    const p = `${path}.${key}`;
    const presence = f.presence ?? 'required';
    if (v === undefined) {
      if (presence === 'optional' || presence === 'optional-nullable') continue;
      if (presence === 'nullable') throw invalid(p, 'missing (use null)');
      throw invalid(p, 'missing');
    }
    if (v === null) {
      if (presence === 'nullable' || presence === 'optional') continue;
      if (presence === 'optional-nullable') { out.push(formatAttr(f.attr, Buffer.alloc(0))); continue; }
      throw invalid(p, 'null is not allowed');
    }
    out.push(...encodeValue(p, f.attr, f.type, v));
  }
  return out;
}

/** Encode an object as an attribute stream (the payload after the genl header, or a nest). */
export function encodeObject<T>(schema: ObjectSchema<T>, obj: T): Buffer {
  const s = schema as unknown as AnySchema;
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw invalid(s.name, `expected an object, got ${describe(obj)}`);
  return Buffer.concat(encodeFields(s, obj as Record<string, unknown>, s.name));
}

// ---- decode ----
function bad(path: string, msg: string): DstError {
  return new DstError('DST_ERR_BAD_FRAME', `attribute ${path}: ${msg}`, { errno: 'EINVAL' });
}

function needLen(path: string, kind: string, data: Buffer, n: number): void {
  if (data.length !== n) throw bad(path, `${kind} needs ${n} bytes, got ${data.length}`);
}

function decodeScalar(path: string, type: ScalarType, a: Attr): unknown {
  if (a.nested) throw bad(path, `${type.kind} must not have NLA_F_NESTED set`);
  const d = a.data;
  switch (type.kind) {
    case 'u8': needLen(path, 'u8', d, 1); return readU8.call(d, 0);
    case 'u32': needLen(path, 'u32', d, 4); return readU32.call(d, 0);
    case 'u64': {
      needLen(path, 'u64', d, 8);
      const v = readU64.call(d, 0);
      if (v > BigInt(MAX_SAFE)) throw bad(path, `u64 ${v} exceeds 2^53`);
      return Number(v);
    }
    case 's64': {
      needLen(path, 's64', d, 8);
      const v = readS64.call(d, 0);
      if (v > BigInt(MAX_SAFE) || v < -BigInt(MAX_SAFE)) throw bad(path, `s64 ${v} is not a safe integer`);
      return Number(v);
    }
    case 'f64': {
      needLen(path, 'f64', d, 8);
      const v = new Float64Array(Uint8Array.from(d).buffer)[0]!;
      if (!Number.isFinite(v)) throw bad(path, `f64 ${v} is not finite`);
      return v;
    }
    case 'bool': {
      needLen(path, 'bool', d, 1);
      if (d[0]! > 1) throw bad(path, `bool must be 0 or 1, got ${d[0]}`);
      return d[0] === 1;
    }
    case 'string': {
      const s = getCString(d, `attribute ${path}`);
      if (type.oneOf && !type.oneOf.includes(s)) throw bad(path, `${JSON.stringify(s)} is not one of ${type.oneOf.join(', ')}`);
      return s;
    }
    case 'bytes': return Buffer.from(d);
    case 'text': throw new DstError('DST_ERR_INTERNAL', 'text is decoded by concatenation');
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function decodeValue(path: string, type: AnyType, attrs: Attr[]): unknown {
  if (type.kind === 'text') {
    const parts: Buffer[] = [];
    for (const a of attrs) {
      if (a.nested) throw bad(path, 'text must not have NLA_F_NESTED set');
      parts.push(a.data);
    }
    try {
      return utf8.decode(Buffer.concat(parts));
    } catch {
      throw bad(path, 'text is not valid UTF-8');
    }
  }
  if (attrs.length !== 1) throw bad(path, `appears ${attrs.length} times`);
  const a = attrs[0]!;
  if (type.kind === 'object') {
    if (!a.nested) throw bad(path, 'nested object without NLA_F_NESTED');
    return decodeFields(type.schema, a.data, path);
  }
  if (type.kind === 'array') {
    if (!a.nested) throw bad(path, 'list without NLA_F_NESTED');
    const out: unknown[] = [];
    for (const item of parseAttrs(a.data, `attribute ${path}`)) {
      const ip = `${path}[${out.length}]`;
      if (item.type !== LIST_ITEM) throw bad(ip, `list item has attribute number ${item.type}, expected ${LIST_ITEM}`);
      out.push(decodeValue(ip, type.item, [item]));
    }
    return out;
  }
  return decodeScalar(path, type, a);
}

function decodeFields(s: AnySchema, r: Buffer, path: string): Record<string, unknown> {
  const { byAttr, entries } = compile(s);
  const groups = new Map<number, Attr[]>();
  for (const a of parseAttrs(r, `attribute ${path}`)) {
    if (!byAttr.has(a.type)) {
      throw bad(`${path}.#${a.type}`, `unknown attribute number ${a.type} in ${s.name} (known: ${[...byAttr.keys()].join(', ')})`);
    }
    const g = groups.get(a.type);
    if (g) g.push(a);
    else groups.set(a.type, [a]);
  }
  const out: Record<string, unknown> = {};
  let missing: DstError | null = null; // reported after the attributes present were checked
  for (const [key, f] of entries) {
    const p = `${path}.${key}`;
    const presence = f.presence ?? 'required';
    const got = groups.get(f.attr);
    if (!got) {
      if (presence === 'nullable') out[key] = null;
      else if (presence === 'required') missing ??= bad(p, `missing required attribute ${f.attr} in ${s.name}`);
      continue;
    }
    if (presence === 'optional-nullable' && got.length === 1 && got[0]!.data.length === 0 && !got[0]!.nested) {
      out[key] = null;
      continue;
    }
    out[key] = decodeValue(p, f.type, got);
  }
  if (missing) throw missing;
  return out;
}

/** Decode an attribute stream with a schema. Throws DST_ERR_BAD_FRAME naming the attribute. */
export function decodeObject<T>(schema: ObjectSchema<T>, attrs: Buffer): T {
  const s = schema as unknown as AnySchema;
  return decodeFields(s, attrs, s.name) as T;
}

/** Fields of a schema in attribute order (decoded objects keep that key order). */
export function byAttr<T>(fields: [string, { readonly attr: number; readonly type: unknown; readonly presence?: string }][]): FieldsOf<T> {
  return Object.fromEntries(fields.sort((x, y) => x[1].attr - y[1].attr)) as unknown as FieldsOf<T>;
}

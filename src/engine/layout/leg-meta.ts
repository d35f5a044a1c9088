// The mirror's metadata on the legs themselves (issue 15), in the reserved tail of every leg (like
// md's v1.0 superblock: data starts at 0, the NBD-visible size excludes the tail). Two copies,
// each a header (magic, leg index, sequence number, body length) + the mirror state encoding
// (state-codec.ts) + CRC32, written in place with FUA, alternately: a write torn by a crash
// leaves the other copy intact, and the newest valid copy wins. So a fresh engine with an empty
// state dir learns from the legs alone which mirror they belong to, what each misses and which
// generation each holds.
import { crc32 } from 'node:zlib';
import type { BlockData } from '../remote/target.js';
import type { LegIoHost } from './leg-io.js';
import { sendWithin } from './leg-io.js';
import { MIRROR_RESERVED_TAIL } from './map.js';
import { decodeState, type MirrorSnapshot } from './state-codec.js';

const MAGIC = Buffer.from('DSTLEGM1', 'latin1');
const VERSION = 1;
/** magic, version, leg index, sequence, body length */
const COPY_HEADER = 8 + 4 + 4 + 8 + 4;
const ALIGN = 4096;
const COPY_SPAN = MIRROR_RESERVED_TAIL / 2;
/** the largest state a copy holds (the tail is aligned up to 4 KiB inside the leg's last 4 MiB) */
export const MAX_META_BODY = COPY_SPAN - ALIGN - COPY_HEADER - 4;
/** read first: a header and the body of any mirror up to a few TiB at the default region */
const FIRST_READ = 64 * 1024;

/** Where copy 0 and copy 1 start on a leg of `legSize` bytes. */
export function metaOffsets(legSize: number): [number, number] {
  const start = Math.ceil((legSize - MIRROR_RESERVED_TAIL) / ALIGN) * ALIGN;
  return [start, start + COPY_SPAN];
}

export interface MetaCopy {
  /** the leg's index in the mirror, as the writer numbered it */
  index: number;
  seq: bigint;
  body: Buffer;
}

export function encodeCopy(c: MetaCopy): Buffer {
  const used = COPY_HEADER + c.body.length + 4;
  const buf = Buffer.alloc(Math.ceil(used / ALIGN) * ALIGN);
  MAGIC.copy(buf, 0);
  let at = buf.writeUInt32BE(VERSION, 8);
  at = buf.writeUInt32BE(c.index, at);
  at = buf.writeBigUInt64BE(c.seq, at);
  at = buf.writeUInt32BE(c.body.length, at);
  at += c.body.copy(buf, at);
  buf.writeUInt32BE(crc32(buf.subarray(0, at)), at);
  return buf;
}

/** Bytes a copy with this header needs (null when the header is not one). */
export function copyLength(head: Buffer): number | null {
  if (head.length < COPY_HEADER || !head.subarray(0, 8).equals(MAGIC)) return null;
  const n = head.readUInt32BE(24);
  return n > MAX_META_BODY ? null : COPY_HEADER + n + 4;
}

/** A copy, null when blank (never written: all zero), or why it cannot be used. */
export function decodeCopy(raw: Buffer): MetaCopy | null | string {
  if (raw.subarray(0, COPY_HEADER).every((b) => b === 0)) return null;
  const need = copyLength(raw);
  if (need === null) return 'not dst mirror metadata';
  if (raw.length < need) return 'truncated';
  if (raw.readUInt32BE(8) !== VERSION) return `metadata version ${raw.readUInt32BE(8)}, expected ${VERSION}`;
  if (crc32(raw.subarray(0, need - 4)) !== raw.readUInt32BE(need - 4)) return 'its checksum does not match';
  return { index: raw.readUInt32BE(12), seq: raw.readBigUInt64BE(16), body: Buffer.from(raw.subarray(COPY_HEADER, need - 4)) };
}

/** What a leg holds in its tail. */
export type LegMetaRead =
  | { kind: 'blank' }
  /** both copies are there and neither can be used */
  | { kind: 'unreadable'; detail: string }
  | { kind: 'meta'; index: number; seq: bigint; snapshot: MirrorSnapshot; /** a copy to rewrite (torn, stale) */ bad: string | null }
  /** the reads failed: nothing is known */
  | { kind: 'io-error' };

function joined(d: BlockData): Buffer {
  return Buffer.isBuffer(d) ? d : Buffer.concat(d);
}

async function readCopy(h: LegIoHost, i: number, at: number): Promise<Buffer | null> {
  const max = h.ports[i]!.leg.maxRequest();
  const first = await sendWithin(h, i, { op: 'read', offset: at, length: Math.min(FIRST_READ, max), payload: null, fua: false });
  if (first === null) return null;
  const head = joined(first);
  const need = copyLength(head);
  if (need === null || need <= head.length) return head;
  const parts = [head];
  for (let got = head.length; got < need;) {
    const n = Math.min(max, need - got);
    const more = await sendWithin(h, i, { op: 'read', offset: at + got, length: n, payload: null, fua: false });
    if (more === null) return null;
    parts.push(joined(more));
    got += n;
  }
  return Buffer.concat(parts);
}

/**
 * Per leg: the sequence number last written and which copy the next write replaces (the older
 * or the bad one), so a torn write never takes the only good copy with it.
 */
export class MetaReplica {
  private readonly seq: bigint[];
  private readonly next: number[];

  constructor(legs: number) {
    this.seq = new Array<bigint>(legs).fill(0n);
    this.next = new Array<number>(legs).fill(0);
  }

  /** Read both copies of leg i; the newest valid one wins. */
  async read(h: LegIoHost, i: number, legSize: number): Promise<LegMetaRead> {
    const offsets = metaOffsets(legSize);
    const raws = await Promise.all(offsets.map((at) => readCopy(h, i, at)));
    if (raws.some((r) => r === null)) return { kind: 'io-error' };
    const copies = raws.map((r) => decodeCopy(r!));
    const valid = copies.flatMap((c, k) => (c !== null && typeof c === 'object' ? [{ c, k }] : []));
    const snapshots = valid.map((v) => ({ ...v, s: decodeState(v.c.body) }));
    const usable = snapshots.filter((v) => typeof v.s === 'object').sort((a, b) => (a.c.seq > b.c.seq ? -1 : 1));
    if (usable.length === 0) {
      if (copies.every((c) => c === null)) return { kind: 'blank' };
      const why = [...copies.map((c) => (typeof c === 'string' ? c : null)), ...snapshots.map((v) => (typeof v.s === 'string' ? v.s : null))];
      return { kind: 'unreadable', detail: why.filter((w) => w !== null).join('; ') };
    }
    const best = usable[0]!;
    const other = 1 - best.k;
    this.seq[i] = best.c.seq;
    this.next[i] = other;
    const otherCopy = copies[other]!;
    const bad = typeof otherCopy === 'string' ? `copy ${other}: ${otherCopy}` : null;
    return { kind: 'meta', index: best.c.index, seq: best.c.seq, snapshot: best.s as MirrorSnapshot, bad };
  }

  /** Write `body` as leg i's next copy (FUA, in pieces of at most max-request); false if it failed. */
  async write(h: LegIoHost, i: number, legSize: number, body: Buffer): Promise<boolean> {
    const seq = this.seq[i]! + 1n;
    const k = this.next[i]!;
    const buf = encodeCopy({ index: i, seq, body });
    const at = metaOffsets(legSize)[k];
    const max = h.ports[i]!.leg.maxRequest();
    for (let off = 0; off < buf.length; off += max) {
      const n = Math.min(max, buf.length - off);
      const ok = await sendWithin(h, i, { op: 'write', offset: at + off, length: n, payload: buf.subarray(off, off + n), fua: true });
      if (ok === null) return false;
    }
    this.seq[i] = seq;
    this.next[i] = 1 - k;
    return true;
  }
}

/**
 * Replace both copies of each of `legs`' metadata with `body` (the legs were renumbered or their
 * count changed: no old copy may win after a torn write of the new one). Returns the legs that failed.
 */
export async function rewriteMeta(h: LegIoHost, legs: readonly number[], legSize: (i: number) => number, body: Buffer): Promise<number[]> {
  const replica = new MetaReplica(h.ports.length);
  const failed: number[] = [];
  await Promise.all(legs.map(async (i) => {
    // reading first learns the sequence numbers the new copies must exceed
    const ok = (await replica.read(h, i, legSize(i))).kind !== 'io-error'
      && await replica.write(h, i, legSize(i), body) && await replica.write(h, i, legSize(i), body);
    if (!ok) failed.push(i);
  }));
  return failed;
}

/** Blank both metadata copies of leg i (an export initialised as a new leg); false if it failed. */
export async function wipeMeta(h: LegIoHost, i: number, legSize: number): Promise<boolean> {
  const zero = Buffer.alloc(ALIGN);
  for (const at of metaOffsets(legSize)) {
    if (await sendWithin(h, i, { op: 'write', offset: at, length: zero.length, payload: zero, fua: true }) === null) return false;
  }
  return true;
}

// An in-memory BlockTarget for endpoint tests: a Buffer-backed disk with a configurable size,
// permissions, max request, capacity (outstanding submits), per-op delay, failure injection,
// and a "hold" switch that parks completions until release(). Block status reports each 4 KiB
// block that is all zeroes as a hole; FAST_ZERO is honoured only with `fastZero`.
import type { BlockDone, BlockRequest, BlockTarget } from '../../src/engine/remote/target.js';
import { ExtentFlag, MAX_EXTENTS, ZeroFlag, encodeExtents, type ExtentDescriptor } from '../../src/protocol/thin.js';

export interface MemoryTargetOptions {
  name?: string;
  size?: number;
  /** initial contents (copied; length wins over `size`) */
  data?: Buffer;
  permissions?: 'r' | 'w' | 'rw';
  maxRequest?: number;
  /** largest TRIM/WRITE_ZEROES (default: maxRequest) */
  maxZeroRequest?: number;
  /** most submits outstanding at once (default: unbounded) */
  capacity?: number;
  /** completion delay in ms (number or per request); 0 = next setImmediate; 'sync' = inside submit() */
  delayMs?: number | 'sync' | ((req: BlockRequest) => number);
  /** return an errno to fail a request (checked when it completes) */
  fail?: (req: BlockRequest) => string | null;
  /** WRITE_ZEROES with FAST_ZERO is honoured (default false: it fails with ENOTSUP) */
  fastZero?: boolean;
}

/** The granularity of the memory disk's block status. */
export const STATUS_BLOCK = 4096;
const ZERO_BLOCK = Buffer.alloc(STATUS_BLOCK);
const HOLE = ExtentFlag.HOLE | ExtentFlag.ZERO;

/** Extents of [offset, offset + length): each STATUS_BLOCK (cut to the range) that reads zeroes is a hole. */
function extentsOf(data: Buffer, offset: number, length: number): Buffer {
  const list: ExtentDescriptor[] = [];
  for (let at = offset, end = offset + length; at < end && list.length <= MAX_EXTENTS;) {
    const next = Math.min(end, (Math.floor(at / STATUS_BLOCK) + 1) * STATUS_BLOCK);
    const flags = data.subarray(at, next).equals(ZERO_BLOCK.subarray(0, next - at)) ? HOLE : 0;
    const last = list.at(-1);
    if (last?.flags === flags) last.length += next - at;
    else list.push({ length: next - at, flags });
    at = next;
  }
  return encodeExtents(list.slice(0, MAX_EXTENTS)); // a prefix of the range when there are more
}

export interface MemoryTarget extends BlockTarget {
  readonly data: Buffer;
  /** every request submitted, in order */
  readonly submitted: BlockRequest[];
  /** submits currently outstanding */
  readonly outstanding: number;
  /** highest `outstanding` seen */
  readonly maxOutstanding: number;
  /** number of live onCapacity listeners */
  readonly capacityListeners: number;
  setPermissions(p: 'r' | 'w' | 'rw'): void;
  /** park completions until release() */
  hold(): void;
  /** complete every parked request (and stop holding) */
  release(): void;
  /** requests parked by hold() */
  readonly held: number;
}

export function createMemoryTarget(opts: MemoryTargetOptions = {}): MemoryTarget {
  const data = opts.data ? Buffer.from(opts.data) : Buffer.alloc(opts.size ?? 1024 * 1024);
  const name = opts.name ?? 'mem';
  let permissions = opts.permissions ?? 'rw';
  const maxRequest = opts.maxRequest ?? 1024 * 1024;
  const capacity = opts.capacity ?? Infinity;
  const fastZero = opts.fastZero ?? false;
  const listeners = new Set<() => void>();
  const submitted: BlockRequest[] = [];
  let outstanding = 0;
  let maxOutstanding = 0;
  let holding = false;
  const parked: (() => void)[] = [];

  const execute = (req: BlockRequest): { errno: string | null; out: Buffer | null } => {
    const injected = opts.fail?.(req) ?? null;
    if (injected) return { errno: injected, out: null };
    const { offset, length } = req;
    if (req.op !== 'flush' && (offset < 0 || length < 0 || offset + length > data.length)) return { errno: 'EINVAL', out: null };
    switch (req.op) {
      case 'read': return { errno: null, out: Buffer.from(data.subarray(offset, offset + length)) };
      case 'write':
        if (!req.payload || req.payload.length !== length) return { errno: 'EINVAL', out: null };
        req.payload.copy(data, offset);
        return { errno: null, out: null };
      case 'write-zeroes':
        if (((req.zeroFlags ?? 0) & ZeroFlag.FAST_ZERO) !== 0 && !fastZero) return { errno: 'ENOTSUP', out: null };
        data.fill(0, offset, offset + length);
        return { errno: null, out: null };
      case 'trim':
        data.fill(0, offset, offset + length);
        return { errno: null, out: null };
      case 'flush':
        return { errno: null, out: null };
      case 'block-status':
        return { errno: null, out: extentsOf(data, offset, length) };
    }
  };

  const finish = (req: BlockRequest, done: BlockDone): void => {
    const wasFull = outstanding >= capacity;
    const { errno, out } = execute(req);
    outstanding--;
    done(errno, out);
    if (wasFull && outstanding < capacity) for (const l of [...listeners]) l();
  };

  const target: MemoryTarget = {
    name,
    data,
    submitted,
    get outstanding() { return outstanding; },
    get maxOutstanding() { return maxOutstanding; },
    get capacityListeners() { return listeners.size; },
    get held() { return parked.length; },
    size: () => data.length,
    permissions: () => permissions,
    maxRequest: () => maxRequest,
    maxZeroRequest: () => opts.maxZeroRequest ?? maxRequest,
    fastZero: () => fastZero,
    hasCapacity: () => outstanding < capacity,
    onCapacity(listener) {
      const l = (): void => listener();
      listeners.add(l);
      return () => { listeners.delete(l); };
    },
    submit(req, done) {
      if (outstanding >= capacity) throw new Error('memory target: submit() without capacity');
      const zeroes = req.op === 'trim' || req.op === 'write-zeroes';
      const limit = zeroes ? opts.maxZeroRequest ?? maxRequest : maxRequest;
      if (req.length > limit && req.op !== 'block-status') throw new Error(`memory target: ${req.op} of ${req.length} > its limit ${limit}`);
      submitted.push(req);
      outstanding++;
      maxOutstanding = Math.max(maxOutstanding, outstanding);
      const run = (): void => {
        if (holding) { parked.push(() => finish(req, done)); return; }
        finish(req, done);
      };
      const d = typeof opts.delayMs === 'function' ? opts.delayMs(req) : opts.delayMs ?? 0;
      if (d === 'sync') run();
      else if (d === 0) setImmediate(run);
      else setTimeout(run, d);
    },
    setPermissions(p) { permissions = p; },
    hold() { holding = true; },
    release() {
      holding = false;
      for (const f of parked.splice(0)) f();
    },
  };
  return target;
}

// Looking at and meddling with the DST wire through the product's fault proxy, for the security
// tests: fast in-process control requests, the frames of one captured connection with their stream
// offsets, and a one-shot bit flip that turns itself off as soon as it hit.
import { controlRequest } from '../../src/faultproxy/control.js';
import { captureBytes, readCapture, type CaptureRecord } from '../../src/faultproxy/capture.js';
import type { FaultProxyStatus } from '../../src/faultproxy/proxy.js';
import { HEADER_SIZE, decodeHeader, type FrameHeader } from '../../src/protocol/wire.js';
import type { ProxyHandle } from './proxy.js';
import { sleep } from './tools.js';

/** One control command, in process (no CLI spawn): fast enough to poll. */
export async function proxyCtl(proxy: ProxyHandle, ...command: string[]): Promise<FaultProxyStatus> {
  return (await controlRequest(proxy.control, command, { timeoutMs: 5000 })) as unknown as FaultProxyStatus;
}

export function proxyStatus(proxy: ProxyHandle): Promise<FaultProxyStatus> {
  return proxyCtl(proxy, 'status');
}

/** The newest live connection of the proxy (throws when there is none). */
export function liveConnection(s: FaultProxyStatus): FaultProxyStatus['connectionList'][number] {
  const c = [...s.connectionList].sort((a, b) => b.id - a.id)[0];
  if (!c) throw new Error(`fault proxy has no live connection: ${JSON.stringify(s)}`);
  return c;
}

/** Wait until the proxy has a live connection whose id is above `afterId`; returns it. */
export async function waitNewConnection(proxy: ProxyHandle, afterId: number, timeoutMs = 15_000): Promise<FaultProxyStatus['connectionList'][number]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await proxyStatus(proxy);
    const c = s.connectionList.filter((x) => x.id > afterId).sort((a, b) => b.id - a.id)[0];
    if (c) return c;
    if (Date.now() > deadline) throw new Error(`no new proxy connection after id ${afterId} within ${timeoutMs} ms: ${JSON.stringify(s)}`);
    await sleep(20);
  }
}

export interface IndexedFrame {
  /** stream offset of the frame's first byte in its connection and direction */
  offset: number;
  /** header + payload + tag */
  size: number;
  header: FrameHeader;
  /** the frame's bytes as captured */
  bytes: Buffer;
}

/** Split one direction of one connection's stream into frames (a trailing partial frame is left out). */
export function indexFrames(stream: Buffer): IndexedFrame[] {
  const out: IndexedFrame[] = [];
  let off = 0;
  while (stream.length - off >= HEADER_SIZE) {
    const header = decodeHeader(stream.subarray(off, off + HEADER_SIZE));
    const size = HEADER_SIZE + header.payloadLength + header.tagLength;
    if (stream.length - off < size) break;
    out.push({ offset: off, size, header, bytes: Buffer.from(stream.subarray(off, off + size)) });
    off += size;
  }
  return out;
}

/** Frames of one captured connection in one direction (received bytes only, not injected ones). */
export function capturedFrames(capture: string | CaptureRecord[], connection: number, direction: 'up' | 'down'): IndexedFrame[] {
  const records = typeof capture === 'string' ? readCapture(capture) : capture;
  return indexFrames(captureBytes(records, { connection, direction, injected: false }));
}

/**
 * Flip bit 0 of the byte at `offset` of connection `connection`'s `dir` stream, once: the rule
 * (which the proxy applies to every connection) is turned off as soon as the corrupted counter
 * moves. `hit` resolves with the number of flips seen then, or with 0 when the target connection
 * carried past `offset` (or closed) without a flip: the byte it aimed at went through untouched,
 * so the caller's idea of where its frame starts was wrong (other traffic came first). Rejects
 * (rule off) after timeoutMs with neither.
 */
export async function corruptOnce(proxy: ProxyHandle, connection: number, offset: number, dir: 'up' | 'down', timeoutMs = 15_000): Promise<{ arm: () => Promise<void>; hit: Promise<number> }> {
  const before = (await proxyStatus(proxy)).corrupted;
  let armed!: () => void;
  const armedP = new Promise<void>((r) => { armed = r; });
  const hit = (async () => {
    await armedP;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = await proxyStatus(proxy);
      if (s.corrupted > before) {
        const off = await proxyCtl(proxy, 'corrupt', 'off');
        return off.corrupted - before;
      }
      const target = s.connectionList.find((c) => c.id === connection);
      const carried = target ? (dir === 'up' ? target.bytesUp : target.bytesDown) : Infinity;
      // The counter is read after the connection's bytes in the same status: a flip at offset
      // would already show in `corrupted`.
      if (carried > offset) {
        const off = await proxyCtl(proxy, 'corrupt', 'off');
        if (off.corrupted > before) return off.corrupted - before;
        return 0;
      }
      if (Date.now() > deadline) {
        await proxyCtl(proxy, 'corrupt', 'off');
        throw new Error(`corruption at ${dir} offset ${offset} of connection ${connection} never hit within ${timeoutMs} ms: ${JSON.stringify(s)}`);
      }
      await sleep(5);
    }
  })();
  hit.catch(() => {});
  return {
    async arm() {
      await proxyCtl(proxy, 'corrupt', 'offset', String(offset), dir);
      armed();
    },
    hit,
  };
}

/** The frame of a captured connection's `dir` stream that holds byte `offset`, for messages. */
export function frameAt(capture: string, connection: number, dir: 'up' | 'down', offset: number): string {
  const f = capturedFrames(capture, connection, dir).find((x) => offset >= x.offset && offset < x.offset + x.size);
  if (!f) return `no complete frame at ${dir} offset ${offset} of connection ${connection}`;
  const h = f.header;
  return `frame at ${f.offset} (+${offset - f.offset}): cmd ${h.cmd} op ${h.op} flags ${h.flags} id ${h.id} length ${h.length} payload ${h.payloadLength} tag ${h.tagLength}`;
}

/** Reject with `what` when p does not settle within ms. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: not done within ${ms} ms`)), ms);
    p.then((v) => { clearTimeout(timer); resolve(v); }, (e: unknown) => { clearTimeout(timer); reject(e instanceof Error ? e : new Error(String(e))); });
  });
}

/** Log text appended since a mark: `const m = logMark(e); … logSince(e, m)`. */
export function logSince(log: string, mark: number): string {
  return log.slice(mark);
}

// Linear and stripe devices: each request cut into (leg, leg offset) pieces by the layout map,
// each piece sent to its leg, the request answered once when the last piece is done (the first
// errno wins). A read that spans legs is answered with the legs' buffers in order (no copy);
// writes send views into the request's payload; a block status joins the legs' extents. FLUSH
// goes to every leg. A leg that is away holds only its own pieces (its transaction table resends,
// reconnects and applies the deadline); the other legs keep serving their ranges.
import type { Policy } from '../types.js';
import { MAX_ZERO_REQUEST, type BlockData, type BlockDone, type BlockRequest } from '../remote/target.js';
import { mapRange, splitSize, type SplitMap } from './map.js';
import { joinExtents } from '../../protocol/thin.js';
import { InflightGate, type Device, type DeviceHealth, type LegSync } from './device.js';
import type { LegPort } from './leg-port.js';

/** One request spread over pieces: answered once, when the last piece is done. */
class Spread {
  remaining: number;
  errno: string | null = null;
  readonly parts: (BlockData | null)[] | null;

  /** `answers`: the pieces answer with data (a read, a block status; then `lengths` are theirs) */
  constructor(pieces: number, answers: boolean, private readonly done: (errno: string | null, data: BlockData | null) => void,
    private readonly lengths: number[] | null = null) {
    this.remaining = pieces;
    this.parts = answers ? new Array<BlockData | null>(pieces).fill(null) : null;
  }

  pieceDone(i: number, errno: string | null, data: BlockData | null): void {
    if (errno !== null) this.errno ??= errno;
    else if (this.parts !== null) this.parts[i] = data;
    if (--this.remaining > 0) return;
    if (this.errno !== null || this.parts === null) {
      this.done(this.errno, null);
      return;
    }
    const parts = this.parts as BlockData[];
    // a block status: the legs' extents as one answer (each leg's is one buffer)
    if (this.lengths !== null) this.done(null, joinExtents(parts as Buffer[], this.lengths));
    else this.done(null, parts.length === 1 ? parts[0]! : parts.flat());
  }
}

/** Most chunks one block status of a stripe asks about (each is a request to a leg). */
const STATUS_CHUNKS = 256;

export class SplitDevice implements Device {
  readonly size: number;

  private readonly gate: InflightGate;

  constructor(private readonly ports: readonly LegPort[], private readonly map: SplitMap, policy: () => Policy) {
    this.size = splitSize(map);
    this.gate = new InflightGate(() => policy().maxInflight);
  }

  maxRequest(): number {
    // a stripe request of at most one chunk spans at most two legs
    const legMax = Math.min(...this.ports.map((p) => p.leg.maxRequest()));
    return this.map.kind === 'stripe' ? Math.min(legMax, this.map.chunk) : legMax;
  }

  maxZeroRequest(): number {
    // a linear request spans at most every leg; a stripe's keeps to one chunk, as for data
    return this.map.kind === 'stripe' ? this.maxRequest() : MAX_ZERO_REQUEST;
  }

  fastZero(): boolean {
    return this.ports.every((p) => p.leg.fastZero());
  }

  hasCapacity(): boolean {
    return this.gate.hasCapacity();
  }

  onCapacity(listener: () => void): () => void {
    return this.gate.onCapacity(listener);
  }

  inflight(): number {
    return this.gate.inflight();
  }

  submit(req: BlockRequest, done: BlockDone): void {
    const finish = this.gate.enter(done);
    if (req.op === 'flush') {
      const spread = new Spread(this.ports.length, false, finish);
      this.ports.forEach((p, i) => p.send(req, (errno) => spread.pieceDone(i, errno, null)));
      return;
    }
    const status = req.op === 'block-status';
    // a block status may answer a prefix: a stripe's is cut to a bounded number of chunks
    const length = status && this.map.kind === 'stripe' ? Math.min(req.length, STATUS_CHUNKS * this.map.chunk) : req.length;
    const pieces = mapRange(this.map, req.offset, length);
    const spread = new Spread(pieces.length, req.op === 'read' || status, finish, status ? pieces.map((p) => p.length) : null);
    pieces.forEach((piece, i) => {
      const payload = req.payload === null ? null : req.payload.subarray(piece.bufferOffset, piece.bufferOffset + piece.length);
      this.ports[piece.leg]!.send({ op: req.op, offset: piece.legOffset, length: piece.length, payload, fua: req.fua, zeroFlags: req.zeroFlags },
        (errno, data) => spread.pieceDone(i, errno, data));
    });
  }

  health(): DeviceHealth {
    if (this.ports.every((p) => p.leg.phase === 'failed')) return 'failed';
    return this.ports.every((p) => p.leg.phase === 'ready') ? 'ready' : 'backoff';
  }

  degraded(): null {
    return null;
  }

  legState(leg: number): 'connecting' | 'in-sync' | 'failed' {
    const phase = this.ports[leg]!.leg.phase;
    return phase === 'ready' ? 'in-sync' : phase === 'failed' ? 'failed' : 'connecting';
  }

  legReason(leg: number): string | null {
    return this.ports[leg]!.leg.reason;
  }

  legSync(): LegSync {
    return { outOfSyncBytes: 0, resync: null, resyncedBytes: 0, comparedBytes: 0, generation: null };
  }

  legPhaseChanged(leg: number): void {
    const port = this.ports[leg]!;
    if (port.leg.phase === 'failed') port.failWaiting('EIO');
    else port.kick();
  }

  policyChanged(): void {
    this.gate.wake();
  }

  close(): Promise<void> {
    for (const p of this.ports) p.failWaiting('ESHUTDOWN');
    return Promise.resolve();
  }
}

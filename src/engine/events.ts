// The engine's event bus (DESIGN §6): numbers every event, stamps it with wall-clock time and fans
// it out to subscribers, each optionally filtered to one node. Delivery is synchronous; the
// netlink server owns each subscriber's bounded queue (and its events-lost record).
// String fields have their control characters escaped (util/escape.ts): an event is one line.
import type { Logger } from '../util/log.js';
import { escapeText } from '../util/escape.js';
import type { EventFields, EventName, EventRecord, EventSink } from './types.js';

export type EventListener = (ev: EventRecord) => void;

interface Subscriber {
  node: string | null;
  push: EventListener;
}

export interface EventBusOptions {
  /** wall clock in ms since epoch (default Date.now) */
  wallNow?: () => number;
  log?: Logger;
}

export class EventBus implements EventSink {
  private seqNo = 0;
  private readonly subs = new Set<Subscriber>();
  private readonly wallNow: () => number;
  private readonly log: Logger | null;

  constructor(opts: EventBusOptions = {}) {
    this.wallNow = opts.wallNow ?? Date.now;
    this.log = opts.log ?? null;
  }

  /** seq of the last event emitted (0 = none yet). */
  get seq(): number {
    return this.seqNo;
  }

  get subscriberCount(): number {
    return this.subs.size;
  }

  emit(node: string, event: EventName, fields: EventFields = {}): void {
    const rec: EventRecord = { ...safeFields(fields), seq: ++this.seqNo, ts: this.wallNow(), node, event };
    Object.freeze(rec);
    this.log?.debug(`event ${event}`, { node, op: 'event', seq: rec.seq });
    for (const s of [...this.subs]) {
      if (s.node !== null && s.node !== node) continue;
      try {
        s.push(rec);
      } catch (err) {
        this.log?.warn(`event subscriber failed: ${(err as Error).message}`, { node, op: 'event' });
      }
    }
  }

  /** Subscribe (node = null: all nodes). Returns the unsubscribe function (idempotent). */
  subscribe(node: string | null, push: EventListener): () => void {
    const sub: Subscriber = { node, push };
    this.subs.add(sub);
    return () => { this.subs.delete(sub); };
  }

  /**
   * The first record of a subscription: `subscribed`, carrying the seq of the last event already
   * emitted (every event the subscriber gets after it has a larger seq).
   */
  subscribedRecord(node: string | null): EventRecord {
    return { seq: this.seqNo, ts: this.wallNow(), node, event: 'subscribed' };
  }
}

/** Every string field with its control characters escaped: an event is one line in any rendering. */
function safeFields(fields: EventFields): EventFields {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) out[k] = typeof v === 'string' ? escapeText(v) : v;
  return out as EventFields;
}

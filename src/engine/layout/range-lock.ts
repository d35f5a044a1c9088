// Byte-range lock of the mirror: writes whose ranges overlap, and a resync copy and the writes to
// its region, run one after the other, in the order they asked, so no two legs ever apply them in
// different orders and a resync copy never overwrites a newer write. Ranges that do not overlap
// run at once. Holders and waiters are bounded by the device's in-flight limit (plus one resync
// copy per leg), so the linear scans stay short.

interface Range {
  start: number;
  end: number;
}

interface Waiter extends Range {
  grant: (held: Range) => void;
}

const overlaps = (a: Range, b: Range): boolean => a.start < b.end && b.start < a.end;

export class RangeLock {
  private readonly held: Range[] = [];
  private waiters: Waiter[] = [];

  /** Run `grant` once [start, end) is free of holders and of earlier waiters that overlap it. */
  acquire(start: number, end: number, grant: (held: Range) => void): void {
    const r = { start, end };
    if (!this.held.some((h) => overlaps(h, r)) && !this.waiters.some((w) => overlaps(w, r))) {
      this.held.push(r);
      grant(r);
      return;
    }
    this.waiters.push({ start, end, grant });
  }

  /** The promise form, for the resync loop. */
  lock(start: number, end: number): Promise<Range> {
    return new Promise((resolve) => this.acquire(start, end, resolve));
  }

  release(r: Range): void {
    const i = this.held.indexOf(r);
    if (i < 0) return;
    this.held.splice(i, 1);
    const still: Waiter[] = [];
    const granted: [Waiter, Range][] = [];
    for (const w of this.waiters) {
      if (this.held.some((h) => overlaps(h, w)) || still.some((s) => overlaps(s, w))) {
        still.push(w);
        continue;
      }
      const h = { start: w.start, end: w.end };
      this.held.push(h);
      granted.push([w, h]);
    }
    this.waiters = still;
    for (const [w, h] of granted) w.grant(h);
  }

  size(): number {
    return this.held.length + this.waiters.length;
  }
}

// Callers waiting for a node to settle (node start --wait): each resolves with the state at wake(),
// or at its own timeout (from the injectable clock) with the state then; never rejects.
import type { Clock, TimerHandle } from '../../util/clock.js';

export class StateWaiters<S> {
  private waiting: { resolve: (s: S) => void; timer: TimerHandle }[] = [];

  constructor(private readonly clock: Clock, private readonly state: () => S) {}

  wait(ms: number): Promise<S> {
    return new Promise((resolve) => {
      const w = {
        resolve,
        timer: this.clock.setTimer(ms, () => {
          this.waiting = this.waiting.filter((x) => x !== w);
          resolve(this.state());
        }),
      };
      this.waiting.push(w);
    });
  }

  /** Resolve every waiter with the state now. */
  wake(): void {
    const ws = this.waiting;
    this.waiting = [];
    for (const w of ws) {
      w.timer.cancel();
      w.resolve(this.state());
    }
  }
}

// The device a multi-leg node serves, as the NBD endpoint sees it (issue 14, 15): the slot is the
// node's block target while a device is installed, and while it is paused — the device closed
// for `node leg add/del` — it has no capacity, so the endpoint stops reading requests and its
// clients wait instead of failing. Requests in flight finish before the device closes.
import { DstError } from '../../util/errors.js';
import type { Clock } from '../../util/clock.js';
import type { Device } from '../layout/device.js';
import type { BlockDone, BlockRequest } from './target.js';

/** What the NBD side checks requests against (kept while the device is paused). */
interface Limits {
  size: number;
  maxRequest: number;
  maxZeroRequest: number;
  fastZero: boolean;
}

function limitsOf(d: Device): Limits {
  return { size: d.size, maxRequest: d.maxRequest(), maxZeroRequest: d.maxZeroRequest(), fastZero: d.fastZero() };
}

export class DeviceSlot {
  device: Device | null = null;
  /** the device is closed while the legs change */
  paused = false;
  /** the limits the device had before the pause */
  private pausedAs: Limits = { size: 0, maxRequest: 0, maxZeroRequest: 0, fastZero: false };
  private readonly listeners = new Set<() => void>();
  private deviceOff: (() => void) | null = null;
  /** waiting for the pause to end */
  private resumeWaiters: (() => void)[] = [];

  constructor(private readonly clock: Clock, private readonly graceMs: number) {}

  install(device: Device): void {
    this.device = device;
    // the NBD side waits on the node's capacity: forward the device's
    this.deviceOff = device.onCapacity(() => this.capacity());
  }

  /** The device leaves the slot (to be closed by the caller). */
  take(): Device | null {
    const device = this.device;
    this.device = null;
    this.deviceOff?.();
    this.deviceOff = null;
    return device;
  }

  /** Stop taking requests, let those in flight finish (within graceMs), close the device. `changed`: the node's state moved. */
  async pause(name: string, changed: () => void): Promise<void> {
    const device = this.device;
    if (!device || this.paused) throw new DstError('DST_ERR_BUSY', `${name} is not serving a device to change`, { errno: 'EAGAIN' });
    this.pausedAs = limitsOf(device);
    this.paused = true;
    changed();
    const drained = await new Promise<boolean>((resolve) => {
      const timer = this.clock.setTimer(this.graceMs, () => { off(); resolve(false); });
      const check = (): void => { if (device.inflight() === 0) { timer.cancel(); off(); resolve(true); } };
      const off = device.onCapacity(check);
      check();
    });
    if (!drained) {
      this.paused = false;
      changed();
      this.capacity();
      throw new DstError('DST_ERR_BUSY', `${device.inflight()} requests still in flight after ${this.graceMs} ms; the legs are unchanged`, { errno: 'EBUSY' });
    }
    await this.take()!.close();
  }

  /** Resolves when the pause ends (resumed()). */
  waitResumed(): Promise<void> {
    return this.paused ? new Promise((resolve) => this.resumeWaiters.push(resolve)) : Promise.resolve();
  }

  /** The pause is over: a device serves again, or the node failed or stopped. */
  resumed(): void {
    const was = this.paused;
    this.paused = false;
    for (const w of this.resumeWaiters.splice(0)) w();
    if (was) this.capacity(); // the NBD side blocked on the pause reads again
  }

  get live(): boolean {
    return this.device !== null || this.paused;
  }

  size(): number {
    return this.paused ? this.pausedAs.size : this.device?.size ?? 0;
  }

  maxRequest(): number {
    return this.paused ? this.pausedAs.maxRequest : this.device?.maxRequest() ?? 0;
  }

  maxZeroRequest(): number {
    return this.paused ? this.pausedAs.maxZeroRequest : this.device?.maxZeroRequest() ?? 0;
  }

  fastZero(): boolean {
    return this.paused ? this.pausedAs.fastZero : this.device?.fastZero() ?? false;
  }

  hasCapacity(): boolean {
    return !this.paused && this.device !== null && this.device.hasCapacity();
  }

  onCapacity(listener: () => void): () => void {
    // the device exists only while serving: listen on the slot and forward
    this.listeners.add(listener);
    return () => { this.listeners.delete(listener); };
  }

  /** Wake the NBD side if the device has room. */
  capacity(): void {
    if (this.hasCapacity()) for (const l of [...this.listeners]) l();
  }

  submit(req: BlockRequest, done: BlockDone, maxInflight: number): void {
    if (this.paused) throw new DstError('DST_ERR_BUSY', `${req.op}: the mirror's legs are changing`, { errno: 'EAGAIN' });
    if (!this.device!.hasCapacity()) throw new DstError('DST_ERR_BUSY', `${req.op}: ${maxInflight} requests in flight`, { errno: 'EAGAIN' });
    this.device!.submit(req, done);
  }
}

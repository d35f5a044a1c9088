// Building a multi-leg node's device once its legs' sizes are known (issue 14, 15): a mirror is
// assembled from the legs' metadata and the state dir (open-mirror.ts), a linear or stripe
// device is a map over the legs' sizes.
import type { Logger } from '../../util/log.js';
import type { Reorder, SplitBrain } from '../layout/assemble.js';
import type { Device } from '../layout/device.js';
import type { LegPort } from '../layout/leg-port.js';
import { linearMap, stripeMap } from '../layout/map.js';
import { openMirror } from '../layout/open-mirror.js';
import { SplitDevice } from '../layout/split-device.js';
import type { EventFields, EventName, NodeContext, Policy, RemoteConfig, StartOptions } from '../types.js';
import { legName } from './leg-edits.js';

export interface OpenDeviceOptions {
  cfg: RemoteConfig;
  ports: LegPort[];
  ctx: NodeContext;
  log: Logger;
  policy: () => Policy;
  emit: (event: EventName, fields: EventFields) => void;
  /** a leg's state or the device's health moved */
  changed: () => void;
  /** this start's one-shot assembly options */
  assemble: StartOptions;
  /** legs found written apart while the mirror runs */
  splitBrain: (s: SplitBrain) => void;
}

export type Opened = { kind: 'device'; device: Device } | ({ kind: 'split-brain' } & SplitBrain) | Reorder;

export async function openDevice(o: OpenDeviceOptions): Promise<Opened> {
  const { cfg } = o;
  if (cfg.layout === 'mirror') {
    return openMirror({
      ports: o.ports, region: cfg.region, ctx: o.ctx, log: o.log, name: cfg.name, policy: o.policy, emit: o.emit, changed: o.changed,
      legNames: cfg.legs.map((l, i) => legName(l, i)), assemble: o.assemble, splitBrain: o.splitBrain,
    });
  }
  const sizes = o.ports.map((p) => p.leg.sizeBytes ?? Number.MAX_SAFE_INTEGER);
  const map = cfg.layout === 'linear' ? linearMap(sizes) : stripeMap(sizes, cfg.chunk);
  return { kind: 'device', device: new SplitDevice(o.ports, map, o.policy) };
}

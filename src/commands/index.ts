// Every `dst` command, registered explicitly (no commandDir: it does not work under ESM).
import type { DstCommand } from './context.js';
import { engineCommand } from './engine.js';
import { demoCommand } from './demo.js';
import { nodeCommand } from './node.js';
import { securityCommand } from './security.js';
import { cryptoCommand } from './crypto.js';
import { statusCommand } from './status.js';
import { eventsCommand } from './events.js';
import { configCommand } from './config.js';
import { faultProxyCommand } from './fault-proxy.js';
import { attachCommand, detachCommand } from './attach.js';
import { topCommand } from './top.js';

export const commands: readonly DstCommand[] = [
  engineCommand,
  demoCommand,
  nodeCommand,
  securityCommand,
  cryptoCommand,
  statusCommand,
  topCommand,
  attachCommand,
  detachCommand,
  eventsCommand,
  configCommand,
  faultProxyCommand as DstCommand,
];

// Command descriptions come from the control family table (src/netlink/family.ts), so CLI help,
// man/dst.8 and the engine's handlers describe each command with the same words.
import { FAMILY } from '../netlink/family.js';
import type { ControlCommand } from '../engine/types.js';

/** The table's help text for a control command; `fallback` only if the table has none. */
export function describeOf(cmd: ControlCommand, fallback: string): string {
  const help = (FAMILY as Partial<Record<ControlCommand, { help?: string }>>)[cmd]?.help;
  return help && help.trim() ? help : fallback;
}

// A transaction table on a fake clock, with its events and every frame it sends recorded.
import { FakeClock } from '../../src/util/clock.js';
import { silentLogger } from '../../src/util/log.js';
import { DEFAULT_POLICY, type Policy } from '../../src/engine/types.js';
import { TransactionTable, type Txn, type TxnSender } from '../../src/engine/remote/transactions.js';

export interface SentTxn { id: number; flags: number; ackedBelow: number; op: string }

export function txnTable(over: Partial<Policy> = {}) {
  const clock = new FakeClock();
  const policy: Policy = { ...DEFAULT_POLICY, ...over };
  const events: { event: string; fields: unknown }[] = [];
  const table = new TransactionTable({ clock, log: silentLogger, policy: () => policy,
    emit: (event, fields) => events.push({ event, fields }) });
  const sent: SentTxn[] = [];
  /** a fresh connection's sender (each attach may get its own) */
  const newSender = (): TxnSender => ({
    sendTxn: (t: Readonly<Txn>, flags, ackedBelow) => { sent.push({ id: t.id, flags, ackedBelow, op: t.op }); },
  });
  return { clock, policy, table, events, sent, sender: newSender(), newSender };
}

// Issue 16: FAST_ZERO is honoured end to end. With the export's native file ops switched off
// (DST_NATIVE=0 in its engine's environment) zeroing would mean writing zeroes: the export's
// HELLO_REPLY has no FAST_ZERO feature, the remote node does not offer SEND_FAST_ZERO, and a
// WRITE_ZEROES with FAST_ZERO sent anyway fails and leaves the data as it was (a plain
// WRITE_ZEROES then writes the zeroes); with native ops FAST_ZERO is offered, and the same request
// succeeds and punches a hole.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startPair } from '../helpers/cluster.js';
import { readFileAt } from '../helpers/legs.js';
import { libnbd, requireLibnbd } from '../helpers/libnbd.js';
import { M, allocated, dataAt, fileIsZero, requirePunchHole, thinFile } from '../helpers/thin.js';

const LEN = 4 * M;

interface FastZero { canFastZero: boolean; errnum: number | null; error: string | null }

const FAST_ZERO = `
out['canFastZero'] = h.can_fast_zero()
out['errnum'] = None
out['error'] = None
# libnbd's strict mode would refuse the flag itself when it is not advertised: off, so the server sees it
h.set_strict_mode(h.get_strict_mode() & ~nbd.STRICT_FLAGS)
try:
    h.zero(${LEN}, 0, flags=nbd.CMD_FLAG_FAST_ZERO)
except nbd.Error as e:
    out['errnum'] = e.errnum
    out['error'] = e.string
`;

test('FAST_ZERO: ENOTSUP without native file ops, data unchanged; done with them', { timeout: 120_000 }, async (t) => {
  const py = await requireLibnbd(t);
  if (!py || !(await requirePunchHole(t))) return;

  // native file ops off: nothing can zero without writing zeroes
  const offDisk = thinFile(t, 64 * M, [0], 2 * LEN);
  const off = await startPair(t, { disk: offDisk, exportEnv: { DST_NATIVE: '0' } });
  assert.match((await off.exp.status()).fileOps, /^fallback/, 'the export engine runs without native file ops');
  const slow = await libnbd<FastZero>(py, off.uri, FAST_ZERO);
  assert.equal(slow.canFastZero, false, 'SEND_FAST_ZERO is not advertised');
  assert.notEqual(slow.errnum, null, `FAST_ZERO sent anyway fails: ${slow.error}`);
  assert.ok(readFileAt(offDisk, 0, LEN).equals(dataAt(0, LEN)), 'the refused FAST_ZERO changed nothing');
  const plain = await libnbd<{ zero: boolean }>(py, off.uri, `
h.zero(${LEN}, 0)
h.flush()
out['zero'] = is_zero(0, ${LEN})
`);
  assert.equal(plain.zero, true, 'a plain WRITE_ZEROES writes the zeroes');
  assert.ok(fileIsZero(offDisk, 0, LEN), 'and the export file reads zeroes');
  assert.ok(readFileAt(offDisk, LEN, LEN).equals(dataAt(LEN, LEN)), 'beyond the range the data is untouched');

  // native file ops on: the same request punches a hole
  const onDisk = thinFile(t, 64 * M, [0], 2 * LEN);
  const on = await startPair(t, { disk: onDisk });
  const before = allocated(onDisk);
  const fast = await libnbd<FastZero & { zero: boolean }>(py, on.uri, `${FAST_ZERO}
h.flush()
out['zero'] = is_zero(0, ${LEN})
`);
  assert.equal(fast.canFastZero, true);
  assert.equal(fast.errnum, null, `FAST_ZERO succeeds with native file ops: ${fast.error}`);
  assert.equal(fast.zero, true, 'the range reads zeroes');
  assert.ok(allocated(onDisk) <= before - LEN + 64 * 1024, `the zeroed range was freed: ${before} → ${allocated(onDisk)}`);
});

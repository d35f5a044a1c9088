// Issue 16: a mirror advertises FAST_ZERO only if every leg's export can honour it (HELLO_REPLY's
// FAST_ZERO feature). One leg's export engine runs with DST_NATIVE=0 (it would write zeroes): the
// device offers no SEND_FAST_ZERO, and a FAST_ZERO sent anyway changes no leg. Both legs native:
// it is offered, and FAST_ZERO zeroes both legs alike.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { layoutDevice, readFileAt, sameBytes, startLegs, waitLegStates } from '../helpers/legs.js';
import { libnbd, requireLibnbd } from '../helpers/libnbd.js';
import { M, dataAt, fileIsZero, requirePunchHole } from '../helpers/thin.js';

const LEN = 2 * M;
const SIZE = 16 * M;

interface FastZero { canFastZero: boolean; errnum: number | null; error: string | null }

// libnbd's strict mode would refuse the flag itself when it is not advertised: off, so the device sees it
const FAST_ZERO = `
out['canFastZero'] = h.can_fast_zero()
out['errnum'] = None
out['error'] = None
h.set_strict_mode(h.get_strict_mode() & ~nbd.STRICT_FLAGS)
try:
    h.zero(${LEN}, 0, flags=nbd.CMD_FLAG_FAST_ZERO)
except nbd.Error as e:
    out['errnum'] = e.errnum
    out['error'] = e.string
h.flush()
`;

test('mirror FAST_ZERO: offered only when every leg honours it', { timeout: 120_000 }, async (t) => {
  const py = await requireLibnbd(t);
  if (!py || !(await requirePunchHole(t))) return;

  // leg 1's export engine has no native file ops: its disk cannot zero without writing zeroes
  const { legs: [nativeLeg] } = await startLegs(t, [SIZE]);
  const { exp: offEngine, legs: [offLeg] } = await startLegs(t, [SIZE], { env: { DST_NATIVE: '0' } });
  assert.match((await offEngine.status()).fileOps, /^fallback/, 'leg 1 runs without native file ops');
  const mixed = await layoutDevice(t, [nativeLeg!, offLeg!], ['--layout', 'mirror']);
  await waitLegStates(mixed.rem, ['in-sync', 'in-sync']);
  await mixed.nbd.write(0, dataAt(0, LEN));
  await mixed.nbd.flush();
  const refused = await libnbd<FastZero>(py, mixed.show.nbd!.uri, FAST_ZERO);
  assert.equal(refused.canFastZero, false, 'a mirror with a leg that would write zeroes does not offer FAST_ZERO');
  assert.notEqual(refused.errnum, null, 'a FAST_ZERO sent anyway fails');
  for (const l of [nativeLeg!, offLeg!]) assert.ok(readFileAt(l.file, 0, LEN).equals(dataAt(0, LEN)), `${l.file}: the refused FAST_ZERO touched no leg`);

  // every leg native: offered, and done on both legs
  const { legs: both } = await startLegs(t, [SIZE, SIZE]);
  const fast = await layoutDevice(t, both, ['--layout', 'mirror']);
  await waitLegStates(fast.rem, ['in-sync', 'in-sync']);
  await fast.nbd.write(0, dataAt(0, LEN));
  await fast.nbd.flush();
  const done = await libnbd<FastZero>(py, fast.show.nbd!.uri, FAST_ZERO);
  assert.equal(done.canFastZero, true, 'every leg native: FAST_ZERO is offered');
  assert.equal(done.errnum, null, `FAST_ZERO succeeds: ${done.error}`);
  for (const l of both) assert.ok(fileIsZero(l.file, 0, LEN), `${l.file} reads zeroes`);
  assert.ok(sameBytes(both[0]!.file, both[1]!.file, fast.show.size!), 'the legs are byte-identical (the device, not the metadata tail)');
});

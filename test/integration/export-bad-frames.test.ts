// Frames the export cannot take close that connection only: bad magic, a bad frame, a frame cut
// in half, a first frame that is not HELLO or announces a huge payload.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { Cmd, Op, encodeFrame } from '../../src/protocol/wire.js';
import { fixture, RawClient, connected, pattern, sleep, until } from '../helpers/export-fixture.js';

test('export: bad magic / an HTTP request closes that connection only', async () => {
  const f = await fixture();
  try {
    const { c: good } = await connected(f);
    const http = await RawClient.connect(f.port);
    http.sendRaw('GET / HTTP/1.1\r\nHost: x\r\n\r\n' + ' '.repeat(64));
    await http.closedP;
    assert.ok(f.logs.some((l) => l.includes('is not DST2')), 'reason logged');

    // bad magic after a good HELLO
    const { c: bad } = await connected(f);
    const junk = Buffer.alloc(48, 0x5a);
    bad.sendRaw(junk);
    await bad.closedP;

    // a WRITE whose payload does not match its length: bad frame → close
    const { c: bad2 } = await connected(f);
    bad2.send({ cmd: Cmd.IO, op: Op.WRITE, offset: 0, length: 1024, id: 1, payload: pattern(1, 100) });
    await bad2.closedP;

    // an unexpected command after HELLO (HELLO_REPLY from the client)
    const { c: bad3 } = await connected(f);
    bad3.send({ cmd: Cmd.IO_RESPONSE, id: 1 });
    await bad3.closedP;

    const r = await good.io(Op.WRITE, 0, 512, { data: pattern(3, 512) });
    assert.equal(r.status, 0);
    assert.equal(good.closed, false);
    good.close();
  } finally {
    await f.stop();
  }
});

test('export: a frame cut in half then close runs nothing; the node keeps serving', async () => {
  const f = await fixture();
  try {
    const { c } = await connected(f);
    const parts = encodeFrame({ cmd: Cmd.IO, op: Op.WRITE, offset: 8192, length: 4096, id: 1, payload: pattern(0x77) });
    const whole = Buffer.concat(parts);
    c.sendRaw(whole.subarray(0, 48 + 2000));
    await sleep(30);
    c.socket.end();
    await c.closedP;
    await until(() => f.logs.some((l) => l.includes('connection closed mid-frame')));
    const disk = await readFile(f.disk);
    assert.deepEqual(disk.subarray(8192, 8192 + 4096), Buffer.alloc(4096), 'nothing written');
    const { c: c2 } = await connected(f);
    assert.equal((await c2.io(Op.READ, 8192, 4096)).status, 0);
    c2.close();
  } finally {
    await f.stop();
  }
});

test('export: a first frame that is not HELLO, or a huge HELLO, is closed before buffering it', async () => {
  const f = await fixture();
  try {
    const c = await RawClient.connect(f.port);
    c.send({ cmd: Cmd.IO, op: Op.READ, offset: 0, length: 512, id: 1 });
    await c.closedP;
    const c2 = await RawClient.connect(f.port);
    const head = encodeFrame({ cmd: Cmd.HELLO, payload: Buffer.alloc(1024 * 1024) })[0]!;
    c2.sendRaw(head);
    await c2.closedP;
    assert.ok(f.logs.some((l) => l.includes('exceeds the limit')));
  } finally {
    await f.stop();
  }
});

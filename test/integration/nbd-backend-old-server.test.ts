// An old NBD server behind the export's backend (issue 17): no NBD_OPT_GO and no structured
// replies (both NBD_REP_ERR_UNSUP), so the backend falls back to NBD_OPT_EXPORT_NAME — with the 124
// zero bytes when the server has no NO_ZEROES — and to simple replies. A small server in this test
// speaks just that; writes and reads go through it, a FUA write is a write then a flush (no
// SEND_FUA), and extents are all data. A server that advertises nothing gets no FLUSH (a no-op) and
// no TRIM (dropped), and zeroes are written as data.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { join } from 'node:path';
import { realClock } from '../../src/util/clock.js';
import { createLogger } from '../../src/util/log.js';
import { DEFAULT_POLICY } from '../../src/engine/policy.js';
import { NbdBackend } from '../../src/engine/export/nbd-backend.js';
import { Cmd, HandshakeFlag, Opt, Rep, TxFlag } from '../../src/protocol/nbd.js';
import { encodeExportNameReply, encodeGreeting, encodeOptionError } from '../../src/protocol/nbd-options.js';
import { encodeSimpleReply } from '../../src/protocol/nbd-replies.js';
import { blocksContent, checkBlocks } from '../helpers/blocks.js';
import { tmpDir } from '../helpers/tmp.js';

const SIZE = 1024 * 1024;

/** Fixed newstyle without GO or structured replies; serves a buffer with simple replies. Records the options it was sent. */
async function oldServer(t: { after(fn: () => unknown): void }, path: string, noZeroes: boolean, txFlags = TxFlag.HAS_FLAGS | TxFlag.SEND_FLUSH) {
  const disk = Buffer.alloc(SIZE);
  const options: number[] = [], commands: number[] = [];
  const live = new Set<net.Socket>();
  const server = net.createServer((c) => {
    live.add(c);
    c.on('close', () => live.delete(c));
    let buf = Buffer.alloc(0);
    let phase: 'flags' | 'options' | 'transmission' = 'flags';
    c.write(encodeGreeting(HandshakeFlag.FIXED_NEWSTYLE | (noZeroes ? HandshakeFlag.NO_ZEROES : 0)));
    c.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (phase === 'flags') {
          if (buf.length < 4) return;
          buf = buf.subarray(4);
          phase = 'options';
        } else if (phase === 'options') {
          if (buf.length < 16 || buf.length < 16 + buf.readUInt32BE(12)) return;
          const opt = buf.readUInt32BE(8);
          buf = buf.subarray(16 + buf.readUInt32BE(12));
          options.push(opt);
          if (opt === Opt.EXPORT_NAME) {
            c.write(encodeExportNameReply(SIZE, txFlags, noZeroes));
            phase = 'transmission';
          } else c.write(encodeOptionError(opt, Rep.ERR_UNSUP));
        } else {
          if (buf.length < 28) return;
          const cmd = buf.readUInt16BE(6), cookie = buf.subarray(8, 16), offset = Number(buf.readBigUInt64BE(16)), length = buf.readUInt32BE(24);
          if (cmd === Cmd.WRITE && buf.length < 28 + length) return;
          commands.push(cmd);
          if (cmd === Cmd.WRITE) buf.copy(disk, offset, 28, 28 + length);
          const reply = encodeSimpleReply(Buffer.from(cookie), 0);
          buf = buf.subarray(cmd === Cmd.WRITE ? 28 + length : 28);
          if (cmd === Cmd.DISC) { c.end(); return; }
          c.write(cmd === Cmd.READ ? Buffer.concat([reply, disk.subarray(offset, offset + length)]) : reply);
        }
      }
    });
    c.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  t.after(() => new Promise<void>((resolve) => { for (const c of live) c.destroy(); server.close(() => resolve()); }));
  return { options, commands };
}

for (const noZeroes of [true, false]) {
  test(`an old server (EXPORT_NAME, simple replies${noZeroes ? ', NO_ZEROES' : ', 124 zeroes'}): size, flags, verified I/O, all-data extents`, async (t) => {
    const path = join(tmpDir(t), 'old.sock');
    const { options, commands } = await oldServer(t, path, noZeroes);
    const backend = await NbdBackend.open(`nbd+unix:///disk?socket=${path}`, { clock: realClock, log: createLogger('error', 'text', () => {}), policy: () => DEFAULT_POLICY });
    t.after(() => backend.close());
    assert.deepEqual(options, [Opt.STRUCTURED_REPLY, Opt.GO, Opt.EXPORT_NAME], 'GO refused, EXPORT_NAME taken');
    assert.equal(backend.info.size, SIZE);
    assert.equal(backend.show().flags, 'send_flush');
    await Promise.all([backend.write(0, Buffer.from(blocksContent(0, 6, 8)), false), backend.write(64 * 1024, Buffer.from(blocksContent(16, 2, 4)), true)]);
    assert.deepEqual(commands.filter((c) => c === Cmd.FLUSH).length, 1, 'the FUA write (no SEND_FUA) was followed by a flush');
    await backend.flush();
    assert.deepEqual(checkBlocks(await backend.read(0, 8 * 4096), 0), Array(8).fill(6));
    assert.deepEqual(checkBlocks(await backend.read(64 * 1024, 4 * 4096), 16), Array(4).fill(2));
    assert.deepEqual(await backend.extents(0, SIZE), [{ offset: 0, length: SIZE, flags: 0 }]);
  });
}

test('a server advertising nothing: FLUSH a no-op, TRIM dropped, zeroes written as data', async (t) => {
  const path = join(tmpDir(t), 'bare.sock');
  const { commands } = await oldServer(t, path, true, TxFlag.HAS_FLAGS);
  const backend = await NbdBackend.open(`nbd+unix:///disk?socket=${path}`, { clock: realClock, log: createLogger('error', 'text', () => {}), policy: () => DEFAULT_POLICY });
  t.after(() => backend.close());
  assert.equal(backend.show().flags, 'none');
  await backend.write(0, Buffer.from(blocksContent(0, 7, 16)), true);
  await backend.flush();
  await backend.trim(0, 4 * 4096, false);
  assert.deepEqual(checkBlocks(await backend.read(0, 4 * 4096), 0), Array(4).fill(7), 'the dropped trim left the data');
  await backend.writeZeroes(4 * 4096, 8 * 4096, false, 0);
  assert.ok((await backend.read(4 * 4096, 8 * 4096)).equals(Buffer.alloc(8 * 4096)), 'the zeroed range reads zeroes');
  assert.deepEqual([...new Set(commands)].sort(), [Cmd.READ, Cmd.WRITE].sort(), 'only reads and writes reached the server');
});

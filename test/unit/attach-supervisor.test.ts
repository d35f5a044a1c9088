// Attachment plumbing without a machine: the supervisor's once-only break (including a helper that
// dies before supervision starts), mountinfo parsing, and the device-user check.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/util/clock.js';
import { Supervisor } from '../../src/engine/attach/method.js';
import { describeUsers, deviceUsers, inUse, parseMountinfo } from '../../src/engine/attach/mounts.js';
import type { System } from '../../src/engine/attach/system.js';

const flush = async (): Promise<void> => {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
};

test('supervisor: a break reported before start() is delivered once start() runs; later reports are ignored', async () => {
  const clock = new FakeClock();
  let probes = 0;
  const sup = new Supervisor(clock, 1000, async () => { probes++; return null; });
  sup.broken('nbdfuse exited (code 1)');
  const got: string[] = [];
  sup.start((r) => got.push(r));
  await flush();
  assert.deepEqual(got, ['nbdfuse exited (code 1)']);
  sup.broken('again');
  clock.advance(10_000);
  await flush();
  assert.deepEqual(got, ['nbdfuse exited (code 1)']);
  assert.equal(probes, 0, 'no polling after the break');
});

test('supervisor: a throwing probe is retried, not a break; stop() ends polling', async () => {
  const clock = new FakeClock();
  let n = 0;
  const sup = new Supervisor(clock, 500, async () => {
    n++;
    if (n < 3) throw new Error('EAGAIN');
    return null;
  });
  const got: string[] = [];
  sup.start((r) => got.push(r));
  for (let i = 0; i < 4; i++) {
    clock.advance(500);
    await flush();
  }
  assert.equal(n, 4);
  assert.deepEqual(got, []);
  sup.stop();
  sup.broken('after stop');
  clock.advance(5000);
  await flush();
  assert.equal(n, 4);
  assert.deepEqual(got, []);
  assert.equal(clock.pending(), 0);
});

test('parseMountinfo: major:minor, unescaped mount point, fs type and source', () => {
  const text = [
    '22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw',
    '40 22 7:3 / /mnt/my\\040disk rw,relatime - ext4 /dev/loop3 rw',
    '41 22 0:52 / /run/dst/attach/vol rw,nosuid,nodev - fuse /dev/fuse rw,user_id=0',
    '',
  ].join('\n');
  assert.deepEqual(parseMountinfo(text), [
    { majMin: '8:1', mountPoint: '/', fsType: 'ext4', source: '/dev/sda1' },
    { majMin: '7:3', mountPoint: '/mnt/my disk', fsType: 'ext4', source: '/dev/loop3' },
    { majMin: '0:52', mountPoint: '/run/dst/attach/vol', fsType: 'fuse', source: '/dev/fuse' },
  ]);
});

test('deviceUsers: mounts by major:minor (any device name), swap, holders', async () => {
  const files = new Map<string, string>([
    ['/sys/class/block/loop3/dev', '7:3\n'],
    ['/proc/self/mountinfo', '40 22 7:3 / /a rw - ext4 /dev/disk/by-uuid/x rw\n41 22 7:3 / /b rw - ext4 /dev/loop3 rw\n42 22 7:4 / /c rw - ext4 /dev/loop4 rw\n'],
    ['/proc/swaps', 'Filename Type Size Used Priority\n/dev/loop3 partition 1024 0 -2\n'],
  ]);
  const sys = {
    readFile: async (p: string) => files.get(p) ?? null,
    readdir: async (p: string) => (p === '/sys/class/block/loop3/holders' ? ['dm-0'] : []),
  } as unknown as System;
  const u = await deviceUsers(sys, '/dev/loop3');
  assert.deepEqual(u, { mountPoints: ['/a', '/b'], swap: true, holders: ['dm-0'] });
  assert.ok(inUse(u));
  assert.equal(describeUsers(u), 'mounted on /a, /b; used as swap; held by dm-0');
  const none = await deviceUsers(sys, '/dev/loop9');
  assert.ok(!inUse(none), 'a device that does not exist has no users');
});

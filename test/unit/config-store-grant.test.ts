// A change that grants or starts something is saved before it is applied, and when applying it
// fails the previous file comes back byte for byte (the operator's comments included).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigStore } from '../../src/engine/config-store.js';
import { formatConfig } from '../../src/engine/config.js';
import { DstError } from '../../src/util/errors.js';
import { makeRig } from './registry-fakes.js';

test('node start is saved first; a failed start restores the previous file', async (t) => {
  const rig = makeRig();
  t.after(() => rig.cleanup());
  await rig.registry.add({ name: 'r', role: 'remote', size: null, remote: '127.0.0.1:9' });
  const file = join(rig.dir, 'dst.conf');
  const original = `; kept by hand\n${formatConfig({ logLevel: null, nodes: rig.registry.snapshot() })}`;
  writeFileSync(file, original);
  const store = new ConfigStore({
    file, autosave: true, loaded: original, log: rig.log,
    current: () => rig.registry.snapshot(), render: (nodes) => formatConfig({ logLevel: null, nodes }),
  });
  rig.registry.persistWith(store);

  const rt = rig.runtimes.get('r')!;
  let duringApply = '';
  rt.start = async () => {
    duringApply = readFileSync(file, 'utf8');
    throw new DstError('DST_ERR_IO', 'cannot start (test)');
  };
  await assert.rejects(rig.registry.start('r', 0), /cannot start \(test\)/);
  assert.match(duringApply, /autostart = true/, 'saved as started before the start ran');
  assert.equal(readFileSync(file, 'utf8'), original, 'the previous file, byte for byte');
  assert.equal(rig.registry.show('r').autostart, false);
  assert.equal(store.status().unsaved, false);
});

// Multi-leg nodes in the config file: layout, one remote[] line per leg in leg order, chunk and
// region; saved and parsed back; single remote nodes keep their keys; bad files name the key.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { DstError } from '../../src/util/errors.js';
import { formatConfig, parseConfigText } from '../../src/engine/config.js';
import type { RemoteConfig } from '../../src/engine/types.js';

const F = '/etc/dst/dst.conf';
const save = (text: string): string => formatConfig({ logLevel: null, autosave: null, nodes: parseConfigText(text, F).nodes });

function bad(text: string, key: string, re: RegExp): void {
  assert.throws(() => parseConfigText(text, F), (err: unknown) => {
    assert.ok(err instanceof DstError, String(err));
    assert.equal(err.code, 'DST_ERR_CONFIG');
    assert.match(err.message, new RegExp(`\\b${key}\\b`));
    assert.match(err.message, re);
    return true;
  });
}

describe('config: multi-leg nodes', () => {
  it('a stripe: legs in remote[] order, export per leg, chunk parsed; saved and read back equal', () => {
    const text = '[node "st"]\nrole = remote\nlayout = stripe\nremote[] = "192.0.2.1:10825/a"\nremote[] = "[2001:db8::2]:10825"\nchunk = 64K\n';
    const c = parseConfigText(text, F).nodes[0] as RemoteConfig;
    assert.equal(c.layout, 'stripe');
    assert.deepEqual(c.legs, [{ remote: '192.0.2.1:10825', export: 'a' }, { remote: '[2001:db8::2]:10825', export: null }]);
    assert.equal(c.chunk, 64 * 1024);
    const again = parseConfigText(save(text), F).nodes[0];
    assert.deepEqual(again, c);
  });

  it('a single remote node keeps remote = and export = (no layout line written)', () => {
    const text = '[node "v"]\nrole = remote\nremote = "192.0.2.1:1"\nexport = "d"\n';
    const n = parseConfigText(text, F).nodes[0] as RemoteConfig;
    assert.equal(n.layout, 'single');
    assert.deepEqual(n.legs, [{ remote: '192.0.2.1:1', export: 'd' }]);
    const saved = save(text);
    assert.match(saved, /^remote = "192\.0\.2\.1:1"$/m);
    assert.doesNotMatch(saved, /layout|remote\[\]/);
  });

  it('bad multi-leg sections are refused naming the key', () => {
    const head = '[node "v"]\nrole = remote\n';
    bad(`${head}layout = raid5\nremote[] = "h:1"\nremote[] = "h:2"\n`, 'layout', /must be one of/);
    bad(`${head}layout = linear\nremote[] = "h:1"\n`, 'remote', /at least 2/);
    bad(`${head}layout = stripe\nremote[] = "h:1"\nremote[] = "h:2"\nchunk = 3000\n`, 'chunk', /power of two/);
    bad(`${head}layout = linear\nremote[] = "h:1"\nremote[] = "h:2"\nchunk = 64K\n`, 'chunk', /only for layout stripe/);
    bad(`${head}layout = linear\nremote[] = "h:1"\nremote[] = "h:0"\n`, 'remote', /port/);
    bad(`${head}remote[] = "h:1"\nremote[] = "h:2"\n`, 'remote', /need layout/);
    bad(`${head}layout = linear\nremote[] = "h:1"\nremote[] = "h:2"\nexport = "x"\n`, 'export', /remote\[\]/);
  });
});

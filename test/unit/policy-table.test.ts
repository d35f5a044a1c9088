// One table of policy keys (engine/policy.ts): every row reaches validation, the config file, the
// netlink schemas, `dst node set` and the rendered text under its one name, unit and bounds.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { nodeSetArgs } from '../../src/commands/node.js';
import { policyLine } from '../../src/commands/render.js';
import { formatConfig, parseConfigText } from '../../src/engine/config.js';
import { POLICY_TABLE, boundOf, formatPolicyValue, optionName, policyHelp, type PolicyKey } from '../../src/engine/policy.js';
import { DEFAULT_LIMITS, DEFAULT_POLICY, type RemoteConfig } from '../../src/engine/types.js';
import { applyPolicy } from '../../src/engine/validate.js';
import { attrEnum, commandSpec, decodeObject, encodeObject } from '../../src/netlink/family.js';
import { policyShowSchema } from '../../src/netlink/objects.js';

/** A value other than the default, inside the bounds. */
function other(k: PolicyKey): number {
  return k.kind === 'size' ? (k.default === 0 ? 1 << 20 : k.default * 2) : k.kind === 'duration' ? k.default + 1000 : k.default + 1;
}

const attrName = (field: string): string => field.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();

describe('policy table', () => {
  it('DEFAULT_POLICY is the table\'s defaults, one field per row', () => {
    assert.deepEqual(Object.keys(DEFAULT_POLICY), POLICY_TABLE.map((k) => k.field));
    for (const k of POLICY_TABLE) assert.equal(DEFAULT_POLICY[k.field], k.default, k.key);
  });

  for (const k of POLICY_TABLE) {
    const v = other(k);
    it(`${k.key}: config file, validation, netlink, CLI and text agree`, () => {
      // config file: parsed under its key and unit, written back only when not the default
      const text = `[node "a"]\nrole = remote\nremote = "192.0.2.1:10825"\n${k.key} = ${formatPolicyValue(k, v)}\n`;
      const node = parseConfigText(text, 'f').nodes[0] as RemoteConfig;
      assert.equal(node.policy[k.field], v);
      const saved = formatConfig({ logLevel: null, nodes: [node] });
      assert.ok(saved.includes(`\n${k.key} = `), saved);
      assert.deepEqual(parseConfigText(saved, 'f').nodes[0]!.policy, node.policy);
      assert.ok(!formatConfig({ logLevel: null, nodes: [{ ...node, policy: { ...DEFAULT_POLICY } }] }).includes(`\n${k.key} = `));

      // validation: the bounds, the error naming the key
      const max = boundOf(k.max, DEFAULT_LIMITS);
      assert.equal(applyPolicy(DEFAULT_POLICY, { [k.field]: max }, DEFAULT_LIMITS, 'w')[k.field], max);
      assert.throws(() => applyPolicy(DEFAULT_POLICY, { [k.field]: max + 1 }, DEFAULT_LIMITS, 'w'), new RegExp(`w: ${k.key} \\d+(ms)? out of range`));
      if (k.min > 0) assert.throws(() => applyPolicy(DEFAULT_POLICY, { [k.field]: k.min - 1 }, DEFAULT_LIMITS, 'w'), new RegExp(`${k.key} `));

      // netlink: its attribute in node show's policy and in node set's arguments
      assert.equal(attrEnum(policyShowSchema)[attrName(k.field)], k.showAttr);
      const setArgs = commandSpec('node-set').args;
      assert.equal(attrEnum(setArgs)[attrName(k.field)], k.setAttr);
      assert.deepEqual(decodeObject(setArgs, encodeObject(setArgs, { name: 'a', [k.field]: v })), { name: 'a', [k.field]: v });

      // CLI: --KEY VALUE in the user's unit; its help names the default
      assert.deepEqual(nodeSetArgs({ name: 'a', [optionName(k)]: formatPolicyValue(k, v) }), { name: 'a', [k.field]: v });
      assert.match(policyHelp(k, DEFAULT_LIMITS), new RegExp(`\\(default ${formatPolicyValue(k, k.default)}[,)]`));

      // text: "KEY VALUE"
      assert.ok(policyLine({ ...DEFAULT_POLICY, [k.field]: v }).includes(`${k.key} ${formatPolicyValue(k, v)}`));
    });
  }

  it('node set without a key names every key of the table', () => {
    assert.throws(() => nodeSetArgs({ name: 'a' }), (err: Error) => {
      for (const k of POLICY_TABLE) assert.ok(err.message.includes(`--${k.key}`), err.message);
      return true;
    });
  });
});

#!/usr/bin/env node
// `npm install` / `npm ci` hook: build native/cipher.c (the in-place cipher), native/flock.c
// (the disk lock) and native/fileops.c (hole punching, zeroing and extents; see those files) with
// the node-gyp that ships with npm, against Node's own headers, never downloaded ones. A machine
// without a C compiler or Node's headers still gets a working dst: the build failure is reported,
// dst uses node:crypto (slower for large encrypted frames), does not lock disks across processes,
// drops TRIM, writes zeroes and reports no holes; `dst status` says which runs.
// CommonJS: it runs before anything is compiled.
//
// Both are found the way npm documents, not from where the node binary sits:
//   - node-gyp: npm names its own in $npm_config_node_gyp for every script it runs;
//   - the headers: npm's `nodedir` setting (npm config set nodedir PREFIX, the directory holding
//     include/node), which npm hands node-gyp as $npm_config_nodedir.
// By hand: `npm run install` runs this with both set.
'use strict';
const { spawnSync } = require('node:child_process');
const { existsSync } = require('node:fs');
const { join } = require('node:path');

const root = join(__dirname, '..');

function skip(why) {
  process.stderr.write(`dst: native addon not built (${why}); dst will use node:crypto for encrypted frames, not lock disks across processes, drop TRIM, write WRITE_ZEROES as zeroes and report every extent as data (no holes)\n`);
  process.exit(0);
}

const nodeGyp = process.env.npm_config_node_gyp;
const nodedir = process.env.npm_config_nodedir;
if (!nodeGyp) skip('not run by npm, which names its node-gyp in $npm_config_node_gyp: npm run install');
if (!existsSync(nodeGyp)) skip(`npm's node-gyp is not at ${nodeGyp}`);
if (!nodedir) skip("npm's nodedir is not set: npm config set nodedir PREFIX (where include/node/node_api.h is), then npm run install");
const headers = join(nodedir, 'include', 'node', 'node_api.h');
if (!existsSync(headers)) skip(`no Node headers at ${headers} (npm's nodedir is ${nodedir})`);
const r = spawnSync(process.execPath, [nodeGyp, 'rebuild'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
if (r.status !== 0) {
  process.stderr.write(`${r.stdout}${r.stderr}`.split('\n').slice(-25).join('\n'));
  skip(r.error ? r.error.message : `node-gyp exited ${r.status}`);
}

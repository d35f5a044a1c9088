// The native addons (native/*.c), built by node-gyp from binding.gyp into build/Release/ of the
// package root at npm install: the one place that names their files, says why one is missing and
// honours DST_NATIVE=0, the one switch that turns native code off (to compare, or on a machine
// where an addon misbehaves).
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** binding.gyp's targets */
export type AddonName = 'dst_cipher' | 'dst_flock' | 'dst_fileops';

/** Why an addon is not used under DST_NATIVE=0. */
export const NATIVE_OFF = 'switched off by DST_NATIVE=0';

/** dist/src/util/ → the package root, where node-gyp puts build/ */
export function addonPath(name: AddonName): string {
  return fileURLToPath(new URL(`../../../build/Release/${name}.node`, import.meta.url));
}

/**
 * The addon's exports, or why it cannot be used ("not built (…)", "failed to load: …", NATIVE_OFF).
 * opts.evenWhenOff: load it under DST_NATIVE=0 too (the disk lock: see disk-lock.ts).
 */
export function loadAddon<T>(name: AddonName, opts: { env?: NodeJS.ProcessEnv; evenWhenOff?: boolean } = {}):
{ addon: T; why: null } | { addon: null; why: string } {
  if ((opts.env ?? process.env).DST_NATIVE === '0' && !opts.evenWhenOff) return { addon: null, why: NATIVE_OFF };
  const path = addonPath(name);
  try {
    return { addon: createRequire(import.meta.url)(path) as T, why: null };
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND'
      ? `not built (no ${path}; npm run install builds it)` : `failed to load: ${(e as Error).message}`;
    return { addon: null, why };
  }
}

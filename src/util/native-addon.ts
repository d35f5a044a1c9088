// The native addons (native/*.c), built by node-gyp from binding.gyp into build/Release/ of the
// package root at npm install: the one place that names their files and says why one is missing.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** binding.gyp's targets */
export type AddonName = 'dst_cipher' | 'dst_flock';

/** dist/src/util/ → the package root, where node-gyp puts build/ */
export function addonPath(name: AddonName): string {
  return fileURLToPath(new URL(`../../../build/Release/${name}.node`, import.meta.url));
}

/** The addon's exports, or why it cannot be used ("not built (…)", "failed to load: …"). */
export function loadAddon<T>(name: AddonName): { addon: T; why: null } | { addon: null; why: string } {
  const path = addonPath(name);
  try {
    return { addon: createRequire(import.meta.url)(path) as T, why: null };
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND'
      ? `not built (no ${path}; npm run install builds it)` : `failed to load: ${(e as Error).message}`;
    return { addon: null, why };
  }
}

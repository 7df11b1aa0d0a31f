import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { errorMessage } from '../core/errors.js';

/** The exports of srvlink's native addon (native/src/addon.c). */
export interface NativeAddon {
  /** Reap zombie children of this process whose pid is not in `exclude`; the pids reaped. */
  reapZombies(exclude: readonly number[]): number[];
  /** prctl(PR_SET_CHILD_SUBREAPER): orphaned descendants are re-parented to this process. */
  setChildSubreaper(): void;
  isChildSubreaper(): boolean;
}

/** The addon, or why it is not there. */
export type NativeAddonResult = { addon: NativeAddon; path: string } | { addon: undefined; reason: string };

/** The file name node-gyp gives the addon (binding.gyp's target). */
const ADDON_FILE = 'srvlink_native.node';

/**
 * Load the native addon. `SRVLINK_NATIVE_ADDON` names the file exactly (and
 * nothing else is tried); otherwise it is looked for beside the executable
 * (the self-contained artifact) and in the node-gyp build folder of a
 * checkout. Never throws: srvlink runs without it.
 */
export function loadNativeAddon(env: NodeJS.ProcessEnv = process.env): NativeAddonResult {
  const override = env.SRVLINK_NATIVE_ADDON;
  const candidates = override !== undefined && override !== '' ? [override] : defaultCandidates();
  const path = candidates.find((candidate) => existsSync(candidate));
  if (path === undefined) return { addon: undefined, reason: `no native addon at ${candidates.map((c) => `"${c}"`).join(' or ')}` };
  try {
    // process.dlopen rather than require: it works the same in the bundled
    // single executable, whose require only knows built-in modules.
    const module = { exports: {} as NativeAddon };
    process.dlopen(module, path);
    return { addon: module.exports, path };
  } catch (err) {
    return { addon: undefined, reason: `cannot load native addon "${path}": ${errorMessage(err)}` };
  }
}

function defaultCandidates(): string[] {
  const candidates = [join(dirname(process.execPath), ADDON_FILE)];
  try {
    // src/supervisor/ or dist/supervisor/ → the checkout's build/Release/.
    candidates.push(fileURLToPath(new URL(`../../build/Release/${ADDON_FILE}`, import.meta.url)));
  } catch {
    // Bundled: no module URL to start from.
  }
  return candidates;
}

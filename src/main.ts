#!/usr/bin/env node
import { statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

// The executable's entry: everything else lives in cli/. `make build` also bundles srvlink's own
// modules into one CommonJS file (dist/bundle/srvlink.cjs, the etcd client in etcd.cjs beside it):
// loaded with require, it starts in about half the CPU time and ~6 MB less memory than a hundred
// ES modules, each resolved and read on its own. It is used only when built after this file, so
// that a `tsc` run alone never leaves a stale bundle in charge; without it, the modules one by one.
const bundle = fileURLToPath(new URL('./bundle/srvlink.cjs', import.meta.url));
if (builtAfter(bundle, fileURLToPath(import.meta.url))) createRequire(import.meta.url)(bundle);
else await import('./cli/entry.js');

function builtAfter(file: string, than: string): boolean {
  try {
    return statSync(file).mtimeMs >= statSync(than).mtimeMs;
  } catch {
    return false;
  }
}

import { execFile } from 'node:child_process';
import { cpSync, existsSync, symlinkSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/temp-dir.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** `node MAIN ARGS` with NODE_DEBUG=module: its output and the files the CommonJS loader loaded (the bundle is one). */
function run(main: string, args: string[]): Promise<{ code: number; stdout: string; loaded: string[] }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [main, ...args], { env: { ...process.env, NODE_DEBUG: 'module' }, timeout: 30_000 }, (err, stdout, stderr) => {
      const loaded = [...stderr.matchAll(/^MODULE \d+: load "([^"]+)"/gm)].map((m) => m[1] as string);
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, loaded });
    });
  });
}

// make build bundles srvlink's own modules; dist/main.js takes the bundle only when it is newer than itself.
describe('dist/main.js and the bundle', () => {
  it('loads the bundle that make build made, and none of the modules one by one', async () => {
    const main = join(ROOT, 'dist/main.js');
    expect(existsSync(join(ROOT, 'dist/bundle/srvlink.cjs'))).toBe(true);
    const result = await run(main, ['run', '--help']);
    expect(result.code).toBe(0);
    expect(result.loaded).toContain(join(ROOT, 'dist/bundle/srvlink.cjs'));
    expect(result.stdout).toMatch(/^Usage: srvlink run /);
  });

  it('runs the modules when the bundle is older than main.js (a tsc run after make build), and they answer alike', async () => {
    const dir = tempDir();
    cpSync(join(ROOT, 'dist'), join(dir, 'dist'), { recursive: true, preserveTimestamps: true, filter: (source) => !source.includes(`${join(ROOT, 'dist/artifact')}`) && !source.includes(join(ROOT, 'dist/bench')) });
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
    const bundle = join(dir, 'dist/bundle/srvlink.cjs');
    const main = join(dir, 'dist/main.js');
    const fresh = await run(main, ['register', '--help']);
    expect(fresh.loaded).toContain(bundle);
    const old = new Date(Date.now() - 3_600_000);
    utimesSync(bundle, old, old);
    const stale = await run(main, ['register', '--help']);
    expect(stale.loaded).not.toContain(bundle);
    expect(stale.code).toBe(0);
    expect(stale.stdout).toBe(fresh.stdout);
    const typo = await run(main, ['regster']);
    expect(typo.code).toBe(2);
  });
});

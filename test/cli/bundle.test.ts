import { execFile } from 'node:child_process';
import { cpSync, existsSync, symlinkSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import { startEtcd } from '../helpers/etcd.js';
import { spawnSrvlink } from '../helpers/srvlink-process.js';
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

  it('registers in etcd with the etcd client from its own bundle, beside srvlink.cjs: no file of node_modules is loaded, no .proto file read', async () => {
    const etcd = await startEtcd();
    onTestFinished(() => etcd.close());
    const register = spawnSrvlink(['register', '--etcd', etcd.endpoints.join(','), '--domain', 'env1.skydns.local', '--service', 'web', '--port', '8080', '--host', '127.0.0.1', '--instance', 'w1', '--ttl', '5'], {
      env: { NODE_DEBUG: 'module' },
    });
    await register.waitForLog((l) => l.msg === 'registered');
    const got = await etcd.etcdctl(['get', '--print-value-only', '/skydns/local/skydns/env1/_tcp/_web/w1']);
    expect(JSON.parse(got.stdout)).toMatchObject({ host: '127.0.0.1', port: 8080 });
    expect(await register.stop()).toBe(0);
    // SIGTERM revoked the lease: the key is gone.
    expect((await etcd.etcdctl(['get', '--prefix', '--keys-only', '/skydns'])).stdout.trim()).toBe('');
    const loaded = register.logs.flatMap((l) => (l.level === 'raw' ? [...String(l.msg).matchAll(/^MODULE \d+: load "([^"]+)"/g)].map((m) => m[1] as string) : []));
    expect(loaded).toContain(join(ROOT, 'dist/bundle/srvlink.cjs'));
    expect(loaded).toContain(join(ROOT, 'dist/bundle/etcd.cjs'));
    expect(loaded.filter((file) => file.includes('node_modules') || file.endsWith('.proto'))).toEqual([]);
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

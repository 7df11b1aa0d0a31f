import { execFile, spawn } from 'node:child_process';
import { cpSync, existsSync, lstatSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import { startEtcd } from '../helpers/etcd.js';
import { spawnSrvlink, type SrvlinkProcess } from '../helpers/srvlink-process.js';
import { tempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** `node MAIN ARGS` with NODE_DEBUG=module: its output and the files the CommonJS loader loaded (not the bundle, which main.js compiles itself, with its code cache; the modules one by one load commander from node_modules). */
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
  it('loads the bundle that make build made, with its code cache, and none of the modules one by one', async () => {
    const main = join(ROOT, 'dist/main.js');
    expect(existsSync(join(ROOT, 'dist/bundle/srvlink.cjs'))).toBe(true);
    // With the code cache make build wrote, named after the bundle.
    const { mtimeMs, size } = statSync(join(ROOT, 'dist/bundle/srvlink.cjs'));
    expect(readFileSync(join(ROOT, 'dist/bundle/srvlink.cjs.cache')).subarray(0, 200).toString('latin1')).toContain(`${JSON.stringify({ mtimeMs, size })}\n`);
    const result = await run(main, ['run', '--help']);
    expect(result.code).toBe(0);
    // dist/main.js is a link to a CommonJS file, which node runs as such: no ES module loader.
    expect(lstatSync(main).isSymbolicLink()).toBe(true);
    expect(result.loaded[0]).toBe(join(ROOT, 'dist/main.cjs'));
    expect(result.loaded.filter((file) => file.includes('node_modules'))).toEqual([]);
    expect(result.stdout).toMatch(/^Usage: srvlink run /);
  });

  it('registers in etcd without gRPC, and srvlink dns watches etcd with the etcd client from its own bundle, beside srvlink.cjs: no file of node_modules is loaded, no .proto file read', async () => {
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
    const loadedBy = (proc: SrvlinkProcess): string[] => proc.logs.flatMap((l) => (l.level === 'raw' ? [...String(l.msg).matchAll(/^MODULE \d+: load "([^"]+)"/g)].map((m) => m[1] as string) : []));
    // A registration talks to etcd's JSON gateway: neither the etcd client nor anything else is
    // loaded, only the entry itself, CommonJS (dist/main.js leads to it).
    expect(loadedBy(register)).toEqual([join(ROOT, 'dist/main.cjs')]);
    const dns = spawnSrvlink(['dns', '--listen', '127.0.0.1:0', '--etcd', etcd.endpoints.join(',')], { env: { NODE_DEBUG: 'module' } });
    await dns.waitForLog((l) => l.msg === 'dns server listening');
    expect(await dns.stop()).toBe(0);
    expect(loadedBy(dns)).toContain(join(ROOT, 'dist/bundle/etcd.cjs'));
    expect(loadedBy(dns).filter((file) => file.includes('node_modules') || file.endsWith('.proto'))).toEqual([]);
  });

  it('runs the modules when the bundle is older than main.js (a tsc run after make build), and they answer alike', async () => {
    const dir = copyOfDist();
    const bundle = join(dir, 'dist/bundle/srvlink.cjs');
    const main = join(dir, 'dist/main.js');
    const fresh = await run(main, ['register', '--help']);
    expect(fresh.loaded.filter((file) => file.includes('node_modules'))).toEqual([]);
    const old = new Date(Date.now() - 3_600_000);
    utimesSync(bundle, old, old);
    const stale = await run(main, ['register', '--help']);
    expect(stale.loaded.filter((file) => file.endsWith('/node_modules/commander/index.js'))).toHaveLength(1);
    expect(stale.code).toBe(0);
    expect(stale.stdout).toBe(fresh.stdout);
    const typo = await run(main, ['regster']);
    expect(typo.code).toBe(2);
  });

  it('compiles the bundle with a code cache that a start writes beside it, named after the bundle: a cache of another bundle or a broken one is replaced, and srvlink runs alike', async () => {
    const dir = copyOfDist();
    const bundle = join(dir, 'dist/bundle/srvlink.cjs');
    const cache = `${bundle}.cache`;
    const { mtimeMs, size } = statSync(bundle);
    const stamp = `${JSON.stringify({ mtimeMs, size })}\n`;
    const valid = (): boolean => existsSync(cache) && readFileSync(cache).subarray(0, stamp.length).toString() === stamp && statSync(cache).size > stamp.length + 1000;
    for (const before of [undefined, `${JSON.stringify({ mtimeMs: mtimeMs - 1, size })}\n${'x'.repeat(1000)}`, `${stamp}not a V8 code cache`]) {
      rmSync(cache, { force: true });
      if (before !== undefined) writeFileSync(cache, before);
      const srvlink = startRun(join(dir, 'dist/main.js'));
      await srvlink.waitForLog((l) => l.msg === 'srvlink run ready');
      await waitFor(valid, { what: `a code cache of ${bundle} (before: ${before === undefined ? 'none' : JSON.stringify(before.slice(0, 40))})` });
      expect(await srvlink.stop()).toBe(0);
    }
    // And the next start runs with it.
    const srvlink = startRun(join(dir, 'dist/main.js'));
    await srvlink.waitForLog((l) => l.msg === 'srvlink run ready');
    expect(await srvlink.stop()).toBe(0);
    expect(readdirSync(join(dir, 'dist/bundle')).sort()).toEqual(['etcd.cjs', 'srvlink.cjs', 'srvlink.cjs.cache']);
  });
});

/** A copy of dist/ (without the artifact and the bench) in a temporary directory, node_modules linked beside it; dist/main.js still a link to the copy's main.cjs. */
function copyOfDist(): string {
  const dir = tempDir();
  cpSync(join(ROOT, 'dist'), join(dir, 'dist'), { recursive: true, preserveTimestamps: true, verbatimSymlinks: true, filter: (source) => !source.includes(join(ROOT, 'dist/artifact')) && !source.includes(join(ROOT, 'dist/bench')) && !source.endsWith('.cache') });
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  return dir;
}

/** `srvlink run` of `main` with one static mapping on loopback, no stub. */
function startRun(main: string): SrvlinkProcess {
  return spawnSrvlink(['run', '--domain', 'env1.skydns.local', '--discovery', 'static', '--map', '127.0.0.1:0=web', '--backend', 'web=127.0.0.1:9', '--dns-listen', 'none'], {
    // As spawnSrvlink does, with this main.js in place of the tree's.
    spawner: (command, args, env) => spawn('setpriv', ['--pdeathsig', 'KILL', '--', command, main, ...args.slice(1)], { env, stdio: ['ignore', 'pipe', 'pipe'] }),
  });
}

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { onTestFinished } from 'vitest';
import { formatHostPort, parseHostPort, type HostPort } from '../../src/core/host-port.js';
import { freePort } from '../helpers/free-port.js';
import { spawnSrvlink, type SpawnSrvlinkOptions, type SrvlinkProcess } from '../helpers/srvlink-process.js';
import { tempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

/** A srvlink process with its admin endpoint and its listeners. */
export interface AdminProcess {
  proc: SrvlinkProcess;
  admin: HostPort;
  /** The listeners of `srvlink run`, in mapping order (none for other commands). */
  listeners: HostPort[];
}

/**
 * Start `srvlink ARGS... --admin 127.0.0.1:0` and wait for its admin
 * endpoint (and, for `run`, for it to be ready).
 */
export async function spawnWithAdmin(args: string[], env: NodeJS.ProcessEnv = {}, spawner?: SpawnSrvlinkOptions['spawner']): Promise<AdminProcess> {
  const proc = spawnSrvlink([...args, '--admin', '127.0.0.1:0'], { env, ...(spawner ? { spawner } : {}) });
  const line = await proc.waitForLog((l) => l.msg === 'admin endpoint listening');
  const admin = parseHostPort(String(line.address), 'admin address');
  if (args[0] !== 'run') return { proc, admin, listeners: [] };
  await proc.waitForLog((l) => l.msg === 'srvlink run ready');
  const listeners = proc.logs.filter((l) => l.msg === 'listening').map((l) => parseHostPort(String(l.address), 'listener address'));
  return { proc, admin, listeners };
}

/** GET `path` of the admin endpoint: status and body. */
export async function adminGet(admin: HostPort, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; contentType: string }> {
  const res = await fetch(`http://${formatHostPort(admin)}${path}`, { headers, signal: AbortSignal.timeout(15_000) });
  return { status: res.status, body: await res.text(), contentType: res.headers.get('content-type') ?? '' };
}

/**
 * The value of the sample `name{labels}` in a Prometheus text page, or
 * undefined when there is none. Labels not given are not compared.
 */
export function sample(page: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of page.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = Object.fromEntries([...(match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([key, value]) => have[key] === value)) return Number(match[3]);
  }
  return undefined;
}

/** A Prometheus server of Debian's package, scraping the given targets. */
export interface Prometheus {
  address: HostPort;
  /** An instant query through the HTTP API: the result vector. */
  query(expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]>;
}

/**
 * Start Prometheus (a peer we did not write) on a free loopback port with a
 * scrape config of its own (every second, `targets` as job `srvlink`) and a
 * storage directory of its own; killed when the test ends.
 */
export async function startPrometheus(targets: HostPort[]): Promise<Prometheus> {
  const dir = tempDir();
  const config = join(dir, 'prometheus.yml');
  writeFileSync(
    config,
    [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 1s',
      'scrape_configs:',
      '  - job_name: srvlink',
      '    static_configs:',
      `      - targets: [${targets.map((t) => `"${formatHostPort(t)}"`).join(', ')}]`,
      '',
    ].join('\n'),
  );
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const args = [
      '--pdeathsig',
      'KILL',
      '--',
      '/usr/bin/prometheus',
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(dir, `data${attempt}`)}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ];
    const child = spawn('setpriv', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = once(child, 'exit');
    onTestFinished(async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    });
    const address = { host: '127.0.0.1', port };
    const ready = async (): Promise<boolean> => {
      if (child.exitCode !== null) return true;
      try {
        return (await fetch(`http://127.0.0.1:${port}/-/ready`)).ok;
      } catch {
        return false;
      }
    };
    await waitFor(ready, { what: 'prometheus to be ready', timeout: 60_000, interval: 100 });
    if (child.exitCode !== null) {
      // The free port was taken meanwhile: try another.
      if (attempt < 5 && /address already in use/.test(stderr)) continue;
      throw new Error(`prometheus exited with ${child.exitCode}: ${stderr}`);
    }
    return {
      address,
      query: async (expr) => {
        const res = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(expr)}`);
        const json = (await res.json()) as { status: string; data: { result: { metric: Record<string, string>; value: [number, string] }[] } };
        if (json.status !== 'success') throw new Error(`prometheus query "${expr}" failed: ${JSON.stringify(json)}`);
        return json.data.result;
      },
    };
  }
}

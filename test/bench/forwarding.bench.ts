/**
 * `make bench`: srvlink's forwarder beside what a user would otherwise pick,
 * in the same run, on loopback: a direct connection, socat, HAProxy.
 * vitest prints each group's results with the ratios between them.
 *
 * - "new connection": connect, one byte there and back, close: the added
 *   latency per connection;
 * - "bulk": 16 MiB one way through one connection: throughput.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, bench, describe } from 'vitest';

const MAIN = fileURLToPath(new URL('../../dist/main.js', import.meta.url));
const BULK = Buffer.alloc(16 * 1024 * 1024, 7);
const children: ChildProcess[] = [];
const servers: Server[] = [];
const dir = mkdtempSync(join(tmpdir(), 'srvlink-bench-'));
const paths: Record<string, number> = {};

/** Echoes every byte; ends after the client's FIN. */
async function startBackend(): Promise<number> {
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => undefined);
    socket.pipe(socket);
  });
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as { port: number }).port;
}

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Resolve once something accepts connections on `port`. */
async function reachable(port: number): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`nothing listens on ${port}`);
}

function start(command: string, args: string[]): void {
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  children.push(child);
}

function roundTrip(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', noDelay: true }, () => socket.write('x'));
    socket.once('data', () => {
      socket.destroy();
      resolve();
    });
    socket.on('error', reject);
  });
}

function bulk(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    let received = 0;
    socket.on('data', (chunk: Buffer) => (received += chunk.length));
    socket.on('end', () => (received === BULK.length ? resolve() : reject(new Error(`got ${received} bytes`))));
    socket.on('error', reject);
    socket.end(BULK);
  });
}

beforeAll(async () => {
  const backend = await startBackend();
  paths.direct = backend;

  paths.srvlink = await freePort();
  start(process.execPath, [MAIN, 'run', '--dns-listen', 'none', '--domain', 'bench.local', '--discovery', 'static', '--map', `${paths.srvlink}=svc`, '--backend', `svc=127.0.0.1:${backend}`, '--log-level', 'warn', '--max-conns', '100000', '--admin', 'none']);

  if (existsSync('/usr/bin/socat')) {
    paths.socat = await freePort();
    start('/usr/bin/socat', [`TCP-LISTEN:${paths.socat},bind=127.0.0.1,reuseaddr,fork,backlog=1024`, `TCP:127.0.0.1:${backend}`]);
  }
  if (existsSync('/usr/sbin/haproxy')) {
    paths.haproxy = await freePort();
    const cfg = join(dir, 'haproxy.cfg');
    writeFileSync(
      cfg,
      [
        'global',
        '  maxconn 4096',
        'defaults',
        '  mode tcp',
        '  timeout connect 2s',
        '  timeout client 60s',
        '  timeout server 60s',
        `listen bench`,
        `  bind 127.0.0.1:${paths.haproxy}`,
        `  server b1 127.0.0.1:${backend}`,
        '',
      ].join('\n'),
    );
    start('/usr/sbin/haproxy', ['-f', cfg, '-db']);
  }
  for (const port of Object.values(paths)) await reachable(port);
}, 60_000);

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  for (const server of servers) server.close();
  rmSync(dir, { recursive: true, force: true });
});

const OPTIONS = { time: 2000, warmupTime: 300 };
const NAMES = ['direct', 'srvlink', 'socat', 'haproxy'] as const;

describe('new connection + 1-byte round trip', () => {
  for (const name of NAMES) {
    bench(name, async () => {
      const port = paths[name];
      if (port !== undefined) await roundTrip(port);
    }, OPTIONS);
  }
});

describe('bulk: 16 MiB echoed through one connection', () => {
  for (const name of NAMES) {
    bench(name, async () => {
      const port = paths[name];
      if (port !== undefined) await bulk(port);
    }, OPTIONS);
  }
});

import { connect, createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { startEtcd } from '../helpers/etcd.js';
import { spawnSrvlink } from '../helpers/srvlink-process.js';
import { startTcpBackend } from '../helpers/tcp-backends.js';

const DOMAIN = 'env1.skydns.local';
const KEY = '/skydns/local/skydns/env1/_tcp/_web/w1';

/**
 * A free port below the kernel's ephemeral range (32768 and up): the loops
 * below connect to it thousands of times before anything listens, and a
 * connect whose own source port were the same port would connect to itself
 * and hold it; no test is handed such a port by a bind to port 0 either.
 */
async function quietPort(): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const server = createServer();
    const free = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (free) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      return port;
    }
  }
}

type Outcome = 'refused' | 'answered' | 'closed unanswered';

/** One connection: refused (nothing listens yet), answered by the backend's greeting, or accepted and closed without it. */
function attempt(port: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let connected = false;
    let data = '';
    socket.on('connect', () => (connected = true));
    socket.on('data', (chunk: Buffer) => {
      data += chunk.toString();
      if (data.includes('hello from w1')) {
        socket.destroy();
        resolve('answered');
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(connected ? (data.includes('hello from w1') ? 'answered' : 'closed unanswered') : 'refused'));
  });
}

describe('srvlink run --discovery etcd: no start-up window', () => {
  it('connections made in a tight loop from before start-up all reach the backend; the logs name etcd', async () => {
    const etcd = await startEtcd();
    const backend = await startTcpBackend((socket) => socket.end('hello from w1\n'));
    expect((await etcd.etcdctl(['put', KEY, JSON.stringify({ host: '127.0.0.1', port: backend.address.port })])).code).toBe(0);
    const port = await quietPort();

    const outcomes: Outcome[] = [];
    let stopLoop = false;
    // Four loops hammering the port before, during and after start-up.
    const loops = Array.from({ length: 4 }, async () => {
      while (!stopLoop) outcomes.push(await attempt(port));
    });
    // The loops are under way before srvlink starts.
    await new Promise((resolve) => setTimeout(resolve, 50));
    const proc = spawnSrvlink(['run', '--dns-listen', 'none', '--domain', DOMAIN, '--discovery', 'etcd', '--etcd', etcd.endpoints.join(','), '--map', `127.0.0.1:${port}=web`]);
    const ready = await proc.waitForLog((l) => l.msg === 'srvlink run ready');
    // Keep going until plenty of connections were accepted after start-up.
    while (outcomes.filter((o) => o !== 'refused').length < 200) await new Promise((resolve) => setTimeout(resolve, 20));
    stopLoop = true;
    await Promise.all(loops);

    expect(outcomes.filter((o) => o === 'closed unanswered')).toEqual([]);
    expect(outcomes.filter((o) => o === 'refused').length).toBeGreaterThan(0);
    expect(outcomes.filter((o) => o === 'answered').length).toBeGreaterThanOrEqual(200);

    // Ready came after the first answer from the zone; the lines name the discovery in use.
    const listening = proc.logs.find((l) => l.msg === 'listening');
    expect(listening).toMatchObject({ discovery: 'etcd', backends: '1 backend' });
    const settings = ready.settings as Record<string, unknown>;
    expect(settings).toMatchObject({ discovery: 'etcd', etcd: etcd.endpoints, prefix: '/skydns' });
    expect(settings).not.toHaveProperty('clusterDns');
    expect(settings).not.toHaveProperty('dnsTimeout');
    const perService = proc.logs.filter((l) => l.service !== undefined && l.discovery !== undefined);
    expect(perService.length).toBeGreaterThan(0);
    expect(perService.filter((l) => l.discovery !== 'etcd')).toEqual([]);
    expect(proc.logs.filter((l) => l.msg.startsWith('no backends for'))).toEqual([]);
  });
});

/**
 * Convergence: how long from a key put in etcd to the first connection
 * that `srvlink run --discovery etcd` forwards to the backend it names.
 */
import { once } from 'node:events';
import { connect, createServer, type Server } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { startEtcd } from '../lib/etcd.js';
import { startSrvlinkRun } from '../lib/srvlink.js';
import { formatNumber, summarize } from '../lib/stats.js';
import { table, type BenchContext, type BenchSection, type SectionResult } from '../lib/bench-section.js';

const KEY = '/skydns/local/skydns/bench/_tcp/_conv/b';

/** A backend that says who it is: its letter, then it closes. */
async function namedBackend(letter: string): Promise<{ server: Server; port: number }> {
  const server = createServer((socket) => {
    socket.on('error', () => undefined);
    socket.end(letter);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as { port: number }).port };
}

/** The first byte a connection through `port` receives ('' when it is refused or reset). */
function firstByte(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('data', (data) => {
      socket.destroy();
      resolve(data.toString('latin1', 0, 1));
    });
    socket.once('error', () => resolve(''));
    socket.once('close', () => resolve(''));
  });
}

export const convergence: BenchSection = {
  name: 'convergence',
  title: 'Convergence: etcd put to the first connection to the new backend',
  order: 5,
  async run(context: BenchContext): Promise<SectionResult> {
    const samples = context.quick ? 10 : 40;
    const etcd = await startEtcd(context);
    const backends = [await namedBackend('A'), await namedBackend('B')];
    try {
      const value = (i: number): string => JSON.stringify({ host: '127.0.0.1', port: backends[i % 2]?.port });
      await etcd.put(KEY, value(0));
      const srvlink = await startSrvlinkRun(context, 'srvlink run (etcd)', {
        domain: 'bench.skydns.local',
        discovery: 'etcd',
        etcd: etcd.url,
        map: [{ listen: '127.0.0.1:0', service: 'conv' }],
      });
      const port = srvlink.listeners[0]?.port ?? 0;
      const deadline = Date.now() + 30_000;
      while ((await firstByte(port)) !== 'A') {
        if (Date.now() > deadline) throw new Error(`srvlink never forwarded to the first backend: ${srvlink.process.tail(5)}`);
        await sleep(20);
      }
      const times: number[] = [];
      const puts: number[] = [];
      let attempts = 0;
      for (let i = 1; i <= samples; i++) {
        const want = i % 2 === 0 ? 'A' : 'B';
        const t0 = performance.now();
        // Connections start with the put, not after its reply: etcd's reply (after its fsync) may come after the watch event.
        let replied = Number.NaN;
        const put = etcd.put(KEY, value(i)).then(() => (replied = performance.now() - t0));
        for (;;) {
          attempts++;
          if ((await firstByte(port)) === want) break;
          if (performance.now() - t0 > 30_000) throw new Error(`no connection reached backend ${want} within 30 s of the put`);
        }
        times.push(performance.now() - t0);
        await put;
        puts.push(replied);
        // Apart, so that each put is a change of its own.
        await sleep(50);
      }
      const sorted = [...times].sort((a, b) => a - b);
      const p99 = sorted[Math.min(sorted.length - 1, Math.ceil(0.99 * sorted.length) - 1)] ?? Number.NaN;
      const s = summarize(times);
      const putTimes = summarize(puts);
      const sortedPuts = [...puts].sort((a, b) => a - b);
      const putP99 = sortedPuts[Math.min(sortedPuts.length - 1, Math.ceil(0.99 * sortedPuts.length) - 1)] ?? Number.NaN;
      context.log(`convergence: median ${s.median.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms`);
      const markdown = [
        `One etcd member, \`srvlink run --discovery etcd\` with one mapping whose one key is put again, ${samples} times, alternately naming two backends that each answer their own letter. From the put (etcd's JSON gateway, on loopback) to the first connection through srvlink that reaches the backend just named; the client connects from the moment of the put, again at once while the old backend answers (${attempts.toLocaleString('en-US')} connections in all). The put's own reply (etcd commits with an fsync, slow on this shared disk) is beside it: srvlink cannot converge before etcd has committed.`,
        '',
        table(
          ['', 'median ms', 'p99 ms', 'min–max ms'],
          [
            ['put → first connection to the new backend', formatNumber(s.median), formatNumber(p99), `${formatNumber(s.min)}–${formatNumber(s.max)}`],
            ['put → its reply from etcd', formatNumber(putTimes.median), formatNumber(putP99), `${formatNumber(putTimes.min)}–${formatNumber(putTimes.max)}`],
          ],
        ),
      ].join('\n');
      return { markdown, ratios: [] };
    } finally {
      for (const b of backends) b.server.close();
    }
  },
};

/**
 * Weight: resident memory of `srvlink run` idle, with 100 mappings and
 * with open forwarded connections, of `srvlink register`, beside bare
 * node and HAProxy; start-up to listening beside `node -e 0`.
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { startEchoServer } from '../lib/echo-server.js';
import { startEtcd } from '../lib/etcd.js';
import { startHaproxy } from '../lib/haproxy.js';
import type { OwnedProcess } from '../lib/process-group.js';
import { rssBytes } from '../lib/proc-stats.js';
import { dataPlanes, startSrvlinkRun } from '../lib/srvlink.js';
import { formatRatio, formatSummary, ratioOf, summarize, type Summary } from '../lib/stats.js';
import { table, type BenchContext, type BenchSection, type Ratio, type SectionResult } from '../lib/bench-section.js';

/** Time for a process to reach its idle size after start or a burst (GC, lazy pages). */
const SETTLE_MS = 1500;
const MIB = 1024 * 1024;

/** Open connections that fit under this process's open-file limit as srvlink counts its budget (2 each, after a reserve), rounded down to thousands. */
function connectionsThatFit(): number {
  const limit = Number(/Max open files\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1] ?? 1024);
  const budget = Math.floor((limit - Math.min(1024, 64 + Math.floor(limit / 8))) / 2);
  return Math.min(10_000, Math.floor((budget - 100) / 1000) * 1000);
}

async function settledRss(pid: number): Promise<number> {
  await sleep(SETTLE_MS);
  return rssBytes(pid) / MIB;
}

/** conn-client hold: `count` connections through `port`, kept open until the returned process is stopped. */
async function hold(context: BenchContext, port: number, count: number): Promise<{ client: OwnedProcess; held: number }> {
  const client = context.processes.spawn(`hold ${count}`, await context.binary('conn-client'), ['hold', '127.0.0.1', String(port), String(count)], { stdin: true });
  const line = await client.waitForLine((l) => l.startsWith('held'), 'held line', 120_000);
  return { client, held: Number(line.split(' ')[1]) };
}

export const weight: BenchSection = {
  name: 'weight',
  title: 'Weight: resident memory and start-up',
  order: 4,
  async run(context: BenchContext): Promise<SectionResult> {
    const many = connectionsThatFit();
    const echo = await startEchoServer(context);
    const backend = echo.ports[0] as number;
    const etcd = await startEtcd(context);
    const planes = await dataPlanes(context);
    const base = {
      domain: 'bench.skydns.local',
      discovery: 'static',
      'dns-listen': '127.0.0.1:0',
      upstream: ['127.0.0.1:9'],
      'max-conns': 20_000,
    };
    const one = { ...base, map: [{ listen: '127.0.0.1:0', service: 'echo' }], backend: [`echo=127.0.0.1:${backend}`] };
    const hundred = {
      ...base,
      map: Array.from({ length: 100 }, (_, i) => ({ listen: '127.0.0.1:0', service: `svc${i}` })),
      backend: Array.from({ length: 100 }, (_, i) => `svc${i}=127.0.0.1:${backend}`),
    };

    const values = new Map<string, number[]>();
    const add = (key: string, value: number): void => void values.set(key, [...(values.get(key) ?? []), value]);
    const rounds = Math.max(context.rounds, 3);
    for (let round = 0; round < rounds; round++) {
      // Start-up: spawn to the "ready" line (every listener and the stub bound), beside node doing nothing.
      const t0 = performance.now();
      await context.processes.run('node -e 0', 'node', ['-e', '0']);
      add('start node -e 0', performance.now() - t0);

      const srvlink = await startSrvlinkRun(context, 'srvlink run', one);
      add('start srvlink run', srvlink.startMs);
      add('rss srvlink run', await settledRss(srvlink.process.pid));
      await srvlink.process.stop();

      const node = context.processes.spawn('node idle', 'node', ['-e', 'setInterval(() => {}, 1 << 30)']);
      add('rss node', await settledRss(node.pid));
      await node.stop();

      const mappings = await startSrvlinkRun(context, 'srvlink run, 100 mappings', hundred);
      add('start srvlink run 100', mappings.startMs);
      add('rss srvlink run 100', await settledRss(mappings.process.pid));
      await mappings.process.stop();

      const register = context.processes.spawn('srvlink register', 'node', [
        context.srvlink, 'register', '--etcd', etcd.url, '--domain', 'bench.skydns.local', '--service', 'svc', '--port', '1234', '--host', '127.0.0.1', '--instance', `r${round}`,
      ]);
      await register.waitForLine((l) => l.includes('"registered"'), 'registered line');
      add('rss srvlink register', await settledRss(register.pid));
      await register.stop();

      // Open connections: idle, then 1,000 held, then as many more as the open-file limit leaves room for.
      const proxies: { label: string; start: () => Promise<{ pid: number; port: number; stop: () => Promise<void> }> }[] = [
        {
          label: 'HAProxy',
          start: async () => {
            const haproxy = await startHaproxy(context, 'HAProxy', [backend]);
            return { pid: haproxy.process.pid, port: haproxy.port, stop: () => haproxy.process.stop() };
          },
        },
        ...(planes.length > 0 ? planes : [undefined]).map((plane) => ({
          label: plane ? `srvlink run, ${plane} plane` : 'srvlink run',
          start: async () => {
            const s = await startSrvlinkRun(context, 'srvlink run', { ...one, ...(plane ? { 'data-plane': plane } : {}) });
            return { pid: s.process.pid, port: s.listeners[0]?.port ?? 0, stop: () => s.process.stop() };
          },
        })),
      ];
      // HAProxy's figures hardly move from round to round: measured in the first only, to keep the section short.
      for (const proxy of round === 0 ? proxies : proxies.slice(1)) {
        const running = await proxy.start();
        const idle = await settledRss(running.pid);
        const first = await hold(context, running.port, 1000);
        add(`conn ${proxy.label} idle`, idle);
        add(`conn ${proxy.label} +1000`, (await settledRss(running.pid)) - idle);
        const rest = await hold(context, running.port, many - 1000);
        const grown = (await settledRss(running.pid)) - idle;
        add(`conn ${proxy.label} +many`, grown);
        add(`conn ${proxy.label} held`, first.held + rest.held);
        // Per 10,000 of those actually held (a connection not up within a minute is not held).
        add(`conn ${proxy.label} per 10k`, (grown * 10_000) / Math.max(1, first.held + rest.held));
        await first.client.stop();
        await rest.client.stop();
        await running.stop();
      }
      context.log(`weight round ${round + 1}/${rounds} done`);
    }

    const s = (key: string): Summary => summarize(values.get(key) ?? []);
    const proxyLabels = ['HAProxy', ...(planes.length > 0 ? planes.map((p) => `srvlink run, ${p} plane`) : ['srvlink run'])];
    const memory = table(
      ['process', 'RSS MiB'],
      [
        ['node, idle (setInterval)', formatSummary(s('rss node'))],
        ['`srvlink run`, 1 mapping, stub on', formatSummary(s('rss srvlink run'))],
        ['`srvlink run`, 100 mappings', formatSummary(s('rss srvlink run 100'))],
        ['`srvlink register`, 1 registration', formatSummary(s('rss srvlink register'))],
        ...proxyLabels.map((label) => [`${label}, idle`, formatSummary(s(`conn ${label} idle`))]),
      ],
    );
    const conns = table(
      ['process', 'idle MiB', '+1,000 connections MiB', `+${many.toLocaleString('en-US')} connections MiB`, 'per 10,000 held MiB', 'held'],
      proxyLabels.map((label) => [
        label,
        formatSummary(s(`conn ${label} idle`)),
        formatSummary(s(`conn ${label} +1000`)),
        formatSummary(s(`conn ${label} +many`)),
        formatSummary(s(`conn ${label} per 10k`)),
        formatSummary(s(`conn ${label} held`)),
      ]),
    );
    const startup = table(
      ['what', 'ms'],
      [
        ['`node -e 0`, spawn to exit', formatSummary(s('start node -e 0'))],
        ['`srvlink run`, 1 mapping, spawn to ready', formatSummary(s('start srvlink run'))],
        ['`srvlink run`, 100 mappings, spawn to ready', formatSummary(s('start srvlink run 100'))],
      ],
    );
    const mib = (key: string): string => `${formatSummary(s(key))} MiB`;
    const ratios: Ratio[] = [
      { what: 'idle RSS, srvlink run', srvlink: mib('rss srvlink run'), alternative: `HAProxy ${mib('conn HAProxy idle')}`, ratio: ratioOf(s('rss srvlink run'), s('conn HAProxy idle')), goal: '≤ 50 MB', met: s('rss srvlink run').median <= 50 },
      { what: 'idle RSS, srvlink register', srvlink: mib('rss srvlink register'), alternative: `bare node ${mib('rss node')}`, ratio: ratioOf(s('rss srvlink register'), s('rss node')), goal: '≤ 50 MB', met: s('rss srvlink register').median <= 50 },
      ...proxyLabels.slice(1).map((label) => {
        const per10k = s(`conn ${label} per 10k`);
        const theirs = s('conn HAProxy per 10k');
        return { what: `RSS per 10,000 open connections, ${label}`, srvlink: `${formatSummary(per10k)} MiB`, alternative: `HAProxy ${formatSummary(theirs)} MiB`, ratio: ratioOf(per10k, theirs), goal: '≤ 64 MB', met: per10k.median <= 64 };
      }),
      { what: 'start-up to listening, srvlink run', srvlink: `${formatSummary(s('start srvlink run'))} ms`, alternative: `node -e 0 ${formatSummary(s('start node -e 0'))} ms`, ratio: ratioOf(s('start srvlink run'), s('start node -e 0')), goal: '≤ 200 ms', met: s('start srvlink run').median <= 200 },
    ];
    const markdown = [
      `RSS (VmRSS) ${SETTLE_MS / 1000} s after start or after the connections are up, ${rounds} rounds; a fresh process each round. srvlink runs with static discovery and its stub on 127.0.0.1; \`srvlink register\` against one etcd member. MiB = 2^20 bytes.`,
      '',
      memory,
      '',
      `Open connections (conn-client hold: each echoed one byte and stays open; the backend is echo-server.c). ${many.toLocaleString('en-US')} is what the open-file limit of this machine (hard ${readFileSync('/proc/self/limits', 'utf8').match(/Max open files\s+\d+\s+(\d+)/)?.[1] ?? '?'}) leaves srvlink room for (two descriptors per connection after its reserve); "per 10,000 held" scales the growth to 10,000 of the connections actually up (each has a minute). HAProxy is measured in the first round only.`,
      '',
      conns,
      '',
      'Start-up: from spawn to the "srvlink run ready" log line (every listener and the stub bound), beside bare node starting and exiting.',
      '',
      startup,
      '',
      `Ratios: ${formatRatio(s('rss srvlink run'), s('rss node'))} bare node's idle RSS; start-up ${formatRatio(s('start srvlink run'), s('start node -e 0'))} \`node -e 0\`.`,
    ].join('\n');
    return { markdown, ratios };
  },
};

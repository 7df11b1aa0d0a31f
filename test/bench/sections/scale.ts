/**
 * The scale curve: what one connection and one query cost srvlink as its
 * mappings, the backends of a service and the names in its stub's cache
 * grow from 10 to 10,000, beside HAProxy with as many servers and a
 * dnsmasq cache with as many names.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { dnsperf, startDnsmasq } from '../lib/dns-tools.js';
import { connRate, startEchoServer } from '../lib/echo-server.js';
import { startHaproxy } from '../lib/haproxy.js';
import { cpuSeconds } from '../lib/proc-stats.js';
import { startSrvlinkRun } from '../lib/srvlink.js';
import { formatNumber, formatRatio, formatSummary, ratioOf, summarize, type Summary } from '../lib/stats.js';
import { table, type BenchContext, type BenchSection, type Ratio, type SectionResult } from '../lib/bench-section.js';

const CONCURRENCY = 8;

interface Point {
  readonly rate: Summary;
  readonly cpu: Summary;
}

/** `rounds` runs of `measure`, each giving work per second and CPU µs per unit. */
async function curvePoint(context: BenchContext, measure: () => Promise<{ rate: number; cpuUs: number }>): Promise<Point> {
  const rates: number[] = [];
  const cpus: number[] = [];
  for (let round = 0; round < context.rounds; round++) {
    const { rate, cpuUs } = await measure();
    rates.push(rate);
    cpus.push(cpuUs);
  }
  return { rate: summarize(rates), cpu: summarize(cpus) };
}

/** Waits (up to 75 s) until at most `bound` TCP sockets of this namespace are in TIME_WAIT (state 06 of /proc/net/tcp). */
async function fewTimeWaits(context: BenchContext, bound: number): Promise<void> {
  const count = (): number => readFileSync('/proc/net/tcp', 'utf8').split('\n').filter((row) => row.trim().split(/\s+/)[3] === '06').length;
  const deadline = Date.now() + 75_000;
  let waits = count();
  if (waits > bound) context.log(`scale: waiting for ${waits} TIME_WAIT sockets to expire`);
  while (waits > bound && Date.now() < deadline) {
    await sleep(1000);
    waits = count();
  }
}

/** A short run first: a fresh node process is measured once its hot paths are compiled, as it runs for most of its life. */
async function warmUp(context: BenchContext, ports: readonly number[]): Promise<void> {
  await connRate(context, ports, CONCURRENCY, 1);
}

async function connections(context: BenchContext, pid: number, ports: readonly number[], seconds: number): Promise<{ rate: number; cpuUs: number }> {
  const before = cpuSeconds(pid);
  const result = await connRate(context, ports, CONCURRENCY, seconds);
  return { rate: result.rate, cpuUs: ((cpuSeconds(pid) - before) * 1e6) / Math.max(1, result.connections) };
}

export const scale: BenchSection = {
  name: 'scale',
  title: 'Scale curve: cost per connection and per query from 10 to 10,000',
  order: 6,
  async run(context: BenchContext): Promise<SectionResult> {
    const sizes = context.quick ? [10, 1000] : [10, 100, 1000, 10_000];
    const seconds = 1;
    const largest = sizes[sizes.length - 1] as number;
    const echo = await startEchoServer(context, largest);
    const base = { domain: 'bench.skydns.local', discovery: 'static', 'max-conns': 10_000 };
    const curves: { label: string; unit: string; srvlink: Point[]; alternative?: { label: string; points: Point[] } }[] = [];

    // Mappings: N listeners, the connections spread over all of them.
    const mappingPoints: Point[] = [];
    const mappingStarts: number[] = [];
    for (const n of sizes) {
      // Each mapping binds a port of the ephemeral range, which the connections before leave in TIME_WAIT for a minute.
      if (n >= 5000) await fewTimeWaits(context, 5000);
      const srvlink = await startSrvlinkRun(context, `srvlink run, ${n} mappings`, {
        ...base,
        map: Array.from({ length: n }, (_, i) => ({ listen: '127.0.0.1:0', service: `svc${i}` })),
        backend: Array.from({ length: n }, (_, i) => `svc${i}=127.0.0.1:${echo.ports[i % echo.ports.length]}`),
      }, { timeoutMs: 300_000 });
      mappingStarts.push(srvlink.startMs);
      const ports = srvlink.listeners.map((l) => l.port);
      await warmUp(context, ports);
      mappingPoints.push(await curvePoint(context, () => connections(context, srvlink.process.pid, ports, seconds)));
      context.log(`scale: ${n} mappings: ${formatSummary(mappingPoints[mappingPoints.length - 1]?.rate ?? summarize([]))} connections/s`);
      await srvlink.process.stop();
    }
    curves.push({ label: 'mappings', unit: 'connection', srvlink: mappingPoints });

    // Backends of one service: every connection orders N backends (RFC 2782, all of one priority and weight).
    const backendPoints: Point[] = [];
    const haproxyPoints: Point[] = [];
    for (const n of sizes) {
      const ports = echo.ports.slice(0, n);
      const srvlink = await startSrvlinkRun(context, `srvlink run, ${n} backends`, {
        ...base,
        map: [{ listen: '127.0.0.1:0', service: 'svc' }],
        backend: [`svc=${ports.map((p) => `127.0.0.1:${p}`).join(',')}`],
      }, { timeoutMs: 300_000 });
      // HAProxy takes a while to start with thousands of servers (26 s for 10,000 on this machine).
      const haproxy = await startHaproxy(context, `HAProxy, ${n} servers`, ports, [], 300_000);
      const port = srvlink.listeners[0]?.port ?? 0;
      await warmUp(context, [port]);
      const mine: { rate: number; cpuUs: number }[] = [];
      const theirs: { rate: number; cpuUs: number }[] = [];
      for (let round = 0; round < context.rounds; round++) {
        mine.push(await connections(context, srvlink.process.pid, [port], seconds));
        theirs.push(await connections(context, haproxy.process.pid, [haproxy.port], seconds));
      }
      backendPoints.push({ rate: summarize(mine.map((m) => m.rate)), cpu: summarize(mine.map((m) => m.cpuUs)) });
      haproxyPoints.push({ rate: summarize(theirs.map((m) => m.rate)), cpu: summarize(theirs.map((m) => m.cpuUs)) });
      context.log(`scale: ${n} backends: srvlink ${formatSummary(backendPoints[backendPoints.length - 1]?.rate ?? summarize([]))}/s`);
      await srvlink.process.stop();
      await haproxy.process.stop();
    }
    curves.push({ label: 'backends of one service', unit: 'connection', srvlink: backendPoints, alternative: { label: 'HAProxy, as many servers (roundrobin)', points: haproxyPoints } });

    // Cached names: the stub answering N distinct names from its cache, queried in turn.
    const namePoints: Point[] = [];
    const dnsmasqPoints: Point[] = [];
    for (const n of sizes) {
      const hosts = join(context.work, `hosts-${n}`);
      const names = Array.from({ length: n }, (_, i) => `n${i}.bench.test`);
      writeFileSync(hosts, names.map((name, i) => `10.3.${(i >> 8) & 255}.${i & 255} ${name}\n`).join(''));
      const queries = join(context.work, `queries-${n}.txt`);
      writeFileSync(queries, names.map((name) => `${name} A\n`).join(''));
      const upstream = await startDnsmasq(context, `dnsmasq, ${n} names`, { localZones: ['bench.test'], ttl: 3600, extraArgs: [`--addn-hosts=${hosts}`] });
      const cache = await startDnsmasq(context, `dnsmasq cache, ${n} names`, { extraArgs: [`--server=127.0.0.1#${upstream.port}`, '--cache-size=20000'] });
      const stub = await startSrvlinkRun(context, `srvlink stub, ${n} names`, {
        ...base,
        map: [{ listen: '127.0.0.1:0', service: 'svc' }],
        backend: ['svc=127.0.0.1:9'],
        'dns-listen': '127.0.0.1:0',
        upstream: [`127.0.0.1:${upstream.port}`],
        'cluster-dns': [`127.0.0.1:${upstream.port}`],
        'dns-cache-size': 20_000,
      });
      const dnsPort = stub.dnsPort ?? 0;
      // One pass over the names fills both caches (at a pace the upstream keeps up with).
      for (const port of [dnsPort, cache.port]) await dnsperf(context, port, queries, Math.max(1, Math.ceil(n / 5000)) + 1, { rate: 5000 });
      const query = async (pid: number, port: number): Promise<{ rate: number; cpuUs: number }> => {
        const before = cpuSeconds(pid);
        const result = await dnsperf(context, port, queries, seconds);
        return { rate: result.qps, cpuUs: ((cpuSeconds(pid) - before) * 1e6) / Math.max(1, result.completed) };
      };
      const mine: { rate: number; cpuUs: number }[] = [];
      const theirs: { rate: number; cpuUs: number }[] = [];
      for (let round = 0; round < context.rounds; round++) {
        mine.push(await query(stub.process.pid, dnsPort));
        theirs.push(await query(cache.process.pid, cache.port));
      }
      namePoints.push({ rate: summarize(mine.map((m) => m.rate)), cpu: summarize(mine.map((m) => m.cpuUs)) });
      dnsmasqPoints.push({ rate: summarize(theirs.map((m) => m.rate)), cpu: summarize(theirs.map((m) => m.cpuUs)) });
      context.log(`scale: ${n} names: stub ${formatSummary(namePoints[namePoints.length - 1]?.rate ?? summarize([]))} qps`);
      await stub.process.stop();
      await cache.process.stop();
      await upstream.process.stop();
    }
    curves.push({ label: 'cached names', unit: 'query', srvlink: namePoints, alternative: { label: 'dnsmasq cache, as many names', points: dnsmasqPoints } });

    const rows: string[][] = [];
    const ratios: Ratio[] = [];
    for (const curve of curves) {
      for (const [i, n] of sizes.entries()) {
        const point = curve.srvlink[i] as Point;
        const first = curve.srvlink[0] as Point;
        const alt = curve.alternative?.points[i];
        rows.push([
          curve.label,
          n.toLocaleString('en-US'),
          formatSummary(point.rate),
          formatSummary(point.cpu),
          formatRatio(point.cpu, first.cpu),
          alt ? `${formatSummary(alt.rate)}; ${formatSummary(alt.cpu)} µs` : '–',
          alt ? formatRatio(point.cpu, alt.cpu) : '–',
        ]);
      }
      const last = curve.srvlink[sizes.length - 1] as Point;
      const first = curve.srvlink[0] as Point;
      ratios.push({
        what: `CPU per ${curve.unit} at ${largest.toLocaleString('en-US')} ${curve.label}, against 10`,
        srvlink: `${formatSummary(last.cpu)} µs`,
        alternative: `srvlink at 10: ${formatSummary(first.cpu)} µs`,
        ratio: ratioOf(last.cpu, first.cpu),
        goal: '',
      });
      const alt = curve.alternative?.points[sizes.length - 1];
      if (alt && curve.alternative) {
        ratios.push({
          what: `CPU per ${curve.unit} at ${largest.toLocaleString('en-US')} ${curve.label}`,
          srvlink: `${formatSummary(last.cpu)} µs`,
          alternative: `${curve.alternative.label} ${formatSummary(alt.cpu)} µs`,
          ratio: ratioOf(last.cpu, alt.cpu),
          goal: '',
        });
      }
    }
    const markdown = [
      `Connections: conn-client.c, ${CONCURRENCY} at a time, connect + 1 byte echoed + close, ${seconds} s per run (spread over every listener for the mappings curve); queries: dnsperf, 4 clients, as fast as it goes, over every name in turn after one pass that fills the caches. CPU µs: the srvlink process's CPU per connection or query (the alternative's for the alternative). ${context.rounds} rounds per point; static discovery; the backends are ports of one echo-server.c.`,
      '',
      table(['grows', 'size', 'srvlink per s', 'srvlink CPU µs', 'CPU vs size 10', 'alternative per s; CPU µs', 'CPU vs alternative'], rows),
      '',
      `Start-up of \`srvlink run\` to ready with ${sizes.map((n, i) => `${n.toLocaleString('en-US')} mappings: ${formatNumber((mappingStarts[i] ?? Number.NaN) / 1000)} s`).join(', ')} (one run each, under the load of this machine). Start-up grows faster than the mappings because every listener here binds \`127.0.0.1:0\`: for each bind the kernel searches the ephemeral range for a free port past every port already taken, the listeners before it and the TIME_WAITs the curve's connections leave (a perf profile of such a start is mostly \`inet_csk_get_port\` and the bind-hash conflict checks); listeners on ports of their own, as in a real config, do not pay it.`,
      '',
      `A flat curve (CPU vs size 10 near 1.00×) means the cost does not grow with the size; at 10 the figures are those of the connections and DNS sections, in another moment of this noisy machine. ${formatNumber(largest)} mappings are ${formatNumber(largest)} listening sockets.`,
    ].join('\n');
    return { markdown, ratios };
  },
};

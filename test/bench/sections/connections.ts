/**
 * New connections: a C client at a fixed concurrency doing connect, one
 * byte there and back, close, against an epoll echo server in C; direct,
 * through HAProxy and through srvlink, by address and by name (each
 * connection resolving A and AAAA first: through dnsmasq for the direct
 * and HAProxy paths, through srvlink's own stub for srvlink).
 */
import { startDnsmasq } from '../lib/dns-tools.js';
import { connRate, startEchoServer, type ConnRate } from '../lib/echo-server.js';
import { startHaproxy } from '../lib/haproxy.js';
import { cpuSeconds, threadShares } from '../lib/proc-stats.js';
import { perfTopSymbols } from '../lib/perf-profile.js';
import { dataPlanes, profileSrvlinkRun, startSrvlinkRun } from '../lib/srvlink.js';
import { formatRatio, formatSummary, ratioOf, summarize, type Summary } from '../lib/stats.js';
import { table, type BenchContext, type BenchSection, type Ratio, type SectionResult } from '../lib/bench-section.js';

const CONCURRENCY = 8;
const NAME = 'echo.bench.skydns.local';

interface Path {
  readonly label: string;
  readonly port: number;
  readonly pid: number | undefined;
  readonly resolve?: { dnsPort: number; name: string };
  /** The path whose latency this one's is compared with (the direct one, by address or by name). */
  readonly baseline: string;
}

interface Sample extends ConnRate {
  readonly cpuUsPerConn: number;
}

export const connections: BenchSection = {
  name: 'connections',
  title: 'New connections: rate and added latency',
  order: 2,
  async run(context: BenchContext): Promise<SectionResult> {
    const seconds = context.quick ? 1 : 3;
    const echo = await startEchoServer(context);
    const backend = echo.ports[0] as number;
    const dnsmasq = await startDnsmasq(context, 'dnsmasq', { localZones: ['skydns.local'], hosts: [{ name: NAME, address: '127.0.0.1' }], ttl: 3600 });
    const haproxy = await startHaproxy(context, 'HAProxy', [backend]);
    const paths: Path[] = [
      { label: 'direct', port: backend, pid: undefined, baseline: 'direct' },
      { label: 'HAProxy', port: haproxy.port, pid: haproxy.process.pid, baseline: 'direct' },
    ];
    const named: Path[] = [
      { label: 'direct, by name (dnsmasq)', port: backend, pid: undefined, resolve: { dnsPort: dnsmasq.port, name: NAME }, baseline: 'direct, by name (dnsmasq)' },
      { label: 'HAProxy, by name (dnsmasq)', port: haproxy.port, pid: haproxy.process.pid, resolve: { dnsPort: dnsmasq.port, name: NAME }, baseline: 'direct, by name (dnsmasq)' },
    ];
    const config = (plane: string | undefined): Record<string, unknown> => ({
      domain: 'bench.skydns.local',
      discovery: 'static',
      map: [{ listen: '127.0.0.1:0', service: 'echo' }],
      backend: [`echo=127.0.0.1:${backend}`],
      'dns-listen': '127.0.0.1:0',
      upstream: [`127.0.0.1:${dnsmasq.port}`],
      'max-conns': 10000,
      ...(plane ? { 'data-plane': plane } : {}),
    });
    const planes = await dataPlanes(context);
    const srvlinkLabels: string[] = [];
    for (const plane of planes.length > 0 ? planes : [undefined]) {
      const label = plane ? `srvlink ${plane} plane` : 'srvlink';
      const srvlink = await startSrvlinkRun(context, label, config(plane));
      const port = srvlink.listeners[0]?.port ?? 0;
      // A fresh node process is measured once its hot paths are compiled, as it runs for most of its life.
      await connRate(context, [port], CONCURRENCY, 1, { dnsPort: srvlink.dnsPort ?? 0, name: NAME });
      paths.push({ label, port, pid: srvlink.process.pid, baseline: 'direct' });
      named.push({ label: `${label}, by name (its stub)`, port, pid: srvlink.process.pid, resolve: { dnsPort: srvlink.dnsPort ?? 0, name: NAME }, baseline: 'direct, by name (dnsmasq)' });
      srvlinkLabels.push(label);
    }
    const all = [...paths, ...named];

    const samples = new Map<string, Sample[]>();
    for (let round = 0; round < context.rounds; round++) {
      const order = all.map((_, i) => all[(i + round) % all.length] as Path);
      for (const path of order) {
        const before = path.pid ? cpuSeconds(path.pid) : 0;
        const result = await connRate(context, [path.port], CONCURRENCY, seconds, path.resolve);
        const cpu = path.pid ? cpuSeconds(path.pid) - before : Number.NaN;
        samples.set(path.label, [...(samples.get(path.label) ?? []), { ...result, cpuUsPerConn: (cpu * 1e6) / result.connections }]);
        context.log(`connections round ${round + 1}/${context.rounds} ${path.label}: ${Math.round(result.rate)}/s p99 ${result.p99_us} µs, ${result.errors} errors`);
      }
    }

    const of = (label: string, pick: (s: Sample) => number): Summary => summarize((samples.get(label) ?? []).map(pick));
    // Added latency: the path's percentile minus the direct path's of the same round.
    const added = (path: Path, pick: (s: Sample) => number): Summary => {
      const base = samples.get(path.baseline) ?? [];
      return summarize((samples.get(path.label) ?? []).map((s, i) => (pick(s) - pick(base[i] as Sample)) / 1000));
    };
    const rate = (label: string): Summary => of(label, (s) => s.rate);
    const rows = all.map((path) => [
      path.label,
      formatSummary(rate(path.label)),
      formatSummary(of(path.label, (s) => s.p50_us / 1000)),
      formatSummary(of(path.label, (s) => s.p99_us / 1000)),
      path.label === path.baseline ? '–' : formatSummary(added(path, (s) => s.p50_us)),
      path.pid ? formatSummary(of(path.label, (s) => s.cpuUsPerConn)) : '–',
      String((samples.get(path.label) ?? []).reduce((n, s) => n + s.errors, 0)),
      formatRatio(rate(path.label), rate(path.resolve ? 'HAProxy, by name (dnsmasq)' : 'HAProxy')),
    ]);
    const ratios: Ratio[] = [];
    for (const label of srvlinkLabels) {
      for (const name of [false, true]) {
        const path = all.find((p) => p.label === (name ? `${label}, by name (its stub)` : label)) as Path;
        const alternative = name ? 'HAProxy, by name (dnsmasq)' : 'HAProxy';
        ratios.push({
          what: `connections/s, ${path.label}`,
          srvlink: `${formatSummary(rate(path.label))}/s`,
          alternative: `${alternative} ${formatSummary(rate(alternative))}/s`,
          ratio: ratioOf(rate(path.label), rate(alternative)),
          goal: '≥ 1.0×',
        });
        // Both paths add to the same direct path: comparing their p99 compares what they add,
        // without the noise of a difference of two percentiles.
        const mine = of(path.label, (s) => s.p99_us / 1000);
        const theirs = of(alternative, (s) => s.p99_us / 1000);
        ratios.push({
          what: `p99 latency, ${path.label}`,
          srvlink: `${formatSummary(mine)} ms`,
          alternative: `${alternative} ${formatSummary(theirs)} ms`,
          ratio: ratioOf(mine, theirs),
          goal: '≤ 1.0×',
        });
      }
      // The steadiest figure on a loaded machine: CPU per connection does not depend on the share of the CPUs a process got.
      const cpu = (l: string): Summary => of(l, (s) => s.cpuUsPerConn);
      ratios.push({
        what: `CPU per connection, ${label}`,
        srvlink: `${formatSummary(cpu(label))} µs`,
        alternative: `HAProxy ${formatSummary(cpu('HAProxy'))} µs`,
        ratio: ratioOf(cpu(label), cpu('HAProxy')),
        goal: '',
      });
    }
    const profiles: string[] = [];
    for (const plane of planes.length > 0 ? planes : [undefined]) {
      const label = plane ? `srvlink ${plane} plane` : 'srvlink';
      profiles.push(
        await profileSrvlinkRun(context, `${label}, by name`, config(plane), async (srvlink) => {
          await connRate(context, [srvlink.listeners[0]?.port ?? 0], CONCURRENCY, 1, { dnsPort: srvlink.dnsPort ?? 0, name: NAME });
          await connRate(context, [srvlink.listeners[0]?.port ?? 0], CONCURRENCY, seconds, { dnsPort: srvlink.dnsPort ?? 0, name: NAME });
        }),
      );
    }
    // By address, where the CPUs go: the busiest threads of each proxy, and srvlink's kernel symbols.
    const native = srvlinkLabels.find((label) => label.includes('native')) ?? srvlinkLabels[0];
    const nativePath = paths.find((p) => p.label === native);
    if (nativePath?.pid !== undefined && haproxy.process.pid !== undefined) {
      const load = (port: number) => async (): Promise<void> => void (await connRate(context, [port], CONCURRENCY, seconds));
      const theirs = await threadShares(haproxy.process.pid, load(haproxy.port));
      const mine = await threadShares(nativePath.pid, load(nativePath.port));
      const cpu = (label: string): Summary => of(label, (s) => s.cpuUsPerConn);
      profiles.push(
        `By address, ${native} spends ${formatSummary(cpu(nativePath.label))} µs of CPU per connection against HAProxy's ${formatSummary(cpu('HAProxy'))} (${formatRatio(cpu(nativePath.label), cpu('HAProxy'))}); ` +
          `what differs is how many threads do it. Busiest threads during a ${seconds} s run, as shares of one CPU: HAProxy ${theirs}; ${native} ${mine} (its event loop accepts, dials and forwards every short connection; pairs go to the plane's threads only once they carry bulk). ` +
          `With ${CONCURRENCY} connections in flight the rate is what their latency allows, and two threads take connections at the same time where one takes them in turn, for about the same CPU in all.`,
      );
      const top = await perfTopSymbols(context, nativePath.pid, load(nativePath.port));
      profiles.push(`perf profile of ${native} by address (every thread, self time): ${top}.`);
    }
    const markdown = [
      `conn-client.c, ${CONCURRENCY} connections at a time for ${seconds} s per run, each: connect, 1 byte there and back, close (the echo server is echo-server.c, one epoll thread); ${context.rounds} rounds, the paths in turn. Latency: from the first packet (the DNS query by name, the SYN by address) to the echoed byte. p50 added: minus the direct path's p50 of the same round (by name: minus direct by name through dnsmasq); the p99 ratio compares the two proxies' p99, as both add to the same direct path. CPU µs/conn: the proxy process's CPU per connection.`,
      '',
      table(['path', 'connections/s', 'p50 ms', 'p99 ms', 'p50 added ms', 'CPU µs/conn', 'errors', 'vs HAProxy'], rows),
      '',
      ...profiles,
    ].join('\n');
    return { markdown, ratios };
  },
};

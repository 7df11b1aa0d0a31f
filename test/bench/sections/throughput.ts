/**
 * Bulk throughput: iperf3 with 1 and 4 streams through each proxy on
 * loopback, and the CPU the proxy process spends per GB moved.
 */
import { availableParallelism } from 'node:os';
import { withFreePort } from '../lib/free-port.js';
import { listening } from '../lib/listening.js';
import { cpuSeconds } from '../lib/proc-stats.js';
import { perfTopSymbols } from '../lib/perf-profile.js';
import { startHaproxy } from '../lib/haproxy.js';
import { dataPlanes, profileSrvlinkRun, startSrvlinkRun } from '../lib/srvlink.js';
import { formatRatio, formatSummary, ratioOf, summarize, type Summary } from '../lib/stats.js';
import { table, type BenchContext, type BenchSection, type Ratio, type SectionResult } from '../lib/bench-section.js';

interface Path {
  readonly label: string;
  readonly port: number;
  /** The proxy's pid, for its CPU; none for the direct path. */
  readonly pid: number | undefined;
}

interface Sample {
  readonly gbits: number;
  readonly cpuPerGB: number;
}

const STREAMS = [1, 4] as const;

async function iperf(context: BenchContext, port: number, streams: number, seconds: number): Promise<{ gbits: number; bytes: number }> {
  for (let attempt = 0; ; attempt++) {
    const result = await context.processes.run('iperf3 client', 'iperf3', ['-c', '127.0.0.1', '-p', String(port), '-t', String(seconds), '-P', String(streams), '-J'], {
      timeoutMs: (seconds + 30) * 1000,
    });
    try {
      const report = JSON.parse(result.stdout) as { error?: string; end?: { sum_received?: { bits_per_second: number; bytes: number } } };
      const sum = report.end?.sum_received;
      if (result.status === 0 && sum) return { gbits: sum.bits_per_second / 1e9, bytes: sum.bytes };
      if (attempt >= 2) throw new Error(`iperf3 through port ${port} failed: ${report.error ?? result.stderr}`);
    } catch (err) {
      if (attempt >= 2) throw err;
    }
    // The server may still be finishing the previous test ("the server is busy").
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

async function startSocat(context: BenchContext, backend: number): Promise<Path> {
  return withFreePort(async (port) => {
    const socat = context.processes.spawn('socat', 'socat', [`TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork`, `TCP:127.0.0.1:${backend}`]);
    let dead = false;
    void socat.exited.then(() => (dead = true));
    try {
      await listening(port, 'socat', () => dead);
    } catch (err) {
      await socat.stop();
      throw err;
    }
    return { label: 'socat', port, pid: socat.pid };
  });
}

export const throughput: BenchSection = {
  name: 'throughput',
  title: 'Throughput: iperf3, 1 and 4 streams',
  order: 1,
  async run(context: BenchContext): Promise<SectionResult> {
    const seconds = context.quick ? 1 : 3;
    const server = await withFreePort(async (port) => {
      const iperfServer = context.processes.spawn('iperf3 server', 'iperf3', ['-s', '--forceflush', '-B', '127.0.0.1', '-p', String(port)]);
      try {
        await iperfServer.waitForLine((line) => line.includes('Server listening'), 'listening line', 10_000);
      } catch (err) {
        await iperfServer.stop();
        throw err;
      }
      return port;
    });
    const paths: Path[] = [{ label: 'direct', port: server, pid: undefined }];
    paths.push(await startSocat(context, server));
    const auto = await startHaproxy(context, 'HAProxy splice-auto', [server], ['splice-auto']);
    paths.push({ label: 'HAProxy splice-auto', port: auto.port, pid: auto.process.pid });
    const forced = await startHaproxy(context, 'HAProxy forced splice', [server], ['splice-request', 'splice-response']);
    paths.push({ label: 'HAProxy forced splice', port: forced.port, pid: forced.process.pid });
    const config = (plane: string | undefined): Record<string, unknown> => ({
      domain: 'bench.skydns.local',
      discovery: 'static',
      map: [{ listen: '127.0.0.1:0', service: 'iperf' }],
      backend: [`iperf=127.0.0.1:${server}`],
      ...(plane ? { 'data-plane': plane } : {}),
    });
    const planes = await dataPlanes(context);
    const notes: string[] = [];
    const srvlinkLabels: string[] = [];
    for (const plane of planes.length > 0 ? planes : [undefined]) {
      const label = plane ? `srvlink ${plane} plane` : 'srvlink';
      const srvlink = await startSrvlinkRun(context, label, config(plane));
      paths.push({ label, port: srvlink.listeners[0]?.port ?? 0, pid: srvlink.process.pid });
      srvlinkLabels.push(label);
    }
    if (planes.length === 0) notes.push('`srvlink run` has no `--data-plane` flag in this build: one srvlink row, its only (JS) plane; the native plane is not measured.');

    const samples = new Map<string, Sample[]>();
    for (let round = 0; round < context.rounds; round++) {
      // A different order each round, so that a noisy moment does not always hit the same path.
      const order = paths.map((_, i) => paths[(i + round) % paths.length] as Path);
      for (const streams of STREAMS) {
        for (const path of order) {
          const before = path.pid ? cpuSeconds(path.pid) : 0;
          const { gbits, bytes } = await iperf(context, path.port, streams, seconds);
          // socat's per-connection children are counted once reaped: give them a moment.
          if (path.label === 'socat') await new Promise((resolve) => setTimeout(resolve, 200));
          const cpu = path.pid ? cpuSeconds(path.pid) - before : Number.NaN;
          const key = `${path.label}/${streams}`;
          samples.set(key, [...(samples.get(key) ?? []), { gbits, cpuPerGB: cpu / (bytes / 1e9) }]);
          context.log(`throughput round ${round + 1}/${context.rounds} ${streams} stream(s) ${path.label}: ${gbits.toFixed(2)} Gbit/s`);
        }
      }
    }

    const gbit = (label: string, streams: number): Summary => summarize((samples.get(`${label}/${streams}`) ?? []).map((s) => s.gbits));
    const cpu = (label: string, streams: number): Summary => summarize((samples.get(`${label}/${streams}`) ?? []).map((s) => s.cpuPerGB));
    const rows = paths.map((path) => [
      path.label,
      ...STREAMS.flatMap((streams) => [formatSummary(gbit(path.label, streams)), path.pid ? formatSummary(cpu(path.label, streams)) : '–']),
      formatRatio(gbit(path.label, 1), gbit('HAProxy forced splice', 1)),
      formatRatio(gbit(path.label, 4), gbit('HAProxy forced splice', 4)),
      formatRatio(gbit(path.label, 1), gbit('direct', 1)),
    ]);
    const ratios: Ratio[] = [];
    for (const label of srvlinkLabels) {
      ratios.push(
        { what: `1 stream, ${label}`, srvlink: `${formatSummary(gbit(label, 1))} Gbit/s`, alternative: `HAProxy forced splice ${formatSummary(gbit('HAProxy forced splice', 1))}`, ratio: ratioOf(gbit(label, 1), gbit('HAProxy forced splice', 1)), goal: '≥ 1.1×' },
        { what: `1 stream, ${label}, against direct`, srvlink: `${formatSummary(gbit(label, 1))} Gbit/s`, alternative: `direct ${formatSummary(gbit('direct', 1))}`, ratio: ratioOf(gbit(label, 1), gbit('direct', 1)), goal: '≥ 0.7×' },
        { what: `4 streams, ${label}`, srvlink: `${formatSummary(gbit(label, 4))} Gbit/s`, alternative: `HAProxy forced splice ${formatSummary(gbit('HAProxy forced splice', 4))}`, ratio: ratioOf(gbit(label, 4), gbit('HAProxy forced splice', 4)), goal: '≥ 1.2×' },
        { what: `CPU per GB, 1 stream, ${label}`, srvlink: `${formatSummary(cpu(label, 1))} CPU-s/GB`, alternative: `HAProxy forced splice ${formatSummary(cpu('HAProxy forced splice', 1))}`, ratio: ratioOf(cpu(label, 1), cpu('HAProxy forced splice', 1)), goal: '≤ 0.75×' },
        { what: `CPU per GB, 4 streams, ${label}`, srvlink: `${formatSummary(cpu(label, 4))} CPU-s/GB`, alternative: `HAProxy forced splice ${formatSummary(cpu('HAProxy forced splice', 4))}`, ratio: ratioOf(cpu(label, 4), cpu('HAProxy forced splice', 4)), goal: '' },
      );
    }
    // Four streams fill both CPUs: what bounds a proxy there is what the path costs without it.
    const ceiling = ratioOf(gbit('direct', 4), gbit('HAProxy forced splice', 4));
    ratios.push({
      what: '4 streams, direct (no proxy): the most any proxy could reach',
      srvlink: `direct ${formatSummary(gbit('direct', 4))} Gbit/s`,
      alternative: `HAProxy forced splice ${formatSummary(gbit('HAProxy forced splice', 4))}`,
      ratio: ceiling,
      goal: '',
    });
    const native = srvlinkLabels.find((label) => label.includes('native'));
    if (native !== undefined) {
      notes.push(
        `Four streams: iperf3's client and server share the machine's ${availableParallelism()} CPUs with the proxy, and every path here keeps them busy, so a proxy's rate is what those CPUs do after the proxy's own cost: ` +
          `the direct path, with no proxy at all, is ${ceiling.toFixed(2)}× HAProxy forced splice in this run (the ≥ 1.2× goal is out of reach of any proxy when that is under 1.2×), ` +
          `and ${native} spends ${formatSummary(cpu(native, 4))} CPU-s/GB with 4 streams against HAProxy's ${formatSummary(cpu('HAProxy forced splice', 4))} (${formatRatio(cpu(native, 4), cpu('HAProxy forced splice', 4))}): ` +
          'both move the bytes with splice(2), and what they spend is the kernel\'s (the perf profiles below).',
      );
      notes.push(cpuBound(availableParallelism(), gbit('direct', 4).median, { label: native, cpuPerGB: cpu(native, 4).median, gbits: gbit(native, 4).median }, { label: 'HAProxy forced splice', cpuPerGB: cpu('HAProxy forced splice', 4).median, gbits: gbit('HAProxy forced splice', 4).median }));
    }
    // Where the CPU goes with 4 streams, kernel included, for srvlink's native plane and HAProxy alike.
    for (const path of paths.filter((p) => p.label.includes('native') || p.label === 'HAProxy forced splice')) {
      const top = await perfTopSymbols(context, path.pid ?? 0, async () => void (await iperf(context, path.port, 4, seconds)));
      notes.push(`perf profile of ${path.label}, 4 streams (every thread of the process, self time): ${top}.`);
    }
    for (const plane of planes.length > 0 ? planes : [undefined]) {
      const label = plane ? `srvlink ${plane} plane` : 'srvlink';
      const profile = await profileSrvlinkRun(context, `${label}, 1 stream`, config(plane), async (srvlink) => {
        await iperf(context, srvlink.listeners[0]?.port ?? 0, 1, seconds);
      });
      // node --cpu-prof samples JavaScript's thread only.
      notes.push(plane === 'native' ? `${profile} The native plane moves the bytes on the addon's own thread, which this profile does not see: its CPU is in the CPU-s/GB column.` : profile);
    }
    const markdown = [
      `iperf3 ${seconds} s per run, ${context.rounds} rounds, the paths in turn (a different order each round); median (min–max). CPU-s/GB: CPU seconds of the proxy process (every thread, user + system, socat's children included) per GB received.`,
      '',
      table(
        ['path', '1 stream Gbit/s', 'CPU-s/GB', '4 streams Gbit/s', 'CPU-s/GB', '1 stream vs forced splice', '4 streams vs forced splice', '1 stream vs direct'],
        rows,
      ),
      ...notes.map((note) => `\n${note}`),
    ].join('\n');
    return { markdown, ratios };
  },
};

/** A path's median 4-stream rate and the CPU its proxy spent per GB. */
interface Loaded {
  readonly label: string;
  readonly cpuPerGB: number;
  readonly gbits: number;
}

/**
 * The CPU bound of 4 streams, in a sentence. When the direct path keeps
 * every CPU busy, iperf3's client and server (and the kernel under them)
 * spend `cpus / direct GB/s` CPU-s per GB; a proxy adds its own, so it can
 * move at most `cpus / (that + its own)` GB/s. The ratio of two such bounds
 * is what two proxies can reach against each other, and it says what CPU per
 * GB a 1.2× goal asks for.
 */
function cpuBound(cpus: number, directGbits: number, proxy: Loaded, alternative: Loaded): string {
  const iperf = cpus / (directGbits / 8);
  const bound = (p: Loaded): number => (cpus / (iperf + p.cpuPerGB)) * 8;
  const needed = (iperf + alternative.cpuPerGB) / 1.2 - iperf;
  return (
    `What the CPUs allow: the direct path's ${directGbits.toPrecision(3)} Gbit/s with every CPU busy means iperf3 and the kernel under it spend ${iperf.toFixed(3)} CPU-s per GB, so a proxy spending p more can move at most ${cpus} / (${iperf.toFixed(3)} + p) GB/s: ` +
    `${bound(proxy).toPrecision(3)} Gbit/s for ${proxy.label} (measured ${proxy.gbits.toPrecision(3)}), ${bound(alternative).toPrecision(3)} for ${alternative.label} (measured ${alternative.gbits.toPrecision(3)}), a ratio of ${(bound(proxy) / bound(alternative)).toFixed(2)}× against the ${(proxy.gbits / alternative.gbits).toFixed(2)}× measured. ` +
    (needed > 0
      ? `1.2× would take ${needed.toFixed(3)} CPU-s per GB, ${(needed / alternative.cpuPerGB).toFixed(2)}× ${alternative.label}'s, where ${proxy.label} spends ${proxy.cpuPerGB.toFixed(3)}, nearly all of it in the kernel (the perf profiles below).`
      : `1.2× is within what the CPUs allow for any proxy spending less than ${alternative.label}.`)
  );
}

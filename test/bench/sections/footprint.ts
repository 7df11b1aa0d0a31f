/**
 * Footprint: where the idle RSS and the start-up time of srvlink go, beside
 * bare node with one listener, with the bundle dist/main.js loads and with
 * srvlink's ES modules one by one. For each process: RSS, CPU and wall time to
 * ready; one round more with a probe (NODE_OPTIONS=--import) for the V8 heap
 * spaces and the builtin modules, the smaps of the executable (text,
 * rodata) and the anonymous memory, and a round with a loader hook that
 * counts the JS files loaded. Then V8 flags srvlink could be started with,
 * each measured for RSS and start-up and checked against the data plane
 * (iperf3 through the forwarder, conn-client's connection rate).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { table, type BenchContext, type BenchSection, type Ratio, type SectionResult } from '../lib/bench-section.js';
import { connRate, startEchoServer } from '../lib/echo-server.js';
import { startEtcd } from '../lib/etcd.js';
import { freePort } from '../lib/free-port.js';
import { listening } from '../lib/listening.js';
import type { OwnedProcess } from '../lib/process-group.js';
import { cpuSeconds, rssBytes } from '../lib/proc-stats.js';
import { formatRatio, formatSummary, summarize, type Summary } from '../lib/stats.js';

/** As the weight section: time for a process to reach its idle size after start. */
const SETTLE_MS = 1500;
const MIB = 1024 * 1024;

/** What one process is, how to start it and which line says it is ready. */
interface Subject {
  readonly label: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly ready: string;
  readonly nodeArgs?: readonly string[];
}

/** One start: to ready, then settled. */
interface Sample {
  readonly wallMs: number;
  readonly cpuMs: number;
  readonly rssMiB: number;
  readonly threads: number;
}

async function start(context: BenchContext, subject: Subject, env: NodeJS.ProcessEnv = process.env): Promise<{ process: OwnedProcess; wallMs: number; cpuMs: number }> {
  const t0 = performance.now();
  const args = subject.command === 'node' ? [...(subject.nodeArgs ?? []), ...subject.args] : subject.args;
  const child = context.processes.spawn(subject.label, subject.command, args, { env });
  await child.waitForLine((line) => line.includes(subject.ready), `${subject.label} ready`, 60_000);
  const wallMs = performance.now() - t0;
  return { process: child, wallMs, cpuMs: cpuSeconds(child.pid) * 1000 };
}

async function sample(context: BenchContext, subject: Subject): Promise<Sample> {
  const { process: child, wallMs, cpuMs } = await start(context, subject);
  await sleep(SETTLE_MS);
  const rssMiB = rssBytes(child.pid) / MIB;
  const threads = Number(/Threads:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? 0);
  await child.stop();
  return { wallMs, cpuMs, rssMiB, threads };
}

/** Resident KiB by kind of mapping: the executable's text and read-only data, anonymous memory (V8 heap, malloc, stacks), the rest. */
function smapsBreakdown(pid: number): Record<string, number> {
  const exe = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] ?? '';
  const exePath = readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n')[0]?.split(/\s+/)[5] ?? exe;
  const kinds: Record<string, number> = { 'executable text': 0, 'executable rodata': 0, 'anonymous (V8 heap, malloc, stacks)': 0, 'shared libraries and other files': 0 };
  let kind = '';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const header = /^[0-9a-f]+-[0-9a-f]+ (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (header) {
      const [, perms = '', name = ''] = header;
      kind =
        name === exePath
          ? perms.includes('x')
            ? 'executable text'
            : 'executable rodata'
          : name === '' || name.startsWith('[')
            ? 'anonymous (V8 heap, malloc, stacks)'
            : 'shared libraries and other files';
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) kinds[kind] = (kinds[kind] ?? 0) + Number(rss[1]);
  }
  return kinds;
}

/** The probe a process is started with for the anatomy round: heap spaces and builtins, written once it has settled. */
function writeProbe(work: string): { probe: string; hooks: string } {
  const probe = join(work, 'footprint-probe.mjs');
  writeFileSync(
    probe,
    `import v8 from 'node:v8';
import { writeFileSync } from 'node:fs';
setTimeout(() => {
  const spaces = Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, s.physical_space_size]));
  writeFileSync(process.env.FOOTPRINT_OUT, JSON.stringify({ memory: process.memoryUsage(), spaces, code: v8.getHeapCodeStatistics(), builtins: process.moduleLoadList.filter((m) => m.startsWith('NativeModule')).length }));
}, ${SETTLE_MS}).unref();
`,
  );
  const hooks = join(work, 'footprint-hooks.mjs');
  writeFileSync(
    hooks,
    `import { appendFileSync } from 'node:fs';
export async function load(url, context, next) { appendFileSync(process.env.FOOTPRINT_FILES, url + '\\n'); return next(url, context); }
`,
  );
  const register = join(work, 'footprint-register.mjs');
  writeFileSync(register, `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`);
  return { probe, hooks: register };
}

interface Anatomy {
  readonly smaps: Record<string, number>;
  readonly spaces: Record<string, number>;
  readonly heapTotal: number;
  readonly builtins: number;
  readonly files?: { own: number; dependencies: number; packages: string[] };
}

/** One start with the probe (heap, builtins, smaps), one with the loader hook (files loaded: ESM and what ESM imports; CommonJS requires inside a package are not seen). */
async function anatomy(context: BenchContext, subject: Subject, probes: { probe: string; hooks: string }, name: string): Promise<Anatomy> {
  const out = join(context.work, `${name}.json`);
  const probed = await start(context, subject, { ...process.env, NODE_OPTIONS: `--import ${probes.probe}`, FOOTPRINT_OUT: out });
  await sleep(SETTLE_MS + 300);
  const smaps = smapsBreakdown(probed.process.pid);
  await probed.process.stop();
  const probe = existsSync(out) ? (JSON.parse(readFileSync(out, 'utf8')) as { memory: { heapTotal: number }; spaces: Record<string, number>; builtins: number }) : undefined;
  const list = join(context.work, `${name}.files`);
  writeFileSync(list, '');
  const hooked = await start(context, subject, { ...process.env, NODE_OPTIONS: `--import ${probes.hooks}`, FOOTPRINT_FILES: list });
  await sleep(500);
  await hooked.process.stop();
  const urls = readFileSync(list, 'utf8').split('\n').filter((u) => u.startsWith('file:'));
  const deps = urls.filter((u) => u.includes('/node_modules/'));
  const packages = [...new Set(deps.map((u) => /\/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(u)?.[1] ?? '?'))].sort();
  return {
    smaps,
    spaces: probe?.spaces ?? {},
    heapTotal: probe?.memory.heapTotal ?? Number.NaN,
    builtins: probe?.builtins ?? Number.NaN,
    files: { own: urls.length - deps.length, dependencies: deps.length, packages },
  };
}

/** iperf3 through `port` for `seconds`: Gbit/s received. */
async function iperf(context: BenchContext, port: number, seconds: number): Promise<number> {
  const result = await context.processes.run('iperf3 client', 'iperf3', ['-c', '127.0.0.1', '-p', String(port), '-t', String(seconds), '-J'], { timeoutMs: (seconds + 30) * 1000 });
  if (result.status !== 0) throw new Error(`iperf3 through ${port} failed (${result.status}): ${result.stdout.slice(0, 300)}${result.stderr}`);
  const report = JSON.parse(result.stdout) as { end: { sum_received: { bits_per_second: number } } };
  return report.end.sum_received.bits_per_second / 1e9;
}

export const footprint: BenchSection = {
  name: 'footprint',
  title: 'Footprint: where idle memory and start-up time go',
  order: 5,
  async run(context: BenchContext): Promise<SectionResult> {
    const rounds = Math.max(context.rounds, 3);
    const probes = writeProbe(context.work);
    const artifact = join(context.root, 'dist/artifact/srvlink/srvlink');
    const haveArtifact = existsSync(artifact);
    const etcd = await startEtcd(context);
    const echo = await startEchoServer(context);
    const backend = echo.ports[0] as number;
    const bare = join(context.work, 'bare.cjs');
    writeFileSync(bare, "require('node:net').createServer(() => {}).listen(0, '127.0.0.1', () => console.error('listening'));\n");
    const config = join(context.work, 'run.json');
    writeFileSync(config, JSON.stringify({ 'log-level': 'info' }));

    const runArgs = ['run', '--domain', 'bench.skydns.local', '--discovery', 'static', '--map', '127.0.0.1:0=echo', '--backend', `echo=127.0.0.1:${backend}`, '--dns-listen', '127.0.0.1:0', '--upstream', '127.0.0.1:9'];
    let instance = 0;
    const registerArgs = (): string[] => ['register', '--etcd', etcd.url, '--domain', 'bench.skydns.local', '--service', 'svc', '--port', '1234', '--host', '127.0.0.1', '--instance', `f${++instance}`];
    const subjects: (() => Subject)[] = [
      () => ({ label: 'node, one listener', command: 'node', args: [bare], ready: 'listening' }),
      () => ({ label: '`srvlink run`, admin endpoint on (its default)', command: 'node', args: [context.srvlink, ...runArgs, '--admin', '127.0.0.1:0'], ready: '"srvlink run ready"' }),
      // The same without the bundle: srvlink's ES modules one by one (what dist/main.js runs when the bundle is older than itself).
      () => ({ label: '`srvlink run`, admin on, ES modules (dist/cli/entry.js)', command: 'node', args: [join(context.root, 'dist/cli/entry.js'), ...runArgs, '--admin', '127.0.0.1:0'], ready: '"srvlink run ready"' }),
      () => ({ label: '`srvlink run --admin none`', command: 'node', args: [context.srvlink, ...runArgs, '--admin', 'none'], ready: '"srvlink run ready"' }),
      () => ({ label: '`srvlink run --admin none --config FILE.json`', command: 'node', args: [context.srvlink, ...runArgs, '--admin', 'none', '--config', config], ready: '"srvlink run ready"' }),
      () => ({ label: '`srvlink register`', command: 'node', args: [context.srvlink, ...registerArgs()], ready: '"registered"' }),
      ...(haveArtifact
        ? [
            () => ({ label: 'artifact: `srvlink run`, admin on', command: artifact, args: [...runArgs, '--admin', '127.0.0.1:0'], ready: '"srvlink run ready"' }),
            () => ({ label: 'artifact: `srvlink register`', command: artifact, args: registerArgs(), ready: '"registered"' }),
          ]
        : []),
    ];
    const samples = new Map<string, Sample[]>();
    for (let round = 0; round < rounds; round++) {
      for (const make of subjects) {
        const subject = make();
        samples.set(subject.label, [...(samples.get(subject.label) ?? []), await sample(context, subject)]);
      }
      context.log(`footprint round ${round + 1}/${rounds} done`);
    }
    const s = (label: string, read: (x: Sample) => number): Summary => summarize((samples.get(label) ?? []).map(read));
    const labels = [...samples.keys()];
    const base = labels[0] as string;
    const overview = table(
      ['process', 'RSS MiB', '× bare node', 'CPU ms to ready', 'wall ms to ready', 'threads'],
      labels.map((label) => [
        label,
        formatSummary(s(label, (x) => x.rssMiB)),
        formatRatio(s(label, (x) => x.rssMiB), s(base, (x) => x.rssMiB)),
        formatSummary(s(label, (x) => x.cpuMs)),
        formatSummary(s(label, (x) => x.wallMs)),
        formatSummary(s(label, (x) => x.threads)),
      ]),
    );

    // Anatomy: one probed start each of node, run (admin on, off) and register.
    const anatomies: [string, Anatomy][] = [];
    for (const make of subjects.slice(0, 6)) {
      const subject = make();
      anatomies.push([subject.label, await anatomy(context, subject, probes, `anatomy-${anatomies.length}`)]);
    }
    const kib = (v: number | undefined): string => (v === undefined || !Number.isFinite(v) ? '–' : (v / 1024).toFixed(1));
    const smapsKinds = Object.keys(anatomies[0]?.[1].smaps ?? {});
    const spaceNames = ['new_space', 'old_space', 'code_space', 'large_object_space'];
    const anatomyTable = table(
      ['process', ...smapsKinds.map((k) => `${k} MiB`), ...spaceNames.map((n) => `V8 ${n} MiB`), 'builtin modules', 'JS files: srvlink / dependencies'],
      anatomies.map(([label, a]) => [
        label,
        ...smapsKinds.map((k) => kib(a.smaps[k])),
        ...spaceNames.map((n) => kib((a.spaces[n] ?? Number.NaN) / 1024)),
        String(a.builtins),
        a.files ? `${a.files.own} / ${a.files.dependencies}${a.files.packages.length > 0 ? ` (${a.files.packages.join(', ')})` : ''}` : '–',
      ]),
    );

    // V8 flags: RSS and start-up of `srvlink run --admin none`, and what each costs the data plane.
    const flagSets: (readonly string[])[] = [[], ['--max-semi-space-size=1'], ['--single-threaded-gc'], ['--v8-pool-size=1'], ['--max-lazy'], ['--no-opt'], ['--jitless']];
    const flagRows: string[][] = [];
    const flagValues = new Map<string, { rss: number[]; cpu: number[]; gbit: number[]; rate: number[] }>();
    const iperfPort = await freePort();
    const iperfServer = context.processes.spawn('iperf3 server', 'iperf3', ['-s', '--forceflush', '-B', '127.0.0.1', '-p', String(iperfPort)]);
    await listening(iperfPort, 'iperf3 server');
    for (let round = 0; round < rounds; round++) {
      for (const flags of flagSets) {
        const key = flags.join(' ') || '(none)';
        const entry = flagValues.get(key) ?? { rss: [], cpu: [], gbit: [], rate: [] };
        flagValues.set(key, entry);
        const subject: Subject = {
          label: `srvlink run ${key}`,
          command: 'node',
          nodeArgs: flags,
          args: [context.srvlink, 'run', '--domain', 'bench.skydns.local', '--discovery', 'static', '--map', '127.0.0.1:0=iperf', '--map', '127.0.0.1:0=echo', '--backend', `iperf=127.0.0.1:${iperfPort}`, '--backend', `echo=127.0.0.1:${backend}`, '--dns-listen', 'none', '--admin', 'none', '--max-conns', '20000'],
          ready: '"srvlink run ready"',
        };
        const { process: child, cpuMs } = await start(context, subject);
        const ready = JSON.parse(await child.waitForLine((l) => l.includes('"srvlink run ready"'), 'ready')) as { listeners: string[] };
        const ports = ready.listeners.map((l) => Number(l.slice(l.lastIndexOf(':', l.indexOf('=')) + 1, l.indexOf('='))));
        await sleep(SETTLE_MS);
        entry.rss.push(rssBytes(child.pid) / MIB);
        entry.cpu.push(cpuMs);
        entry.gbit.push(await iperf(context, ports[0] as number, context.quick ? 1 : 3));
        entry.rate.push((await connRate(context, [ports[1] as number], 8, context.quick ? 1 : 3)).rate);
        await child.stop();
      }
    }
    await iperfServer.stop();
    const none = flagValues.get('(none)');
    for (const [key, v] of flagValues) {
      const ratio = (a: number[], b: number[] | undefined): string => formatRatio(summarize(a), summarize(b ?? []));
      flagRows.push([
        key,
        formatSummary(summarize(v.rss)),
        ratio(v.rss, none?.rss),
        formatSummary(summarize(v.cpu)),
        formatSummary(summarize(v.gbit)),
        ratio(v.gbit, none?.gbit),
        formatSummary(summarize(v.rate)),
        ratio(v.rate, none?.rate),
      ]);
    }
    const flagTable = table(['V8 flags', 'RSS MiB', '× none', 'CPU ms to ready', 'iperf3 Gbit/s', '× none', 'connections/s (8 at a time)', '× none'], flagRows);

    const run = s(labels[1] as string, (x) => x.rssMiB);
    const ratios: Ratio[] = [
      {
        what: 'idle RSS, srvlink run (admin on) / bare node with one listener',
        srvlink: `${formatSummary(run)} MiB`,
        alternative: `node ${formatSummary(s(base, (x) => x.rssMiB))} MiB`,
        ratio: run.median / s(base, (x) => x.rssMiB).median,
        goal: '',
      },
      {
        what: 'CPU to ready, srvlink run (admin on) / bare node with one listener',
        srvlink: `${formatSummary(s(labels[1] as string, (x) => x.cpuMs))} ms`,
        alternative: `node ${formatSummary(s(base, (x) => x.cpuMs))} ms`,
        ratio: s(labels[1] as string, (x) => x.cpuMs).median / s(base, (x) => x.cpuMs).median,
        goal: '',
      },
    ];
    const markdown = [
      `Each process started fresh, ${rounds} rounds in turns; RSS (VmRSS) ${SETTLE_MS / 1000} s after its ready line; CPU is user + system time from /proc at the ready line (less noisy than wall time on a shared machine). srvlink with static discovery, one mapping and its stub on 127.0.0.1:0; \`srvlink register\` against one etcd member.${haveArtifact ? ' The artifact is dist/artifact/srvlink (one CommonJS bundle in a Node single executable, code cache on).' : ' No artifact was built (make image-artifact): its rows are left out.'}`,
      '',
      overview,
      '',
      'Anatomy, one probed start each (NODE_OPTIONS=--import a probe that reads the heap after the same settle time; a second start with a loader hook lists the files ESM loads, which sees the entry file of each CommonJS package but not what it requires). Resident MiB by kind of mapping (smaps); the executable is node itself: its text and read-only data (V8 snapshot, builtin modules\' sources and code cache, ICU) are file pages shared with every node process.',
      '',
      anatomyTable,
      '',
      `V8 flags for \`srvlink run\` (two static mappings, no stub, no admin), each ${rounds} rounds in turns: RSS after settling, CPU to ready, then the data plane with those flags: iperf3 through one mapping ${context.quick ? 1 : 3} s, conn-client (connect, 1 byte echoed, close, 8 at a time) through the other.`,
      '',
      flagTable,
      '',
      appendix(),
    ].join('\n');
    return { markdown, ratios };
  },
};

/** How to read the figures, kept beside them. */
function appendix(): string {
  return [
    'Reading it: bare node with one listener is the floor of any node process (its text and rodata pages are most of it). What srvlink adds is its JS (heap and bytecode, growing with the files loaded), the builtins it uses, TurboFan\'s code and zone memory for what gets hot while loading (`--no-opt` and `--jitless` show its share, and what they cost the data plane), and the threads\' malloc arenas. A flag is worth passing only if it saves memory without a cost in the data-plane columns.',
  ].join('\n');
}

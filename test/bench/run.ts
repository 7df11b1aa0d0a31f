/**
 * `make bench`: srvlink beside what a user would put there instead, in the
 * same run, on loopback. Each file of sections/ is one part (throughput,
 * connections, dns, ...); `make bench SECTIONS=dns,weight` runs some of
 * them. Every part measures a few rounds (ROUNDS, default 3) and reports
 * medians with their range; the ratios against the alternative are taken
 * from this run only. The results replace the parts' blocks in
 * test/bench/RESULTS.md (RESULTS=FILE to write elsewhere), so a part can be
 * run again alone; the summary at the top is rebuilt from every block.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { goalMet, table, type BenchContext, type BenchSection, type Ratio } from './lib/bench-section.js';
import { ProcessGroup } from './lib/process-group.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const resultsFile = resolve(process.env.RESULTS ?? join(root, 'test/bench/RESULTS.md'));
const rounds = Math.max(1, Number(process.env.ROUNDS ?? 3));
const quick = process.env.QUICK === '1';
const wanted = (process.env.SECTIONS ?? '').split(',').map((s) => s.trim()).filter(Boolean);

function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

function output(command: string, args: readonly string[]): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 }).trim();
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    return `${e.stdout ?? ''}${e.stderr ?? ''}`.trim();
  }
}

async function loadSections(): Promise<BenchSection[]> {
  const dir = join(here, 'sections');
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  const sections: BenchSection[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith(ext)).sort()) {
    const module = (await import(pathToFileURL(join(dir, file)).href)) as Record<string, unknown>;
    for (const value of Object.values(module)) {
      const candidate = value as Partial<BenchSection> | null;
      if (candidate && typeof candidate === 'object' && typeof candidate.name === 'string' && typeof candidate.run === 'function') {
        sections.push(candidate as BenchSection);
      }
    }
  }
  return sections.sort((a, b) => a.order - b.order);
}

const binaries = new Map<string, Promise<string>>();
const binDir = mkdtempSync(join(tmpdir(), 'srvlink-bench-bin-'));
process.once('exit', () => rmSync(binDir, { recursive: true, force: true }));

function binary(name: string): Promise<string> {
  let built = binaries.get(name);
  if (!built) {
    built = (async () => {
      const out = join(binDir, name);
      execFileSync('cc', ['-O2', '-Wall', '-o', out, join(root, 'test/bench', `${name}.c`)], { stdio: 'inherit' });
      return out;
    })();
    binaries.set(name, built);
  }
  return built;
}

const helps = new Map<string, string>();
const srvlink = join(root, 'dist/main.js');
function help(command: string): Promise<string> {
  let text = helps.get(command);
  if (text === undefined) {
    text = output('node', [srvlink, command, '--help']);
    helps.set(command, text);
  }
  return Promise.resolve(text);
}

function machine(): string {
  const cpu = cpus();
  const tools: [string, string, string[]][] = [
    ['HAProxy', 'haproxy', ['-v']],
    ['iperf3', 'iperf3', ['-v']],
    ['socat', 'socat', ['-V']],
    ['dnsperf', 'dnsperf', ['-h']],
    ['unbound', 'unbound', ['-V']],
    ['dnsmasq', 'dnsmasq', ['-v']],
    ['etcd', 'etcd', ['--version']],
  ];
  const versions = tools.map(([label, command, args]) => {
    const text = output(command, args);
    const version = /(?:version|Version|v)\s*:?\s*(\d+\.\d+(?:\.\d+)?)/.exec(text)?.[1] ?? /(\d+\.\d+(?:\.\d+)?)/.exec(text)?.[1] ?? '?';
    return `${label} ${version}`;
  });
  return [
    `Machine: ${cpu.length} × ${cpu[0]?.model.trim() ?? 'CPU'}, Linux ${release()}, Node ${process.version}; ${versions.join(', ')} (Debian packages).`,
    'The machine is shared and noisy: other work (test suites, builds) runs beside the bench, often with a load average far above the number of cores (each section says its own), so rates (Gbit/s, connections/s, qps) are the share of the CPUs each process got in its turn and move a lot from round to round; the CPU a process spends per unit of work (CPU-s per GB, µs per connection or query) is the steadier figure.',
    'Only ratios within one run count: every alternative is measured in the same section, in turns, round after round.',
  ].join('\n');
}

interface Block {
  readonly name: string;
  readonly text: string;
}

function readBlocks(): Block[] {
  if (!existsSync(resultsFile)) return [];
  const text = readFileSync(resultsFile, 'utf8');
  const blocks: Block[] = [];
  for (const match of text.matchAll(/<!-- section:([\w-]+) -->\n([\s\S]*?)<!-- \/section:\1 -->/g)) {
    blocks.push({ name: match[1] as string, text: match[2] as string });
  }
  return blocks;
}

function ratiosOf(block: Block): Ratio[] {
  const match = /<!-- ratios (.*) -->/.exec(block.text);
  if (!match) return [];
  try {
    return JSON.parse(match[1] as string) as Ratio[];
  } catch {
    return [];
  }
}

function summaryOf(blocks: readonly Block[]): string {
  const rows = blocks.flatMap((block) =>
    ratiosOf(block).map((r) => {
      const met = r.met ?? goalMet(r.ratio, r.goal);
      const ratio = Number.isFinite(r.ratio) ? `${r.ratio.toFixed(r.ratio >= 10 ? 1 : 2)}×` : '–';
      return [block.name, r.what, r.srvlink, r.alternative, ratio, r.goal || '–', met === undefined ? '–' : met ? 'met' : '**behind**'];
    }),
  );
  if (rows.length === 0) return '';
  return table(['section', 'what', 'srvlink', 'alternative (same run)', 'ratio', 'goal', ''], rows);
}

function write(sections: readonly BenchSection[], fresh: readonly Block[]): string {
  const previous = readBlocks();
  const byName = new Map(previous.map((b) => [b.name, b]));
  for (const block of fresh) byName.set(block.name, block);
  const known = sections.map((s) => s.name);
  const blocks = [...known.filter((n) => byName.has(n)).map((n) => byName.get(n) as Block), ...[...byName.values()].filter((b) => !known.includes(b.name))];
  const summary = summaryOf(blocks);
  const text = [
    '# srvlink benchmarks',
    '',
    'Written by `make bench` (test/bench/run.ts); `make bench SECTIONS=throughput,dns` runs some sections again and replaces only their blocks. Everything runs on loopback; each section starts its alternatives itself from the Debian packages the Makefile installs (BENCH_TOOLS).',
    '',
    machine(),
    '',
    '## Summary: srvlink against the alternative, same run',
    '',
    'Ratios of medians, srvlink / alternative (for a cost, lower is better: the goal says ≤). "behind" marks a goal not met in that run; each section says why where it can.',
    '',
    summary,
    '',
    ...blocks.map((b) => `<!-- section:${b.name} -->\n${b.text}<!-- /section:${b.name} -->\n`),
  ].join('\n');
  mkdirSync(dirname(resultsFile), { recursive: true });
  writeFileSync(resultsFile, text);
  return summary;
}

function commit(): string {
  const head = output('git', ['-C', root, 'rev-parse', '--short', 'HEAD']);
  const dirty = output('git', ['-C', root, 'status', '--porcelain', '--', 'src', 'native']) !== '';
  return `${head}${dirty ? ' (with uncommitted changes)' : ''}`;
}

async function main(): Promise<void> {
  if (!existsSync(srvlink)) throw new Error(`${srvlink} is missing: run make build (make bench does)`);
  const sections = await loadSections();
  const unknown = wanted.filter((name) => !sections.some((s) => s.name === name));
  if (unknown.length > 0) throw new Error(`unknown section ${unknown.map((n) => `"${n}"`).join(', ')}; there are: ${sections.map((s) => s.name).join(', ')}`);
  const chosen = wanted.length > 0 ? sections.filter((s) => wanted.includes(s.name)) : sections;
  const fresh: Block[] = [];
  let failed = 0;
  for (const section of chosen) {
    const work = mkdtempSync(join(tmpdir(), `srvlink-bench-${section.name}-`));
    const processes = new ProcessGroup();
    const context: BenchContext = { rounds, quick, root, srvlink, work, processes, log, binary, help };
    const load = loadavg()[0] ?? 0;
    const started = new Date();
    log(`section ${section.name}: ${section.title}`);
    let body: string;
    let ratios: readonly Ratio[] = [];
    try {
      const result = await section.run(context);
      body = result.markdown;
      ratios = result.ratios;
    } catch (err) {
      failed++;
      body = `**The section failed:** ${(err as Error).message.split('\n')[0]}`;
      log(`section ${section.name} failed: ${(err as Error).stack ?? String(err)}`);
    } finally {
      await processes.stopAll();
      rmSync(work, { recursive: true, force: true });
    }
    const seconds = Math.round((Date.now() - started.getTime()) / 1000);
    const heading = `## ${section.order}. ${section.title}`;
    const stamp = `_${started.toISOString().slice(0, 16).replace('T', ' ')} UTC, commit ${commit()}, ${rounds} rounds${quick ? ' (QUICK: not to quote)' : ''}, ${seconds} s; load average ${load.toFixed(1)} before, ${(loadavg()[0] ?? 0).toFixed(1)} after._`;
    const text = `${heading}\n\n${stamp}\n\n${body}\n\n<!-- ratios ${JSON.stringify(ratios)} -->\n`;
    process.stdout.write(`\n${heading}\n\n${stamp}\n\n${body}\n`);
    fresh.push({ name: section.name, text });
    // Written after each section: an interrupted run keeps what it measured.
    write(sections, fresh);
  }
  const summary = write(sections, fresh);
  process.stdout.write(`\n## Summary (every section of ${resultsFile})\n\n${summary}\n`);
  if (failed > 0) process.exitCode = 1;
}

main().catch((err: unknown) => {
  log((err as Error).stack ?? String(err));
  process.exit(1);
});

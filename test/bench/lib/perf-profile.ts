/**
 * Where a process's CPU goes, kernel included: `perf record` on every
 * thread of it while some load runs, then the symbols with the most self
 * time. node --cpu-prof sees JavaScript's thread only; a native data plane
 * moves its bytes on threads of its own, and mostly in the kernel.
 */
import { join } from 'node:path';
import type { BenchContext } from './bench-section.js';

/** Samples per second and thread: enough for a few seconds of load, small files. */
const FREQUENCY = 499;

/**
 * "31% [k] copy_page", ... for `pid` while `during` runs, or one sentence
 * saying why there is none (no perf, no samples: a VM without a usable
 * event). Never throws for want of perf.
 */
export async function perfTopSymbols(context: BenchContext, pid: number, during: () => Promise<void>, count = 8): Promise<string> {
  const file = join(context.work, `perf-${pid}-${Date.now()}.data`);
  const recorder = context.processes.spawn('perf record', 'perf', ['record', '-F', String(FREQUENCY), '-p', String(pid), '-o', file, '--quiet']);
  let stopping = false;
  let failed = false;
  void recorder.exited.then(() => (failed = !stopping));
  // perf needs a moment to attach to every thread before the load starts.
  await new Promise((resolve) => setTimeout(resolve, 300));
  try {
    await during();
  } finally {
    stopping = true;
    await recorder.stop(10_000);
  }
  if (failed) return 'no perf profile (perf record ended early: is perf usable here?)';
  const report = await context.processes.run('perf report', 'perf', ['report', '-i', file, '--no-children', '--sort', 'sym', '--stdio', '-q'], { timeoutMs: 60_000 });
  const lines = report.stdout
    .split('\n')
    .map((line) => /^\s*([\d.]+)%\s+(\[[k.]\])\s+(\S+)/.exec(line))
    .filter((m): m is RegExpExecArray => m !== null)
    .slice(0, count)
    .map((m) => `${Number(m[1]).toFixed(0)}% ${m[2] === '[k]' ? '[kernel] ' : ''}${m[3]}`);
  return lines.length > 0 ? lines.join('; ') : `no perf samples (${report.stderr.trim().split('\n')[0] ?? 'perf report printed nothing'})`;
}

/**
 * Where a process's CPU goes, kernel included: `perf record` on every
 * thread of it while some load runs, then the symbols with the most self
 * time. node --cpu-prof sees JavaScript's thread only; a native data plane
 * moves its bytes on threads of its own, and mostly in the kernel.
 */
import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { Socket } from 'node:net';
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
  const base = join(context.work, `perf-${pid}-${Date.now()}`);
  const file = `${base}.data`;
  // perf opens its events on every thread first, disabled (-D -1), and says "ack" once an "enable" on its control FIFO has turned them on.
  const control = `${base}.ctl`;
  const ack = `${base}.ack`;
  await context.processes.run('mkfifo', 'mkfifo', [control, ack], { timeoutMs: 10_000 });
  // Read and write on each (Linux opens a FIFO so without waiting for the other end).
  const controlFd = openSync(control, constants.O_RDWR | constants.O_NONBLOCK);
  const ackFd = openSync(ack, constants.O_RDWR | constants.O_NONBLOCK);
  const acked = new Promise<boolean>((resolve) => {
    // A pipe handle of the event loop: reads wait for data (a read of the non-blocking descriptor through fs would fail with EAGAIN).
    const reader = new Socket({ fd: ackFd, readable: true, writable: false });
    const timer = setTimeout(() => finish(false), 10_000);
    let seen = '';
    const finish = (ok: boolean): void => {
      clearTimeout(timer);
      reader.destroy();
      resolve(ok);
    };
    reader.on('data', (chunk) => {
      seen += chunk.toString();
      if (seen.includes('ack')) finish(true);
    });
    reader.on('error', () => finish(false));
  });
  const recorder = context.processes.spawn('perf record', 'perf', ['record', '-F', String(FREQUENCY), '-p', String(pid), '-o', file, '--quiet', '-D', '-1', `--control=fifo:${control},${ack}`]);
  let stopping = false;
  let failed = false;
  void recorder.exited.then(() => (failed = !stopping));
  writeSync(controlFd, 'enable\n');
  const attached = await acked;
  // The reader closed the ack FIFO's descriptor with its handle.
  closeSync(controlFd);
  if (!attached) {
    stopping = true;
    await recorder.stop(10_000);
    return 'no perf profile (perf record did not start sampling: is perf usable here?)';
  }
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

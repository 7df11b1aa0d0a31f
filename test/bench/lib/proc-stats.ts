import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/PID/stat (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100;

/**
 * CPU seconds process `pid` has used so far, every thread, user plus
 * system, with its waited-for children (socat forks one per connection):
 * utime + stime + cutime + cstime of /proc/PID/stat.
 */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The fields after the command name (which may hold spaces and parentheses): utime is field 14.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) / TICKS_PER_SECOND;
}

/** Resident memory of process `pid`, bytes (VmRSS of /proc/PID/status). */
export function rssBytes(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
}

/** CPU seconds (user + system) of each thread of process `pid` now, by thread id; a thread gone meanwhile is left out. */
export function threadCpuSeconds(pid: number): Map<string, number> {
  const threads = new Map<string, number>();
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return threads;
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      threads.set(tid, (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND);
    } catch {
      // Ended between the listing and the read.
    }
  }
  return threads;
}

/**
 * The busiest threads of `pid` while `during` runs, as shares of one CPU
 * ("92%, 3%"), at most `count`, the busiest first; threads under 1% left out.
 */
export async function threadShares(pid: number, during: () => Promise<void>, count = 3): Promise<string> {
  const before = threadCpuSeconds(pid);
  const started = performance.now();
  await during();
  const seconds = (performance.now() - started) / 1000;
  const shares = [...threadCpuSeconds(pid)]
    .map(([tid, cpu]) => (cpu - (before.get(tid) ?? 0)) / seconds)
    .filter((share) => share >= 0.01)
    .sort((a, b) => b - a)
    .slice(0, count);
  return shares.length > 0 ? shares.map((share) => `${Math.round(share * 100)}%`).join(', ') : 'none busy';
}

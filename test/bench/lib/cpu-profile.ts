import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly children?: readonly number[];
}

interface Profile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  /** Microseconds between samples, the first from startTime. */
  readonly timeDeltas: readonly number[];
  readonly endTime: number;
}

/** Which samples count: those taken between `fromMs` and `toMs` before the profile ended (the process exited). */
export interface ProfileWindow {
  readonly fromMs: number;
  readonly toMs: number;
}

/**
 * The frames with the most self time in the `.cpuprofile` files `node
 * --cpu-prof` wrote into `dir`: "34% writev (native)", "12% onread
 * src/proxy/x.js:40"; idle and program time left out of the shares, and
 * with `window` only the samples of that time (the load, not start-up).
 */
export function topFrames(dir: string, root: string, window?: ProfileWindow, count = 6): string[] {
  const self = new Map<string, number>();
  let total = 0;
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))) {
    const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Profile;
    const byId = new Map(profile.nodes.map((node) => [node.id, node]));
    let at = profile.endTime;
    // Walk back from the end: the sample times are the running sum of the deltas.
    const times = new Array<number>(profile.samples.length);
    for (let i = profile.samples.length - 1; i >= 0; i--) {
      times[i] = (profile.endTime - at) / 1000;
      at -= profile.timeDeltas[i + 1] ?? 0;
    }
    for (const [i, id] of profile.samples.entries()) {
      const beforeEnd = times[i] as number;
      if (window && (beforeEnd > window.fromMs || beforeEnd < window.toMs)) continue;
      const frame = byId.get(id)?.callFrame;
      if (!frame || frame.functionName === '(idle)' || frame.functionName === '(program)') continue;
      const path = frame.url.replace(/^file:\/\//, '');
      const file = path.includes('node_modules/') ? path.slice(path.lastIndexOf('node_modules/')) : relative(root, path);
      const where = frame.url ? ` ${file}:${frame.lineNumber + 1}` : '';
      const key = `${frame.functionName || '(anonymous)'}${where}`;
      self.set(key, (self.get(key) ?? 0) + 1);
      total++;
    }
  }
  return [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([key, n]) => `${((100 * n) / total).toFixed(0)}% ${key}`);
}

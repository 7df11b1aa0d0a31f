/**
 * What one scrape of the admin endpoint costs with 100 mappings of 10
 * backends each: admin-scrape.bench.ts, run by vitest's bench mode (it
 * builds the forwarders in-process from src/), its table kept as vitest
 * prints it.
 */
import { join } from 'node:path';
import { table, type BenchContext, type BenchSection, type SectionResult } from '../lib/bench-section.js';

export const admin: BenchSection = {
  name: 'admin',
  title: 'Admin endpoint: one scrape of 100 mappings × 10 backends',
  order: 7,
  async run(context: BenchContext): Promise<SectionResult> {
    const result = await context.processes.run(
      'vitest bench',
      join(context.root, 'node_modules/.bin/vitest'),
      ['bench', '--run', 'test/bench/admin-scrape.bench.ts'],
      { cwd: context.root, env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' }, timeoutMs: 300_000 },
    );
    const lines = result.stdout.split('\n');
    const rows = lines
      .filter((line) => /^\s+·\s/.test(line))
      .map((line) => {
        // "· NAME   hz min max mean p75 p99 p995 p999 rme samples": the name may hold spaces, the figures do not.
        const cells = line.replace(/^\s+·\s+/, '').trim().split(/\s{2,}|\s(?=[\d±.]+(\s|$))/).filter(Boolean);
        const figures = cells.slice(-10);
        return [cells.slice(0, cells.length - 10).join(' '), figures[0] ?? '', figures[3] ?? '', figures[5] ?? '', figures[9] ?? ''];
      });
    if (result.status !== 0 || rows.length === 0) throw new Error(`vitest bench failed (${result.status}): ${`${result.stdout}\n${result.stderr}`.replace(/\s+/g, ' ').slice(-600)}`);
    const about = /admin scrape bench: (.*)/.exec(`${result.stdout}\n${result.stderr}`)?.[1] ?? '100 mappings × 10 backends';
    return {
      markdown: [`In-process (vitest bench, its own rounds): ${about.trim()}.`, '', table(['what', 'per s', 'mean ms', 'p99 ms', 'samples'], rows)].join('\n'),
      ratios: [],
    };
  },
};

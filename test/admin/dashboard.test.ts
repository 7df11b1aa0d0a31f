import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AdminMetrics } from '../../src/admin/admin-metrics.js';
import { tempDir } from '../helpers/temp-dir.js';
import { backendSnapshot, fullSnapshot, mappingSnapshot } from './snapshot-fixtures.js';

interface Panel {
  title: string;
  type: string;
  targets?: { expr: string }[];
}

const dashboard = JSON.parse(readFileSync(new URL('../../docs/grafana-dashboard.json', import.meta.url), 'utf8')) as { panels: Panel[] };
const expressions = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));

/** Every sample name srvlink exports, from a scrape where every part is present and every histogram observed. */
async function exportedNames(): Promise<Set<string>> {
  const metrics = new AdminMetrics();
  metrics.observeDial('_zk._tcp.env1.skydns.local.', 1);
  metrics.observeExchange('cluster', '10.0.0.2:53', 'timeout', 5);
  metrics.observeDnsReply('stub', 'A', 0);
  const page = await metrics.render({ snapshot: () => Promise.resolve(fullSnapshot([mappingSnapshot('_zk._tcp.env1.skydns.local.', [backendSnapshot('10.0.0.1:2181')])])) });
  return new Set(page.body.split('\n').flatMap((line) => (/^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line.startsWith('#') ? '' : line)?.[0] ?? [])));
}

/** Metric names in a PromQL expression: identifiers that look like ours or prom-client's (functions and labels do not). */
function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\b((?:srvlink|process|nodejs)_[a-zA-Z0-9_]+)\b/g)].map((m) => m[1] as string);
}

describe('docs/grafana-dashboard.json', () => {
  it('has the panels an operator wants first', () => {
    const titles = dashboard.panels.map((p) => p.title.toLowerCase()).join('\n');
    for (const topic of ['connections accepted', 'failed connections', 'dial latency', 'ejected', 'rcode', 'cache hit rate', 'registration state']) expect(titles).toContain(topic);
  });

  it('names in every expression only metrics srvlink exports', async () => {
    const exported = await exportedNames();
    expect(expressions.length).toBeGreaterThan(20);
    const unknown = expressions.flatMap(({ panel, expr }) => {
      const names = metricNames(expr);
      if (names.length === 0) return [`${panel}: no metric in "${expr}"`];
      return names.filter((name) => !exported.has(name)).map((name) => `${panel}: ${name}`);
    });
    expect(unknown).toEqual([]);
  });

  it('holds only expressions Prometheus parses (promtool check rules)', async () => {
    // Grafana's variables become what they stand for, so that Prometheus's own parser can read each one.
    const rules = expressions.map(({ expr }, i) => ({
      record: `srvlink:dashboard_expr_${i}`,
      expr: expr.replaceAll('$__rate_interval', '1m').replaceAll('$mapping', '.*').replaceAll('$instance', '.*'),
    }));
    const file = join(tempDir(), 'rules.json');
    // JSON is YAML: one group with every expression as a recording rule.
    writeFileSync(file, JSON.stringify({ groups: [{ name: 'dashboard', rules }] }));
    const result = await new Promise<{ code: number; out: string }>((resolve) =>
      execFile('promtool', ['check', 'rules', file], (err, stdout, stderr) => resolve({ code: err ? 1 : 0, out: stdout + stderr })),
    );
    expect(result.out).toContain(`SUCCESS: ${rules.length} rules found`);
    expect(result.code).toBe(0);
  });
});

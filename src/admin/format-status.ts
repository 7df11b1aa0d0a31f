import type { AdminSnapshot, BackendSnapshot, ChildSnapshot } from './admin-source.js';

/**
 * `/status` as `srvlink status` prints it: one block per mapping with its
 * backends in failover order (priority, then weight) and their state, then
 * the stub, the zone, registrations and the child. Pure; `now` is for the
 * "ejected for" column.
 */
export function formatStatus(status: AdminSnapshot, now = Date.now()): string {
  const lines: string[] = [`srvlink ${status.command}, pid ${status.pid}, up ${duration(status.uptime)}`];
  for (const m of status.mappings) {
    const set = m.set;
    const setText = [m.discovery, set.status, `${m.backends.length} backend${m.backends.length === 1 ? '' : 's'}`];
    if (set.age !== undefined) setText.push(`age ${duration(set.age)}`);
    if (set.stale) setText.push('STALE');
    lines.push('', `mapping ${m.address} -> ${m.srvName}${m.bound ? '' : ' (NOT BOUND)'} [${setText.join(', ')}]`);
    if (!set.usable) lines.push(`  no usable backend set: ${set.error ?? set.status}`);
    else if (set.error !== undefined) lines.push(`  refreshing fails: ${set.error}`);
    const c = m.connections;
    lines.push(
      `  connections: ${c.accepted} accepted, ${c.active} active, ${c.failed} failed, ${c.rejected} rejected, ${c.failovers} failovers, ${c.ejections} ejections; bytes ${c.bytesIn} in, ${c.bytesOut} out`,
    );
    if (m.backends.length > 0) lines.push(...table(['#', 'BACKEND', 'TARGET', 'PRIO', 'WEIGHT', 'STATE', 'ACTIVE', 'CONNS', 'FAILS'], m.backends.map((b, i) => backendRow(b, i, now))));
  }
  const stub = status.stub;
  if (stub) {
    lines.push(
      '',
      `dns stub ${stub.address}${stub.answering ? '' : ' (NOT ANSWERING)'}: ${stub.cacheEntries} cache entries, hit rate ${Math.round(stub.hitRate * 100)}% (${stub.cacheHits} hits, ${stub.cacheMisses} misses, ${stub.staleServed} stale)`,
    );
    for (const u of stub.upstreams) lines.push(`  upstream ${u.address} (${u.role}): ${u.state}, ${u.exchanges} exchanges, ${u.failures} failed${u.lastOutcome ? `, last ${u.lastOutcome}` : ''}`);
  }
  for (const l of status.dnsListeners.filter((l) => l.name !== 'stub')) {
    lines.push('', `dns ${l.name} ${l.address}${l.bound ? '' : ' (NOT BOUND)'}: ${l.queries} queries, ${l.formerr + l.badFrames} malformed, ${l.dropped} dropped`);
  }
  if (status.zone) {
    const z = status.zone;
    lines.push('', `etcd zone: ${z.loaded ? `revision ${z.revision}, ${z.records} records, ${z.malformed} malformed` : 'not loaded yet'}, ${z.connected ? 'connected' : 'DISCONNECTED'}`);
  }
  for (const r of status.registrations) {
    const check = r.lastCheck ? `, last check ${r.lastCheck.passed ? 'passed' : 'FAILED'} at ${r.lastCheck.at}` : '';
    lines.push('', `registration ${r.key}: ${r.state}${r.lease ? `, lease ${r.lease}` : ''}, ${r.renewals} renewals${check}`);
  }
  if (status.child) {
    lines.push('', childLine(status.child));
  }
  return `${lines.join('\n')}\n`;
}

/** `child pid 42, running, up 5.2s: java -jar app.jar`; once it ended, how. */
function childLine(child: ChildSnapshot): string {
  const pid = child.pid === undefined ? 'child' : `child pid ${child.pid}`;
  const command = child.command.length > 0 ? `: ${child.command.join(' ')}` : '';
  if (child.state === 'starting') return `${pid}, starting (after the listeners)${command}`;
  if (child.state !== 'exited' || !child.exit) return `${pid}, ${child.state}, up ${duration(child.uptime)}${command}`;
  const how = child.exit.signal !== null ? `killed by ${child.exit.signal}` : `exited with code ${child.exit.code ?? '?'}`;
  return `${pid}, EXITED after ${duration(child.uptime)}: ${how} (srvlink exits ${child.exit.status} once drained)${command}`;
}

function backendRow(b: BackendSnapshot, index: number, now: number): string[] {
  let state = 'up';
  if (b.ejectedUntil !== undefined) state = `EJECTED for ${duration(Math.max(0, (Date.parse(b.ejectedUntil) - now) / 1000))}`;
  else if (b.failures > 0) state = `${b.failures} failure${b.failures === 1 ? '' : 's'}`;
  return [String(index + 1), b.address, b.target, String(b.priority), String(b.weight), state, String(b.active), String(b.connections), String(b.connectFailures)];
}

/** Columns padded to their widest cell, two spaces apart, indented. */
function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  return [header, ...rows].map((row) => `  ${row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd()}`);
}

/** `1h 2m`, `3m 4s`, `5.2s`. */
function duration(seconds: number): string {
  if (seconds < 10) return `${seconds.toFixed(1)}s`;
  const s = Math.floor(seconds);
  if (s < 3600) return `${Math.floor(s / 60) > 0 ? `${Math.floor(s / 60)}m ` : ''}${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchContext } from './bench-section.js';
import { topFrames } from './cpu-profile.js';
import type { OwnedProcess } from './process-group.js';

export interface SrvlinkListener {
  readonly port: number;
  readonly address: string;
  readonly srvName: string;
}

export interface RunningSrvlink {
  readonly process: OwnedProcess;
  /** The mappings' listeners, in the order of the config's `map`. */
  readonly listeners: readonly SrvlinkListener[];
  /** The DNS stub's port on 127.0.0.1, when it runs. */
  readonly dnsPort: number | undefined;
  /** Milliseconds from spawn to the "ready" log line. */
  readonly startMs: number;
}

let configs = 0;

/**
 * `srvlink run --config FILE` with `config` written as JSON (keys are the
 * long flags), on loopback: the stub off unless the config sets
 * `dns-listen`, the admin endpoint off. Resolves once it logs that it is
 * ready, with the ports its mappings got (port 0 in `map`).
 */
export async function startSrvlinkRun(
  context: BenchContext,
  name: string,
  config: Record<string, unknown>,
  options: { nodeArgs?: readonly string[]; timeoutMs?: number } = {},
): Promise<RunningSrvlink> {
  const file = join(context.work, `srvlink-${++configs}.json`);
  writeFileSync(file, JSON.stringify({ 'dns-listen': 'none', admin: 'none', 'log-level': 'info', ...config }));
  const started = performance.now();
  const process = context.processes.spawn(name, 'node', [...(options.nodeArgs ?? []), context.srvlink, 'run', '--config', file]);
  const ready = await process.waitForLine((line) => line.includes('"srvlink run ready"'), 'ready line', options.timeoutMs ?? 120_000);
  const startMs = performance.now() - started;
  const listeners = (JSON.parse(ready) as { listeners: string[] }).listeners.map((entry) => {
    const [address = '', srvName = ''] = entry.split('=');
    return { address, srvName, port: Number(address.slice(address.lastIndexOf(':') + 1)) };
  });
  let dnsPort: number | undefined;
  if (config['dns-listen'] !== undefined && config['dns-listen'] !== 'none') {
    const line = await process.waitForLine((l) => l.includes('"dns stub listening"'), 'stub line', 5000);
    const address = (JSON.parse(line) as { address: string }).address;
    dnsPort = Number(address.slice(address.lastIndexOf(':') + 1));
  }
  return { process, listeners, dnsPort, startMs };
}

/** The data planes `srvlink run` offers (`--data-plane js|native`), or none when it has no such flag (one plane). */
export async function dataPlanes(context: BenchContext): Promise<readonly string[]> {
  const help = await context.help('run');
  return /--data-plane\b/.test(help) ? ['native', 'js'] : [];
}

/**
 * Where srvlink's time goes under `load`: a separate `srvlink run` with
 * `config` under `node --cpu-prof` (not the one measured, so the profiler
 * costs the figures nothing), stopped after the load, and the frames with
 * the most self time.
 */
export function profileSrvlinkRun(
  context: BenchContext,
  name: string,
  config: Record<string, unknown>,
  load: (srvlink: RunningSrvlink) => Promise<void>,
): Promise<string> {
  return profileSrvlink(context, name, (nodeArgs) => startSrvlinkRun(context, `${name} (profiled)`, config, { nodeArgs }), load);
}

/** The same for any srvlink command: `start` spawns it with the node arguments given. */
export async function profileSrvlink<T extends { readonly process: OwnedProcess }>(
  context: BenchContext,
  name: string,
  start: (nodeArgs: readonly string[]) => Promise<T>,
  load: (started: T) => Promise<void>,
): Promise<string> {
  const dir = join(context.work, `profile-${++configs}`);
  mkdirSync(dir);
  const started = await start(['--cpu-prof', `--cpu-prof-dir=${dir}`]);
  const from = performance.now();
  await load(started);
  const to = performance.now();
  // SIGTERM lets srvlink stop, and node write the profile on the way out.
  await started.process.stop(15_000);
  const exit = performance.now();
  const frames = topFrames(dir, context.root, { fromMs: exit - from, toMs: exit - to });
  return frames.length > 0 ? `Profile of ${name} under that load (self time, node --cpu-prof): ${frames.join('; ')}.` : `No profile of ${name} was written.`;
}

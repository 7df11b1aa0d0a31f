import { createSocket } from 'node:dgram';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as dnsPacket from 'dns-packet';
import type { BenchContext } from './bench-section.js';
import { freePort } from './free-port.js';
import type { OwnedProcess } from './process-group.js';
import { DNSMASQ, dnsmasqArgs, type DnsmasqOptions } from '../../helpers/dnsmasq-args.js';

// Debian installs them in /usr/sbin, which is not on every user's PATH.
const UNBOUND = existsSync('/usr/sbin/unbound') ? '/usr/sbin/unbound' : 'unbound';

export interface RunningDns {
  readonly process: OwnedProcess;
  readonly port: number;
}

/** Whether a DNS server on 127.0.0.1:`port` answers a UDP query (any rcode) within `timeoutMs`. */
export async function answers(port: number, timeoutMs = 300): Promise<boolean> {
  const socket = createSocket('udp4');
  try {
    const query = dnsPacket.encode({ type: 'query', id: 4242, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: 'ready.check.invalid' }] });
    const reply = new Promise<boolean>((resolve) => {
      socket.once('message', () => resolve(true));
      setTimeout(() => resolve(false), timeoutMs);
    });
    socket.send(query, port, '127.0.0.1');
    return await reply;
  } finally {
    socket.close();
  }
}

/** Resolves once the server answers, polling; rejects when it exits first or after `timeoutMs`. */
export async function untilAnswering(process: OwnedProcess, port: number, timeoutMs = 30_000): Promise<void> {
  let dead = false;
  void process.exited.then(() => (dead = true));
  const deadline = Date.now() + timeoutMs;
  while (!dead && Date.now() < deadline) {
    if (await answers(port)) return;
    await sleep(20);
  }
  throw new Error(`${process.name} does not answer on 127.0.0.1:${port}: ${process.tail(5)}`);
}

/** Start a DNS server on a free port (`args(port)`), again on another port when it fails to start. */
export async function startOnFreePort(context: BenchContext, name: string, command: string, args: (port: number) => string[]): Promise<RunningDns> {
  let last: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const process = context.processes.spawn(name, command, args(port));
    try {
      await untilAnswering(process, port);
      return { process, port };
    } catch (err) {
      last = err;
      await process.stop();
    }
  }
  throw last;
}

/**
 * dnsmasq on 127.0.0.1 with only the records and settings of `options` (the
 * test helpers' arguments: no resolv.conf, no hosts file, in the foreground),
 * no zone answered locally unless `options.localZones` names it.
 */
export function startDnsmasq(context: BenchContext, name: string, options: Omit<DnsmasqOptions, 'listen'>): Promise<RunningDns> {
  return startOnFreePort(context, name, DNSMASQ, (port) => dnsmasqArgs({ host: '127.0.0.1', port }, { localZones: [], ...options }, ['--interface=lo']));
}

/**
 * Unbound on 127.0.0.1, one thread (as dnsmasq and srvlink's event loop),
 * forwarding everything to 127.0.0.1:`upstream` and caching the answers.
 */
export function startUnbound(context: BenchContext, name: string, upstream: number): Promise<RunningDns> {
  return startOnFreePort(context, name, UNBOUND, (port) => {
    const file = join(context.work, `unbound-${port}.conf`);
    writeFileSync(
      file,
      [
        'server:',
        `  interface: 127.0.0.1@${port}`,
        `  port: ${port}`,
        '  do-daemonize: no',
        '  username: ""',
        '  chroot: ""',
        `  directory: "${context.work}"`,
        '  pidfile: ""',
        '  use-syslog: no',
        '  logfile: ""',
        '  verbosity: 0',
        '  do-ip6: no',
        '  num-threads: 1',
        '  access-control: 127.0.0.0/8 allow',
        '  do-not-query-localhost: no',
        '  module-config: "iterator"',
        '  qname-minimisation: no',
        '  msg-cache-size: 64m',
        '  rrset-cache-size: 64m',
        'forward-zone:',
        '  name: "."',
        `  forward-addr: 127.0.0.1@${upstream}`,
        '',
      ].join('\n'),
    );
    return ['-d', '-c', file];
  });
}

export interface DnsperfResult {
  readonly qps: number;
  readonly lost: number;
  readonly completed: number;
  /** Per-query latency percentiles (ms), from a run with -v; NaN otherwise. */
  readonly p50Ms: number;
  readonly p99Ms: number;
}

/**
 * dnsperf against 127.0.0.1:`port` with the queries of `queryFile` for
 * `seconds`, 4 clients as fast as it can (or at `rate` qps); `latencies`
 * asks for every query's latency (-v) to compute percentiles.
 */
export async function dnsperf(
  context: BenchContext,
  port: number,
  queryFile: string,
  seconds: number,
  options: { rate?: number; latencies?: boolean } = {},
): Promise<DnsperfResult> {
  const args = ['-s', '127.0.0.1', '-p', String(port), '-d', queryFile, '-c', '4', '-l', String(seconds), '-t', '2'];
  if (options.rate) args.push('-Q', String(options.rate));
  if (options.latencies) args.push('-v');
  const result = await context.processes.run('dnsperf', 'dnsperf', args, { timeoutMs: (seconds + 30) * 1000 });
  const number = (pattern: RegExp): number => Number(pattern.exec(result.stdout)?.[1] ?? Number.NaN);
  const qps = number(/Queries per second:\s+([\d.]+)/);
  if (!Number.isFinite(qps)) throw new Error(`dnsperf against port ${port} failed (${result.status}): ${result.stderr || result.stdout.slice(-500)}`);
  let p50Ms = Number.NaN;
  let p99Ms = Number.NaN;
  if (options.latencies) {
    const latencies: number[] = [];
    for (const match of result.stdout.matchAll(/^> \S+ .* ([\d.]+)$/gm)) latencies.push(Number(match[1]) * 1000);
    latencies.sort((a, b) => a - b);
    const at = (q: number): number => latencies[Math.min(latencies.length - 1, Math.round(q * (latencies.length - 1)))] ?? Number.NaN;
    p50Ms = at(0.5);
    p99Ms = at(0.99);
  }
  return { qps, lost: number(/Queries lost:\s+(\d+)/), completed: number(/Queries completed:\s+(\d+)/), p50Ms, p99Ms };
}


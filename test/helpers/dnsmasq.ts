import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { onTestFinished } from 'vitest';
import type { HostPort } from '../../src/core/host-port.js';
import { createMessage, decodeMessage, encodeMessage } from '../../src/dns/codec.js';
import { freePort } from './free-port.js';
import { RawUdpClient } from './raw-dns.js';

/** `--srv-host=_service._tcp.domain,target,port,priority,weight` */
export interface DnsmasqSrv {
  name: string;
  target: string;
  port: number;
  priority?: number;
  weight?: number;
}

export interface DnsmasqOptions {
  srv?: DnsmasqSrv[];
  /** `--host-record=name,address`: A records, and SRV glue for targets defined this way. */
  hosts?: { name: string; address: string }[];
  /** Zones answered locally (names inside that are not defined get NXDOMAIN, not REFUSED). */
  localZones?: string[];
  /** Record TTL (`--local-ttl`); dnsmasq's default is 0. */
  ttl?: number;
  /** Listen here instead of a free port on 127.0.0.1. */
  listen?: HostPort;
  extraArgs?: string[];
}

export interface Dnsmasq {
  address: HostPort;
  process: ChildProcess;
  stop(): Promise<void>;
}

// Debian installs it in /usr/sbin, which is not on every user's PATH.
const DNSMASQ = process.env.DNSMASQ ?? (existsSync('/usr/sbin/dnsmasq') ? '/usr/sbin/dnsmasq' : 'dnsmasq');

/**
 * dnsmasq's arguments: only the records given (no resolv.conf, no hosts file,
 * no upstream), in the foreground, logging to stderr, bound to `address`
 * alone. `bind` adds how it binds (`--interface=lo` on the host).
 */
export function dnsmasqArgs(address: HostPort, options: DnsmasqOptions, bind: string[] = []): string[] {
  return [
    '--keep-in-foreground',
    '--conf-file=/dev/null',
    '--no-resolv',
    '--no-hosts',
    '--no-poll',
    '--pid-file=',
    '--log-facility=-',
    '--bind-interfaces',
    ...bind,
    `--listen-address=${address.host}`,
    `--port=${address.port}`,
    `--local-ttl=${options.ttl ?? 30}`,
    ...(process.getuid?.() === 0 ? ['--user=root'] : []),
    ...(options.localZones ?? ['skydns.local']).map((zone) => `--local=/${zone}/`),
    ...(options.srv ?? []).map((s) => `--srv-host=${s.name},${s.target},${s.port},${s.priority ?? 0},${s.weight ?? 0}`),
    ...(options.hosts ?? []).map((h) => `--host-record=${h.name},${h.address}`),
    ...(options.extraArgs ?? []),
  ];
}

/**
 * Start dnsmasq, a DNS server we did not write, on loopback with only the
 * records given (no resolv.conf, no hosts file, no upstream). Resolves once it
 * answers queries. Stopped when the test ends, pass or fail.
 */
export async function startDnsmasq(options: DnsmasqOptions): Promise<Dnsmasq> {
  for (let attempt = 0; ; attempt++) {
    const address = options.listen ?? { host: '127.0.0.1', port: await freePort() };
    const args = dnsmasqArgs(address, options, ['--interface=lo']);
    const child = spawn(DNSMASQ, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const stop = async (): Promise<void> => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
    };
    onTestFinished(stop);
    const ready = await waitUntilAnswering(address, exited);
    if (ready) return { address, process: child, stop };
    await stop();
    if (options.listen || attempt >= 5 || !/in use/i.test(stderr)) throw new Error(`dnsmasq did not start: ${stderr.trim()}`);
  }
}

/** Poll with a query until dnsmasq answers; false if it exited first. */
async function waitUntilAnswering(address: HostPort, exited: Promise<void>): Promise<boolean> {
  let dead = false;
  void exited.then(() => (dead = true));
  const client = await RawUdpClient.open();
  try {
    const deadline = Date.now() + 30_000;
    for (let id = 1; !dead && Date.now() < deadline; id++) {
      const query = encodeMessage(createMessage({ id, questions: [{ name: 'ready.check.invalid', type: 'A' }] }));
      try {
        const reply = decodeMessage(await client.exchange(address, query, 200));
        if (reply.id === id) return true;
      } catch {
        // Not listening yet: ask again.
      }
    }
    return false;
  } finally {
    client.close();
  }
}

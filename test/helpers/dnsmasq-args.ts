import { existsSync } from 'node:fs';
import type { HostPort } from '../../src/core/host-port.js';

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

// Debian installs it in /usr/sbin, which is not on every user's PATH.
export const DNSMASQ = process.env.DNSMASQ ?? (existsSync('/usr/sbin/dnsmasq') ? '/usr/sbin/dnsmasq' : 'dnsmasq');

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
    // As root, stay root: dnsmasq would switch to nobody and group dip, and a change of
    // credentials clears the parent-death signal it was started with (prctl(2)).
    ...(process.getuid?.() === 0 ? ['--user=root', '--group=root'] : []),
    ...(options.localZones ?? ['skydns.local']).map((zone) => `--local=/${zone}/`),
    ...(options.srv ?? []).map((s) => `--srv-host=${s.name},${s.target},${s.port},${s.priority ?? 0},${s.weight ?? 0}`),
    ...(options.hosts ?? []).map((h) => `--host-record=${h.name},${h.address}`),
    ...(options.extraArgs ?? []),
  ];
}

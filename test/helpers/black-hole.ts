import type { Namespace } from './netns.js';

/** Addresses inside a namespace where a TCP connect hangs: SYNs leave, nothing ever answers. */
export interface BlackHole {
  /** The hosts, in the order asked for. */
  readonly hosts: readonly string[];
}

let sequence = 0;

/**
 * Make `count` addresses of `10.99.<subnet>.0/24` black holes inside `ns`, the
 * way a host that drops packets (a firewall DROP, a powered-off machine
 * behind a switch) looks to a client: `connect()` neither succeeds nor fails
 * until the caller's own timeout (the kernel's SYN retries take minutes).
 *
 * How: a veth pair inside the namespace, both ends up, the subnet on one end
 * and nothing on the other; each host gets a permanent neighbour entry with a
 * MAC address nobody has, so no ARP is needed and no "host unreachable"
 * comes back: SYNs go out on one end and the other end drops them (not its
 * address, not its MAC). Only `ip` (iproute2) is needed; the namespace goes
 * away with all of it. Without the neighbour entries ARP would fail after
 * ~3 s and connect would end with EHOSTUNREACH instead of hanging.
 */
export async function blackHole(ns: Namespace, options: { subnet: number; count: number }): Promise<BlackHole> {
  const id = `bh${(++sequence).toString(36)}`;
  const prefix = `10.99.${options.subnet}`;
  const run = async (args: string[]): Promise<void> => {
    const result = await ns.exec('ip', args);
    if (result.code !== 0) throw new Error(`cannot make a black hole in namespace "${ns.name}": ip ${args.join(' ')}: ${result.stderr.trim()}`);
  };
  await run(['link', 'add', `${id}a`, 'type', 'veth', 'peer', 'name', `${id}b`]);
  await run(['link', 'set', `${id}a`, 'up']);
  await run(['link', 'set', `${id}b`, 'up']);
  await run(['address', 'add', `${prefix}.1/24`, 'dev', `${id}a`]);
  const hosts: string[] = [];
  for (let i = 0; i < options.count; i++) {
    const host = `${prefix}.${i + 2}`;
    const mac = `02:00:00:00:${options.subnet.toString(16).padStart(2, '0')}:${(i + 2).toString(16).padStart(2, '0')}`;
    await run(['neigh', 'replace', host, 'lladdr', mac, 'dev', `${id}a`, 'nud', 'permanent']);
    hosts.push(host);
  }
  return { hosts };
}

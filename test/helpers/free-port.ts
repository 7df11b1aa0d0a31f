import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';

/**
 * A port free for both UDP and TCP on `host` right now, for third-party
 * servers that cannot report the port they bound (dnsmasq). Another process
 * may take it before the caller binds it: callers retry on EADDRINUSE.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (;;) {
    const port = await bindBoth(host, 0);
    if (port !== undefined) return port;
  }
}

/** Ports handed out by `freeRestartPort` in this process. */
const handedOut = new Set<number>();

/** The lowest port `freeRestartPort` picks: above the well-known and registered ports daemons default to. */
const RESTART_PORT_LOW = 10_000;

/**
 * A port free for UDP and TCP on `host`, for a server that a test stops and
 * starts again on the same port (etcd members, dnsmasq). A port from `port 0`
 * is a bad choice there: it lies in the kernel's ephemeral range
 * (ip_local_port_range), and while the server is down any bind of port 0 or
 * outgoing connection on the machine may be given it. This one is picked at
 * random between 10000 and the start of that range, where nothing binds
 * unless it names the port; only another caller of this function can take
 * it, so callers still retry a bind conflict, with a fresh port.
 */
export async function freeRestartPort(host = '127.0.0.1'): Promise<number> {
  const high = ephemeralLow() - 1;
  if (high - RESTART_PORT_LOW < 1000) return freePort(host);
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = RESTART_PORT_LOW + Math.floor(Math.random() * (high - RESTART_PORT_LOW + 1));
    if (handedOut.has(port)) continue;
    if ((await bindBoth(host, port)) === port) {
      handedOut.add(port);
      return port;
    }
  }
  return freePort(host);
}

/** The first port of the kernel's ephemeral range (Linux default 32768). */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 0 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

/**
 * Bind `port` (0: any) for TCP and then UDP on `host` and release both; the
 * port if both binds worked. TCP first: the kernel's TCP pick skips ports
 * that connections hold (TIME_WAIT included), which a busy host has on most
 * ephemeral ports; a UDP pick does not know them.
 */
async function bindBoth(host: string, port: number): Promise<number | undefined> {
  const tcp = createServer();
  const listening = await new Promise<boolean>((resolve) => {
    tcp.once('error', () => resolve(false));
    tcp.listen(port, host, () => resolve(true));
  });
  if (!listening) return undefined;
  const chosen = (tcp.address() as AddressInfo).port;
  const udp = createSocket('udp4');
  const bound = await new Promise<boolean>((resolve) => {
    udp.once('error', () => resolve(false));
    udp.bind(chosen, host, () => resolve(true));
  });
  try {
    udp.close();
  } catch {
    // A socket that failed to bind may be closed already.
  }
  await new Promise<void>((resolve) => tcp.close(() => resolve()));
  return bound ? chosen : undefined;
}

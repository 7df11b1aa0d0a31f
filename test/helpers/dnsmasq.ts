import { spawn, type ChildProcess } from 'node:child_process';
import { onTestFinished } from 'vitest';
import type { HostPort } from '../../src/core/host-port.js';
import { createMessage, decodeMessage, encodeMessage } from '../../src/dns/codec.js';
import { freeRestartPort } from './free-port.js';
import { RawUdpClient } from './raw-dns.js';
import { DNSMASQ, dnsmasqArgs, type DnsmasqOptions } from './dnsmasq-args.js';

export { dnsmasqArgs, type DnsmasqOptions, type DnsmasqSrv } from './dnsmasq-args.js';

export interface Dnsmasq {
  /** Where it answers: after a restart that found its port taken, a new one. */
  readonly address: HostPort;
  /** The dnsmasq process now (setpriv execs it: the PID is dnsmasq's). */
  readonly process: ChildProcess;
  /** Whether it runs now. */
  readonly running: boolean;
  /** SIGTERM and wait for the exit; safe twice. */
  stop(): Promise<void>;
  /**
   * Start it again after `stop()`, with `changes` over the options it was
   * started with (another SRV set); resolves once it answers. It listens on
   * the same port unless another process took the port while it was down:
   * then on a fresh one (`address` says which), unless `listen` was given.
   */
  start(changes?: Omit<DnsmasqOptions, 'listen'>): Promise<void>;
}

/** Fresh ports tried when the one given is taken, before giving up. */
const BIND_ATTEMPTS = 5;

/**
 * Start dnsmasq, a DNS server we did not write, on loopback with only the
 * records given (no resolv.conf, no hosts file, no upstream), on a port
 * outside the ephemeral range (`freeRestartPort`: it can be started again
 * there). Resolves once it answers queries; a port taken in between is
 * replaced by a fresh one. It runs under `setpriv --pdeathsig KILL`: it dies
 * with this process, even if this process crashes. Inside a test it is
 * stopped when the test ends, pass or fail; elsewhere the caller stops it.
 */
export async function startDnsmasq(options: DnsmasqOptions): Promise<Dnsmasq> {
  let current = options;
  let address = options.listen ?? { host: '127.0.0.1', port: await freeRestartPort() };
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const running = (): boolean => child !== undefined && child.exitCode === null && child.signalCode === null;
  const stop = async (): Promise<void> => {
    if (running()) child?.kill('SIGTERM');
    await exited;
  };
  const start = async (): Promise<void> => {
    for (let attempt = 1; ; attempt++) {
      const args = dnsmasqArgs(address, current, ['--interface=lo']);
      const started = spawn('setpriv', ['--pdeathsig', 'KILL', '--', DNSMASQ, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
      child = started;
      let stderr = '';
      started.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      started.on('error', (err) => (stderr += `cannot start dnsmasq: ${err.message}\n`));
      exited = new Promise<void>((resolve) => started.once('exit', () => resolve()));
      if (await waitUntilAnswering(address, exited)) return;
      await stop();
      // "failed to create listening socket for 127.0.0.1: Address in use"
      if (options.listen || attempt >= BIND_ATTEMPTS || !/in use/i.test(stderr)) throw new Error(`dnsmasq did not start on ${address.host}:${address.port}: ${stderr.trim()}`);
      address = { host: address.host, port: await freeRestartPort(address.host) };
    }
  };
  try {
    onTestFinished(stop);
  } catch {
    // Not inside a test: the caller stops it.
  }
  await start();
  return {
    get address() {
      return address;
    },
    get process() {
      return child as ChildProcess;
    },
    get running() {
      return running();
    },
    stop,
    start: async (changes = {}) => {
      if (running()) throw new Error(`dnsmasq on ${address.host}:${address.port} runs already: stop it first`);
      current = { ...current, ...changes };
      await start();
    },
  };
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

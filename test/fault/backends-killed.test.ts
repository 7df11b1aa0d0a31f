/**
 * Backends killed and restarted at random under traffic, through a real
 * `srvlink run`: four echo backends (socat, each its own process group, so a
 * SIGKILL takes every connection it holds), published as one SRV set by
 * dnsmasq (peers we did not write on both sides of srvlink), and 100 clients
 * streaming pattern bytes (every byte known by its offset) and reading the
 * echo. A seeded schedule SIGKILLs backends and restarts them, never the
 * last one up. Then:
 *
 * - every byte a client received is the pattern at its offset (a correct
 *   prefix of what it sent);
 * - every connection that did not get its whole echo back was reset (never
 *   a FIN on a cut stream, never silence), and srvlink's access log says its
 *   backend failed while that backend was being killed;
 * - no client was turned away (no backend reached) while a backend was up.
 *
 * Once per data plane (`--data-plane native`, then `js`); one summary line
 * each, naming the plane; any loss fails the test.
 */
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { formatHostPort, parseHostPort, type HostPort } from '../../src/core/host-port.js';
import { endWasReset } from '../../src/proxy/tcp-reset.js';
import { patternAt } from '../helpers/byte-stream.js';
import { startDnsmasq } from '../helpers/dnsmasq.js';
import { freeRestartPort } from '../helpers/free-port.js';
import { RUN_DATA_PLANES } from '../helpers/run-data-planes.js';
import { reportScenario } from '../helpers/scenario-summary.js';
import { seededRandom } from '../helpers/seeded-random.js';
import { spawnServer, type ServerProcess } from '../helpers/server-process.js';
import { SOCAT_ECHO_FLAGS } from '../helpers/socat-server.js';
import { spawnSrvlink } from '../helpers/srvlink-process.js';
import { tempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

const SEED = Number(process.env.BACKENDS_KILLED_SEED ?? 0x6b696c6c);
const DOMAIN = 'env1.skydns.local';
const SRV = `_echo._tcp.${DOMAIN}`;
const BACKENDS = 4;
const CLIENTS = 100;
/** How long clients keep opening connections and the schedule keeps killing. */
const TRAFFIC_MS = 12_000;
/** Bytes each connection sends (and expects echoed), drawn per connection. */
const MIN_BYTES = 16 * 1024;
const MAX_BYTES = 512 * 1024;
/** A connection that makes no progress for this long is stuck: lost. */
const STUCK_MS = 20_000;
/** A kill signalled this long before a connection started may still have hit it (the process dies after the signal). */
const KILL_SLACK_MS = 1000;
const CHUNK = 16 * 1024;
/** How long a restarted backend retries a port someone else holds. */
const RESTART_RETRY_MS = 10_000;

/** How a client connection ended: `complete` (the whole echo, verified), `reset` (cut, and told so), or a loss. */
type End = 'complete' | 'reset' | 'fin' | 'silent' | 'stuck';

interface ClientConnection {
  /** The client's local port: its `client` in the access log. */
  port: number | undefined;
  started: number;
  ended: number;
  size: number;
  received: number;
  mismatched: number;
  end: End;
  error?: string;
}

/** One life of a backend process, on performance.now()'s clock. */
interface Life {
  started: number;
  killed: number | undefined;
}

/**
 * One echo backend: socat forking a child per connection, each socket with
 * SO_LINGER 0, so its death (the kill) is a reset, as a crashed server's
 * unread data makes it. `setsid` puts socat and its children in a process
 * group of their own: one SIGKILL to the group takes them all. socat dies
 * with the worker (setpriv --pdeathsig); its children then lose their peer
 * (srvlink) and exit.
 *
 * A restarted backend binds its released port again, so the SRV set stays
 * what dnsmasq serves. The port lies below the ephemeral range
 * (`freeRestartPort`): in it, while the backend was down, any outgoing
 * connection could take the port, and its TIME_WAIT would hold it for a
 * minute. There only a server naming that port can take it (another test's,
 * by chance): such a bind conflict is retried for up to RESTART_RETRY_MS.
 */
class EchoBackend {
  readonly port: number;
  readonly lives: Life[] = [];
  #process: ServerProcess | undefined;
  #restarting: Promise<void> | undefined;
  bindRetries = 0;
  /** socat's log of each life, for a diagnosis. */
  readonly logs: (() => string)[] = [];

  private constructor(port: number) {
    this.port = port;
  }

  static async start(): Promise<EchoBackend> {
    // A free port now; another process may take it before socat binds: then another port.
    for (let attempt = 0; ; attempt++) {
      const backend = new EchoBackend(await freeRestartPort());
      if (await backend.#spawn()) return backend;
      if (attempt >= 5) throw new Error(`socat did not start on a free port after ${attempt + 1} attempts`);
    }
  }

  get key(): string {
    return `127.0.0.1:${this.port}`;
  }

  get up(): boolean {
    return this.#process !== undefined && this.#restarting === undefined;
  }

  get down(): boolean {
    return this.#process === undefined && this.#restarting === undefined;
  }

  /** SIGKILL socat and every child it forked, at once. */
  async kill(): Promise<void> {
    const server = this.#process;
    if (!server) return;
    this.#process = undefined;
    const life = this.lives.at(-1);
    if (life) life.killed = performance.now();
    killGroup(server);
    await server.kill('SIGKILL');
  }

  /** Start it again on its port; resolves once it listens (retrying while the port is taken). */
  restart(): Promise<void> {
    this.#restarting ??= (async () => {
      const giveUp = performance.now() + RESTART_RETRY_MS;
      while (!(await this.#spawn())) {
        if (performance.now() > giveUp) throw new Error(`socat cannot bind ${this.key} again: taken for ${RESTART_RETRY_MS} ms`);
        this.bindRetries++;
        // Someone holds the port; no event tells when they let it go.
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      this.#restarting = undefined;
    })();
    return this.#restarting;
  }

  /**
   * True once listening; false if the port was taken (EADDRINUSE). A backlog
   * above the clients' number: at socat's default of 5, a loaded machine
   * overflows the accept queue, and Linux resets such a connection about a
   * second later (its request dropped, the data that follows meets the
   * listener), a reset no kill explains.
   */
  async #spawn(): Promise<boolean> {
    const server = spawnServer('setsid', ['socat', '-d', '-d', ...SOCAT_ECHO_FLAGS, `TCP-LISTEN:${this.port},bind=127.0.0.1,reuseaddr,fork,linger=0,backlog=1024`, 'PIPE']);
    onTestFinished(() => killGroup(server));
    await waitFor(() => server.child.exitCode !== null || /listening on/.test(server.log()), { what: `socat to listen on ${this.port}` });
    if (server.child.exitCode === null) {
      this.#process = server;
      this.lives.push({ started: performance.now(), killed: undefined });
      this.logs.push(() => server.log());
      return true;
    }
    if (!/in use/i.test(server.log())) throw new Error(`socat did not start on ${this.port}: ${server.log()}`);
    return false;
  }
}

/** SIGKILL the process group `server` leads (setsid made it leader). */
function killGroup(server: ServerProcess): void {
  const pid = server.child.pid;
  // Only while socat is alive is its PID, and so the group's, surely ours (socat forks one
  // process per connection: PIDs wrap fast). The group is killed before its leader exits.
  if (pid === undefined || server.child.exitCode !== null || server.child.signalCode !== null) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

/**
 * The local port of a socket whose connect(2) is under way (the kernel chose
 * it then). Node tells `localPort` only after 'connect': a client reset
 * before that ('connect' never comes) would have no name in the access log.
 */
function boundPort(socket: Socket): number | undefined {
  const handle = (socket as unknown as { _handle?: { getsockname?: (out: { port?: number }) => number } | null })._handle;
  const out: { port?: number } = {};
  return handle?.getsockname?.(out) === 0 ? out.port : undefined;
}

/**
 * One client connection: stream `size` pattern bytes (honouring
 * backpressure, no FIN) and read the echo, checking each byte at its
 * offset. Complete once all `size` bytes are back; then it closes.
 */
function streamOnce(address: HostPort, size: number): Promise<ClientConnection> {
  return new Promise((resolve) => {
    const result: ClientConnection = { port: undefined, started: performance.now(), ended: 0, size, received: 0, mismatched: 0, end: 'silent' };
    const socket: Socket = connect({ host: address.host, port: address.port, allowHalfOpen: true, noDelay: true });
    let written = 0;
    let progress = performance.now();
    let settled = false;
    const finish = (end: End): void => {
      if (settled) return;
      settled = true;
      clearInterval(watchdog);
      result.end = end;
      result.ended = performance.now();
      socket.destroy();
      resolve(result);
    };
    const watchdog = setInterval(() => performance.now() - progress > STUCK_MS && finish('stuck'), 1000);
    const pump = (): void => {
      while (written < size && !socket.destroyed) {
        const bytes = patternAt(written, Math.min(CHUNK, size - written));
        written += bytes.length;
        if (!socket.write(bytes)) {
          socket.once('drain', pump);
          return;
        }
      }
    };
    // The connect(2) is issued by the time the next tick runs.
    process.nextTick(() => (result.port ??= boundPort(socket)));
    socket.once('connect', () => {
      result.port ??= socket.localPort;
      pump();
    });
    socket.on('data', (data: Buffer) => {
      progress = performance.now();
      for (let at = 0; at < data.length; at += CHUNK) {
        const piece = data.subarray(at, at + CHUNK);
        const expected = patternAt(result.received, piece.length);
        if (!piece.equals(expected)) for (let i = 0; i < piece.length; i++) if (piece[i] !== expected[i]) result.mismatched++;
        result.received += piece.length;
      }
      if (result.received >= size) finish('complete');
    });
    socket.on('error', (err: NodeJS.ErrnoException) => (result.error ??= err.code ?? err.message));
    // Node may report a reset right behind data as 'end' (see endWasReset): the socket's state tells.
    socket.once('end', () => {
      if (endWasReset(socket)) result.error ??= 'ECONNRESET';
      finish(result.error === undefined ? 'fin' : 'reset');
    });
    socket.once('close', () => finish(result.error === undefined ? 'silent' : 'reset'));
  });
}

interface AccessLine {
  time: string;
  client: string;
  backend: string | null;
  tried: string[];
  bytesIn: number;
  bytesOut: number;
  ms: number;
  outcome: string;
}

/** Outcomes of a client srvlink could not forward anywhere. */
const TURNED_AWAY = new Set(['no-backend', 'unreachable', 'deadline', 'discovery-failed']);

describe.each(RUN_DATA_PLANES)('backends killed and restarted under traffic, on the $name data plane', ({ name: plane, args: planeArgs, skip }) => {
  if (skip) it.skip(skip, () => undefined);
  it.skipIf(skip !== undefined)('100 streaming clients through srvlink run, backends SIGKILLed at random: no corrupted byte, every cut stream reset and explained, none turned away', async () => {
    // One stream of draws for the schedule, one per client for its sizes: each repeats with the seed.
    const random = seededRandom(SEED);
    const backends: EchoBackend[] = [];
    for (let i = 0; i < BACKENDS; i++) backends.push(await EchoBackend.start());
    const dnsmasq = await startDnsmasq({
      srv: backends.map((b, i) => ({ name: SRV, target: `b${i}.${DOMAIN}`, port: b.port, priority: 10, weight: 10 })),
      hosts: backends.map((_, i) => ({ name: `b${i}.${DOMAIN}`, address: '127.0.0.1' })),
    });
    const accessLog = join(tempDir(), 'access.log');
    const proc = spawnSrvlink([
      'run', '--dns-listen', 'none', '--domain', DOMAIN, '--cluster-dns', formatHostPort(dnsmasq.address),
      '--map', '127.0.0.1:0=echo', '--access-log', accessLog, '--eject-time', '1s', ...planeArgs,
    ]);
    const address = parseHostPort(String((await proc.waitForLog((l) => l.msg === 'listening')).address), 'address');
    expect((await proc.waitForLog((l) => l.msg === 'srvlink run ready')).settings).toMatchObject({ dataPlane: plane });
    await proc.waitForLog((l) => l.msg === 'backend set changed' && l.backends === BACKENDS);

    // Clients: each opens one connection after the other until the traffic stops.
    const connections: ClientConnection[] = [];
    const t0 = performance.now();
    const trafficEnds = t0 + TRAFFIC_MS;
    const clients = Array.from({ length: CLIENTS }, async (_, i) => {
      const sizes = seededRandom(SEED + 1 + i);
      while (performance.now() < trafficEnds) {
        const size = MIN_BYTES + Math.floor(sizes() * (MAX_BYTES - MIN_BYTES));
        connections.push(await streamOnce(address, size));
      }
    });

    // The schedule: every 100-500 ms one backend, drawn at random, is killed if up (unless it is
    // the last one up) or restarted if down.
    let kills = 0;
    let restarts = 0;
    const restarting: Promise<void>[] = [];
    while (performance.now() < trafficEnds - 1000) {
      await new Promise((resolve) => setTimeout(resolve, 100 + random() * 400));
      const backend = backends[Math.floor(random() * BACKENDS)] as EchoBackend;
      if (backend.up && backends.filter((b) => b.up).length > 1) {
        kills++;
        await backend.kill();
      } else if (backend.down) {
        restarts++;
        restarting.push(backend.restart());
      }
    }
    await Promise.all(restarting);
    await Promise.all(clients);

    // srvlink writes one access-log line per client once both sides are closed.
    const lines = (): AccessLine[] =>
      readFileSync(accessLog, 'utf8')
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as AccessLine);
    // One still missing after the wait is a connection srvlink never finished: a problem below, not a timeout here.
    await waitFor(() => lines().length >= connections.length, { timeout: 15_000, interval: 100 }).catch(() => undefined);
    const byPort = new Map<number, AccessLine[]>();
    for (const line of lines()) {
      const port = Number(line.client.split(':').at(-1));
      byPort.set(port, [...(byPort.get(port) ?? []), line]);
    }

    // Every connection accounted for. A client port is reused only once srvlink closed its previous connection: in order.
    const killedDuring = (key: string | null, c: ClientConnection): boolean =>
      backends.some((b) => b.key === key && b.lives.some((life) => life.killed !== undefined && life.killed >= c.started - KILL_SLACK_MS && life.killed <= c.ended));
    const problems: string[] = [];
    let verified = 0;
    let resets = 0;
    for (const c of [...connections].sort((a, b) => a.started - b.started)) {
      verified += c.received - c.mismatched;
      const line = c.port === undefined ? undefined : byPort.get(c.port)?.shift();
      const at = (ms: number): string => `${Math.round(ms - t0)} ms`;
      const lives = (key: string | null): string =>
        backends
          .filter((b) => b.key === key)
          .flatMap((b) => b.lives.map((life) => `${at(life.started)}-${life.killed === undefined ? '' : at(life.killed)}`))
          .join(', ');
      const what =
        `connection from port ${c.port ?? '?'} at ${at(c.started)}-${at(c.ended)} (${c.received} of ${c.size} bytes back, ${c.end}${c.error ? ` ${c.error}` : ''}, ` +
        `srvlink: ${line ? `${JSON.stringify(line)}; lives of its backend: ${lives(line.backend)}` : 'no access-log line'})`;
      if (c.mismatched > 0) problems.push(`${what}: ${c.mismatched} corrupted bytes`);
      else if (line && TURNED_AWAY.has(line.outcome)) problems.push(`${what}: turned away while a backend was up`);
      else if (c.end === 'complete') continue;
      else if (c.end !== 'reset') problems.push(`${what}: cut without a reset`);
      else if (!line || line.outcome !== 'backend-error' || !killedDuring(line.backend, c)) problems.push(`${what}: reset with no backend killed under it`);
      else resets++;
    }
    const lost = problems.length;
    const complete = connections.filter((c) => c.end === 'complete').length;
    const bindRetries = backends.reduce((sum, b) => sum + b.bindRetries, 0);
    // Clients srvlink forwarded after dialing dead backends first: failover at work.
    const failedOver = lines().filter((line) => line.backend !== null && line.tried.length > 0);
    reportScenario({
      scenario: `backends-killed (${plane})`,
      connections: connections.length,
      bytesVerified: verified,
      lost,
      extra:
        `${complete} complete, ${resets} reset while their backend was killed, ${failedOver.length} forwarded after ` +
        `${failedOver.reduce((sum, line) => sum + line.tried.length, 0)} dials of dead backends; ${kills} kills, ${restarts} restarts (${bindRetries} bind retries) of ${BACKENDS} backends, seed ${SEED}`,
    });
    if (lost > 0) {
      // For the diagnosis: what srvlink said (ejections, failures), and socat's errors per life.
      console.log(proc.logs.filter((l) => l.level === 'warn' || l.level === 'error').map((l) => JSON.stringify(l)).join('\n'));
      for (const b of backends) console.log(`socat on ${b.key}, errors by life:\n${b.logs.map((log) => log().split('\n').filter((l) => / E /.test(l)).join('\n')).join('\n--\n')}`);
    }
    expect(problems.slice(0, 20)).toEqual([]);
    expect(lost).toBe(0);
    expect(kills).toBeGreaterThan(5);
    expect(complete).toBeGreaterThan(connections.length / 2);
    expect(proc.child.exitCode).toBeNull();
    expect(proc.logs.filter((l) => l.level === 'error' || l.level === 'raw')).toEqual([]);

    // All up again: a new connection goes through.
    await Promise.all(backends.filter((b) => b.down).map((b) => b.restart()));
    expect((await streamOnce(address, MAX_BYTES)).end).toBe('complete');
  }, 90_000);
});

import { spawn, type ChildProcess, execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { onTestFinished } from 'vitest';
import { freeRestartPort } from './free-port.js';
import type { Namespace, NamespaceChild } from './netns.js';
import type { TestCerts } from './tls-certs.js';
import { waitFor } from './wait-for.js';

const run = promisify(execFile);

/** How long an etcd member may take to start or stop: generous, machines are noisy. */
export const ETCD_TIMEOUT = 30_000;

/** Fresh ports a member tries when the ones it had are taken, before it gives up. */
const BIND_ATTEMPTS = 5;

/** One etcd member (Debian's etcd-server) on loopback, with a data dir of its own. */
export interface EtcdMember {
  readonly name: string;
  /**
   * `http://127.0.0.1:PORT`, the client URL. A member that found its port
   * taken when it started again serves on a new one: read it after `start()`.
   */
  readonly endpoint: string;
  /** `http://127.0.0.1:PORT`, the peer URL (in the cluster's membership). */
  readonly peerUrl: string;
  readonly dataDir: string;
  /** Whether the process is running now. */
  readonly running: boolean;
  /** The etcd process's PID (as the host sees it) while it runs. */
  readonly pid: number | undefined;
  /** Stop the process (SIGTERM, then wait); the data dir stays. */
  stop(): Promise<void>;
  /**
   * Start it again on the same ports and data dir; resolves when it serves.
   * A port taken meanwhile (another test may bind it while the member is
   * down) is replaced by a fresh one: the client URL changes, and a peer URL
   * is moved in the membership first (`etcdctl member update`, through the
   * other members).
   */
  start(): Promise<void>;
}

/** A cluster of one or more members. */
export interface EtcdCluster {
  readonly members: readonly EtcdMember[];
  /** Client URLs of every member, as they are now. */
  readonly endpoints: string[];
  /** Run `etcdctl ARGS` against the cluster (all endpoints). */
  etcdctl(args: string[]): Promise<EtcdctlResult>;
  /** Stop every member and remove the data dirs; safe twice. */
  close(): Promise<void>;
}

export interface EtcdctlResult {
  code: number;
  stdout: string;
  stderr: string;
}

const ETCD = process.env.ETCD ?? 'etcd';
const ETCDCTL = process.env.ETCDCTL ?? 'etcdctl';

/** A member could not bind `port`: someone else holds it. */
class BindConflict extends Error {
  constructor(
    readonly member: string,
    readonly port: number,
  ) {
    super(`etcd ${member}: port ${port} is taken`);
  }
}

/**
 * Start an etcd cluster of `size` members on free loopback ports (outside
 * the ephemeral range, see `freeRestartPort`) with temporary data dirs.
 * Resolves once every member serves; a port taken before a new cluster
 * formed starts it over on fresh ports. Every etcd runs under `setpriv
 * --pdeathsig KILL`: it dies with this process, even if it crashes. Inside
 * a test it is stopped and removed when the test ends, pass or fail;
 * elsewhere the caller closes it.
 */
export async function startEtcd(options: { size?: number; tls?: TestCerts; namespace?: Namespace } = {}): Promise<EtcdCluster> {
  const size = options.size ?? 1;
  const tls = options.tls;
  const ns = options.namespace;
  // Inside a namespace ("container", netns.ts) etcd and etcdctl run there, on its loopback.
  const etcdctl = async (args: string[]): Promise<EtcdctlResult> => {
    const env = { ...process.env, ETCDCTL_API: '3' };
    if (ns) return ns.exec(ETCDCTL, args, { env, timeout: ETCD_TIMEOUT });
    try {
      const { stdout, stderr } = await run(ETCDCTL, args, { env, timeout: ETCD_TIMEOUT });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
    }
  };
  const tlsArgs = tls ? [`--cacert=${tls.ca}`, `--cert=${tls.clientCert}`, `--key=${tls.clientKey}`] : [];
  const base = mkdtempSync(join(tmpdir(), 'srvlink-etcd-'));
  const members: Member[] = [];
  let closing: Promise<void> | undefined;
  const cluster: EtcdCluster = {
    members,
    get endpoints() {
      return members.map((m) => m.endpoint);
    },
    etcdctl: (args) => etcdctl([`--endpoints=${cluster.endpoints.join(',')}`, '--command-timeout=10s', ...tlsArgs, ...args]),
    close: () => {
      closing ??= (async () => {
        await Promise.all(members.map((m) => m.stop()));
        rmSync(base, { recursive: true, force: true });
      })();
      return closing;
    },
  };
  try {
    onTestFinished(() => cluster.close(), ETCD_TIMEOUT);
  } catch {
    // Not inside a test: the caller closes it.
  }
  const context: ClusterContext = { members, tls, tlsArgs, ns, etcdctl };
  for (let attempt = 1; ; attempt++) {
    const token = `srvlink-test-${process.pid}-${Date.now()}-${attempt}`;
    members.length = 0;
    for (let i = 0; i < size; i++) {
      const ports = { client: await freeRestartPort(), peer: await freeRestartPort() };
      members.push(member(`m${i}`, ports, join(base, `m${i}`), token, context));
    }
    try {
      await Promise.all(members.map((m) => m.start()));
      return cluster;
    } catch (err) {
      // A member that cannot bind stops the others; a new cluster is then formed again on fresh
      // ports (its members agree on each other's peer URLs from the start).
      await Promise.all(members.map((m) => m.stop()));
      if (!(err instanceof BindConflict) || attempt >= BIND_ATTEMPTS) {
        await cluster.close();
        throw err;
      }
      for (const m of members) rmSync(m.dataDir, { recursive: true, force: true });
    }
  }
}

interface ClusterContext {
  /** Every member of the cluster: the initial cluster and a moved peer URL need the others. */
  readonly members: readonly Member[];
  readonly tls: TestCerts | undefined;
  readonly tlsArgs: string[];
  readonly ns: Namespace | undefined;
  etcdctl(args: string[]): Promise<EtcdctlResult>;
}

interface Member extends EtcdMember {
  readonly peerPort: number;
}

function member(name: string, ports: { client: number; peer: number }, dataDir: string, token: string, cluster: ClusterContext): Member {
  const { tls, ns } = cluster;
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let log = '';
  const scheme = tls ? 'https' : 'http';
  const endpoint = (): string => `${scheme}://127.0.0.1:${ports.client}`;
  const peerUrl = (): string => `http://127.0.0.1:${ports.peer}`;
  // With TLS, clients must show a certificate signed by the test CA.
  const tlsFlags = tls ? [`--cert-file=${tls.serverCert}`, `--key-file=${tls.serverKey}`, `--trusted-ca-file=${tls.ca}`, '--client-cert-auth'] : [];
  const running = (): boolean => child !== undefined && child.exitCode === null && child.signalCode === null;

  /** Start the process once; resolves when it serves, rejects with BindConflict when a port was taken. */
  const launch = async (): Promise<void> => {
    log = '';
    // On a restart etcd reads its membership from the data dir, yet still checks that
    // --initial-cluster names this member's advertised peer URL: both are the current ones.
    const initialCluster = cluster.members.map((m) => `${m.name}=http://127.0.0.1:${m.peerPort}`).join(',');
    const args = [
      `--name=${name}`,
      `--data-dir=${dataDir}`,
      `--listen-client-urls=${endpoint()}`,
      `--advertise-client-urls=${endpoint()}`,
      `--listen-peer-urls=${peerUrl()}`,
      `--initial-advertise-peer-urls=${peerUrl()}`,
      `--initial-cluster=${initialCluster}`,
      `--initial-cluster-token=${token}`,
      '--initial-cluster-state=new',
      // Fast elections: tests stop members and expect the rest to go on quickly.
      '--heartbeat-interval=50',
      '--election-timeout=500',
      '--logger=zap',
      '--log-level=error',
      ...tlsFlags,
    ];
    // A namespace's spawn runs it under setpriv --pdeathsig already; here setpriv execs etcd, so the PID is etcd's.
    const current = ns
      ? ns.spawn(ETCD, args, { stdio: ['ignore', 'ignore', 'pipe'] })
      : spawn('setpriv', ['--pdeathsig', 'KILL', '--', ETCD, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = current;
    current.stderr?.on('data', (chunk: Buffer) => (log = (log + chunk.toString()).slice(-4000)));
    current.on('error', (err) => (log += `cannot start etcd: ${err.message}\n`));
    exited = new Promise((resolve) => current.once('exit', () => resolve()));
    // Serving means /health answers: for a new cluster, only once a quorum has formed,
    // so members started together are awaited together by the caller.
    await waitFor(
      async () => {
        if (current.exitCode !== null || current.signalCode !== null) {
          await exited;
          const taken = /listen tcp [^\s"]*:(\d+): bind: address already in use/.exec(log);
          if (taken) throw new BindConflict(name, Number(taken[1]));
          throw new Error(`etcd ${name} exited with ${current.exitCode ?? current.signalCode}: ${log}`);
        }
        if (tls || ns) {
          // fetch cannot be given a CA here, nor reach into a namespace; etcdctl can.
          return (await cluster.etcdctl([`--endpoints=${endpoint()}`, ...cluster.tlsArgs, '--dial-timeout=1s', 'endpoint', 'health'])).code === 0;
        }
        try {
          const response = await fetch(`${endpoint()}/version`, { signal: AbortSignal.timeout(1000) });
          return response.ok;
        } catch {
          return false;
        }
      },
      { what: `etcd ${name} to serve on ${endpoint()}`, timeout: ETCD_TIMEOUT, interval: 50 },
    );
  };

  /** Give this member `port` as its peer port in the membership, through the other members. */
  const movePeer = async (port: number): Promise<void> => {
    const others = cluster.members.filter((m) => m.name !== name && m.running).map((m) => m.endpoint);
    if (others.length === 0) throw new Error(`etcd ${name}: cannot move its peer URL to port ${port}: no other member runs`);
    const url = `http://127.0.0.1:${port}`;
    const ctl = (args: string[]): Promise<EtcdctlResult> => cluster.etcdctl([`--endpoints=${others.join(',')}`, '--command-timeout=5s', ...cluster.tlsArgs, ...args]);
    let problem = '';
    await waitFor(
      async () => {
        // `member list` (simple format): ID, status, name, peer URLs, client URLs, learner; the ID in hex.
        const list = await ctl(['member', 'list']);
        const id = list.stdout
          .split('\n')
          .map((line) => line.split(', '))
          .find((fields) => fields[2] === name)?.[0];
        if (id === undefined) {
          problem = `not in the member list: ${list.stdout}${list.stderr}`;
          return false;
        }
        const update = await ctl(['member', 'update', id, `--peer-urls=${url}`]);
        problem = update.stderr;
        return update.code === 0;
      },
      { what: `etcd ${name}'s peer URL to move to ${url} (${problem})`, timeout: ETCD_TIMEOUT, interval: 200 },
    );
  };

  const self: Member = {
    name,
    get endpoint() {
      return endpoint();
    },
    get peerUrl() {
      return peerUrl();
    },
    get peerPort() {
      return ports.peer;
    },
    dataDir,
    get running() {
      return running();
    },
    get pid() {
      if (!running()) return undefined;
      return ns ? (child as NamespaceChild).commandPid() : child?.pid;
    },
    start: async () => {
      if (running()) return;
      for (let attempt = 1; ; attempt++) {
        try {
          await launch();
          return;
        } catch (err) {
          // Before a new cluster has formed the members must agree on each other's peer URLs:
          // startEtcd starts them all over. A member with its data dir (a restart), or alone, moves.
          const restart = existsSync(join(dataDir, 'member')) || cluster.members.length === 1;
          if (!(err instanceof BindConflict) || !restart || attempt >= BIND_ATTEMPTS) throw err;
          const fresh = await freeRestartPort();
          if (err.port === ports.client) ports.client = fresh;
          else if (err.port === ports.peer) {
            // A lone member never dials a peer: its stale peer URL in the membership harms nobody.
            if (cluster.members.length > 1) await movePeer(fresh);
            ports.peer = fresh;
          } else throw err;
        }
      }
    },
    stop: async () => {
      if (running()) child?.kill('SIGTERM');
      await exited;
    },
  };
  return self;
}

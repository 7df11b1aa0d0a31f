import { spawn, type ChildProcess, execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { onTestFinished } from 'vitest';
import { freePort } from './free-port.js';
import type { Namespace } from './netns.js';
import type { TestCerts } from './tls-certs.js';
import { waitFor } from './wait-for.js';

const run = promisify(execFile);

/** How long an etcd member may take to start or stop: generous, machines are noisy. */
export const ETCD_TIMEOUT = 30_000;

/** One etcd member (Debian's etcd-server) on loopback, with a data dir of its own. */
export interface EtcdMember {
  readonly name: string;
  /** `http://127.0.0.1:PORT`, the client URL. */
  readonly endpoint: string;
  readonly dataDir: string;
  /** Whether the process is running now. */
  readonly running: boolean;
  /** Stop the process (SIGTERM, then wait); the data dir stays. */
  stop(): Promise<void>;
  /** Start it again on the same ports and data dir; resolves when it serves. */
  start(): Promise<void>;
}

/** A cluster of one or more members. */
export interface EtcdCluster {
  readonly members: readonly EtcdMember[];
  /** Client URLs of every member. */
  readonly endpoints: string[];
  /** Run `etcdctl ARGS` against the cluster (all endpoints). */
  etcdctl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Stop every member and remove the data dirs; safe twice. */
  close(): Promise<void>;
}

const ETCD = process.env.ETCD ?? 'etcd';
const ETCDCTL = process.env.ETCDCTL ?? 'etcdctl';

/**
 * Start an etcd cluster of `size` members on free loopback ports with
 * temporary data dirs. Resolves once every member serves. Inside a test it is
 * stopped and removed when the test ends, pass or fail; elsewhere the caller
 * closes it.
 */
export async function startEtcd(options: { size?: number; tls?: TestCerts; namespace?: Namespace } = {}): Promise<EtcdCluster> {
  const size = options.size ?? 1;
  const tls = options.tls;
  const ns = options.namespace;
  // Inside a namespace ("container", netns.ts) etcd and etcdctl run there, on its loopback.
  const etcdctl = async (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
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
  const base = mkdtempSync(join(tmpdir(), 'srvlink-etcd-'));
  const token = `srvlink-test-${process.pid}-${Date.now()}`;
  const ports: { client: number; peer: number }[] = [];
  for (let i = 0; i < size; i++) ports.push({ client: await freePort(), peer: await freePort() });
  const initialCluster = ports.map((p, i) => `m${i}=http://127.0.0.1:${p.peer}`).join(',');
  const members = ports.map((p, i) => member(`m${i}`, p, join(base, `m${i}`), initialCluster, token, tls, ns, etcdctl));
  await Promise.all(members.map((m) => m.start()));
  let closing: Promise<void> | undefined;
  const cluster: EtcdCluster = {
    members,
    endpoints: members.map((m) => m.endpoint),
    etcdctl: (args) => {
      const tlsArgs = tls ? [`--cacert=${tls.ca}`, `--cert=${tls.clientCert}`, `--key=${tls.clientKey}`] : [];
      return etcdctl([`--endpoints=${cluster.endpoints.join(',')}`, '--command-timeout=10s', ...tlsArgs, ...args]);
    },
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
  return cluster;
}

function member(
  name: string,
  ports: { client: number; peer: number },
  dataDir: string,
  initialCluster: string,
  token: string,
  tls: TestCerts | undefined,
  ns: Namespace | undefined,
  etcdctl: (args: string[]) => Promise<{ code: number }>,
): EtcdMember {
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let log = '';
  const endpoint = `${tls ? 'https' : 'http'}://127.0.0.1:${ports.client}`;
  // With TLS, clients must show a certificate signed by the test CA.
  const tlsFlags = tls ? [`--cert-file=${tls.serverCert}`, `--key-file=${tls.serverKey}`, `--trusted-ca-file=${tls.ca}`, '--client-cert-auth'] : [];
  const self: EtcdMember = {
    name,
    endpoint,
    dataDir,
    get running() {
      return child !== undefined && child.exitCode === null && child.signalCode === null;
    },
    start: async () => {
      if (self.running) return;
      log = '';
      const args = [
        `--name=${name}`,
        `--data-dir=${dataDir}`,
        `--listen-client-urls=${endpoint}`,
        `--advertise-client-urls=${endpoint}`,
        `--listen-peer-urls=http://127.0.0.1:${ports.peer}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${ports.peer}`,
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
      child = ns ? ns.spawn(ETCD, args, { stdio: ['ignore', 'ignore', 'pipe'] }) : spawn(ETCD, args, { stdio: ['ignore', 'ignore', 'pipe'] });
      const current = child;
      current.stderr?.on('data', (chunk: Buffer) => (log = (log + chunk.toString()).slice(-4000)));
      exited = new Promise((resolve) => current.once('exit', () => resolve()));
      // Serving means /health answers: for a new cluster, only once a quorum has formed,
      // so members started together are awaited together by the caller.
      await waitFor(
        async () => {
          if (current.exitCode !== null) throw new Error(`etcd ${name} exited with ${current.exitCode}: ${log}`);
          if (tls || ns) {
            // fetch cannot be given a CA here, nor reach into a namespace; etcdctl can.
            const tlsArgs = tls ? [`--cacert=${tls.ca}`, `--cert=${tls.clientCert}`, `--key=${tls.clientKey}`] : [];
            return (await etcdctl([`--endpoints=${endpoint}`, ...tlsArgs, '--dial-timeout=1s', 'endpoint', 'health'])).code === 0;
          }
          try {
            const response = await fetch(`${endpoint}/version`, { signal: AbortSignal.timeout(1000) });
            return response.ok;
          } catch {
            return false;
          }
        },
        { what: `etcd ${name} to serve on ${endpoint}`, timeout: ETCD_TIMEOUT, interval: 50 },
      );
    },
    stop: async () => {
      if (self.running) child?.kill('SIGTERM');
      await exited;
    },
  };
  return self;
}

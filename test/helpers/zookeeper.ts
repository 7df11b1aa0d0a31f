import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { onTestFinished } from 'vitest';
import { freePort } from './free-port.js';
import type { Namespace } from './netns.js';
import { tempDir } from './temp-dir.js';
import { waitFor } from './wait-for.js';

/** How long a JVM may take to start and a quorum to form: generous, machines are noisy. */
export const ZOOKEEPER_TIMEOUT = 60_000;

/** Where Debian's zookeeperd puts its jars. */
const JAVA_DIR = '/usr/share/java';
const JARS = [
  'zookeeper.jar',
  'zookeeper-jute.jar',
  'slf4j-api.jar',
  'slf4j-simple.jar',
  'metrics-core.jar',
  'commons-cli.jar',
  'commons-io.jar',
  'snappy-java.jar',
  'netty-handler.jar',
  'netty-common.jar',
  'netty-buffer.jar',
  'netty-transport.jar',
  'netty-codec.jar',
  'netty-resolver.jar',
  'netty-transport-native-epoll.jar',
  'netty-transport-native-unix-common.jar',
];

/** The class path of Debian's ZooKeeper server and client. */
export function zookeeperClassPath(): string {
  return JARS.map((jar) => join(JAVA_DIR, jar))
    .filter((path) => existsSync(path))
    .join(':');
}

/** JVM flags for a quick start and a small footprint (tests start several). */
export const JVM_FLAGS = ['-Xmx96m', '-Xss512k', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-Djava.net.preferIPv4Stack=true'];

/** One ZooKeeper server (QuorumPeerMain) on loopback, its own config and data dir. */
export interface ZooKeeperServer {
  readonly id: number;
  readonly clientPort: number;
  readonly running: boolean;
  /** Its log so far (stderr and stdout). */
  log(): string;
  start(): void;
  /** Signal it; SIGKILL/SIGTERM wait for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** The answer to a four-letter word ('' when it cannot be had). */
  fourLetter(word: string, timeout?: number): Promise<string>;
  /** `Mode: ...` of `srvr`, or undefined when not serving. */
  mode(): Promise<string | undefined>;
}

export interface ZooKeeperOptions {
  /** Members of the ensemble started. Default 1 (standalone). */
  servers?: number;
  /**
   * Members that are configured but never started: with 1 server and
   * `absent: 1` the one server never has a quorum.
   */
  absent?: number;
  /**
   * The 4lw whitelist. Default `srvr,cons,conf,mntr`; `null` leaves the key
   * out, as a stock configuration does (ZooKeeper 3.8 then answers `srvr` only).
   */
  whitelist?: string | null;
  /**
   * Run the servers inside this "container" (netns.ts), on its own loopback:
   * four-letter words are then sent from inside too (socat).
   */
  namespace?: Namespace;
}

/**
 * Start ZooKeeper servers (Debian's zookeeperd jars, `java -cp ...
 * QuorumPeerMain CFG`), never the system service, on free loopback ports
 * with fast ticks; killed with the test (and with this process: pdeathsig).
 * Resolves once each is started (not necessarily serving).
 */
export async function startZooKeeper(options: ZooKeeperOptions = {}): Promise<ZooKeeperServer[]> {
  const count = options.servers ?? 1;
  const absent = options.absent ?? 0;
  const whitelist = options.whitelist === undefined ? 'srvr,cons,conf,mntr' : options.whitelist;
  const base = tempDir();
  const ports: { client: number; peer: number; election: number }[] = [];
  for (let i = 0; i < count + absent; i++) ports.push({ client: await freePort(), peer: await freePort(), election: await freePort() });
  const quorum = count + absent > 1 ? ports.map((p, i) => `server.${i + 1}=127.0.0.1:${p.peer}:${p.election}`) : [];
  const servers: ZooKeeperServer[] = [];
  for (let i = 0; i < count; i++) {
    const id = i + 1;
    const dir = join(base, `zk${id}`);
    mkdirSync(join(dir, 'data'), { recursive: true });
    writeFileSync(join(dir, 'data', 'myid'), `${id}\n`);
    const cfg = join(dir, 'zoo.cfg');
    const port = ports[i] as { client: number };
    writeFileSync(
      cfg,
      [
        // Fast ticks: a lost leader is noticed within syncLimit ticks, an election takes a few.
        'tickTime=200',
        'initLimit=10',
        'syncLimit=5',
        `dataDir=${join(dir, 'data')}`,
        `clientPort=${port.client}`,
        'clientPortAddress=127.0.0.1',
        ...(whitelist === null ? [] : [`4lw.commands.whitelist=${whitelist}`]),
        'admin.enableServer=false',
        'minSessionTimeout=1000',
        'maxSessionTimeout=60000',
        'snapCount=100000',
        ...quorum,
        '',
      ].join('\n'),
    );
    servers.push(server(id, port.client, cfg, options.namespace));
  }
  for (const s of servers) s.start();
  onTestFinished(async () => {
    await Promise.all(servers.map((s) => s.kill('SIGKILL')));
  }, ZOOKEEPER_TIMEOUT);
  return servers;
}

function server(id: number, clientPort: number, cfg: string, ns: Namespace | undefined): ZooKeeperServer {
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let log = '';
  const self: ZooKeeperServer = {
    id,
    clientPort,
    get running() {
      return child !== undefined && child.exitCode === null && child.signalCode === null;
    },
    log: () => log,
    start: () => {
      if (self.running) return;
      const java = [...JVM_FLAGS, '-cp', zookeeperClassPath(), 'org.apache.zookeeper.server.quorum.QuorumPeerMain', cfg];
      // setpriv execs java: the pid is the JVM's, so SIGSTOP freezes the server itself
      // (a namespace child's kill() signals the command inside, the JVM too).
      child = ns ? ns.spawn('java', java) : spawn('setpriv', ['--pdeathsig', 'KILL', 'java', ...java], { stdio: ['ignore', 'pipe', 'pipe'] });
      const current = child;
      const append = (chunk: Buffer): void => void (log = (log + chunk.toString()).slice(-200_000));
      current.on('error', (err) => (log += `cannot start java: ${err.message}\n`));
      current.stdout?.on('data', append);
      current.stderr?.on('data', append);
      exited = new Promise((resolve) => current.once('exit', () => resolve()));
    },
    kill: async (signal = 'SIGKILL') => {
      if (!self.running) return;
      if (signal === 'SIGKILL' || signal === 'SIGTERM') {
        // A frozen JVM must be able to die.
        child?.kill('SIGCONT');
        child?.kill(signal);
        await exited;
        return;
      }
      child?.kill(signal);
    },
    fourLetter: (word, timeout = 2000) => (ns ? fourLetterInside(ns, clientPort, word, timeout) : fourLetterHere(clientPort, word, timeout)),
    mode: async () => /^Mode: (\S+)/m.exec(await self.fourLetter('srvr'))?.[1],
  };
  return self;
}

/** A four-letter word from this process: write it, read until the server closes. */
function fourLetterHere(port: number, word: string, timeout: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let answer = '';
    const timer = setTimeout(() => socket.destroy(), timeout);
    socket.on('connect', () => socket.write(word));
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString()));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(answer);
    });
  });
}

/** A four-letter word from inside a namespace: socat sends it and prints the answer until the server closes. */
async function fourLetterInside(ns: Namespace, port: number, word: string, timeout: number): Promise<string> {
  const seconds = String(timeout / 1000);
  try {
    const result = await ns.exec('socat', ['-t', seconds, '-T', seconds, 'STDIO', `TCP:127.0.0.1:${port}`], { input: word, timeout: timeout + 5000 });
    return result.stdout;
  } catch {
    return '';
  }
}

/** Wait until every server in `servers` answers `srvr` in a serving mode; resolves with the leader (or the standalone one). */
export async function waitForQuorum(servers: readonly ZooKeeperServer[]): Promise<ZooKeeperServer> {
  let leader: ZooKeeperServer | undefined;
  await waitFor(
    async () => {
      const modes = await Promise.all(servers.map((s) => s.mode()));
      if (modes.some((m) => m === undefined || m === 'read-only')) return false;
      leader = servers[modes.findIndex((m) => m === 'leader' || m === 'standalone')];
      return leader !== undefined;
    },
    { what: `zookeeper servers ${servers.map((s) => s.clientPort).join(', ')} to serve`, timeout: ZOOKEEPER_TIMEOUT, interval: 200 },
  );
  return leader as ZooKeeperServer;
}

/** Log lines of a ZooKeeper server about client connections that went wrong (what a bare TCP check causes). */
export function connectionWarnings(log: string): string[] {
  return log.split('\n').filter((line) => /WARN|ERROR/.test(line) && /NIOServerCnxn|EndOfStreamException|Unexpected exception/.test(line));
}

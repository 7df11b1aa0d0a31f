import { spawn as spawnProcess, type ChildProcess, type StdioOptions } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { constants } from 'node:os';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { onTestFinished } from 'vitest';
import type { HostPort } from '../../src/core/host-port.js';
import { dnsmasqArgs, type DnsmasqOptions } from './dnsmasq.js';

/**
 * Containers for tests: a container is Linux namespaces, so a "container" here
 * is a holder process (`sleep infinity`) that is PID 1 of fresh PID, network
 * and mount namespaces, made with util-linux `unshare`; commands run inside it
 * with `nsenter`. Inside, 127.0.0.1:53 and /etc/resolv.conf are the
 * container's own, so tests can bind fixed ports and stub the resolver
 * without touching the host. Nothing leaves the machine: a fresh network
 * namespace has only `lo`, and `connectNamespaces` links two of ours with a
 * veth pair.
 *
 * Needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN in the host's namespaces), as in
 * CI. Without root, `NETNS_UNAVAILABLE` says why and test files skip with it:
 * rootless `unshare --user --map-root-user` would cover one namespace, but a
 * veth pair between two user namespaces needs CAP_NET_ADMIN over both, which
 * an unprivileged user does not have.
 *
 * Resolver pitfall (glibc): getaddrinfo with AI_ADDRCONFIG and an explicit
 * family ignores a family for which the host has no address other than
 * 127.0.0.1 / ::1. In a namespace with only `lo`, `getent ahostsv4 NAME` and
 * `dns.lookup(NAME, { family: 4, hints: dns.ADDRCONFIG })` therefore find
 * nothing (ENOTFOUND), while `getent hosts NAME`, `getent ahosts NAME` and
 * Node's `dns.lookup(NAME)` / `dns.lookup(NAME, { family: 4 })` (Node 20 adds
 * no hints by itself) do resolve. Giving the namespace any other IPv4 address
 * (`addAddress('10.99.255.1/32')`, or a veth address) makes ADDRCONFIG
 * lookups work too.
 */

/** Why namespace tests cannot run here, or undefined when they can. */
export const NETNS_UNAVAILABLE: string | undefined =
  process.platform !== 'linux'
    ? `Linux namespaces need Linux, this is ${process.platform}`
    : process.getuid?.() !== 0
      ? `namespace tests need root (CAP_SYS_ADMIN, CAP_NET_ADMIN), running as uid ${process.getuid?.()}`
      : undefined;

/** How long a namespace operation may take: generous, machines are noisy. */
export const NETNS_TIMEOUT = 30_000;

export interface NamespaceExecOptions {
  /** Written to the command's standard input, which is then closed. */
  input?: string | Buffer;
  /** Kill the command (SIGKILL) and reject after this many ms; default NETNS_TIMEOUT. */
  timeout?: number;
  /** The command's whole environment; default this process's. */
  env?: NodeJS.ProcessEnv;
  /** Working directory inside (nsenter `--wd`); default this process's. */
  cwd?: string;
}

export interface NamespaceExecResult {
  /** Exit code, or 128 + signal number when a signal ended it. */
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface NamespaceSpawnOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Default `['ignore', 'pipe', 'pipe']`. */
  stdio?: StdioOptions;
}

/**
 * A process started inside a namespace. The ChildProcess is the `nsenter`
 * that started it: nsenter exits as the command does (same code, same
 * signal), but forwards no signals, so `kill()` here is replaced by one that
 * signals the command itself.
 */
export interface NamespaceChild extends ChildProcess {
  /** The command's PID as the host sees it (undefined until nsenter has forked it, and after it exited). */
  commandPid(): number | undefined;
  /** Resolves with the exit code (or 128 + signal number) once the command has ended. */
  readonly exited: Promise<number>;
}

/** A "container": fresh PID, network and mount namespaces held open by a process. */
export interface Namespace {
  /** For messages and interface names. */
  readonly name: string;
  /** Host PID of the holder (PID 1 inside): the target for `nsenter --target`. */
  readonly pid: number;
  /** Run a command inside to completion; a non-zero exit is a result, not an error. */
  exec(command: string, args?: string[], options?: NamespaceExecOptions): Promise<NamespaceExecResult>;
  /** Start a long-running command inside; killed with the namespace at `close()`. */
  spawn(command: string, args?: string[], options?: NamespaceSpawnOptions): NamespaceChild;
  /**
   * Bind-mount `hostPath` over `pathInside` in this namespace's mount
   * namespace only (propagation is private: the host never sees it, and it
   * vanishes with the namespace). `pathInside` must exist, e.g.
   * /etc/resolv.conf. `hostPath` must be on a filesystem mounted before the
   * namespace was created (temp files under /tmp are).
   */
  bindMount(hostPath: string, pathInside: string): Promise<void>;
  /** `ip address add CIDR dev DEV` inside. */
  addAddress(cidr: string, dev?: string): Promise<void>;
  /** Host PIDs of every process now in this namespace's PID namespace (the holder included). */
  processes(): number[];
  /** Kill everything inside (SIGKILL to PID 1) and wait until it has ended. Safe to call twice. */
  close(): Promise<void>;
}

let sequence = 0;

/** Signals that stop a process (and so, as nsenter mirrors it, its nsenter). */
const STOP_SIGNALS = new Set<NodeJS.Signals | number>(['SIGSTOP', 'SIGTSTP', 'SIGTTIN', 'SIGTTOU', constants.signals.SIGSTOP, constants.signals.SIGTSTP, constants.signals.SIGTTIN, constants.signals.SIGTTOU]);

/**
 * Create a "container" and bring its `lo` up. Inside a test it is closed
 * when the test ends, pass or fail; created elsewhere (`beforeAll`), the
 * caller closes it. Should this process die without closing it, the kernel
 * kills the holder too (parent-death signal), so nothing is left behind.
 * Creation takes some tens of milliseconds.
 */
export async function createNamespace(options: { name?: string } = {}): Promise<Namespace> {
  if (NETNS_UNAVAILABLE !== undefined) throw new Error(`cannot create namespace: ${NETNS_UNAVAILABLE}`);
  const name = options.name ?? `ns${++sequence}`;
  // setpriv --pdeathsig: unshare gets SIGKILL if this (test worker) process
  // dies; --kill-child: the holder gets SIGKILL if unshare dies; the kernel
  // kills every process of a PID namespace when its PID 1 dies.
  const unshare = spawnProcess(
    tool('setpriv'),
    ['--pdeathsig', 'SIGKILL', '--', tool('unshare'), '--pid', '--net', '--mount', '--fork', '--kill-child', '--mount-proc', '--', 'sleep', 'infinity'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let unshareStderr = '';
  unshare.stderr?.on('data', (chunk: Buffer) => (unshareStderr += chunk.toString()));
  const unshareExited = new Promise<void>((resolve) => unshare.once('exit', () => resolve()));
  const unshareRunning = (): boolean => unshare.exitCode === null && unshare.signalCode === null;

  const children = new Set<NamespaceChild>();
  let holder: number | undefined;
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      // Only while unshare runs is the holder PID sure to be ours (alive, or
      // a zombie unshare has not reaped yet): never signal a reused PID.
      if (holder !== undefined && unshareRunning()) signal(holder, 'SIGKILL');
      else if (unshareRunning()) unshare.kill('SIGKILL');
      await withDeadline(unshareExited, `namespace "${name}": holder did not exit`);
      // Processes inside died with PID 1; their nsenter parents follow.
      await withDeadline(Promise.all([...children].map((child) => child.exited)), `namespace "${name}": processes inside did not exit`);
    })());
  try {
    onTestFinished(close, NETNS_TIMEOUT);
  } catch {
    // Not inside a test: the caller closes.
  }

  try {
    holder = await waitForHolder(unshare.pid, unshareRunning, () => unshareStderr);
  } catch (error) {
    await close();
    throw error;
  }
  const pid = holder;
  const pidNamespace = readlinkSync(`/proc/${pid}/ns/pid`);

  const spawnInside = (command: string, args: string[] = [], spawnOptions: NamespaceSpawnOptions = {}): NamespaceChild => {
    if (closing) throw new Error(`cannot run "${command}" in namespace "${name}": it is closed`);
    const child = spawnProcess(
      tool('nsenter'),
      [
        '--target',
        String(pid),
        '--net',
        '--mount',
        '--pid',
        `--wd=${spawnOptions.cwd ?? process.cwd()}`,
        '--',
        // Should nsenter be killed, the command goes with it.
        tool('setpriv'),
        '--pdeathsig',
        'SIGKILL',
        '--',
        command,
        ...args,
      ],
      { env: spawnOptions.env ?? process.env, stdio: spawnOptions.stdio ?? ['ignore', 'pipe', 'pipe'] },
    ) as NamespaceChild;
    const exited = new Promise<number>((resolve) => {
      child.once('exit', (code, exitSignal) => resolve(code ?? 128 + (exitSignal ? signalNumber(exitSignal) : 0)));
    });
    // A failed spawn also emits 'exit'; swallow 'error' so it is not unhandled.
    child.on('error', () => undefined);
    const nsenterKill = child.kill.bind(child);
    const commandPid = (): number | undefined => (child.exitCode === null && child.signalCode === null ? childPids(child.pid)[0] : undefined);
    Object.assign(child, {
      exited,
      commandPid,
      kill: (killSignal: NodeJS.Signals | number = 'SIGTERM'): boolean => {
        const inner = commandPid();
        // Not forked yet: kill nsenter, and so whatever it forks (pdeathsig).
        if (inner === undefined) return nsenterKill(killSignal);
        const sent = signal(inner, killSignal);
        // nsenter mirrors a stopped command: it stops itself, and when continued
        // continues the command. A SIGCONT (or SIGKILL, SIGTERM) sent to a stopped
        // command alone would leave nsenter stopped, never reaping it: continue both.
        if (!STOP_SIGNALS.has(killSignal)) nsenterKill('SIGCONT');
        return sent;
      },
    });
    children.add(child);
    void exited.then(() => children.delete(child));
    return child;
  };

  const exec = async (command: string, args: string[] = [], execOptions: NamespaceExecOptions = {}): Promise<NamespaceExecResult> => {
    const child = spawnInside(command, args, { env: execOptions.env, cwd: execOptions.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdin?.on('error', () => undefined); // EPIPE when the command does not read
    child.stdin?.end(execOptions.input);
    const timeout = execOptions.timeout ?? NETNS_TIMEOUT;
    let timedOut = false;
    const timer = setTimeout(() => ((timedOut = true), child.kill('SIGKILL')), timeout);
    // 'close', not 'exit': all output has been read.
    const [code, exitSignal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('close', (c, s) => resolve([c, s])));
    clearTimeout(timer);
    if (timedOut) throw new Error(`cannot run "${[command, ...args].join(' ')}" in namespace "${name}": no exit within ${timeout} ms; stdout: ${stdout}; stderr: ${stderr}`);
    return { code: code ?? 128 + (exitSignal ? signalNumber(exitSignal) : 0), signal: exitSignal, stdout, stderr };
  };

  const run = async (command: string, args: string[]): Promise<void> => {
    const result = await exec(command, args);
    if (result.code !== 0) throw new Error(`cannot run "${[command, ...args].join(' ')}" in namespace "${name}": exit ${result.code}: ${result.stderr.trim()}`);
  };

  const namespace: Namespace = {
    name,
    pid,
    exec,
    spawn: spawnInside,
    bindMount: (hostPath, pathInside) => run('mount', ['--bind', hostPath, pathInside]),
    addAddress: (cidr, dev = 'lo') => run(tool('ip'), ['address', 'add', cidr, 'dev', dev]),
    processes: () => processesIn(pidNamespace),
    close,
  };
  try {
    await run(tool('ip'), ['link', 'set', 'lo', 'up']);
  } catch (error) {
    await close();
    throw error;
  }
  return namespace;
}

export interface NamespaceLink {
  /** The veth end in `a`, and its address without the prefix length. */
  aInterface: string;
  aHost: string;
  bInterface: string;
  bHost: string;
}

/**
 * Link two namespaces with a veth pair, one end in each, addresses set and
 * both ends up. Interface names are unique per test process (at most 15
 * characters, the kernel's limit). Use private addresses such as
 * 10.99.x.0/24: they exist only inside these namespaces.
 */
export async function connectNamespaces(a: Namespace, b: Namespace, options: { aAddress: string; bAddress: string }): Promise<NamespaceLink> {
  const id = `sl${process.pid.toString(36)}${(++sequence).toString(36)}`.slice(-13);
  const aInterface = `${id}a`;
  const bInterface = `${id}b`;
  // From the host, as root: each end is created directly in its namespace.
  const result = await execHost(tool('ip'), ['link', 'add', aInterface, 'netns', String(a.pid), 'type', 'veth', 'peer', 'name', bInterface, 'netns', String(b.pid)]);
  if (result.code !== 0) throw new Error(`cannot link namespaces "${a.name}" and "${b.name}" with a veth pair: ${result.stderr.trim()}`);
  for (const [ns, dev, address] of [
    [a, aInterface, options.aAddress],
    [b, bInterface, options.bAddress],
  ] as const) {
    await ns.addAddress(address, dev);
    const up = await ns.exec(tool('ip'), ['link', 'set', dev, 'up']);
    if (up.code !== 0) throw new Error(`cannot set "${dev}" up in namespace "${ns.name}": ${up.stderr.trim()}`);
  }
  return { aInterface, aHost: hostOf(options.aAddress), bInterface, bHost: hostOf(options.bAddress) };
}

export interface NamespaceDnsmasq {
  address: HostPort;
  process: NamespaceChild;
  /** dnsmasq's PID as the host sees it. */
  pid: number;
  stop(): Promise<void>;
}

// Debian installs it in /usr/sbin, which is not on every user's PATH.
const DNSMASQ = process.env.DNSMASQ ?? tool('dnsmasq');

/**
 * Start dnsmasq inside `ns` with only the records given (options as for
 * `startDnsmasq`), by default on the namespace's own 127.0.0.1:53. It
 * listens on exactly `listen.host` (`--bind-interfaces`, no `--interface`),
 * so that address must exist first (`connectNamespaces`, `addAddress`);
 * it does not also answer on 127.0.0.1 unless `extraArgs` adds
 * `--listen-address=127.0.0.1` (dnsmasq listens on the union).
 * Resolves once it answers `dig` inside the namespace; stopped when the test
 * ends, or with the namespace.
 */
export async function startDnsmasqIn(ns: Namespace, options: DnsmasqOptions = {}): Promise<NamespaceDnsmasq> {
  const address = options.listen ?? { host: '127.0.0.1', port: 53 };
  const args = dnsmasqArgs(address, options);
  const child = ns.spawn(DNSMASQ, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await child.exited;
  };
  try {
    onTestFinished(stop, NETNS_TIMEOUT);
  } catch {
    // Not inside a test: stopped by the caller or with the namespace.
  }
  const deadline = Date.now() + NETNS_TIMEOUT;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`cannot start dnsmasq in namespace "${ns.name}" on ${hostPort(address)}: ${stderr.trim()}`);
    const probe = await ns.exec('dig', [`@${address.host}`, '-p', String(address.port), 'ready.check.invalid', 'A', '+time=1', '+tries=1', '+nocookie']);
    // dig exits 0 on any reply (NXDOMAIN and REFUSED included), 9 on none.
    const pid = child.commandPid();
    if (probe.code === 0 && pid !== undefined) return { address, process: child, pid, stop };
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`cannot start dnsmasq in namespace "${ns.name}": no answer on ${hostPort(address)} within ${NETNS_TIMEOUT} ms: ${stderr.trim()}`);
    }
    await sleep(20);
  }
}

/** Wait until unshare has forked the holder and the holder runs `sleep` (so /proc is mounted); its host PID. */
async function waitForHolder(unsharePid: number | undefined, running: () => boolean, stderr: () => string): Promise<number> {
  const deadline = Date.now() + NETNS_TIMEOUT;
  for (;;) {
    if (!running() || unsharePid === undefined) throw new Error(`cannot create namespace with unshare: ${stderr().trim() || 'it exited'}`);
    const holder = childPids(unsharePid)[0];
    if (holder !== undefined && readOr(`/proc/${holder}/cmdline`, '').startsWith('sleep\0')) return holder;
    if (Date.now() > deadline) throw new Error(`cannot create namespace with unshare: no holder process within ${NETNS_TIMEOUT} ms`);
    await sleep(2);
  }
}

/** Host PIDs of the processes whose PID namespace is `pidNamespace` (a /proc/PID/ns/pid link). */
function processesIn(pidNamespace: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readlinkSync(`/proc/${entry}/ns/pid`) === pidNamespace) pids.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return pids;
}

function childPids(pid: number | undefined): number[] {
  if (pid === undefined) return [];
  return readOr(`/proc/${pid}/task/${pid}/children`, '')
    .split(/\s+/)
    .filter((field) => field !== '')
    .map(Number);
}

function readOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return fallback;
  }
}

function signal(pid: number, killSignal: NodeJS.Signals | number): boolean {
  try {
    process.kill(pid, killSignal);
    return true;
  } catch {
    return false; // already gone
  }
}

/** A command on the host, for what only the host can do (one veth end per namespace). */
async function execHost(command: string, args: string[]): Promise<{ code: number; stderr: string }> {
  const child = spawnProcess(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number>((resolve) => {
    child.once('error', (error) => ((stderr += error.message), resolve(127)));
    child.once('close', (c) => resolve(c ?? 1));
  });
  return { code, stderr };
}

async function withDeadline<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} within ${NETNS_TIMEOUT} ms`)), NETNS_TIMEOUT);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** An absolute path for a system tool: PATH first, then the sbin directories root's PATH would have. */
function tool(name: string): string {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  for (const dir of dirs) {
    if (dir !== '' && existsSync(join(dir, name))) return join(dir, name);
  }
  return name;
}

function hostOf(cidr: string): string {
  return cidr.split('/')[0] ?? cidr;
}

function hostPort(address: HostPort): string {
  return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

function signalNumber(killSignal: NodeJS.Signals): number {
  return constants.signals[killSignal] ?? 0;
}

/**
 * The hygiene the suite depends on, proved on the helpers themselves:
 * etcd, dnsmasq and srvlink started through them die with the process that
 * started them, however it dies (a worker SIGKILLed or crashed runs no
 * cleanup); and a server started again finds its released port taken (a
 * test in parallel took it) and comes up on a fresh one.
 */
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import { dig } from './dig.js';
import { startDnsmasq } from './dnsmasq.js';
import { startEtcd } from './etcd.js';
import { tempDir } from './temp-dir.js';
import { waitFor } from './wait-for.js';

const helper = (name: string): string => JSON.stringify(pathToFileURL(fileURLToPath(new URL(name, import.meta.url))).href);

/**
 * Module hooks that let plain node import the TypeScript helpers:
 * `./x.js` finds `./x.ts`, and `.ts` is stripped of its types by esbuild.
 */
const HOOKS = `
import esbuild from ${JSON.stringify(pathToFileURL(createRequire(import.meta.url).resolve('esbuild')).href)};
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
export async function resolve(specifier, context, next) {
  try {
    return await next(specifier, context);
  } catch (err) {
    if (!specifier.endsWith('.js') || !context.parentURL?.startsWith('file:')) throw err;
    const url = new URL(specifier.slice(0, -3) + '.ts', context.parentURL);
    if (!existsSync(fileURLToPath(url))) throw err;
    return { url: url.href, shortCircuit: true };
  }
}
export async function load(url, context, next) {
  if (!url.startsWith('file:') || !url.endsWith('.ts')) return next(url, context);
  const source = await readFile(fileURLToPath(url), 'utf8');
  const { code } = await esbuild.transform(source, { loader: 'ts', format: 'esm', target: 'node20', sourcefile: fileURLToPath(url) });
  return { format: 'module', source: code, shortCircuit: true };
}
`;

/**
 * A worker without vitest: starts etcd, dnsmasq and `srvlink dns --etcd`
 * through the helpers, prints their PIDs, then waits: to be killed, or to
 * be told "crash" on stdin and die of an uncaught exception.
 */
const WORKER = `
import { startEtcd } from ${helper('./etcd.ts')};
import { startDnsmasq } from ${helper('./dnsmasq.ts')};
import { spawnSrvlink } from ${helper('./srvlink-process.ts')};
const etcd = await startEtcd();
const dnsmasq = await startDnsmasq({ srv: [{ name: '_svc._tcp.skydns.local', target: 'svc.skydns.local', port: 1 }] });
const dns = spawnSrvlink(['dns', '--listen', '127.0.0.1:0', '--etcd', etcd.endpoints.join(',')]);
await dns.waitForLog((line) => line.msg === 'dns server listening');
process.stdout.write(JSON.stringify({ etcd: etcd.members[0].pid, dnsmasq: dnsmasq.process.pid, srvlink: dns.child.pid }) + '\\n');
process.stdin.on('data', (data) => {
  if (String(data).includes('crash')) throw new Error('the worker crashed');
});
`;

/** A process by PID and start time (field 22 of /proc/PID/stat): a PID reused later is another process. */
interface ProcessId {
  pid: number;
  startTime: string;
}

function identify(pid: number): ProcessId {
  return { pid, startTime: statFields(pid)?.[19] ?? '' };
}

/** The fields of /proc/PID/stat after the command name, or undefined when it has gone. */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** Gone: no such PID, another process under it, or a zombie (dead, waiting for init to reap it). */
function gone(process: ProcessId): boolean {
  const fields = statFields(process.pid);
  return fields === undefined || fields[19] !== process.startTime || fields[0] === 'Z';
}

function command(pid: number): string {
  return existsSync(`/proc/${pid}/comm`) ? readFileSync(`/proc/${pid}/comm`, 'utf8').trim() : '';
}

/** Hold `port` on 127.0.0.1 for TCP and UDP until the test ends, as another test would. */
async function occupy(port: number): Promise<void> {
  const tcp = createServer();
  tcp.listen(port, '127.0.0.1');
  await once(tcp, 'listening');
  const udp = createSocket('udp4');
  udp.bind(port, '127.0.0.1');
  await once(udp, 'listening');
  onTestFinished(() => {
    tcp.close();
    udp.close();
  });
}

describe('children started through the helpers', () => {
  it.each(['SIGKILL', 'an uncaught exception'])('die with a worker ended by %s: etcd, dnsmasq and srvlink', async (ending) => {
    const dir = tempDir();
    writeFileSync(join(dir, 'hooks.mjs'), HOOKS);
    writeFileSync(join(dir, 'register.mjs'), "import { register } from 'node:module';\nregister('./hooks.mjs', import.meta.url);\n");
    writeFileSync(join(dir, 'worker.mjs'), WORKER);
    // The worker dies with this one too, should this one die first.
    const worker = spawn('setpriv', ['--pdeathsig', 'KILL', '--', process.execPath, '--import', pathToFileURL(join(dir, 'register.mjs')).href, join(dir, 'worker.mjs')], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stderr = '';
    worker.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = once(worker, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    onTestFinished(() => void worker.kill('SIGKILL'));

    const lines = createInterface({ input: worker.stdout });
    const first = await Promise.race([
      once(lines, 'line').then(([line]) => String(line)),
      exited.then(([code]) => Promise.reject(new Error(`the worker exited with ${code} before starting its children: ${stderr}`))),
    ]);
    const pids = JSON.parse(first) as Record<string, number>;
    // setpriv execs each of them: the PID a helper reports is the server's own.
    expect(Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, command(pid)]))).toEqual({ etcd: 'etcd', dnsmasq: 'dnsmasq', srvlink: 'node' });
    const children = Object.values(pids).map(identify);
    expect(children.filter(gone)).toEqual([]);

    if (ending === 'SIGKILL') worker.kill('SIGKILL');
    else worker.stdin.write('crash\n');
    const [code, signal] = await exited;
    expect(ending === 'SIGKILL' ? signal : code).toBe(ending === 'SIGKILL' ? 'SIGKILL' : 1);
    // No cleanup ran in the worker: only the kernel's parent-death signal ends them.
    await waitFor(() => children.every(gone), { what: `the worker's children ${JSON.stringify(pids)} to die` });
  });
});

describe('a server started again on a port taken meanwhile', () => {
  it('dnsmasq: the same port when it is free, a fresh one when another process holds it', async () => {
    const srv = { name: '_svc._tcp.skydns.local', target: 'svc.skydns.local', port: 7001 };
    const dnsmasq = await startDnsmasq({ srv: [srv], hosts: [{ name: 'svc.skydns.local', address: '127.0.0.1' }] });
    const first = dnsmasq.address;
    await dnsmasq.stop();
    await dnsmasq.start();
    expect(dnsmasq.address).toEqual(first);

    await dnsmasq.stop();
    await occupy(first.port);
    await dnsmasq.start({ srv: [{ ...srv, port: 7002 }] });
    expect(dnsmasq.address.port).not.toBe(first.port);
    expect((await dig(dnsmasq.address, srv.name, 'SRV')).answer.map((r) => r.data)).toEqual(['0 0 7002 svc.skydns.local.']);
  });

  it('a lone etcd member: a fresh client and peer port, the same data dir', async () => {
    const etcd = await startEtcd();
    const member = etcd.members[0];
    if (member === undefined) throw new Error('no member');
    expect((await etcd.etcdctl(['put', '/skydns/kept', 'v1'])).code).toBe(0);
    const before = { endpoint: member.endpoint, peer: member.peerUrl };
    await member.stop();
    await occupy(Number(new URL(before.endpoint).port));
    await occupy(Number(new URL(before.peer).port));
    await member.start();
    expect(member.endpoint).not.toBe(before.endpoint);
    expect(member.peerUrl).not.toBe(before.peer);
    expect(etcd.endpoints).toEqual([member.endpoint]);
    expect((await etcd.etcdctl(['get', '/skydns/kept', '--print-value-only'])).stdout.trim()).toBe('v1');
  });

  it('a member of three: its peer URL moved in the membership, it rejoins and catches up', async () => {
    const etcd = await startEtcd({ size: 3 });
    const [, member] = etcd.members;
    if (member === undefined) throw new Error('no member');
    const before = { endpoint: member.endpoint, peer: member.peerUrl };
    await member.stop();
    await occupy(Number(new URL(before.endpoint).port));
    await occupy(Number(new URL(before.peer).port));
    expect((await etcd.etcdctl(['put', '/skydns/while-down', 'v2'])).code).toBe(0);
    await member.start();
    expect(member.peerUrl).not.toBe(before.peer);
    expect(member.endpoint).not.toBe(before.endpoint);
    const list = await etcd.etcdctl(['member', 'list']);
    expect(list.stdout).toContain(`, started, ${member.name}, ${member.peerUrl}, ${member.endpoint}`);
    // A serializable read answers from the member's own data: it has caught up through its new peer URL.
    await waitFor(
      async () => (await etcd.etcdctl([`--endpoints=${member.endpoint}`, 'get', '/skydns/while-down', '--print-value-only', '--consistency=s'])).stdout.trim() === 'v2',
      { what: `${member.name} to catch up`, timeout: 30_000, interval: 100 },
    );
    expect((await etcd.etcdctl(['endpoint', 'health'])).code).toBe(0);
  });
});

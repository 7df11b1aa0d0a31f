import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { Resolver } from 'node:dns/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { demoRecords } from '../skydns/demo-records.js';
import { spawnOwned } from '../core/own-children.js';

/**
 * `make demo`: the whole idea on one machine in under a minute, as an
 * ordinary user, with no etcd and no fixed ports. Three backends on free
 * ports, `srvlink dns` serving their SRV records, `srvlink run` in front, and
 * traffic through it while backends are stopped.
 */
const main = fileURLToPath(new URL('../main.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'srvlink-demo-'));
const children: ChildProcess[] = [];
const NAMES = ['alpha', 'beta', 'gamma'] as const;
type Name = (typeof NAMES)[number];

function say(text = ''): void {
  process.stdout.write(`${text}\n`);
}

/** A backend that says who it is and closes. */
async function startBackend(name: Name): Promise<{ server: Server; port: number; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.end(`${name}\n`);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as { port: number }).port, sockets };
}

/**
 * Start `srvlink ARGS`; for each of `messages`, a promise of the `address` in
 * its first log line with that msg. Warnings are shown as they come.
 */
function startSrvlinkLogs<M extends string>(args: string[], messages: readonly M[]): Record<M, Promise<string>> {
  const child = spawnOwned(process.execPath, [main, ...args], { stdio: ['ignore', 'inherit', 'pipe'] });
  children.push(child);
  const waiting = new Map<string, (address: string) => void>();
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`srvlink ${args.join(' ')} exited with ${code}`))));
  exited.catch(() => undefined);
  const result = Object.fromEntries(
    messages.map((msg) => [msg, Promise.race([new Promise<string>((resolve) => waiting.set(msg, resolve)), exited])]),
  ) as Record<M, Promise<string>>;
  let buffered = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    let newline: number;
    while ((newline = buffered.indexOf('\n')) !== -1) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      try {
        const entry = JSON.parse(line) as { msg?: string; address?: string; level?: string };
        const resolve = entry.msg === undefined ? undefined : waiting.get(entry.msg);
        if (resolve && entry.address) {
          waiting.delete(entry.msg as string);
          resolve(entry.address);
        }
        if (entry.level === 'warn' || entry.level === 'error') say(`   [srvlink ${args[0]}] ${entry.level}: ${entry.msg}`);
      } catch {
        process.stderr.write(`${line}\n`);
      }
    }
  });
  return result;
}

/** Start `srvlink ARGS` and resolve with the `address` of its first log line whose msg is `msg`. */
function startSrvlink(args: string[], msg: string): Promise<string> {
  return startSrvlinkLogs(args, [msg])[msg] as Promise<string>;
}

/** One A query to the stub, with dig when it is installed, else with Node's resolver (c-ares): clients we did not write. */
async function askStub(stub: string, name: string): Promise<string> {
  const [stubHost = '127.0.0.1', stubPort = '53'] = stub.split(':');
  const dig = spawnSync('dig', [`@${stubHost}`, '-p', stubPort, name, 'A', '+noall', '+answer'], { encoding: 'utf8' });
  if (dig.status === 0 && dig.stdout.trim() !== '') return `dig @${stubHost} -p ${stubPort} ${name}  →  ${dig.stdout.trim().replace(/\s+/g, ' ')}`;
  const resolver = new Resolver();
  resolver.setServers([stub]);
  const addresses = await resolver.resolve4(name);
  return `A ${name} (asked with Node's resolver; install dig to see dig do it)  →  ${addresses.join(', ')}`;
}

/** Open `count` connections (a few at a time) and tally who answered; failures count as such. */
async function drive(host: string, port: number, count: number): Promise<Record<Name | 'failed', number>> {
  const tally: Record<Name | 'failed', number> = { alpha: 0, beta: 0, gamma: 0, failed: 0 };
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const socket = connect(port, host);
      let reply = '';
      socket.on('data', (chunk: Buffer) => (reply += chunk.toString()));
      socket.on('error', () => undefined);
      socket.on('close', () => {
        const name = reply.trim() as Name;
        if (NAMES.includes(name)) tally[name]++;
        else tally.failed++;
        resolve();
      });
    });
  let started = 0;
  const worker = async (): Promise<void> => {
    while (started < count) {
      started++;
      await one();
    }
  };
  await Promise.all(Array.from({ length: 10 }, worker));
  return tally;
}

function share(tally: Record<Name | 'failed', number>, total: number): string {
  const pct = (n: number): string => `${Math.round((100 * n) / total)}%`.padStart(4);
  return `alpha ${pct(tally.alpha)}   beta ${pct(tally.beta)}   gamma ${pct(tally.gamma)}   failed connections: ${tally.failed}`;
}

async function run(): Promise<number> {
  const backends = {
    alpha: await startBackend('alpha'),
    beta: await startBackend('beta'),
    gamma: await startBackend('gamma'),
  };
  const records = demoRecords({ alpha: backends.alpha.port, beta: backends.beta.port, gamma: backends.gamma.port });
  const demoOnly = Object.fromEntries(Object.entries(records).filter(([key]) => key.includes('/_demo/')));
  const recordsFile = join(dir, 'records.yaml');
  writeFileSync(recordsFile, stringify(demoOnly));
  say('== three backends of service "demo", registered the SkyDNS way (etcd keys, here a file):');
  for (const [key, value] of Object.entries(demoOnly)) say(`   ${key}  ${JSON.stringify(value)}`);

  const dnsAddress = await startSrvlink(['dns', '--listen', '127.0.0.1:0', '--records', recordsFile], 'dns server listening');
  say(`\n== srvlink dns serves them as SRV records on ${dnsAddress}:`);
  const resolved = spawnSync(process.execPath, [main, 'resolve', 'demo', '--domain', 'env1.skydns.local', '--cluster-dns', dnsAddress], { encoding: 'utf8' });
  process.stdout.write(resolved.stdout.replace(/^(?=.)/gm, '   '));

  // The stub goes on a free port: 127.0.0.1:53 may be taken, or need root.
  const run = startSrvlinkLogs(
    ['run', '--domain', 'env1.skydns.local', '--cluster-dns', dnsAddress, '--upstream', dnsAddress, '--map', '127.0.0.1:0=demo', '--dns-listen', '127.0.0.1:0', '--connect-timeout', '1s'],
    ['listening', 'dns stub listening'],
  );
  const listen = await run.listening;
  const stubAddress = await run['dns stub listening'];
  const [host = '127.0.0.1', portText = '0'] = listen.split(':');
  const port = Number(portText);
  say(`== srvlink run listens on ${listen} for "demo"; an app connects there as if it were the service itself.`);
  say(`   Its DNS stub (in a container: 127.0.0.1:53) answers the app's name for the service with that address:`);
  say(`   ${await askStub(stubAddress, 'demo')}`);

  const total = 400;
  say(`\n== ${total} connections, all backends up (priority 10: alpha weight 3, beta weight 1; gamma is priority 20):`);
  say(`   ${share(await drive(host, port, total), total)}`);

  const stop = async (name: Name): Promise<void> => {
    backends[name].server.close();
    for (const socket of backends[name].sockets) socket.destroy();
    await once(backends[name].server, 'close');
  };
  await stop('alpha');
  say(`\n== alpha stopped (its port now refuses connections); ${total} more connections:`);
  say(`   ${share(await drive(host, port, total), total)}`);

  await stop('beta');
  say(`\n== beta stopped too: priority 10 is gone, so priority 20 takes over; ${total} more connections:`);
  say(`   ${share(await drive(host, port, total), total)}`);
  say('\n   srvlink tried the next backend whenever one refused, and ejected the dead ones after 3 failures in a row.');

  await stop('gamma');
  return 0;
}

function cleanup(): void {
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}

process.on('exit', cleanup);
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130));
run().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);

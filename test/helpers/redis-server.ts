import type { ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { freePort } from './free-port.js';
import { spawnServer } from './server-process.js';
import { waitFor } from './wait-for.js';

/** A redis-server of its own (Debian's redis-server) on a loopback port, no persistence. */
export interface RedisServer {
  readonly port: number;
  readonly child: ChildProcess;
  log(): string;
  /** Send a signal (SIGSTOP/SIGCONT freeze and thaw it); SIGKILL/SIGTERM wait for the exit. */
  kill(signal: NodeJS.Signals): Promise<void>;
}

/** Start `redis-server --port P --save ''` (and `--requirepass` when given); killed with the test. */
export async function startRedis(options: { password?: string } = {}): Promise<RedisServer> {
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--logfile', ''];
  if (options.password !== undefined) args.push('--requirepass', options.password);
  const spawned = spawnServer('redis-server', args);
  const { child, log } = spawned;
  const server: RedisServer = { port, child, log, kill: spawned.kill };
  await waitFor(
    async () => {
      if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}: ${log()}`);
      return /Ready to accept connections/.test(log()) || (await accepts(port));
    },
    { what: `redis-server on port ${port}`, interval: 50 },
  );
  return server;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.end();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

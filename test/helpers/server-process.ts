import { spawn, type ChildProcess } from 'node:child_process';
import { onTestFinished } from 'vitest';

/** A third-party server process a test started: its output, and signals that wait where they should. */
export interface ServerProcess {
  readonly child: ChildProcess;
  /** Everything it wrote to stdout and stderr so far. */
  log(): string;
  /** Send a signal (SIGSTOP/SIGCONT freeze and thaw it); SIGKILL and SIGTERM thaw it first and wait for the exit. */
  kill(signal: NodeJS.Signals): Promise<void>;
}

/**
 * Spawn `command` under `setpriv --pdeathsig KILL` (it dies with the test
 * worker, even if the worker crashes), collect its output, and kill it when
 * the test ends.
 */
export function spawnServer(command: string, args: readonly string[], options: { cwd?: string; setpriv?: readonly string[] } = {}): ServerProcess {
  const child = spawn('setpriv', [...(options.setpriv ?? []), '--pdeathsig', 'KILL', command, ...args], {
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.on('error', (err) => (log += `cannot start ${command}: ${err.message}\n`));
  child.stdout.on('data', (chunk: Buffer) => (log += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (log += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const server: ServerProcess = {
    child,
    log: () => log,
    kill: async (signal) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const ends = signal === 'SIGKILL' || signal === 'SIGTERM';
      if (ends) child.kill('SIGCONT');
      child.kill(signal);
      if (ends) await exited;
    },
  };
  onTestFinished(() => server.kill('SIGKILL'));
  return server;
}

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { onTestFailed, onTestFinished } from 'vitest';
import type { LogLine } from './log-line.js';

/** The built executable: tests run what users run (`make test` builds first). */
export const SRVLINK_MAIN = fileURLToPath(new URL('../../dist/main.js', import.meta.url));

/**
 * `srvlink run` serves its admin endpoint on 127.0.0.1:9053 by default, a
 * fixed port parallel tests would fight over: off unless a test asks for it
 * (`--admin 127.0.0.1:0`, or SRVLINK_ADMIN in `env`).
 */
const QUIET_ADMIN = { SRVLINK_ADMIN: 'none' };

/**
 * srvlink runs under `setpriv --pdeathsig KILL`: the kernel kills it when
 * this process dies, however it dies (a crashed or killed test worker runs
 * no cleanup). setpriv execs node, so the child's PID is srvlink's and
 * signals reach srvlink itself.
 */
const DIES_WITH_US = ['--pdeathsig', 'KILL', '--'];

/** How long to wait for a process to get ready or to end: generous, machines are noisy. */
export const PROCESS_TIMEOUT = 30_000;

/** A running `srvlink` process with its structured log. */
export interface SrvlinkProcess {
  child: ChildProcess;
  logs: LogLine[];
  /** Resolves with the first log line for which `match` is true (already seen or future). */
  waitForLog(match: (line: LogLine) => boolean, timeout?: number): Promise<LogLine>;
  /** Resolves with the exit code (or 128 + signal) once the process has ended. */
  exited: Promise<number>;
  stdout(): string;
  /** Send `signal` and wait for the exit. */
  stop(signal?: NodeJS.Signals): Promise<number>;
}

export interface SpawnSrvlinkOptions {
  env?: NodeJS.ProcessEnv;
  /**
   * Starts the process (stdout and stderr piped); default: a child of this
   * process. A namespace's `spawn` runs it inside a "container".
   */
  spawner?: (command: string, args: string[], env: NodeJS.ProcessEnv) => ChildProcess;
}

/**
 * Start `srvlink ARGS...` and register its cleanup with the running test
 * (SIGKILL if it is still alive when the test ends, pass or fail); it dies
 * with this process too (DIES_WITH_US, or the namespace's own setpriv).
 */
export function spawnSrvlink(args: string[], options: SpawnSrvlinkOptions = {}): SrvlinkProcess {
  const env = { ...process.env, ...QUIET_ADMIN, ...options.env };
  const child = options.spawner
    ? options.spawner(process.execPath, [SRVLINK_MAIN, ...args], env)
    : spawn('setpriv', [...DIES_WITH_US, process.execPath, SRVLINK_MAIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: LogLine[] = [];
  const waiters: { match: (line: LogLine) => boolean; resolve: (line: LogLine) => void }[] = [];
  let out = '';
  let rest = '';
  let stderrText = '';
  child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => {
    rest += chunk.toString();
    stderrText += chunk.toString();
    let newline: number;
    while ((newline = rest.indexOf('\n')) !== -1) {
      const text = rest.slice(0, newline);
      rest = rest.slice(newline + 1);
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        line = { level: 'raw', msg: text };
      }
      logs.push(line);
      for (const waiter of [...waiters]) {
        if (waiter.match(line)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(line);
        }
      }
    }
  });
  const exited = new Promise<number>((resolve) => {
    child.on('exit', (code, signal) => resolve(code ?? 128 + (signal ? signalNumber(signal) : 0)));
  });
  try {
    // What srvlink said is the first thing to read when a test fails (CI shows only the test's output).
    onTestFailed(() => {
      const tail = stderrText.split('\n').slice(-60).join('\n');
      console.error(`srvlink ${args.join(' ')} (pid ${child.pid ?? '?'}), the end of its stderr:\n${tail}`);
    });
    onTestFinished(async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    });
  } catch {
    // Not inside a test: the caller stops it (and it dies with this process).
  }
  const waitForLog = (match: (line: LogLine) => boolean, timeout = PROCESS_TIMEOUT): Promise<LogLine> => {
    const seen = logs.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`srvlink ${args.join(' ')}: no matching log line within ${timeout} ms; stderr:\n${stderrText}`)), timeout);
      waiters.push({ match, resolve: (line) => (clearTimeout(timer), resolve(line)) });
      void exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`srvlink ${args.join(' ')} exited with ${code} before the expected log line; stderr:\n${stderrText}`));
      });
    });
  };
  return {
    child,
    logs,
    waitForLog,
    exited,
    stdout: () => out,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** What a finished `srvlink` run left: exit code, output, and stderr read as log lines. */
export interface SrvlinkRun {
  code: number;
  stdout: string;
  stderr: string;
  /** stderr, one parsed JSON object per line (a line that is not JSON has level `raw`). */
  lines: LogLine[];
  /** The `msg` of every stderr line, one per line: what a user reads. */
  messages: string;
}

/** Parse stderr text into log lines; a line that is not one JSON object becomes `{ level: 'raw', msg: text }`. */
export function parseLogLines(text: string): LogLine[] {
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      try {
        const parsed = JSON.parse(line) as unknown;
        if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) return parsed as LogLine;
      } catch {
        // Not JSON: kept raw below.
      }
      return { level: 'raw', msg: line };
    });
}

/** Run `srvlink ARGS...` to completion. */
export async function runSrvlink(args: string[], options: { env?: NodeJS.ProcessEnv } = {}): Promise<SrvlinkRun> {
  const child = spawn('setpriv', [...DIES_WITH_US, process.execPath, SRVLINK_MAIN, ...args], {
    env: { ...process.env, ...QUIET_ADMIN, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), PROCESS_TIMEOUT);
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  clearTimeout(timer);
  const lines = parseLogLines(stderr);
  return { code: code ?? 128 + (signal ? signalNumber(signal) : 0), stdout, stderr, lines, messages: lines.map((line) => line.msg).join('\n') };
}

function signalNumber(signal: NodeJS.Signals): number {
  const numbers: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15 };
  return numbers[signal] ?? 0;
}

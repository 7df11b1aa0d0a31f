import { spawn, type ChildProcess } from 'node:child_process';

/** Where a started process can be found and how to wait for what it says. */
export interface OwnedProcess {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Resolves with the exit code (or the signal's name) once it has exited. */
  readonly exited: Promise<number | string>;
  /** The last lines it wrote on stdout and stderr. */
  tail(lines?: number): string;
  /** The first line (already written or still to come) that `match` accepts; rejects on exit or after `timeoutMs`. */
  waitForLine(match: (line: string) => boolean, what: string, timeoutMs?: number): Promise<string>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
}

export interface SpawnOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Keep stdin open as a pipe (closed by stop()); otherwise /dev/null. */
  readonly stdin?: boolean;
}

const KEPT_LINES = 50_000;
const everyone = new Set<ChildProcess>();

// Whatever ends the bench ends what it started: setpriv's PR_SET_PDEATHSIG
// covers a crash, this covers a normal exit and Ctrl-C.
process.once('exit', () => {
  for (const child of everyone) child.kill('SIGKILL');
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    for (const child of everyone) child.kill('SIGKILL');
    process.exit(130);
  });
}

/**
 * The processes one section started: each runs under
 * `setpriv --pdeathsig KILL`, so that it dies with the bench even when
 * the bench is killed, and `stopAll()` ends them together.
 */
export class ProcessGroup {
  readonly #members = new Set<OwnedProcess>();

  spawn(name: string, command: string, args: readonly string[], options: SpawnOptions = {}): OwnedProcess {
    const child = spawn('setpriv', ['--pdeathsig', 'KILL', command, ...args], {
      stdio: [options.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      env: options.env ?? process.env,
      cwd: options.cwd,
    });
    everyone.add(child);
    const lines: string[] = [];
    const waiters = new Set<(line: string) => void>();
    const onLine = (line: string): void => {
      lines.push(line);
      if (lines.length > KEPT_LINES) lines.splice(0, lines.length - KEPT_LINES);
      for (const waiter of waiters) waiter(line);
    };
    for (const stream of [child.stdout, child.stderr]) {
      let rest = '';
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk: string) => {
        const parts = (rest + chunk).split('\n');
        rest = parts.pop() ?? '';
        for (const part of parts) onLine(part);
      });
      stream?.on('end', () => rest && onLine(rest));
    }
    child.stdin?.on('error', () => undefined);
    const exited = new Promise<number | string>((resolve) => {
      child.once('error', (err) => {
        onLine(`cannot start ${command}: ${err.message}`);
        resolve(-1);
      });
      child.once('exit', (code, signal) => {
        everyone.delete(child);
        resolve(code ?? signal ?? -1);
      });
    });
    let ended = false;
    void exited.then(() => (ended = true));
    const owned: OwnedProcess = {
      name,
      pid: child.pid ?? -1,
      child,
      exited,
      tail: (count = 20) => lines.slice(-count).join('\n'),
      waitForLine: (match, what, timeoutMs = 30_000) => {
        const seen = lines.find(match);
        if (seen !== undefined) return Promise.resolve(seen);
        return new Promise<string>((resolve, reject) => {
          const done = (): void => {
            waiters.delete(waiter);
            clearTimeout(timer);
          };
          const waiter = (line: string): void => {
            if (!match(line)) return;
            done();
            resolve(line);
          };
          const timer = setTimeout(() => {
            done();
            reject(new Error(`${name}: no ${what} within ${timeoutMs} ms; last output:\n${owned.tail()}`));
          }, timeoutMs);
          waiters.add(waiter);
          void exited.then((status) => {
            if (!waiters.has(waiter)) return;
            done();
            reject(new Error(`${name} exited (${status}) before ${what}; last output:\n${owned.tail()}`));
          });
        });
      },
      stop: async (graceMs = 3000) => {
        if (!ended) {
          child.stdin?.end();
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
          await exited;
          clearTimeout(timer);
        }
        this.#members.delete(owned);
      },
    };
    this.#members.add(owned);
    return owned;
  }

  /** Run a command to its end: its exit status and everything it wrote. */
  async run(
    name: string,
    command: string,
    args: readonly string[],
    options: SpawnOptions & { timeoutMs?: number } = {},
  ): Promise<{ status: number | string; stdout: string; stderr: string }> {
    const owned = this.spawn(name, command, args, options);
    let stdout = '';
    let stderr = '';
    owned.child.stdout?.on('data', (chunk: string) => (stdout += chunk));
    owned.child.stderr?.on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => owned.child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    const status = await owned.exited;
    clearTimeout(timer);
    this.#members.delete(owned);
    return { status, stdout, stderr };
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.#members].map((member) => member.stop()));
  }
}

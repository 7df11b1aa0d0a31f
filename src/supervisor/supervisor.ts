import type { ChildProcess } from 'node:child_process';
import { SrvlinkError, errorMessage } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { spawnOwned } from '../core/own-children.js';
import { exitStatus } from './exit-status.js';

/** Signals passed on to the supervised command (docs/architecture.md §4.6). */
export const FORWARDED_SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'];

/** How the supervised command ended. */
export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The code, or 128 + the signal number. */
  status: number;
}

/**
 * The command's life: `starting` until it was spawned, `running`,
 * `stopping` once srvlink passed it a stop signal, `exited` with how it
 * ended. srvlink never restarts it (the container's restart policy does).
 */
export type SupervisedState =
  | { phase: 'starting' | 'running' | 'stopping'; pid: number | undefined; uptime: number }
  | { phase: 'exited'; pid: number | undefined; uptime: number; exit: ChildExit };

/** The command could not be executed: `status` is 127 (not found) or 126 (not executable), as a shell says. */
export class CommandError extends SrvlinkError {
  readonly status: number;

  constructor(code: 'ERR_COMMAND_NOT_FOUND' | 'ERR_COMMAND_NOT_EXECUTABLE', status: number, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'CommandError';
    this.status = status;
  }
}

export interface SupervisorOptions {
  command: string;
  args: readonly string[];
  /** The command's whole environment. */
  env: NodeJS.ProcessEnv;
  /** Send forwarded signals to the command's whole process group, not only to it. */
  signalGroup?: boolean;
  /** How long `stop()` waits for the command before SIGKILL, in ms. */
  stopTimeout: number;
  logger: Logger;
  /**
   * The first of these signals is not forwarded when it arrives: the caller
   * passes it on with `stop()` once it is ready (registrations withdrawn
   * first). Any later one is forwarded at once.
   */
  hold?: readonly NodeJS.Signals[];
  /** Signals srvlink keeps for itself (e.g. a reload signal): not forwarded. */
  keep?: readonly NodeJS.Signals[];
}

/**
 * The command srvlink runs as a container's PID 1: spawned in its own
 * process group (a new session, so a signal to the group reaches its
 * children and not srvlink), stdio inherited, and every forwarded signal
 * passed on each time it arrives. The handlers stay installed: PID 1 has no
 * default action for a signal it does not handle, so a handler that fired
 * once would leave the next SIGTERM ignored.
 */
export class Supervisor {
  readonly #options: SupervisorOptions;
  #child: ChildProcess | undefined;
  #exit: ChildExit | undefined;
  #resolveExited: (exit: ChildExit) => void = () => undefined;
  #held = false;
  #startedAt: number | undefined;
  #endedAt: number | undefined;
  #stopping = false;
  readonly #handlers = new Map<NodeJS.Signals, () => void>();
  /** Resolves once the command has ended (never, if it was never started). */
  readonly exited: Promise<ChildExit>;

  constructor(options: SupervisorOptions) {
    this.#options = options;
    this.exited = new Promise((resolve) => (this.#resolveExited = resolve));
  }

  /** The command's pid once started. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Where the command is in its life, for `/status`. */
  get state(): SupervisedState {
    if (this.#exit) return { phase: 'exited', pid: this.pid, uptime: this.#uptime(), exit: this.#exit };
    if (this.#startedAt === undefined) return { phase: 'starting', pid: undefined, uptime: 0 };
    return { phase: this.#stopping ? 'stopping' : 'running', pid: this.pid, uptime: this.#uptime() };
  }

  /** Spawn the command and install the signal handlers; rejects with a `CommandError` when it cannot be executed. */
  async start(): Promise<void> {
    if (this.#child) return;
    const { command, args, env, logger } = this.#options;
    // The handlers go in before the spawn: the command may run, and be sent
    // a signal meant for it, before spawn() returns. A signal that arrives
    // before the command has a pid waits for it; without a handler it would
    // be lost (PID 1 ignores signals it has no handler for) or kill srvlink.
    const early: NodeJS.Signals[] = [];
    const keep = new Set(this.#options.keep ?? []);
    const hold = new Set(this.#options.hold ?? []);
    for (const signal of FORWARDED_SIGNALS) {
      if (keep.has(signal)) continue;
      const handler = (): void => {
        if (hold.has(signal) && !this.#held) {
          this.#held = true;
          return;
        }
        if (this.#child?.pid === undefined) early.push(signal);
        else this.kill(signal);
      };
      this.#handlers.set(signal, handler);
      process.on(signal, handler);
    }
    let child: ChildProcess;
    try {
      child = spawnOwned(command, args, { env, stdio: 'inherit', detached: true });
    } catch (err) {
      this.#removeHandlers();
      throw err;
    }
    this.#child = child;
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', () => {
        this.#startedAt = performance.now();
        resolve();
      });
      child.once('error', (err: NodeJS.ErrnoException) => {
        this.#removeHandlers();
        reject(commandError(command, err));
      });
    });
    // Errors after the spawn (a kill that fails) are handled where they happen.
    child.on('error', (err) => logger.warn('supervised command error', { command, error: errorMessage(err) }));
    child.once('exit', (code, signal) => {
      this.#exit = { code, signal, status: exitStatus(code, signal) };
      this.#endedAt = performance.now();
      this.#removeHandlers();
      logger.info('command exited', { command, pid: child.pid, code, signal, status: this.#exit.status });
      this.#resolveExited(this.#exit);
    });
    for (const signal of early.splice(0)) this.kill(signal);
    logger.info('command started', { command, args, pid: child.pid, signalGroup: this.#options.signalGroup === true });
  }

  /** Send `signal` to the command (or its process group, with `signalGroup`), if it still runs. */
  kill(signal: NodeJS.Signals, options: { group?: boolean } = {}): void {
    const pid = this.#child?.pid;
    if (pid === undefined || this.#exit) return;
    const group = options.group ?? this.#options.signalGroup === true;
    try {
      // The child leads its own process group (detached), so -pid is that group.
      process.kill(group ? -pid : pid, signal);
    } catch (err) {
      // ESRCH: it ended meanwhile and its exit event is on the way.
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') this.#options.logger.warn('cannot forward signal', { signal, pid, error: errorMessage(err) });
    }
  }

  /**
   * Pass `signal` on and wait for the command to end; after `stopTimeout`
   * its whole process group gets SIGKILL. Resolves with how it ended.
   */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<ChildExit> {
    if (this.#exit) return this.#exit;
    this.#held = true;
    this.#stopping = true;
    this.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const killed = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.#options.logger.warn('command did not stop in time: killing it', { command: this.#options.command, pid: this.pid, stopTimeout: this.#options.stopTimeout });
        this.kill('SIGKILL', { group: true });
        resolve();
      }, this.#options.stopTimeout);
    });
    await Promise.race([this.exited, killed]);
    clearTimeout(timer);
    return this.exited;
  }

  /** Seconds the command has run (until it ended). */
  #uptime(): number {
    if (this.#startedAt === undefined) return 0;
    return ((this.#endedAt ?? performance.now()) - this.#startedAt) / 1000;
  }

  #removeHandlers(): void {
    for (const [signal, handler] of this.#handlers) process.off(signal, handler);
    this.#handlers.clear();
  }
}

/** Exec failures as a shell reports them (POSIX, "Command Search and Execution"): 127 not found, 126 found but not executable. */
function commandError(command: string, err: NodeJS.ErrnoException): CommandError {
  if (err.code === 'ENOENT') return new CommandError('ERR_COMMAND_NOT_FOUND', 127, `cannot run command "${command}": not found`, { cause: err });
  return new CommandError('ERR_COMMAND_NOT_EXECUTABLE', 126, `cannot run command "${command}": ${err.code === 'EACCES' ? 'not executable' : errorMessage(err)}`, { cause: err });
}

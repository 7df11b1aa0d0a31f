import { errorMessage } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { loadNativeAddon } from '../core/native-addon.js';
import { ownChildren } from '../core/own-children.js';
import { CommandError, Supervisor } from '../supervisor/supervisor.js';
import { ZombieReaper } from '../supervisor/zombie-reaper.js';
import type { ChildSnapshot } from '../admin/admin-source.js';
import type { Ambassador } from './ambassador.js';

export interface SuperviseCommandOptions {
  env: NodeJS.ProcessEnv;
  logger: Logger;
  /** ms the command may take to exit after SIGTERM. */
  stopTimeout: number;
  signalGroup: boolean;
  /** Become a child subreaper (PR_SET_CHILD_SUBREAPER) when not PID 1. */
  subreaper: boolean;
  /** Signals srvlink keeps for itself (`--reload-signal`): not forwarded. */
  keep?: readonly NodeJS.Signals[];
}

/** `srvlink run -- CMD`: the command's life, tied to the ambassador's. */
export interface SupervisedRun {
  /** True once the command was spawned. */
  readonly running: boolean;
  /** Spawn the command (unless a stop came first); rejects with a `CommandError`. */
  start(stop: AbortSignal): Promise<void>;
  /**
   * Until the command ends or a stop signal comes: then deregister, stop the
   * command (forward, wait, SIGKILL), drain. Resolves with the exit status.
   */
  wait(stopSignal: Promise<NodeJS.Signals>, ambassador: Ambassador): Promise<number>;
  /** The exit status for a start-up failure of the command (logged once), or undefined for any other error. */
  failure(err: unknown): number | undefined;
  /** The command for `/status`; undefined without one (only `--subreaper`). */
  child(): ChildSnapshot | undefined;
  /** Stop reaping. */
  close(): void;
}

/**
 * Wire the supervisor: the zombie reaper (when PID 1 or asked to be a
 * subreaper) starts at once, the command when `start()` is called.
 */
export function superviseCommand(commandLine: readonly string[], options: SuperviseCommandOptions): SupervisedRun {
  const log = options.logger.child({ component: 'supervisor' });
  const reaper = startReaper(options, log);
  const [command, ...args] = commandLine;
  const supervisor =
    command === undefined
      ? undefined
      : new Supervisor({
          command,
          args,
          env: options.env,
          signalGroup: options.signalGroup,
          stopTimeout: options.stopTimeout,
          logger: log,
          // The first SIGTERM/SIGINT waits until registrations are withdrawn (docs/architecture.md §4.6).
          hold: ['SIGTERM', 'SIGINT'],
          keep: options.keep ?? [],
        });
  let running = false;
  return {
    get running() {
      return running;
    },
    async start(stop) {
      if (!supervisor || stop.aborted) return;
      await supervisor.start();
      running = true;
    },
    async wait(stopSignal, ambassador) {
      if (!supervisor) return 0;
      const outcome = await Promise.race([stopSignal.then((signal) => ({ signal })), supervisor.exited.then((exit) => ({ exit }))]);
      let status: number;
      if ('signal' in outcome) {
        log.info('stopping command', { signal: outcome.signal, stopTimeout: options.stopTimeout });
        await ambassador.deregister();
        status = (await supervisor.stop(outcome.signal)).status;
        await ambassador.close(outcome.signal);
      } else {
        status = outcome.exit.status;
        await ambassador.deregister();
        await ambassador.close('command exited');
      }
      reaper?.close();
      return status;
    },
    failure(err) {
      if (!(err instanceof CommandError)) return undefined;
      log.error('cannot run command', { command, error: err.message, status: err.status });
      return err.status;
    },
    child() {
      if (!supervisor || command === undefined) return undefined;
      const state = supervisor.state;
      return {
        command: [command, ...args],
        state: state.phase,
        pid: state.pid,
        uptime: state.uptime,
        ...(state.phase === 'exited' ? { exit: { code: state.exit.code, signal: state.exit.signal, status: state.exit.status } } : {}),
      };
    },
    close() {
      reaper?.close();
    },
  };
}

function startReaper(options: SuperviseCommandOptions, log: Logger): ZombieReaper | undefined {
  const pid1 = process.pid === 1;
  if (!pid1 && !options.subreaper) return undefined;
  const loaded = loadNativeAddon(options.env);
  if (!loaded.addon) {
    log.warn('orphaned zombies will not be reaped: no native addon', { reason: loaded.reason, pid1 });
    return undefined;
  }
  if (!pid1) {
    try {
      loaded.addon.setChildSubreaper();
    } catch (err) {
      log.warn('orphaned zombies will not be reaped: cannot become a subreaper', { error: errorMessage(err) });
      return undefined;
    }
  }
  const reaper = new ZombieReaper({ addon: loaded.addon, ownChildren: ownChildren(), logger: log });
  reaper.start();
  log.info('reaping orphaned zombies', { addon: loaded.path, pid1, subreaper: !pid1 });
  return reaper;
}

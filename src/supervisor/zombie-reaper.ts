import type { Logger } from '../core/logger.js';
import { errorMessage } from '../core/errors.js';
import type { NativeAddon } from '../core/native-addon.js';

export interface ZombieReaperOptions {
  addon: NativeAddon;
  /** Children Node waits for itself: never reaped here. */
  ownChildren: ReadonlySet<number>;
  logger: Logger;
  /** A scan even without SIGCHLD, in case one was coalesced with another; default 1000 ms. */
  interval?: number;
}

/**
 * Reaps orphaned zombies re-parented to this process (PID 1 of a container,
 * or a child subreaper). On every SIGCHLD, and on a slow tick, the addon
 * scans /proc for zombie children that are not `ownChildren` and collects
 * each by pid (never waitpid(-1), which could take the status of a child
 * libuv is waiting for).
 */
export class ZombieReaper {
  readonly #options: ZombieReaperOptions;
  #timer: NodeJS.Timeout | undefined;
  #scheduled = false;
  #reaped = 0;
  readonly #onSigchld = (): void => this.#schedule();

  constructor(options: ZombieReaperOptions) {
    this.#options = options;
  }

  /** Zombies reaped so far. */
  get reaped(): number {
    return this.#reaped;
  }

  start(): void {
    if (this.#timer) return;
    process.on('SIGCHLD', this.#onSigchld);
    this.#timer = setInterval(() => this.#scan(), this.#options.interval ?? 1000);
    // The tick alone must not keep srvlink alive.
    this.#timer.unref();
    this.#scan();
  }

  close(): void {
    if (!this.#timer) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
    process.off('SIGCHLD', this.#onSigchld);
  }

  #schedule(): void {
    // A burst of SIGCHLDs is one scan; setImmediate lets libuv collect its own children first.
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#scan();
    });
  }

  #scan(): void {
    let pids: number[];
    try {
      pids = this.#options.addon.reapZombies([...this.#options.ownChildren]);
    } catch (err) {
      this.#options.logger.warn('cannot reap zombies', { error: errorMessage(err) });
      return;
    }
    if (pids.length === 0) return;
    this.#reaped += pids.length;
    this.#options.logger.debug('reaped orphaned zombies', { pids, total: this.#reaped });
  }
}

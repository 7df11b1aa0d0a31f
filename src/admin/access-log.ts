import { createWriteStream, watch, type FSWatcher, type WriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { errorMessage } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/logger.js';

/** How soon after a change event the file's identity is checked again, ms. */
const CHANGE_CHECK_MS = 1000;

/** One closed client connection, as the access log writes it. */
export interface AccessRecord {
  /** The mapping's SRV name. */
  mapping: string;
  /** `address:port` of the client. */
  client: string;
  /** The backend the client was forwarded to; undefined when none was reached. */
  backend: string | undefined;
  /** Backends dialed in vain before that, in order. */
  tried: readonly string[];
  /** Bytes from the client, and to it. */
  bytesIn: number;
  bytesOut: number;
  /** From accept to close, ms. */
  ms: number;
  /** `closed`, `idle`, `client-error`, `backend-error`, `no-backend`, `unreachable`, `discovery-failed`, `aborted`. */
  outcome: string;
}

export interface AccessLogOptions {
  /** `stderr`, or a file appended to. */
  target: { kind: 'stderr' } | { kind: 'file'; path: string };
  /** One JSON object per line (default), or a readable line. */
  format?: 'json' | 'text';
  /** Where `stderr` lines go; default `process.stderr`. */
  stderr?: { write(text: string): unknown };
  /** For failures of the log file itself. */
  logger?: Logger;
  now?: () => Date;
}

/**
 * The access log (`--access-log`): one line per closed connection with the
 * time, mapping, client, backend chosen, backends tried, bytes each way,
 * duration and outcome. A file is reopened on `reopen()` (SIGUSR1, as
 * logrotate's `postrotate` sends, when no command is supervised) and also by
 * itself when it is moved away or deleted (a watch on the file): the only
 * way with `run -- CMD`, whose SIGUSR1 goes to the command alone. Writing never blocks forwarding: lines are queued on a
 * stream; a file that cannot be written is reported once and retried at
 * the next reopen.
 */
export class AccessLog {
  readonly #options: AccessLogOptions;
  readonly #log: Logger;
  readonly #now: () => Date;
  #stream: WriteStream | undefined;
  #inode: number | undefined;
  #watcher: FSWatcher | undefined;
  #failed = false;
  #checkTimer: NodeJS.Timeout | undefined;
  /** Without a watch (none could be made): the path is checked on this interval instead. */
  #pollTimer: NodeJS.Timeout | undefined;
  #closed = false;
  /** Reopens one after the other. */
  #reopening: Promise<void> = Promise.resolve();

  constructor(options: AccessLogOptions) {
    this.#options = options;
    this.#log = options.logger ?? silentLogger;
    this.#now = options.now ?? (() => new Date());
  }

  /** Open the file (and watch it); resolves once it is open. Rejects when it cannot be opened. */
  async start(): Promise<void> {
    if (this.#options.target.kind === 'file') await this.#open(this.#options.target.path);
  }

  /** Write one line for `record`. */
  write(record: AccessRecord): void {
    if (this.#closed) return;
    const line = this.#format(record);
    if (this.#options.target.kind === 'stderr') {
      (this.#options.stderr ?? process.stderr).write(line);
      return;
    }
    this.#stream?.write(line);
  }

  /** Close the file and open the path again (after log rotation moved it). */
  reopen(): Promise<void> {
    const target = this.#options.target;
    if (target.kind !== 'file') return Promise.resolve();
    this.#reopening = this.#reopening.then(async () => {
      if (this.#closed) return;
      try {
        await this.#open(target.path);
        this.#log.info('access log reopened', { file: target.path });
      } catch (err) {
        this.#log.error(`cannot reopen access log "${target.path}": ${errorMessage(err)}`, { file: target.path });
      }
    });
    return this.#reopening;
  }

  /** Flush and close; safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#reopening;
    this.#watcher?.close();
    clearTimeout(this.#checkTimer);
    clearInterval(this.#pollTimer);
    const stream = this.#stream;
    this.#stream = undefined;
    if (stream) await new Promise<void>((resolve) => stream.end(() => resolve()));
  }

  async #open(path: string): Promise<void> {
    const stream = createWriteStream(path, { flags: 'a' });
    await new Promise<void>((resolve, reject) => {
      stream.once('open', () => resolve());
      stream.once('error', reject);
    });
    stream.on('error', (err) => {
      if (this.#failed) return;
      this.#failed = true;
      this.#log.error(`cannot write access log "${path}": ${errorMessage(err)}`, { file: path });
    });
    this.#failed = false;
    const old = this.#stream;
    this.#stream = stream;
    this.#inode = (await stat(path).catch(() => undefined))?.ino;
    old?.end();
    this.#watch(path);
  }

  /** Watch the file: a rename or removal of the path we write to means it was rotated. */
  #watch(path: string): void {
    this.#watcher?.close();
    try {
      this.#watcher = watch(path, { persistent: false }, (event) => {
        // A move is a rename; a removal of a file we hold open is only an attribute change
        // (its link count), like our own writes: those are checked at most once a second.
        if (event === 'rename') void this.#checkMoved(path);
        else this.#checkSoon(path);
      });
      this.#watcher.on('error', () => undefined);
    } catch (err) {
      // Out of inotify instances or watches, say: rotation is still noticed, a little later.
      this.#watcher = undefined;
      if (this.#pollTimer === undefined) {
        this.#log.warn(`cannot watch access log "${path}": ${errorMessage(err)}; checking it every ${CHANGE_CHECK_MS} ms instead`, { file: path });
        this.#pollTimer = setInterval(() => void this.#checkMoved(path), CHANGE_CHECK_MS);
        this.#pollTimer.unref();
      }
      return;
    }
    clearInterval(this.#pollTimer);
    this.#pollTimer = undefined;
  }

  #checkSoon(path: string): void {
    if (this.#checkTimer) return;
    this.#checkTimer = setTimeout(() => {
      this.#checkTimer = undefined;
      void this.#checkMoved(path);
    }, CHANGE_CHECK_MS);
    this.#checkTimer.unref();
  }

  async #checkMoved(path: string): Promise<void> {
    if (this.#closed) return;
    const now = await stat(path).catch(() => undefined);
    if (now?.ino !== this.#inode) await this.reopen();
  }

  #format(r: AccessRecord): string {
    const time = this.#now().toISOString();
    const ms = Math.round(r.ms);
    if (this.#options.format === 'text') {
      const tried = r.tried.length > 0 ? ` tried=${r.tried.join(',')}` : '';
      return `${time} ${r.mapping} ${r.client} -> ${r.backend ?? '-'}${tried} in=${r.bytesIn} out=${r.bytesOut} ${ms}ms ${r.outcome}\n`;
    }
    return `${JSON.stringify({ time, mapping: r.mapping, client: r.client, backend: r.backend ?? null, tried: r.tried, bytesIn: r.bytesIn, bytesOut: r.bytesOut, ms, outcome: r.outcome })}\n`;
  }
}

import { closeSync } from 'node:fs';
import { isIP } from 'node:net';
import { constants } from 'node:os';
import type { NativeAddon } from '../core/native-addon.js';
import { DialError } from './dial-backend.js';

/** The addon's dial exports, all there. */
export type NativeDialAddon = Required<Pick<NativeAddon, 'dialStart' | 'dialConnect' | 'dialAbort'>>;

/** `DIAL_TIMED_OUT` and `DIAL_ABORTED` of native/src/dial-plane.h. */
const TIMED_OUT = -1;
const ABORTED = -2;

const ERRNO_NAMES = new Map(Object.entries(constants.errno).map(([name, value]) => [value, name]));

/** The end of one native dial: the connected descriptor (now the callee's), or the `DialError` it failed with. */
export type NativeDialEnd = (fd: number, error: DialError | undefined) => void;

interface Pending {
  onEnd: NativeDialEnd;
  key: string;
  timeout: number;
}

/**
 * Dials in C (native/src/dial-plane.c): a non-blocking connect whose end is
 * one more event of the loop, with one timer for every connect timeout. No
 * JavaScript socket, stream, listener or timer is made for a backend the
 * native data plane forwards to. Ends come back as the same `DialError`s
 * the JavaScript dial gives (`ECONNREFUSED`, `timed out after N ms`,
 * `aborted`). Only IP literals: a host name is the JavaScript dial's.
 */
export class NativeDialer {
  readonly #addon: NativeDialAddon;
  readonly #pending = new Map<number, Pending>();

  constructor(addon: NativeDialAddon) {
    this.#addon = addon;
    addon.dialStart((id, fd, error) => this.#onEnd(id, fd, error));
  }

  /** Whether `host` can be dialed natively: an IPv4 or IPv6 literal without a zone. */
  static dialable(host: string): boolean {
    const version = isIP(host);
    return version === 4 || (version === 6 && !host.includes('%'));
  }

  /** Dials under way. */
  get pending(): number {
    return this.#pending.size;
  }

  /**
   * Dial `host:port` (`dialable`), giving up after `timeout` ms; `onEnd` is
   * called once, later, never from within this call. `key` names the
   * backend in errors. The dial's id, for `abort`.
   */
  dial(host: string, port: number, timeout: number, key: string, onEnd: NativeDialEnd): number {
    const id = this.#addon.dialConnect(host, port, timeout);
    this.#pending.set(id, { onEnd, key, timeout });
    return id;
  }

  /** Give up a dial under way: it ends with an `ERR_DIAL_ABORTED` error. */
  abort(id: number): void {
    if (this.#pending.has(id)) this.#addon.dialAbort(id);
  }

  #onEnd(id: number, fd: number, error: number): void {
    const pending = this.#pending.get(id);
    if (pending === undefined) {
      if (fd >= 0) closeSync(fd);
      return;
    }
    this.#pending.delete(id);
    if (error === 0) {
      pending.onEnd(fd, undefined);
    } else if (error === TIMED_OUT) {
      pending.onEnd(-1, new DialError('ERR_DIAL_TIMEOUT', pending.key, `timed out after ${pending.timeout} ms`));
    } else if (error === ABORTED) {
      pending.onEnd(-1, new DialError('ERR_DIAL_ABORTED', pending.key, 'aborted'));
    } else {
      pending.onEnd(-1, new DialError('ERR_DIAL', pending.key, ERRNO_NAMES.get(error) ?? `errno ${error}`));
    }
  }
}

import { Socket } from 'node:net';
import { constants } from 'node:os';
import { errorMessage } from '../core/errors.js';
import type { NativeAddon, NativeAddonResult } from '../core/native-addon.js';
import { jsDataPlane, type DataPlane, type SpliceOptions, type SpliceResult } from './data-plane.js';
import { processDescriptorBudget } from './descriptor-budget.js';
import { NativeDialer, type NativeDialAddon } from './native-dial.js';

/** Which data plane forwards: the native one, the JS one, or the native one when the addon loads. */
export type DataPlaneChoice = 'native' | 'js' | 'auto';

/** `enum splice_end` of native/src/splice-plane.h. An abort (forced drain) ends a pair as a close does on the JS plane. */
const ENDS: readonly SpliceResult['end'][] = ['closed', 'idle', 'client-error', 'backend-error', 'closed'];

/** spliceAdd's `own`: the descriptors it takes as they are (no duplicate). */
const OWN_BACKEND = 2;
const OWN_BOTH = 3;

/** The addon's accept exports, all there. */
export type NativeAcceptAddon = Required<Pick<NativeAddon, 'acceptListen' | 'acceptClose' | 'acceptReset'>>;

/** The addon's data-plane exports, all there. */
type SpliceAddon = Required<Pick<NativeAddon, 'spliceStart' | 'spliceAdd' | 'spliceAbort' | 'spliceStats'>>;

/** A pair on the plane: what its end is told to. */
interface Waiting {
  resolve: (result: SpliceResult) => void;
  onClientData: ((bytes: number) => void) | undefined;
  onBackendData: ((bytes: number) => void) | undefined;
  /** The pairs of its abort signal, to forget it there. */
  aborted: Set<number> | undefined;
}

/**
 * Pipes the plane may hold at once for a process allowed `limit` open
 * files: a direction holds one only while its bytes are in flight, so this
 * bounds bursts, not pairs; beyond it a direction copies.
 */
export function pipesFor(limit: number | undefined): number {
  if (limit === undefined) return 1024;
  return Math.min(1024, Math.max(16, Math.floor(limit / 64)));
}

const ERRNO_NAMES = new Map(Object.entries(constants.errno).map(([name, value]) => [value, name]));

/**
 * The native data plane: once a backend is connected, both sockets are
 * duplicated (close-on-exec) into the addon, which moves the bytes
 * (native/src/splice-plane.c): on the event loop's thread while the pair is
 * young, on one of its threads with splice(2) once it proves bulky or
 * long; ends come back in batches, on the loop. The JavaScript sockets
 * are destroyed, never to be touched again (an `end()` or a socket option
 * would act on the shared socket). No byte may have been read into
 * JavaScript before: the client is accepted paused and the backend is
 * paused before it connects; a pair that did read (or is not a plain TCP
 * socket) goes to the JS plane. Byte counts come once, at the end.
 */
export class NativeDataPlane implements DataPlane {
  readonly name = 'native';
  /** The two sockets: pipes are the plane's, taken while bytes are in flight (`fixedDescriptors`). */
  readonly descriptorsPerPair = 2;
  readonly fixedDescriptors: number;
  readonly #addon: SpliceAddon;
  readonly #waiting = new Map<number, Waiting>();
  /** The pairs of each abort signal, aborted by one listener per signal (not one per pair). */
  readonly #bySignal = new WeakMap<AbortSignal, Set<number>>();
  /** Dials in C, for backends this plane forwards to (`spliceDialed`); undefined with an addon built before them. */
  readonly dialer: NativeDialer | undefined;
  /** Accepts in C, for clients this plane forwards (`spliceAccepted`); undefined with an addon built before them. */
  readonly acceptor: NativeAcceptAddon | undefined;

  constructor(addon: SpliceAddon, maxPipes = pipesFor(processDescriptorBudget().limit), dials?: NativeDialAddon, accepts?: NativeAcceptAddon) {
    this.#addon = addon;
    addon.spliceStart((id, bytesIn, bytesOut, end, errno) => this.#onEnd(id, bytesIn, bytesOut, end, errno), { maxPipes });
    // Every pipe it may open (two descriptors each), an epoll and a wake-up descriptor per thread, the loop worker's epoll and the dials'.
    const stats = addon.spliceStats();
    this.fixedDescriptors = stats.maxPipes * 2 + stats.threads * 2 + 2;
    this.dialer = dials ? startDialer(dials) : undefined;
    this.acceptor = this.dialer ? accepts : undefined;
  }

  /** Pairs forwarded now. */
  get pairs(): number {
    return this.#waiting.size;
  }

  splice(client: Socket, backend: Socket, options: SpliceOptions = {}): Promise<SpliceResult> {
    const clientFd = handedOffFd(client);
    const backendFd = handedOffFd(backend);
    if (clientFd === undefined || backendFd === undefined || options.signal?.aborted) return jsDataPlane.splice(client, backend, options);
    let id: number;
    try {
      id = this.#addon.spliceAdd(clientFd, backendFd, options.idleTimeout ?? 0);
    } catch {
      // No descriptor for the duplicates, or no memory: this pair stays in JavaScript.
      return jsDataPlane.splice(client, backend, options);
    }
    // The addon has its own descriptors now.
    client.destroy();
    backend.destroy();
    return this.#wait(id, options);
  }

  /**
   * As `splice`, with a backend a native dial connected: its descriptor is
   * the plane's, taken as it is (no duplicate). When the pair cannot be
   * handed over it becomes a JavaScript socket for the JS plane.
   */
  spliceDialed(client: Socket, backendFd: number, options: SpliceOptions = {}): Promise<SpliceResult> {
    const clientFd = handedOffFd(client);
    let id: number | undefined;
    if (clientFd !== undefined && !options.signal?.aborted) {
      try {
        id = this.#addon.spliceAdd(clientFd, backendFd, options.idleTimeout ?? 0, OWN_BACKEND);
      } catch {
        // No descriptor for the client's duplicate, or no memory: this pair stays in JavaScript.
      }
    }
    if (id === undefined) return jsDataPlane.splice(client, socketOfFd(backendFd), options);
    client.destroy();
    return this.#wait(id, options);
  }

  /**
   * As `spliceDialed`, with a client a native accept took: both descriptors
   * are the plane's, taken as they are; no JavaScript socket is made for
   * either unless the pair must stay in JavaScript (no memory).
   */
  spliceAccepted(clientFd: number, backendFd: number, options: SpliceOptions = {}): Promise<SpliceResult> {
    let id: number | undefined;
    if (!options.signal?.aborted) {
      try {
        id = this.#addon.spliceAdd(clientFd, backendFd, options.idleTimeout ?? 0, OWN_BOTH);
      } catch {
        // No memory: this pair stays in JavaScript.
      }
    }
    if (id === undefined) return jsDataPlane.splice(socketOfFd(clientFd, true), socketOfFd(backendFd), options);
    return this.#wait(id, options);
  }

  #wait(id: number, options: SpliceOptions): Promise<SpliceResult> {
    const aborted = options.signal ? this.#pairsOf(options.signal) : undefined;
    aborted?.add(id);
    return new Promise((resolve) => {
      this.#waiting.set(id, { resolve, onClientData: options.onClientData, onBackendData: options.onBackendData, aborted });
    });
  }

  #pairsOf(signal: AbortSignal): Set<number> {
    let pairs = this.#bySignal.get(signal);
    if (pairs === undefined) {
      const ids = new Set<number>();
      pairs = ids;
      this.#bySignal.set(signal, ids);
      signal.addEventListener('abort', () => {
        for (const id of ids) this.#addon.spliceAbort(id);
      }, { once: true });
    }
    return pairs;
  }

  #onEnd(id: number, bytesIn: number, bytesOut: number, end: number, errno: number): void {
    const waiting = this.#waiting.get(id);
    if (!waiting) return;
    this.#waiting.delete(id);
    const { onClientData, onBackendData, aborted, resolve } = waiting;
    aborted?.delete(id);
    try {
      if (bytesIn > 0) onClientData?.(bytesIn);
      if (bytesOut > 0) onBackendData?.(bytesOut);
    } finally {
      const kind = ENDS[end] ?? 'closed';
      resolve(errno !== 0 && kind.endsWith('-error') ? { end: kind, error: `splice ${ERRNO_NAMES.get(errno) ?? `errno ${errno}`}` } : { end: kind });
    }
  }
}

/** The descriptor of a connected TCP socket nothing has been read from, or undefined. */
function handedOffFd(socket: Socket): number | undefined {
  if (socket.destroyed || socket.bytesRead !== 0 || socket.readableLength !== 0 || socket.errored) return undefined;
  const fd = (socket as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/** The dialer, or none when its start fails: backends are then dialed in JavaScript. */
function startDialer(dials: NativeDialAddon): NativeDialer | undefined {
  try {
    return new NativeDialer(dials);
  } catch {
    return undefined;
  }
}

/**
 * A connected TCP socket by descriptor, as the JS plane takes it (half-open
 * allowed); `paused`: nothing is read before the plane takes it (Node's
 * `pauseOnCreate`, what `pauseOnConnect` accepts with), so that a native plane
 * may still take it.
 */
export function socketOfFd(fd: number, paused = false): Socket {
  return new Socket({ fd, allowHalfOpen: true, readable: true, writable: true, ...(paused ? { pauseOnCreate: true } : {}) } as ConstructorParameters<typeof Socket>[0]);
}

let nativePlane: NativeDataPlane | undefined;

/**
 * The data plane for `choice`: `js` always; `native` or `auto` the native
 * one when the addon loads and has it, else the JS one with the reason
 * (`native` then fails at the caller, `auto` warns in one line). One native
 * plane per process, shared by every forwarder.
 */
export function openDataPlane(choice: DataPlaneChoice, loaded: () => NativeAddonResult): { plane: DataPlane; unavailable?: string } {
  if (choice === 'js') return { plane: jsDataPlane };
  if (nativePlane) return { plane: nativePlane };
  if (process.platform !== 'linux') return { plane: jsDataPlane, unavailable: 'splice(2) is Linux only' };
  const result = loaded();
  if (!result.addon) return { plane: jsDataPlane, unavailable: result.reason };
  const addon = result.addon;
  if (!addon.spliceStart || !addon.spliceAdd || !addon.spliceAbort || !addon.spliceStats) {
    return { plane: jsDataPlane, unavailable: `the native addon "${result.path}" has no data plane (built before it: npm run build:native)` };
  }
  try {
    const dials = addon.dialStart && addon.dialConnect && addon.dialAbort ? { dialStart: addon.dialStart, dialConnect: addon.dialConnect, dialAbort: addon.dialAbort } : undefined;
    const accepts = addon.acceptListen && addon.acceptClose && addon.acceptReset ? { acceptListen: addon.acceptListen, acceptClose: addon.acceptClose, acceptReset: addon.acceptReset } : undefined;
    nativePlane = new NativeDataPlane({ spliceStart: addon.spliceStart, spliceAdd: addon.spliceAdd, spliceAbort: addon.spliceAbort, spliceStats: addon.spliceStats }, undefined, dials, accepts);
  } catch (err) {
    return { plane: jsDataPlane, unavailable: `cannot start the native data plane: ${errorMessage(err)}` };
  }
  return { plane: nativePlane };
}

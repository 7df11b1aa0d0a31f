import type { Socket } from 'node:net';
import { constants } from 'node:os';
import { errorMessage } from '../core/errors.js';
import type { NativeAddon, NativeAddonResult } from '../core/native-addon.js';
import { jsDataPlane, type DataPlane, type SpliceOptions, type SpliceResult } from './data-plane.js';

/** Which data plane forwards: the native one, the JS one, or the native one when the addon loads. */
export type DataPlaneChoice = 'native' | 'js' | 'auto';

/** `enum splice_end` of native/src/splice-plane.h. An abort (forced drain) ends a pair as a close does on the JS plane. */
const ENDS: readonly SpliceResult['end'][] = ['closed', 'idle', 'client-error', 'backend-error', 'closed'];

/** The addon's data-plane exports, all there. */
type SpliceAddon = Required<Pick<NativeAddon, 'spliceStart' | 'spliceAdd' | 'spliceAbort' | 'spliceStats'>>;

interface Waiting {
  resolve: (result: SpliceResult) => void;
  options: SpliceOptions;
  onAbort: (() => void) | undefined;
}

const ERRNO_NAMES = new Map(Object.entries(constants.errno).map(([name, value]) => [value, name]));

/**
 * The native data plane: once a backend is connected, both sockets are
 * duplicated (close-on-exec) into the addon, whose thread moves the bytes
 * with splice(2) (native/src/splice-plane.c), and the JavaScript sockets
 * are destroyed, never to be touched again (an `end()` or a socket option
 * would act on the shared socket). No byte may have been read into
 * JavaScript before: the client is accepted paused and the backend is
 * paused before it connects; a pair that did read (or is not a plain TCP
 * socket) goes to the JS plane. Byte counts come once, at the end.
 */
export class NativeDataPlane implements DataPlane {
  readonly name = 'native';
  /** The two sockets and a pipe (two descriptors) per direction. */
  readonly descriptorsPerPair = 6;
  readonly fixedDescriptors: number;
  readonly #addon: SpliceAddon;
  readonly #waiting = new Map<number, Waiting>();

  constructor(addon: SpliceAddon) {
    this.#addon = addon;
    addon.spliceStart((id, bytesIn, bytesOut, end, errno) => this.#onEnd(id, bytesIn, bytesOut, end, errno));
    // The pool of pipes, the epoll and wake-up descriptors.
    this.fixedDescriptors = addon.spliceStats().poolMax * 2 + 2;
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
      // No pipe to be had (descriptors or pipe pages exhausted): this pair stays in JavaScript.
      return jsDataPlane.splice(client, backend, options);
    }
    // The addon has its own descriptors now.
    client.destroy();
    backend.destroy();
    return new Promise((resolve) => {
      const signal = options.signal;
      const onAbort = signal ? (): void => this.#addon.spliceAbort(id) : undefined;
      if (signal && onAbort) signal.addEventListener('abort', onAbort, { once: true });
      this.#waiting.set(id, { resolve, options, onAbort });
    });
  }

  #onEnd(id: number, bytesIn: number, bytesOut: number, end: number, errno: number): void {
    const waiting = this.#waiting.get(id);
    if (!waiting) return;
    this.#waiting.delete(id);
    const { options, onAbort, resolve } = waiting;
    if (onAbort) options.signal?.removeEventListener('abort', onAbort);
    try {
      if (bytesIn > 0) options.onClientData?.(bytesIn);
      if (bytesOut > 0) options.onBackendData?.(bytesOut);
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
    nativePlane = new NativeDataPlane({ spliceStart: addon.spliceStart, spliceAdd: addon.spliceAdd, spliceAbort: addon.spliceAbort, spliceStats: addon.spliceStats });
  } catch (err) {
    return { plane: jsDataPlane, unavailable: `cannot start the native data plane: ${errorMessage(err)}` };
  }
  return { plane: nativePlane };
}

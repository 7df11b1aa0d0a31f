import type { Socket } from 'node:net';
import { spliceSockets } from './splice-sockets.js';

export interface SpliceOptions {
  /** Close both sockets after this many ms without a byte either way; off when undefined. */
  idleTimeout?: number | undefined;
  /** Bytes read from the client (towards the backend), told once when the pair is done. */
  onClientData?: (bytes: number) => void;
  /** Bytes read from the backend (towards the client), as `onClientData`. */
  onBackendData?: (bytes: number) => void;
  /** Aborting resets both sockets (the forced end of a drain). */
  signal?: AbortSignal;
}

/** How a spliced pair ended (the first cause seen wins). */
export interface SpliceResult {
  end: 'closed' | 'idle' | 'client-error' | 'backend-error';
  /** The error message for the `*-error` ends. */
  error?: string;
}

/**
 * What moves the bytes of a forwarded pair once the forwarder has connected
 * a backend: the JS plane (`spliceSockets`, in the event loop) or the
 * native one (splice(2) on the addon's thread, `NativeDataPlane`). Both
 * keep the same contract: half-close passed on, a reset on one side resets
 * the other, idle timeout, byte counts, a promise that never rejects.
 */
export interface DataPlane {
  readonly name: 'native' | 'js';
  /** Descriptors one forwarded pair holds (its two sockets on both planes). */
  readonly descriptorsPerPair: number;
  /** Descriptors held whatever the number of pairs (the native plane's pipes, at most, and its own), taken from the budget once. */
  readonly fixedDescriptors: number;
  /**
   * Move bytes between two connected sockets, both `allowHalfOpen` and not
   * read yet, until both directions are done. The sockets belong to the
   * plane from here on.
   */
  splice(client: Socket, backend: Socket, options?: SpliceOptions): Promise<SpliceResult>;
}

/** The data plane in JavaScript: always there. */
export const jsDataPlane: DataPlane = {
  name: 'js',
  descriptorsPerPair: 2,
  fixedDescriptors: 0,
  splice: spliceSockets,
};

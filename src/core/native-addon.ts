import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { errorMessage } from './errors.js';

/** Called once per pair the native data plane forwarded, after both of its sockets are closed. */
export type SpliceEndCallback = (id: number, bytesIn: number, bytesOut: number, end: number, errno: number) => void;

/**
 * Called once per native dial: `error` 0 with the connected descriptor
 * (the callee's to close), else an errno value, -1 (the connect timeout
 * ran out) or -2 (aborted), with `fd` -1.
 */
export type DialEndCallback = (id: number, fd: number, error: number) => void;

/** The native data plane's pipes, for the descriptor budget and tests. */
export interface SpliceStats {
  /** Pairs handed over and not finished yet, and of those the ones on the event loop's thread (not moved to a thread of the plane). */
  pairs: number;
  loopPairs: number;
  /** Pairs moved from the loop to a thread of the plane (bulky or long), ever. */
  migrated: number;
  /** Empty pipes kept for the next bytes, and how many at most per thread. */
  pooledPipes: number;
  poolMax: number;
  /** Pipes open (held by a direction with bytes in flight, or pooled), and how many at most (two descriptors each). */
  pipesOpen: number;
  maxPipes: number;
  /** Threads moving the pairs. */
  threads: number;
  /** Capacity of every pipe open, and what it is kept under (from fs.pipe-user-pages-soft). */
  pipeBytes: number;
  pipeBudget: number;
  /** Bytes moved by copying (recv/send) for want of a pipe. */
  copiedBytes: number;
}

/** How the native data plane is started. */
export interface SpliceStartOptions {
  /** Threads moving the pairs (each pair on one); 0 or absent: one per CPU, at most 2. */
  threads?: number;
  /** Pipes open at once (0 or absent: 256); a direction with bytes to move and no pipe to be had copies them instead. */
  maxPipes?: number;
  /** A pair leaves the loop for a thread once it has moved this many bytes, both ways (0 or absent: 256 KiB)... */
  migrateBytes?: number;
  /** ...or when it still moves bytes this many ms after it was added (0 or absent: 50). */
  migrateMs?: number;
}

/** The exports of srvlink's native addon (native/src/addon.c). */
export interface NativeAddon {
  /** Reap zombie children of this process whose pid is not in `exclude`; the pids reaped. */
  reapZombies(exclude: readonly number[]): number[];
  /** prctl(PR_SET_CHILD_SUBREAPER): orphaned descendants are re-parented to this process. */
  setChildSubreaper(): void;
  isChildSubreaper(): boolean;
  /**
   * Start the splice(2) data plane (once per process): new pairs on the event loop's thread, bulky or long ones on the
   * plane's threads. `onEnd` hears of every pair's end, on the loop, never from within spliceAdd or spliceAbort; the ends
   * of a batch are told one after the other, their microtasks run after the last.
   */
  spliceStart?(onEnd: SpliceEndCallback, options?: SpliceStartOptions): void;
  /**
   * Hand a connected pair over by descriptor (duplicated, close-on-exec); the pair's id. Throws when out of memory or descriptors.
   * `own`: 1 the client's, 2 the backend's, 3 both descriptors are taken as they are, not duplicated (left to the caller when it throws).
   */
  spliceAdd?(clientFd: number, backendFd: number, idleMs: number, own?: number): number;
  /** Reset both sockets of a pair; its end is reported as aborted. */
  spliceAbort?(id: number): void;
  spliceStats?(): SpliceStats;
  /**
   * The DNS servers' UDP fast path (native/src/udp-binding.h): a thread on a
   * duplicate of a bound UDP socket's descriptor; misses come to `onMiss` as
   * datagram, address, port, ... The handle is opaque.
   */
  udpOpen?(fd: number, maxEntries: number, maxBytes: number, onMiss: (batch: (Buffer | string | number)[]) => void, onLoop?: boolean): unknown;
  udpPut?(handle: unknown, id: number, key: Buffer, reply: Buffer, ttlOffsets: readonly number[], ttls: readonly number[], ageMs: number, lifeMs: number): boolean;
  udpDelete?(handle: unknown, key: Buffer): void;
  udpClear?(handle: unknown): void;
  /** Networks as 18-byte records (family 4 or 6, prefix, address), or null: everyone. */
  udpAllow?(handle: unknown, networks: Buffer | null): void;
  /** Hits since the last call, as id, count, id, count, ... */
  udpTakeHits?(handle: unknown): number[];
  udpStats?(handle: unknown): { hits: number; misses: number; dropped: number; entries: number; bytes: number };
  udpClose?(handle: unknown): void;
  /** Start the native dials (once per process); `onEnd` hears of every dial's end (native/src/dial-binding.h). */
  dialStart?(onEnd: DialEndCallback): void;
  /** Dial an IP address with a connect timeout; the dial's id. Throws for a host that is not an IP literal. */
  dialConnect?(host: string, port: number, timeoutMs: number): number;
  /** Give up a dial under way; its end is reported as aborted. */
  dialAbort?(id: number): void;
  /**
   * Listen on an IP address with accepts done in C (native/src/accept-binding.h): `onAccept` gets each client's
   * descriptor (and its "address:port" when `peers`), or a negative errno when an accept failed. Throws with code `E<errno>`.
   */
  acceptListen?(host: string, port: number, onAccept: (fd: number, peer: string | undefined) => void, peers: boolean): { id: number; port: number };
  /** Stop accepting and close the listening socket. */
  acceptClose?(id: number): void;
  /** Close a client descriptor with a reset. */
  acceptReset?(fd: number): void;
}

/** The addon, or why it is not there. */
export type NativeAddonResult = { addon: NativeAddon; path: string } | { addon: undefined; reason: string };

/** The file name node-gyp gives the addon (binding.gyp's target). */
const ADDON_FILE = 'srvlink_native.node';

/**
 * Load the native addon. `SRVLINK_NATIVE_ADDON` names the file exactly (and
 * nothing else is tried); otherwise it is looked for beside the executable
 * (the self-contained artifact) and in the node-gyp build folder of a
 * checkout. Never throws: srvlink runs without it.
 */
export function loadNativeAddon(env: NodeJS.ProcessEnv = process.env): NativeAddonResult {
  const override = env.SRVLINK_NATIVE_ADDON;
  // One load per file: the reaper and the data plane share the addon (and the plane's thread).
  const key = override ?? '';
  let result = loaded.get(key);
  if (result === undefined) {
    result = load(override);
    loaded.set(key, result);
  }
  return result;
}

const loaded = new Map<string, NativeAddonResult>();

function load(override: string | undefined): NativeAddonResult {
  const candidates = override !== undefined && override !== '' ? [override] : defaultCandidates();
  const path = candidates.find((candidate) => existsSync(candidate));
  if (path === undefined) return { addon: undefined, reason: `no native addon at ${candidates.map((c) => `"${c}"`).join(' or ')}` };
  try {
    // process.dlopen rather than require: it works the same in the bundled
    // single executable, whose require only knows built-in modules.
    const module = { exports: {} as NativeAddon };
    process.dlopen(module, path);
    return { addon: module.exports, path };
  } catch (err) {
    return { addon: undefined, reason: `cannot load native addon "${path}": ${errorMessage(err)}` };
  }
}

function defaultCandidates(): string[] {
  const candidates = [join(dirname(process.execPath), ADDON_FILE)];
  try {
    // src/supervisor/ or dist/supervisor/ → the checkout's build/Release/.
    candidates.push(fileURLToPath(new URL(`../../build/Release/${ADDON_FILE}`, import.meta.url)));
  } catch {
    // Bundled: no module URL to start from.
  }
  return candidates;
}

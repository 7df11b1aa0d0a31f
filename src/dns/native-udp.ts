import type { Socket as UdpSocket } from 'node:dgram';
import { isIPv4 } from 'node:net';
import { ipv6Bytes } from '../core/ip-address.js';
import type { NativeAddon, NativeAddonResult } from '../core/native-addon.js';
import type { NativeReplyTable, ReplyNetwork } from './reply-cache.js';

/** Whether a DNS server's UDP queries are read by the native fast path: yes, no, or yes when the addon loads. */
export type DnsFastPathChoice = 'native' | 'js' | 'auto';

/** The addon's UDP exports, all there. */
export type NativeUdpAddon = Required<
  Pick<NativeAddon, 'udpOpen' | 'udpPut' | 'udpDelete' | 'udpClear' | 'udpAllow' | 'udpTakeHits' | 'udpStats' | 'udpClose'>
>;

/** What the native path did since it started. */
export interface NativeUdpStats {
  /** Queries answered from the table. */
  hits: number;
  /** Datagrams passed to JavaScript. */
  misses: number;
  /** Datagrams longer than 4,096 bytes, and misses JavaScript was too far behind to take. */
  dropped: number;
  /** Entries and bytes in the table now. */
  entries: number;
  bytes: number;
}

export interface NativeUdpOptions {
  /** Entries and bytes the table holds at most (bytes count keys, replies, TTL offsets and a small overhead). */
  maxEntries: number;
  maxBytes: number;
  /** Every datagram the table did not answer, unchanged, with its sender. */
  onDatagram: (datagram: Buffer, address: string, port: number) => void;
  /** Who reads: a thread of the addon (the default), or the event loop's own thread (see `NativeUdpReader`). */
  reader?: NativeUdpReader;
}

/**
 * Where the native path reads the socket. `thread`: a thread of its own,
 * which answers even while JavaScript is busy, at the cost of a wake-up of
 * that thread per burst of queries (tens of µs on a small VM). `loop`: a
 * poll handle of the event loop, whose thread is awake anyway when the
 * same process accepts the connections its answers lead to (the stub of
 * `srvlink run`), but which answers nothing while JavaScript runs.
 */
export type NativeUdpReader = 'thread' | 'loop';

/**
 * A bound UDP socket's queries read by native code (native/src/udp-plane.c):
 * a thread (or the event loop: `reader`) reads them in batches (recvmmsg) from a duplicate of the socket's
 * descriptor, answers those whose bytes after the ID are a key of its table
 * (the reply copied, the ID written, the TTLs aged) in batches (sendmmsg),
 * and hands every other datagram to `onDatagram`. The socket stays Node's
 * for sending (the same socket: replies leave from the port the query came
 * to) but Node no longer reads it. The table is a `NativeReplyTable` that a
 * reply cache fills and empties; hits are counted in C and taken with `takeHits()`.
 */
export class NativeUdpPath implements NativeReplyTable {
  readonly #addon: NativeUdpAddon;
  readonly #handle: unknown;
  #closed = false;

  /** Throws when the socket has no descriptor or the thread cannot start. */
  constructor(addon: NativeUdpAddon, socket: UdpSocket, options: NativeUdpOptions) {
    const handle = udpHandle(socket);
    const fd = handle?.fd;
    if (typeof fd !== 'number' || fd < 0 || typeof handle?.recvStop !== 'function') throw new Error('the udp socket has no descriptor');
    const { onDatagram } = options;
    this.#addon = addon;
    this.#handle = addon.udpOpen(
      fd,
      options.maxEntries,
      options.maxBytes,
      (batch) => {
        if (this.#closed) return;
        for (let i = 0; i + 2 < batch.length; i += 3) onDatagram(batch[i] as Buffer, batch[i + 1] as string, batch[i + 2] as number);
      },
      options.reader === 'loop',
    );
    // From now on the native path reads: Node reading too would take datagrams from it.
    handle.recvStop();
  }

  /**
   * The table keeps the age and the lifetime, not the wall-clock times: C
   * counts them on the monotonic clock, so a step of the system clock after
   * the put neither ages an entry nor keeps it past its time.
   */
  put(id: number, key: Buffer, reply: Buffer, ttlOffsets: readonly number[], ttls: readonly number[], storedAt: number | undefined, expiresAt: number): boolean {
    if (this.#closed) return false;
    const now = Date.now();
    const age = storedAt === undefined ? -1 : Math.max(0, Math.floor(now - storedAt));
    const life = Number.isFinite(expiresAt) ? Math.max(0, Math.floor(expiresAt - now)) : Number.MAX_SAFE_INTEGER;
    return this.#addon.udpPut(this.#handle, id, key, reply, ttlOffsets, ttls, age, life);
  }

  delete(key: Buffer): void {
    if (!this.#closed) this.#addon.udpDelete(this.#handle, key);
  }

  clear(): void {
    if (!this.#closed) this.#addon.udpClear(this.#handle);
  }

  allow(networks: readonly ReplyNetwork[] | undefined): void {
    if (this.#closed) return;
    this.#addon.udpAllow(this.#handle, networks === undefined ? null : encodeNetworks(networks));
  }

  /** Hits since the last take, as (id, count) pairs. */
  takeHits(): number[] {
    return this.#closed ? [] : this.#addon.udpTakeHits(this.#handle);
  }

  stats(): NativeUdpStats {
    return this.#addon.udpStats(this.#handle);
  }

  /** Stop the thread and close its descriptor (before the socket closes: the duplicate would keep the port bound); safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#addon.udpClose(this.#handle);
  }
}

/** The libuv handle of a dgram socket (its `_handle` getter is deprecated and warns: the state it reads). */
export function udpHandle(socket: UdpSocket): { fd?: unknown; recvStop?: () => number; recvStart?: () => number } | undefined {
  const symbol = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'state symbol');
  const state = symbol === undefined ? undefined : (socket as unknown as Record<symbol, { handle?: unknown } | undefined>)[symbol];
  const handle = state?.handle;
  return typeof handle === 'object' && handle !== null ? handle : undefined;
}

/** Networks as the addon takes them: family (4 or 6), prefix length, 16 address bytes. A network that cannot be read is left out (answered by JavaScript). */
function encodeNetworks(networks: readonly ReplyNetwork[]): Buffer {
  const records: Buffer[] = [];
  for (const network of networks) {
    const address = network.address.split('%')[0] ?? '';
    const record = Buffer.alloc(18);
    if (network.family === 'ipv4' && isIPv4(address)) {
      record[0] = 4;
      address.split('.').forEach((part, i) => (record[2 + i] = Number(part)));
    } else if (network.family === 'ipv6') {
      const bytes = ipv6Bytes(address);
      if (bytes === undefined) continue;
      record[0] = 6;
      record.set(bytes, 2);
    } else {
      continue;
    }
    record[1] = network.prefix;
    records.push(record);
  }
  return Buffer.concat(records);
}

/**
 * The addon's UDP fast path for `choice`, or why there is none: `js`
 * never; `native` and `auto` when the addon loads and has it (`native`
 * then fails at the caller, `auto` warns in one line).
 */
export function openNativeUdp(choice: DnsFastPathChoice, loaded: () => NativeAddonResult): { addon: NativeUdpAddon | undefined; unavailable?: string } {
  if (choice === 'js') return { addon: undefined };
  if (process.platform !== 'linux') return { addon: undefined, unavailable: 'recvmmsg(2) is Linux only' };
  const result = loaded();
  if (!result.addon) return { addon: undefined, unavailable: result.reason };
  const { udpOpen, udpPut, udpDelete, udpClear, udpAllow, udpTakeHits, udpStats, udpClose } = result.addon;
  if (!udpOpen || !udpPut || !udpDelete || !udpClear || !udpAllow || !udpTakeHits || !udpStats || !udpClose) {
    return { addon: undefined, unavailable: `the native addon "${result.path}" has no udp fast path (built before it: npm run build:native)` };
  }
  return { addon: { udpOpen, udpPut, udpDelete, udpClear, udpAllow, udpTakeHits, udpStats, udpClose } };
}

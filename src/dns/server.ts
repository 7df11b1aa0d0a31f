import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server as TcpServer, type Socket } from 'node:net';
import { isIP } from 'node:net';
import { SrvlinkError, errorMessage } from '../core/errors.js';
import type { HostPort } from '../core/host-port.js';
import type { Service } from '../core/lifecycle.js';
import { silentLogger, type Logger } from '../core/logger.js';
import {
  Rcode,
  createMessage,
  createReply,
  decodeHeader,
  decodeMessage,
  encodeMessage,
  EDNS_UDP_SIZE,
  MAX_MESSAGE_SIZE,
  udpLimit,
  type DnsMessage,
} from './codec.js';
import { runChain, type DnsClientInfo, type DnsHandler, type DnsRequest } from './handler.js';
import { NativeUdpPath, udpHandle, type NativeUdpAddon, type NativeUdpReader, type NativeUdpStats } from './native-udp.js';
import type { NativeReplyCache, ReplyCache } from './reply-cache.js';
import { FrameDecoder, frameMessage } from './tcp-framing.js';
import { TC_BIT } from './wire.js';

export interface DnsServerOptions {
  /** Where to listen, UDP and TCP on the same port; port 0 picks a free one. */
  listen: HostPort;
  handlers: readonly DnsHandler[];
  /** Answers what no handler took. Default: REFUSED (we are nobody's resolver). */
  fallback?: (request: DnsRequest) => Promise<DnsMessage>;
  logger?: Logger;
  /** Queries being answered at once over UDP; past it, datagrams are dropped and counted. Default 1024. */
  maxInflight?: number;
  /**
   * Open TCP connections at most. A new one past it takes the place of the
   * connection idle for longest (nothing in flight), or is closed at once
   * when every connection is busy. Default 256.
   */
  maxTcpConnections?: number;
  /**
   * A TCP connection that brings no whole query for this long, with none in
   * flight, is closed (RFC 7766 §6.2.3); partial bytes do not count, so a
   * client cannot keep it open by trickling. Default 10 s.
   */
  tcpIdleTimeout?: number;
  /** A TCP message must be complete this long after its first byte arrived, or the connection is closed. Default 5 s. */
  tcpMessageTimeout?: number;
  /**
   * Queries of one TCP connection being answered at once (RFC 7766 §6.2.1.1);
   * past it the connection is not read until one is answered. Default 16.
   */
  maxTcpPipeline?: number;
  /** Told the question type (undefined when unreadable) and rcode of every reply, where the rcode is decided (metrics); `count` replies alike at once from the native path. */
  onReply?: (type: string | undefined, rcode: number, count?: number) => void;
  /** Encoded replies asked before a query is decoded, and told every reply the chain gives (the stub's wire cache). */
  replyCache?: ReplyCache;
  /**
   * The addon's UDP fast path: UDP queries are read by its thread, which
   * answers from a table the reply cache mirrors its UDP replies into
   * (`NativeUdpPath`); everything else comes here as before. Without it (or
   * with a reply cache that cannot mirror), Node reads the socket.
   */
  nativeUdp?: NativeUdpAddon;
  /** Where the native path reads (default `thread`). */
  nativeUdpReader?: NativeUdpReader;
}

/** Bounds of the native UDP table: query shapes and bytes (keys, replies, TTL offsets). */
export const NATIVE_UDP_LIMITS = { maxEntries: 20_000, maxBytes: 16 * 1024 * 1024 } as const;
/**
 * How often the native path's hits are counted into the server's stats and
 * metrics (ms): every 100 ms while queries are answered there, less often
 * (doubling up to 2 s) while none are, so that an idle server hardly wakes.
 */
const NATIVE_HITS_EVERY = { min: 100, max: 2000 } as const;

/**
 * SO_RCVBUF of the UDP socket (the kernel caps it at net.core.rmem_max and
 * doubles it): the queries that arrive while the process cannot read (a
 * stall, a GC, code not compiled yet after start) wait in the socket
 * instead of being dropped once the default ~200 KB (~250 queries) is
 * full. It costs memory only while queries are waiting.
 */
const UDP_RECEIVE_BUFFER = 4 * 1024 * 1024;

/** RFC 6891 §6.1.3: the highest EDNS version srvlink implements. */
const EDNS_VERSION = 0;

/** What the server did, for logs, metrics and tests. */
export interface DnsServerStats {
  /** Queries decoded and run through the chain. */
  queries: number;
  /** Packets whose header was readable but the rest was not: answered FORMERR. */
  formerr: number;
  /** Packets dropped unanswered: shorter than a header, responses, over the in-flight limit. */
  dropped: number;
  /** Handler failures turned into SERVFAIL. */
  servfail: number;
  /** UDP replies sent truncated (TC) because they were larger than the client allows. */
  truncated: number;
  /** TCP connections closed for a bad frame. */
  badFrames: number;
  /** TCP connections accepted. */
  tcpConnections: number;
  /** TCP connections closed to make room for a new one, or refused because all were busy. */
  tcpEvicted: number;
  /** TCP connections closed by the idle timeout or the message deadline. */
  tcpTimeouts: number;
  /** Queries with an EDNS version we do not implement, answered BADVERS (RFC 6891 §6.1.3). */
  badVersion: number;
}

/** What the server keeps per TCP connection. */
interface TcpConnection {
  socket: Socket;
  /** Queries being answered. */
  pending: number;
  /** Frames read but not yet started (the connection is paused meanwhile). */
  queue: Buffer[];
  /** Whether a write is waiting for 'drain' (the client is not reading). */
  blocked: boolean;
  idle: NodeJS.Timeout;
  message: NodeJS.Timeout | undefined;
}

/**
 * dgram's `lookup` for a socket of `family` that only sends to addresses:
 * the address itself, at once once `bound()` says the socket is bound; the
 * bind's own look-up answers on the next tick, as dns.lookup does (dgram
 * sets up the socket after asking, and a bind that completed inside the
 * call would leave it half set up).
 */
function sameAddress(family: 4 | 6, bound: () => boolean): (address: string, options: unknown, callback: (err: null, address: string, family: number) => void) => void {
  return (address, _options, callback) => {
    if (bound()) callback(null, address, family);
    else process.nextTick(callback, null, address, family);
  };
}

function isNativeReplyCache(cache: ReplyCache): cache is NativeReplyCache {
  return 'attachNative' in cache && 'nativeHits' in cache;
}

/** Map an error thrown by a handler to the rcode of the reply: the one place this happens. */
export function rcodeForError(err: unknown): number {
  if (err instanceof SrvlinkError && err.code === 'ERR_DNS_MALFORMED') return Rcode.FORMERR;
  return Rcode.SERVFAIL;
}

/**
 * A DNS server on UDP and TCP that runs every query through a handler chain.
 * Malformed input is answered FORMERR when the header is readable, dropped
 * otherwise, and counted; nothing a client sends can crash it.
 */
export class DnsServer implements Service<HostPort> {
  readonly stats: DnsServerStats = {
    queries: 0,
    formerr: 0,
    dropped: 0,
    servfail: 0,
    truncated: 0,
    badFrames: 0,
    tcpConnections: 0,
    tcpEvicted: 0,
    tcpTimeouts: 0,
    badVersion: 0,
  };
  readonly #options: DnsServerOptions;
  readonly #log: Logger;
  readonly #fallback: (request: DnsRequest) => Promise<DnsMessage>;
  /** Open connections, least recently active first (a whole query moves one to the end). */
  readonly #connections = new Map<Socket, TcpConnection>();
  #udp: UdpSocket | undefined;
  #tcp: TcpServer | undefined;
  #native: { path: NativeUdpPath; cache: NativeReplyCache; timer: NodeJS.Timeout | undefined } | undefined;
  #inflight = 0;
  #closing: Promise<void> | undefined;
  /** The callback of a UDP send, when the debug log would say that one failed. */
  readonly #sendFailures: ((client: string) => (err: Error | null) => void) | undefined;

  constructor(options: DnsServerOptions) {
    this.#options = options;
    this.#log = options.logger ?? silentLogger;
    const log = this.#log;
    this.#sendFailures =
      log.enabled?.('debug') === false
        ? undefined
        : (client) => (err) => {
            if (err) log.debug('cannot send dns reply', { client, error: errorMessage(err) });
          };
    this.#fallback = options.fallback ?? ((request) => Promise.resolve(createReply(request.message, { rcode: Rcode.REFUSED })));
  }

  async start(): Promise<void> {
    const { host, port } = this.#options.listen;
    // With port 0 the kernel picks the TCP port and UDP must then get the same
    // number. TCP first: its ports are the crowded ones (every outgoing
    // connection holds one), so a TCP-free port is rarely taken for UDP.
    // Another process may still hold it: try a few times.
    for (let attempt = 0; ; attempt++) {
      const tcp = await this.#listenTcp(host, port);
      const tcpPort = (tcp.address() as { port: number }).port;
      try {
        this.#udp = await this.#bindUdp(host, tcpPort);
        this.#tcp = tcp;
        return;
      } catch (err) {
        await new Promise<void>((resolve) => tcp.close(() => resolve()));
        if (port !== 0 || attempt >= 10 || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
      }
    }
  }

  address(): HostPort {
    if (!this.#udp) throw new SrvlinkError('ERR_NOT_STARTED', 'dns server is not listening');
    const { address, port } = this.#udp.address();
    return { host: address, port };
  }

  /** The native UDP path's counts, or undefined when Node reads the UDP socket. */
  get nativeUdp(): NativeUdpStats | undefined {
    return this.#native?.path.stats();
  }

  /** Count the native path's hits now (they are counted every 100 ms to 2 s anyway); how many there were. */
  countNativeHits(): number {
    const native = this.#native;
    if (native === undefined) return 0;
    let counted = 0;
    for (const { type, rcode, truncated, count } of native.cache.nativeHits(native.path.takeHits())) {
      this.stats.queries += count;
      if (truncated) this.stats.truncated += count;
      this.#observe(type, rcode, count);
      counted += count;
    }
    return counted;
  }

  /** Count the native path's hits after `every` ms, and again: sooner while there are some. */
  #countNativeHitsIn(every: number): void {
    const native = this.#native;
    if (native === undefined) return;
    native.timer = setTimeout(() => {
      const next = this.countNativeHits() > 0 ? NATIVE_HITS_EVERY.min : Math.min(NATIVE_HITS_EVERY.max, every * 2);
      this.#countNativeHitsIn(next);
    }, every);
    native.timer.unref();
  }

  /** Stop listening and close every TCP connection; safe to call twice. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const native = this.#native;
      if (native !== undefined) {
        // Before the socket: the thread's duplicate would keep the port bound.
        clearTimeout(native.timer);
        this.countNativeHits();
        native.path.close();
        native.cache.attachNative(undefined);
        this.#native = undefined;
      }
      const udp = this.#udp;
      const tcp = this.#tcp;
      for (const socket of this.#connections.keys()) socket.destroy();
      await Promise.all([
        udp ? new Promise<void>((resolve) => udp.close(() => resolve())) : undefined,
        tcp ? new Promise<void>((resolve) => tcp.close(() => resolve())) : undefined,
      ]);
    })();
    return this.#closing;
  }

  #bindUdp(host: string, port: number): Promise<UdpSocket> {
    return new Promise((resolve, reject) => {
      // Replies go to the address a query came from, always an IP: `sameAddress` hands it back at
      // once, where dgram's default (dns.lookup) would defer every send to a tick of its own.
      const family = isIP(host) === 6 ? 6 : 4;
      let bound = false;
      const socket = createSocket({ type: family === 6 ? 'udp6' : 'udp4', lookup: sameAddress(family, () => bound), recvBufferSize: UDP_RECEIVE_BUFFER });
      socket.once('error', reject);
      socket.bind({ address: host, port, exclusive: true }, () => {
        bound = true;
        socket.off('error', reject);
        socket.on('error', (err) => this.#log.warn('dns udp socket error', { error: errorMessage(err) }));
        // Bound to one address, every datagram arrived there; on a wildcard Node cannot tell (no IP_PKTINFO).
        const local = host === '0.0.0.0' || host === '::' ? undefined : socket.address().address;
        socket.on('message', (buf, rinfo) => this.#onDatagram(socket, buf, rinfo, local));
        this.#startNative(socket, local);
        resolve(socket);
      });
    });
  }

  /** Hand the reading of `socket` to the native path, when there is one and the reply cache can fill its table. */
  #startNative(socket: UdpSocket, local: string | undefined): void {
    const addon = this.#options.nativeUdp;
    const cache = this.#options.replyCache;
    if (addon === undefined || cache === undefined || !isNativeReplyCache(cache)) return;
    const family = socket.address().family as 'IPv4' | 'IPv6';
    let path: NativeUdpPath;
    try {
      path = new NativeUdpPath(addon, socket, {
        ...NATIVE_UDP_LIMITS,
        reader: this.#options.nativeUdpReader ?? 'thread',
        onDatagram: (buf, address, port) => this.#onDatagram(socket, buf, { address, port, family, size: buf.length }, local),
      });
    } catch (err) {
      this.#log.warn('dns udp queries read by node: the native fast path did not start', { error: errorMessage(err) });
      return;
    }
    if (!cache.attachNative(path)) {
      path.close();
      // The thread stopped Node's reading: read again.
      udpHandle(socket)?.recvStart?.();
      return;
    }
    this.#native = { path, cache, timer: undefined };
    this.#countNativeHitsIn(NATIVE_HITS_EVERY.min);
  }

  #listenTcp(host: string, port: number): Promise<TcpServer> {
    return new Promise((resolve, reject) => {
      const server = createServer({ pauseOnConnect: false }, (socket) => this.#onConnection(socket));
      server.once('error', reject);
      server.listen({ host, port, exclusive: true }, () => {
        server.off('error', reject);
        server.on('error', (err) => this.#log.warn('dns tcp listener error', { error: errorMessage(err) }));
        resolve(server);
      });
    });
  }

  #onDatagram(socket: UdpSocket, buf: Buffer, rinfo: RemoteInfo, localAddress: string | undefined): void {
    if (this.#inflight >= (this.#options.maxInflight ?? 1024)) {
      this.stats.dropped++;
      return;
    }
    const client: DnsClientInfo =
      localAddress === undefined
        ? { address: rinfo.address, port: rinfo.port, transport: 'udp' }
        : { address: rinfo.address, port: rinfo.port, transport: 'udp', localAddress };
    // A cached reply goes out at once: no promise, no decoding.
    const cached = this.#fromCache(buf, client);
    if (cached !== undefined) {
      this.#sendUdp(socket, cached, rinfo);
      return;
    }
    this.#inflight++;
    void this.#answer(buf, client)
      .catch((err: unknown) => {
        this.#log.error('dns query handling failed', { error: errorMessage(err) });
        return undefined;
      })
      .then((reply) => {
        if (reply) this.#sendUdp(socket, reply, rinfo);
      })
      .finally(() => this.#inflight--);
  }

  #sendUdp(socket: UdpSocket, reply: Buffer, rinfo: RemoteInfo): void {
    // A reply that comes after close() has nowhere to go.
    if (this.#closing) return;
    try {
      // Without a callback dgram neither makes a request object's callback nor defers one to a
      // tick per reply; the callback only tells the debug log of a failed send.
      if (this.#sendFailures === undefined) socket.send(reply, rinfo.port, rinfo.address);
      else socket.send(reply, rinfo.port, rinfo.address, this.#sendFailures(rinfo.address));
    } catch (err) {
      this.#log.debug('cannot send dns reply', { client: rinfo.address, error: errorMessage(err) });
    }
  }

  /** The reply cache's answer to `buf`, counted as the chain's would be; undefined without one. */
  #fromCache(buf: Buffer, client: DnsClientInfo): Buffer | undefined {
    const cache = this.#options.replyCache;
    if (cache === undefined) return undefined;
    let hit;
    try {
      hit = cache.lookup(buf, client);
    } catch (err) {
      this.#log.warn('dns reply cache failed', { error: errorMessage(err) });
      return undefined;
    }
    if (hit === undefined) return undefined;
    this.stats.queries++;
    if (hit.truncated) this.stats.truncated++;
    this.#observe(hit.type, hit.rcode);
    return hit.wire;
  }

  /**
   * One TCP connection (RFC 7766): frames are answered at most
   * `maxTcpPipeline` at a time, in parallel, replies in the order they are
   * ready (§6.2.1.1 allows it: clients match by ID). Memory per connection is
   * bounded: the socket is paused while its queue is full or while a reply
   * waits for the client to read (write() backpressure), so a client that
   * never reads stops being read, and holds at most what is in flight.
   */
  #onConnection(socket: Socket): void {
    this.stats.tcpConnections++;
    const max = this.#options.maxTcpConnections ?? 256;
    if (this.#connections.size >= max && !this.#evictIdle()) {
      this.stats.tcpEvicted++;
      socket.destroy();
      return;
    }
    const decoder = new FrameDecoder();
    const client: DnsClientInfo = {
      address: socket.remoteAddress ?? '',
      port: socket.remotePort ?? 0,
      transport: 'tcp',
      ...(socket.localAddress === undefined ? {} : { localAddress: socket.localAddress }),
    };
    const maxPipeline = this.#options.maxTcpPipeline ?? 16;
    const timeOut = (): void => {
      this.stats.tcpTimeouts++;
      socket.destroy();
    };
    const conn: TcpConnection = {
      socket,
      pending: 0,
      queue: [],
      blocked: false,
      // Reset only by whole queries and replies: a trickling client cannot keep it alive.
      idle: setTimeout(() => {
        if (conn.pending > 0) conn.idle.refresh();
        else timeOut();
      }, this.#options.tcpIdleTimeout ?? 10_000),
      message: undefined,
    };
    conn.idle.unref();
    this.#connections.set(socket, conn);
    socket.setNoDelay(true);
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      clearTimeout(conn.idle);
      clearTimeout(conn.message);
      conn.queue = [];
      this.#connections.delete(socket);
    });
    socket.on('drain', () => {
      conn.blocked = false;
      schedule();
    });
    let scheduled = false;
    const schedule = (): void => {
      if (scheduled) return;
      scheduled = true;
      setImmediate(() => {
        scheduled = false;
        pump();
      });
    };
    /** Start what the limits allow; read again only when nothing waits. */
    const pump = (): void => {
      while (!conn.blocked && conn.pending < maxPipeline && conn.queue.length > 0 && !socket.destroyed) {
        start(conn.queue.shift() as Buffer);
      }
      if (socket.destroyed) return;
      if (conn.blocked || conn.queue.length > 0 || conn.pending >= maxPipeline) socket.pause();
      else socket.resume();
    };
    const start = (frame: Buffer): void => {
      conn.pending++;
      void this.#answer(frame, client, MAX_MESSAGE_SIZE)
        .catch((err: unknown) => {
          this.#log.error('dns query handling failed', { error: errorMessage(err) });
          return undefined;
        })
        .then((reply) => {
          conn.pending--;
          if (socket.destroyed || !socket.writable) return;
          if (reply) {
            conn.idle.refresh();
            if (!socket.write(frameMessage(reply))) conn.blocked = true;
          }
          // On the next turn of the event loop, not now: while the kernel takes every write at
          // once, answering a queue of pipelined queries would otherwise be one chain of
          // microtasks, and no other connection (or UDP client) would be read until it ended.
          schedule();
        });
    };
    socket.on('data', (chunk: Buffer) => {
      let frames: Buffer[];
      try {
        frames = decoder.push(chunk);
      } catch {
        // A bad length prefix leaves no way to find the next message (RFC 7766 §8).
        this.stats.badFrames++;
        socket.destroy();
        return;
      }
      if (frames.length > 0) {
        conn.idle.refresh();
        // Most recently active last: the front of the map is the first to make room.
        this.#connections.delete(socket);
        this.#connections.set(socket, conn);
        clearTimeout(conn.message);
        conn.message = undefined;
      }
      // A message's deadline runs from its first byte, however slowly the rest comes.
      if (decoder.buffered > 0 && conn.message === undefined) {
        conn.message = setTimeout(timeOut, this.#options.tcpMessageTimeout ?? 5_000);
        conn.message.unref();
      }
      conn.queue.push(...frames);
      pump();
    });
  }

  /** Close the connection idle for longest (nothing in flight) to make room; false when all are busy. */
  #evictIdle(): boolean {
    for (const [socket, conn] of this.#connections) {
      if (conn.pending > 0 || conn.queue.length > 0) continue;
      this.stats.tcpEvicted++;
      this.#connections.delete(socket);
      socket.destroy();
      return true;
    }
    return false;
  }

  /**
   * Decode, run the chain, encode within `limit` bytes (the transport's):
   * undefined means "drop". Never rejects.
   */
  async #answer(buf: Buffer, client: DnsClientInfo, limit?: number): Promise<Buffer | undefined> {
    const cached = client.transport === 'tcp' ? this.#fromCache(buf, client) : undefined;
    if (cached !== undefined) return cached;
    const header = decodeHeader(buf);
    // RFC 1035 §4.1.1 gives nothing to reply to without a header; a response
    // is never answered (that is how reflection loops start).
    if (!header || header.response) {
      this.stats.dropped++;
      return undefined;
    }
    let query: DnsMessage;
    try {
      query = decodeMessage(buf);
    } catch {
      this.stats.formerr++;
      this.#observe(undefined, Rcode.FORMERR);
      return encodeMessage(
        createMessage({ id: header.id, response: true, opcode: header.opcode, rcode: Rcode.FORMERR, flags: { rd: header.rd } }),
      );
    }
    this.stats.queries++;
    const maxSize = limit ?? udpLimit(query);
    let reply: DnsMessage;
    if (query.edns !== undefined && query.edns.version > EDNS_VERSION) {
      // RFC 6891 §6.1.3: a version we do not implement gets BADVERS, with the version we do.
      this.stats.badVersion++;
      reply = createReply(query, { rcode: Rcode.BADVERS, edns: { udpPayloadSize: EDNS_UDP_SIZE, version: EDNS_VERSION, dnssecOk: false } });
    } else {
      try {
        reply = await runChain(this.#options.handlers, { message: query, client }, this.#fallback);
      } catch (err) {
        const rcode = rcodeForError(err);
        if (rcode === Rcode.SERVFAIL) this.stats.servfail++;
        this.#log.debug('dns query failed', { name: query.questions[0]?.name, type: query.questions[0]?.type, error: errorMessage(err) });
        reply = createReply(query, { rcode });
      }
    }
    let wire: Buffer;
    try {
      // Cut to what fits the transport (UDP: the client's EDNS size or 512; TCP: 65,535), TC set
      // when answers had to go: never an exception for a large answer.
      wire = encodeMessage(reply, { maxSize });
      if (wire.length >= 4 && (wire.readUInt16BE(2) & TC_BIT) !== 0 && !reply.flags.tc) this.stats.truncated++;
      this.#toCache(buf, client, reply, wire);
    } catch (err) {
      // A handler built a reply that cannot go on the wire: a bug to log, never a crash.
      this.stats.servfail++;
      this.#log.warn('cannot encode dns reply', { name: query.questions[0]?.name, error: errorMessage(err) });
      wire = encodeMessage(createMessage({ id: query.id, response: true, opcode: query.opcode, rcode: Rcode.SERVFAIL, flags: { rd: query.flags.rd } }));
      reply = { ...reply, rcode: Rcode.SERVFAIL };
    }
    this.#observe(query.questions[0]?.type, reply.rcode);
    return wire;
  }

  /** Offer the chain's reply to the reply cache; a cache that throws must not cost the reply. */
  #toCache(buf: Buffer, client: DnsClientInfo, reply: DnsMessage, wire: Buffer): void {
    try {
      this.#options.replyCache?.store(buf, client, reply, wire);
    } catch (err) {
      this.#log.warn('dns reply cache failed', { error: errorMessage(err) });
    }
  }

  /** Tell `onReply`; an observer that throws must not cost the reply. */
  #observe(type: string | undefined, rcode: number, count = 1): void {
    try {
      this.#options.onReply?.(type, rcode, count);
    } catch (err) {
      this.#log.debug('dns reply observer failed', { error: errorMessage(err) });
    }
  }
}

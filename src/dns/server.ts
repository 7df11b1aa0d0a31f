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
  truncate,
  udpLimit,
  type DnsMessage,
} from './codec.js';
import { runChain, type DnsClientInfo, type DnsHandler, type DnsRequest } from './handler.js';
import { FrameDecoder, frameMessage } from './tcp-framing.js';

export interface DnsServerOptions {
  /** Where to listen, UDP and TCP on the same port; port 0 picks a free one. */
  listen: HostPort;
  handlers: readonly DnsHandler[];
  /** Answers what no handler took. Default: REFUSED (we are nobody's resolver). */
  fallback?: (request: DnsRequest) => Promise<DnsMessage>;
  logger?: Logger;
  /** Queries being answered at once over UDP; past it, datagrams are dropped and counted. Default 1024. */
  maxInflight?: number;
  /** Open TCP connections; past it new ones are refused by the kernel backlog. Default 256. */
  maxTcpConnections?: number;
  /** A TCP connection idle this long is closed (RFC 7766 §6.2.3). Default 10 s. */
  tcpIdleTimeout?: number;
  /** Queries pipelined on one TCP connection before it is paused (RFC 7766 §6.2.1.1). Default 16. */
  maxTcpPipeline?: number;
}

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
  tcpConnections: number;
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
  readonly stats: DnsServerStats = { queries: 0, formerr: 0, dropped: 0, servfail: 0, truncated: 0, badFrames: 0, tcpConnections: 0 };
  readonly #options: DnsServerOptions;
  readonly #log: Logger;
  readonly #fallback: (request: DnsRequest) => Promise<DnsMessage>;
  readonly #tcpSockets = new Set<Socket>();
  #udp: UdpSocket | undefined;
  #tcp: TcpServer | undefined;
  #inflight = 0;
  #closing: Promise<void> | undefined;

  constructor(options: DnsServerOptions) {
    this.#options = options;
    this.#log = options.logger ?? silentLogger;
    this.#fallback = options.fallback ?? ((request) => Promise.resolve(createReply(request.message, { rcode: Rcode.REFUSED })));
  }

  async start(): Promise<void> {
    const { host, port } = this.#options.listen;
    // With port 0 the kernel picks the UDP port; TCP must then get the same
    // number, which another process may hold: try a few times.
    for (let attempt = 0; ; attempt++) {
      const udp = await this.#bindUdp(host, port);
      const udpPort = udp.address().port;
      try {
        this.#tcp = await this.#listenTcp(host, udpPort);
        this.#udp = udp;
        return;
      } catch (err) {
        await new Promise<void>((resolve) => udp.close(() => resolve()));
        if (port !== 0 || attempt >= 10 || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
      }
    }
  }

  address(): HostPort {
    if (!this.#udp) throw new SrvlinkError('ERR_NOT_STARTED', 'dns server is not listening');
    const { address, port } = this.#udp.address();
    return { host: address, port };
  }

  /** Stop listening and close every TCP connection; safe to call twice. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const udp = this.#udp;
      const tcp = this.#tcp;
      for (const socket of this.#tcpSockets) socket.destroy();
      await Promise.all([
        udp ? new Promise<void>((resolve) => udp.close(() => resolve())) : undefined,
        tcp ? new Promise<void>((resolve) => tcp.close(() => resolve())) : undefined,
      ]);
    })();
    return this.#closing;
  }

  #bindUdp(host: string, port: number): Promise<UdpSocket> {
    return new Promise((resolve, reject) => {
      const socket = createSocket({ type: isIP(host) === 6 ? 'udp6' : 'udp4' });
      socket.once('error', reject);
      socket.bind({ address: host, port, exclusive: true }, () => {
        socket.off('error', reject);
        socket.on('error', (err) => this.#log.warn('dns udp socket error', { error: errorMessage(err) }));
        socket.on('message', (buf, rinfo) => this.#onDatagram(socket, buf, rinfo));
        resolve(socket);
      });
    });
  }

  #listenTcp(host: string, port: number): Promise<TcpServer> {
    return new Promise((resolve, reject) => {
      const server = createServer({ pauseOnConnect: false }, (socket) => this.#onConnection(socket));
      server.maxConnections = this.#options.maxTcpConnections ?? 256;
      server.once('error', reject);
      server.listen({ host, port, exclusive: true }, () => {
        server.off('error', reject);
        server.on('error', (err) => this.#log.warn('dns tcp listener error', { error: errorMessage(err) }));
        resolve(server);
      });
    });
  }

  #onDatagram(socket: UdpSocket, buf: Buffer, rinfo: RemoteInfo): void {
    if (this.#inflight >= (this.#options.maxInflight ?? 1024)) {
      this.stats.dropped++;
      return;
    }
    this.#inflight++;
    const client: DnsClientInfo = { address: rinfo.address, port: rinfo.port, transport: 'udp' };
    void this.#answer(buf, client)
      .catch((err: unknown) => {
        this.#log.error('dns query handling failed', { error: errorMessage(err) });
        return undefined;
      })
      .then((reply) => {
        // A reply that comes after close() has nowhere to go.
        if (!reply || this.#closing) return;
        try {
          socket.send(reply, rinfo.port, rinfo.address, (err) => {
            if (err) this.#log.debug('cannot send dns reply', { client: rinfo.address, error: errorMessage(err) });
          });
        } catch (err) {
          this.#log.debug('cannot send dns reply', { client: rinfo.address, error: errorMessage(err) });
        }
      })
      .finally(() => this.#inflight--);
  }

  #onConnection(socket: Socket): void {
    this.stats.tcpConnections++;
    this.#tcpSockets.add(socket);
    const decoder = new FrameDecoder();
    const client: DnsClientInfo = { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0, transport: 'tcp' };
    const maxPipeline = this.#options.maxTcpPipeline ?? 16;
    let pending = 0;
    socket.setTimeout(this.#options.tcpIdleTimeout ?? 10_000, () => socket.destroy());
    socket.setNoDelay(true);
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.#tcpSockets.delete(socket));
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
      for (const frame of frames) {
        pending++;
        if (pending >= maxPipeline) socket.pause();
        void this.#answer(frame, client).catch((err: unknown) => {
          this.#log.error('dns query handling failed', { error: errorMessage(err) });
          return undefined;
        }).then((reply) => {
          pending--;
          if (pending < maxPipeline && !socket.destroyed) socket.resume();
          if (!reply || socket.destroyed || !socket.writable) return;
          socket.write(frameMessage(reply));
        });
      }
    });
  }

  /** Decode, run the chain, encode: undefined means "drop". Never rejects. */
  async #answer(buf: Buffer, client: DnsClientInfo): Promise<Buffer | undefined> {
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
      return encodeMessage(
        createMessage({ id: header.id, response: true, opcode: header.opcode, rcode: Rcode.FORMERR, flags: { rd: header.rd } }),
      );
    }
    this.stats.queries++;
    let reply: DnsMessage;
    try {
      reply = await runChain(this.#options.handlers, { message: query, client }, this.#fallback);
    } catch (err) {
      const rcode = rcodeForError(err);
      if (rcode === Rcode.SERVFAIL) this.stats.servfail++;
      this.#log.debug('dns query failed', { name: query.questions[0]?.name, type: query.questions[0]?.type, error: errorMessage(err) });
      reply = createReply(query, { rcode });
    }
    let wire: Buffer;
    try {
      wire = encodeMessage(reply);
      if (client.transport === 'udp' && wire.length > udpLimit(query)) {
        this.stats.truncated++;
        wire = encodeMessage(truncate(reply));
      }
    } catch (err) {
      // A handler built a reply that cannot go on the wire: a bug to log, never a crash.
      this.stats.servfail++;
      this.#log.warn('cannot encode dns reply', { name: query.questions[0]?.name, error: errorMessage(err) });
      wire = encodeMessage(createMessage({ id: query.id, response: true, opcode: query.opcode, rcode: Rcode.SERVFAIL, flags: { rd: query.flags.rd } }));
    }
    return wire;
  }
}

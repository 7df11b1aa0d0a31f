import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { HostPort } from '../../src/core/host-port.js';
import { decodeMessage, encodeMessage, type DnsMessage } from '../../src/dns/codec.js';
import { FrameDecoder, frameMessage } from '../../src/dns/tcp-framing.js';

/** A query as the fake server received it. */
export interface FakeDnsQuery {
  message: DnsMessage;
  raw: Buffer;
  transport: 'udp' | 'tcp';
  /** The client's address and (source) port. */
  address: string;
  port: number;
}

/**
 * One thing to send back. `reply` is a message (encoded here) or raw bytes
 * (sent as they are, framed over TCP). `from` picks the UDP socket that sends
 * it: the server's own (default), another socket on another port, or one on
 * 127.0.0.2 (another address); ignored over TCP.
 */
export interface FakeDnsAction {
  reply: DnsMessage | Uint8Array;
  from?: 'server' | 'other-port' | 'other-address';
}

/** Decide what to send for a query; `[]` stays silent. Actions are sent in order. */
export type FakeDnsScript = (query: FakeDnsQuery) => FakeDnsAction[];

export interface FakeDnsServerOptions {
  script: FakeDnsScript;
  /** Also listen on TCP, on the same port as UDP. Default true. */
  tcp?: boolean;
}

/** A scriptable DNS server on real sockets, 127.0.0.1 and a free port. */
export interface FakeDnsServer {
  readonly address: HostPort;
  /** Every query received, in order. */
  readonly queries: readonly FakeDnsQuery[];
  /** Resolves once at least `count` queries have been received. */
  waitForQueries(count: number): Promise<readonly FakeDnsQuery[]>;
  /** Close every socket and connection; safe to call twice. */
  close(): Promise<void>;
}

const HOST = '127.0.0.1';

/** Start a fake DNS server (UDP, and TCP on the same port unless `tcp: false`). */
export async function startFakeDnsServer(options: FakeDnsServerOptions): Promise<FakeDnsServer> {
  const queries: FakeDnsQuery[] = [];
  const waiters: { count: number; resolve: (q: readonly FakeDnsQuery[]) => void }[] = [];
  const connections = new Set<Socket>();
  const spoofers = new Map<'other-port' | 'other-address', Promise<UdpSocket>>();
  let closed = false;

  const record = (query: FakeDnsQuery): FakeDnsAction[] => {
    queries.push(query);
    for (const waiter of [...waiters]) {
      if (queries.length >= waiter.count) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(queries);
      }
    }
    return options.script(query);
  };

  const spoofer = (kind: 'other-port' | 'other-address'): Promise<UdpSocket> => {
    let socket = spoofers.get(kind);
    if (!socket) {
      socket = (async () => {
        const s = createSocket('udp4');
        s.on('error', () => undefined);
        s.bind(0, kind === 'other-address' ? '127.0.0.2' : HOST);
        await once(s, 'listening');
        return s;
      })();
      spoofers.set(kind, socket);
    }
    return socket;
  };

  const onUdp = (udp: UdpSocket, raw: Buffer, rinfo: { address: string; port: number }): void => {
    let message: DnsMessage;
    try {
      message = decodeMessage(raw);
    } catch {
      return;
    }
    const actions = record({ message, raw, transport: 'udp', address: rinfo.address, port: rinfo.port });
    void (async () => {
      // One after the other, each handed to the kernel before the next: the order is the test's.
      for (const action of actions) {
        if (closed) return;
        const bytes = action.reply instanceof Uint8Array ? action.reply : encodeMessage(action.reply);
        const from = action.from ?? 'server';
        const socket = from === 'server' ? udp : await spoofer(from);
        await new Promise<void>((resolve) => socket.send(bytes, rinfo.port, rinfo.address, () => resolve()));
      }
    })();
  };

  const { udp, tcp, port } = await listenPair(
    onUdp,
    (socket) => serveTcp(socket, record, connections),
    options.tcp !== false,
  );

  return {
    address: { host: HOST, port },
    queries,
    waitForQueries(count) {
      if (queries.length >= count) return Promise.resolve(queries);
      return new Promise((resolve) => waiters.push({ count, resolve }));
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const socket of connections) socket.destroy();
      const closing: Promise<unknown>[] = [new Promise<void>((resolve) => udp.close(() => resolve()))];
      if (tcp) closing.push(new Promise<void>((resolve) => tcp?.close(() => resolve())));
      for (const pending of spoofers.values()) {
        closing.push(pending.then((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
      }
      await Promise.all(closing);
    },
  };
}

/**
 * UDP on a free port, and TCP on the same port number when wanted (retried
 * while it is taken). With TCP the kernel picks the TCP port and UDP binds
 * it: TCP ports are the crowded ones (outgoing connections in TIME_WAIT hold
 * most of the ephemeral range on a busy host), which a UDP pick knows nothing of.
 */
async function listenPair(
  onUdp: (udp: UdpSocket, raw: Buffer, rinfo: { address: string; port: number }) => void,
  onTcp: (socket: Socket) => void,
  withTcp: boolean,
): Promise<{ udp: UdpSocket; tcp: Server | undefined; port: number }> {
  const bindUdp = async (port: number): Promise<UdpSocket> => {
    const udp = createSocket('udp4');
    udp.on('message', (raw, rinfo) => onUdp(udp, raw, rinfo));
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(port, HOST, () => {
        udp.off('error', reject);
        resolve();
      });
    });
    udp.on('error', () => undefined);
    return udp;
  };
  if (!withTcp) {
    const udp = await bindUdp(0);
    return { udp, tcp: undefined, port: udp.address().port };
  }
  for (let tries = 0; ; tries += 1) {
    const tcp = createServer(onTcp);
    tcp.listen(0, HOST);
    await once(tcp, 'listening');
    const port = (tcp.address() as AddressInfo).port;
    try {
      return { udp: await bindUdp(port), tcp, port };
    } catch (err) {
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
      if (tries >= 20) throw err;
    }
  }
}

function serveTcp(socket: Socket, record: (query: FakeDnsQuery) => FakeDnsAction[], connections: Set<Socket>): void {
  connections.add(socket);
  socket.on('close', () => connections.delete(socket));
  socket.on('error', () => undefined);
  const decoder = new FrameDecoder();
  socket.on('data', (chunk) => {
    let frames: Buffer[];
    try {
      frames = decoder.push(chunk);
    } catch {
      socket.destroy();
      return;
    }
    for (const raw of frames) {
      let message: DnsMessage;
      try {
        message = decodeMessage(raw);
      } catch {
        continue;
      }
      const actions = record({
        message,
        raw,
        transport: 'tcp',
        address: socket.remoteAddress ?? '',
        port: socket.remotePort ?? 0,
      });
      for (const action of actions) {
        const bytes = action.reply instanceof Uint8Array ? action.reply : encodeMessage(action.reply);
        socket.write(frameMessage(bytes));
      }
    }
  });
}

import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import type { HostPort } from '../../src/core/host-port.js';
import { FrameDecoder, frameMessage } from '../../src/dns/tcp-framing.js';

/** How long a test waits for a DNS reply before failing: generous, machines are noisy. */
export const REPLY_TIMEOUT = 10_000;

/**
 * A UDP client socket for tests that sends raw bytes and awaits raw replies
 * in order. Closed by `close()`.
 */
export class RawUdpClient {
  readonly #socket: UdpSocket;
  readonly #queue: Buffer[] = [];
  readonly #waiters: ((buf: Buffer) => void)[] = [];

  private constructor(socket: UdpSocket) {
    this.#socket = socket;
    socket.on('message', (buf) => {
      const waiter = this.#waiters.shift();
      if (waiter) waiter(buf);
      else this.#queue.push(buf);
    });
  }

  static async open(): Promise<RawUdpClient> {
    const socket = createSocket('udp4');
    socket.bind(0, '127.0.0.1');
    await once(socket, 'listening');
    return new RawUdpClient(socket);
  }

  send(server: HostPort, buf: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => this.#socket.send(buf, server.port, server.host, (err) => (err ? reject(err) : resolve())));
  }

  /** The next datagram received, or a rejection after `timeout` ms. */
  receive(timeout = REPLY_TIMEOUT): Promise<Buffer> {
    const queued = this.#queue.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(done), 1);
        reject(new Error(`no udp reply within ${timeout} ms`));
      }, timeout);
      const done = (buf: Buffer): void => {
        clearTimeout(timer);
        resolve(buf);
      };
      this.#waiters.push(done);
    });
  }

  async exchange(server: HostPort, buf: Uint8Array, timeout = REPLY_TIMEOUT): Promise<Buffer> {
    await this.send(server, buf);
    return this.receive(timeout);
  }

  close(): void {
    this.#socket.close();
  }
}

/** A TCP connection for tests speaking 2-byte-framed DNS. */
export class RawTcpClient {
  readonly socket: Socket;
  readonly #decoder = new FrameDecoder();
  readonly #queue: Buffer[] = [];
  readonly #waiters: ((buf: Buffer | Error) => void)[] = [];
  #ended = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      for (const frame of this.#decoder.push(chunk)) {
        const waiter = this.#waiters.shift();
        if (waiter) waiter(frame);
        else this.#queue.push(frame);
      }
    });
    socket.on('close', () => {
      this.#ended = true;
      for (const waiter of this.#waiters.splice(0)) waiter(new Error('connection closed'));
    });
    socket.on('error', () => undefined);
  }

  static async open(server: HostPort): Promise<RawTcpClient> {
    const socket = connect({ port: server.port, host: server.host, noDelay: true });
    await once(socket, 'connect');
    return new RawTcpClient(socket);
  }

  /** Write raw bytes (already framed, or deliberately not). */
  write(buf: Uint8Array): void {
    this.socket.write(buf);
  }

  send(message: Uint8Array): void {
    this.socket.write(frameMessage(message));
  }

  receive(timeout = REPLY_TIMEOUT): Promise<Buffer> {
    const queued = this.#queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.#ended) return Promise.reject(new Error('connection closed'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no tcp reply within ${timeout} ms`)), timeout);
      this.#waiters.push((result) => {
        clearTimeout(timer);
        if (result instanceof Error) reject(result);
        else resolve(result);
      });
    });
  }

  /** Resolves when the server closes the connection. */
  async closed(): Promise<void> {
    if (!this.#ended) await once(this.socket, 'close');
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Type codes of the raw queries tests write by hand. */
export const RAW_TYPES = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33, AXFR: 252, ANY: 255 } as const;

/** A query as a resolver writes it: the name spelled as given, the header bits and EDNS as chosen. */
export interface RawQuery {
  name: string;
  type: keyof typeof RAW_TYPES;
  /** Class code; default 1 (IN). */
  class?: number;
  /** Header flag bits: RD 0x0100, AD 0x0020, CD 0x0010; default RD. */
  flags?: number;
  /** EDNS payload size (and DO); none: no OPT record. */
  edns?: { size: number; do?: boolean };
  transport?: 'udp' | 'tcp';
}

/** The bytes of `q` with ID `id`, written label by label (no compression, no canonicalisation). */
/**
 * The query shapes a reply cache must tell apart: RD on and off, AD and CD,
 * EDNS sizes (one below 512) with and without DO, and TCP.
 */
export const QUERY_SHAPES: readonly Omit<RawQuery, 'name' | 'type'>[] = [
  {},
  { flags: 0 },
  { flags: 0x0120 },
  { flags: 0x0110 },
  { edns: { size: 1232 } },
  { edns: { size: 4096, do: true } },
  { edns: { size: 512 }, flags: 0x0130 },
  { edns: { size: 100 } },
  { transport: 'tcp' },
  { transport: 'tcp', edns: { size: 1232, do: true } },
];

export function rawQuery(id: number, q: RawQuery): Buffer {
  const labels = q.name.split('.').filter((l) => l !== '');
  const name = Buffer.concat([...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'latin1')])), Buffer.from([0])]);
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(q.flags ?? 0x0100, 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(q.edns ? 1 : 0, 10);
  const question = Buffer.alloc(4);
  question.writeUInt16BE(RAW_TYPES[q.type], 0);
  question.writeUInt16BE(q.class ?? 1, 2);
  const parts = [header, name, question];
  if (q.edns) {
    const opt = Buffer.alloc(11);
    opt.writeUInt16BE(41, 1);
    opt.writeUInt16BE(q.edns.size, 3);
    opt.writeUInt16BE(q.edns.do ? 0x8000 : 0, 7);
    parts.push(opt);
  }
  return Buffer.concat(parts);
}

/** Send `bytes` to `server` over `transport` on a connection of its own and return the reply's bytes. */
export async function rawExchange(server: HostPort, bytes: Buffer, transport: 'udp' | 'tcp' = 'udp'): Promise<Buffer> {
  if (transport === 'tcp') {
    const tcp = await RawTcpClient.open(server);
    try {
      tcp.send(bytes);
      return await tcp.receive();
    } finally {
      tcp.close();
    }
  }
  const udp = await RawUdpClient.open();
  try {
    return await udp.exchange(server, bytes);
  } finally {
    udp.close();
  }
}

import { onTestFinished } from 'vitest';
import type { HostPort } from '../../src/core/host-port.js';
import { DnsClient } from '../../src/dns/client.js';
import { createMessage, decodeMessage, encodeMessage, type DnsMessage, type DnsRecord, type RecordType } from '../../src/dns/codec.js';
import type { DnsHandler } from '../../src/dns/handler.js';
import { DnsServer } from '../../src/dns/server.js';
import { createStub, type StubOptions, type StubServer } from '../../src/stub/create-stub.js';
import { RawTcpClient, RawUdpClient } from './raw-dns.js';

/** A clock the test moves by hand (the stub's cache reads it; nothing else does). */
export interface ManualClock {
  now: () => number;
  advance(ms: number): void;
}

export function manualClock(start = 1_700_000_000_000): ManualClock {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

/** A real `DnsServer` on 127.0.0.1:0 whose answers the test writes, counting what reaches it. */
export interface Upstream {
  server: DnsServer;
  address: HostPort;
  /** Every query that reached it, in order. */
  queries: DnsMessage[];
  /** How many queries for `name` (case-insensitive) reached it. */
  count(name: string): number;
}

/** Start an upstream answering with `answer` (throw → SERVFAIL); closed when the test ends. */
export async function startUpstream(answer: (query: DnsMessage) => DnsMessage | Promise<DnsMessage>): Promise<Upstream> {
  const queries: DnsMessage[] = [];
  const handler: DnsHandler = {
    name: 'test-upstream',
    handle: (request) => {
      queries.push(request.message);
      return Promise.resolve(answer(request.message));
    },
  };
  const server = new DnsServer({ listen: { host: '127.0.0.1', port: 0 }, handlers: [handler] });
  await server.start();
  onTestFinished(() => server.close());
  return {
    server,
    address: server.address(),
    queries,
    count: (name) => queries.filter((q) => q.questions[0]?.name.toLowerCase().replace(/\.$/, '') === name.toLowerCase()).length,
  };
}

/** A `DnsClient` to `server` with small timeouts and one attempt, so failures come fast. */
export function resolverFor(server: HostPort, timeout = 500): DnsClient {
  return new DnsClient({ servers: [server], timeout, attempts: 1 });
}

/** Create and start a stub on 127.0.0.1:0; closed when the test ends. */
export async function startStub(options: Omit<StubOptions, 'listen'>): Promise<StubServer> {
  const stub = createStub({ listen: { host: '127.0.0.1', port: 0 }, ...options });
  await stub.start();
  onTestFinished(() => stub.close());
  return stub;
}

let nextId = 1;

/** A query as an application's resolver sends it: RD set, a fresh ID. */
export function query(name: string, type: RecordType = 'A', fields: Partial<DnsMessage> = {}): DnsMessage {
  nextId = (nextId % 65_535) + 1;
  return createMessage({ id: nextId, flags: { rd: true }, questions: [{ name, type, class: 'IN' }], ...fields });
}

/** Send `message` to `server` over UDP (or TCP) and decode the reply. */
export async function ask(server: HostPort, message: DnsMessage, transport: 'udp' | 'tcp' = 'udp'): Promise<DnsMessage> {
  if (transport === 'tcp') {
    const tcp = await RawTcpClient.open(server);
    try {
      tcp.send(encodeMessage(message));
      return decodeMessage(await tcp.receive());
    } finally {
      tcp.close();
    }
  }
  const udp = await RawUdpClient.open();
  try {
    return decodeMessage(await udp.exchange(server, encodeMessage(message)));
  } finally {
    udp.close();
  }
}

/** An A record. */
export function aRecord(name: string, data: string, ttl = 300): DnsRecord {
  return { name, type: 'A', class: 'IN', ttl, data };
}

/** The SOA a zone puts in negative answers (RFC 2308 §3). */
export function soaRecord(zone: string, ttl: number, minimum: number): DnsRecord {
  return {
    name: zone,
    type: 'SOA',
    class: 'IN',
    ttl,
    data: { mname: `ns.${zone}`, rname: `hostmaster.${zone}`, serial: 1, refresh: 3600, retry: 600, expire: 86_400, minimum },
  };
}

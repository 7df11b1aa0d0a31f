import { isDeepStrictEqual } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DnsQueryError, InvalidArgumentError } from '../../src/core/errors.js';
import type { HostPort } from '../../src/core/host-port.js';
import { silentLogger, type Logger } from '../../src/core/logger.js';
import { DNS_CLIENT_DEFAULTS, DnsClient, type DnsClientOptions } from '../../src/dns/client.js';
import { Rcode, createMessage, createReply, encodeMessage, truncate, type DnsMessage, type DnsRecord } from '../../src/dns/codec.js';
import {
  startFakeDnsServer,
  type FakeDnsAction,
  type FakeDnsQuery,
  type FakeDnsScript,
  type FakeDnsServer,
} from '../helpers/fake-dns-server.js';
import { unusedPort } from '../helpers/tcp-backends.js';

const NAME = 'db.env1.skydns.local';

const running: FakeDnsServer[] = [];
let baseline: Record<string, number> = {};

/**
 * The sockets open in this process, by kind. (Timers are left out here: the
 * test runner's own come and go; the cleanup test checks them separately.)
 */
function handles(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const kind of process.getActiveResourcesInfo()) {
    if (['UDPWrap', 'TCPSocketWrap', 'TCPServerWrap'].includes(kind)) counts[kind] = (counts[kind] ?? 0) + 1;
  }
  return counts;
}

/** Referenced timers alive in this process. */
function timers(): number {
  return process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;
}

beforeEach(() => {
  baseline = handles();
});

/**
 * Let the event loop turn (no timer: timers are what is counted) until the
 * handles are back to `expected`: a closed socket's handle goes a turn or two
 * after its close callback, a TCP peer's once the FIN has arrived.
 */
async function expectHandles(expected: Record<string, number>): Promise<void> {
  const started = performance.now();
  while (!isDeepStrictEqual(handles(), expected) && performance.now() - started < 10_000) {
    await new Promise((resolve) => setImmediate(resolve));
  }
  expect(handles()).toEqual(expected);
}

afterEach(async () => {
  await Promise.all(running.splice(0).map((server) => server.close()));
  // Every socket and timer of the clients and of the servers is gone.
  await expectHandles(baseline);
});

async function serve(script: FakeDnsScript, options: { tcp?: boolean } = {}): Promise<FakeDnsServer> {
  const server = await startFakeDnsServer({ script, ...options });
  running.push(server);
  return server;
}

function client(servers: HostPort[], options: Partial<DnsClientOptions> = {}): DnsClient {
  return new DnsClient({ servers, timeout: 200, ...options });
}

function a(name: string, ip: string): DnsRecord {
  return { name, type: 'A', class: 'IN', ttl: 60, data: ip };
}

/** A NOERROR reply with one A record per address. */
function answer(query: FakeDnsQuery, ...ips: string[]): DnsMessage {
  const name = query.message.questions[0]?.name ?? '';
  return createReply(query.message, { answers: ips.map((ip) => a(name, ip)) });
}

function reply(message: DnsMessage | Uint8Array, from?: FakeDnsAction['from']): FakeDnsAction {
  return from === undefined ? { reply: message } : { reply: message, from };
}

function rcodeReply(query: FakeDnsQuery, rcode: number): DnsMessage {
  return createReply(query.message, { rcode });
}

const silent: FakeDnsScript = () => [];

function addresses(message: DnsMessage): string[] {
  return message.answers.flatMap((rr) => (rr.type === 'A' ? [rr.data] : []));
}

/**
 * A port where nothing listens, and nothing will: a privileged port no test
 * binds (a port released after binding port 0 may be given to a test
 * running in parallel).
 */
async function closedPort(): Promise<HostPort> {
  const before = handles();
  const port = await unusedPort();
  await expectHandles(before);
  return { host: '127.0.0.1', port };
}

async function rejection(promise: Promise<unknown>): Promise<DnsQueryError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DnsQueryError);
  return err as DnsQueryError;
}

describe('DnsClient over UDP', () => {
  it('sends a recursive query with EDNS0 and returns the answer', async () => {
    const server = await serve((q) => [reply(answer(q, '192.0.2.10'))]);
    const dns = client([server.address]);

    const response = await dns.query(NAME, 'A');

    expect(response.rcode).toBe(Rcode.NOERROR);
    expect(addresses(response)).toEqual(['192.0.2.10']);
    const [seen] = await server.waitForQueries(1);
    expect(seen?.transport).toBe('udp');
    expect(seen?.message.flags.rd).toBe(true);
    expect(seen?.message.questions).toEqual([{ name: NAME, type: 'A', class: 'IN' }]);
    // DNS Flag Day 2020: the client advertises 1232 bytes.
    expect(seen?.message.edns).toEqual({ udpPayloadSize: 1232, version: 0, dnssecOk: false });
    expect(dns.stats).toMatchObject({ queries: 1, sent: 1, mismatched: 0, malformed: 0, timeouts: 0, failures: 0 });
  });

  it('keeps an OPT the caller set, and strips the one it added from the response', async () => {
    const server = await serve((q) => [reply(answer(q, '192.0.2.11'))]);
    const dns = client([server.address]);
    const question = { name: NAME, type: 'A' as const, class: 'IN' as const };

    const plain = await dns.exchange(createMessage({ questions: [question] }));
    const withOpt = await dns.exchange(
      createMessage({ questions: [question], edns: { udpPayloadSize: 1232, version: 0, dnssecOk: true } }),
    );

    const [first, second] = await server.waitForQueries(2);
    expect(first?.message.edns?.udpPayloadSize).toBe(1232);
    expect(second?.message.edns).toEqual({ udpPayloadSize: 1232, version: 0, dnssecOk: true });
    // RFC 6891 §7: no OPT in the answer to a query that had none.
    expect(plain.edns).toBeUndefined();
    expect(withOpt.edns).toBeDefined();
  });

  it('puts a fresh ID on the wire and gives the caller its own ID back', async () => {
    const server = await serve((q) => [reply(answer(q, '192.0.2.12'))]);
    const dns = client([server.address], { random: () => 7 });
    const query = createMessage({ id: 4242, questions: [{ name: NAME, type: 'A', class: 'IN' }] });
    query.flags.rd = true;

    const response = await dns.exchange(query);

    const [seen] = await server.waitForQueries(1);
    expect(seen?.message.id).toBe(7);
    expect(response.id).toBe(4242);
    expect(addresses(response)).toEqual(['192.0.2.12']);
    expect(query.id).toBe(4242);
    expect(query.edns).toBeUndefined();
  });

  it('uses random IDs and source ports across queries and attempts', async () => {
    const server = await serve((q) => [reply(answer(q, '192.0.2.13'))]);
    const dns = client([server.address]);

    for (let i = 0; i < 20; i += 1) await dns.query(NAME, 'A');

    const seen = await server.waitForQueries(20);
    // 20 draws from 65536: a handful of repeats at most would already be very unlikely.
    expect(new Set(seen.map((q) => q.message.id)).size).toBeGreaterThanOrEqual(15);
    expect(new Set(seen.map((q) => q.port)).size).toBeGreaterThanOrEqual(15);

    const quiet = await serve(silent);
    await rejection(client([quiet.address], { attempts: 3, timeout: 50 }).query(NAME, 'A'));
    const retries = await quiet.waitForQueries(3);
    expect(new Set(retries.map((q) => q.message.id)).size).toBe(3);
  });

  it('returns NXDOMAIN as an answer, not an error', async () => {
    const soa: DnsRecord = {
      name: 'skydns.local',
      type: 'SOA',
      class: 'IN',
      ttl: 30,
      data: {
        mname: 'ns.skydns.local',
        rname: 'hostmaster.skydns.local',
        serial: 1,
        refresh: 3600,
        retry: 600,
        expire: 86400,
        minimum: 30,
      },
    };
    const server = await serve((q) => [
      reply(createReply(q.message, { rcode: Rcode.NXDOMAIN, authorities: [soa] })),
    ]);
    const dns = client([server.address]);

    const response = await dns.query(`nope.${NAME}`, 'SRV');

    expect(response.rcode).toBe(Rcode.NXDOMAIN);
    expect(response.authorities.map((rr) => rr.type)).toEqual(['SOA']);
    expect(dns.stats.failures).toBe(0);
  });

  it('takes an answer that arrived in time even when the process was too busy to read it before its timer ran out', async () => {
    for (const tcp of [false, true]) {
      // The server answers at once, then keeps the event loop busy past the
      // client's timeout (a process descheduled on a loaded machine looks the
      // same): when the loop comes back, the expired timer and the waiting
      // answer are both there, and timers run first.
      const server = await serve((q) => {
        // Over TCP: a truncated UDP answer first, then the busy loop behind the TCP one.
        if (tcp && q.transport === 'udp') return [reply(truncate(answer(q)))];
        setImmediate(() => {
          const until = performance.now() + 400;
          while (performance.now() < until);
        });
        return [reply(answer(q, '192.0.2.10'))];
      });
      const dns = client([server.address], { timeout: 100, attempts: 1 });

      const response = await dns.query(NAME, 'A');

      expect(addresses(response), tcp ? 'over TCP' : 'over UDP').toEqual(['192.0.2.10']);
      expect(dns.stats.timeouts).toBe(0);
    }
  });
});

describe('DnsClient anti-spoofing (RFC 5452)', () => {
  it('ignores an answer with the wrong ID, then accepts the right one', async () => {
    const server = await serve((q) => [
      reply({ ...answer(q, '203.0.113.66'), id: (q.message.id + 1) & 0xffff }),
      reply(answer(q, '192.0.2.20')),
    ]);
    const dns = client([server.address]);

    const response = await dns.query(NAME, 'A');

    expect(addresses(response)).toEqual(['192.0.2.20']);
    expect(dns.stats.mismatched).toBe(1);
  });

  it('ignores answers to another question (name, type), then accepts the right one', async () => {
    const server = await serve((q) => {
      const otherName = createReply(q.message, { answers: [a('evil.example', '203.0.113.66')] });
      otherName.questions = [{ name: 'evil.example', type: 'A', class: 'IN' }];
      const otherType = createReply(q.message);
      otherType.questions = [{ name: NAME, type: 'AAAA', class: 'IN' }];
      return [reply(otherName), reply(otherType), reply(answer(q, '192.0.2.21'))];
    });
    const dns = client([server.address]);

    const response = await dns.query(NAME, 'A');

    expect(addresses(response)).toEqual(['192.0.2.21']);
    expect(response.questions).toEqual([{ name: NAME, type: 'A', class: 'IN' }]);
    expect(dns.stats.mismatched).toBe(2);
  });

  it('ignores a datagram without QR and an undecodable one', async () => {
    const server = await serve((q) => [
      // The query echoed back: right ID and question, but not a response.
      reply(q.raw),
      reply(Buffer.from([0x12])),
      // Right header (ID, QR), cut off in the question.
      reply(encodeMessage(answer(q, '203.0.113.66')).subarray(0, 20)),
      reply(answer(q, '192.0.2.22')),
    ]);
    const dns = client([server.address]);

    const response = await dns.query(NAME, 'A');

    expect(addresses(response)).toEqual(['192.0.2.22']);
    expect(dns.stats.mismatched).toBe(1);
    expect(dns.stats.malformed).toBe(2);
  });

  it('never accepts a perfect answer from another port or address', async () => {
    // Right ID, right question, wrong source. The client's socket is connected, so the
    // kernel already drops these; the client's own source check would count them as
    // mismatched should one get through (e.g. before connect()).
    const server = await serve((q) => [
      reply(answer(q, '203.0.113.66'), 'other-port'),
      reply(answer(q, '203.0.113.67'), 'other-address'),
      reply(answer(q, '192.0.2.23')),
    ]);
    const dns = client([server.address]);

    const response = await dns.query(NAME, 'A');

    expect(addresses(response)).toEqual(['192.0.2.23']);
    expect(dns.stats.timeouts).toBe(0);
  });

  it('waits through a spoofed answer to a silent server and times out instead of accepting it', async () => {
    const server = await serve((q) => [
      reply({ ...answer(q, '203.0.113.66'), id: (q.message.id + 1) & 0xffff }),
      reply(answer(q, '203.0.113.67'), 'other-port'),
    ]);
    const dns = client([server.address], { attempts: 1 });

    const err = await rejection(dns.query(NAME, 'A'));

    expect(err.code).toBe('ERR_DNS_TIMEOUT');
    expect(dns.stats.mismatched).toBe(1);
  });

  it('matches the question name case-insensitively (RFC 4343)', async () => {
    const server = await serve((q) => {
      const upper = answer(q, '192.0.2.24');
      upper.questions = [{ name: NAME.toUpperCase(), type: 'A', class: 'IN' }];
      return [reply(upper)];
    });
    const dns = client([server.address]);

    const response = await dns.query(NAME, 'A');

    expect(addresses(response)).toEqual(['192.0.2.24']);
    expect(dns.stats.mismatched).toBe(0);
  });
});

describe('DnsClient over TCP', () => {
  it('retries a truncated UDP answer over TCP and returns the full answer', async () => {
    const ips = Array.from({ length: 60 }, (_, i) => `10.0.${Math.floor(i / 250)}.${(i % 250) + 1}`);
    const server = await serve((q) =>
      q.transport === 'udp' ? [reply(truncate(answer(q, ...ips)))] : [reply(answer(q, ...ips))],
    );
    const dns = client([server.address]);

    const response = await dns.query(NAME, 'A');

    expect(response.flags.tc).toBe(false);
    expect(addresses(response)).toEqual(ips);
    const seen = await server.waitForQueries(2);
    expect(seen.map((q) => q.transport)).toEqual(['udp', 'tcp']);
    expect(seen[1]?.message.questions).toEqual([{ name: NAME, type: 'A', class: 'IN' }]);
    expect(dns.stats.tcpFallbacks).toBe(1);
  });

  it('validates TCP answers too: a wrong ID is skipped on the same connection', async () => {
    const server = await serve((q) => [
      reply({ ...answer(q, '203.0.113.66'), id: (q.message.id + 1) & 0xffff }),
      reply(answer(q, '192.0.2.30')),
    ]);
    const dns = client([server.address], { tcpOnly: true });

    const response = await dns.query(NAME, 'A');

    expect(addresses(response)).toEqual(['192.0.2.30']);
    expect(dns.stats.mismatched).toBe(1);
    expect((await server.waitForQueries(1)).map((q) => q.transport)).toEqual(['tcp']);
  });

  it('fails with ERR_DNS_TRUNCATED when TCP is truncated as well', async () => {
    const server = await serve((q) => [reply(truncate(answer(q, '192.0.2.31')))]);
    const dns = client([server.address], { attempts: 1 });

    const err = await rejection(dns.query(NAME, 'A'));

    expect(err.code).toBe('ERR_DNS_TRUNCATED');
  });
});

describe('DnsClient failover', () => {
  it('moves on from a silent server to the next one after the timeout', async () => {
    const quiet = await serve(silent);
    const good = await serve((q) => [reply(answer(q, '192.0.2.40'))]);
    const dns = client([quiet.address, good.address]);

    const started = performance.now();
    const response = await dns.query(NAME, 'A');

    expect(performance.now() - started).toBeGreaterThanOrEqual(190);
    expect(addresses(response)).toEqual(['192.0.2.40']);
    expect(quiet.queries).toHaveLength(1);
    expect(dns.stats.timeouts).toBe(1);
  });

  it('throws ERR_DNS_TIMEOUT within a bounded time when every server is silent', async () => {
    const one = await serve(silent);
    const two = await serve(silent);
    const dns = client([one.address, two.address], { attempts: 2 });

    const started = performance.now();
    const err = await rejection(dns.query('_x._tcp.example', 'SRV'));
    const elapsed = performance.now() - started;

    expect(err.code).toBe('ERR_DNS_TIMEOUT');
    expect(err.message).toBe(
      `cannot resolve "_x._tcp.example." SRV: no answer from 127.0.0.1:${one.address.port}, ` +
        `127.0.0.1:${two.address.port} within 200 ms (2 attempts per server)`,
    );
    // 2 rounds x 2 servers x 200 ms: each attempt waited its timeout, and the
    // 200 ms given, not the default (4 attempts of that would take 8 s).
    expect(elapsed).toBeGreaterThanOrEqual(790);
    expect(elapsed).toBeLessThan(4 * DNS_CLIENT_DEFAULTS.timeout);
    expect(one.queries).toHaveLength(2);
    expect(two.queries).toHaveLength(2);
    expect(dns.stats).toMatchObject({ timeouts: 4, failures: 1 });
  });

  it('reports a closed port as ERR_DNS_UNREACHABLE without waiting for the timeout', async () => {
    const closed = await closedPort();
    const dns = client([closed], { timeout: 5000 });

    const started = performance.now();
    const err = await rejection(dns.query(NAME, 'A'));

    // Both attempts ended before one timeout would have.
    expect(performance.now() - started).toBeLessThan(5000);
    expect(err.code).toBe('ERR_DNS_UNREACHABLE');
    expect(err.message).toContain(`cannot reach 127.0.0.1:${closed.port}: ECONNREFUSED`);
    expect(dns.stats.networkErrors).toBe(2);
  });

  it('fails over from a closed port to the next server at once', async () => {
    const closed = await closedPort();
    const good = await serve((q) => [reply(answer(q, '192.0.2.41'))]);
    const dns = client([closed, good.address], { timeout: 5000 });

    const started = performance.now();
    const response = await dns.query(NAME, 'A');

    // Before the closed port's timeout would have ended its attempt.
    expect(performance.now() - started).toBeLessThan(5000);
    expect(addresses(response)).toEqual(['192.0.2.41']);
  });

  it.each([
    ['SERVFAIL', Rcode.SERVFAIL],
    ['REFUSED', Rcode.REFUSED],
    ['NOTIMP', Rcode.NOTIMP],
    ['FORMERR', Rcode.FORMERR],
  ])('takes the answer of the second server when the first says %s', async (_name, rcode) => {
    const failing = await serve((q) => [reply(rcodeReply(q, rcode))]);
    const good = await serve((q) => [reply(answer(q, '192.0.2.42'))]);
    const dns = client([failing.address, good.address]);

    const response = await dns.query(NAME, 'A');

    expect(response.rcode).toBe(Rcode.NOERROR);
    expect(addresses(response)).toEqual(['192.0.2.42']);
    expect(dns.stats.serverFailures).toBe(1);
  });

  it('throws ERR_DNS_SERVER_FAILURE with the last rcode when every server fails', async () => {
    const one = await serve((q) => [reply(rcodeReply(q, Rcode.REFUSED))]);
    const two = await serve((q) => [reply(rcodeReply(q, Rcode.SERVFAIL))]);
    const dns = client([one.address, two.address]);

    const err = await rejection(dns.query(NAME, 'MX'));

    expect(err.code).toBe('ERR_DNS_SERVER_FAILURE');
    expect(err.rcode).toBe(Rcode.SERVFAIL);
    expect(err.message).toBe(
      `cannot resolve "${NAME}." MX: 127.0.0.1:${one.address.port} answered REFUSED; ` +
        `127.0.0.1:${two.address.port} answered SERVFAIL (2 attempts per server)`,
    );
    // Servers in order, round after round.
    expect(one.queries).toHaveLength(2);
    expect(two.queries).toHaveLength(2);
  });
});

describe('DnsClient cancellation and cleanup', () => {
  it('rejects with ERR_DNS_ABORTED as soon as the signal aborts', async () => {
    const quiet = await serve(silent);
    const dns = client([quiet.address], { timeout: 10_000 });
    const controller = new AbortController();

    const started = performance.now();
    const pending = dns.query(NAME, 'A', { signal: controller.signal });
    await quiet.waitForQueries(1);
    controller.abort(new Error('shutting down'));
    const err = await rejection(pending);

    // Before the attempt's timeout would have ended it.
    expect(performance.now() - started).toBeLessThan(10_000);
    expect(err.code).toBe('ERR_DNS_ABORTED');
    expect(err.cause).toEqual(new Error('shutting down'));
  });

  it('stops between two attempts when the signal aborts there', async () => {
    const failing = await serve((q) => [reply(rcodeReply(q, Rcode.SERVFAIL))]);
    const quiet = await serve(silent);
    const controller = new AbortController();
    // The client logs when it moves on to the next server: abort right then.
    const logger: Logger = {
      ...silentLogger,
      debug: (msg) => {
        if (msg.includes('trying the next one')) controller.abort();
      },
    };
    const dns = client([failing.address, quiet.address], { timeout: 10_000, logger });

    const started = performance.now();
    const err = await rejection(dns.query(NAME, 'A', { signal: controller.signal }));

    // Before the silent server's timeout would have ended its attempt.
    expect(performance.now() - started).toBeLessThan(10_000);
    expect(err.code).toBe('ERR_DNS_ABORTED');
    expect(quiet.queries).toHaveLength(0);
    expect(dns.stats.sent).toBe(1);
  });

  it('sends nothing when the signal is already aborted', async () => {
    const quiet = await serve(silent);
    const dns = client([quiet.address]);

    const err = await rejection(dns.query(NAME, 'A', { signal: AbortSignal.abort() }));

    expect(err.code).toBe('ERR_DNS_ABORTED');
    expect(dns.stats.sent).toBe(0);
  });

  it('leaves no socket or timer behind once a query settles', async () => {
    const quiet = await serve(silent);
    const big = Array.from({ length: 40 }, (_, i) => `10.1.0.${i + 1}`);
    const good = await serve((q) =>
      q.transport === 'udp' ? [reply(truncate(answer(q, ...big)))] : [reply(answer(q, ...big))],
    );
    const closed = await closedPort();
    const before = handles();
    const timersBefore = timers();
    const dns = client([quiet.address, closed, good.address]);

    const pending = dns.query(NAME, 'A');
    // While the query waits, its socket is there (its timer too, as the
    // timeout counted below shows: the runner's own timers come and go, so a
    // count of timers cannot show one more while it waits)...
    await quiet.waitForQueries(1);
    expect(handles().UDPWrap).toBe((before.UDPWrap ?? 0) + 1);
    const response = await pending;
    await rejection(client([quiet.address], { attempts: 1 }).query(NAME, 'A'));

    // ...and once it has settled (timeout, ECONNREFUSED, then UDP + TCP), neither is.
    expect(addresses(response)).toEqual(big);
    expect(dns.stats).toMatchObject({ timeouts: 1, networkErrors: 1, tcpFallbacks: 1 });
    expect(timers()).toBeLessThanOrEqual(timersBefore);
    await expectHandles(before);
  });
});

describe('DnsClient input checks', () => {
  it('refuses a query without exactly one question', async () => {
    const dns = new DnsClient({ servers: [{ host: '127.0.0.1', port: 53 }] });

    const err = await rejection(dns.exchange(createMessage()));

    expect(err.code).toBe('ERR_DNS_INVALID_QUERY');
  });

  it('refuses a name that cannot be encoded before sending anything', async () => {
    const dns = new DnsClient({ servers: [{ host: '127.0.0.1', port: 53 }] });

    const err = await rejection(dns.query(`${'x'.repeat(64)}.example`, 'A'));

    expect(err.code).toBe('ERR_DNS_INVALID_QUERY');
    expect(err.message).toMatch(/^cannot resolve "x{64}\.example\." A: cannot encode name/);
    expect(dns.stats.sent).toBe(0);
  });

  it.each([
    [{ servers: [] }, 'invalid dns client option "servers": empty, expected at least one IP:PORT'],
    [{ servers: [{ host: 'dns.example', port: 53 }] }, 'invalid dns server "dns.example:53": "dns.example" is not an IP address'],
    [{ servers: [{ host: '127.0.0.1', port: 0 }] }, 'invalid dns server "127.0.0.1:0": port 0 is outside 1-65535'],
    [{ servers: [{ host: '::1', port: 53 }], timeout: 0 }, 'invalid dns client option "timeout": 0, expected a positive number of milliseconds'],
    [{ servers: [{ host: '::1', port: 53 }], attempts: 1.5 }, 'invalid dns client option "attempts": 1.5, expected an integer of at least 1'],
  ] satisfies [DnsClientOptions, string][])('refuses bad options: %j', (options, message) => {
    expect(() => new DnsClient(options)).toThrow(new InvalidArgumentError(message));
  });
});

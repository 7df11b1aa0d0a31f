import { randomInt } from 'node:crypto';
import { isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import { DnsQueryError, InvalidArgumentError, errorMessage, type ErrorCode } from '../core/errors.js';
import { formatHostPort, type HostPort } from '../core/host-port.js';
import { silentLogger, type Logger } from '../core/logger.js';
import { canonicalAddress } from '../core/ip-address.js';
import { displayName, type ExpectedResponse, type RejectedResponse } from './check-response.js';
import { EDNS_UDP_SIZE, Rcode, createMessage, encodeMessage, rcodeName, type DnsMessage, type DnsQuestion, type RecordType } from './codec.js';
import { exchangeFailure, type ServerFailure } from './exchange-failure.js';
import type { ExchangeOutcome } from './exchange-outcome.js';
import { tcpExchange } from './tcp-exchange.js';
import { udpExchange } from './udp-exchange.js';

/** Options of a `DnsClient`; checked once, in the constructor. */
export interface DnsClientOptions {
  /** Upstream servers as IP addresses, tried in this order (at least one). */
  servers: readonly HostPort[];
  /** Milliseconds to wait for each attempt (one server, one transport). Default 2000. */
  timeout?: number;
  /** Rounds over all servers before giving up. Default 2. */
  attempts?: number;
  logger?: Logger;
  /** Source of query IDs, a 16-bit integer per call. Default: `crypto.randomInt` (RFC 5452 §9.2). */
  random?: () => number;
  /** Skip UDP and ask over TCP only (RFC 7766 §5). */
  tcpOnly?: boolean;
  /** Told how each exchange with one server went and how long it took, ms (metrics); not called when aborted. */
  onExchange?: (server: string, outcome: DnsExchangeOutcome, ms: number) => void;
}

/** How one exchange with one server ended: `answer` is a usable answer; the rest move on to the next server. */
export type DnsExchangeOutcome = 'answer' | 'server-failure' | 'timeout' | 'network' | 'invalid';

/** Options of one exchange. */
export interface DnsExchangeOptions {
  /** Aborting rejects with a `DnsQueryError` of code `ERR_DNS_ABORTED` and closes every socket. */
  signal?: AbortSignal;
}

/** Counters since the client was created (a snapshot; for logs and metrics). */
export interface DnsClientStats {
  /** Exchanges started. */
  queries: number;
  /** Attempts made, one fresh query each (TCP retries included). */
  sent: number;
  /** Responses ignored: wrong source, not a response, wrong ID, opcode or question (RFC 5452 §9.1). */
  mismatched: number;
  /** Responses ignored because they could not be decoded. */
  malformed: number;
  /** Attempts that got no acceptable answer in time. */
  timeouts: number;
  /** Attempts ended by a socket error (ECONNREFUSED from ICMP, reset, closed early...). */
  networkErrors: number;
  /** Attempts answered SERVFAIL, REFUSED, NOTIMP or FORMERR (or truncated over TCP too). */
  serverFailures: number;
  /** UDP answers with TC set, retried over TCP. */
  tcpFallbacks: number;
  /** Exchanges that ended in a `DnsQueryError`. */
  failures: number;
}

/** The defaults of the optional settings (timeout per exchange, ms; rounds over the servers). */
export const DNS_CLIENT_DEFAULTS = { timeout: 2000, attempts: 2 } as const;

/** rcodes after which the next server is asked instead of returning the response. */
const RETRY_RCODES: ReadonlySet<number> = new Set([Rcode.SERVFAIL, Rcode.REFUSED, Rcode.NOTIMP, Rcode.FORMERR]);

/**
 * The upstream DNS client (docs/architecture.md §4.1 "Upstream queries"): EDNS0, a fresh
 * random ID and source port per attempt, retry over TCP on TC, per-attempt
 * timeouts over several servers, and only responses that come from the server
 * asked and match ID and question (RFC 5452).
 */
export class DnsClient {
  readonly #servers: readonly HostPort[];
  readonly #addresses: readonly string[];
  readonly #timeout: number;
  readonly #attempts: number;
  readonly #logger: Logger;
  readonly #random: () => number;
  readonly #tcpOnly: boolean;
  readonly #onExchange: DnsClientOptions['onExchange'];
  readonly #stats: DnsClientStats = {
    queries: 0,
    sent: 0,
    mismatched: 0,
    malformed: 0,
    timeouts: 0,
    networkErrors: 0,
    serverFailures: 0,
    tcpFallbacks: 0,
    failures: 0,
  };

  constructor(options: DnsClientOptions) {
    const servers = options.servers;
    if (!Array.isArray(servers) || servers.length === 0) {
      throw new InvalidArgumentError('invalid dns client option "servers": empty, expected at least one IP:PORT');
    }
    for (const server of servers) {
      // The source check compares addresses, so names (which could resolve to anything) are refused.
      if (isIP(server.host) === 0) {
        throw new InvalidArgumentError(`invalid dns server "${formatHostPort(server)}": "${server.host}" is not an IP address`);
      }
      if (!Number.isInteger(server.port) || server.port < 1 || server.port > 65535) {
        throw new InvalidArgumentError(`invalid dns server "${formatHostPort(server)}": port ${server.port} is outside 1-65535`);
      }
    }
    const timeout = options.timeout ?? DNS_CLIENT_DEFAULTS.timeout;
    if (!Number.isFinite(timeout) || timeout <= 0) {
      throw new InvalidArgumentError(`invalid dns client option "timeout": ${timeout}, expected a positive number of milliseconds`);
    }
    const attempts = options.attempts ?? DNS_CLIENT_DEFAULTS.attempts;
    if (!Number.isInteger(attempts) || attempts < 1) {
      throw new InvalidArgumentError(`invalid dns client option "attempts": ${attempts}, expected an integer of at least 1`);
    }
    this.#servers = servers.map((s) => ({ host: s.host, port: s.port }));
    this.#addresses = this.#servers.map((s) => canonicalAddress(s.host));
    this.#timeout = timeout;
    this.#attempts = attempts;
    this.#logger = options.logger ?? silentLogger;
    this.#random = options.random ?? (() => randomInt(0x10000));
    this.#tcpOnly = options.tcpOnly ?? false;
    this.#onExchange = options.onExchange;
  }

  /** A snapshot of the counters. */
  get stats(): DnsClientStats {
    return { ...this.#stats };
  }

  /**
   * Ask for `name`/`type` (class IN) with RD set; the answer as `exchange`
   * returns it. NOERROR and NXDOMAIN resolve; everything else rejects with a
   * `DnsQueryError`.
   */
  query(name: string, type: RecordType, options: DnsExchangeOptions = {}): Promise<DnsMessage> {
    const message = createMessage({ questions: [{ name, type, class: 'IN' }] });
    message.flags.rd = true;
    return this.exchange(message, options);
  }

  /**
   * Send a prepared query (exactly one question) and return the validated
   * response with the caller's ID put back, so that it can be forwarded as is.
   * The query goes out with a fresh random ID per attempt, and with an EDNS0
   * OPT of payload 1232 when it has none (DNS Flag Day 2020, `EDNS_UDP_SIZE`); the OPT added
   * here is removed from the response again (RFC 6891 §7: no OPT in answers
   * to queries without one).
   *
   * Servers are tried in order, for `attempts` rounds; a timeout, a socket
   * error or a SERVFAIL/REFUSED/NOTIMP/FORMERR moves on to the next one.
   * NOERROR and NXDOMAIN (and any other rcode) are answers. Rejects with a
   * `DnsQueryError`: `ERR_DNS_SERVER_FAILURE` (with `rcode`), `ERR_DNS_TRUNCATED`,
   * `ERR_DNS_BAD_RESPONSE`, `ERR_DNS_TIMEOUT`, `ERR_DNS_UNREACHABLE`,
   * `ERR_DNS_ABORTED` or `ERR_DNS_INVALID_QUERY`.
   */
  async exchange(query: DnsMessage, options: DnsExchangeOptions = {}): Promise<DnsMessage> {
    const { signal } = options;
    const question = query.questions[0];
    if (question === undefined || query.questions.length !== 1) {
      // RFC 9619: a query carries exactly one question; a response can only be matched against one.
      throw new DnsQueryError(
        'ERR_DNS_INVALID_QUERY',
        `cannot send query: expected exactly 1 question, got ${query.questions.length}`,
      );
    }
    const label = `"${displayName(question.name)}" ${question.type}`;
    this.#stats.queries += 1;
    const failed = (code: ErrorCode, message: string, extra: { cause?: unknown; rcode?: number } = {}): DnsQueryError => {
      this.#stats.failures += 1;
      return new DnsQueryError(code, `cannot resolve ${label}: ${message}`, extra);
    };
    const aborted = (): DnsQueryError => failed('ERR_DNS_ABORTED', 'aborted', { cause: signal?.reason });
    if (signal?.aborted) throw aborted();

    // Advertise 1232 bytes (DNS Flag Day 2020: no fragmented answers) unless the caller chose a size.
    // Encoded once, up front: a name that cannot go on the wire fails before any socket opens.
    let template: Buffer;
    try {
      template = encodeMessage({
        ...query,
        id: 0,
        response: false,
        edns: query.edns ?? { udpPayloadSize: EDNS_UDP_SIZE, version: 0, dnssecOk: false },
      });
    } catch (err) {
      throw failed('ERR_DNS_INVALID_QUERY', (err as Error).message, { cause: err });
    }
    const outgoing = { template, opcode: query.opcode };

    const worst = new Map<number, ServerFailure>();
    let lastRcode: number | undefined;
    const fail = (index: number, failure: ServerFailure): void => {
      const previous = worst.get(index);
      if (previous === undefined || failure.rank >= previous.rank) worst.set(index, failure);
    };

    for (let round = 0; round < this.#attempts; round += 1) {
      for (const [index, server] of this.#servers.entries()) {
        const address = this.#addresses[index] as string;
        const where = formatHostPort(server);
        let transport: 'udp' | 'tcp' = this.#tcpOnly ? 'tcp' : 'udp';
        const started = performance.now();
        let outcome = await this.#attempt(transport, outgoing, question, server, address, signal);
        if (outcome.kind === 'answer' && outcome.message.flags.tc && transport === 'udp') {
          // RFC 1035 §4.2.1, RFC 7766 §5: a truncated UDP answer is asked again over TCP, same server.
          this.#stats.tcpFallbacks += 1;
          this.#logger.debug('dns answer truncated, retrying over tcp', { server: where, name: question.name });
          transport = 'tcp';
          outcome = await this.#attempt(transport, outgoing, question, server, address, signal);
        }
        this.#observe(where, outcome, performance.now() - started);
        switch (outcome.kind) {
          case 'aborted':
            throw aborted();
          case 'answer': {
            const { message } = outcome;
            if (message.flags.tc) {
              // Truncated over TCP as well: nothing complete can come from this server.
              this.#stats.serverFailures += 1;
              fail(index, { kind: 'truncated', rank: 4 });
              break;
            }
            if (RETRY_RCODES.has(message.rcode)) {
              this.#stats.serverFailures += 1;
              lastRcode = message.rcode;
              fail(index, { kind: 'rcode', rank: 5, rcode: message.rcode });
              this.#logger.debug('dns server failed, trying the next one', {
                server: where,
                name: question.name,
                rcode: rcodeName(message.rcode),
              });
              break;
            }
            const answer: DnsMessage = { ...message, id: query.id };
            if (query.edns === undefined) delete answer.edns;
            return answer;
          }
          case 'timeout':
            fail(index, { kind: 'timeout', rank: 2 });
            this.#logger.debug('dns server did not answer in time', { server: where, transport, timeout: this.#timeout });
            break;
          case 'network':
            fail(index, { kind: 'network', rank: 1, error: outcome.error });
            this.#logger.debug('dns server unreachable', { server: where, transport, error: outcome.error });
            break;
          case 'invalid':
            fail(index, { kind: 'invalid', rank: 3, reason: outcome.reason });
            this.#logger.debug('dns server sent an unreadable stream', { server: where, reason: outcome.reason });
            break;
        }
      }
    }

    const failures = [...worst.entries()].map(([index, failure]) => ({ server: this.#servers[index] as HostPort, failure }));
    const failure = exchangeFailure(failures, { timeout: this.#timeout, attempts: this.#attempts });
    throw failed(failure.code, failure.message, { cause: failure.cause, rcode: lastRcode });
  }

  /** Tell `onExchange` how the exchange with one server went; an observer that throws is ignored. */
  #observe(server: string, outcome: ExchangeOutcome, ms: number): void {
    if (this.#onExchange === undefined || outcome.kind === 'aborted') return;
    const kind =
      outcome.kind !== 'answer' ? outcome.kind : outcome.message.flags.tc || RETRY_RCODES.has(outcome.message.rcode) ? 'server-failure' : 'answer';
    try {
      this.#onExchange(server, kind, ms);
    } catch (err) {
      this.#logger.debug('dns exchange observer failed', { error: errorMessage(err) });
    }
  }

  /** One attempt: a fresh ID, a fresh socket (`udpExchange`, `tcpExchange`), closed before the outcome is returned; counted. */
  async #attempt(
    transport: 'udp' | 'tcp',
    outgoing: { template: Buffer; opcode: number },
    question: DnsQuestion,
    server: HostPort,
    address: string,
    signal: AbortSignal | undefined,
  ): Promise<ExchangeOutcome> {
    // An abort between two attempts has no listener to hear it: check before opening anything.
    if (signal?.aborted) return { kind: 'aborted' };
    // RFC 5452 §9.2: an unpredictable ID for every query put on the wire.
    const id = this.#random() & 0xffff;
    const wire = Buffer.from(outgoing.template);
    // RFC 1035 §4.1.1: the ID is the first 16 bits of the header.
    wire.writeUInt16BE(id, 0);
    const expected: ExpectedResponse = { server, address, id, opcode: outgoing.opcode, question };
    this.#stats.sent += 1;
    const exchange = transport === 'udp' ? udpExchange : tcpExchange;
    const outcome = await exchange(wire, expected, { timeout: this.#timeout, signal, onIgnored: (rejected) => this.#ignore(expected, rejected) });
    if (outcome.kind === 'timeout') this.#stats.timeouts += 1;
    else if (outcome.kind === 'network') this.#stats.networkErrors += 1;
    else if (outcome.kind === 'invalid') this.#stats.malformed += 1;
    return outcome;
  }

  #ignore(expected: ExpectedResponse, verdict: RejectedResponse): void {
    if (verdict.malformed) this.#stats.malformed += 1;
    else this.#stats.mismatched += 1;
    this.#logger.debug('dns response ignored', {
      server: formatHostPort(expected.server),
      name: expected.question.name,
      reason: verdict.reason,
    });
  }
}

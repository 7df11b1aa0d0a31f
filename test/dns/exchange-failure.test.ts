import { describe, expect, it } from 'vitest';
import { Rcode } from '../../src/dns/codec.js';
import { exchangeFailure, type ServerFailure } from '../../src/dns/exchange-failure.js';

const A = { host: '10.0.0.1', port: 53 };
const B = { host: 'fd00::2', port: 5353 };
const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
const timeout: ServerFailure = { kind: 'timeout', rank: 2 };

describe('exchangeFailure', () => {
  it.each<[string, { server: typeof A; failure: ServerFailure }[], number, string, string]>([
    ['every server silent', [{ server: A, failure: timeout }, { server: B, failure: timeout }], 2, 'ERR_DNS_TIMEOUT', 'no answer from 10.0.0.1:53, [fd00::2]:5353 within 200 ms (2 attempts per server)'],
    ['one unreachable', [{ server: A, failure: { kind: 'network', rank: 1, error: refused } }], 1, 'ERR_DNS_UNREACHABLE', 'cannot reach 10.0.0.1:53: ECONNREFUSED (1 attempt per server)'],
    [
      'the most telling failure gives the code',
      [{ server: A, failure: timeout }, { server: B, failure: { kind: 'rcode', rank: 5, rcode: Rcode.SERVFAIL } }],
      2,
      'ERR_DNS_SERVER_FAILURE',
      'no answer from 10.0.0.1:53 within 200 ms; [fd00::2]:5353 answered SERVFAIL (2 attempts per server)',
    ],
    ['truncated over tcp too', [{ server: A, failure: { kind: 'truncated', rank: 4 } }], 2, 'ERR_DNS_TRUNCATED', '10.0.0.1:53 answered truncated over tcp as well (2 attempts per server)'],
    ['an unreadable stream', [{ server: A, failure: { kind: 'invalid', rank: 3, reason: 'frame of 0 bytes' } }], 2, 'ERR_DNS_BAD_RESPONSE', '10.0.0.1:53 sent an unreadable tcp stream: frame of 0 bytes (2 attempts per server)'],
  ])('%s', (_what, failures, attempts, code, message) => {
    expect(exchangeFailure(failures, { timeout: 200, attempts })).toEqual({ code, message, cause: failures.find((f) => f.failure.kind === 'network') ? refused : undefined });
  });

  it('a network error without a code is worded by its message, and is the cause', () => {
    const closed = new Error('connection closed before an answer');
    const failure = exchangeFailure([{ server: A, failure: { kind: 'network', rank: 1, error: closed } }], { timeout: 200, attempts: 2 });
    expect(failure.message).toBe('cannot reach 10.0.0.1:53: connection closed before an answer (2 attempts per server)');
    expect(failure.cause).toBe(closed);
  });
});

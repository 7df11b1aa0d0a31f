import { describe, expect, it } from 'vitest';
import { checkResponse, displayName, type ExpectedResponse } from '../../src/dns/check-response.js';
import { Rcode, createMessage, encodeMessage, type DnsMessage } from '../../src/dns/codec.js';

const expected: ExpectedResponse = {
  server: { host: '::1', port: 5300 },
  address: '::1',
  id: 0x1234,
  opcode: 0,
  question: { name: 'zk.example.com', type: 'A', class: 'IN' },
};

function response(change: Partial<DnsMessage> = {}): Buffer {
  return encodeMessage(
    createMessage({
      id: 0x1234,
      response: true,
      rcode: Rcode.NOERROR,
      questions: [{ name: 'zk.example.com', type: 'A', class: 'IN' }],
      answers: [{ name: 'zk.example.com', type: 'A', class: 'IN', ttl: 60, data: '10.0.0.1' }],
      ...change,
    }),
  );
}

describe('checkResponse', () => {
  it.each<[string, Buffer, { address: string; port: number } | undefined]>([
    ['the matching response over TCP', response(), undefined],
    ['from the server asked, spelled another way', response(), { address: '0:0:0:0:0:0:0:1', port: 5300 }],
    ['the question in other case (RFC 4343)', response({ questions: [{ name: 'ZK.Example.COM', type: 'A', class: 'IN' }] }), undefined],
    ['the question fully qualified', response({ questions: [{ name: 'zk.example.com.', type: 'A', class: 'IN' }] }), undefined],
    ['an error rcode: for the caller to judge', response({ rcode: Rcode.SERVFAIL, answers: [] }), undefined],
  ])('accepts %s', (_what, buf, from) => {
    const verdict = checkResponse(buf, expected, from);
    expect(verdict.ok).toBe(true);
  });

  it.each<[string, Buffer, { address: string; port: number } | undefined, boolean, string]>([
    ['another address', response(), { address: '127.0.0.1', port: 5300 }, false, 'from 127.0.0.1:5300'],
    ['another port', response(), { address: '::1', port: 5301 }, false, 'from ::1:5301'],
    ['a short datagram', Buffer.alloc(11), undefined, true, '11 bytes, shorter than a header'],
    ['a query, not a response', response({ response: false }), undefined, false, 'QR bit not set'],
    ['another ID', response({ id: 0x4321 }), undefined, false, `id ${0x4321} instead of ${0x1234}`],
    ['another opcode', response({ opcode: 2 }), undefined, false, 'opcode 2 instead of 0'],
    ['another name', response({ questions: [{ name: 'other.example.com', type: 'A', class: 'IN' }] }), undefined, false, 'question "other.example.com. A" does not match'],
    ['another type', response({ questions: [{ name: 'zk.example.com', type: 'AAAA', class: 'IN' }] }), undefined, false, 'question "zk.example.com. AAAA" does not match'],
    ['no question', response({ questions: [] }), undefined, false, 'question "" does not match'],
  ])('rejects %s', (_what, buf, from, malformed, reason) => {
    expect(checkResponse(buf, expected, from)).toEqual({ ok: false, malformed, reason });
  });

  it('rejects a header followed by garbage as malformed, with the decoder saying why', () => {
    const buf = Buffer.concat([response().subarray(0, 12), Buffer.from([0xff, 0xff, 0xff])]);
    const verdict = checkResponse(buf, expected);
    expect(verdict).toMatchObject({ ok: false, malformed: true });
  });
});

describe('displayName', () => {
  it.each([
    ['', '.'],
    ['.', '.'],
    ['example.com', 'example.com.'],
    ['example.com.', 'example.com.'],
  ])('%j → %j', (name, shown) => {
    expect(displayName(name)).toBe(shown);
  });
});

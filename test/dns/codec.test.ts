import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  EDNS_UDP_SIZE,
  Rcode,
  createMessage,
  createReply,
  decodeHeader,
  decodeMessage,
  encodeMessage,
  truncate,
  udpLimit,
  type DnsMessage,
} from '../../src/dns/codec.js';

const srvResponse = createMessage({
  id: 0xbeef,
  response: true,
  rcode: Rcode.NOERROR,
  flags: { aa: true, rd: true, ra: false },
  questions: [{ name: '_zookeeper._tcp.env1.skydns.local', type: 'SRV', class: 'IN' }],
  answers: [
    {
      name: '_zookeeper._tcp.env1.skydns.local',
      type: 'SRV',
      class: 'IN',
      ttl: 300,
      data: { priority: 10, weight: 66, port: 31001, target: 'zk1._zookeeper._tcp.env1.skydns.local' },
    },
  ],
  authorities: [],
  additionals: [{ name: 'zk1._zookeeper._tcp.env1.skydns.local', type: 'A', class: 'IN', ttl: 300, data: '10.0.0.11' }],
  edns: { udpPayloadSize: 4096, version: 0, dnssecOk: false },
});

describe('codec', () => {
  it('round-trips a message: encode → decode → encode gives the same bytes', () => {
    const wire = encodeMessage(srvResponse);
    const decoded = decodeMessage(wire);
    expect(decoded.id).toBe(0xbeef);
    expect(decoded.response).toBe(true);
    expect(decoded.flags).toMatchObject({ aa: true, rd: true, ra: false, tc: false });
    expect(decoded.edns).toEqual({ udpPayloadSize: 4096, version: 0, dnssecOk: false });
    expect(decoded.additionals).toHaveLength(1);
    expect(decoded.answers[0]).toMatchObject({ type: 'SRV', data: { priority: 10, weight: 66, port: 31001 } });
    expect(encodeMessage(decoded)).toEqual(wire);
  });

  it.each([
    ['NOERROR', Rcode.NOERROR],
    ['FORMERR', Rcode.FORMERR],
    ['SERVFAIL', Rcode.SERVFAIL],
    ['NXDOMAIN', Rcode.NXDOMAIN],
    ['NOTIMP', Rcode.NOTIMP],
    ['REFUSED', Rcode.REFUSED],
  ])('keeps rcode %s and the opcode through the wire', (_name, rcode) => {
    const message = createMessage({ id: 7, response: true, rcode, opcode: 2, questions: [{ name: 'a.b', type: 'A' }] });
    const decoded = decodeMessage(encodeMessage(message));
    expect(decoded.rcode).toBe(rcode);
    expect(decoded.opcode).toBe(2);
    expect(decodeHeader(encodeMessage(message))).toMatchObject({ id: 7, rcode, opcode: 2, response: true, qdcount: 1 });
  });

  it('round-trips arbitrary header fields and names (property)', () => {
    const label = fc.stringMatching(/^[a-z0-9_]([a-z0-9-]{0,20}[a-z0-9])?$/);
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffff }),
        fc.record({ aa: fc.boolean(), tc: fc.boolean(), rd: fc.boolean(), ra: fc.boolean(), ad: fc.boolean(), cd: fc.boolean() }),
        fc.integer({ min: 0, max: 5 }),
        fc.array(label, { minLength: 1, maxLength: 6 }),
        fc.constantFrom('A' as const, 'AAAA' as const, 'SRV' as const, 'TXT' as const),
        (id, flags, rcode, labels, type) => {
          const message = createMessage({ id, flags, rcode, response: true, questions: [{ name: labels.join('.'), type, class: 'IN' }] });
          const wire = encodeMessage(message);
          const decoded = decodeMessage(wire);
          expect(decoded.id).toBe(id);
          expect(decoded.flags).toEqual(flags);
          expect(decoded.questions[0]?.name).toBe(labels.join('.'));
          expect(encodeMessage(decoded)).toEqual(wire);
        },
      ),
      { numRuns: 300 },
    );
  });

  it.each([
    ['empty', Buffer.alloc(0)],
    ['shorter than a header', Buffer.from([1, 2, 3])],
    ['a question count with no question', Buffer.from([0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0])],
    ['a compression pointer to itself', Buffer.from([0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1])],
    ['a label running past the end', Buffer.from([0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 60, 97, 98])],
    // dns-packet would read these as the text "ab..cd" and "\ufffd": names that encode back differently.
    ['a question label holding a dot', Buffer.from('1234010000010000000000000361622e0263640000010001', 'hex')],
    ['a question label that is not UTF-8', Buffer.from('12340100000100000000000001ff0000010001', 'hex')],
  ])('rejects %s with a MalformedMessageError', (_what, wire) => {
    expect(() => decodeMessage(wire)).toThrowError(expect.objectContaining({ code: 'ERR_DNS_MALFORMED' }));
  });

  it.each([
    ['a label over 63 octets', `${'a'.repeat(64)}.example`],
    ['a name over 255 octets', Array.from({ length: 9 }, () => 'b'.repeat(30)).join('.')],
    ['an empty label', 'a..example'],
  ])('refuses to encode %s', (_what, name) => {
    expect(() => encodeMessage(createMessage({ questions: [{ name, type: 'A' }] }))).toThrowError(
      expect.objectContaining({ code: 'ERR_DNS_MALFORMED' }),
    );
  });

  it('rejects a message with two OPT records (RFC 6891 §6.1.1)', () => {
    const wire = encodeMessage(createMessage({ questions: [{ name: 'x', type: 'A' }], edns: { udpPayloadSize: 1232, version: 0, dnssecOk: false } }));
    // Append a second OPT record and bump ARCOUNT.
    const opt = wire.subarray(wire.length - 11);
    const doubled = Buffer.concat([wire, opt]);
    doubled.writeUInt16BE(2, 10);
    expect(() => decodeMessage(doubled)).toThrowError(/more than one OPT/);
  });

  it('builds a reply that echoes ID, question, RD and EDNS', () => {
    const query: DnsMessage = createMessage({ id: 42, flags: { rd: true }, questions: [{ name: 'Zk.Local', type: 'A' }], edns: { udpPayloadSize: 1232, version: 0, dnssecOk: true } });
    const reply = createReply(query, { rcode: Rcode.NXDOMAIN });
    expect(reply).toMatchObject({ id: 42, response: true, rcode: Rcode.NXDOMAIN, questions: [{ name: 'Zk.Local', type: 'A' }] });
    expect(reply.flags.rd).toBe(true);
    expect(reply.edns?.udpPayloadSize).toBe(EDNS_UDP_SIZE);
  });

  it.each([
    [undefined, 512],
    [100, 512],
    [1232, 1232],
    [65000, EDNS_UDP_SIZE],
  ])('limits UDP replies for a client advertising %s to %i bytes', (size, limit) => {
    const query = createMessage(size === undefined ? {} : { edns: { udpPayloadSize: size, version: 0, dnssecOk: false } });
    expect(udpLimit(query)).toBe(limit);
  });

  it('truncates to header and question with TC', () => {
    const cut = truncate(srvResponse);
    expect(cut.flags.tc).toBe(true);
    expect(cut.answers).toEqual([]);
    expect(cut.additionals).toEqual([]);
    expect(cut.questions).toEqual(srvResponse.questions);
  });
});

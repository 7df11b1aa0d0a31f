import fc from 'fast-check';
import * as packet from 'dns-packet';
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
import { wireNameProblem } from '../../src/core/dns-name.js';

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

  /**
   * What "faithful" means, the long way: dns-packet reads the question, the
   * name fits the wire, and the question encodes back to the very bytes.
   */
  function faithful(wire: Buffer): boolean {
    try {
      const question = packet.decode(wire).questions?.[0];
      if (question === undefined) return true;
      const name = question.name;
      if (name !== '.' && name !== '' && wireNameProblem(name.replace(/^\.|\.$/g, '').split('.')) !== undefined) return false;
      const again = packet.encode({ questions: [question] });
      return wire.subarray(12, again.length).equals(again.subarray(12));
    } catch {
      return false;
    }
  }

  function queryWith(labels: readonly Uint8Array[], type: number, klass: number): Buffer {
    const header = Buffer.from([0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    const tail = Buffer.alloc(4);
    tail.writeUInt16BE(type, 0);
    tail.writeUInt16BE(klass, 2);
    return Buffer.concat([header, ...labels.flatMap((label) => [Buffer.from([label.length]), Buffer.from(label)]), Buffer.from([0]), tail]);
  }

  it('accepts a question exactly when it reads back as its own bytes, whatever its labels, type and class (property)', () => {
    // Mostly printable ASCII, with the bytes that trouble a text round trip mixed in: dots, line ends
    // (dns-packet's encoder strips a dot next to one), NUL, UTF-8 lead and continuation bytes, 0xff.
    const byte = fc.oneof(
      { arbitrary: fc.integer({ min: 0x21, max: 0x7e }), weight: 12 },
      { arbitrary: fc.constantFrom(0x2e, 0x0a, 0x0d, 0x00, 0xc3, 0xa9, 0xe2, 0x80, 0xa8, 0xff), weight: 2 },
      { arbitrary: fc.integer({ min: 0, max: 255 }), weight: 1 },
    );
    const label = fc.oneof({ arbitrary: fc.array(byte, { minLength: 1, maxLength: 8 }), weight: 8 }, { arbitrary: fc.array(byte, { minLength: 1, maxLength: 63 }), weight: 1 }).map((bytes) => Uint8Array.from(bytes));
    const klass = fc.oneof(fc.constantFrom(0, 1, 2, 3, 4, 5, 254, 255, 0x8001), fc.integer({ min: 0, max: 0xffff }));
    fc.assert(
      fc.property(fc.array(label, { maxLength: 6 }), fc.integer({ min: 0, max: 0xffff }), klass, (labels, type, cls) => {
        const wire = queryWith(labels, type, cls);
        let accepted: boolean;
        try {
          decodeMessage(wire);
          accepted = true;
        } catch (err) {
          expect(err).toMatchObject({ code: 'ERR_DNS_MALFORMED' });
          accepted = false;
        }
        expect(accepted, wire.toString('hex')).toBe(faithful(wire));
      }),
      { numRuns: 3000 },
    );
  });

  it('reads every one of the 65,536 types back as itself', () => {
    for (let type = 0; type <= 0xffff; type++) {
      const wire = queryWith([Buffer.from('a')], type, 1);
      if (!faithful(wire)) throw new Error(`type ${type} does not read back as itself`);
      decodeMessage(wire);
    }
  });

  it.each([
    ['a plain name', 'zk1._zookeeper._tcp.env1.skydns.local', true],
    ['a leading and a trailing dot', '.a.b.', true],
    ['63-octet labels', `${'a'.repeat(63)}.${'b'.repeat(63)}`, true],
    ['a 64-octet label', `${'a'.repeat(64)}.b`, false],
    ['253 characters', Array.from({ length: 4 }, () => 'c'.repeat(62)).join('.') + '.d', true],
    ['254 characters', Array.from({ length: 4 }, () => 'c'.repeat(62)).join('.') + '.de', false],
    ['two dots in a row', 'a..b', false],
    ['only dots', '..', false],
    ['a long non-ASCII label', `${'é'.repeat(32)}.x`, false],
    ['a short non-ASCII label', `${'é'.repeat(31)}.x`, true],
  ])('encodes %s only when it fits the wire', (_what, name, fits) => {
    const encode = (): Buffer => encodeMessage(createMessage({ questions: [{ name, type: 'A' }] }));
    if (fits) expect(decodeMessage(encode()).questions[0]?.name).toBe(name.replace(/^\.|\.$/g, ''));
    else expect(encode).toThrowError(expect.objectContaining({ code: 'ERR_DNS_MALFORMED' }));
  });
});

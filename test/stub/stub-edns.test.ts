/**
 * EDNS and the DNSSEC bits between dig (a client we did not write), the stub
 * and its upstream: 1232-byte buffers (DNS Flag Day 2020), BADVERS for EDNS
 * versions above 0 (RFC 6891 §6.1.3), AD only for clients that asked for it
 * (RFC 6840 §5.8).
 */
import { describe, expect, it } from 'vitest';
import { createReply } from '../../src/dns/codec.js';
import { dig } from '../helpers/dig.js';
import { aRecord, resolverFor, startStub, startUpstream } from '../helpers/stub-fixtures.js';

/** An upstream that says it validated every answer (AD), as a validating resolver does. */
async function validatingUpstream(): Promise<Awaited<ReturnType<typeof startUpstream>>> {
  return startUpstream((q) => createReply(q, { flags: { ra: true, ad: true }, answers: [aRecord(q.questions[0]?.name ?? '', '192.0.2.7')] }));
}

describe('the stub and EDNS', () => {
  it('passes AD on only to a client that set AD or DO (RFC 6840 §5.8), asking upstream with AD and 1232 bytes', async () => {
    const upstream = await validatingUpstream();
    const stub = await startStub({ upstreamResolver: resolverFor(upstream.address) });
    // dig sets AD in its queries unless told +noadflag.
    const plain = await dig(stub.address(), 'signed.example', 'A', ['+noadflag']);
    expect(plain.answer.map((r) => r.data)).toEqual(['192.0.2.7']);
    expect(plain.flags).not.toContain('ad');
    // The same name again (now from the cache), by a client that asks for AD, then by one that sets DO.
    const withAd = await dig(stub.address(), 'signed.example', 'A');
    expect(withAd.flags).toContain('ad');
    const withDo = await dig(stub.address(), 'other.example', 'A', ['+noadflag', '+dnssec']);
    expect(withDo.flags).toContain('ad');
    // What the stub asked: AD set (RFC 6840 §5.7), EDNS with 1232 bytes.
    expect(upstream.queries[0]?.flags.ad).toBe(true);
    expect(upstream.queries[0]?.edns?.udpPayloadSize).toBe(1232);
    expect(upstream.count('signed.example')).toBe(1);
  });

  it('answers BADVERS to EDNS version 1 and keeps answering version 0', async () => {
    const upstream = await validatingUpstream();
    const stub = await startStub({ upstreamResolver: resolverFor(upstream.address) });
    const v1 = await dig(stub.address(), 'name.example', 'A', ['+edns=1', '+noednsneg']);
    expect(v1.status).toBe('BADVERS');
    expect(v1.raw).toMatch(/EDNS: version: 0/);
    expect(v1.answer).toEqual([]);
    expect(stub.stats.badVersion).toBe(1);
    // dig's default: on BADVERS it asks again with version 0, and gets the answer.
    const negotiated = await dig(stub.address(), 'name.example', 'A', ['+edns=1']);
    expect(negotiated.status).toBe('NOERROR');
    expect(negotiated.answer.map((r) => r.data)).toEqual(['192.0.2.7']);
    expect(upstream.count('name.example')).toBe(1);
  });
});

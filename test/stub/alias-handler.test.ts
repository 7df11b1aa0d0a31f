import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/core/errors.js';
import { Rcode, createMessage, createReply, type DnsMessage } from '../../src/dns/codec.js';
import { runChain } from '../../src/dns/handler.js';
import { DEFAULT_ALIAS_TTL, createAliasHandler, type AliasAddresses } from '../../src/stub/alias-handler.js';

const ALIASES = new Map<string, AliasAddresses>([
  ['zookeeper', { ipv4: '127.0.0.2' }],
  ['postgres.env2.skydns.local', { ipv4: '127.0.0.3' }],
  ['both', { ipv4: '127.0.0.4', ipv6: '::1' }],
  ['v6only', { ipv6: 'fd00::53' }],
  // Keys are canonicalized when the handler is built, whatever they look like.
  ['Legacy.ZK.', { ipv4: '127.0.0.5' }],
]);

const PASSED = createMessage({ id: 0xbeef, response: true, rcode: Rcode.NXDOMAIN });

async function ask(name: string, type: string, options: { ttl?: number } = {}): Promise<DnsMessage> {
  const message = createMessage({ id: 77, flags: { rd: true }, questions: [{ name, type: type as 'A', class: 'IN' }] });
  return runChain([createAliasHandler(ALIASES, options)], { message, client: { address: '127.0.0.1', port: 1, transport: 'udp' } }, () =>
    Promise.resolve(PASSED),
  );
}

describe('createAliasHandler', () => {
  it.each<[string, string, string[]]>([
    ['zookeeper', 'A', ['127.0.0.2']],
    ['ZooKeeper', 'A', ['127.0.0.2']],
    ['postgres.env2.skydns.local', 'A', ['127.0.0.3']],
    ['legacy.zk', 'A', ['127.0.0.5']],
    ['both', 'A', ['127.0.0.4']],
    ['both', 'AAAA', ['::1']],
    ['both', 'ANY', ['127.0.0.4', '::1']],
    ['v6only', 'AAAA', ['fd00::53']],
    // NODATA: the name exists, not that type (RFC 2308 §2.2).
    ['zookeeper', 'AAAA', []],
    ['v6only', 'A', []],
    ['zookeeper', 'MX', []],
    ['zookeeper', 'SRV', []],
    ['zookeeper', 'TXT', []],
  ])('%s %s → %j', async (name, type, addresses) => {
    const reply = await ask(name, type);
    expect(reply).toMatchObject({ id: 77, response: true, rcode: Rcode.NOERROR, flags: { aa: true, ra: true, rd: true } });
    expect(reply.answers.map((r) => r.data)).toEqual(addresses);
    for (const record of reply.answers) expect(record).toMatchObject({ name, ttl: DEFAULT_ALIAS_TTL, class: 'IN' });
    expect(reply.authorities).toEqual([]);
  });

  it.each(['zookeeper.example', 'zoo', 'env2.skydns.local', 'x.zookeeper', 'example.com'])('passes %s on', async (name) => {
    expect(await ask(name, 'A')).toBe(PASSED);
  });

  it('uses the TTL given', async () => {
    expect((await ask('zookeeper', 'A', { ttl: 5 })).answers[0]?.ttl).toBe(5);
  });

  it.each<[AliasAddresses, number | undefined]>([
    [{ ipv4: '::1' }, undefined],
    [{ ipv6: '127.0.0.1' }, undefined],
    [{ ipv4: 'localhost' }, undefined],
    [{ ipv4: '127.0.0.1' }, -1],
    [{ ipv4: '127.0.0.1' }, 1.5],
  ])('rejects %j with ttl %s', (addresses, ttl) => {
    expect(() => createAliasHandler(new Map([['x', addresses]]), ttl === undefined ? {} : { ttl })).toThrow(InvalidArgumentError);
  });

  it('leaves an empty table to next', async () => {
    const message = createMessage({ id: 1, questions: [{ name: 'zookeeper', type: 'A' }] });
    const reply = await runChain([createAliasHandler(new Map())], { message, client: { address: '', port: 0, transport: 'udp' } }, (r) =>
      Promise.resolve(createReply(r.message, { rcode: Rcode.REFUSED })),
    );
    expect(reply.rcode).toBe(Rcode.REFUSED);
  });
});

describe('createAliasHandler with a listener on every address (a sidecar)', () => {
  const wildcard = new Map<string, AliasAddresses>([
    ['zookeeper', { ipv4: '0.0.0.0' }],
    ['v6', { ipv6: '::' }],
  ]);
  const askFrom = async (name: string, type: string, client: { address: string; localAddress?: string }): Promise<string[]> => {
    const message = createMessage({ id: 7, questions: [{ name, type: type as 'A', class: 'IN' }] });
    const reply = await runChain([createAliasHandler(wildcard)], { message, client: { port: 1, transport: 'tcp', ...client } }, () => Promise.resolve(PASSED));
    return reply.answers.map((r) => String(r.data));
  };

  it('answers each client with the local address it reached', async () => {
    expect(await askFrom('zookeeper', 'A', { address: '10.99.1.2', localAddress: '10.99.1.1' })).toEqual(['10.99.1.1']);
    expect(await askFrom('zookeeper', 'A', { address: '10.99.2.2', localAddress: '10.99.2.1' })).toEqual(['10.99.2.1']);
    expect(await askFrom('zookeeper', 'A', { address: '::ffff:10.99.3.2', localAddress: '::ffff:10.99.3.1' })).toEqual(['10.99.3.1']);
    expect(await askFrom('v6', 'AAAA', { address: 'fd00::2', localAddress: 'fd00::1' })).toEqual(['fd00::1']);
  });

  it('finds the address by the route back when the transport does not say (UDP on a wildcard socket)', async () => {
    expect(await askFrom('zookeeper', 'A', { address: '127.0.0.1' })).toEqual(['127.0.0.1']);
  });

  it('answers loopback when the client reached another family, or no route is known', async () => {
    expect(await askFrom('zookeeper', 'A', { address: 'fd00::2', localAddress: 'fd00::1' })).toEqual(['127.0.0.1']);
    expect(await askFrom('v6', 'AAAA', { address: '10.0.0.2', localAddress: '10.0.0.1' })).toEqual(['::1']);
    expect(await askFrom('zookeeper', 'A', { address: 'not-an-address' })).toEqual(['127.0.0.1']);
  });
});

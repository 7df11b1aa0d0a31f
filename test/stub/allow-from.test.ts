import type { NetworkInterfaceInfo } from 'node:os';
import { describe, expect, it } from 'vitest';
import { formatCidr, parseCidr } from '../../src/core/cidr.js';
import { ConfigError } from '../../src/core/errors.js';
import { Rcode, createMessage, createReply, type DnsMessage } from '../../src/dns/codec.js';
import { runChain, type DnsClientInfo } from '../../src/dns/handler.js';
import { createAllowFromHandler, defaultAllowFrom } from '../../src/stub/allow-from.js';

const QUERY = createMessage({ id: 9, flags: { rd: true }, questions: [{ name: 'example.com', type: 'A', class: 'IN' }] });

/** Run one query from `address` through [allow-from] and a last step that answers NOERROR. */
async function rcodeFor(cidrs: readonly string[], address: string, transport: DnsClientInfo['transport'] = 'udp'): Promise<number> {
  const reply = await runChain([createAllowFromHandler(cidrs)], { message: QUERY, client: { address, port: 5353, transport } }, (request) =>
    Promise.resolve(createReply(request.message)),
  );
  return reply.rcode;
}

describe('createAllowFromHandler', () => {
  const allowed = ['127.0.0.0/8', '10.99.0.0/24', '192.168.1.7', 'fd00:1::/64', '::1/128'];
  it.each<[string, number]>([
    ['127.0.0.1', Rcode.NOERROR],
    ['10.99.0.2', Rcode.NOERROR],
    ['10.99.0.255', Rcode.NOERROR],
    ['10.99.1.2', Rcode.REFUSED],
    ['192.168.1.7', Rcode.NOERROR],
    ['192.168.1.8', Rcode.REFUSED],
    ['203.0.113.5', Rcode.REFUSED],
    ['fd00:1::53', Rcode.NOERROR],
    ['FD00:1:0:0:ffff::1', Rcode.NOERROR],
    ['fd00:2::53', Rcode.REFUSED],
    ['::1', Rcode.NOERROR],
    ['2001:db8::1', Rcode.REFUSED],
    // IPv4 clients on a dual-stack socket (RFC 4291 §2.5.5.2).
    ['::ffff:10.99.0.2', Rcode.NOERROR],
    ['::FFFF:10.99.1.2', Rcode.REFUSED],
    ['::ffff:a63:2', Rcode.NOERROR],
    ['::ffff:127.0.0.1', Rcode.NOERROR],
    // A zone index is not part of the address.
    ['fd00:1::53%eth0', Rcode.NOERROR],
    // Nothing readable: refused.
    ['', Rcode.REFUSED],
    ['not-an-address', Rcode.REFUSED],
  ])('client %s → %s', async (address, rcode) => {
    expect(await rcodeFor(allowed, address)).toBe(rcode);
  });

  it('answers REFUSED with the query ID and question, and the same over TCP', async () => {
    const reply: DnsMessage = await runChain(
      [createAllowFromHandler(['10.0.0.0/8'])],
      { message: QUERY, client: { address: '172.16.0.9', port: 40000, transport: 'tcp' } },
      () => Promise.reject(new Error('must not be reached')),
    );
    expect(reply).toMatchObject({ id: 9, response: true, rcode: Rcode.REFUSED, questions: [{ name: 'example.com' }] });
  });

  it('refuses everyone with an empty list', async () => {
    expect(await rcodeFor([], '127.0.0.1')).toBe(Rcode.REFUSED);
  });

  it('accepts parsed networks as well as strings', async () => {
    const reply = await runChain(
      [createAllowFromHandler([parseCidr('10.0.0.0/8', '--allow-from')])],
      { message: QUERY, client: { address: '10.1.2.3', port: 1, transport: 'udp' } },
      (request) => Promise.resolve(createReply(request.message)),
    );
    expect(reply.rcode).toBe(Rcode.NOERROR);
  });

  it.each([
    ['10.0.0.0/33', /^invalid --allow-from "10\.0\.0\.0\/33": prefix length "33" must be 0-32/],
    ['fd00::/129', /^invalid --allow-from "fd00::\/129": prefix length "129" must be 0-128/],
    ['10.0.0/8', /^invalid --allow-from "10\.0\.0\/8": "10\.0\.0" is not an IP address/],
    ['10.0.0.0/', /^invalid --allow-from "10\.0\.0\.0\/": prefix length "" must be 0-32/],
    ['10.0.0.0/-1', /^invalid --allow-from "10\.0\.0\.0\/-1"/],
    ['', /^invalid --allow-from "": "" is not an IP address/],
  ])('throws a ConfigError naming --allow-from for %j', (value, message) => {
    expect(() => createAllowFromHandler([value])).toThrow(ConfigError);
    expect(() => createAllowFromHandler([value])).toThrow(message);
  });
});

describe('defaultAllowFrom', () => {
  const nic = (address: string, netmask: string, fields: Partial<NetworkInterfaceInfo> = {}): NetworkInterfaceInfo => {
    const ipv6 = address.includes(':');
    const base = { address, netmask, mac: '02:42:0a:63:00:02', internal: false, cidr: null };
    return (ipv6 ? { ...base, family: 'IPv6', scopeid: 0, ...fields } : { ...base, family: 'IPv4', ...fields }) as NetworkInterfaceInfo;
  };

  it.each<[string, Record<string, NetworkInterfaceInfo[]>, string[]]>([
    ['no interfaces: loopback only', {}, []],
    [
      'a container on a private bridge (RFC 1918, RFC 4193, link-local)',
      {
        lo: [nic('127.0.0.1', '255.0.0.0', { internal: true }), nic('::1', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', { internal: true })],
        eth0: [nic('10.99.0.1', '255.255.255.0'), nic('fd00:99::5', 'ffff:ffff:ffff:ffff::'), nic('fe80::42:aff:fe63:2', 'ffff:ffff:ffff:ffff::')],
      },
      ['10.99.0.0/24', 'fd00:99::/64', 'fe80::/64'],
    ],
    [
      'the other RFC 1918 ranges and IPv4 link-local',
      {
        eth0: [nic('172.17.0.2', '255.255.0.0')],
        eth1: [nic('192.168.10.200', '255.255.255.128')],
        eth2: [nic('169.254.3.4', '255.255.0.0')],
      },
      ['172.17.0.0/16', '192.168.10.128/25', '169.254.0.0/16'],
    ],
    [
      'public addresses give nothing (their neighbours may be anyone)',
      { eth0: [nic('203.0.113.5', '255.255.255.0'), nic('2001:db8::5', 'ffff:ffff:ffff:ffff::'), nic('172.32.0.1', '255.255.0.0')] },
      [],
    ],
    [
      'a netmask wider than the private range is not widened further',
      { eth0: [nic('10.1.2.3', '255.0.0.0')], eth1: [nic('172.20.0.1', '255.0.0.0')] },
      ['10.0.0.0/8'],
    ],
    ['the same network on two interfaces appears once', { a: [nic('10.0.0.1', '255.255.255.0')], b: [nic('10.0.0.2', '255.255.255.0')] }, ['10.0.0.0/24']],
    ['internal interfaces are skipped', { dummy: [nic('10.5.0.1', '255.255.0.0', { internal: true })] }, []],
  ])('%s', (_title, interfaces, extra) => {
    expect(defaultAllowFrom(interfaces).map(formatCidr)).toEqual(['127.0.0.0/8', '::1/128', ...extra]);
  });

  it("reads this machine's interfaces by default, and the result builds a handler", async () => {
    const cidrs = defaultAllowFrom();
    expect(cidrs.map(formatCidr).slice(0, 2)).toEqual(['127.0.0.0/8', '::1/128']);
    const handler = createAllowFromHandler(cidrs);
    const reply = await runChain([handler], { message: QUERY, client: { address: '127.0.0.1', port: 1, transport: 'udp' } }, (request) =>
      Promise.resolve(createReply(request.message)),
    );
    expect(reply.rcode).toBe(Rcode.NOERROR);
  });
});

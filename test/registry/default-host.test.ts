import type { NetworkInterfaceInfo } from 'node:os';
import { describe, expect, it } from 'vitest';
import { defaultHost, type NetworkInterfaces } from '../../src/registry/default-host.js';

function v4(address: string, internal = false): NetworkInterfaceInfo {
  return { address, netmask: '255.255.255.0', family: 'IPv4', mac: '00:00:00:00:00:00', internal, cidr: `${address}/24` };
}
function v6(address: string, internal = false): NetworkInterfaceInfo {
  return { address, netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: '00:00:00:00:00:00', internal, cidr: `${address}/64`, scopeid: 0 };
}

describe('defaultHost', () => {
  it.each<[string, NetworkInterfaces, string]>([
    ['eth0 after lo', { lo: [v4('127.0.0.1', true), v6('::1', true)], eth0: [v4('10.0.0.5')] }, '10.0.0.5'],
    ['IPv6 first on the interface', { eth0: [v6('fd00::5'), v4('10.0.0.5')] }, '10.0.0.5'],
    ['first interface wins', { eth0: [v4('10.0.0.5')], eth1: [v4('192.168.1.2')] }, '10.0.0.5'],
    ['link-local skipped', { eth0: [v4('169.254.10.1')], eth1: [v4('192.168.1.2')] }, '192.168.1.2'],
    ['a 127/8 address not flagged internal', { dummy: [v4('127.0.0.2')], eth0: [v4('172.17.0.3')] }, '172.17.0.3'],
    ['an interface without addresses', { tun0: undefined, eth0: [v4('10.1.2.3')] }, '10.1.2.3'],
  ])('%s', (_, interfaces, host) => {
    expect(defaultHost(interfaces)).toBe(host);
  });

  it.each<[string, NetworkInterfaces]>([
    ['no interfaces', {}],
    ['loopback only', { lo: [v4('127.0.0.1', true), v6('::1', true)] }],
    ['IPv6 only', { eth0: [v6('fd00::5')] }],
  ])('%s → none', (_, interfaces) => {
    expect(defaultHost(interfaces)).toBeUndefined();
  });

  it('reads the machine by default', () => {
    // Whatever this machine has: an address, or none.
    const host = defaultHost();
    if (host !== undefined) expect(host).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
  });
});

/**
 * An SRV record with port 0 (nothing to dial) is skipped at discovery: dnsmasq
 * publishes it, a real `srvlink run` process never dials it nor ejects it.
 */
import { describe, expect, it } from 'vitest';
import { formatHostPort, parseHostPort } from '../../src/core/host-port.js';
import { startDnsmasq } from '../helpers/dnsmasq.js';
import { spawnSrvlink } from '../helpers/srvlink-process.js';
import { connectTcp, readLine, startNamedBackend } from '../helpers/tcp-backends.js';
import { waitFor } from '../helpers/wait-for.js';

const SRV = '_pg._tcp.env1.skydns.local';

describe('an SRV record with port 0', () => {
  it('is left out with one log line, never dialed nor counted towards ejection', async () => {
    const live = await startNamedBackend('live');
    // The port-0 record is the preferred one (lower priority number): without the skip, every
    // connection would dial it first.
    const dnsmasq = await startDnsmasq({
      srv: [
        { name: SRV, target: 'zero.env1.skydns.local', port: 0, priority: 1, weight: 10 },
        { name: SRV, target: 'live.env1.skydns.local', port: live.address.port, priority: 20, weight: 10 },
      ],
      hosts: [
        { name: 'zero.env1.skydns.local', address: '127.0.0.1' },
        { name: 'live.env1.skydns.local', address: '127.0.0.1' },
      ],
      ttl: 0,
    });
    const proc = spawnSrvlink([
      'run', '--dns-listen', 'none', '--domain', 'env1.skydns.local', '--cluster-dns', formatHostPort(dnsmasq.address),
      '--map', '127.0.0.1:0=pg', '--dns-timeout', '300ms', '--ttl-min', '100ms', '--ttl-max', '100ms',
      '--eject-after', '1', '--log-level', 'debug',
    ]);
    const address = parseHostPort(String((await proc.waitForLog((l) => l.msg === 'listening')).address), 'address');

    for (let i = 0; i < 5; i++) {
      const socket = await connectTcp(address);
      expect(await readLine(socket)).toBe('live');
      socket.destroy();
    }
    await waitFor(() => live.accepted >= 5, { what: 'five connections at the live backend' });
    const skipped = proc.logs.filter((l) => l.msg === 'srv record has port 0, left out');
    expect(skipped).toEqual([expect.objectContaining({ level: 'warn', target: 'zero.env1.skydns.local.' })]);
    expect(proc.logs.filter((l) => l.msg === 'cannot dial backend' || /ejected/.test(l.msg))).toEqual([]);
    expect(proc.logs.find((l) => l.msg === 'backend set changed')).toMatchObject({ backends: 1 });
  });
});

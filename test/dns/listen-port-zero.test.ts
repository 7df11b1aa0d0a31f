/**
 * A DNS server on port 0 needs one port free for both UDP and TCP. On a busy
 * host nearly every ephemeral port is held by TCP (outgoing connections in
 * TIME_WAIT): a UDP port picked first is then almost always taken for TCP,
 * while the kernel's own TCP pick finds a free one. Shown in a namespace
 * whose ephemeral range is 100 ports, 99 of them held by TCP listeners.
 */
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { parseDigOutput } from '../helpers/dig.js';
import { createNamespace, NETNS_UNAVAILABLE } from '../helpers/netns.js';
import { spawnSrvlink } from '../helpers/srvlink-process.js';

const LOW = 40_000;
const HIGH = 40_099;

/** Holds TCP on every port of the range but the last, then says so. */
const HOLDER = `
const net = require('node:net');
let held = 0;
for (let port = ${LOW}; port < ${HIGH}; port++) {
  net.createServer().listen(port, '127.0.0.1', () => { if (++held === ${HIGH - LOW}) console.log('held'); });
}
`;

const title = `srvlink dns on port 0 among ports TCP holds${NETNS_UNAVAILABLE ? ` (skipped: ${NETNS_UNAVAILABLE})` : ''}`;

describe.skipIf(NETNS_UNAVAILABLE !== undefined)(title, () => {
  it('listens on the one port free for TCP, and answers over UDP and TCP there', async () => {
    const ns = await createNamespace();
    // /proc/sys/net is the namespace's own: the host's range stays as it is.
    const range = await ns.exec('sh', ['-c', `echo "${LOW} ${HIGH}" > /proc/sys/net/ipv4/ip_local_port_range && cat /proc/sys/net/ipv4/ip_local_port_range`]);
    expect(range.stdout.trim().split(/\s+/)).toEqual([String(LOW), String(HIGH)]);
    const holder = ns.spawn(process.execPath, ['-e', HOLDER]);
    await once(createInterface({ input: holder.stdout as NodeJS.ReadableStream }), 'line');

    for (let round = 0; round < 3; round++) {
      const dns = spawnSrvlink(['dns', '--listen', '127.0.0.1:0'], { spawner: (command, args, env) => ns.spawn(command, args, { env }) });
      const line = await dns.waitForLog((l) => l.msg === 'dns server listening');
      expect(line.address).toBe(`127.0.0.1:${HIGH}`);
      for (const [i, transport] of ['+notcp', '+tcp'].entries()) {
        // dig's own port outside the full range (a private namespace: nothing else binds there).
        const source = `127.0.0.1#${30_000 + round * 2 + i}`;
        const dig = await ns.exec('dig', ['@127.0.0.1', '-p', String(HIGH), '-b', source, '+time=5', '+tries=1', transport, 'skydns.local', 'SOA']);
        expect(parseDigOutput(dig.stdout).status, `${transport}: ${dig.stdout}${dig.stderr}`).toBe('NOERROR');
      }
      expect(await dns.stop('SIGTERM')).toBe(0);
    }
  });
});

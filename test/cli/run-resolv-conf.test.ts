/**
 * `--write-resolv-conf` across a container restart: the first srvlink dies
 * without cleaning up (SIGKILL, as a crashed or OOM-killed container), so the
 * second finds resolv.conf already pointing at the stub. It must still know
 * the container's own resolvers, and put the original back when it stops.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { digArgs, parseDigOutput } from '../helpers/dig.js';
import { NETNS_UNAVAILABLE, createNamespace, startDnsmasqIn, type Namespace } from '../helpers/netns.js';
import { spawnSrvlink, type SrvlinkProcess } from '../helpers/srvlink-process.js';
import { tempDir } from '../helpers/temp-dir.js';

/** The container's resolver before srvlink: dnsmasq on another loopback address, port 53 (resolv.conf cannot name a port). */
const UPSTREAM = '127.0.0.3';
const ORIGINAL = `# from the container runtime\nnameserver ${UPSTREAM}\noptions ndots:1 attempts:2\n`;

function runIn(ns: Namespace, resolvConf: string): SrvlinkProcess {
  return spawnSrvlink(
    [
      'run', '--domain', 'env1.skydns.local', '--discovery', 'static', '--map', '127.0.0.1:0=zookeeper', '--backend', 'zookeeper=127.0.0.1:1',
      '--dns-listen', '127.0.0.1:53', '--write-resolv-conf', '--resolv-conf', resolvConf, '--dns-timeout', '1s',
    ],
    { spawner: (command, args, env) => ns.spawn(command, args, { env }) },
  );
}

/** Ask the stub, as an app would (dig reads nothing else). */
async function resolveThroughStub(ns: Namespace, name: string): Promise<string[]> {
  const result = await ns.exec('dig', digArgs({ host: '127.0.0.1', port: 53 }, name, 'A'));
  const reply = parseDigOutput(result.stdout);
  expect(reply.status).toBe('NOERROR');
  return reply.answer.map((r) => r.data);
}

describe.skipIf(NETNS_UNAVAILABLE !== undefined)(`--write-resolv-conf across restarts${NETNS_UNAVAILABLE ? ` (skipped: ${NETNS_UNAVAILABLE})` : ''}`, () => {
  it('started twice on the same resolv.conf still forwards other names upstream, and restores the file on exit', async () => {
    const ns = await createNamespace();
    await ns.addAddress(`${UPSTREAM}/32`);
    await startDnsmasqIn(ns, { listen: { host: UPSTREAM, port: 53 }, localZones: [], extraArgs: ['--address=/outside.example/192.0.2.7'] });
    const resolvConf = join(tempDir(), 'resolv.conf');
    writeFileSync(resolvConf, ORIGINAL);

    const first = runIn(ns, resolvConf);
    await first.waitForLog((l) => l.msg === 'srvlink run ready');
    const written = readFileSync(resolvConf, 'utf8');
    expect(written.split('\n').filter((l) => l.startsWith('nameserver'))).toEqual(['nameserver 127.0.0.1']);
    expect(written).toContain(`# srvlink original: nameserver ${UPSTREAM}`);
    expect(await resolveThroughStub(ns, 'outside.example')).toEqual(['192.0.2.7']);
    // The container dies: nothing is cleaned up.
    expect(await first.stop('SIGKILL')).toBe(137);
    expect(readFileSync(resolvConf, 'utf8')).toBe(written);

    const second = runIn(ns, resolvConf);
    const stub = await second.waitForLog((l) => l.msg === 'dns stub listening');
    expect(stub.upstream).toEqual([`${UPSTREAM}:53`]);
    await second.waitForLog((l) => l.msg === 'srvlink run ready');
    expect(readFileSync(resolvConf, 'utf8')).toBe(written);
    expect(await resolveThroughStub(ns, 'outside.example')).toEqual(['192.0.2.7']);

    expect(await second.stop('SIGTERM')).toBe(0);
    expect(second.logs.some((l) => l.msg === 'resolv.conf restored')).toBe(true);
    expect(readFileSync(resolvConf, 'utf8')).toBe(ORIGINAL);
  });
});

import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { connectNamespaces, createNamespace, NETNS_UNAVAILABLE, startDnsmasqIn } from '../helpers/netns.js';
import { tempDir } from '../helpers/temp-dir.js';

const run = promisify(execFile);

const title = `namespace harness${NETNS_UNAVAILABLE ? ` (skipped: ${NETNS_UNAVAILABLE})` : ''}`;

/** A resolv.conf for inside a namespace: its own 127.0.0.1:53, SkyDNS search domain. */
function stubResolvConf(): string {
  const path = join(tempDir(), 'resolv.conf');
  writeFileSync(path, 'nameserver 127.0.0.1\nsearch env1.skydns.local\noptions timeout:2 attempts:2\n');
  return path;
}

function alive(pid: number): boolean {
  return existsSync(`/proc/${pid}`);
}

describe.skipIf(NETNS_UNAVAILABLE !== undefined)(title, () => {
  it('is a fresh PID, network and mount namespace with only lo, up', async () => {
    const ns = await createNamespace();
    const links = await ns.exec('ip', ['-brief', 'link']);
    expect(links.stdout.trim().split('\n')).toEqual([expect.stringMatching(/^lo\s+UNKNOWN/)]);
    // /proc is the namespace's own: PID 1 is the holder.
    expect((await ns.exec('cat', ['/proc/1/cmdline'])).stdout).toBe('sleep\0infinity\0');
    expect(ns.processes()).toContain(ns.pid);
  });

  it('exec returns exit code and output, feeds input; spawn kill() reaches the command', async () => {
    const ns = await createNamespace();
    expect(await ns.exec('sh', ['-c', 'echo out; echo err >&2; exit 3'])).toEqual({ code: 3, signal: null, stdout: 'out\n', stderr: 'err\n' });
    expect((await ns.exec('cat', [], { input: 'fed' })).stdout).toBe('fed');
    expect((await ns.exec('sh', ['-c', 'echo $X'], { env: { PATH: process.env.PATH, X: 'y' } })).stdout).toBe('y\n');

    const sleeper = ns.spawn('sleep', ['1000']);
    await expect.poll(() => sleeper.commandPid()).toBeDefined();
    const inner = sleeper.commandPid() as number;
    expect(ns.processes()).toContain(inner);
    sleeper.kill('SIGTERM');
    expect(await sleeper.exited).toBe(128 + 15);
    expect(sleeper.signalCode).toBe('SIGTERM');
    expect(alive(inner)).toBe(false);
  });

  it('runs dnsmasq on its own 127.0.0.1:53, answering dig there, gone after close', async () => {
    const ns = await createNamespace();
    const dnsmasq = await startDnsmasqIn(ns, { hosts: [{ name: 'myname.env1.skydns.local', address: '127.0.0.5' }] });
    expect(dnsmasq.address).toEqual({ host: '127.0.0.1', port: 53 });

    const answer = await ns.exec('dig', ['@127.0.0.1', 'myname.env1.skydns.local', 'A', '+short', '+time=2', '+tries=2']);
    expect(answer).toMatchObject({ code: 0, stdout: '127.0.0.5\n' });
    const inside = await ns.exec('ss', ['-H', '-l', '-u', '-n', '-p', 'sport = :53']);
    expect(inside.stdout).toContain('dnsmasq');

    // The host's network namespace does not see that socket.
    const host = await run('ss', ['-H', '-l', '-u', '-n', '-p', 'sport = :53']);
    expect(host.stdout).not.toContain(`pid=${dnsmasq.pid},`);

    await ns.close();
    expect(alive(dnsmasq.pid)).toBe(false);
    const after = await run('ss', ['-H', '-l', '-u', '-n', '-p']);
    expect(after.stdout).not.toContain(`pid=${dnsmasq.pid},`);
  });

  it('resolves through a bind-mounted resolv.conf inside, the host one untouched', async () => {
    const hostResolvConf = readFileSync('/etc/resolv.conf', 'utf8');
    const ns = await createNamespace();
    await ns.bindMount(stubResolvConf(), '/etc/resolv.conf');
    await startDnsmasqIn(ns, { hosts: [{ name: 'myname.env1.skydns.local', address: '127.0.0.5' }] });

    expect((await ns.exec('cat', ['/etc/resolv.conf'])).stdout).toContain('search env1.skydns.local');
    expect(readFileSync('/etc/resolv.conf', 'utf8')).toBe(hostResolvConf);

    // The search list completes the short name.
    expect(await ns.exec('getent', ['hosts', 'myname'])).toMatchObject({ code: 0, stdout: expect.stringMatching(/^127\.0\.0\.5\s+myname\.env1\.skydns\.local\n$/) });
    expect((await ns.exec('getent', ['ahosts', 'myname'])).stdout).toContain('127.0.0.5');
    // The ADDRCONFIG pitfall: no IPv4 address but 127.0.0.1, so AF_INET +
    // AI_ADDRCONFIG (getent ahostsv4) finds nothing...
    expect((await ns.exec('getent', ['ahostsv4', 'myname'])).code).toBe(2);
    // ...until the namespace has another IPv4 address.
    await ns.addAddress('10.99.255.1/32');
    expect((await ns.exec('getent', ['ahostsv4', 'myname'])).stdout).toContain('127.0.0.5');

    await ns.close();
    expect(readFileSync('/etc/resolv.conf', 'utf8')).toBe(hostResolvConf);
  });

  it('lets node inside dns.lookup a name through the stubbed resolv.conf', async () => {
    const ns = await createNamespace();
    await ns.bindMount(stubResolvConf(), '/etc/resolv.conf');
    await startDnsmasqIn(ns, { hosts: [{ name: 'myname.env1.skydns.local', address: '127.0.0.5' }] });

    const script = `
      const dns = require('node:dns');
      const lookup = (options) => new Promise((resolve) => dns.lookup('myname', options, (error, address) => resolve(error ? error.code : address)));
      (async () => console.log(JSON.stringify({
        plain: await lookup({}),
        family4: await lookup({ family: 4 }),
        family4AddrConfig: await lookup({ family: 4, hints: dns.ADDRCONFIG }),
        unspecAddrConfig: await lookup({ hints: dns.ADDRCONFIG }),
      })))();`;
    const result = await ns.exec(process.execPath, ['-e', script]);
    expect(result.stderr).toBe('');
    // Only family 4 with ADDRCONFIG, in a namespace with only lo, fails (see netns.ts).
    expect(JSON.parse(result.stdout)).toEqual({ plain: '127.0.0.5', family4: '127.0.0.5', family4AddrConfig: 'ENOTFOUND', unspecAddrConfig: '127.0.0.5' });
  });

  it('links two namespaces with a veth pair: dig in B asks dnsmasq in A', async () => {
    const a = await createNamespace({ name: 'a' });
    const b = await createNamespace({ name: 'b' });
    const link = await connectNamespaces(a, b, { aAddress: '10.99.0.1/24', bAddress: '10.99.0.2/24' });
    expect(link.aInterface.length).toBeLessThanOrEqual(15);
    expect(link).toMatchObject({ aHost: '10.99.0.1', bHost: '10.99.0.2' });

    await startDnsmasqIn(a, { listen: { host: '10.99.0.1', port: 53 }, hosts: [{ name: 'far.skydns.local', address: '10.99.0.7' }] });
    const answer = await b.exec('dig', ['@10.99.0.1', 'far.skydns.local', 'A', '+short', '+time=2', '+tries=2']);
    expect(answer).toMatchObject({ code: 0, stdout: '10.99.0.7\n' });
    // Listening on exactly the address given: not on A's loopback.
    const loopback = await a.exec('dig', ['@127.0.0.1', 'far.skydns.local', 'A', '+time=1', '+tries=1']);
    expect(loopback.code).not.toBe(0);
    // The host has neither end.
    expect((await run('ip', ['-brief', 'link'])).stdout).not.toContain(link.aInterface.slice(0, -1));
  });

  it('close() kills everything inside and is safe to call twice', async () => {
    const hostResolvConf = readFileSync('/etc/resolv.conf', 'utf8');
    const ns = await createNamespace();
    await ns.bindMount(stubResolvConf(), '/etc/resolv.conf');
    const dnsmasq = await startDnsmasqIn(ns);
    const sleeper = ns.spawn('sh', ['-c', 'sleep 1000 & sleep 1000 & wait']);
    await expect.poll(() => ns.processes().length).toBeGreaterThanOrEqual(5); // holder, dnsmasq, sh, 2 × sleep
    const inside = ns.processes();
    expect(inside).toEqual(expect.arrayContaining([ns.pid, dnsmasq.pid]));

    await ns.close();
    await ns.close();
    for (const pid of inside) expect(alive(pid), `process ${pid} inside`).toBe(false);
    expect(ns.processes()).toEqual([]);
    expect(sleeper.signalCode).toBe('SIGKILL');
    expect(dnsmasq.process.signalCode).toBe('SIGKILL');
    expect(readFileSync('/etc/resolv.conf', 'utf8')).toBe(hostResolvConf);
    await expect(ns.exec('true')).rejects.toThrow(/closed/);
  });
});

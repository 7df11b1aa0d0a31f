import { writeFileSync, renameSync } from 'node:fs';
import { createServer } from 'node:net';
import { once } from 'node:events';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { parseHostPort, type HostPort } from '../../src/core/host-port.js';
import { dig } from '../helpers/dig.js';
import { spawnSrvlink, runSrvlink } from '../helpers/srvlink-process.js';
import { tempDir } from '../helpers/temp-dir.js';

const ZK = '/skydns/local/skydns/env1/_tcp/_zookeeper';
const WORKED_EXAMPLE = `
${ZK}/zk1: {host: 10.0.0.11, port: 31001}
${ZK}/zk2: {host: 10.0.0.12, port: 31002, weight: 50}
${ZK}/zk3: {host: 10.0.0.13, port: 31003, priority: 20}
/skydns/local/skydns/env1/_tcp/_broken/b1: '{"host": 12345}'
/skydns/local/skydns/env1/_tcp/_broken/b2: {host: 10.0.0.21, port: 4000}
`;

async function startDns(records: string, extra: string[] = []): Promise<{ address: HostPort; file: string; proc: ReturnType<typeof spawnSrvlink> }> {
  const file = join(tempDir(), 'records.yaml');
  writeFileSync(file, records);
  const proc = spawnSrvlink(['dns', '--listen', '127.0.0.1:0', '--records', file, ...extra]);
  const line = await proc.waitForLog((l) => l.msg === 'dns server listening');
  return { address: parseHostPort(String(line.address), 'address'), file, proc };
}

describe('srvlink dns (a process, queried with dig)', () => {
  it.each([[[] as string[]], [['+tcp']]])('answers the worked example over %s with CoreDNS weights, targets and glue', async (transport) => {
    const { address } = await startDns(WORKED_EXAMPLE);
    const result = await dig(address, '_zookeeper._tcp.env1.skydns.local', 'SRV', transport);
    expect(result.status).toBe('NOERROR');
    expect(result.flags).toContain('aa');
    expect(result.answer.map((r) => `${r.ttl} ${r.data}`).sort()).toEqual([
      '300 10 33 31002 zk2._zookeeper._tcp.env1.skydns.local.',
      '300 10 66 31001 zk1._zookeeper._tcp.env1.skydns.local.',
      '300 20 100 31003 zk3._zookeeper._tcp.env1.skydns.local.',
    ]);
    expect(result.additional.filter((r) => r.type === 'A').map((r) => `${r.name} ${r.data}`).sort()).toEqual([
      'zk1._zookeeper._tcp.env1.skydns.local. 10.0.0.11',
      'zk2._zookeeper._tcp.env1.skydns.local. 10.0.0.12',
      'zk3._zookeeper._tcp.env1.skydns.local. 10.0.0.13',
    ]);
  });

  it('answers A for a record name and NXDOMAIN / NODATA with the SOA', async () => {
    const { address } = await startDns(WORKED_EXAMPLE);
    const a = await dig(address, 'ZK1._zookeeper._tcp.env1.skydns.local', 'A');
    expect(a.answer).toEqual([expect.objectContaining({ type: 'A', data: '10.0.0.11', name: 'ZK1._zookeeper._tcp.env1.skydns.local.' })]);

    const missing = await dig(address, 'nosuch.env1.skydns.local', 'A');
    expect(missing.status).toBe('NXDOMAIN');
    expect(missing.authority.map((r) => r.type)).toEqual(['SOA']);

    const nodata = await dig(address, '_zookeeper._tcp.env1.skydns.local', 'MX');
    expect(nodata.status).toBe('NOERROR');
    expect(nodata.answer).toEqual([]);
    expect(nodata.authority.map((r) => r.type)).toEqual(['SOA']);
  });

  it('skips a malformed value, counts it, and still serves the rest of the service', async () => {
    const { address, proc } = await startDns(WORKED_EXAMPLE);
    expect(proc.logs.find((l) => l.msg === 'dns server listening')?.malformed).toBe(1);
    const result = await dig(address, '_broken._tcp.env1.skydns.local', 'SRV');
    expect(result.answer.map((r) => r.data)).toEqual(['10 100 4000 b2._broken._tcp.env1.skydns.local.']);
  });

  it('refuses names outside its zones', async () => {
    const { address } = await startDns(WORKED_EXAMPLE);
    expect((await dig(address, 'example.com', 'A')).status).toBe('REFUSED');
  });

  it('follows the records file when it changes', async () => {
    const { address, file, proc } = await startDns(WORKED_EXAMPLE);
    // Replace the file the way editors and config managers do: write aside, rename over.
    writeFileSync(`${file}.new`, `${ZK}/zk9: {host: 10.0.0.19, port: 31009}\n`);
    renameSync(`${file}.new`, file);
    await proc.waitForLog((l) => /reload/i.test(l.msg) && l.level === 'info');
    const result = await dig(address, '_zookeeper._tcp.env1.skydns.local', 'SRV');
    expect(result.answer.map((r) => r.data)).toEqual(['10 100 31009 zk9._zookeeper._tcp.env1.skydns.local.']);
  });

  it('serves the embedded demo records without --records, and exits 0 on SIGTERM', async () => {
    const proc = spawnSrvlink(['dns', '--listen', '127.0.0.1:0']);
    const line = await proc.waitForLog((l) => l.msg === 'dns server listening');
    const address = parseHostPort(String(line.address), 'address');
    const result = await dig(address, '_demo._tcp.env1.skydns.local', 'SRV');
    expect(result.answer.map((r) => r.data.split(' ').slice(0, 2).join(' ')).sort()).toEqual(['10 25', '10 75', '20 100']);
    expect(await proc.stop('SIGTERM')).toBe(0);
    expect(proc.logs.some((l) => l.msg === 'dns server stopping')).toBe(true);
  });

  it('exits 1 with a clear message when the port is taken', async () => {
    const taken = createServer();
    taken.listen(0, '127.0.0.1');
    await once(taken, 'listening');
    onTestFinished(() => void taken.close());
    const port = (taken.address() as { port: number }).port;
    const result = await runSrvlink(['dns', '--listen', `127.0.0.1:${port}`]);
    expect(result.code).toBe(1);
    expect(result.messages).toContain(`cannot listen on "127.0.0.1:${port}": the port is already in use`);
  });

  it.each([
    [['dns', '--listen', 'localhost:99999'], {}, /invalid port "99999" in --listen "localhost:99999"/],
    [['dns', '--zone', 'bad zone!'], {}, /invalid --zone "bad zone!": expected a domain name/],
    [['dns', '--prefix', 'skydns'], {}, /invalid --prefix "skydns": expected an etcd key path/],
    [['dns', '--records', '/nonexistent/records.yaml', '--listen', '127.0.0.1:0'], {}, /\/nonexistent\/records.yaml/],
    [['dns', '--bogus'], {}, /unknown option '--bogus'/],
    [['dns'], { SRVLINK_DNS_LISTEN: '1.2.3.4:x' }, /invalid port "x" in SRVLINK_DNS_LISTEN \(for --listen\)/],
    [['dns', '--log-level', 'loud', '--listen', '127.0.0.1:0'], {}, /invalid --log-level "loud"/],
  ])('exits 2 for bad usage: %j %j', async (args, env, message) => {
    const result = await runSrvlink(args, { env });
    expect(result.messages).toMatch(message);
    expect(result.lines.filter((line) => line.level !== 'error')).toEqual([]);
    expect(result.code).toBe(2);
  });

  it('explains itself in --help', async () => {
    const result = await runSrvlink(['dns', '--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/--records <file>/);
    expect(result.stdout).toMatch(/Examples:/);
  });
});

/**
 * A service with a thousand instances: its SRV answer is ~147 KB without
 * name compression, more than any DNS message can hold. `srvlink dns` (and
 * the stub of `srvlink run` relaying it) must answer it, truncated over UDP
 * and whole over TCP, and stay up: dig, a client we did not write, asks.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseHostPort, type HostPort } from '../../src/core/host-port.js';
import { dig } from '../helpers/dig.js';
import { spawnSrvlink, type SrvlinkProcess } from '../helpers/srvlink-process.js';
import { tempDir } from '../helpers/temp-dir.js';

const INSTANCES = 1000;
const SERVICE = '_big._tcp.env1.skydns.local';

function recordsFile(count: number): string {
  const file = join(tempDir(), 'records.yaml');
  const lines = Array.from({ length: count }, (_, i) => `/skydns/local/skydns/env1/_tcp/_big/i${i}: {host: 10.1.${i >> 8}.${i & 0xff}, port: ${20000 + i}}`);
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

async function startDns(count: number): Promise<{ proc: SrvlinkProcess; address: HostPort }> {
  const proc = spawnSrvlink(['dns', '--listen', '127.0.0.1:0', '--records', recordsFile(count)]);
  const line = await proc.waitForLog((l) => l.msg === 'dns server listening');
  return { proc, address: parseHostPort(String(line.address), 'address') };
}

/** dig's answer for the big service: every instance, with its glue, and a query answered after it. */
async function expectWholeAnswer(server: HostPort, extra: string[] = []): Promise<void> {
  const result = await dig(server, SERVICE, 'SRV', extra);
  expect(result.status).toBe('NOERROR');
  expect(result.answer).toHaveLength(INSTANCES);
  expect(new Set(result.answer.map((r) => r.data.split(' ')[2])).size).toBe(INSTANCES);
  expect(result.additional.filter((r) => r.type === 'A')).toHaveLength(INSTANCES);
  expect(result.flags).not.toContain('tc');
  if (!extra.includes('+tcp')) expect(result.raw).toMatch(/Truncated, retrying in TCP mode/);
}

describe('an answer larger than 64 KiB uncompressed', () => {
  it('srvlink dns answers 1000 instances to dig over UDP (truncated, dig retries over TCP) and TCP, and stays up', async () => {
    const { proc, address } = await startDns(INSTANCES);
    await expectWholeAnswer(address);
    await expectWholeAnswer(address, ['+tcp']);
    // Still there, still answering the worked example of a small query.
    const small = await dig(address, `i7._big._tcp.env1.skydns.local`, 'A');
    expect(small.answer.map((r) => r.data)).toEqual(['10.1.0.7']);
    expect(proc.child.exitCode).toBeNull();
    expect(proc.logs.filter((l) => l.level === 'error' || l.level === 'raw')).toEqual([]);
  });

  it('cuts what even compression cannot fit to whole records in 65,535 bytes, TC set, and stays up', async () => {
    const { proc, address } = await startDns(3000);
    const result = await dig(address, SERVICE, 'SRV', ['+tcp', '+ignore']);
    expect(result.status).toBe('NOERROR');
    expect(result.flags).toContain('tc');
    expect(result.answer.length).toBeGreaterThan(1000);
    expect(result.answer.length).toBeLessThan(3000);
    // The additional section went first: no glue at all when answers were cut.
    expect(result.additional.filter((r) => r.type === 'A')).toEqual([]);
    const small = await dig(address, `i7._big._tcp.env1.skydns.local`, 'A', ['+tcp']);
    expect(small.answer.map((r) => r.data)).toEqual(['10.1.0.7']);
    expect(proc.child.exitCode).toBeNull();
  });

  it('the stub of srvlink run relays the 1000 instances from srvlink dns to dig, and stays up', async () => {
    const { address: cluster } = await startDns(INSTANCES);
    const run = spawnSrvlink([
      'run', '--domain', 'env1.skydns.local', '--discovery', 'static', '--map', '127.0.0.1:0=zookeeper', '--backend', 'zookeeper=127.0.0.1:1',
      '--dns-listen', '127.0.0.1:0', '--cluster-dns', `127.0.0.1:${cluster.port}`, '--upstream', `127.0.0.1:${cluster.port}`,
    ]);
    const stub = parseHostPort(String((await run.waitForLog((l) => l.msg === 'dns stub listening')).address), 'address');
    // Twice: the first goes to srvlink dns (UDP, truncated, then TCP), the second comes from the cache.
    await expectWholeAnswer(stub);
    await expectWholeAnswer(stub);
    await expectWholeAnswer(stub, ['+tcp']);
    const alias = await dig(stub, 'zookeeper', 'A');
    expect(alias.answer.map((r) => r.data)).toEqual(['127.0.0.1']);
    expect(run.child.exitCode).toBeNull();
    expect(run.logs.filter((l) => l.level === 'error' || l.level === 'raw')).toEqual([]);
  });
});
